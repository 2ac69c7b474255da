// A dropped connection is re-established with backoff and the resume token: the page
// keeps its identity, nobody sees it leave, and playback stays in sync.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createRoomViaLanding, launchBrowser, openRoomPage, startDelayProxy, startServer, stateOf, waitPlayingNear, waitState, withCleanup,
  waitInPage,
} from './harness.js';

test('a dropped socket reconnects as the same participant and resyncs', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const server = await startServer();
  defer(() => server.stop());
  const proxy = await startDelayProxy(server.port, { delayMs: 5, jitterMs: 2 });
  defer(() => proxy.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());

  const host = await createRoomViaLanding(browser, server.url);
  const invite = new URL(await host.locator('#invite-link').inputValue());
  const bob = await openRoomPage(browser, `http://127.0.0.1:${proxy.port}${invite.pathname}`, 'Bob');
  await waitState(host, (s) => s.playerReady && s.participants.length === 2);
  await host.locator('#play-button').click();
  await waitPlayingNear(bob, { toleranceMs: 100 });
  const before = await stateOf(bob);

  proxy.dropConnections();
  // The first retry comes after 250-500 ms: time enough to see the page say so.
  await waitInPage(bob, () => window.__wt.state().connection === 'reconnecting'
    && document.querySelector('#connection').textContent.startsWith('Reconnecting'), null, { interval: 20 });
  // While the socket is gone, the host changes playback; Bob must pick it up on return.
  await host.locator('#seek-bar').fill('30');
  await waitState(bob, (s) => s.connection === 'open');
  await waitState(bob, (s) => Math.abs(s.playback.position - 30) < 0.01);
  await waitPlayingNear(bob, { toleranceMs: 100 });

  const after = await stateOf(bob);
  assert.equal(after.me.id, before.me.id, 'resumed as the same participant');
  // Presence updates reach the host at most once a second: wait for Bob to show as back.
  await waitState(host, (s, id) => s.participants.length === 2 && s.participants.some((p) => p.id === id && p.connected), before.me.id);
  for (const page of [host, bob]) assert.deepEqual(page.problems, []);
}));
