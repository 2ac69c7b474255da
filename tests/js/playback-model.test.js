import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PlaybackModel, parsePlayback, parseVideo, positionAt, sameVideo } from '../../frontend/js/playback-model.js';

const video = { kind: 'url', url: '/media/clip-a-60s.mp4' };
// As the server sends it (the watch-party fields at their usual values).
const base = { video, paused: false, position: 10, rate: 1, anchor: 1_000_000, seq: 3, duration: null, ended: false, waiting_for: [], hold_until: null };

test('position follows the contract formula', () => {
  assert.equal(positionAt(base, 1_000_000), 10);
  assert.equal(positionAt(base, 999_000), 10, 'before the anchor the clock stands still');
  assert.equal(positionAt(base, 1_002_500), 12.5);
  assert.equal(positionAt({ ...base, rate: 2 }, 1_001_000), 12);
  assert.equal(positionAt({ ...base, paused: true }, 1_010_000), 10);
});

test('stale updates are dropped by seq', () => {
  const model = new PlaybackModel();
  assert.equal(model.apply(base), 'applied');
  assert.equal(model.apply({ ...base, seq: 2, position: 99 }), 'stale');
  assert.equal(model.current.position, 10);
  assert.equal(model.apply({ ...base, seq: 4, position: 20 }), 'applied');
  assert.equal(model.current.position, 20);
  assert.equal(model.videoChanged, false);
  // A welcome after a server restart may carry a smaller seq: it is taken as fresh.
  assert.equal(model.apply({ ...base, seq: 0, position: 1 }, { fresh: true }), 'applied');
  assert.equal(model.current.seq, 0);
});

test('scheduled start', () => {
  const model = new PlaybackModel();
  model.apply(base);
  assert.equal(model.msUntilStart(999_700), 300);
  assert.equal(model.isRunning(999_700), false);
  assert.equal(model.isRunning(1_000_000), true);
  assert.equal(model.msUntilStart(1_000_100), 0);
});

test('malformed playback is rejected, never half-applied', () => {
  const model = new PlaybackModel();
  model.apply(base);
  for (const bad of [
    null, 'x', 42, {},
    { ...base, paused: 'no' },
    { ...base, position: -1 },
    { ...base, position: Infinity },
    { ...base, rate: 0 },
    { ...base, rate: 10 },
    { ...base, anchor: null },
    { ...base, seq: 1.5 },
    { ...base, seq: 9, video: { kind: 'url', url: 'javascript:alert(1)' } },
    { ...base, seq: 9, video: { kind: 'youtube', id: 'short' } },
  ]) {
    assert.equal(model.apply(bad), 'invalid', JSON.stringify(bad));
  }
  assert.deepEqual(model.current, base);
});

test('video validation', () => {
  assert.deepEqual(parseVideo({ kind: 'youtube', id: 'dQw4w9WgXcQ', extra: 1 }), { kind: 'youtube', id: 'dQw4w9WgXcQ' });
  assert.deepEqual(parseVideo({ kind: 'url', url: 'https://example.com/a.mp4' }), { kind: 'url', url: 'https://example.com/a.mp4' });
  assert.deepEqual(parseVideo(video), video);
  assert.equal(parseVideo({ kind: 'url', url: '/media/../etc/passwd' }), null);
  assert.equal(parseVideo({ kind: 'url', url: 'data:video/mp4;base64,AAAA' }), null);
  assert.equal(parseVideo({ kind: 'file' }), null);
  assert.equal(parsePlayback({ ...base, video: null }).video, null);
  assert.ok(sameVideo(video, { ...video }));
  assert.ok(!sameVideo(video, null));
  assert.ok(sameVideo(null, null));
});
