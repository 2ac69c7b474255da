import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIT_TOLERANCE_MS, LATE_PLAN_MAX_MS, MIN_RUN_MS, PLAN_SEEK_MARGIN_MS, StartGrid } from '../../frontend/js/start-grid.js';

// The test machine's output: 1024 frames at 44.1 kHz, motion 69.5 ms after the callback.
const PERIOD = 1024 / 44.1;
const DELAY = 69.5;
const PHASE = 3.7;
/** The callback that takes up a play() at `at` on that output (at least `minMs` later). */
const callbackAfter = (at, minMs = 2) => PHASE + Math.ceil((at + minMs - PHASE) / PERIOD) * PERIOD;

/** A grid taught by starts at the given play() times, as the engine teaches it. */
function taught(playTimes, { minMs = 2, run = PERIOD - 1.5 } = {}) {
  const grid = new StartGrid();
  for (const playAt of playTimes) {
    const at = callbackAfter(playAt, minMs);
    grid.noteCallback(at, run, playAt);
    grid.noteMotion(at + DELAY, at);
  }
  return grid;
}

test('the callback period is solved from starts\' callbacks and first runs', () => {
  const grid = taught([1000]);
  assert.equal(grid.periodMs, null, 'one callback fits many periods');
  assert.equal(grid.ready, false);
  const two = taught([1000, 3711.3, 5230.8]);
  assert.ok(Math.abs(two.periodMs - PERIOD) < 1e-9, `period ${two.periodMs}`);
  assert.equal(two.motionDelayMs, DELAY);
  assert.ok(two.ready);
});

test('a planned start moves exactly at a grid instant at or after the anchor, play() safely between two callbacks', () => {
  for (const minMs of [0.5, 2, 6, PERIOD / 2 - 0.5]) {
    const grid = taught([1000, 3711.3, 5230.8, 6100.1], { minMs });
    for (let anchor = 9000; anchor < 9000 + 3 * PERIOD; anchor += 1.37) {
      const plan = grid.plan(anchor, anchor - 160);
      assert.ok(plan, 'a plan with 160 ms to go');
      assert.ok(plan.aheadMs >= 0 && plan.aheadMs < PERIOD, `ahead ${plan.aheadMs}`);
      assert.ok(Math.abs(plan.motionAt - anchor - plan.aheadMs) < 1e-9);
      // Where the simulated output really takes the start up:
      const motion = callbackAfter(plan.playAt, minMs) + DELAY;
      assert.ok(Math.abs(motion - plan.motionAt) < 1e-6, `minMs ${minMs}, anchor ${anchor}: moved at ${motion}, planned ${plan.motionAt}`);
    }
  }
});

test('a plan too close for its instant takes a later one, standing further ahead, up to a limit', () => {
  const grid = taught([1000, 3711.3, 5230.8]);
  const anchor = 9000;
  const plan = grid.plan(anchor, anchor - 200);
  assert.ok(plan && plan.aheadMs < PERIOD);
  // Asked when that instant's play() can no longer be made with time to move the media first:
  const later = grid.plan(anchor, plan.playAt - PLAN_SEEK_MARGIN_MS + 1);
  assert.ok(later, 'a later instant');
  assert.ok(Math.abs(later.motionAt - plan.motionAt - PERIOD) < 1e-9, 'one period later');
  assert.ok(Math.abs(later.aheadMs - plan.aheadMs - PERIOD) < 1e-9, 'standing that much further ahead');
  assert.ok(later.playAt - (plan.playAt - PLAN_SEEK_MARGIN_MS + 1) >= PLAN_SEEK_MARGIN_MS);
  // No instant within LATE_PLAN_MAX_MS of the anchor is left: no plan.
  const last = grid.plan(anchor, anchor - 10);
  assert.equal(last, null, `nothing within ${LATE_PLAN_MAX_MS} ms: ${JSON.stringify(last)}`);
  for (let now = anchor - 200; now < anchor; now += 0.7) {
    const p = grid.plan(anchor, now);
    if (p) assert.ok(p.aheadMs <= LATE_PLAN_MAX_MS && p.playAt - now >= PLAN_SEEK_MARGIN_MS);
  }
});

test('a callback off a phase resting on one callback takes the phase from it; two in a row drop the period too', () => {
  const grid = taught([1000, 3711.3, 5230.8]);
  grid.dropPhase(); // a new element
  assert.equal(grid.noteCallback(callbackAfter(6000) + 5, PERIOD, 6000), true, 'the new element\'s first callback gives the phase');
  assert.equal(grid.confirmed, false);
  const moved = callbackAfter(8000) + 13;
  assert.equal(grid.noteCallback(moved, PERIOD, 8000), false);
  assert.ok(grid.ready, 'period and latency are kept');
  assert.equal(grid.callbacks.length, 1);
  assert.ok(Math.abs(grid.offGridMs(moved + 40 * PERIOD)) < 1e-6, 'the grid now runs through that callback');
  assert.equal(grid.noteCallback(moved + 40 * PERIOD + 9, PERIOD, 8000), false);
  assert.equal(grid.periodMs, null, 'a second one off the grid: the period was wrong, learned again');
  assert.equal(grid.resets, 1);
  // Readings a little off stay on the grid and move it by a fraction.
  const kept = taught([1000, 3711.3, 5230.8]);
  assert.equal(kept.noteCallback(callbackAfter(8000) + 0.8, PERIOD, 8000), true);
  assert.ok(Math.abs(kept.offGridMs(callbackAfter(9000))) < 0.3);
});

test('a confirmed phase is not moved by one misread callback, but by two that agree', () => {
  const grid = taught([1000, 3711.3, 5230.8]);
  assert.equal(grid.confirmed, true);
  // One read 9 ms late (a busy page's late look), then one on the grid: the odd one is forgotten.
  assert.equal(grid.noteCallback(callbackAfter(8000) + 9, PERIOD, 8000), false);
  assert.ok(Math.abs(grid.offGridMs(callbackAfter(8500))) < 1e-6, 'the phase stays');
  assert.equal(grid.noteCallback(callbackAfter(9000), PERIOD, 9000), true);
  assert.equal(grid.callbacks.length, 4, 'the misread one was not kept');
  assert.ok(Math.abs(grid.offGridMs(callbackAfter(9500))) < 1e-6);
  // Two in a row on a grid of their own, of the same period: the output's phase moved.
  const moved = (t) => callbackAfter(t) + 8;
  assert.equal(grid.noteCallback(moved(10000), PERIOD, 10000), false);
  assert.equal(grid.noteCallback(moved(11000), PERIOD, 11000), false);
  assert.equal(grid.callbacks.length, 2, 'the phase is taken from those two');
  assert.ok(Math.abs(grid.offGridMs(moved(12000))) < 1e-6, 'the grid now runs through them');
  assert.ok(Math.abs(grid.periodMs - PERIOD) < 1e-9, 'the period stands');
  assert.equal(grid.resets, 0);
  // Two in a row that agree neither with the grid nor with each other: the period is wrong.
  assert.equal(grid.noteCallback(moved(13000) + 6, PERIOD, 13000), false);
  assert.equal(grid.noteCallback(moved(14000) + 13, PERIOD, 14000), false);
  assert.equal(grid.resets, 1);
  assert.equal(grid.periodMs, null);
});

test('a dropped phase (a new element, an idle output) is learned again from the next start alone', () => {
  const grid = taught([1000, 3711.3, 5230.8]);
  grid.dropPhase();
  assert.equal(grid.ready, false);
  assert.equal(grid.plan(9000, 8800), null);
  const at = callbackAfter(9500) + 5.5; // the new output runs on another phase
  assert.equal(grid.noteCallback(at, PERIOD - 2, 9500), true);
  assert.ok(grid.ready);
  const plan = grid.plan(12000, 11800);
  const n = (plan.callbackAt - at) / PERIOD;
  assert.ok(Math.abs(n - Math.round(n)) * PERIOD < 1e-6, 'planned on the new phase');
});

test('a first change that is no callback (a resumed element jumps at once) is not learned from', () => {
  const grid = new StartGrid();
  assert.equal(grid.noteCallback(1003, MIN_RUN_MS - 1, 1000), false);
  assert.equal(grid.callbacks.length, 0);
});

test('a plan whose play() moment passed is on time only until its callback\'s cut-off', () => {
  const grid = taught([1000, 3711.3, 5230.8]);
  const plan = grid.plan(9000, 8800);
  assert.ok(grid.stillOnTime(plan, plan.playAt + 5), 'a few ms late is still taken up by the planned callback');
  assert.equal(grid.stillOnTime(plan, plan.callbackAt - grid.playToCallbackMs), false);
});

test('one misread callback does not keep the period unknown', () => {
  const grid = new StartGrid();
  grid.noteCallback(callbackAfter(1000) + 9, PERIOD - 1, 1000); // read 9 ms late
  for (const at of [3711.3, 5230.8]) grid.noteCallback(callbackAfter(at), PERIOD - 1, at);
  assert.ok(Math.abs(grid.periodMs - PERIOD) < 1e-9, `solved from the others: ${grid.periodMs}`);
});

test('no period shorter than the longest run seen is taken', () => {
  // Two callbacks six periods apart: 20 ms (882 frames at 44.1 kHz) fits them too, but a run
  // of 22 ms cannot come from a 20 ms buffer.
  const grid = new StartGrid();
  grid.noteCallback(1000, 21.9, 990);
  grid.noteCallback(1000 + 6 * PERIOD, 22.1, 1000 + 6 * PERIOD - 7);
  assert.ok(Math.abs(grid.periodMs - PERIOD) < 1e-9, `period ${grid.periodMs}`);
  assert.ok(Math.abs(((6 * PERIOD) / 20 - Math.round((6 * PERIOD) / 20)) * 20) <= FIT_TOLERANCE_MS, '20 ms fits these callbacks too');
});
