// Creating, joining, chatting, control rights and host hand-over, in real Chromium.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  WAIT_MS, createRoomViaLanding, launchBrowser, openRoomPage, startServer, stateOf, waitState, withCleanup,
} from './harness.js';

test('create on the landing page, join by invite link, see each other, chat as text', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const server = await startServer();
  defer(() => server.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());

  const host = await createRoomViaLanding(browser, server.url, { name: 'Movie <i>night</i>' });
  await assert.doesNotReject(host.locator('#room-name').filter({ hasText: 'Movie <i>night</i>' }).waitFor(), 'room name shown as text');
  const invite = await host.locator('#invite-link').inputValue();
  assert.match(invite, /^http:\/\/127\.0\.0\.1:\d+\/r\/[0-9a-f-]{36}$/);

  const bob = await openRoomPage(browser, invite, 'Bob');
  const cid = await openRoomPage(browser, invite, 'Cid');

  // Everyone sees all three, with the creator as host.
  for (const page of [host, bob, cid]) {
    await waitState(page, (s) => s.participants.length === 3);
    const names = await page.locator('#people-list .person .name').allTextContents();
    assert.deepEqual([...names].sort(), ['Ann', 'Bob', 'Cid']);
    await page.locator('#people-list .person', { hasText: 'Ann' }).locator('.host-badge').waitFor();
  }
  const hostState = await stateOf(host);
  assert.equal(hostState.hostId, hostState.me.id, 'the creator is host');

  // Chat, including markup that must stay text.
  const attack = '<img src=x onerror=alert(1)>';
  await bob.locator('#chat-input').fill(attack);
  await bob.locator('#chat-send').click();
  await host.locator('#chat-input').fill('hello from Ann');
  await host.locator('#chat-input').press('Enter');
  for (const page of [host, bob, cid]) {
    const texts = page.locator('#chat-log .chat-text');
    await texts.filter({ hasText: 'hello from Ann' }).waitFor({ timeout: WAIT_MS });
    assert.deepEqual(await texts.allTextContents(), [attack, 'hello from Ann']);
    assert.equal(await page.locator('#chat-log img').count(), 0, 'no <img> element was created');
    assert.deepEqual(await page.locator('#chat-log .chat-author').allTextContents(), ['Bob', 'Ann']);
  }
  // A newcomer gets the history.
  const dee = await openRoomPage(browser, invite, 'Dee');
  await dee.locator('#chat-log .chat-text', { hasText: 'hello from Ann' }).waitFor({ timeout: WAIT_MS });
  assert.deepEqual(await dee.locator('#chat-log .chat-text').allTextContents(), [attack, 'hello from Ann']);

  for (const page of [host, bob, cid, dee]) assert.deepEqual(page.problems, [], 'no page errors and no alert()');
}));

test('a non-host cannot control; the host hands over from the UI', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const server = await startServer();
  defer(() => server.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());

  const host = await createRoomViaLanding(browser, server.url);
  const invite = await host.locator('#invite-link').inputValue();
  const bob = await openRoomPage(browser, invite, 'Bob');
  await waitState(bob, (s) => s.playerReady && s.participants.length === 2);

  // Bob sees who controls, and his controls are disabled.
  await bob.locator('#control-note', { hasText: 'Ann controls playback.' }).waitFor();
  for (const id of ['#play-button', '#seek-bar', '#rate-select', '#load-input', '#load-button']) {
    assert.equal(await bob.locator(id).isDisabled(), true, `${id} disabled for a non-host`);
  }
  assert.equal(await bob.locator('.make-host').count(), 0, 'no hand-over buttons for a non-host');

  // Even forcing the disabled button (as a script could) changes nothing, and the page says why.
  const seqBefore = (await stateOf(host)).playback.seq;
  await bob.evaluate(() => {
    const button = document.querySelector('#play-button');
    button.disabled = false;
    button.click();
  });
  await bob.locator('.toast', { hasText: 'Only the host' }).waitFor({ timeout: WAIT_MS });
  // The host plays afterwards; only the host's change shows up (the forced one never happened).
  await host.locator('#play-button').click();
  await waitState(bob, (s, seq) => s.playback.seq > seq, seqBefore);
  const afterPlay = await stateOf(bob);
  assert.equal(afterPlay.playback.seq, seqBefore + 1, 'exactly one accepted change');
  assert.equal(afterPlay.playback.paused, false);

  // Hand-over through the people list.
  await host.locator('#people-list .person', { hasText: 'Bob' }).locator('.make-host').click();
  const bobId = (await stateOf(bob)).me.id;
  for (const page of [host, bob]) await waitState(page, (s, id) => s.hostId === id, bobId);
  await bob.locator('#control-note', { hasText: 'You are the host' }).waitFor();
  assert.equal(await bob.locator('#play-button').isDisabled(), false);
  await host.locator('#control-note', { hasText: 'Bob controls playback.' }).waitFor();
  assert.equal(await host.locator('#play-button').isDisabled(), true, 'the former host lost control');

  // The new host pauses and the old host follows.
  await bob.locator('#play-button').click();
  await waitState(host, (s) => s.playback.paused && s.playerPaused);

  // "Let everyone control": Ann (no longer host) gets her controls back and can play.
  await bob.locator('#everyone-toggle').check();
  await waitState(host, (s) => s.control === 'everyone');
  await host.locator('#control-note', { hasText: 'Everyone in this room can control playback.' }).waitFor();
  assert.equal(await host.locator('#play-button').isDisabled(), false);
  await host.locator('#play-button').click();
  await waitState(bob, (s, id) => !s.playback.paused && s.participants.some((p) => p.id === id), (await stateOf(host)).me.id);
  assert.equal(await host.locator('#everyone-toggle').isVisible(), false, 'only the host sees the control-mode switch');

  for (const page of [host, bob]) assert.deepEqual(page.problems, []);
}));

test('unknown rooms get a clear message on the landing page and the room page', { timeout: 60_000 }, () => withCleanup(async (defer) => {
  const server = await startServer();
  defer(() => server.stop());
  const browser = await launchBrowser();
  defer(() => browser.close());

  const missing = '6f1c1f0e-1111-4111-8111-111111111111';
  const landing = await openRoomPage(browser, `${server.url}/`, '', { join: false });
  await landing.locator('#join-input').fill(`${server.url}/r/${missing}`);
  await landing.locator('#join-button').click();
  await landing.locator('#join-message', { hasText: 'There is no room with that id' }).waitFor({ timeout: WAIT_MS });
  assert.equal(new URL(landing.url()).pathname, '/', 'stays on the landing page');

  await landing.locator('#join-input').fill('not a room!');
  await landing.locator('#join-button').click();
  await landing.locator('#join-message', { hasText: 'does not look like a room' }).waitFor({ timeout: WAIT_MS });

  const room = await openRoomPage(browser, `${server.url}/r/${missing}`, '', { join: false });
  await room.locator('#room-error-title', { hasText: 'Room not found' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await room.locator('#room-main').isHidden(), true);
  assert.equal(await room.locator('#name-dialog').isHidden(), true, 'no name prompt for a room that does not exist');

  const bad = await openRoomPage(browser, `${server.url}/r/nonsense`, '', { join: false });
  await bad.locator('#room-error-title', { hasText: 'Not a room link' }).waitFor({ timeout: WAIT_MS });
  for (const page of [landing, room, bad]) assert.deepEqual(page.problems, []);
}));
