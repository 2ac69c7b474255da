// Where a media element's motion can begin: the audio output's callback grid.
//
// Measured in Chromium (docs/synchronization.md, section 3, step 7): play() takes effect at
// the next callback of the element's audio output, a clock that runs on its own (1024
// frames at 44.1 kHz = 23.22 ms apart on the test machine) and keeps its phase from one
// start to the next, until the element is replaced or nothing has played for some seconds.
// At that callback `currentTime` first changes (it runs ahead by one buffer, then stands
// still), and the media truly moves a fixed delay later (the output's latency, 69.5 ±
// 0.3 ms there). So a start's motion can only begin on a grid of instants, and which one it
// is depends on where play() falls between two callbacks: a learned lead alone misses by
// up to half a period either way.
//
// Knowing the grid, a start can be planned exactly: motion begins at the first grid
// instant at or after the anchor, the paused media is first moved ahead by the gap (so it
// stands where the room will be at that instant), and play() goes just after the callback
// before that motion's callback. This module learns the grid from the starts themselves and
// from probes (Html5Player.probe, out of hearing), and makes those plans; it does no I/O
// and is driven with plain numbers (ms on the page's monotonic clock).

/** Callback periods an audio output may use (ms): common buffer sizes at 44.1 and 48 kHz. */
export const CALLBACK_PERIODS_MS = [...new Set([128, 256, 441, 480, 512, 882, 960, 1024, 2048]
  .flatMap((frames) => [frames / 44.1, frames / 48]))];
/** How far callbacks may lie off one grid and still tell its period (readings are good to ~0.2 ms). */
export const FIT_TOLERANCE_MS = 0.75;
/**
 * How far a start's callback may lie off the known grid before the grid is taken to have
 * changed (a callback one period off, from another output, is 5 ms off at the very least).
 */
export const ON_GRID_TOLERANCE_MS = 3;
/** A first run of motion this long or longer is one callback's worth (shorter: not a callback). */
export const MIN_RUN_MS = 10;
/**
 * A callback period's candidates must lie this close to the first runs measured (media
 * ms). Runs read a few ms short on a busy page, so this only rules out periods far off (a
 * short period fits any callbacks); the callbacks themselves decide.
 */
export const RUN_MATCH_MS = 4;
/** How far a run may read longer than its period (a reading is good to ~0.2 ms). */
export const RUN_OVER_MS = 0.5;
/** Callbacks kept to solve the period from. */
export const KEPT_CALLBACKS = 8;
/**
 * Shortest time a plan leaves for the move: a seek on a paused element takes a few ms, but
 * up to 45 ms on a busy page (measured in the sync test, where such starts were given up).
 */
export const PLAN_SEEK_MARGIN_MS = 50;
/**
 * How far past the anchor a plan may put the motion when the first grid instant is too
 * close to make (a start announced late): the media stands still meanwhile, exactly where
 * the room will be when it moves, and is in step from there.
 */
export const LATE_PLAN_MAX_MS = 75;
/**
 * How long after the callback before its own a plan calls play() (see plan()): more than the
 * grid's error, a few tenths of a ms once learned, but up to 5.6 ms seen in the sync test
 * (at 2 ms such a start was taken up by that earlier callback, a period early).
 */
export const PLAY_AFTER_CALLBACK_MS = 5;

/** How far `at` lies from the nearest instant of a grid through `ref` every `periodMs` (ms, signed). */
function offGrid(at, ref, periodMs) {
  const n = (at - ref) / periodMs;
  return (n - Math.round(n)) * periodMs;
}

export class StartGrid {
  constructor() {
    /** How many times everything was dropped, and the phase alone (diagnostics). */
    this.resets = 0;
    this.phaseDrops = 0;
    this.clear();
  }

  /** Forgets everything (a period that does not hold). */
  reset() {
    this.clear();
    this.resets += 1;
  }

  /** The learned state, empty. */
  clear() {
    /** Recent callbacks seen at starts and probes ({at, runMs}), on one grid: its phase. */
    this.callbacks = [];
    /** Whether the last callback noted lay off the grid (two in a row: the period is wrong). */
    this.lastOffGrid = false;
    /** A reading that contradicted a confirmed phase ({at, runMs, playAt}), until the next one tells. */
    this.offReading = null;
    /** The callback period (ms), once only one candidate fits every callback seen. */
    this.periodMs = null;
    /** From a callback to the media's motion (ms): the output's latency. */
    this.motionDelayMs = null;
    /** Shortest time seen from play() to the callback that started it (ms). */
    this.playToCallbackMs = null;
  }

  /**
   * Forgets the grid's phase but keeps what belongs to the output's kind (its period and
   * latency): Chromium opens a new output, on a grid of its own, for a new element, and an
   * idle output is not trusted (GRID_IDLE_MS in sync-engine.js). The next callback seen (a
   * start's or a probe's) gives the phase.
   */
  dropPhase() {
    this.callbacks = [];
    this.offReading = null;
    this.phaseDrops += 1;
  }

  /** What is known, for diagnostics. */
  snapshot() {
    return { periodMs: this.periodMs, motionDelayMs: this.motionDelayMs, callbacks: this.callbacks.length, playToCallbackMs: this.playToCallbackMs, resets: this.resets, phaseDrops: this.phaseDrops };
  }

  /** Whether starts can be planned on the grid. */
  get ready() {
    return this.periodMs !== null && this.motionDelayMs !== null && this.callbacks.length > 0;
  }

  /**
   * Whether, ready, its phase rests on two callbacks at least: the first callback of an
   * output just opened may lie off the grid the output then keeps (by hand, 3 pages in 24,
   * once by 10 ms), and a second one tells (noteCallback drops a phase it contradicts).
   */
  get confirmed() {
    return this.ready && this.callbacks.length >= 2;
  }

  /**
   * A start's first callback: `at` when currentTime first changed after play() (called at
   * `playAt`), whose first run of motion lasted `runMs`. Returns whether it lay on the grid
   * as known (true also while the grid is still being learned).
   *
   * A callback off the grid means the output changed without our knowing, or a misreading:
   * on a busy page a look comes late (the sync test's traces show callbacks read 5-17 ms
   * off the plans of starts that moved within 1 ms of their anchors). A phase resting on
   * one callback is dropped and taken from the new one at once. A confirmed phase (two
   * callbacks or more) is not moved by one reading: the next tells. If that one lies on
   * the old grid, the odd one was misread and is forgotten; if it agrees with the odd one,
   * the phase moved and is taken from those two; if it agrees with neither, the period is
   * wrong, and all is learned again (as after two off the grid in a row on a phase not yet
   * confirmed).
   */
  noteCallback(at, runMs, playAt) {
    if (!Number.isFinite(at) || !Number.isFinite(runMs) || runMs < MIN_RUN_MS) return false;
    const off = Math.abs(this.offGridMs(at)) > ON_GRID_TOLERANCE_MS;
    const odd = this.offReading;
    this.offReading = null;
    if (off && this.confirmed) {
      if (odd === null) {
        this.offReading = { at, runMs, playAt };
        return false;
      }
      if (Math.abs(offGrid(at, odd.at, this.periodMs)) <= ON_GRID_TOLERANCE_MS) {
        this.dropPhase();
        this.keep(odd.at, odd.runMs, odd.playAt);
      } else {
        this.reset();
      }
    } else if (off && this.lastOffGrid) {
      this.reset();
    } else if (off) {
      this.dropPhase();
    }
    this.lastOffGrid = off;
    this.keep(at, runMs, playAt);
    return !off;
  }

  /** Adds a callback to those the phase (and, while unknown, the period) is taken from. */
  keep(at, runMs, playAt) {
    this.callbacks.push({ at, runMs });
    if (this.callbacks.length > KEPT_CALLBACKS) this.callbacks.shift();
    const sincePlay = at - playAt;
    if (Number.isFinite(sincePlay) && sincePlay >= 0) {
      this.playToCallbackMs = this.playToCallbackMs === null ? sincePlay : Math.min(this.playToCallbackMs, sincePlay);
    }
    if (this.periodMs === null) this.solvePeriod();
  }

  /** The media was seen moving from `onsetAt`, after the callback at `callbackAt`. */
  noteMotion(onsetAt, callbackAt) {
    const delay = onsetAt - callbackAt;
    if (!Number.isFinite(delay) || delay <= 0 || delay > 500) return;
    this.motionDelayMs = delay;
  }

  /**
   * A callback instant of the grid: the kept callbacks' mean place on it, so one reading a
   * little off moves the grid by a fraction of that. Null while the period is unknown.
   */
  phaseAt() {
    if (this.periodMs === null || this.callbacks.length === 0) return null;
    const last = this.callbacks.at(-1).at;
    const offs = this.callbacks.map((c) => offGrid(c.at, last, this.periodMs));
    return last + offs.reduce((a, b) => a + b, 0) / offs.length;
  }

  /** How far `at` lies from the nearest grid callback (ms); NaN while the period is unknown. */
  offGridMs(at) {
    const phase = this.phaseAt();
    return phase === null ? NaN : offGrid(at, phase, this.periodMs);
  }

  /**
   * The one candidate period that lies near the first runs measured (media ms: one
   * callback's worth) and fits the kept callbacks (two at least, all within tolerance of
   * one grid); none while two or more do. Each further callback rules out more.
   */
  solvePeriod() {
    const runs = this.callbacks.map((c) => c.runMs).sort((a, b) => a - b);
    const run = runs[runs.length >> 1];
    const last = this.callbacks.at(-1).at;
    // A run is one buffer's worth read short at worst, never long: no period below the
    // longest run seen (a 20 ms candidate fitted probes 23.22 ms apart once).
    const longest = runs.at(-1);
    const near = CALLBACK_PERIODS_MS.filter((p) => Math.abs(p - run) <= RUN_MATCH_MS && p >= longest - RUN_OVER_MS);
    this.periodMs = null;
    // Should no period fit them all, the oldest callbacks are left out one by one: one
    // misread callback must not keep the period unknown for good.
    for (let from = 0; this.callbacks.length - from >= 2; from += 1) {
      const kept = this.callbacks.slice(from);
      const fitting = near.filter((p) => kept.every((c) => Math.abs(offGrid(c.at, last, p)) <= FIT_TOLERANCE_MS));
      if (fitting.length === 1) this.periodMs = fitting[0];
      if (fitting.length > 0) return;
    }
  }

  /**
   * Plans a start whose anchor falls at `anchorAt` (ms, page clock), asked at `now`: when
   * the media will begin to move (`motionAt`, the first grid instant at or after the
   * anchor that leaves time to move the media and call play(), LATE_PLAN_MAX_MS past it at
   * most), how far ahead of the start position it must stand meanwhile (`aheadMs`, room
   * time: it moves from there at the anchor's pace), and when to call play() (`playAt`,
   * PLAY_AFTER_CALLBACK_MS after the callback before that motion's callback). Null when the
   * grid is not known or no instant is left in time.
   */
  plan(anchorAt, now) {
    if (!this.ready) return null;
    const p = this.periodMs;
    const delay = this.motionDelayMs;
    const phase = this.phaseAt() + delay; // a grid instant of motion
    // play() must come after the previous callback's cut-off and before this one's (what
    // play() itself takes before each). Timers only ever fire late (a busy page's by 7-21
    // ms at a first start in the sync test), so it goes just after the previous callback
    // itself, which then can no longer take it whatever play() takes: a page may be late by
    // a period less that margin and what play() takes, and still make this callback
    // (stillOnTime).
    for (let motionAt = phase + Math.ceil((anchorAt - phase) / p) * p; motionAt - anchorAt <= LATE_PLAN_MAX_MS; motionAt += p) {
      const callbackAt = motionAt - delay;
      const playAt = callbackAt - p + PLAY_AFTER_CALLBACK_MS;
      if (playAt - now >= PLAN_SEEK_MARGIN_MS) return { motionAt, callbackAt, playAt, aheadMs: motionAt - anchorAt };
    }
    return null;
  }

  /**
   * Whether a plan's play() may still go now: before its callback's cut-off (the callback
   * takes up only a play() at least playToCallbackMs before it, the shortest seen, but at
   * most half a period: with few starts seen the shortest is still long), with a
   * millisecond to spare. A page that got there later would be taken up a period late.
   */
  stillOnTime(plan, now) {
    return now <= plan.callbackAt - Math.min(this.playToCallbackMs ?? 0, this.periodMs / 2) - 1;
  }
}
