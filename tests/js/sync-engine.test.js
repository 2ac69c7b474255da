import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyncEngine, GRID_IDLE_MS, INITIAL_START_LEAD_MS, KEEP_WARM_EVERY_MS, KEEP_WARM_FOR_MS, START_LEAD_LEARNING, START_MOTION_LOOK_MS, START_SETTLE_MS, START_TRIM_MS } from '../../frontend/js/sync-engine.js';
import { ONE_WAY_MS, SERVER_OFFSET, settle, setupEngine } from './fakes.js';
import { LATE_PLAN_MAX_MS } from '../../frontend/js/start-grid.js';

const CLIP = { kind: 'url', url: '/media/clip-a-60s.mp4' };
const OTHER = { kind: 'url', url: '/media/clip-b-30s.mp4' };
/** Wires an engine to a simulated server that answers pings after ONE_WAY_MS each way. */
const setup = (playerOptions = {}) => setupEngine(SyncEngine, playerOptions);

const playback = (fields) => ({ video: CLIP, paused: true, position: 0, rate: 1, anchor: 0, seq: 1, ...fields });

/**
 * Chromium-like: play() is taken up by the next output callback (23.22 ms apart), the media
 * moves 69.5 ms after it.
 */
const AUDIO_GRID = { periodMs: 1024 / 44.1, phaseMs: 4.1, delayMs: 69.5, minMs: 2 };

test('clock converges to the server offset from ping/pong', async () => {
  const { time, engine } = setup();
  engine.onConnected();
  await time.advance(1000);
  assert.ok(engine.clock.synced);
  assert.ok(Math.abs(engine.clock.offsetMs - SERVER_OFFSET) < 1, `offset error ${engine.clock.offsetMs - SERVER_OFFSET}`);
  assert.ok(Math.abs(engine.clock.rttMs - 2 * ONE_WAY_MS) < 1);
  engine.destroy();
});

test('a scheduled start begins at the anchor, not on arrival', async () => {
  const { time, serverNow, engine, player } = setup({ playLagMs: INITIAL_START_LEAD_MS.fine });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: true, position: 5, seq: 1 }));
  await time.advance(300);
  assert.equal(player().paused(), true);
  assert.ok(Math.abs(player().currentTime() - 5) < 0.001, 'paused at the room position');

  const anchor = serverNow() + 600;
  engine.onPlayback(playback({ paused: false, position: 5, anchor, seq: 2 }));
  await time.advance(400);
  assert.equal(player().paused(), true, 'still waiting 200 ms before the anchor');
  await time.advance(300);
  assert.equal(player().paused(), false, 'running after the anchor');
  assert.ok(player().calls.some(([name]) => name === 'play'));
  const expected = 5 + (serverNow() - anchor) / 1000;
  const missMs = (player().currentTime() - expected) * 1000;
  assert.ok(Math.abs(missMs) <= 5, `media started moving at the anchor (off by ${missMs} ms)`);
  engine.destroy();
});

test('the start lead is learned from each start', async () => {
  const lagMs = 190; // a slower player than the initial guess
  const { time, serverNow, engine, player } = setup({ playLagMs: lagMs });
  engine.onConnected();
  await time.advance(800);
  const misses = [];
  for (let seq = 1; seq <= 8; seq += 2) {
    engine.onPlayback(playback({ paused: true, position: 5, seq }), { fresh: seq === 1 });
    await time.advance(300);
    const anchor = serverNow() + 500;
    engine.onPlayback(playback({ paused: false, position: 5, anchor, seq: seq + 1 }));
    await time.advance(500 + lagMs + 5);
    // Measure the start itself, before the rate controller has had a say.
    misses.push((player().currentTime() - (5 + (serverNow() - anchor) / 1000)) * 1000);
    await time.advance(1000);
  }
  assert.ok(misses[0] < -80, `the first start is late by about the unknown lag (${misses[0]} ms)`);
  assert.ok(Math.abs(misses.at(-1)) < 15, `later starts hit the anchor (${misses.map((m) => m.toFixed(1)).join(', ')})`);
  assert.ok(Math.abs(engine.startLeadMs - lagMs) < 15);
  engine.destroy();
});

test('once the audio callback grid is known, a start is planned on it and lands exactly', async () => {
  // A learned lead alone misses by up to half a period.
  const { time, serverNow, engine, player } = setup({ audioGrid: AUDIO_GRID, seekMs: 6 });
  engine.onConnected();
  await time.advance(800);
  const starts = [];
  for (let seq = 1; seq <= 12; seq += 2) {
    engine.onPlayback(playback({ paused: true, position: 5, seq }), { fresh: seq === 1 });
    await time.advance(300 + seq * 3.3); // anchors fall anywhere between two callbacks
    const anchor = serverNow() + 160;
    engine.onPlayback(playback({ paused: false, position: 5, anchor, seq: seq + 1 }));
    await time.advance(160 + 69.5 + 40);
    // Before any trim can act: where the media stands against the room clock.
    const missMs = (player().currentTime() - (5 + (serverNow() - anchor) / 1000)) * 1000;
    starts.push({ missMs, planned: engine.lastStart.planned, aheadMs: engine.lastStart.aheadMs });
    await time.advance(1000);
  }
  const shown = starts.map((s) => `${s.missMs.toFixed(2)}${s.planned ? ' (planned)' : ''}`).join(', ');
  assert.equal(starts[0].planned, false, `the first start cannot be planned: ${shown}`);
  assert.ok(starts.slice(3).every((s) => s.planned), `planned once the grid is known: ${shown}`);
  for (const s of starts.filter((x) => x.planned)) {
    assert.ok(Math.abs(s.missMs) < 0.01, `a planned start lands on the anchor: ${shown}`);
    assert.ok(s.aheadMs >= 0 && s.aheadMs < AUDIO_GRID.periodMs);
  }
  assert.ok(player().calls.some(([name, at]) => name === 'seek' && at > 5 && at < 5 + AUDIO_GRID.periodMs / 1000), 'stood ahead of the start position by the gap to the grid');
  assert.ok(Math.abs(engine.grid.periodMs - AUDIO_GRID.periodMs) < 1e-9);
  assert.ok(Math.abs(engine.grid.motionDelayMs - AUDIO_GRID.delayMs) < 0.01);
  // After a long pause the output may be another: that start is not planned on the old grid.
  engine.onPlayback(playback({ paused: true, position: 5, seq: 20 }));
  await time.advance(GRID_IDLE_MS + 500);
  const anchor = serverNow() + 160;
  engine.onPlayback(playback({ paused: false, position: 5, anchor, seq: 21 }));
  await time.advance(400);
  assert.equal(engine.lastStart.planned, false, 'not planned after an idle output');
  assert.equal(engine.grid.ready, true, 'but its callback gives the phase again');
  await time.advance(1000);
  for (const seq of [22]) {
    engine.onPlayback(playback({ paused: true, position: 5, seq }));
    await time.advance(300);
    engine.onPlayback(playback({ paused: false, position: 5, anchor: serverNow() + 160, seq: seq + 1 }));
    await time.advance(400);
  }
  assert.equal(engine.lastStart.planned, true, 'the next start is planned');
  engine.destroy();
});

test('a paused page probes its audio grid, so its first start is planned too, and keeps its output running for a while', async () => {
  const { time, serverNow, engine, player } = setup({ audioGrid: AUDIO_GRID, probeable: true, seekMs: 6 });
  const probes = () => player().calls.filter(([name]) => name === 'probe');
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: true, position: 5, seq: 1 }), { fresh: true });
  await time.advance(500);
  assert.equal(engine.grid.ready, true, 'the grid is known before any start');
  assert.deepEqual(probes().map(([, untilMotion]) => untilMotion), [false, true], 'one probe opens the output, the next also waits for motion');
  const startAt = async (seq, leadMs) => {
    const anchor = serverNow() + leadMs;
    engine.onPlayback(playback({ paused: false, position: 5, anchor, seq }));
    await time.advance(leadMs + 69.5 + LATE_PLAN_MAX_MS + 10);
    return (player().currentTime() - (5 + (serverNow() - anchor) / 1000)) * 1000;
  };
  let missMs = await startAt(2, 160);
  assert.equal(engine.lastStart.planned, true, 'the first start is planned');
  assert.ok(Math.abs(missMs) < 0.01, `and lands on the anchor (${missMs} ms)`);
  engine.onPlayback(playback({ paused: true, position: 5, seq: 3 }));
  await time.advance(300);
  missMs = await startAt(4, 160);
  assert.equal(engine.lastStart.planned, true);
  assert.ok(Math.abs(missMs) < 0.01, `a start after a short pause too (${missMs} ms)`);
  // While the room stands paused, the output is kept running by a quick probe now and
  // then, so a start after a pause of seconds is planned too.
  engine.onPlayback(playback({ paused: true, position: 5, seq: 5 }));
  await time.advance(3000);
  const warm = probes().length - 2;
  assert.ok(warm >= Math.floor(3000 / (KEEP_WARM_EVERY_MS + 250)) && warm <= Math.ceil(3000 / KEEP_WARM_EVERY_MS), `kept running by ${warm} probes in 3 s`);
  missMs = await startAt(6, 160);
  assert.equal(engine.lastStart.planned, true);
  assert.ok(Math.abs(missMs) < 0.01, `planned after a 3 s pause (${missMs} ms)`);
  // A pause longer than that lets the output go: no probes after KEEP_WARM_FOR_MS, and the
  // next start is neither probed for nor planned; its callback gives the phase again.
  engine.onPlayback(playback({ paused: true, position: 5, seq: 7 }));
  await time.advance(KEEP_WARM_FOR_MS);
  const kept = probes().length;
  await time.advance(GRID_IDLE_MS + 500);
  assert.equal(probes().length, kept, 'no probe past the window');
  await startAt(8, 200);
  assert.equal(engine.lastStart.planned, false);
  engine.onPlayback(playback({ paused: true, position: 5, seq: 9 }));
  await time.advance(300);
  missMs = await startAt(10, 160);
  assert.equal(engine.lastStart.planned, true);
  assert.ok(Math.abs(missMs) < 0.01, `planned again (${missMs} ms)`);
  engine.destroy();
});

test('a start that comes while a probe keeps the output running ends that probe, and is planned and lands exactly', async () => {
  // Slow seeks: a probe and the seek back after it would hold the engine past the plan's
  // play() moment.
  const { time, serverNow, engine, player } = setup({ audioGrid: AUDIO_GRID, probeable: true, seekMs: 40 });
  const probes = () => player().calls.filter(([name]) => name === 'probe').length;
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: true, position: 5, seq: 1 }), { fresh: true });
  await time.advance(1000);
  assert.equal(engine.grid.confirmed, true, 'the grid is known');
  // The start comes just as a probe that keeps the output running has begun.
  const seen = probes();
  while (probes() === seen) await time.advance(1);
  assert.equal(engine.probing, 'warm');
  const anchor = serverNow() + 120;
  engine.onPlayback(playback({ paused: false, position: 5, anchor, seq: 2 }));
  await settle();
  assert.equal(engine.probing, null, 'the probe ended at once');
  await time.advance(120 + AUDIO_GRID.delayMs + LATE_PLAN_MAX_MS + 10);
  const missMs = (player().currentTime() - (5 + (serverNow() - anchor) / 1000)) * 1000;
  assert.equal(engine.lastStart.planned, true, 'the start is planned');
  assert.ok(Math.abs(missMs) < 0.01, `and lands on the anchor (${missMs} ms)`);
  engine.destroy();
});

test('a start\'s miss is judged and trimmed on time, even while play()\'s promise is pending', async () => {
  // 10 ms slower than the initial lead, and a play() promise that settles 300 ms late.
  const lagMs = INITIAL_START_LEAD_MS.fine + 10;
  const { time, serverNow, engine, player } = setup({ playLagMs: lagMs, playResolveMs: 300 });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: true, position: 5, seq: 1 }));
  await time.advance(300);
  const anchor = serverNow() + 500;
  engine.onPlayback(playback({ paused: false, position: 5, anchor, seq: 2 }));
  const missAt = () => (player().currentTime() - (5 + (serverNow() - anchor) / 1000)) * 1000;
  await time.advance(500 + START_SETTLE_MS + START_MOTION_LOOK_MS);
  assert.ok(engine.busy, 'play() has not settled yet');
  assert.ok(Math.abs(missAt() + 10) < 1, `the start came 10 ms late (${missAt()} ms)`);
  assert.equal(Math.round(engine.lastStart.missMs), -10, "judged already");
  assert.ok(player().rate > 1, 'and a faster rate takes the miss out');
  await time.advance(START_TRIM_MS + 20);
  assert.ok(Math.abs(missAt()) < 1, `trimmed within ${START_TRIM_MS} ms (${missAt()} ms left)`);
  assert.equal(player().rate, 1, 'back at the room\'s rate');
  engine.destroy();
});

test('a player that says it plays only once play() went through (YouTube) is judged once it moves', async () => {
  // A coarse player 300 ms from play() to motion, saying "paused" until then.
  const lagMs = 300;
  const { time, serverNow, engine, player } = setup({ fineRate: false, playLagMs: lagMs, playResolveMs: lagMs, pausedUntilResolved: true });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: true, position: 5, seq: 1 }));
  await time.advance(300);
  const lead = engine.startLeadMs;
  const anchor = serverNow() + 500;
  engine.onPlayback(playback({ paused: false, position: 5, anchor, seq: 2 }));
  await time.advance(500 + lagMs + 100);
  assert.equal(player().calls.filter(([name]) => name === 'play').length, 1, 'play() once, though the player said "paused" meanwhile');
  const expectedMissMs = -(lagMs - lead);
  assert.ok(Math.abs(engine.lastStart.missMs - expectedMissMs) < 2, `judged once moving: ${engine.lastStart.missMs} ms, not during the wait`);
  assert.ok(Math.abs(engine.startLeadMs - (lead + (lagMs - lead) * START_LEAD_LEARNING)) < 2, `lead learned: ${engine.startLeadMs} ms`);
  engine.destroy();
});

test('each kind of start (fresh, after a seek, resumed after a pause) learns its own lead', async () => {
  // Like Chromium: 75 ms from play() to motion, but a resumed element first jumps 80 ms ahead.
  const lagMs = 75;
  const { time, serverNow, engine, player } = setup({ playLagMs: lagMs, resumeJumpMs: 80 });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: true, position: 0, seq: 1 }));
  await time.advance(300);
  const misses = {};
  let seq = 2;
  /** Plays from where the room stands; returns the miss at the anchor + 100 ms (ms, + = early). */
  const start = async (position) => {
    const anchor = serverNow() + 500;
    const kind = engine.startKind;
    engine.onPlayback(playback({ paused: false, position, anchor, seq: seq++ }));
    await time.advance(600);
    const miss = (player().currentTime() - (position + (serverNow() - anchor) / 1000)) * 1000;
    (misses[kind] ||= []).push(Math.round(miss));
    await time.advance(1500);
  };
  const pause = async () => {
    const at = player().currentTime();
    engine.onPlayback(playback({ paused: true, position: at, seq: seq++ }));
    await time.advance(500);
    return at;
  };
  await start(0); // fresh: never played, never moved
  for (let i = 0; i < 3; i++) await start(await pause()); // resumed where it paused
  for (let i = 0; i < 3; i++) {
    engine.onPlayback(playback({ paused: true, position: 20 + i * 5, seq: seq++ }));
    await time.advance(500);
    await start(20 + i * 5); // after a seek
  }
  assert.deepEqual(Object.keys(misses).sort(), ['fresh', 'resumed', 'seeked']);
  // The first start of a kind may miss (its latency is a guess); each later one learns
  // half the miss, so the misses shrink and the third start hits.
  for (const kind of ['resumed', 'seeked']) {
    const m = misses[kind].map(Math.abs);
    assert.ok(m.every((x, i) => i === 0 || x <= m[i - 1] + 1), `${kind} starts miss less each time (${misses[kind]})`);
    assert.ok(m.at(-1) <= 3, `${kind} starts hit the anchor by the third (${misses[kind]})`);
  }
  assert.ok(Math.abs(engine.startLeads.resumed - (lagMs - 80)) < 3, `resumed lead ${engine.startLeads.resumed}`);
  assert.ok(Math.abs(engine.startLeads.seeked - lagMs) < 3, `seeked lead ${engine.startLeads.seeked}`);
  engine.destroy();
});

test('a paused page that would resume is first moved exactly to the start position, so it starts as a seeked one', async () => {
  // Chromium's resumed element jumps its position ahead at play(); a seek avoids that start.
  const { time, serverNow, engine, player } = setup({ playLagMs: INITIAL_START_LEAD_MS.fine, resumeJumpMs: 80 });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: false, position: 10, anchor: serverNow() + 300, seq: 1 }));
  await time.advance(1500);
  // The room pauses 12 ms past where this page stopped (each page stops where it happens to be).
  player().pause();
  const stoppedAt = player().currentTime();
  engine.onPlayback(playback({ paused: true, position: stoppedAt + 0.012, seq: 2 }));
  await time.advance(500);
  assert.equal(player().startKind, 'resumed', 'standing a few ms off is left alone while paused');
  const seeksBefore = player().calls.filter(([name]) => name === 'seek').length;
  const anchor = serverNow() + 400;
  engine.onPlayback(playback({ paused: false, position: stoppedAt + 0.012, anchor, seq: 3 }));
  await time.advance(100);
  const seeks = player().calls.filter(([name]) => name === 'seek').slice(seeksBefore);
  assert.equal(seeks.length, 1, 'one seek, before the start');
  assert.ok(Math.abs(seeks[0][1] - (stoppedAt + 0.012)) < 1e-9, `to the start position (${seeks[0][1]})`);
  assert.equal(engine.startKind, 'seeked');
  await time.advance(700);
  const miss = (player().currentTime() - (stoppedAt + 0.012 + (serverNow() - anchor) / 1000)) * 1000;
  assert.ok(Math.abs(miss) <= 3, `started on time as a seeked start (${miss.toFixed(1)} ms)`);
  engine.destroy();
});

test('a seek while playing that arrives too late to be scheduled is started like a late join, not run into early', async () => {
  const { time, serverNow, engine, player } = setup({ playLagMs: INITIAL_START_LEAD_MS.fine, seekMs: 40 });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: false, position: 10, anchor: serverNow() + 300, seq: 1 }));
  await time.advance(2000);
  // The seek to 35 s comes 30 ms before its anchor: less than the player needs to get moving.
  const anchor = serverNow() + 30;
  engine.onPlayback(playback({ paused: false, position: 35, anchor, seq: 2 }));
  const errors = [];
  for (let t = 0; t < 40; t++) {
    await time.advance(25);
    errors.push({ paused: player().paused(), ms: (player().currentTime() - (35 + Math.max(0, serverNow() - anchor) / 1000)) * 1000 });
  }
  // It waits (paused, ahead) and then plays on the room's line: the last half second is in step.
  const last = errors.slice(-20);
  assert.ok(last.every((e) => !e.paused && Math.abs(e.ms) <= 3), `in step from half a second after the anchor (${last.map((e) => e.ms.toFixed(0))})`);
  engine.destroy();
});

test('a media clock running fast is held in sync by rate alone', async () => {
  const { time, serverNow, engine, player } = setup({ clockError: 0.004, playLagMs: INITIAL_START_LEAD_MS.fine });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: false, position: 0, anchor: serverNow() + 300, seq: 1 }));
  let worst = 0;
  await time.advance(2000);
  for (let i = 0; i < 60; i++) {
    await time.advance(500);
    worst = Math.max(worst, Math.abs((player().currentTime() - engine.expectedPosition()) * 1000));
  }
  assert.ok(worst <= 25, `stayed within ${worst} ms over 30 s`);
  assert.ok(!player().calls.some(([name]) => name === 'seek'), 'no seek while playing');
  assert.ok(player().calls.some(([name, rate]) => name === 'rate' && rate < 1), 'slowed down to stay in sync');
  engine.destroy();
});

test('joining mid-video lands on the live position without any rate correction', async () => {
  // Seeks take 150 ms, far more than the initial guess: the first one lands behind.
  const { time, serverNow, engine, player } = setup({ seekMs: 150, playLagMs: INITIAL_START_LEAD_MS.fine });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: false, position: 10, anchor: serverNow() - 20_000, seq: 7 }));
  await time.advance(3000);
  const drift = (player().currentTime() - engine.expectedPosition()) * 1000;
  assert.ok(Math.abs(drift) < 5, `drift ${drift} ms`);
  assert.ok(player().position > 32);
  assert.ok(!player().calls.some(([name]) => name === 'rate'), 'no rate nudge was needed');
  assert.ok(player().calls.filter(([name]) => name === 'seek').length <= 3);
  engine.destroy();
});

test('stale and malformed updates do not move the player', async () => {
  const { time, engine, player } = setup();
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ position: 12, seq: 5 }));
  await time.advance(300);
  assert.equal(engine.onPlayback(playback({ position: 40, seq: 4 })), 'stale');
  assert.equal(engine.onPlayback({ nonsense: true }), 'invalid');
  await time.advance(300);
  assert.ok(Math.abs(player().currentTime() - 12) < 0.001);
  engine.destroy();
});

// media_info (the video's length, once per video) joined ping and status with the watch
// party; what matters is that no control message is ever derived from the player.
test('the engine never sends anything but ping, status and media_info', async () => {
  const { time, serverNow, engine, sent } = setup({ playLagMs: 60, seekMs: 50 });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ seq: 1 }));
  engine.onPlayback(playback({ paused: false, position: 3, anchor: serverNow() + 200, seq: 2 }));
  await time.advance(2000);
  engine.onPlayback(playback({ paused: false, position: 30, anchor: serverNow() + 200, seq: 3 }));
  await time.advance(2000);
  engine.onPlayback(playback({ paused: true, position: 33, seq: 4 }));
  engine.onPlayback(playback({ video: OTHER, paused: true, position: 0, seq: 5 }));
  await time.advance(2000);
  const types = new Set(sent.map((m) => m.type));
  assert.deepEqual([...types].sort(), ['media_info', 'ping', 'status']);
  engine.destroy();
});

test('status goes out about once a second with rtt and drift', async () => {
  const { time, engine, sent } = setup();
  engine.onConnected();
  engine.onWelcome(playback({ position: 1, seq: 1 }));
  await time.advance(5000);
  const statuses = sent.filter((m) => m.type === 'status');
  assert.ok(statuses.length >= 4 && statuses.length <= 5, `${statuses.length} status messages in 5 s`);
  const last = statuses.at(-1);
  assert.equal(typeof last.rtt_ms, 'number');
  assert.equal(typeof last.drift_ms, 'number');
  assert.equal(last.buffering, false);
  assert.ok(Math.abs(last.rtt_ms - 30) < 1);
  engine.onDisconnected();
  const before = sent.length;
  await time.advance(3000);
  assert.equal(sent.length, before, 'silent while disconnected');
  engine.destroy();
});

test('loading another video replaces the player', async () => {
  const { time, engine, players } = setup();
  engine.onConnected();
  await time.advance(500);
  engine.onWelcome(playback({ seq: 1 }));
  await time.advance(100);
  engine.onPlayback(playback({ video: OTHER, seq: 2 }));
  await time.advance(100);
  assert.equal(players.length, 2);
  assert.ok(players[0].destroyed);
  assert.deepEqual(players[1].loaded, OTHER);
  engine.onPlayback(playback({ video: null, seq: 3 }));
  await time.advance(500);
  assert.ok(players[1].destroyed);
  assert.equal(engine.player, null);
  assert.equal(players.length, 2, 'no player churn while there is no video');
  engine.destroy();
});

test('blocked autoplay is reported and lifted by a user gesture', async () => {
  const { time, serverNow, engine, player } = setup({ blockAutoplay: true });
  const changes = [];
  engine.onChange = (e) => changes.push(e.autoplayBlocked);
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: false, position: 0, anchor: serverNow() + 100, seq: 1 }));
  await time.advance(500);
  assert.equal(engine.autoplayBlocked, true);
  assert.ok(changes.includes(true));
  const playCalls = player().calls.filter(([n]) => n === 'play').length;
  await time.advance(2000);
  assert.equal(player().calls.filter(([n]) => n === 'play').length, playCalls, 'no play() retry loop while blocked');
  player().blockAutoplay = false;
  await engine.resumeAfterGesture();
  await settle();
  assert.equal(engine.autoplayBlocked, false);
  await time.advance(3000);
  const drift = (player().currentTime() - engine.expectedPosition()) * 1000;
  assert.ok(Math.abs(drift) < 60, `caught up after the click (drift ${drift} ms)`);
  engine.destroy();
});

test('pause puts every player on the same frame', async () => {
  const { time, serverNow, engine, player } = setup({ playLagMs: 40 });
  engine.onConnected();
  await time.advance(800);
  engine.onWelcome(playback({ paused: false, position: 0, anchor: serverNow() + 100, seq: 1 }));
  await time.advance(3000);
  engine.onPlayback(playback({ paused: true, position: 2.5, seq: 2 }));
  await time.advance(500);
  assert.equal(player().paused(), true);
  assert.ok(Math.abs(player().currentTime() - 2.5) <= 0.04);
  engine.destroy();
});
