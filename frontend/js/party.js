// The watch party's page logic without the DOM: what a playback change was (a person's
// play or seek, or the room's own hold, release, advance or end), how to say it, the
// queue as the server sends it, and where a dragged queue item lands.

import { formatClock } from './format.js';
import { isHold, parseVideo, positionAt, sameVideo } from './playback-model.js';
import { describeVideo } from './video-input.js';

/** A person's play that moves the clock further than this from where it ran is a seek. */
const SEEK_JUMP_S = 1.5;

/** "Bob", "Bob and Cat", "Bob, Cat and Dee". */
export function joinNames(names) {
  const list = names.filter((n) => typeof n === 'string' && n);
  if (list.length <= 1) return list[0] || '';
  return `${list.slice(0, -1).join(', ')} and ${list.at(-1)}`;
}

/**
 * What changed from `prev` to `next` (both parsed playbacks), given `by` (a participant id,
 * or null when the room changed the clock itself). Returns {kind, ...}:
 * - by a person: 'play', 'pause', 'seek', 'rate', 'load' (paused at 0), 'skip' (`next`);
 * - by the room: 'hold' (paused for buffering members), 'hold-change' (the list changed:
 *   `added`, `ready`), 'release' (`released`: whom it waited for), 'advance' (the queue's
 *   next video), 'ended', 'duration' (the length was learned), 'other'.
 */
export function classifyChange(prev, next, by) {
  if (!prev || !next) return { kind: 'other' };
  const videoChanged = !sameVideo(prev.video, next.video);
  const wasHold = isHold(prev);
  const nowHold = isHold(next);
  if (by === null || by === undefined) {
    if (videoChanged) return { kind: 'advance' };
    if (next.ended && !prev.ended) return { kind: 'ended' };
    if (nowHold && !wasHold) return { kind: 'hold', waitingFor: next.waiting_for };
    if (nowHold && wasHold) {
      return {
        kind: 'hold-change',
        waitingFor: next.waiting_for,
        added: next.waiting_for.filter((id) => !prev.waiting_for.includes(id)),
        ready: prev.waiting_for.filter((id) => !next.waiting_for.includes(id)),
      };
    }
    if (wasHold && !nowHold) return { kind: 'release', released: prev.waiting_for };
    if (next.duration !== prev.duration) return { kind: 'duration' };
    return { kind: 'other' };
  }
  if (videoChanged) return { kind: next.paused ? 'load' : 'skip' };
  if (next.rate !== prev.rate) return { kind: 'rate' };
  if (next.paused) {
    // A pause during a hold ends it; a seek during a hold keeps it (still waiting).
    if (wasHold && !nowHold) return { kind: 'pause' };
    if (prev.paused && Math.abs(next.position - prev.position) > 0.05) return { kind: 'seek' };
    return { kind: 'pause' };
  }
  if (prev.paused) return { kind: 'play' };
  // Playing before and after: a play again (same place, rescheduled) or a seek.
  const ranTo = positionAt(prev, next.anchor);
  return { kind: Math.abs(next.position - ranTo) > SEEK_JUMP_S ? 'seek' : 'play' };
}

/**
 * The line to show for a change, or null for changes nobody needs to read about.
 * `ctx`: {name(id) → display name, label(video) → what to call a video,
 *         timedOut → whether a release came at the hold's timeout}.
 */
export function describeChange(change, next, by, ctx) {
  const line = changeLine(change, next, by, ctx);
  // Names may be "you": a line starts with a capital all the same.
  return line && line[0].toUpperCase() + line.slice(1);
}

/** "is" or "are" after a list of names ("you" takes "are"). */
function be(ids, ctx) {
  return ids.length > 1 || ctx.name(ids[0]) === 'you' ? 'are' : 'is';
}

function changeLine(change, next, by, ctx) {
  const who = ctx.name(by);
  const at = formatClock(next.position);
  const names = (ids) => joinNames(ids.map((id) => ctx.name(id)));
  switch (change.kind) {
    case 'play':
      return `${who} played at ${at}`;
    case 'pause':
      return `${who} paused at ${at}`;
    case 'seek':
      return `${who} jumped to ${at}`;
    case 'rate':
      return `${who} set the speed to ${next.rate}×`;
    case 'load':
      return `${who} loaded ${ctx.label(next.video)}`;
    case 'skip':
      return `${who} skipped to ${ctx.label(next.video)}`;
    case 'advance':
      return `Now playing ${ctx.label(next.video)}`;
    case 'ended':
      return 'The video ended';
    case 'hold':
      return `Waiting for ${names(change.waitingFor)}…`;
    case 'hold-change': {
      const parts = [];
      if (change.ready.length) parts.push(`${names(change.ready)} ${be(change.ready, ctx)} ready`);
      parts.push(`${parts.length ? 'still waiting' : 'Waiting'} for ${names(change.waitingFor)}…`);
      return parts.join(' — ');
    }
    case 'release':
      if (ctx.timedOut) return `Stopped waiting for ${names(change.released)} — playing on`;
      return `${names(change.released)} ${be(change.released, ctx)} ready — playing on`;
    default:
      return null;
  }
}

/** Seconds left before a hold ending at server time `holdUntil` gives up on whoever it waits for (never negative). */
export function holdRemainingS(holdUntil, serverNow) {
  if (!Number.isFinite(holdUntil) || !Number.isFinite(serverNow)) return null;
  return Math.max(0, (holdUntil - serverNow) / 1000);
}

/** The server's queue items, cleaned; anything malformed is left out rather than shown half. */
export function parseQueue(items) {
  if (!Array.isArray(items)) return [];
  const out = [];
  for (const raw of items) {
    if (!raw || typeof raw !== 'object' || !Number.isInteger(raw.id)) continue;
    const video = parseVideo(raw.video);
    if (!video) continue;
    const by = raw.added_by && typeof raw.added_by === 'object' ? raw.added_by : {};
    out.push({
      id: raw.id,
      video,
      title: typeof raw.title === 'string' && raw.title.trim() ? raw.title : null,
      addedBy: { id: typeof by.id === 'string' ? by.id : '', name: typeof by.name === 'string' ? by.name : '?' },
    });
  }
  return out;
}

/** What to call a queued item: its title, or a description of its video. */
export function queueLabel(item) {
  return item.title || describeVideo(item.video);
}

/** What to call `video`: the title of a queue item for it if there is one, else its description. */
export function videoLabel(video, queue = []) {
  const item = queue.find((i) => sameVideo(i.video, video));
  return item ? queueLabel(item) : describeVideo(video);
}

/**
 * The `index` for `queue_move` when the item at `from` is dropped before (or, with `after`,
 * after) the item at `target`. The server takes the item out first and then inserts it at
 * `index`, so places past the dragged item shift down by one. Returns null for no move.
 */
export function dropIndex(from, target, after) {
  if (!Number.isInteger(from) || !Number.isInteger(target) || from < 0 || target < 0) return null;
  let index = target + (after ? 1 : 0);
  if (from < index) index -= 1;
  return index === from ? null : index;
}
