import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EXACT_MARGIN_MS, clearExactTimeout, setExactTimeout } from '../../frontend/js/exact-timer.js';

const firedAt = (ms) => new Promise((resolve) => {
  const at = performance.now() + ms;
  setExactTimeout(() => resolve({ at, now: performance.now() }), ms);
});

test('an exact timeout never fires before its moment, past the coarse margin or inside it', async () => {
  for (const ms of [0, 3, EXACT_MARGIN_MS / 2, EXACT_MARGIN_MS + 5, 40]) {
    const { at, now } = await firedAt(ms);
    assert.ok(now >= at, `${ms} ms: fired ${(at - now).toFixed(3)} ms early`);
  }
});

test('a cleared exact timeout does not fire, in either phase of its wait', async () => {
  let fired = 0;
  const coarse = setExactTimeout(() => { fired += 1; }, EXACT_MARGIN_MS + 30);
  const yielding = setExactTimeout(() => { fired += 1; }, EXACT_MARGIN_MS / 2);
  clearExactTimeout(coarse);
  clearExactTimeout(yielding);
  clearExactTimeout(yielding); // twice is harmless
  // A later timer fires after both would have: the event that ends the wait.
  await firedAt(EXACT_MARGIN_MS + 40);
  assert.equal(fired, 0);
});
