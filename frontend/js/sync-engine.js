// Makes a local player follow the room's authoritative playback.
//
// The engine only ever *reads* the room state and drives the player; it sends
// nothing but `ping` and `status`. User actions (play, seek, ...) are sent by the UI
// controls, never derived from player events, so a change the engine applies can
// never be echoed back to the server as if a person made it.

import { ClockSync, pingDelayMs } from './clock.js';
import { PlaybackModel, sameVideo } from './playback-model.js';
import { CorrectionController, HTML5_TUNING, YOUTUBE_TUNING } from './correction.js';

export const TICK_MS = 250;
export const STATUS_INTERVAL_MS = 1000;
/** Paused or waiting players are moved when they sit further than this from the target. */
export const PAUSED_TOLERANCE_MS = 40;

export class SyncEngine {
  /**
   * @param {object} deps
   * @param {(msg: object) => void} deps.send            sends a message to the server
   * @param {(video: object|null) => object|null} deps.createPlayer  builds a player for a video
   * @param {() => number} [deps.now]                    monotonic clock (ms)
   * @param {Function} [deps.setTimer]                   setTimeout-like
   * @param {Function} [deps.clearTimer]                 clearTimeout-like
   * @param {(engine: SyncEngine) => void} [deps.onChange] called when visible state changes
   */
  constructor({ send, createPlayer, now = () => performance.now(), setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (id) => clearTimeout(id), onChange = () => {} }) {
    this.send = send;
    this.createPlayer = createPlayer;
    this.now = now;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.onChange = onChange;
    this.clock = new ClockSync({ now });
    this.model = new PlaybackModel();
    this.controller = new CorrectionController(HTML5_TUNING);
    this.player = null;
    this.playerVideo = undefined; // undefined: nothing chosen yet (null means "no video")
    this.playerReady = false;
    this.busy = false; // a seek, load or play is in flight
    this.autoplayBlocked = false;
    this.lastDriftMs = null;
    this.lastError = null;
    this.connected = false;
    this.pingsSent = 0;
    this.timers = { ping: null, status: null, tick: null, start: null };
  }

  // ---- connection lifecycle -------------------------------------------------

  /** The socket is open and joined: start measuring the clock and reporting. */
  onConnected() {
    this.connected = true;
    this.pingsSent = 0;
    this.schedulePing(0);
    this.restartTimer('status', STATUS_INTERVAL_MS, () => this.reportStatus(), true);
    this.restartTimer('tick', TICK_MS, () => this.tick(), true);
  }

  onDisconnected() {
    this.connected = false;
    this.stopTimer('ping');
    this.stopTimer('status');
    // The tick keeps running: the player follows the last known playback offline.
  }

  schedulePing(delay) {
    this.restartTimer('ping', delay, () => {
      if (!this.connected) return;
      this.send(this.clock.makePing());
      this.pingsSent += 1;
      this.schedulePing(pingDelayMs(this.pingsSent));
    });
  }

  onPong(message) {
    const sample = this.clock.onPong(message);
    if (sample && this.clock.samples.length === 1) this.tick();
    return sample;
  }

  /** `welcome` starts a fresh session: any seq is accepted. */
  onWelcome(playback) {
    return this.onPlayback(playback, { fresh: true });
  }

  onPlayback(playback, { fresh = false } = {}) {
    const result = this.model.apply(playback, { fresh });
    if (result === 'applied') {
      this.controller.reset();
      this.tick();
      this.onChange(this);
    }
    return result;
  }

  // ---- the control loop -----------------------------------------------------

  serverNow() {
    return this.clock.serverTime();
  }

  /** Where the room says the media is right now (seconds), clamped to the media length. */
  expectedPosition(serverMs = this.serverNow()) {
    if (serverMs === null || !this.model.current) return null;
    let expected = this.model.positionAt(serverMs);
    const duration = this.player && this.playerReady ? this.player.duration() : NaN;
    if (Number.isFinite(duration) && duration > 0) expected = Math.min(expected, duration);
    return Math.max(0, expected);
  }

  tick() {
    const playback = this.model.current;
    if (!playback) return;
    if (!sameVideo(this.playerVideo, playback.video)) {
      this.switchVideo(playback.video);
      return;
    }
    if (!this.player || !this.playerReady || this.busy || !this.clock.synced) return;

    const serverMs = this.serverNow();
    const expected = this.expectedPosition(serverMs);
    const actual = this.player.currentTime();
    const driftMs = (actual - expected) * 1000;
    this.lastDriftMs = driftMs;

    if (playback.paused) {
      this.holdAt(expected, playback.rate, driftMs);
      return;
    }
    const untilStart = playback.anchor - serverMs;
    if (untilStart > 0) {
      // Scheduled start: stand ready at the start position and start exactly at the anchor.
      this.holdAt(playback.position, playback.rate, (actual - playback.position) * 1000);
      const delay = untilStart < TICK_MS * 1.5 ? untilStart : untilStart - TICK_MS;
      this.restartTimer('start', delay, () => this.tick());
      return;
    }
    const duration = this.player.duration();
    if (Number.isFinite(duration) && expected >= duration - 0.05) {
      // The room has run past the end: sit on the last frame like everyone else.
      if (!this.player.paused()) this.player.pause();
      this.lastDriftMs = 0;
      return;
    }
    if (this.player.paused()) {
      this.startPlaying(expected, playback.rate, driftMs);
      return;
    }
    if (this.player.buffering()) return; // the drift grows while stalled; judged once it plays again
    const decision = this.controller.update(driftMs, playback.rate, this.now());
    this.lastDriftMs = decision.driftMs;
    if (decision.action === 'seek') {
      this.seekTo(() => this.expectedPosition() + (decision.leadMs / 1000) * playback.rate);
    } else {
      this.player.setRate(decision.rate);
    }
  }

  holdAt(position, rate, driftMs) {
    if (!this.player.paused()) this.player.pause();
    this.player.setRate(rate);
    this.controller.reset();
    if (Math.abs(driftMs) > PAUSED_TOLERANCE_MS) this.seekTo(() => position, { measure: false });
  }

  startPlaying(expected, rate, driftMs) {
    if (this.autoplayBlocked) return;
    if (Math.abs(driftMs) > this.controller.tuning.seekThresholdMs / 2) {
      // Far off (e.g. joining mid-video): seek first; the next tick starts playback.
      this.seekTo(() => this.expectedPosition() + this.controller.seekLatencyMs / 1000 * rate);
      return;
    }
    this.player.setRate(rate);
    this.controller.reset();
    this.runPlay();
  }

  /** Calls player.play(); returns its promise. Also used from a user gesture to lift an autoplay block. */
  runPlay() {
    this.busy = true;
    let promise;
    try {
      promise = Promise.resolve(this.player.play());
    } catch (error) {
      promise = Promise.reject(error);
    }
    return promise.then(
      () => {
        this.busy = false;
        if (this.autoplayBlocked) {
          this.autoplayBlocked = false;
          this.onChange(this);
        }
      },
      (error) => {
        this.busy = false;
        if (error && error.name === 'NotAllowedError') {
          this.autoplayBlocked = true;
          this.onChange(this);
        } else {
          this.lastError = String(error && error.message || error);
        }
      },
    );
  }

  /** Called from a click on the "join playback" overlay: a user gesture allows play(). */
  resumeAfterGesture() {
    this.autoplayBlocked = false;
    if (!this.player || !this.playerReady) return Promise.resolve();
    this.onChange(this);
    const playback = this.model.current;
    if (playback && !playback.paused) return this.runPlay().then(() => this.tick());
    return Promise.resolve();
  }

  seekTo(targetFn, { measure = true } = {}) {
    this.busy = true;
    const startedAt = this.now();
    // The target is computed at the last moment so time spent deciding is not lost.
    let target = targetFn();
    const duration = this.player.duration();
    if (Number.isFinite(duration)) target = Math.min(target, duration);
    return Promise.resolve(this.player.seek(Math.max(0, target))).then(
      () => {
        if (measure) this.controller.noteSeekLatency(this.now() - startedAt);
        this.busy = false;
        this.controller.reset();
        this.tick();
      },
      () => {
        this.busy = false;
      },
    );
  }

  switchVideo(video) {
    if (this.player) this.player.destroy();
    this.player = null;
    this.playerReady = false;
    this.playerVideo = video;
    this.busy = false;
    this.controller.reset();
    if (!video) {
      this.onChange(this);
      return;
    }
    const player = this.createPlayer(video);
    if (!player) return;
    this.player = player;
    this.controller = new CorrectionController(player.fineRate ? HTML5_TUNING : YOUTUBE_TUNING);
    this.onChange(this);
    Promise.resolve(player.load(video)).then(
      () => {
        if (this.player !== player) return; // replaced meanwhile
        this.playerReady = true;
        this.onChange(this);
        this.tick();
      },
      (error) => {
        if (this.player !== player) return;
        this.lastError = `could not load the video: ${error && error.message || error}`;
        this.onChange(this);
      },
    );
  }

  // ---- reporting ------------------------------------------------------------

  status() {
    return {
      type: 'status',
      rtt_ms: this.clock.rttMs === null ? 0 : round1(this.clock.rttMs),
      drift_ms: this.lastDriftMs === null ? 0 : round1(this.lastDriftMs),
      buffering: !!(this.player && (this.player.buffering() || !this.playerReady)),
    };
  }

  reportStatus() {
    if (!this.connected || !this.clock.synced) return;
    this.send(this.status());
  }

  // ---- timers ---------------------------------------------------------------

  restartTimer(name, delay, fn, repeat = false) {
    this.stopTimer(name);
    const run = () => {
      if (repeat) this.timers[name] = this.setTimer(run, delay);
      else this.timers[name] = null;
      fn();
    };
    this.timers[name] = this.setTimer(run, delay);
  }

  stopTimer(name) {
    if (this.timers[name] !== null) this.clearTimer(this.timers[name]);
    this.timers[name] = null;
  }

  destroy() {
    for (const name of Object.keys(this.timers)) this.stopTimer(name);
    if (this.player) this.player.destroy();
    this.player = null;
  }
}

function round1(x) {
  return Math.round(x * 10) / 10;
}
