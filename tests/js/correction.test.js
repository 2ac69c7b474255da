import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CorrectionController, HTML5_TUNING, YOUTUBE_TUNING } from '../../frontend/js/correction.js';

test('inside the dead band the room rate is kept', () => {
  const c = new CorrectionController(HTML5_TUNING);
  for (const drift of [0, 1, -(HTML5_TUNING.deadBandMs - 1), HTML5_TUNING.deadBandMs - 0.5]) {
    c.reset();
    const d = c.update(drift, 1.5, 0);
    assert.equal(d.action, 'rate');
    assert.equal(d.rate, 1.5);
  }
});

test('small drift nudges the rate proportionally and in the right direction', () => {
  const ahead = new CorrectionController(HTML5_TUNING).update(50, 1, 0);
  const behind = new CorrectionController(HTML5_TUNING).update(-50, 1, 0);
  const further = new CorrectionController(HTML5_TUNING).update(-80, 1, 0);
  assert.ok(ahead.rate < 1, 'ahead slows down');
  assert.ok(behind.rate > 1, 'behind speeds up');
  assert.ok(further.rate > behind.rate, 'larger drift, larger nudge');
  const expected = 1 - HTML5_TUNING.gainPerSecond * ((50 - HTML5_TUNING.settleMs) / 1000);
  assert.ok(Math.abs(ahead.rate - expected) < 1e-9, `50 ms → ${((1 - expected) * 100).toFixed(2)} % (got ${ahead.rate})`);
});

test('the nudge is bounded and scales with the room rate', () => {
  const d = new CorrectionController(HTML5_TUNING).update(-900, 2, 0);
  assert.equal(d.action, 'rate');
  assert.ok(Math.abs(d.rate - 2 * (1 + HTML5_TUNING.maxNudge)) < 1e-9);
});

test('hysteresis: a small step on engaging, then a nudge that fades out as the gap closes', () => {
  const c = new CorrectionController({ ...HTML5_TUNING, smoothing: 1, minRateStep: 0 });
  assert.equal(c.update(HTML5_TUNING.deadBandMs - 1, 1, 0).rate, 1, 'idle inside the dead band');
  const engaged = c.update(HTML5_TUNING.deadBandMs + 1, 1, 0).rate;
  assert.ok(1 - engaged > 0 && 1 - engaged < 0.01, `engaging changes the rate by ${1 - engaged}`);
  const closing = c.update(5, 1, 0).rate;
  assert.ok(closing < 1 && closing > engaged, 'still correcting inside the dead band, more gently');
  assert.equal(c.update(HTML5_TUNING.settleMs - 1, 1, 0).rate, 1, 'settled');
  assert.equal(c.update(HTML5_TUNING.deadBandMs - 2, 1, 0).rate, 1, 'and idle again until the dead band is left');
});

test('a simulated lagging player converges smoothly without seeking', () => {
  const c = new CorrectionController(HTML5_TUNING);
  let drift = -300; // ms behind
  let previousRate = 1;
  const tickMs = 250;
  let maxStep = 0;
  for (let t = 0; t < 20_000; t += tickMs) {
    const d = c.update(drift, 1, t);
    assert.equal(d.action, 'rate');
    maxStep = Math.max(maxStep, Math.abs(d.rate - previousRate));
    previousRate = d.rate;
    drift += (d.rate - 1) * tickMs; // running faster gains media time
  }
  assert.ok(Math.abs(drift) <= HTML5_TUNING.settleMs + 1, `settled at ${drift} ms`);
  assert.ok(maxStep <= HTML5_TUNING.maxNudge + 1e-9, `largest single rate change ${maxStep}`);
  assert.ok(drift < 5, 'no large overshoot past zero');
});

test('large drift seeks, aiming ahead by the learned seek latency', () => {
  const c = new CorrectionController(HTML5_TUNING);
  c.noteSeekLatency(160);
  const d = c.update(-2500, 1, 10_000);
  assert.equal(d.action, 'seek');
  assert.ok(d.leadMs > HTML5_TUNING.initialSeekLatencyMs && d.leadMs < 160);
  // Within the cooldown, a moderate drift is left to the rate nudge...
  assert.equal(c.update(-1200, 1, 11_000).action, 'rate');
  // ...but a huge one (a different scene) is fixed at once.
  assert.equal(c.update(-6000, 1, 11_500).action, 'seek');
});

test('coarse-rate players only seek, with a wider threshold and a cooldown', () => {
  const c = new CorrectionController(YOUTUBE_TUNING);
  for (const drift of [-100, 300, -600]) {
    c.reset();
    const d = c.update(drift, 1.25, 0);
    assert.equal(d.action, 'rate');
    assert.equal(d.rate, 1.25, 'never a fine rate');
  }
  c.reset();
  assert.equal(c.update(-900, 1, 0).action, 'seek');
  c.update(-900, 1, 1000);
  assert.equal(c.update(-900, 1, 2000).action, 'rate', 'cooldown');
  assert.equal(c.update(-900, 1, 6000).action, 'seek');
});

test('garbage drift input is harmless', () => {
  const c = new CorrectionController(HTML5_TUNING);
  assert.deepEqual(c.update(NaN, 1, 0), { action: 'rate', rate: 1, driftMs: 0 });
  c.noteSeekLatency(-5);
  c.noteSeekLatency(NaN);
  assert.equal(c.seekLatencyMs, HTML5_TUNING.initialSeekLatencyMs);
});
