// The room's WebSocket: joins, resumes after drops with backoff, and hands each
// parsed server message to the page. Knows nothing about players or the DOM.

import { reconnectDelayMs, finalCloseReason, FATAL_JOIN_ERRORS } from './reconnect.js';

/** What the page is told when the room no longer exists. */
export const ROOM_GONE = 'This room no longer exists.';

/** If nothing arrives for this long (pongs come every few seconds), the socket is presumed dead. */
export const SILENCE_TIMEOUT_MS = 12_000;

export class RoomSocket {
  /**
   * @param {object} options
   * @param {string} options.url               ws(s)://.../api/rooms/{id}/ws
   * @param {() => object} options.joinMessage  builds the join message (reads the current tokens)
   * @param {(msg: object) => void} options.onMessage
   * @param {(state: string, detail?: string) => void} options.onState  'connecting'|'open'|'reconnecting'|'closed'|'gone'
   * @param {() => Promise<boolean>} [options.roomGone] asked after a connection that never got
   *   to a `welcome`: true when the room answers that it does not exist (404), which stops the
   *   retries for good ('gone'). A browser does not see why an upgrade was refused, so a
   *   deleted room would otherwise look like a server that is down, retried forever.
   * @param {Function} [options.WebSocketImpl]
   * @param {Function} [options.setTimer] [options.clearTimer] [options.random]
   */
  constructor({ url, joinMessage, onMessage, onState, roomGone = null, WebSocketImpl = globalThis.WebSocket, setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (id) => clearTimeout(id), random = Math.random }) {
    Object.assign(this, { url, joinMessage, onMessage, onState, roomGone, WebSocketImpl, setTimer, clearTimer, random });
    this.ws = null;
    this.attempt = 0;
    this.joined = false;
    this.stopped = false;
    this.retryTimer = null;
    this.checking = false;
    this.silenceTimer = null;
  }

  connect() {
    if (this.stopped) return;
    this.joined = false;
    this.onState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (error) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.armSilenceTimer();
      this.sendRaw(this.joinMessage());
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.armSilenceTimer();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not JSON: ignore, never break the page
      }
      if (!message || typeof message !== 'object' || typeof message.type !== 'string') return;
      if (message.type === 'welcome') {
        this.joined = true;
        this.attempt = 0;
        this.onState('open');
      } else if (message.type === 'error' && !this.joined && message.code === 'room_not_found') {
        this.stop(ROOM_GONE, 'gone');
      } else if (message.type === 'error' && !this.joined && FATAL_JOIN_ERRORS.has(message.code)) {
        this.stop(message.message || message.code);
      }
      this.onMessage(message);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.clearSilenceTimer();
      const wasJoined = this.joined;
      this.joined = false;
      if (this.stopped) return;
      const reason = finalCloseReason(event.code);
      if (reason) {
        this.stop(reason);
        return;
      }
      if (wasJoined) {
        this.attempt = 0;
        this.scheduleRetry();
      } else {
        this.retryUnlessGone();
      }
    };
    ws.onerror = () => {}; // a close event always follows
  }

  /** After a connection that never joined: stop if the room is gone, else retry. */
  retryUnlessGone() {
    if (!this.roomGone) {
      this.scheduleRetry();
      return;
    }
    this.checking = true;
    Promise.resolve()
      .then(() => this.roomGone())
      .catch(() => false) // cannot tell: keep trying
      .then((gone) => {
        this.checking = false;
        if (this.stopped) return;
        if (gone) this.stop(ROOM_GONE, 'gone');
        else this.scheduleRetry();
      });
  }

  scheduleRetry() {
    const delay = reconnectDelayMs(this.attempt, this.random);
    this.attempt += 1;
    this.onState('reconnecting', `retrying in ${Math.ceil(delay / 1000)} s`);
    this.retryTimer = this.setTimer(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  armSilenceTimer() {
    this.clearSilenceTimer();
    const ws = this.ws;
    this.silenceTimer = this.setTimer(() => {
      if (ws === this.ws && ws) ws.close(4100, 'silent');
      // Browsers may take long to fire close on a dead link; act now.
      if (ws === this.ws && ws) ws.onclose({ code: 1006 });
    }, SILENCE_TIMEOUT_MS);
  }

  clearSilenceTimer() {
    if (this.silenceTimer !== null) this.clearTimer(this.silenceTimer);
    this.silenceTimer = null;
  }

  get isOpen() {
    return this.joined && !!this.ws && this.ws.readyState === 1;
  }

  /** Sends a message if joined; returns whether it went out. */
  send(message) {
    if (!this.isOpen) return false;
    return this.sendRaw(message);
  }

  sendRaw(message) {
    try {
      this.ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  /** Whether a reconnect is scheduled or being decided: false once stopped for good. */
  get retrying() {
    return !this.stopped && (this.retryTimer !== null || this.checking === true);
  }

  /** Stops for good (room gone, replaced, page leaving), telling the page `finalState`. */
  stop(reason, finalState = 'closed') {
    if (this.stopped) return;
    this.stopped = true;
    if (this.retryTimer !== null) this.clearTimer(this.retryTimer);
    this.clearSilenceTimer();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    this.onState(finalState, reason);
  }
}
