import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseVideoInput, describeVideo } from '../../frontend/js/video-input.js';
import { roomIdFromInput, roomPath } from '../../frontend/js/room-link.js';

test('YouTube links and ids in their usual shapes', () => {
  const id = 'dQw4w9WgXcQ';
  for (const text of [
    id,
    ` ${id} `,
    `https://www.youtube.com/watch?v=${id}`,
    `https://www.youtube.com/watch?feature=share&v=${id}&t=42s`,
    `youtube.com/watch?v=${id}`,
    `https://m.youtube.com/watch?v=${id}`,
    `https://youtu.be/${id}?si=abc`,
    `https://www.youtube.com/embed/${id}`,
    `https://www.youtube.com/shorts/${id}`,
    `https://www.youtube-nocookie.com/embed/${id}?rel=0`,
  ]) {
    assert.deepEqual(parseVideoInput(text), { video: { kind: 'youtube', id } }, text);
  }
});

test('media URLs', () => {
  assert.deepEqual(parseVideoInput('https://cdn.example.org/films/a.mp4'), { video: { kind: 'url', url: 'https://cdn.example.org/films/a.mp4' } });
  assert.deepEqual(parseVideoInput('/media/clip-a-60s.mp4'), { video: { kind: 'url', url: '/media/clip-a-60s.mp4' } });
});

test('bad input gets an explanation, not an exception', () => {
  for (const text of ['', '   ', null, undefined, 'javascript:alert(1)', 'ftp://x/y.mp4', 'https://www.youtube.com/watch?v=short', 'http://', 'not a url at all']) {
    const result = parseVideoInput(text);
    assert.equal(typeof result.error, 'string', String(text));
    assert.equal(result.video, undefined);
  }
});

test('video labels', () => {
  assert.equal(describeVideo(null), 'No video');
  assert.equal(describeVideo({ kind: 'youtube', id: 'dQw4w9WgXcQ' }), 'YouTube dQw4w9WgXcQ');
  assert.equal(describeVideo({ kind: 'url', url: '/media/my%20clip.mp4' }), 'my clip.mp4');
  assert.equal(describeVideo({ kind: 'url', url: 'https://example.org/v/film.webm' }), 'film.webm (example.org)');
});

test('room ids from links and bare ids', () => {
  assert.equal(roomIdFromInput('Ab3_x-9Q'), 'Ab3_x-9Q');
  assert.equal(roomIdFromInput('http://127.0.0.1:8080/r/Ab3_x-9Q'), 'Ab3_x-9Q');
  assert.equal(roomIdFromInput('https://watch.example/r/Ab3_x-9Q/?x=1'), 'Ab3_x-9Q');
  assert.equal(roomIdFromInput('/r/Ab3_x-9Q#chat'), 'Ab3_x-9Q');
  assert.equal(roomIdFromInput(''), null);
  assert.equal(roomIdFromInput('https://example.com/'), null);
  assert.equal(roomIdFromInput('<script>'), null);
  assert.equal(roomIdFromInput('/r/../../etc'), null);
  assert.equal(roomPath('Ab3_x-9Q'), '/r/Ab3_x-9Q');
});

test('a malformed escape in a video URL is shown, never thrown', () => {
  assert.equal(describeVideo({ kind: 'url', url: '/media/%E0.mp4' }), '%E0.mp4');
  assert.equal(describeVideo({ kind: 'url', url: '/media/my%20clip.mp4' }), 'my clip.mp4');
  assert.equal(describeVideo({ kind: 'url', url: 'https://x.example/a%E0%A4.mp4' }), 'a%E0%A4.mp4 (x.example)');
  assert.equal(describeVideo({ kind: 'url' }), 'Unknown video');
  assert.equal(describeVideo(null), 'No video');
});
