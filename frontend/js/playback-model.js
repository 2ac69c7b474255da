// The authoritative playback clock as sent by the server, and its validation.
// While playing, the position at server time t is
//   position + max(0, t - anchor) / 1000 * rate
// so a future `anchor` means "start exactly then" for every member.

export const MIN_RATE = 0.25;
export const MAX_RATE = 4;
const YOUTUBE_ID = /^[A-Za-z0-9_-]{11}$/;

/** Returns a clean Video object or null when `video` is not a valid one. */
export function parseVideo(video) {
  if (!video || typeof video !== 'object') return null;
  if (video.kind === 'youtube' && typeof video.id === 'string' && YOUTUBE_ID.test(video.id)) {
    return { kind: 'youtube', id: video.id };
  }
  if (video.kind === 'url' && typeof video.url === 'string') {
    const url = video.url;
    if (/^https?:\/\//i.test(url) || /^\/media\/[^/]+$/.test(url)) return { kind: 'url', url };
  }
  return null;
}

export function sameVideo(a, b) {
  if (!a || !b) return a === b;
  if (a.kind !== b.kind) return false;
  return a.kind === 'youtube' ? a.id === b.id : a.url === b.url;
}

/** Returns a clean Playback object or null when `raw` is malformed. */
export function parsePlayback(raw) {
  if (!raw || typeof raw !== 'object') return null;
  const { paused, position, rate, anchor, seq } = raw;
  if (typeof paused !== 'boolean') return null;
  if (!Number.isFinite(position) || position < 0) return null;
  if (!Number.isFinite(rate) || rate < MIN_RATE || rate > MAX_RATE) return null;
  if (!Number.isFinite(anchor)) return null;
  if (!Number.isInteger(seq) || seq < 0) return null;
  let video = null;
  if (raw.video !== null && raw.video !== undefined) {
    video = parseVideo(raw.video);
    if (!video) return null;
  }
  return { video, paused, position, rate, anchor, seq };
}

/** Position (seconds) of `playback` at server time `serverMs`. */
export function positionAt(playback, serverMs) {
  if (playback.paused) return playback.position;
  return playback.position + (Math.max(0, serverMs - playback.anchor) / 1000) * playback.rate;
}

export class PlaybackModel {
  constructor() {
    this.current = null;
  }

  /**
   * Applies a playback update. Returns 'stale', 'invalid' or 'applied'.
   * `fresh` accepts any seq: used for `welcome`, which starts a new session
   * (the server may have restarted and begun counting again).
   */
  apply(raw, { fresh = false } = {}) {
    const playback = parsePlayback(raw);
    if (!playback) return 'invalid';
    if (!fresh && this.current && playback.seq < this.current.seq) return 'stale';
    const previous = this.current;
    this.current = playback;
    this.videoChanged = !previous || !sameVideo(previous.video, playback.video);
    return 'applied';
  }

  get video() {
    return this.current ? this.current.video : null;
  }

  positionAt(serverMs) {
    return this.current ? positionAt(this.current, serverMs) : 0;
  }

  /** Milliseconds until the scheduled start, or 0 when already running or paused. */
  msUntilStart(serverMs) {
    if (!this.current || this.current.paused) return 0;
    return Math.max(0, this.current.anchor - serverMs);
  }

  /** True while the media should be moving at server time `serverMs`. */
  isRunning(serverMs) {
    return !!this.current && !this.current.paused && serverMs >= this.current.anchor;
  }
}
