// Faults found by the second security review (issue 14) that only a real browser shows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT, WAIT_MS, createRoomViaLanding, launchBrowser, openRoomPage, startRoom, startServer, stateOf, waitJoined,
  waitPlayingNear, waitState, withCleanup,
} from './harness.js';

test('a library file whose name needs escaping is listed, loads and plays (item 8)', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wt-e2e-media-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  await copyFile(path.join(REPO_ROOT, 'media', 'clip-b-30s.mp4'), path.join(dir, 'my clip #1.mp4'));
  const server = await startServer([], { mediaDir: dir });
  defer(() => server.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());

  const host = await createRoomViaLanding(browser, server.url, { video: '/media/my%20clip%20%231.mp4' });
  const invite = await host.locator('#invite-link').inputValue();
  const bob = await openRoomPage(browser, invite, 'Bob');
  for (const page of [host, bob]) {
    await waitState(page, (s) => s.playerReady && s.playback.video.url === '/media/my%20clip%20%231.mp4');
    await page.locator('#stage-message').waitFor({ state: 'hidden', timeout: WAIT_MS });
  }
  await host.locator('#play-button').click();
  for (const page of [host, bob]) await waitPlayingNear(page, { toleranceMs: 150 });
  assert.match(await host.locator('#activity').textContent(), /played/);
  for (const page of [host, bob]) assert.deepEqual(page.problems, [], 'no page errors, no CSP violations');
}));

test('a host role handed on stays handed on when the creator reloads (item 11)', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const { host: ann, guests: [bob] } = await startRoom(defer);
  const bobId = (await stateOf(bob)).me.id;
  const annId = (await stateOf(ann)).me.id;
  await waitState(ann, (s) => s.participants.length === 2);
  await ann.locator(`#people-list .person[data-id="${bobId}"] .make-host`).click();
  for (const page of [ann, bob]) await waitState(page, (s, id) => s.hostId === id, bobId);

  await ann.reload();
  await waitJoined(ann);
  assert.equal((await stateOf(ann)).me.id, annId, 'Ann resumed as herself');
  // A chat from Bob, seen by Ann, comes after anything her join made the room send.
  await bob.locator('#chat-input').fill('still mine?');
  await bob.locator('#chat-send').click();
  await waitState(ann, (s) => s.chat >= 1);
  for (const page of [ann, bob]) {
    const s = await stateOf(page);
    assert.equal(s.hostId, bobId, 'Bob is still host after Ann reloaded');
  }
  await bob.locator('#people-list .person', { hasText: 'Bob' }).locator('.host-badge').waitFor({ timeout: WAIT_MS });
  for (const page of [ann, bob]) assert.deepEqual(page.problems, []);
}));
