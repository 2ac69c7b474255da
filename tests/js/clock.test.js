import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClockSync, sampleFromPong, pingDelayMs, BURST_COUNT, STEADY_INTERVAL_MS } from '../../frontend/js/clock.js';

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

test('the estimate prefers the lowest-rtt samples', () => {
  let now = 0;
  const clock = new ClockSync({ now: () => now, best: 3 });
  const trueOffset = 1_700_000_000_000;
  // Symmetric fast samples agree on the true offset; slow ones are skewed by asymmetric delay.
  const exchanges = [
    { t0: 0, up: 5, down: 5 },
    { t0: 100, up: 200, down: 10 }, // 190 ms asymmetry: offset off by +95 ms
    { t0: 500, up: 4, down: 6 },
    { t0: 900, up: 10, down: 300 }, // off by -145 ms
    { t0: 1500, up: 6, down: 4 },
  ];
  for (const { t0, up, down } of exchanges) {
    const t1 = t0 + up + trueOffset;
    const t2 = t1 + 1;
    now = t0 + up + 1 + down;
    assert.ok(clock.onPong({ t0, t1, t2 }));
  }
  assert.ok(Math.abs(clock.offsetMs - trueOffset) <= 1, `offset ${clock.offsetMs - trueOffset} ms from truth`);
  assert.equal(clock.serverTime(2000), 2000 + clock.offsetMs);
  assert.equal(clock.clientTime(clock.serverTime(1234)), 1234);
  // Reported rtt is the window median (typical delay), here 10 ms.
  assert.equal(clock.rttMs, 10);
});

test('window keeps only recent samples', () => {
  let now = 0;
  const clock = new ClockSync({ now: () => now, windowSize: 4, best: 1 });
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
