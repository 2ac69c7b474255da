// The authoritative playback clock as sent by the server, and its validation.
// While playing, the position at server time t is
//   position + max(0, t - anchor) / 1000 * rate
// so a future `anchor` means "start exactly then" for every member.
// The room itself may change the clock (`by: null`): a hold for buffering members
// (paused, `waiting_for` non-empty), its release (a scheduled start), the end of a video
// (`ended`) and the learned `duration`; those come with a higher `seq` like any change.

export const MIN_RATE = 0.25;
export const MAX_RATE = 4;
const YOUTUBE_ID = /^[A-Za-z0-9_-]{11}$/;
/** A library path: `/media/` and one or more non-empty names (an HLS folder's playlist is two). */
const LIBRARY_URL = /^\/media\/(?!\.)[^/]+(\/(?!\.)[^/]+)*$/;
const MAX_SUBTITLES = 16;

function isPlayableUrl(url) {
  return typeof url === 'string' && (/^https?:\/\//i.test(url) || LIBRARY_URL.test(url));
}

/** Whether a video URL is an HLS stream (a `.m3u8` playlist, query and fragment aside). */
export function isHlsUrl(url) {
  return typeof url === 'string' && /\.m3u8$/i.test(url.split(/[?#]/)[0]);
}

/**
 * The subtitle tracks of a raw video ([{label, lang, url}]): malformed tracks are dropped
 * (the server checked them; an odd one must not cost the video itself).
 */
function parseSubtitles(raw) {
  if (!Array.isArray(raw)) return [];
  return raw
    .filter((t) => t && typeof t === 'object' && typeof t.label === 'string' && t.label.trim() && isPlayableUrl(t.url))
    .slice(0, MAX_SUBTITLES)
    .map((t) => ({ label: t.label, lang: typeof t.lang === 'string' ? t.lang : '', url: t.url }));
}

/** Returns a clean Video object or null when `video` is not a valid one. */
export function parseVideo(video) {
  if (!video || typeof video !== 'object') return null;
  if (video.kind === 'youtube' && typeof video.id === 'string' && YOUTUBE_ID.test(video.id)) {
    return { kind: 'youtube', id: video.id };
  }
  if (video.kind === 'url' && isPlayableUrl(video.url)) {
    const subtitles = parseSubtitles(video.subtitles);
    return subtitles.length ? { kind: 'url', url: video.url, subtitles } : { kind: 'url', url: video.url };
  }
  return null;
}

export function sameVideo(a, b) {
  if (!a || !b) return a === b;
  if (a.kind !== b.kind) return false;
  return a.kind === 'youtube' ? a.id === b.id : a.url === b.url && sameSubtitles(a.subtitles, b.subtitles);
}

/** Whether two subtitle lists name the same tracks (a changed list reloads the player's tracks). */
function sameSubtitles(a = [], b = []) {
  return a.length === b.length && a.every((t, i) => t.url === b[i].url && t.label === b[i].label && t.lang === b[i].lang);
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
  // The watch-party fields; a server without them means "unknown length, not ended, no hold".
  let duration = null;
  if (raw.duration !== null && raw.duration !== undefined) {
    if (!Number.isFinite(raw.duration) || raw.duration <= 0) return null;
    duration = raw.duration;
  }
  if (raw.ended !== undefined && typeof raw.ended !== 'boolean') return null;
  const ended = raw.ended === true;
  let waitingFor = [];
  if (raw.waiting_for !== undefined && raw.waiting_for !== null) {
    if (!Array.isArray(raw.waiting_for) || !raw.waiting_for.every((id) => typeof id === 'string' && id)) return null;
    waitingFor = [...raw.waiting_for];
  }
  let holdUntil = null;
  if (raw.hold_until !== undefined && raw.hold_until !== null) {
    if (!Number.isFinite(raw.hold_until)) return null;
    holdUntil = raw.hold_until;
  }
  return { video, paused, position, rate, anchor, seq, duration, ended, waiting_for: waitingFor, hold_until: holdUntil };
}

/** Whether `playback` is a hold: the room paused itself until buffering members are ready. */
export function isHold(playback) {
  return !!playback && playback.paused && playback.waiting_for.length > 0;
}

/** Position (seconds) of `playback` at server time `serverMs`. */
export function positionAt(playback, serverMs) {
  if (playback.paused) return playback.position;
  return playback.position + (Math.max(0, serverMs - playback.anchor) / 1000) * playback.rate;
}

export class PlaybackModel {
  constructor() {
    this.current = null;
    this.previous = null;
    /** Server time the current hold began (its first `anchor`), or null when not on hold. */
    this.holdStartedAt = null;
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
    this.previous = previous;
    this.current = playback;
    this.videoChanged = !previous || !sameVideo(previous.video, playback.video);
    this.trackHold(previous, playback, fresh);
    return 'applied';
  }

  /**
   * Remembers when the current hold began. A paused clock's `anchor` is when its position
   * was set, and the room re-pauses (new anchor) each time the list of members it waits for
   * changes, so the hold's start is its first `anchor`, kept while the hold goes on.
   */
  trackHold(previous, playback, fresh) {
    if (!isHold(playback)) {
      this.holdStartedAt = null;
    } else if (fresh || !isHold(previous) || !sameVideo(previous.video, playback.video) || this.holdStartedAt === null) {
      this.holdStartedAt = playback.anchor;
    }
  }

  /**
   * Server time at which the current hold plays on at the latest: the room says so
   * (`hold_until`); a server that does not is assumed to count `timeoutS` from the hold's start.
   */
  holdDeadline(timeoutS) {
    if (!isHold(this.current)) return null;
    if (this.current.hold_until !== null) return this.current.hold_until;
    if (this.holdStartedAt === null || !Number.isFinite(timeoutS)) return null;
    return this.holdStartedAt + timeoutS * 1000;
  }

  /** True while the room is paused waiting for buffering members. */
  get onHold() {
    return isHold(this.current);
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
