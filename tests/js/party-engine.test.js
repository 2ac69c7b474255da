// The sync engine's part in the watch party: reporting the video's length, reporting
// buffering flips at once, holds, and the end of a video.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyncEngine, BUFFERING_DEBOUNCE_MS, FLIP_REPORT_BURST, INITIAL_START_LEAD_MS, STATUS_INTERVAL_MS } from '../../frontend/js/sync-engine.js';
import { setupEngine } from './fakes.js';

const CLIP = { kind: 'url', url: '/media/clip-a-60s.mp4' };
const OTHER = { kind: 'url', url: '/media/clip-b-30s.mp4' };
const ME = 'aaaaaaaaaaaaaaaa';
const BOB = 'bbbbbbbbbbbbbbbb';

const playback = (fields) => ({ video: CLIP, paused: true, position: 0, rate: 1, anchor: 0, seq: 1, duration: null, ended: false, waiting_for: [], ...fields });

/** An engine with a synced clock, joined as ME. */
async function joined(playerOptions) {
  const env = setupEngine(SyncEngine, playerOptions);
  env.engine.setSelf(ME);
  env.engine.onConnected();
  await env.time.advance(800);
  return env;
}

const ofType = (sent, type) => sent.filter((m) => m.type === type);

/** A room that plays CLIP from 0, started a little after now; returns once this page plays in step. */
async function playingRoom(env, fields = {}) {
  const { engine, time, serverNow } = env;
  engine.onWelcome(playback({ seq: 1, ...fields }));
  await time.advance(300);
  engine.onPlayback(playback({ paused: false, position: 0, anchor: serverNow() + 200, seq: 2, ...fields }));
  await time.advance(1500);
  assert.equal(env.player().paused(), false, 'playing');
}

test('the video length goes out once per video, with the seq being applied', async () => {
  const env = await joined({ duration: 30 });
  const { engine, time, sent } = env;
  engine.onWelcome(playback({ seq: 4 }));
  await time.advance(2000);
  assert.deepEqual(ofType(sent, 'media_info'), [{ type: 'media_info', seq: 4, duration: 30 }]);
  // The learned length comes back (by: null, higher seq): nothing more to say.
  engine.onPlayback(playback({ seq: 5, duration: 30 }));
  await time.advance(2000);
  assert.equal(ofType(sent, 'media_info').length, 1);
  // Another video, whose length the room does not know yet.
  engine.onPlayback(playback({ video: OTHER, seq: 6 }));
  await time.advance(500);
  assert.deepEqual(ofType(sent, 'media_info').at(-1), { type: 'media_info', seq: 6, duration: 30 });
  assert.equal(ofType(sent, 'media_info').length, 2);
  engine.destroy();
});

test('the length is not reported when the room knows it already or the player does not', async () => {
  const env = await joined({ duration: NaN });
  const { engine, time, sent } = env;
  engine.onWelcome(playback({ seq: 1 }));
  await time.advance(2000);
  assert.equal(ofType(sent, 'media_info').length, 0, 'no finite length (a live stream, a player still loading)');
  env.player().durationS = 61.25;
  await time.advance(300);
  assert.deepEqual(ofType(sent, 'media_info'), [{ type: 'media_info', seq: 1, duration: 61.25 }], 'once the player learns it');

  const other = await joined({ duration: 30 });
  other.engine.onWelcome(playback({ seq: 3, duration: 30.02 }));
  await other.time.advance(2000);
  assert.equal(ofType(other.sent, 'media_info').length, 0, 'someone else reported it first');
  engine.destroy();
  other.engine.destroy();
});

test('a buffering flip is reported at once, a short hiccup not at all', async () => {
  const env = await joined({ playLagMs: 40 });
  const { engine, time, sent, player } = env;
  await playingRoom(env);
  await time.advance(STATUS_INTERVAL_MS / 2); // half way between two regular reports

  // A decoder hiccup shorter than the debounce: nobody is told, nothing is held.
  let before = sent.length;
  player().setBuffering(true);
  await time.advance(BUFFERING_DEBOUNCE_MS / 2);
  player().setBuffering(false);
  await time.advance(STATUS_INTERVAL_MS * 2);
  assert.ok(ofType(sent.slice(before), 'status').every((m) => m.buffering === false));

  // A real stall: reported when the debounce ends, not at the next regular report.
  before = sent.length;
  const stalledAt = time.now();
  player().setBuffering(true);
  await time.advance(BUFFERING_DEBOUNCE_MS);
  const flip = sent.slice(before).find((m) => m.type === 'status' && m.buffering);
  assert.ok(flip, 'buffering reported');
  assert.equal(time.now() - stalledAt, BUFFERING_DEBOUNCE_MS);
  assert.equal(engine.buffering, true);

  // Data flows again: "ready" goes out the same instant.
  before = sent.length;
  player().setBuffering(false);
  assert.deepEqual(ofType(sent.slice(before), 'status').map((m) => m.buffering), [false], 'ready reported at once');
  engine.destroy();
});

test('flip reports are capped; the regular report carries the rest', async () => {
  const env = await joined();
  const { engine, time, sent, player } = env;
  await playingRoom(env);
  const before = sent.length;
  for (let i = 0; i < 10; i++) {
    player().setBuffering(true);
    await time.advance(BUFFERING_DEBOUNCE_MS);
    player().setBuffering(false);
    await time.advance(1);
  }
  const statuses = ofType(sent.slice(before), 'status').length;
  // 20 flips in about 2.5 s: a burst, a refill of 2/s, and the regular 1/s reports.
  assert.ok(statuses <= FLIP_REPORT_BURST + 6 + 3, `${statuses} status messages`);
  assert.ok(statuses >= FLIP_REPORT_BURST, `${statuses} status messages`);
  engine.destroy();
});

test('a hold for this page keeps it buffering while paused, until it can play there', async () => {
  const env = await joined({ seekMs: 30, playLagMs: INITIAL_START_LEAD_MS.fine });
  const { engine, time, serverNow, sent, player } = env;
  await playingRoom(env);
  player().setBuffering(true);
  await time.advance(BUFFERING_DEBOUNCE_MS);
  assert.equal(engine.buffering, true);

  // The room holds for us: paused where the room was; the player pauses (no longer
  // "stalled while playing"), yet still has no data there, so it stays buffering.
  const heldAt = player().currentTime() + 0.3;
  engine.onPlayback(playback({ paused: true, position: heldAt, anchor: serverNow(), seq: 3, waiting_for: [ME] }));
  player().isBuffering = false; // a paused element does not report "waiting"
  await time.advance(1000);
  assert.equal(player().paused(), true);
  assert.ok(Math.abs(player().currentTime() - heldAt) < 0.001, 'stands at the hold position');
  assert.equal(engine.buffering, true, 'still waiting for data');
  let before = sent.length;
  await time.advance(STATUS_INTERVAL_MS);
  assert.ok(ofType(sent.slice(before), 'status').every((m) => m.buffering), 'keeps saying so');

  // Data arrives: ready at once, and the room's scheduled restart is met at its anchor.
  before = sent.length;
  player().setHasData(true);
  assert.deepEqual(ofType(sent.slice(before), 'status').map((m) => m.buffering), [false]);
  const anchor = serverNow() + 300;
  engine.onPlayback(playback({ paused: false, position: heldAt, anchor, seq: 4 }));
  await time.advance(150);
  assert.equal(player().paused(), true, 'waits for the anchor');
  await time.advance(1000);
  const drift = (player().currentTime() - engine.expectedPosition()) * 1000;
  assert.equal(player().paused(), false);
  assert.ok(Math.abs(drift) < 10, `resumed with the room (drift ${drift} ms)`);
  engine.destroy();
});

test('a hold for someone else pauses this page like a pause, and its own paused seek is no wait', async () => {
  const env = await joined({ seekMs: 30 });
  const { engine, time, serverNow, sent, player } = env;
  await playingRoom(env);
  const heldAt = player().currentTime() - 0.2;
  const before = sent.length;
  engine.onPlayback(playback({ paused: true, position: heldAt, anchor: serverNow(), seq: 3, waiting_for: [BOB] }));
  player().hasData = false; // seeking back: no data for a moment
  player().isBuffering = true; // and YouTube says BUFFERING for that even while paused
  await time.advance(BUFFERING_DEBOUNCE_MS * 3);
  assert.equal(player().paused(), true);
  assert.ok(Math.abs(player().currentTime() - heldAt) < 0.001);
  assert.ok(ofType(sent.slice(before), 'status').every((m) => !m.buffering), 'never claims to be buffering');
  assert.ok(!ofType(sent, 'play').length && !ofType(sent, 'pause').length);
  engine.destroy();
});

test('a page that joins a playing room does not hold it while it catches up', async () => {
  const env = await joined({ loadMs: 600, seekMs: 40, playLagMs: 60 });
  const { engine, time, serverNow, sent, player } = env;
  engine.onWelcome(playback({ paused: false, position: 10, anchor: serverNow() - 5000, seq: 7 }));
  await time.advance(3000);
  assert.equal(player().paused(), false, 'caught up and playing');
  assert.ok(ofType(sent, 'status').every((m) => !m.buffering), 'loading and catching up held nobody');
  // From now on it plays along, and a stall does count.
  player().setBuffering(true);
  await time.advance(BUFFERING_DEBOUNCE_MS);
  assert.equal(ofType(sent, 'status').at(-1).buffering, true);
  engine.destroy();
});

test('a start announced ahead of time is held by a page still loading the next video', async () => {
  const env = await joined({ loadMs: 1200 });
  const { engine, time, serverNow, sent } = env;
  await playingRoom(env);
  // The room advances to the next video: a scheduled start from 0, length not known yet.
  const before = sent.length;
  engine.onPlayback(playback({ video: OTHER, paused: false, position: 0, anchor: serverNow() + 150, seq: 3 }));
  await time.advance(1);
  assert.deepEqual(ofType(sent.slice(before), 'status').map((m) => m.buffering), [true], 'loading the next video is said at once, before the start');
  await time.advance(BUFFERING_DEBOUNCE_MS);
  assert.deepEqual(ofType(sent.slice(before), 'status').map((m) => m.buffering), [true], 'and only once');
  await time.advance(1200);
  assert.equal(engine.playerReady, true);
  assert.equal(ofType(sent, 'status').at(-1).buffering, false, 'ready once loaded');
  engine.destroy();
});

test('a video that cannot load is an error, not a wait', async () => {
  const env = await joined({ loadFails: true });
  const { engine, time, serverNow, sent } = env;
  engine.onWelcome(playback({ seq: 1 }));
  engine.onPlayback(playback({ paused: false, anchor: serverNow() + 200, seq: 2 }));
  await time.advance(3000);
  assert.match(engine.lastError, /could not load/);
  assert.equal(engine.buffering, false);
  assert.equal(ofType(sent, 'status').at(-1).buffering, false, 'the room is not kept waiting for it');
  engine.destroy();
});

test('at the end the player sits on the last frame and nothing corrects it', async () => {
  const env = await joined({ duration: 30, seekMs: 20 });
  const { engine, time, serverNow, player } = env;
  await playingRoom(env);
  // The room reached the reported end (30.02 s by another browser; 30 s here) and stopped.
  player().position = 30;
  player().calls.length = 0;
  engine.onPlayback(playback({ paused: true, ended: true, position: 30.02, anchor: serverNow(), seq: 9, duration: 30.02 }));
  await time.advance(2000);
  assert.equal(player().paused(), true);
  assert.equal(player().currentTime(), 30);
  assert.equal(engine.lastDriftMs, 0);
  assert.ok(!player().calls.some(([name]) => name === 'seek' || name === 'play'), 'no seek, no play');

  // A page arriving after the end shows the last frame too.
  const late = await joined({ duration: 30, seekMs: 20 });
  late.engine.onWelcome(playback({ paused: true, ended: true, position: 30.02, anchor: late.serverNow(), seq: 9, duration: 30.02 }));
  await late.time.advance(1000);
  assert.equal(late.player().currentTime(), 30);
  assert.equal(late.player().paused(), true);
  engine.destroy();
  late.engine.destroy();
});

test('a hold that arrives while a seek waits for data pauses the player at once', async () => {
  const env = await joined({ seekMs: 5000, playLagMs: INITIAL_START_LEAD_MS.fine });
  const { engine, time, serverNow, player } = env;
  await playingRoom(env);
  // A seek that arrives late (the start already passed): the player seeks while playing,
  // into a part it has no data for, so the seek hangs.
  engine.onPlayback(playback({ paused: false, position: 45, anchor: serverNow() - 50, seq: 3 }));
  player().setBuffering(true);
  await time.advance(BUFFERING_DEBOUNCE_MS + 10);
  assert.equal(engine.busy, true, 'the seek is still in flight');
  assert.equal(player().paused(), false);
  engine.onPlayback(playback({ paused: true, position: 45.2, anchor: serverNow(), seq: 4, waiting_for: [ME] }));
  assert.equal(player().paused(), true, 'paused without waiting for the seek');
  assert.equal(engine.buffering, true, 'still waiting for data');
  engine.destroy();
});

test('a player whose media ends a moment before the room waits at the end, not from 0', async () => {
  const env = await joined({ duration: 10, playLagMs: INITIAL_START_LEAD_MS.fine });
  const { engine, time, serverNow, player } = env;
  engine.onWelcome(playback({ seq: 1, position: 9, duration: 10 }));
  await time.advance(300);
  engine.onPlayback(playback({ paused: false, position: 9, anchor: serverNow() + 200, seq: 2, duration: 10 }));
  await time.advance(600);
  player().position += 0.3; // its media clock ran ahead
  const plays = player().calls.filter(([name]) => name === 'play').length;
  await time.advance(480); // the player ends; the room is still ~120 ms short of the end
  assert.equal(player().paused(), true);
  assert.ok(engine.expectedPosition() < 10, `the room has not ended yet (${engine.expectedPosition()})`);
  assert.equal(player().calls.filter(([name]) => name === 'play').length, plays, 'no play() on the ended element');
  assert.ok(player().currentTime() >= 9.95, `waits at the end (${player().currentTime()})`);
  assert.equal(engine.buffering, false, 'and it is not waiting for anything');
  engine.destroy();
});

test('a play() interrupted by a pause is no error', async () => {
  const env = await joined({ playLagMs: INITIAL_START_LEAD_MS.fine });
  const { engine, time, serverNow, player } = env;
  engine.onWelcome(playback({ seq: 1 }));
  await time.advance(300);
  player().abortPlay = true;
  engine.onPlayback(playback({ paused: false, anchor: serverNow() + 100, seq: 2 }));
  await time.advance(500);
  assert.ok(player().calls.some(([name]) => name === 'play'));
  assert.equal(engine.lastError, null);
  engine.destroy();
});
