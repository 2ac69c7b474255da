// Player for direct media URLs and the media library, on an HTML5 <video>.
// Native controls are off: every control goes through the room UI, so the element
// never changes state on its own because a person clicked it.

const SEEK_TIMEOUT_MS = 8000;

export class Html5Player {
  constructor(container) {
    this.fineRate = true;
    this.kind = 'html5';
    this.video = document.createElement('video');
    this.video.className = 'player-media';
    this.video.playsInline = true;
    this.video.preload = 'auto';
    this.video.setAttribute('playsinline', '');
    this.waiting = false;
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
      el.src = video.url;
      el.load();
    });
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
    return this.video.play();
  }

  pause() {
    this.video.pause();
  }

  seek(seconds) {
    const el = this.video;
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
    if (Math.abs(this.video.playbackRate - rate) > 1e-4) this.video.playbackRate = rate;
  }

  setMuted(muted) {
    this.video.muted = muted;
  }

  destroy() {
    this.onBufferingChange = null;
    const el = this.video;
    el.pause();
    el.removeAttribute('src');
    el.load(); // releases the network connection and decoder
    el.remove();
  }
}
