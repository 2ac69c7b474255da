// The server restarts under open pages (issue 11): with its rooms stored, every page comes
// back as itself, playing, in sync, with the host badge where it was; with its room gone,
// the page says so once and stops trying.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  WAIT_MS, createRoomViaLanding, launchBrowser, openRoomPage, startServer, stateOf, waitPlayingNear, waitState, withCleanup,
} from './harness.js';

test('pages keep playing through a server restart and come back as themselves, in sync', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'wt-e2e-restart-'));
  defer(() => rm(dataDir, { recursive: true, force: true }));
  let server = await startServer([], { dataDir });
  defer(() => server.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());

  const host = await createRoomViaLanding(browser, server.url);
  const invite = await host.locator('#invite-link').inputValue();
  const bob = await openRoomPage(browser, invite, 'Bob');
  await waitState(host, (s) => s.playerReady && s.participants.length === 2);
  await host.locator('#play-button').click();
  for (const page of [host, bob]) await waitPlayingNear(page, { toleranceMs: 100 });
  const before = await Promise.all([host, bob].map(stateOf));

  // SIGTERM: the server stores its rooms, tells the pages, closes their sockets.
  const port = server.port;
  await server.stop();
  for (const page of [host, bob]) await waitState(page, (s) => s.connection !== 'open');
  // The pages keep playing on their own clock while the server is away.
  for (const page of [host, bob]) assert.equal((await stateOf(page)).playerPaused, false, 'still playing');
  server = await startServer([], { dataDir, port });

  for (const page of [host, bob]) await waitState(page, (s) => s.connection === 'open', null, WAIT_MS);
  const after = await Promise.all([host, bob].map(stateOf));
  for (const [i, page] of [host, bob].entries()) {
    assert.equal(after[i].me.id, before[i].me.id, 'resumed as the same participant');
    assert.equal(after[i].me.name, before[i].me.name);
    assert.equal(after[i].hostId, before[0].me.id, 'the host is still the host');
    assert.equal(after[i].playback.paused, false, 'the room is still playing');
    await waitPlayingNear(page, { toleranceMs: 100 });
    await page.locator('#people-list .person', { hasText: 'Ann' }).locator('.host-badge').waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator('#room-error').isHidden(), true);
  }
  // Nobody left and came back: both are there, connected, under the same ids.
  await waitState(host, (s, id) => s.participants.length === 2 && s.participants.every((p) => p.connected) && s.participants.some((p) => p.id === id), before[1].me.id);
  for (const page of [host, bob]) assert.deepEqual(page.problems, []);
}));

test('a page whose room is gone after a restart says so and stops retrying', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  // Rooms in memory: the restarted server does not have the room any more.
  let server = await startServer();
  defer(() => server.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());
  const host = await createRoomViaLanding(browser, server.url);
  await waitState(host, (s) => s.playerReady);

  const port = server.port;
  await server.stop();
  await waitState(host, (s) => s.connection !== 'open');
  server = await startServer([], { port });

  await host.locator('#room-error-title', { hasText: 'This room no longer exists' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await host.locator('#room-main').isHidden(), true);
  assert.equal(await host.locator('#room-error a[href="/"]').isVisible(), true, 'a way back to the start page');
  const gone = await stateOf(host);
  assert.equal(gone.connection, 'gone');
  assert.equal(gone.retrying, false, 'no retry is scheduled or being decided');
  assert.equal(gone.playerReady, false, 'the player went with the room');
  assert.deepEqual(host.problems, []);
}));
