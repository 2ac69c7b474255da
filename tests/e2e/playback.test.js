// The host plays, pauses, seeks, changes rate and loads another library video; every page follows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  WAIT_MS, createRoomViaLanding, launchBrowser, openRoomPage, startServer, stateOf, waitPlayingNear, waitState, withCleanup,
  startRoom,
  waitInPage,
} from './harness.js';

/** Position (s) of each page's player right now, with the room's expected position by the same page. */
function positions(pages) {
  return Promise.all(pages.map((page) => page.evaluate(() => ({ position: window.__wt.position(), expected: window.__wt.expected() }))));
}

test('host play, pause, seek, rate and load are followed by every page', { timeout: 180_000 }, () => withCleanup(async (defer) => {
  const { host, guests: [bob, cid] } = await startRoom(defer, ['Bob', 'Cid']);
  const pages = [host, bob, cid];
  for (const page of pages) {
    await waitState(page, (s) => s.playerReady && s.playback && s.playback.paused && s.participants.length === 3);
  }

  // Play: everyone runs, near the room clock.
  await host.locator('#play-button').click();
  for (const page of pages) await waitPlayingNear(page, { toleranceMs: 100 });
  await host.locator('#play-button[aria-label="Pause"]').waitFor();

  // Pause: everyone stops on (nearly) the same frame.
  await host.locator('#play-button').click();
  for (const page of pages) await waitState(page, (s) => s.playback.paused && s.playerPaused);
  const { position: pausedAt } = (await stateOf(host)).playback;
  for (const page of pages) {
    await waitInPage(page, (at) => Math.abs(window.__wt.position() - at) < 0.05, pausedAt);
  }
  for (const { position } of await positions(pages)) assert.ok(Math.abs(position - pausedAt) < 0.05, `paused at ${position}, room at ${pausedAt}`);

  // Seek while paused (through the seek bar, as a person would): everyone moves there.
  await host.locator('#seek-bar').fill('40');
  for (const page of pages) await waitState(page, (s) => s.playback.paused && Math.abs(s.playback.position - 40) < 0.01);
  for (const page of pages) await waitInPage(page, () => Math.abs(window.__wt.position() - 40) < 0.05);

  // Play from there, then seek while playing.
  await host.locator('#play-button').click();
  for (const page of pages) await waitPlayingNear(page, { toleranceMs: 100 });
  for (const { position } of await positions(pages)) assert.ok(position >= 40 && position < 45, `playing from 40 s (at ${position})`);
  const seqBeforeSeek = (await stateOf(host)).playback.seq;
  await host.locator('#seek-bar').fill('12');
  for (const page of pages) await waitPlayingNear(page, { seq: seqBeforeSeek + 1, toleranceMs: 100 });
  for (const { position } of await positions(pages)) assert.ok(position >= 12 && position < 17, `jumped back to 12 s (at ${position})`);

  // Rate: every player follows the room rate.
  await host.locator('#rate-select').selectOption('1.5');
  for (const page of pages) await waitState(page, (s) => s.playback.rate === 1.5 && Math.abs(s.playbackRate - 1.5) < 0.15);
  for (const page of pages) await waitPlayingNear(page, { toleranceMs: 100 });
  await host.locator('#rate-select').selectOption('1');

  // Load another video from the media library: everyone switches, paused at 0.
  await host.locator('#library-select').selectOption('/media/clip-b-30s.mp4');
  for (const page of pages) {
    await waitState(page, (s) => s.playback.video && s.playback.video.url === '/media/clip-b-30s.mp4' && s.playerReady && s.playerPaused);
    const src = await page.locator('#player-host video').evaluate((v) => new URL(v.currentSrc).pathname);
    assert.equal(src, '/media/clip-b-30s.mp4');
    const duration = await page.locator('#player-host video').evaluate((v) => v.duration);
    assert.ok(Math.abs(duration - 30) < 0.5, `the new clip is loaded (duration ${duration})`);
  }
  await host.locator('#play-button').click();
  for (const page of pages) await waitPlayingNear(page, { toleranceMs: 100 });
  for (const page of pages) assert.equal(await page.locator('#activity').textContent().then((t) => t.length > 0), true);
  for (const page of pages) assert.deepEqual(page.problems, []);
}));

test('a YouTube video that cannot load says so on every page, and the room keeps working', { timeout: 120_000 }, () => withCleanup(async (defer) => {
  const { browser, host, guests: [bob] } = await startRoom(defer);
  const pages = [host, bob];
  // This machine has no internet: refuse YouTube inside the browser so nothing leaves it.
  for (const page of pages) await page.context().route(/youtube\.com|ytimg\.com|googlevideo\.com/, (route) => route.abort());

  await host.locator('#load-input').fill('https://youtu.be/dQw4w9WgXcQ');
  await host.locator('#load-button').click();
  for (const page of pages) {
    await waitState(page, (s) => s.playback.video && s.playback.video.kind === 'youtube' && s.playback.video.id === 'dQw4w9WgXcQ');
    await page.locator('#stage-message', { hasText: 'YouTube could not be reached' }).waitFor({ timeout: WAIT_MS });
  }
  // Back to a library video: everything works again.
  await host.locator('#library-select').selectOption('/media/clip-a-60s.mp4');
  for (const page of pages) {
    await waitState(page, (s) => s.playback.video.kind === 'url' && s.playerReady);
    await page.locator('#stage-message').waitFor({ state: 'hidden' });
  }
  await host.locator('#play-button').click();
  for (const page of pages) await waitPlayingNear(page, { toleranceMs: 100 });
  for (const page of pages) assert.deepEqual(page.problems, []);
}));
