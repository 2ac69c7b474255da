// Figures of one measured start, shared by the sync tests: the inter-page spread over a
// window from the anchor, and each page's start error against that anchor.

import { interpolatePosition, percentile } from './harness.js';

/**
 * The start error is the page's mean position error against the room clock over this part
 * of the window (ms after the anchor): late enough that the start itself is over, early
 * enough that the rate controller has not yet corrected a miss. A page whose media started
 * moving d ms before the anchor shows +d (ahead), one that started late shows -d.
 */
export const START_ERROR_FROM_MS = 60;
export const START_ERROR_TO_MS = 360;

/**
 * Spread between pages (max - min position, ms) on a `gridMs` grid over
 * [startReal, startReal + windowMs], each page's error from the room clock, and its start error.
 * `samplesByPage` are the harness sampler's rows ([real ms, position s, ...]).
 */
export function analyseStart(label, samplesByPage, playback, serverMinusReal, startReal, { windowMs = 6000, gridMs = 10 } = {}) {
  const spreads = [];
  const settled = []; // the second half of the window, once start-up transients are over
  const errors = samplesByPage.map(() => []);
  const startErrors = samplesByPage.map(() => []);
  // Each page's clock estimate against the host's over the window (sampler rows carry the
  // page's server-time estimate beside the real time): what the page believes, not what it plays.
  const clockErrors = samplesByPage.map((samples) => samples
    .filter((r) => r[0] >= startReal && r[0] <= startReal + windowMs && Number.isFinite(r[3]))
    .map((r) => r[3] - r[0] - serverMinusReal));
  const cursors = samplesByPage.map(() => ({ value: 0 }));
  for (let t = startReal; t <= startReal + windowMs; t += gridMs) {
    const values = samplesByPage.map((samples, i) => interpolatePosition(samples, t, cursors[i]));
    const expected = playback.position + (Math.max(0, t + serverMinusReal - playback.anchor) / 1000) * playback.rate;
    values.forEach((v, i) => {
      if (v === null) return;
      errors[i].push((v - expected) * 1000);
      if (t - startReal >= START_ERROR_FROM_MS && t - startReal <= START_ERROR_TO_MS) startErrors[i].push((v - expected) * 1000);
    });
    if (values.some((v) => v === null)) continue;
    spreads.push((Math.max(...values) - Math.min(...values)) * 1000);
    if (t >= startReal + windowMs / 2) settled.push(spreads.at(-1));
    if (process.env.WT_SYNC_TRACE && Math.round(t - startReal) % 250 < gridMs) {
      console.log(`# trace ${label} +${Math.round(t - startReal)} ms: ${values.map((v) => ((v - expected) * 1000).toFixed(1)).join('  ')}`);
    }
  }
  // WT_SYNC_RAW=1 prints every sample around the start (ms from the anchor: error vs the
  // room clock / the page's own drift reading), to see how each page got moving.
  if (process.env.WT_SYNC_RAW) {
    samplesByPage.forEach((samples, i) => {
      const rows = samples.filter((r) => r[0] >= startReal - 120 && r[0] <= startReal + 900 && r[1] !== null).map((r) => {
        const expected = playback.position + (Math.max(0, r[0] + serverMinusReal - playback.anchor) / 1000) * playback.rate;
        return `${Math.round(r[0] - startReal)}:${((r[1] - expected) * 1000).toFixed(0)}/${r[4] === null ? '-' : Math.round(r[4])}`;
      });
      console.log(`# raw ${label} page ${i}: ${rows.join(' ')}`);
    });
  }
  spreads.sort((a, b) => a - b);
  settled.sort((a, b) => a - b);
  // How far each page's media moved over the window (s): proves they were all playing.
  const advanced = samplesByPage.map((samples) => {
    const cursor = { value: 0 };
    const from = interpolatePosition(samples, startReal + 50, cursor);
    const to = interpolatePosition(samples, startReal + windowMs, cursor);
    return from === null || to === null ? NaN : Number((to - from + 0.05).toFixed(3));
  });
  const mean = (xs) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
  return {
    advanced,
    label,
    points: spreads.length,
    p50: percentile(spreads, 50),
    p95: percentile(spreads, 95),
    max: spreads.at(-1) ?? NaN,
    settled: { p50: percentile(settled, 50), p95: percentile(settled, 95), max: settled.at(-1) ?? NaN },
    perPage: errors.map((e, i) => {
      const abs = e.map(Math.abs).sort((a, b) => a - b);
      return { meanError: mean(e), p95Abs: percentile(abs, 95), startError: mean(startErrors[i]), clockError: mean(clockErrors[i]) };
    }),
  };
}

/** Prints the figures of `analyseStart`. */
export function reportStart(stats, names, windowMs) {
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  console.log(`# sync ${stats.label}: inter-page spread over ${windowMs / 1000} s (${stats.points} points): p50 ${f(stats.p50)} ms, p95 ${f(stats.p95)} ms, max ${f(stats.max)} ms`);
  console.log(`#   last ${windowMs / 2000} s only (settled): p50 ${f(stats.settled.p50)} ms, p95 ${f(stats.settled.p95)} ms, max ${f(stats.settled.max)} ms`);
  stats.perPage.forEach((p, i) => console.log(`#   ${names[i]}: start error ${f(p.startError)} ms (+ = early), error vs room clock mean ${f(p.meanError)} ms, p95 |error| ${f(p.p95Abs)} ms; its clock estimate ${f(p.clockError)} ms from the host's`));
}
