// The watch party from the UI: the queue panel (add from a link and from the library,
// reorder by drag and drop and by keyboard, remove, play next), what a viewer without
// control sees, server errors as toasts, system lines in the chat, and a narrow screen.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT_MS, startRoom, stateOf, waitState, waitPlayingNear, withCleanup } from './harness.js';

const YT_LINK = 'https://www.youtube.com/watch?v=dQw4w9WgXcQ';
const YT_LABEL = 'YouTube dQw4w9WgXcQ';
const CLIP_B = '/media/clip-b-30s.mp4';
const CLIP_B_LABEL = 'clip-b-30s.mp4';

/** The queue as the page shows it: item titles, front first. */
function shownQueue(page) {
  return page.locator('#queue-list .queue-title').allTextContents();
}

/** Waits until the page shows exactly `labels` in the queue list. */
async function waitQueue(page, labels) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const shown = await shownQueue(page);
    if (JSON.stringify(shown) === JSON.stringify(labels)) return;
    if (Date.now() > deadline) throw new Error(`queue shows ${JSON.stringify(shown)}, expected ${JSON.stringify(labels)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits for a system line containing `text` in the page's chat log. */
function waitLine(page, text) {
  return page.locator('#chat-log .chat-system', { hasText: text }).first().waitFor({ timeout: WAIT_MS });
}

test('the queue panel edits the queue for everyone; system lines tell the others', { timeout: 180_000 }, () => withCleanup(async (defer) => {
  const { host, guests: [bob] } = await startRoom(defer);
  // Nothing may leave this machine: a YouTube item is queued but never loaded here.
  for (const page of [host, bob]) await page.context().route(/youtube\.com|ytimg\.com|googlevideo\.com/, (route) => route.abort());
  await waitState(host, (s) => s.playerReady && s.participants.length === 2);
  await waitState(bob, (s) => s.playerReady && s.participants.length === 2);
  await waitLine(host, 'Bob joined');

  // Bob has no control: the panel says why, and everything in it is disabled.
  await bob.locator('#queue-note', { hasText: 'Only Ann, the host, can change the queue' }).waitFor();
  for (const id of ['#queue-input', '#queue-add-button', '#next-button']) assert.equal(await bob.locator(id).isDisabled(), true, `${id} disabled for Bob`);
  assert.equal(await host.locator('#queue-note').isVisible(), false, 'no explanation needed for the host');
  assert.equal(await bob.locator('#hold-options').isVisible(), false, 'only the host sees the hold options');
  assert.equal(await host.locator('#wait-toggle').isChecked(), true, 'rooms wait for buffering viewers by default');
  await host.locator('#wait-toggle').uncheck();
  await waitState(bob, (s) => s.room.waitForBuffering === false);
  assert.equal(await host.locator('#wait-timeout').isDisabled(), true, 'no timeout to choose without waiting');
  await host.locator('#wait-toggle').check();
  await host.locator('#wait-timeout').selectOption('15');
  await waitState(bob, (s) => s.room.waitForBuffering === true && s.room.bufferingTimeoutS === 15);

  // Add one from a link, one from the library.
  await host.locator('#queue-input').fill(YT_LINK);
  await host.locator('#queue-add-button').click();
  await host.locator('#queue-library-select').selectOption(CLIP_B);
  for (const page of [host, bob]) await waitQueue(page, [YT_LABEL, CLIP_B_LABEL]);
  assert.deepEqual(await bob.locator('#queue-list .queue-meta').allTextContents(), ['added by Ann', 'added by Ann']);
  assert.equal(await bob.locator('#queue-list .queue-item[draggable="true"]').count(), 0, 'Bob cannot drag');
  assert.equal(await bob.locator('#queue-list button:enabled').count(), 0, 'nor press anything');

  // Reorder by drag and drop: the clip goes before the YouTube video.
  await host.locator('#queue-list .queue-item').nth(1).dragTo(host.locator('#queue-list .queue-item').nth(0), { targetPosition: { x: 20, y: 3 } });
  for (const page of [host, bob]) await waitQueue(page, [CLIP_B_LABEL, YT_LABEL]);

  // And by keyboard: down, then up again; focus stays on the moved item.
  await host.locator(`#queue-list .queue-down[aria-label="Move ${CLIP_B_LABEL} down"]`).focus();
  await host.keyboard.press('Enter');
  for (const page of [host, bob]) await waitQueue(page, [YT_LABEL, CLIP_B_LABEL]);
  await waitFocused(host, `Move ${CLIP_B_LABEL} up`); // "down" is disabled on the last item
  await host.keyboard.press('Enter');
  for (const page of [host, bob]) await waitQueue(page, [CLIP_B_LABEL, YT_LABEL]);

  // Remove the YouTube video; play the clip now.
  await host.locator(`#queue-list .queue-remove[aria-label="Remove ${YT_LABEL} from the queue"]`).click();
  for (const page of [host, bob]) await waitQueue(page, [CLIP_B_LABEL]);
  await host.locator('#next-button').click();
  for (const page of [host, bob]) {
    await waitState(page, (s, url) => s.playback.video.url === url && !s.playback.paused && s.queue.length === 0, CLIP_B);
    await waitPlayingNear(page, { toleranceMs: 150 });
  }
  await waitLine(bob, `Ann skipped to ${CLIP_B_LABEL}`);
  await bob.locator('#queue-empty').waitFor();
  assert.equal(await host.locator('#next-button').isDisabled(), true, 'nothing left to play next');

  // A server refusal reads as a toast: Next with an empty queue (forced, as a script could).
  await host.evaluate(() => {
    const button = document.querySelector('#next-button');
    button.disabled = false;
    button.click();
  });
  await host.locator('.toast', { hasText: 'Nothing is queued to play next.' }).waitFor({ timeout: WAIT_MS });

  // Pause, and seek twice in a row: Bob reads who did it.
  await host.locator('#play-button').click();
  await waitLine(bob, 'Ann paused at');
  await host.locator('#seek-bar').fill('10');
  await host.locator('#seek-bar').fill('20');
  await waitState(bob, (s) => s.playback.position === 20);
  await waitLine(bob, 'Ann jumped to 0:20');
  const seekLines = (await stateOf(bob)).systemLines.filter((l) => l.kind === 'seek');
  console.log(`# two seeks within a second made ${seekLines.length} line(s) on the other page: ${seekLines.map((l) => l.text).join(' | ')}`);
  assert.ok(seekLines.length >= 1 && seekLines.length <= 2);
  const bobLines = await bob.locator('#chat-log .chat-system-text').allTextContents();
  assert.ok(!bobLines.some((t) => /^Someone /.test(t)), `no anonymous lines: ${bobLines.join(' | ')}`);

  // The host hands over: both read it, and the queue panel follows the role.
  const bobId = (await stateOf(bob)).me.id;
  await host.locator(`#people-list .person[data-id="${bobId}"] .make-host`).click();
  await waitLine(bob, 'You are now the host');
  await waitLine(host, 'Bob is now the host');
  await bob.locator('#queue-input:enabled').waitFor();
  await host.locator('#queue-note', { hasText: 'Only Bob, the host, can change the queue' }).waitFor();
  // Forcing Ann's disabled controls is refused by the page itself, with the reason.
  await host.evaluate(() => {
    const input = document.querySelector('#queue-input');
    input.disabled = false;
    input.value = 'https://example.org/a.mp4';
    document.querySelector('#queue-form').requestSubmit();
  });
  await host.locator('.toast', { hasText: 'Only Bob, the host, can change the queue' }).waitFor({ timeout: WAIT_MS });

  // System lines are the page's own and look different from messages.
  const chatMessages = await bob.locator('#chat-log .chat-message').count();
  assert.equal(chatMessages, 0, 'no chat message was sent for any of it');
  assert.equal((await stateOf(bob)).chat, 0);
  for (const page of [host, bob]) assert.deepEqual(page.problems, []);
}));

test('on a narrow screen the queue and host tools fit without sideways scrolling', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const { host } = await startRoom(defer, []);
  await host.setViewportSize({ width: 360, height: 740 });
  await waitState(host, (s) => s.playerReady);
  await host.locator('#queue-library-select').selectOption(CLIP_B);
  await host.locator('#queue-input').fill('https://example.org/a-rather-long-file-name-for-a-narrow-screen.mp4');
  await host.locator('#queue-add-button').click();
  await waitQueue(host, [CLIP_B_LABEL, 'a-rather-long-file-name-for-a-narrow-screen.mp4 (example.org)']);
  const widths = await host.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  assert.ok(widths.scroll <= widths.client, `no horizontal overflow (${widths.scroll} > ${widths.client})`);
  for (const selector of ['#next-button', '#queue-list .queue-remove >> nth=1', '#wait-toggle', '#wait-timeout', '#chat-input']) {
    const box = await host.locator(selector).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= widths.client, `${selector} is on screen (${JSON.stringify(box)})`);
  }
  assert.deepEqual(host.problems, []);
}));

/** Waits until the focused element is the button labelled `label`. */
async function waitFocused(page, label) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.getAttribute('aria-label'));
    if (focused === label) return;
    if (Date.now() > deadline) throw new Error(`focus is on ${focused}, expected ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
