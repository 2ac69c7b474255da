// Decides how a player corrects its drift from the authoritative position.
//
// drift = actual - expected (ms); positive means this player is ahead.
//
// Players with a continuous playbackRate (HTML5 <video>):
//   idle while |drift| <= deadBand: play at the room rate (no needless wobble);
//   once |drift| > deadBand, correct until |drift| < settle (hysteresis, so the
//   player does not hover at the dead-band edge):
//       rate = roomRate * (1 - sign(drift) * gain * (|drift| - settle))
//   clamped to ±maxNudge. The nudge shrinks smoothly to zero as the gap closes
//   instead of switching on and off; the only step is the small one on engaging
//   (gain * (deadBand - settle) = 0.28 %).
//   |drift| >= seekAt: seek to the expected position plus the measured seek
//   latency, then let the rate nudge take the remainder.
// Players with coarse rates only (YouTube): seek when the smoothed drift exceeds a wider
// threshold, never more often than the cooldown, since every seek there costs a rebuffer.

export const HTML5_TUNING = Object.freeze({
  fineRate: true,
  // 5 ms: with pitch-free nudges (players/html5.js) engaging the rate costs no clock step,
  // so a page is held closer; currentTime's read noise (about 1 ms) stays well inside.
  deadBandMs: 5,
  /** Correction stops once the drift is this small. */
  settleMs: 1.5,
  /** Relative rate change per second of drift: 50 ms off → 3.8 %, a time constant of 1.25 s. */
  gainPerSecond: 0.8,
  maxNudge: 0.08,
  seekThresholdMs: 1000,
  /** After a seek, wait this long before another seek for moderate drift. */
  seekCooldownMs: 3000,
  /** Drift so large (a different scene) that it is fixed even inside the cooldown. */
  hardSeekMs: 4000,
  /** Weight of a new drift reading in the exponential moving average. */
  smoothing: 0.5,
  /** Rate changes smaller than this are not applied (avoid touching the element every tick). */
  minRateStep: 0.002,
  initialSeekLatencyMs: 60,
});

export const YOUTUBE_TUNING = Object.freeze({
  fineRate: false,
  deadBandMs: 0,
  settleMs: 0,
  gainPerSecond: 0,
  maxNudge: 0,
  seekThresholdMs: 750,
  seekCooldownMs: 5000,
  hardSeekMs: 4000,
  smoothing: 0.3,
  minRateStep: 0,
  initialSeekLatencyMs: 400,
});

export class CorrectionController {
  constructor(tuning = HTML5_TUNING) {
    this.tuning = tuning;
    this.seekLatencyMs = tuning.initialSeekLatencyMs;
    this.reset();
    this.lastSeekAt = -Infinity;
  }

  /** Forget the drift history (after a seek, a start or a new video). */
  reset() {
    this.filteredDriftMs = null;
    this.nudge = 0;
    this.correcting = false;
  }

  /** Learns how long a seek takes on this player, to aim ahead by that much. */
  noteSeekLatency(ms) {
    if (!Number.isFinite(ms) || ms < 0) return;
    const clamped = Math.min(ms, 2000);
    this.seekLatencyMs = 0.7 * this.seekLatencyMs + 0.3 * clamped;
  }

  /**
   * One control step.
   * @param {number} driftMs   measured drift now
   * @param {number} roomRate  authoritative playback rate
   * @param {number} nowMs     monotonic time of the measurement
   * @returns {{action: 'rate'|'seek', rate: number, driftMs: number, leadMs?: number}}
   */
  update(driftMs, roomRate, nowMs) {
    const t = this.tuning;
    if (!Number.isFinite(driftMs)) return { action: 'rate', rate: roomRate, driftMs: 0 };
    this.filteredDriftMs = this.filteredDriftMs === null
      ? driftMs
      : this.filteredDriftMs + t.smoothing * (driftMs - this.filteredDriftMs);
    const smoothed = this.filteredDriftMs;
    const sinceSeek = nowMs - this.lastSeekAt;
    // Large jumps are judged on the raw reading so they are fixed at once, not after the average catches up.
    const judged = t.fineRate ? driftMs : smoothed;
    const wantsSeek = Math.abs(judged) >= t.seekThresholdMs
      && (sinceSeek >= t.seekCooldownMs || Math.abs(driftMs) >= t.hardSeekMs);
    if (wantsSeek) {
      this.lastSeekAt = nowMs;
      this.reset();
      return { action: 'seek', rate: roomRate, driftMs, leadMs: this.seekLatencyMs };
    }
    if (!t.fineRate) return { action: 'rate', rate: roomRate, driftMs: smoothed };

    const size = Math.abs(smoothed);
    if (size > t.deadBandMs) this.correcting = true;
    else if (size < t.settleMs) this.correcting = false;
    const beyond = this.correcting ? Math.max(0, size - t.settleMs) / 1000 : 0;
    const magnitude = Math.min(t.maxNudge, t.gainPerSecond * beyond);
    const target = -Math.sign(smoothed) * magnitude;
    // Apply only meaningful changes; always allow returning exactly to the room rate.
    if (target === 0 || Math.abs(target - this.nudge) >= t.minRateStep) this.nudge = target;
    return { action: 'rate', rate: roomRate * (1 + this.nudge), driftMs: smoothed };
  }
}
