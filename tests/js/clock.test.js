import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClockSync, bounds, sampleFromPong, pingDelayMs, BURST_COUNT, STEADY_INTERVAL_MS } from '../../frontend/js/clock.js';

/** Feeds `clock` one exchange taking `up` and `down` ms, server clock `offset` ahead, sent at `t0`. */
function exchange(clock, { t0, up, down, offset }) {
  const t1 = t0 + up + offset;
  const t2 = t1 + 1; // server processing, excluded from rtt
  return clock.onPong({ t0, t1, t2 }, t0 + up + 1 + down);
}

test('one exchange gives the NTP offset and round trip', () => {
  // Server clock is 5000 ms ahead; 10 ms each way; 2 ms server processing.
  const sample = sampleFromPong(100, 5110, 5112, 122);
  assert.deepEqual(sample, { offset: 5000, rtt: 20, at: 122 });
});

test('impossible timestamps are rejected', () => {
  assert.equal(sampleFromPong(100, 5110, 5105, 122), null, 'server sent before it received');
  assert.equal(sampleFromPong(100, 5110, 5112, 90), null, 'received before sent');
  assert.equal(sampleFromPong(100, 5000, 5100, 150), null, 'server time longer than round trip');
  assert.equal(sampleFromPong(100, NaN, 5112, 122), null);
  assert.equal(sampleFromPong('100', 5110, 5112, 122), null);
});

test('the estimate is the middle of what every sample allows', () => {
  const clock = new ClockSync({ now: () => 0 });
  const offset = 1_700_000_000_000;
  // Lopsided samples each bound one side: a fast trip out caps the offset from above, a fast
  // trip back from below; no single exchange needs to be fast both ways.
  const exchanges = [
    { t0: 0, up: 3, down: 40 }, // offset in [true - 40, true + 3]
    { t0: 100, up: 200, down: 10 }, // 95 ms too high alone
    { t0: 500, up: 30, down: 3 }, // offset in [true - 3, true + 30]
    { t0: 900, up: 10, down: 300 }, // 145 ms too low alone
  ];
  for (const e of exchanges) assert.ok(exchange(clock, { ...e, offset }));
  assert.deepEqual(bounds(clock.samples), { lower: offset - 3, upper: offset + 3 });
  assert.equal(clock.offsetMs, offset);
  assert.equal(clock.serverTime(2000), 2000 + clock.offsetMs);
  assert.equal(clock.clientTime(clock.serverTime(1234)), 1234);
  // Reported rtt is the window median (typical delay): of 43, 210, 33, 310.
  assert.equal(clock.rttMs, (43 + 210) / 2);
});

test('on a link with ±20 ms of jitter each way, the burst gets within a few ms', () => {
  // A fixed pseudo-random sequence, so the figures are the same on every run.
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const offset = 12_345;
  let squares = 0;
  let worst = 0;
  const trials = 200;
  for (let trial = 0; trial < trials; trial++) {
    const clock = new ClockSync({ now: () => 0 });
    for (let i = 0; i < BURST_COUNT; i++) {
      exchange(clock, { t0: i * 120, up: 40 + (random() * 2 - 1) * 20, down: 40 + (random() * 2 - 1) * 20, offset });
    }
    const error = clock.offsetMs - offset;
    squares += error * error;
    worst = Math.max(worst, Math.abs(error));
  }
  // Each leg's fastest trip is close to the 20 ms floor after 16 tries; the median of the
  // lowest-rtt third, used before, gave an rms of 3.6 ms here.
  const rms = Math.sqrt(squares / trials);
  assert.ok(rms < 2, `rms error ${rms.toFixed(2)} ms`);
  assert.ok(worst < 8, `worst error ${worst.toFixed(2)} ms`);
});

test('samples that contradict newer ones (the clocks moved apart) are dropped', () => {
  const clock = new ClockSync({ now: () => 0 });
  for (let i = 0; i < 5; i++) exchange(clock, { t0: i * 100, up: 5, down: 5, offset: 1000 });
  assert.equal(clock.offsetMs, 1000);
  // The server's clock is now 200 ms further ahead: the new interval cannot meet the old ones.
  exchange(clock, { t0: 1000, up: 5, down: 5, offset: 1200 });
  assert.equal(clock.samples.length, 1);
  assert.equal(clock.offsetMs, 1200);
  // A slow new sample that still overlaps the old ones leaves them in place.
  exchange(clock, { t0: 1100, up: 50, down: 50, offset: 1200 });
  assert.equal(clock.samples.length, 2);
  assert.equal(clock.offsetMs, 1200);
});

test('window keeps only recent samples', () => {
  let now = 0;
  const clock = new ClockSync({ now: () => now, windowSize: 4 });
  // An old, very fast sample with offset 0 ...
  now = 2;
  clock.onPong({ t0: 0, t1: 1, t2: 1 });
  // ... then four slower ones from a clock that has moved to offset 50.
  for (let i = 1; i <= 4; i++) {
    const t0 = i * 1000;
    now = t0 + 20;
    clock.onPong({ t0, t1: t0 + 10 + 50, t2: t0 + 10 + 50 });
  }
  assert.equal(clock.samples.length, 4);
  assert.equal(clock.offsetMs, 50);
});

test('unsynced clock says so and ignores junk pongs', () => {
  let now = 50_000;
  const clock = new ClockSync({ now: () => now });
  assert.equal(clock.synced, false);
  assert.equal(clock.serverTime(), null);
  assert.equal(clock.onPong(null), null);
  assert.equal(clock.onPong({ t0: 'x' }), null);
  assert.equal(clock.onPong({ t0: 1, t1: 2, t2: 3 }), null, 'ping older than the age limit');
  assert.equal(clock.synced, false);
  const ping = clock.makePing();
  assert.deepEqual(ping, { type: 'ping', t0: 50_000 });
});

test('ping schedule: a quick burst, then a steady interval', () => {
  const delays = Array.from({ length: BURST_COUNT + 3 }, (_, i) => pingDelayMs(i));
  assert.ok(delays.slice(0, BURST_COUNT).every((d) => d < 500));
  assert.ok(delays.slice(BURST_COUNT).every((d) => d === STEADY_INTERVAL_MS));
});

test('reset starts measuring afresh but keeps the estimate until a new sample', () => {
  let now = 0;
  const clock = new ClockSync({ now: () => now });
  clock.onPong({ t0: 0, t1: 5010, t2: 5010 }, 20);
  assert.equal(clock.offsetMs, 5000);
  clock.reset();
  assert.equal(clock.samples.length, 0);
  assert.equal(clock.offsetMs, 5000, 'a playing video keeps its course meanwhile');
  assert.ok(clock.synced);
  // The restarted server's clock is 40 ms further on: the first new sample alone decides.
  now = 1000;
  clock.onPong({ t0: 1000, t1: 6050, t2: 6050 }, 1020);
  assert.equal(clock.offsetMs, 5040);
});
