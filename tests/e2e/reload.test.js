// Reloading a page mid-playback resumes the same identity at the right position.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  WAIT_MS, createRoomViaLanding, launchBrowser, openRoomPage, percentile, spreads, startSamplers, startServer, stateOf,
  stopSamplers, waitJoined, waitPlayingNear, waitState, withCleanup,
  startRoom,
  waitInPage,
} from './harness.js';

test('reload mid-playback resumes position and identity', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const { host, guests: [bob] } = await startRoom(defer);
  await bob.locator('#chat-input').fill('before the reload');
  await bob.locator('#chat-send').click();
  await waitState(host, (s) => s.playerReady && s.participants.length === 2 && s.chat === 1);
  await host.locator('#seek-bar').fill('20');
  await waitState(bob, (s) => s.playback.position === 20);
  await host.locator('#play-button').click();
  for (const page of [host, bob]) await waitPlayingNear(page, { toleranceMs: 100 });

  const before = await stateOf(bob);
  await bob.reload();
  // The name is remembered: no prompt; the resume token brings back the same participant.
  await waitJoined(bob);
  assert.equal(await bob.locator('#name-dialog').isHidden(), true, 'no second name prompt');
  await waitPlayingNear(bob, { toleranceMs: 100 });
  const after = await stateOf(bob);
  assert.equal(after.me.id, before.me.id, 'same participant id after reload');
  assert.equal(after.me.name, 'Bob');
  assert.equal(after.chat, 1, 'chat history is back');
  const position = await bob.evaluate(() => window.__wt.position());
  assert.ok(position > 20, `resumed mid-video, not from the start (at ${position} s)`);

  // The host still sees exactly two people, Bob with the same id.
  await waitState(host, (s, id) => s.participants.length === 2 && s.participants.some((p) => p.id === id && p.connected), before.me.id);

  // And the two pages really play together: measured against the real clock for 2 s.
  const pages = [host, bob];
  await startSamplers(pages);
  const t0 = await host.evaluate(() => window.__sampler.realEpochMs());
  await waitInPage(host, (until) => window.__sampler.realEpochMs() >= until, t0 + 2000);
  const samples = await stopSamplers(pages);
  for (const [i, pageSamples] of samples.entries()) {
    // Both must really be playing during the window, or a zero spread would mean nothing.
    // Not exactly at rate 1: a page whose decoder stalled while the other reloaded (seen on a
    // VM short of CPU) catches up, by its media clock jumping ahead and by the sync engine's
    // rate nudges (up to 8 %). Measured once: 2.519 s in 2.296 s.
    const moving = pageSamples.filter((x) => x[1] !== null);
    const advanced = moving.at(-1)[1] - moving[0][1];
    const elapsed = (moving.at(-1)[0] - moving[0][0]) / 1000;
    assert.ok(Math.abs(advanced - elapsed) < 0.3, `page ${i} advanced ${advanced.toFixed(3)} s in ${elapsed.toFixed(3)} s`);
  }
  const sorted = spreads(samples, t0 + 100, t0 + 1900);
  assert.ok(sorted.length > 100, `enough samples (${sorted.length})`);
  console.log(`# after reload: spread p50 ${percentile(sorted, 50).toFixed(1)} ms, max ${sorted.at(-1).toFixed(1)} ms`);
  assert.ok(percentile(sorted, 50) < 100, 'the reloaded page plays in step with the host');
  for (const page of pages) assert.deepEqual(page.problems, []);
}));
