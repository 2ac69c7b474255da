// Player for YouTube videos through the IFrame Player API.
// YouTube only offers a few fixed rates, so the sync engine corrects it by seeking
// (fineRate = false). The iframe is covered so clicks cannot pause it behind the room's back.

const API_URL = 'https://www.youtube.com/iframe_api';
const API_TIMEOUT_MS = 15_000;
const START_TIMEOUT_MS = 4000;
const SEEK_SETTLE_MS = 2000;
const STATE = { UNSTARTED: -1, ENDED: 0, PLAYING: 1, PAUSED: 2, BUFFERING: 3, CUED: 5 };

let apiPromise = null;

/** Loads the IFrame API once per page; rejects if YouTube cannot be reached. */
function loadApi() {
  if (window.YT && window.YT.Player) return Promise.resolve(window.YT);
  if (apiPromise) return apiPromise;
  apiPromise = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      apiPromise = null; // allow a later retry
      reject(new Error('YouTube could not be reached'));
    }, API_TIMEOUT_MS);
    const previous = window.onYouTubeIframeAPIReady;
    window.onYouTubeIframeAPIReady = () => {
      clearTimeout(timer);
      if (typeof previous === 'function') previous();
      resolve(window.YT);
    };
    const script = document.createElement('script');
    script.src = API_URL;
    script.async = true;
    script.onerror = () => {
      clearTimeout(timer);
      apiPromise = null;
      script.remove();
      reject(new Error('YouTube could not be reached'));
    };
    document.head.append(script);
  });
  return apiPromise;
}

export class YouTubePlayer {
  constructor(container) {
    this.fineRate = false;
    this.kind = 'youtube';
    this.wrapper = document.createElement('div');
    this.wrapper.className = 'player-media player-youtube';
    this.mount = document.createElement('div');
    const shield = document.createElement('div');
    shield.className = 'player-shield';
    this.wrapper.append(this.mount, shield);
    container.append(this.wrapper);
    this.player = null;
    this.state = STATE.UNSTARTED;
    this.stateWaiters = [];
    this.rate = 1;
    /** Set by the sync engine: called whenever the player may have started or stopped waiting for data. */
    this.onBufferingChange = null;
  }

  async load(video) {
    const YT = await loadApi();
    await new Promise((resolve, reject) => {
      this.player = new YT.Player(this.mount, {
        videoId: video.id,
        width: '100%',
        height: '100%',
        playerVars: { controls: 0, disablekb: 1, playsinline: 1, rel: 0, modestbranding: 1, iv_load_policy: 3, fs: 0 },
        events: {
          onReady: () => resolve(),
          onError: (event) => reject(new Error(`YouTube error ${event.data}`)),
          onStateChange: (event) => this.onStateChange(event.data),
        },
      });
    });
  }

  onStateChange(state) {
    this.state = state;
    const waiting = this.stateWaiters;
    this.stateWaiters = [];
    for (const waiter of waiting) if (!waiter(state)) this.stateWaiters.push(waiter);
    if (this.onBufferingChange) this.onBufferingChange();
  }

  currentTime() {
    return this.player ? this.player.getCurrentTime() || 0 : 0;
  }

  duration() {
    const d = this.player ? this.player.getDuration() : 0;
    return d > 0 ? d : NaN;
  }

  paused() {
    return this.state !== STATE.PLAYING && this.state !== STATE.BUFFERING;
  }

  buffering() {
    return this.state === STATE.BUFFERING;
  }

  /** YouTube reports BUFFERING whether paused or not (a seek while paused fetches too). */
  canPlay() {
    return this.state !== STATE.BUFFERING;
  }

  /** Resolves once playing; rejects as NotAllowedError if the browser keeps it from starting. */
  play() {
    if (!this.player) return Promise.reject(new Error('not loaded'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new Error('YouTube did not start; the browser probably needs a click first');
        error.name = 'NotAllowedError';
        reject(error);
      }, START_TIMEOUT_MS);
      this.stateWaiters.push((state) => {
        if (state !== STATE.PLAYING && state !== STATE.BUFFERING) return false;
        clearTimeout(timer);
        resolve();
        return true;
      });
      this.player.playVideo();
    });
  }

  pause() {
    if (this.player) this.player.pauseVideo();
  }

  seek(seconds) {
    if (!this.player) return Promise.resolve();
    this.player.seekTo(seconds, true);
    // The API has no "seeked" event: wait until the reported time lands near the target.
    const started = performance.now();
    return new Promise((resolve) => {
      const check = () => {
        const near = Math.abs(this.currentTime() - seconds) < 0.5;
        if ((near && this.state !== STATE.BUFFERING) || performance.now() - started > SEEK_SETTLE_MS) resolve();
        else setTimeout(check, 50);
      };
      check();
    });
  }

  /** Picks the closest rate YouTube offers. */
  setRate(rate) {
    if (!this.player || typeof this.player.getAvailablePlaybackRates !== 'function') return;
    const rates = this.player.getAvailablePlaybackRates() || [1];
    const closest = rates.reduce((best, r) => (Math.abs(r - rate) < Math.abs(best - rate) ? r : best), rates[0]);
    if (closest !== this.rate) {
      this.rate = closest;
      this.player.setPlaybackRate(closest);
    }
  }

  setMuted(muted) {
    if (!this.player) return;
    if (muted) this.player.mute();
    else this.player.unMute();
  }

  destroy() {
    this.onBufferingChange = null;
    try {
      if (this.player) this.player.destroy();
    } catch {
      // the iframe may already be gone
    }
    this.wrapper.remove();
  }
}
