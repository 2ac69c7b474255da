// With a real browser's autoplay rule (media with sound needs a click first), a page
// joining a playing room shows "click to join playback" instead of drifting silently,
// and one click brings it into sync.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createRoomViaLanding, launchBrowser, openRoomPage, startServer, stateOf, waitPlayingNear, waitState, withCleanup,
} from './harness.js';

test('blocked autoplay shows the join overlay; a click joins playback in sync', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const server = await startServer();
  defer(() => server.stop());
  const browser = await launchBrowser({ autoplayPolicy: 'document-user-activation-required' });
  defer(() => browser.close());

  // The host clicks through the landing page, so its own page may play.
  const host = await createRoomViaLanding(browser, server.url);
  await waitState(host, (s) => s.playerReady);
  await host.locator('#play-button').click();
  await waitPlayingNear(host, { toleranceMs: 150 });

  // A returning viewer: name remembered, so the page joins without any interaction.
  const invite = await host.locator('#invite-link').inputValue();
  const eve = await openRoomPage(browser, invite, 'Eve', { rememberedName: 'Eve' });
  // Nothing may touch Eve's page until her player has tried to start: Playwright's
  // evaluations and locator polls count as user gestures and would lift the block.
  // So watch from the host's side: Eve's own status reports show her falling behind.
  await waitState(host, (s) => s.participants.some((p) => p.name === 'Eve' && p.drift_ms !== null && p.drift_ms < -1000));
  const overlay = eve.locator('#autoplay-overlay');
  await overlay.waitFor({ state: 'visible' });
  assert.match(await overlay.textContent(), /Click to join playback/);
  const blocked = await stateOf(eve);
  assert.equal(blocked.autoplayBlocked, true);
  assert.equal(blocked.playerPaused, true, 'the browser kept it paused');
  await eve.locator('#sync-text', { hasText: 'Waiting for your click' }).waitFor();

  await overlay.click();
  await waitPlayingNear(eve, { toleranceMs: 100 });
  await overlay.waitFor({ state: 'hidden' });
  assert.equal((await stateOf(eve)).autoplayBlocked, false);
  for (const page of [host, eve]) assert.deepEqual(page.problems, []);
}));
