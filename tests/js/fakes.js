// Deterministic stand-ins for time and for a media player, for the engine tests.

/** Virtual monotonic clock with setTimeout-like timers. */
export class VirtualTime {
  constructor(start = 1000) {
    this.t = start;
    this.timers = new Map();
    this.nextId = 1;
  }
  now = () => this.t;
  setTimer = (fn, delay) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, delay), fn });
    return id;
  };
  clearTimer = (id) => {
    this.timers.delete(id);
  };
  /** Advances time by `ms`, jumping to each due timer in order and settling promises after each. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (next === null) break;
      const [id, timer] = next;
      this.timers.delete(id);
      this.t = Math.max(this.t, timer.at);
      timer.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

export async function settle() {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/**
 * A player whose media position moves with virtual time. `playLagMs` models the
 * time a real element takes to get moving after play(); seeks finish after `seekMs`.
 */
export class FakePlayer {
  constructor(time, { audioGrid = null, probeable = false, fineRate = true, duration = 60, playLagMs = 0, playResolveMs = 0, pausedUntilResolved = false, seekMs = 0, blockAutoplay = false, clockError = 0, loadMs = 0, loadFails = false, resumeJumpMs = null } = {}) {
    // With `resumeJumpMs`, the player behaves like Chromium's <video>: a play() after a
    // pause with no seek since jumps ahead by that much at once (then waits playLagMs as
    // any start), and it says which kind its next start is (`startKind`).
    this.resumeJumpMs = resumeJumpMs;
    if (resumeJumpMs !== null) this.startKind = 'fresh';
    this.loadMs = loadMs; // how long load() takes
    this.loadFails = loadFails;
    this.clockError = clockError; // the media clock runs this fraction fast (e.g. 0.002)
    this.time = time;
    this.fineRate = fineRate;
    this.durationS = duration;
    this.playLagMs = playLagMs;
    // With `audioGrid` ({periodMs, phaseMs, delayMs, minMs}), the player starts like
    // Chromium's <video> on an audio output: play() is taken up by the first output
    // callback at least minMs later (callbacks are phaseMs + n * periodMs), and the media
    // moves delayMs after that callback; it also says when that callback came
    // (watchFirstMotion). playLagMs is then unused.
    this.audioGrid = audioGrid;
    this.lastCallbackAt = null;
    this.probeCut = null; // ends a probe in flight (pause)
    if (audioGrid) {
      this.watchFirstMotion = () => {
        const at = this.lastCallbackAt;
        return new Promise((resolve) => this.time.setTimer(() => resolve(this.isPaused ? null : { at, runMs: audioGrid.periodMs }), Math.max(0, at + audioGrid.periodMs - this.time.now())));
      };
    }
    // With `probeable` too, it can be probed like Html5Player.probe: a paused player is
    // played out of hearing until its callback's run is over (or on until it moves), then
    // paused again; the media itself does not move meanwhile, but its currentTime ends a
    // little ahead.
    if (audioGrid && probeable) {
      this.probeable = () => this.isPaused;
      this.probe = ({ untilMotion = false, quick = false } = {}) => {
        if (!this.isPaused) return Promise.resolve(null);
        this.calls.push(['probe', untilMotion]);
        const { periodMs, delayMs } = audioGrid;
        const playAt = this.time.now();
        const at = this.callbackAfter(playAt);
        const doneAt = untilMotion ? at + delayMs + periodMs + 2 : at + (quick ? 0 : periodMs) + 2;
        return new Promise((resolve) => {
          // Either way the probe ends paused, as a resumed element.
          const end = (seen) => {
            this.probeCut = null;
            if (this.resumeJumpMs !== null) this.startKind = 'resumed';
            resolve(seen);
          };
          const timer = this.time.setTimer(() => {
            // Its currentTime ran ahead at the callback, by a buffer (or, stopped at the first
            // sign, by a little): moved back after it, as a real element must be.
            this.position += (quick && !untilMotion ? 1 : periodMs) / 1000;
            end({ playAt, at, runMs: quick && !untilMotion ? null : periodMs, motionAt: untilMotion ? at + delayMs : null });
          }, doneAt - playAt);
          // A pause ends the probe at once, having seen nothing whole (as Html5Player.probe).
          this.probeCut = () => {
            this.time.clearTimer(timer);
            end(null);
          };
        });
      };
    }
    // Chromium resolves play()'s promise once playback is under way, often well after
    // the media has started moving.
    this.playResolveMs = playResolveMs;
    // Like YouTube's player: it says it plays only once play() has gone through.
    this.pausedUntilResolved = pausedUntilResolved;
    this.saysPausedUntil = null;
    this.seekMs = seekMs;
    this.blockAutoplay = blockAutoplay;
    this.position = 0;
    this.rate = 1;
    this.isPaused = true;
    this.movingFrom = null; // virtual time when the media really starts advancing
    this.lastUpdate = time.now();
    this.isBuffering = false;
    this.calls = [];
    this.destroyed = false;
    this.loaded = null;
    this.hasData = true; // whether it could play from where it stands (canPlay)
    this.onBufferingChange = null; // set by the engine, like the real players'
  }
  /** With `audioGrid`: the output callback that takes up a play() called at `playAt`. */
  callbackAfter(playAt) {
    const { periodMs, phaseMs, minMs } = this.audioGrid;
    return phaseMs + Math.ceil((playAt + minMs - phaseMs) / periodMs) * periodMs;
  }
  /** Simulates the element running out of data (or getting it back) while playing. */
  setBuffering(flag) {
    this.advanceMedia();
    this.isBuffering = flag;
    this.hasData = !flag;
    if (this.onBufferingChange) this.onBufferingChange();
  }
  /** Simulates data arriving for (or missing at) the current position, paused or not. */
  setHasData(flag) {
    this.hasData = flag;
    if (this.onBufferingChange) this.onBufferingChange();
  }
  canPlay() {
    return this.hasData;
  }
  advanceMedia() {
    const now = this.time.now();
    if (!this.isPaused && !this.isBuffering) {
      const from = Math.max(this.lastUpdate, this.movingFrom ?? this.lastUpdate);
      if (now > from) this.position = Math.min(this.durationS, this.position + ((now - from) / 1000) * this.rate * (1 + this.clockError));
      if (this.position >= this.durationS) this.isPaused = true; // an element that ends pauses
    }
    this.lastUpdate = now;
  }
  load(video) {
    this.calls.push(['load', video]);
    this.loaded = video;
    if (this.loadFails) return Promise.reject(new Error('format not supported or file not found'));
    if (!this.loadMs) return Promise.resolve();
    return new Promise((resolve) => this.time.setTimer(resolve, this.loadMs));
  }
  currentTime() {
    this.advanceMedia();
    return this.position;
  }
  duration() {
    return this.durationS;
  }
  paused() {
    return this.isPaused || (this.saysPausedUntil !== null && this.time.now() < this.saysPausedUntil);
  }
  buffering() {
    return this.isBuffering;
  }
  play() {
    this.calls.push(['play']);
    if (this.abortPlay) {
      const error = new Error('The play() request was interrupted by a call to pause()');
      error.name = 'AbortError';
      return Promise.reject(error);
    }
    if (this.blockAutoplay) {
      const error = new Error('play() failed because the user did not interact');
      error.name = 'NotAllowedError';
      return Promise.reject(error);
    }
    this.advanceMedia();
    if (this.resumeJumpMs !== null && this.startKind === 'resumed' && this.isPaused) this.position += this.resumeJumpMs / 1000;
    this.isPaused = false;
    this.movingFrom = this.time.now() + this.playLagMs;
    if (this.audioGrid) {
      this.lastCallbackAt = this.callbackAfter(this.time.now());
      this.movingFrom = this.lastCallbackAt + this.audioGrid.delayMs;
    }
    if (this.pausedUntilResolved) this.saysPausedUntil = this.time.now() + this.playResolveMs;
    if (!this.playResolveMs) return Promise.resolve();
    return new Promise((resolve) => this.time.setTimer(resolve, this.playResolveMs));
  }
  pause() {
    this.calls.push(['pause']);
    if (this.probeCut) this.probeCut();
    this.advanceMedia();
    if (this.resumeJumpMs !== null && !this.isPaused) this.startKind = 'resumed';
    this.isPaused = true;
  }
  seek(seconds) {
    this.calls.push(['seek', seconds]);
    this.advanceMedia();
    if (this.resumeJumpMs !== null && seconds !== this.position) this.startKind = 'seeked';
    return new Promise((resolve) => {
      this.time.setTimer(() => {
        this.advanceMedia();
        this.position = seconds;
        resolve();
      }, this.seekMs);
    });
  }
  setRate(rate) {
    this.advanceMedia();
    if (rate !== this.rate) this.calls.push(['rate', rate]);
    this.rate = rate;
  }
  destroy() {
    this.destroyed = true;
    this.onBufferingChange = null;
  }
}

export const SERVER_OFFSET = 1_700_000_000_000 + 7_345; // the page's clock is far from the server's
export const ONE_WAY_MS = 15;

/**
 * Wires a SyncEngine (imported by the caller) to a simulated server that answers pings
 * after ONE_WAY_MS each way, with FakePlayers built on virtual time.
 */
export function setupEngine(SyncEngine, playerOptions = {}) {
  const time = new VirtualTime();
  const serverNow = () => time.now() + SERVER_OFFSET;
  const sent = [];
  const players = [];
  let engine;
  const send = (msg) => {
    sent.push(msg);
    if (msg.type === 'ping') {
      time.setTimer(() => {
        const t1 = serverNow();
        time.setTimer(() => engine.onPong({ type: 'pong', t0: msg.t0, t1, t2: t1 }), ONE_WAY_MS);
      }, ONE_WAY_MS);
    }
  };
  engine = new SyncEngine({
    send,
    now: time.now,
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
    createPlayer: () => {
      const player = new FakePlayer(time, playerOptions);
      players.push(player);
      return player;
    },
  });
  return { time, serverNow, sent, players, engine, player: () => players.at(-1) };
}
