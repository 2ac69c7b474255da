// Estimates the offset between this page's monotonic clock (performance.now())
// and the server clock (server ms since the UNIX epoch), NTP-style.
//
// For one ping/pong exchange:
//   t0 = client send, t1 = server receive, t2 = server send, t3 = client receive
//   offset = ((t1 - t0) + (t2 - t3)) / 2      (server time = client time + offset)
//   rtt    = (t3 - t0) - (t2 - t1)            (network time, server processing excluded)
// Neither leg can take less than no time, so one exchange proves the true offset lies in
// [t2 - t3, t1 - t0] (= offset ± rtt / 2). Every sample in a window of recent ones must
// hold, so the estimate is the middle of the intersection of their intervals: its upper
// edge comes from the fastest trip out, its lower edge from the fastest trip back, each
// found on its own. That needs one quick trip in each direction, not one exchange that
// was quick both ways, so on a jittery link it converges several times faster than a
// filter of low-rtt samples (on the e2e test's link, from the same recorded samples:
// within 1.0 ms of the truth, against up to 6.0 ms for the median of the fastest third).
// Intervals that do not overlap prove the clocks moved apart (drift over the window, or a
// server clock set differently): the oldest samples are then dropped until the rest agree.

// 30 samples at one per 2 s cover the last minute: enough for a quick trip in each
// direction even on a jittery link, short enough that clock drift does not matter.
export const DEFAULT_WINDOW = 30;
/**
 * Pings sent back to back (after each pong or a short timeout) when the connection opens.
 * 16, not 8: on a link with ±20 ms of jitter each way the estimate's error falls with the
 * number of samples (simulated: rms 2.7 ms from 8, 1.6 ms from 16), and the first minutes
 * after joining are when a page is most likely to start playing.
 */
export const BURST_COUNT = 16;
export const BURST_SPACING_MS = 120;
export const STEADY_INTERVAL_MS = 2000;
/** A pong for a ping older than this is ignored (its sample would be meaningless). */
export const MAX_SAMPLE_AGE_MS = 10_000;

/** The offsets every sample allows: each one's offset ± rtt / 2, intersected. */
export function bounds(samples) {
  let lower = -Infinity;
  let upper = Infinity;
  for (const s of samples) {
    lower = Math.max(lower, s.offset - s.rtt / 2);
    upper = Math.min(upper, s.offset + s.rtt / 2);
  }
  return { lower, upper };
}

function median(sortedValues) {
  const n = sortedValues.length;
  if (n === 0) return NaN;
  const mid = n >> 1;
  return n % 2 ? sortedValues[mid] : (sortedValues[mid - 1] + sortedValues[mid]) / 2;
}

/** Delay before the next ping, given how many have been sent on this connection. */
export function pingDelayMs(sentSoFar) {
  return sentSoFar < BURST_COUNT ? BURST_SPACING_MS : STEADY_INTERVAL_MS;
}

/** Computes one sample, or null when the four timestamps cannot come from a real exchange. */
export function sampleFromPong(t0, t1, t2, t3) {
  if (![t0, t1, t2, t3].every(Number.isFinite)) return null;
  const rtt = (t3 - t0) - (t2 - t1);
  // Negative round trips or a server that "sent before it received" mean garbage input.
  if (t3 < t0 || t2 < t1 || rtt < 0) return null;
  return { offset: ((t1 - t0) + (t2 - t3)) / 2, rtt, at: t3 };
}

export class ClockSync {
  /**
   * @param {object} [options]
   * @param {() => number} [options.now] monotonic client clock in ms (performance.now)
   * @param {number} [options.windowSize] how many recent samples to keep
   */
  constructor({ now = () => performance.now(), windowSize = DEFAULT_WINDOW } = {}) {
    this.now = now;
    this.windowSize = windowSize;
    this.samples = [];
    this.offsetMs = null;
    this.rttMs = null;
  }

  get synced() {
    return this.offsetMs !== null;
  }

  /** Builds the ping message to send now. */
  makePing() {
    return { type: 'ping', t0: this.now() };
  }

  /**
   * Feeds a pong; returns the accepted sample or null if it was rejected.
   * `t3` defaults to now; tests pass it explicitly.
   */
  onPong(pong, t3 = this.now()) {
    if (!pong || typeof pong !== 'object') return null;
    const { t0, t1, t2 } = pong;
    // A pong for a ping from a previous page clock epoch or far in the past is useless.
    if (!Number.isFinite(t0) || t3 - t0 > MAX_SAMPLE_AGE_MS) return null;
    const sample = sampleFromPong(t0, t1, t2, t3);
    if (!sample) return null;
    this.samples.push(sample);
    if (this.samples.length > this.windowSize) this.samples.shift();
    this.recompute();
    return sample;
  }

  recompute() {
    let { lower, upper } = bounds(this.samples);
    while (lower > upper) {
      // The clocks moved: the oldest samples describe a relation that no longer holds.
      this.samples.shift();
      ({ lower, upper } = bounds(this.samples));
    }
    this.offsetMs = (lower + upper) / 2;
    // Reported rtt is the median of the whole window: it tells the server how slow
    // this member typically is (it schedules start times from it), not the best case.
    this.rttMs = median(this.samples.map((s) => s.rtt).sort((a, b) => a - b));
  }

  /** Server time (ms since epoch) at client monotonic time `clientMs` (default: now). */
  serverTime(clientMs = this.now()) {
    return this.offsetMs === null ? null : clientMs + this.offsetMs;
  }

  /** Client monotonic time at which the server clock reads `serverMs`. */
  clientTime(serverMs) {
    return this.offsetMs === null ? null : serverMs - this.offsetMs;
  }

  /**
   * Starts measuring afresh, after reconnecting to a (possibly restarted) server whose
   * clock may be set a little differently. The old estimate stands until the first new
   * sample replaces it, so a playing video keeps its course meanwhile.
   */
  reset() {
    this.samples = [];
  }
}
