// Player for direct media URLs and the media library, on an HTML5 <video>.
// Native controls are off: every control goes through the room UI, so the element
// never changes state on its own because a person clicked it.
// An HLS playlist (`.m3u8`) plays natively where the browser can (Safari, recent Chromium)
// and through the vendored hls.js (Media Source Extensions) elsewhere; either way the
// sync engine sees the same <video> element. Subtitle tracks are <track> elements, off
// until this viewer picks one; their cues follow the element's position, which the engine
// keeps on the room's clock.

import { isHlsUrl } from '../playback-model.js';

const SEEK_TIMEOUT_MS = 8000;
/** Rates further than this from 1.0 are a room's chosen speed, not a sync nudge (max 8 %). */
const PITCH_KEPT_BEYOND = 0.1;
const HLS_MODULE = '/vendor/hls.js/hls.min.mjs';
/** hls.js transmuxes in this worker, loaded from our own origin (no blob: workers needed). */
const HLS_WORKER = '/vendor/hls.js/hls.worker.js';
const HLS_MIME = 'application/vnd.apple.mpegurl';
/**
 * watchFirstMotion looks this long at most. A callback and its run take at most ~50 ms, but
 * a page's first play() opens the audio output first: in the sync test two pages of three
 * saw nothing within 90 ms of theirs once.
 */
const WATCH_MS = 250;
/**
 * The volume a probe plays at: some 80 dB down, out of hearing, but not 0. Chromium renders a
 * silent (muted or volume 0) element through a null sink, on no output's grid at all.
 */
const PROBE_VOLUME = 1e-4;
/** Three looks in a row whose onsets agree this well (ms) show the media truly moving. */
const MOTION_AGREE_MS = 1;

let hlsModule = null;

/** The next look at a playing element's currentTime: a plain timer of ~1 ms (4 ms once nested). */
function nextLook() {
  return new Promise((resolve) => setTimeout(resolve, 1));
}

/** Loads hls.js once per page, only when an HLS video needs it. */
function loadHls() {
  if (!hlsModule) {
    hlsModule = import(HLS_MODULE).then((m) => m.default, (error) => {
      hlsModule = null;
      throw error;
    });
  }
  return hlsModule;
}

/** Whether this browser plays HLS in a plain <video> by itself. */
export function nativeHls(video = document.createElement('video')) {
  return video.canPlayType(HLS_MIME) !== '' || video.canPlayType('application/x-mpegURL') !== '';
}

export class Html5Player {
  constructor(container) {
    this.fineRate = true;
    this.kind = 'html5';
    this.video = document.createElement('video');
    this.video.className = 'player-media';
    this.video.playsInline = true;
    this.video.preload = 'auto';
    this.video.setAttribute('playsinline', '');
    this.video.preservesPitch = false; // see setRate
    this.waiting = false;
    /** How the current video plays: 'file', 'native-hls' or 'hls.js'. */
    this.engine = 'file';
    /** The hls.js instance while one plays the video. */
    this.hls = null;
    /** The video's subtitle tracks ({label, lang, url}) and the one shown (index) or null. */
    this.subtitles = [];
    this.subtitleShown = null;
    /**
     * How the next play() will start: 'fresh' (never played since loading), 'seeked' (moved
     * by a seek since it last played) or 'resumed' (paused from playing, not moved since).
     * Chromium starts the three differently: a resumed element jumps ahead by the audio it
     * had buffered, so each kind has its own learned start latency (sync-engine.js).
     */
    this.startKind = 'fresh';
    /**
     * The person's volume while a probe's is in force (see probe), else null. It comes back
     * with the next real play(). (Put back 30 ms after it instead, the page's first start
     * moved two periods late on one page in 2 of 3 sync-test runs; at play(), in none of 3.)
     */
    this.volumeAfterProbe = null;
    /** Set by the sync engine: called whenever the element may have started or stopped waiting for data. */
    this.onBufferingChange = null;
    const changed = () => {
      if (this.onBufferingChange) this.onBufferingChange();
    };
    this.onWaiting = () => {
      this.waiting = true;
      changed();
    };
    this.onFlowing = () => {
      this.waiting = false;
      changed();
    };
    this.video.addEventListener('waiting', this.onWaiting);
    for (const name of ['playing', 'canplay', 'seeked', 'pause']) this.video.addEventListener(name, this.onFlowing);
    // These change readyState or seeking without saying whether data flows.
    for (const name of ['seeking', 'canplaythrough', 'loadeddata', 'stalled', 'emptied', 'play']) this.video.addEventListener(name, changed);
    container.append(this.video);
  }

  load(video) {
    this.setSubtitleTracks(Array.isArray(video.subtitles) ? video.subtitles : []);
    this.startKind = 'fresh';
    if (!isHlsUrl(video.url) || nativeHls(this.video)) {
      if (isHlsUrl(video.url)) this.engine = 'native-hls';
      return this.loadSource(video.url);
    }
    this.engine = 'hls.js';
    return loadHls().then((Hls) => {
      if (!Hls.isSupported()) throw new Error('this browser cannot play HLS streams');
      if (!this.video.isConnected) throw new Error('player closed');
      const hls = new Hls({ workerPath: HLS_WORKER, enableWorker: true, lowLatencyMode: false, startPosition: 0 });
      this.hls = hls;
      return new Promise((resolve, reject) => {
        const el = this.video;
        const cleanup = () => {
          el.removeEventListener('loadedmetadata', onReady);
          hls.off(Hls.Events.ERROR, onError);
        };
        const onReady = () => {
          cleanup();
          // Later fatal errors (the network went away mid-stream): try to recover once,
          // as hls.js advises; what cannot be recovered shows as a stalled player.
          hls.on(Hls.Events.ERROR, (_event, data) => {
            if (!data.fatal) return;
            if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
            else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
          });
          resolve();
        };
        const onError = (_event, data) => {
          if (!data.fatal) return;
          cleanup();
          reject(new Error(`HLS stream failed (${data.details})`));
        };
        el.addEventListener('loadedmetadata', onReady);
        hls.on(Hls.Events.ERROR, onError);
        hls.loadSource(video.url);
        hls.attachMedia(el);
      });
    });
  }

  loadSource(url) {
    return new Promise((resolve, reject) => {
      const el = this.video;
      const cleanup = () => {
        el.removeEventListener('loadedmetadata', onReady);
        el.removeEventListener('error', onError);
      };
      const onReady = () => {
        cleanup();
        resolve();
      };
      const onError = () => {
        cleanup();
        const code = el.error ? el.error.code : 0;
        reject(new Error(code === 4 ? 'format not supported or file not found' : `media error ${code}`));
      };
      el.addEventListener('loadedmetadata', onReady);
      el.addEventListener('error', onError);
      el.src = url;
      el.load();
    });
  }

  /** Replaces the element's <track>s by these; every one starts off. */
  setSubtitleTracks(tracks) {
    for (const old of this.video.querySelectorAll('track')) old.remove();
    this.subtitles = tracks.map((t) => ({ label: t.label, lang: t.lang || '', url: t.url }));
    this.subtitleShown = null;
    // A subtitle file on another origin is fetched with CORS (the only way a <track> may
    // load one); the video itself then needs CORS too, so only then.
    const crossOrigin = this.subtitles.some((t) => new URL(t.url, location.href).origin !== location.origin);
    if (crossOrigin) this.video.crossOrigin = 'anonymous';
    else this.video.removeAttribute('crossorigin');
    for (const t of this.subtitles) {
      const track = document.createElement('track');
      track.kind = 'subtitles';
      track.label = t.label;
      if (t.lang) track.srclang = t.lang;
      track.src = t.url;
      this.video.append(track);
    }
    this.showSubtitle(null);
  }

  /** Shows subtitle track `index` (of `this.subtitles`), or none with null. Local to this page. */
  showSubtitle(index) {
    const tracks = [...this.video.textTracks].filter((t) => t.kind === 'subtitles');
    this.subtitleShown = Number.isInteger(index) && index >= 0 && index < tracks.length ? index : null;
    tracks.forEach((track, i) => {
      track.mode = i === this.subtitleShown ? 'showing' : 'disabled';
    });
  }

  /** Text of the cues shown right now (for the page's test hook). */
  activeCueTexts() {
    if (this.subtitleShown === null) return [];
    const track = [...this.video.textTracks].filter((t) => t.kind === 'subtitles')[this.subtitleShown];
    return track && track.activeCues ? [...track.activeCues].map((cue) => cue.text) : [];
  }

  currentTime() {
    return this.video.currentTime;
  }

  duration() {
    const d = this.video.duration;
    return Number.isFinite(d) ? d : NaN;
  }

  paused() {
    return this.video.paused;
  }

  buffering() {
    return !this.video.paused && (this.waiting || this.video.readyState < 3);
  }

  /** Whether the element has data to play from where it stands (paused or not). */
  canPlay() {
    return !this.video.seeking && this.video.readyState >= 3;
  }

  play() {
    if (this.volumeAfterProbe !== null) {
      this.video.volume = this.volumeAfterProbe;
      this.volumeAfterProbe = null;
    }
    return this.video.play();
  }

  /**
   * Watches a start just begun by play() for the audio output's callback that took it up
   * (start-grid.js). From that callback currentTime runs at the media's pace for one
   * buffer's worth, then stands still until the sound comes out: a look during that run
   * tells when it began (now minus how far it ran), and where it stops tells how much media
   * one callback takes (its period). Looks every few ms on plain timers, not in a tight
   * loop: three pages starting at once on two cores must not starve each other's media.
   * Resolves {at, runMs, gapMs}, or null if nothing moved in time or the element stopped.
   * `gapMs` is how long before the first look that saw it move the last look saw it
   * standing: when that gap is wider than the run seen, a busy page looked late and `at`
   * rests on the run alone. With `firstChange`, resolves at the first change seen, runMs
   * null.
   */
  async watchFirstMotion(now = () => performance.now(), { firstChange = false } = {}) {
    const el = this.video;
    const from = el.currentTime;
    const began = now();
    let at = Infinity;
    let last = from;
    let stillAt = began; // the last look that saw it standing
    let gapMs = null;
    while (!el.paused && now() - began < WATCH_MS) {
      await nextLook();
      const t = now();
      const position = el.currentTime;
      if (position !== from) {
        if (position === last) return { at, runMs: (position - from) * 1000, gapMs };
        if (gapMs === null) gapMs = t - stillAt;
        // Still running: it began as long ago as it ran (a look after it stopped would say later).
        at = Math.min(at, t - (position - from) * 1000);
        if (firstChange) return { at, runMs: null, gapMs };
      } else {
        stillAt = t;
      }
      last = position;
    }
    return null;
  }

  /**
   * Whether probe() can show anything now: paused, and not silent (a silent element has no
   * grid). Only for plain files, where probes were measured: an HLS stream (hls.js feeding
   * Media Source Extensions, or Chromium's own player) was not tried with them.
   */
  probeable() {
    const el = this.video;
    return this.engine === 'file' && el.paused && !el.muted && el.volume > 0;
  }

  /**
   * Plays the paused element for a moment, out of hearing and before it truly moves, to show
   * its audio output's callback grid (start-grid.js) before a start needs it: the pre-roll
   * of docs/synchronization.md, section 3, step 7. play() at PROBE_VOLUME, the callback that
   * takes it up seen as watchFirstMotion sees it, and with `untilMotion` on until the media
   * truly moves (the output's latency after the callback, ~70 ms; a frame at most has
   * moved by then), then paused at once; with `quick`, paused at the callback's first sign
   * instead (runMs null), only to keep the output running. Resolves {playAt, at, runMs,
   * motionAt} (motionAt null without `untilMotion`), or null if the element cannot be
   * probed (probeable), play() was refused, or nothing was seen in time. The element is left
   * paused wherever the probe stopped it; the engine moves it next.
   */
  async probe({ untilMotion = false, quick = false, now = () => performance.now() } = {}) {
    const el = this.video;
    if (!this.probeable()) return null;
    if (this.volumeAfterProbe === null) this.volumeAfterProbe = el.volume;
    el.volume = PROBE_VOLUME;
    const from = el.currentTime;
    const playAt = now();
    // Not awaited: Chromium resolves it long after the media moved. A refusal (autoplay)
    // pauses the element, which ends the watch below.
    el.play().catch(() => {});
    try {
      const seen = await this.watchFirstMotion(now, { firstChange: quick && !untilMotion });
      if (!seen || !untilMotion) return seen && { playAt, ...seen, motionAt: null };
      // The run stood still one buffer ahead. Once the media truly moves (from `from`,
      // begun the output's latency after the callback), every look gives the same onset:
      // now minus how far it has moved. Before that (the run's last bit, added late, and
      // the first steps of motion, which currentTime reports in jumps) looks disagree.
      let last = el.currentTime;
      let lastOnset = null;
      let agreeing = 0;
      while (!el.paused && now() - playAt < WATCH_MS * 2) {
        await nextLook();
        const position = el.currentTime;
        if (position === last) continue;
        last = position;
        const onset = now() - (position - from) * 1000;
        agreeing = lastOnset !== null && Math.abs(onset - lastOnset) <= MOTION_AGREE_MS ? agreeing + 1 : 0;
        lastOnset = onset;
        if (agreeing >= 2) return { playAt, ...seen, motionAt: onset };
      }
      return { playAt, ...seen, motionAt: null };
    } finally {
      if (!el.paused) this.pause();
    }
  }

  pause() {
    if (!this.video.paused) this.startKind = 'resumed';
    this.video.pause();
  }

  seek(seconds) {
    const el = this.video;
    // Chromium skips a seek to the time a paused element already reports: that is no move.
    if (Math.abs(seconds - el.currentTime) > 1e-6) this.startKind = 'seeked';
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        el.removeEventListener('seeked', done);
        resolve();
      };
      // A seek that never completes (e.g. the source failed) must not wedge the engine.
      const timer = setTimeout(done, SEEK_TIMEOUT_MS);
      el.addEventListener('seeked', done);
      el.currentTime = seconds;
    });
  }

  setRate(rate) {
    // Chromium's pitch-keeping time stretch moves the media clock about 20 ms back each
    // time the rate leaves 1.0 (measured: -18 to -21 ms per engage, ~0 on return), which
    // turns every sync nudge around 1.0 into a new 20 ms error. Plain resampling has no
    // such step (under 2 ms); its pitch change during a nudge of a few percent is slight.
    // A room playing at another speed keeps its pitch: the stretch is engaged throughout
    // and nudges around that rate step by only ~1 ms.
    const keepPitch = Math.abs(rate - 1) > PITCH_KEPT_BEYOND;
    if (this.video.preservesPitch !== keepPitch) this.video.preservesPitch = keepPitch;
    if (Math.abs(this.video.playbackRate - rate) > 1e-4) this.video.playbackRate = rate;
  }

  setMuted(muted) {
    this.video.muted = muted;
  }

  destroy() {
    this.onBufferingChange = null;
    const el = this.video;
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    el.pause();
    el.removeAttribute('src');
    el.load(); // releases the network connection and decoder
    el.remove();
  }
}
