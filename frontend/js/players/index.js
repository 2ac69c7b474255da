import { Html5Player } from './html5.js';
import { YouTubePlayer } from './youtube.js';

/** Builds the right player for a Video inside `container`. */
export function createPlayer(video, container) {
  if (!video) return null;
  return video.kind === 'youtube' ? new YouTubePlayer(container) : new Html5Player(container);
}
