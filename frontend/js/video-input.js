// Turns what a person pastes (a YouTube link or id, a media URL) into a Video
// object of the wire contract, or explains why it cannot.

import { decodeForDisplay } from './format.js';

const YOUTUBE_ID = /^[A-Za-z0-9_-]{11}$/;
const YOUTUBE_HOSTS = new Set([
  'youtube.com', 'www.youtube.com', 'm.youtube.com', 'music.youtube.com',
  'youtube-nocookie.com', 'www.youtube-nocookie.com',
]);

/** Extracts a YouTube video id from a link, or null. */
export function youtubeIdFromUrl(url) {
  const host = url.hostname.toLowerCase();
  if (host === 'youtu.be') {
    const id = url.pathname.split('/')[1] || '';
    return YOUTUBE_ID.test(id) ? id : null;
  }
  if (!YOUTUBE_HOSTS.has(host)) return null;
  const v = url.searchParams.get('v');
  if (v && YOUTUBE_ID.test(v)) return v;
  const [, first, second] = url.pathname.split('/');
  if (['embed', 'shorts', 'live', 'v'].includes(first) && second && YOUTUBE_ID.test(second)) return second;
  return null;
}

/**
 * @param {string} text what the person typed
 * @returns {{video: object} | {error: string}}
 */
export function parseVideoInput(text) {
  const input = String(text ?? '').trim();
  if (!input) return { error: 'Paste a YouTube link or id, or a video URL.' };
  if (YOUTUBE_ID.test(input) && !input.includes('.')) return { video: { kind: 'youtube', id: input } };
  if (/^\/media\/[^/?#]+(\/[^/?#]+)*$/.test(input)) return { video: { kind: 'url', url: input } };
  let url;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:/i.test(input) ? input : `https://${input}`);
  } catch {
    return { error: 'That is neither a YouTube id nor a valid URL.' };
  }
  const id = youtubeIdFromUrl(url);
  if (id) return { video: { kind: 'youtube', id } };
  if (YOUTUBE_HOSTS.has(url.hostname.toLowerCase()) || url.hostname === 'youtu.be') {
    return { error: 'That YouTube link has no video id in it.' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { error: 'Only http and https video URLs can be played.' };
  }
  return { video: { kind: 'url', url: url.href } };
}

/** Short human label for a Video. */
export function describeVideo(video) {
  if (!video || typeof video !== 'object') return 'No video';
  if (video.kind === 'youtube') return `YouTube ${video.id}`;
  if (typeof video.url !== 'string') return 'Unknown video';
  if (video.url.startsWith('/media/')) {
    const names = video.url.slice('/media/'.length).split('/');
    // An HLS folder's playlist: the folder is what the library calls it.
    return names.length > 1 ? `${decodeForDisplay(names[0])} (HLS)` : decodeForDisplay(names[0]);
  }
  try {
    const url = new URL(video.url);
    const name = url.pathname.split('/').filter(Boolean).pop();
    return name ? `${decodeForDisplay(name)} (${url.hostname})` : url.hostname;
  } catch {
    return video.url;
  }
}
