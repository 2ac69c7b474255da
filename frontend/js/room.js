// Room page: joins the room over the WebSocket, keeps the player in sync through
// the SyncEngine, and renders controls, people and chat.

import { getRoom, listMedia } from './api.js';
import { $, h, setChildren, toast } from './dom.js';
import { decodeForDisplay, formatBytes, formatChatTime, formatClock, formatDrift, formatRtt, syncQuality } from './format.js';
import { createPlayer } from './players/index.js';
import { isRoomId, roomPath } from './room-link.js';
import { RoomSocket } from './room-socket.js';
import { Roster } from './roster.js';
import { storage } from './storage.js';
import { SyncEngine } from './sync-engine.js';
import { describeVideo, parseVideoInput } from './video-input.js';

const UI_REFRESH_MS = 100;
const MAX_NAME_CHARS = 32;
/** How many people to list by name in each group of the big-room summary. */
const SUMMARY_NAMES = 12;

const roomId = decodeForDisplay(location.pathname.split('/')[2] || '');

const state = {
  me: null,
  room: { id: roomId, name: '', control: 'host' },
  roster: new Roster(),
  chatIds: new Set(),
  connection: 'connecting',
  seekDragging: false,
  muted: false,
  name: '',
  lastErrorCode: null, // the last `error` code from the server, to word a final disconnect
};

let engine = null;
let socket = null;

// ---------------------------------------------------------------------------
// Start-up

async function main() {
  $('#invite-link').value = `${location.origin}${roomPath(roomId)}`;
  if (!isRoomId(roomId)) {
    showRoomError('Not a room link', 'This address does not contain a valid room id. Check the link you were sent.');
    return;
  }
  const info = await getRoom(roomId);
  if (!info.ok && info.status === 404) {
    showRoomError('Room not found', 'There is no room with this id. It may have closed after everyone left. You can start a new one.');
    return;
  }
  if (!info.ok && info.status === 400) {
    showRoomError('Not a room link', 'This address does not contain a valid room id. Check the link you were sent.');
    return;
  }
  if (info.ok && info.data) {
    state.room.name = typeof info.data.name === 'string' ? info.data.name : '';
    renderRoomInfo();
  }
  // A network failure here is not fatal: the socket keeps retrying below.
  state.name = storage.getName() || (await askName());
  $('#room-main').hidden = false;
  wireControls();
  startSession();
  setInterval(renderPlayback, UI_REFRESH_MS);
  fillLibrary();
}

function showRoomError(title, text) {
  $('#room-error-title').textContent = title;
  $('#room-error-text').textContent = text;
  $('#room-error').hidden = false;
  $('#room-main').hidden = true;
  setConnectionPill('closed', 'Not connected');
}

function askName() {
  const dialog = $('#name-dialog');
  const input = $('#name-input');
  dialog.hidden = false;
  input.focus();
  return new Promise((resolve) => {
    $('#name-form').addEventListener('submit', function onSubmit(event) {
      event.preventDefault();
      const name = input.value.trim();
      if (!name || name.length > MAX_NAME_CHARS || /\p{Cc}/u.test(name)) {
        $('#name-message').textContent = `Use 1 to ${MAX_NAME_CHARS} characters.`;
        return;
      }
      storage.setName(name);
      dialog.hidden = true;
      $('#name-form').removeEventListener('submit', onSubmit);
      resolve(name);
    });
  });
}

function startSession() {
  engine = new SyncEngine({
    send: (message) => socket && socket.send(message),
    createPlayer: (video) => {
      const player = createPlayer(video, $('#player-host'));
      if (player) player.setMuted(state.muted);
      return player;
    },
    onChange: renderStage,
  });
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  socket = new RoomSocket({
    url: `${scheme}//${location.host}/api/rooms/${encodeURIComponent(roomId)}/ws`,
    joinMessage: () => {
      const join = { type: 'join', name: state.name };
      const hostToken = storage.getHostToken(roomId);
      const resumeToken = storage.getResumeToken(roomId);
      if (hostToken) join.host_token = hostToken;
      if (resumeToken) join.resume_token = resumeToken;
      return join;
    },
    onMessage: handleMessage,
    onState: handleConnectionState,
  });
  socket.connect();
  exposeTestHook();
}

// ---------------------------------------------------------------------------
// Server messages

function handleMessage(message) {
  switch (message.type) {
    case 'welcome':
      return onWelcome(message);
    case 'pong':
      engine.onPong(message);
      return;
    case 'playback':
      if (engine.onPlayback(message.playback) === 'applied') describeAction(message);
      renderControls();
      return;
    case 'chat':
      addChat(message.message);
      return;
    case 'joined':
      state.roster.upsert(message.participant);
      return renderPeople();
    case 'left':
      state.roster.remove(message.id);
      return renderPeople();
    case 'host':
      state.roster.setHost(message.host_id);
      renderPeople();
      return renderControls();
    case 'room':
      applyRoomInfo(message.room);
      return;
    case 'presence':
      state.roster.applyPresence(message);
      renderPeople();
      return renderControls();
    case 'error':
      return onServerError(message);
    case 'server_restarting':
      toast('The server is restarting — reconnecting…', 'warn');
      return;
    default:
      // Unknown types from a newer server are ignored.
  }
}

function onWelcome(message) {
  if (message.you && typeof message.you.id === 'string') state.me = { id: message.you.id, name: String(message.you.name ?? '') };
  if (typeof message.resume_token === 'string') storage.setResumeToken(roomId, message.resume_token);
  applyRoomInfo(message.room);
  state.roster.reset(message.participants, message.host_id, message.big_room_threshold);
  resetChat(message.chat);
  engine.onWelcome(message.playback);
  engine.onConnected();
  hideBanner();
  renderPeople();
  renderControls();
  renderStage();
}

function applyRoomInfo(room) {
  if (!room || typeof room !== 'object') return;
  if (typeof room.name === 'string') state.room.name = room.name;
  if (room.control === 'host' || room.control === 'everyone') state.room.control = room.control;
  renderRoomInfo();
  renderControls();
}

const ERROR_TEXT = {
  not_host: 'Only the host can control playback in this room.',
  rate_limited: 'Slow down a little — too many actions at once.',
  chat_rate_limited: 'You are sending messages too fast. Wait a moment.',
  invalid_chat: 'Messages must be 1 to 500 characters.',
  bad_message: 'The server refused that request.',
  not_found: 'That person is no longer in the room.',
  invalid_name: 'That name is not accepted. Use 1 to 32 characters.',
  room_full: 'This room is full.',
  room_not_found: 'This room no longer exists.',
};

function onServerError(message) {
  state.lastErrorCode = typeof message.code === 'string' ? message.code : null;
  const text = ERROR_TEXT[message.code] || (typeof message.message === 'string' ? message.message : 'Something went wrong.');
  toast(text, 'error');
  if (message.code === 'invalid_name') storage.setName('');
}

function handleConnectionState(connectionState, detail) {
  state.connection = connectionState;
  if (connectionState === 'open') {
    setConnectionPill('open', 'Connected');
  } else if (connectionState === 'connecting') {
    setConnectionPill('connecting', 'Connecting…');
  } else if (connectionState === 'reconnecting') {
    engine.onDisconnected();
    setConnectionPill('reconnecting', detail ? `Reconnecting (${detail})` : 'Reconnecting…');
  } else if (connectionState === 'closed') {
    engine.onDisconnected();
    setConnectionPill('closed', 'Disconnected');
    const replaced = /another tab/.test(detail || '');
    const badName = state.lastErrorCode === 'invalid_name';
    const label = badName ? 'Choose another name' : replaced ? 'Join here as a new participant' : 'Reconnect';
    showBanner(detail || 'Disconnected from the room.', label, async () => {
      if (replaced) storage.clearResumeToken(roomId);
      hideBanner();
      if (badName) state.name = await askName();
      state.lastErrorCode = null;
      engine.destroy();
      setChildren($('#player-host'));
      startSession();
    });
  }
  renderControls();
}

// ---------------------------------------------------------------------------
// Controls (every control message is sent from here, on a person's action only)

function canControl() {
  if (!state.me || state.connection !== 'open') return false;
  return state.room.control === 'everyone' || state.roster.isHost(state.me.id);
}

function amHost() {
  return !!state.me && state.roster.isHost(state.me.id);
}

function sendControl(message) {
  if (!canControl()) {
    toast('Only the host can control playback in this room.', 'error');
    return;
  }
  socket.send(message);
}

function togglePlay() {
  const playback = engine.model.current;
  if (!playback || !playback.video) return;
  if (playback.paused) {
    sendControl({ type: 'play' });
  } else {
    // Pause on the frame this person saw when they clicked.
    const seen = engine.player && engine.playerReady ? engine.player.currentTime() : engine.expectedPosition();
    sendControl(Number.isFinite(seen) ? { type: 'pause', position: seen } : { type: 'pause' });
  }
}

function wireControls() {
  $('#play-button').addEventListener('click', togglePlay);
  const seekBar = $('#seek-bar');
  seekBar.addEventListener('input', () => {
    state.seekDragging = true;
    renderTime(Number(seekBar.value));
  });
  seekBar.addEventListener('change', () => {
    state.seekDragging = false;
    const position = Number(seekBar.value);
    if (Number.isFinite(position)) sendControl({ type: 'seek', position });
  });
  $('#rate-select').addEventListener('change', (event) => {
    const rate = Number(event.target.value);
    if (Number.isFinite(rate)) sendControl({ type: 'rate', rate });
  });
  $('#mute-button').addEventListener('click', () => {
    state.muted = !state.muted;
    if (engine.player) engine.player.setMuted(state.muted);
    $('#mute-button').textContent = state.muted ? 'Unmute' : 'Mute';
  });
  $('#load-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const parsed = parseVideoInput($('#load-input').value);
    if (parsed.error) {
      toast(parsed.error, 'error');
      return;
    }
    sendControl({ type: 'load', video: parsed.video });
    $('#load-input').value = '';
  });
  $('#library-select').addEventListener('change', (event) => {
    const url = event.target.value;
    event.target.value = '';
    if (url) sendControl({ type: 'load', video: { kind: 'url', url } });
  });
  $('#everyone-toggle').addEventListener('change', (event) => {
    if (!amHost()) return;
    socket.send({ type: 'set_control', control: event.target.checked ? 'everyone' : 'host' });
  });
  $('#autoplay-overlay').addEventListener('click', () => {
    // Runs inside the click handler: the gesture is what lets play() through.
    engine.resumeAfterGesture();
  });
  $('#chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('#chat-input');
    const text = input.value.trim();
    if (!text) return;
    if (socket.send({ type: 'chat', text })) input.value = '';
    else toast('Not connected — your message was not sent.', 'error');
  });
  $('#invite-button').addEventListener('click', copyInvite);
  document.addEventListener('keydown', (event) => {
    const typing = event.target instanceof HTMLElement && event.target.closest('input, textarea, select, button');
    if (event.code === 'Space' && !typing && canControl()) {
      event.preventDefault();
      togglePlay();
    }
  });
}

async function copyInvite() {
  const link = $('#invite-link').value;
  try {
    await navigator.clipboard.writeText(link);
    toast('Invite link copied.');
  } catch {
    // No clipboard permission (or no secure context): select it for a manual copy.
    const input = $('#invite-link');
    input.focus();
    input.select();
    toast('Press Ctrl+C to copy the selected link.');
  }
}

async function fillLibrary() {
  const result = await listMedia();
  if (!result.ok) return;
  const select = $('#library-select');
  for (const item of result.data) {
    select.append(h('option', { value: item.url }, `${item.name}${item.size ? ` · ${formatBytes(item.size)}` : ''}`));
  }
  select.hidden = result.data.length === 0;
}

// ---------------------------------------------------------------------------
// Rendering

function setConnectionPill(kind, text) {
  const pill = $('#connection');
  pill.className = `pill pill-${kind}`;
  pill.textContent = text;
}

function showBanner(text, actionLabel, action) {
  $('#banner-text').textContent = text;
  const button = $('#banner-action');
  button.hidden = !actionLabel;
  button.textContent = actionLabel || '';
  button.onclick = action || null;
  $('#banner').hidden = false;
}

function hideBanner() {
  $('#banner').hidden = true;
}

function renderRoomInfo() {
  const title = state.room.name || 'Untitled room';
  $('#room-name').textContent = title;
  document.title = `${title} · watch-together`;
  const badge = $('#control-badge');
  badge.hidden = false;
  badge.textContent = state.room.control === 'everyone' ? 'Everyone controls' : 'Host controls';
}

function nameOf(id) {
  const member = id ? state.roster.members.get(id) : null;
  return member ? member.name : null;
}

function describeAction({ playback, by }) {
  const who = nameOf(by) || (by ? 'Someone' : 'The server');
  const p = playback;
  let text;
  if (!p) return;
  if (engine.model.videoChanged) text = `${who} loaded ${describeVideo(p.video)}`;
  else text = `${who} ${p.paused ? 'paused' : 'played'} at ${formatClock(p.position)}${p.rate !== 1 ? ` (${p.rate}×)` : ''}`;
  $('#activity').textContent = text;
}

function renderControls() {
  const allowed = canControl();
  const playback = engine && engine.model.current;
  const hasVideo = !!(playback && playback.video);
  for (const id of ['#play-button', '#seek-bar', '#rate-select']) $(id).disabled = !allowed || !hasVideo;
  for (const id of ['#load-input', '#load-button', '#library-select']) $(id).disabled = !allowed;
  $('#host-tools').classList.toggle('disabled', !allowed);
  const toggle = $('#everyone-toggle');
  toggle.checked = state.room.control === 'everyone';
  toggle.disabled = !amHost() || state.connection !== 'open';
  $('#control-mode-choice').hidden = !amHost();

  const host = state.roster.host;
  const note = $('#control-note');
  if (!state.me) note.textContent = '';
  else if (state.room.control === 'everyone') note.textContent = 'Everyone in this room can control playback.';
  else if (amHost()) note.textContent = 'You are the host: your controls play for everyone.';
  else note.textContent = host ? `${host.name} controls playback.` : 'Nobody controls playback right now.';

  if (playback) {
    const play = $('#play-button');
    play.textContent = playback.paused ? '▶' : '❚❚';
    play.setAttribute('aria-label', playback.paused ? 'Play' : 'Pause');
    const rateSelect = $('#rate-select');
    const value = String(playback.rate);
    if (![...rateSelect.options].some((o) => o.value === value)) rateSelect.append(h('option', { value }, `${value}×`));
    rateSelect.value = value;
  }
}

/** Everything that follows the playback clock, refreshed several times a second. */
function renderPlayback() {
  if (!engine) return;
  const player = engine.playerReady ? engine.player : null;
  const duration = player ? player.duration() : NaN;
  const seekBar = $('#seek-bar');
  seekBar.max = Number.isFinite(duration) ? String(duration) : '0';
  const position = player ? player.currentTime() : engine.expectedPosition() ?? 0;
  if (!state.seekDragging) {
    seekBar.value = String(position);
    renderTime(position);
  }
  seekBar.style.setProperty('--progress', Number.isFinite(duration) && duration > 0 ? `${(position / duration) * 100}%` : '0%');
  renderSync();
}

function renderTime(position) {
  const player = engine.playerReady ? engine.player : null;
  const duration = player ? player.duration() : NaN;
  $('#time-display').textContent = `${formatClock(position)} / ${formatClock(duration)}`;
}

function renderSync() {
  const indicator = $('#sync-indicator');
  const clock = engine.clock;
  const playback = engine.model.current;
  let text;
  let quality = 'unknown';
  if (!clock.synced) {
    text = 'Measuring clock…';
  } else if (!playback || !playback.video || !engine.playerReady) {
    text = `Clock synced · rtt ${formatRtt(clock.rttMs)}`;
  } else if (engine.autoplayBlocked) {
    text = 'Waiting for your click';
    quality = 'bad';
  } else if (engine.player.buffering()) {
    text = 'Buffering…';
    quality = 'fair';
  } else {
    const drift = engine.lastDriftMs;
    quality = syncQuality(drift);
    const label = { good: 'In sync', fair: 'Catching up', bad: 'Out of sync' }[quality] || 'Syncing';
    text = `${label} · drift ${formatDrift(drift)} · rtt ${formatRtt(clock.rttMs)}`;
  }
  indicator.dataset.quality = quality;
  $('#sync-text').textContent = text;
  if (clock.synced) {
    // How far this device's wall clock is from the server's: shown on hover for the curious.
    const wallOffset = engine.serverNow() - Date.now();
    const direction = wallOffset > 0 ? 'behind' : 'ahead of';
    indicator.title = `Your device clock is ${Math.abs(Math.round(wallOffset))} ms ${direction} the server's (estimate ±${Math.round((clock.rttMs || 0) / 2)} ms).`;
  }
}

function renderStage() {
  const playback = engine.model.current;
  const message = $('#stage-message');
  let text = '';
  if (!playback || !playback.video) text = canControl() ? 'No video yet — load one below.' : 'No video yet. Waiting for the host to load one.';
  else if (engine.lastError) text = engine.lastError;
  else if (!engine.playerReady) text = `Loading ${describeVideo(playback.video)}…`;
  message.textContent = text;
  message.hidden = !text;
  $('#autoplay-overlay').hidden = !engine.autoplayBlocked;
  renderControls();
}

function renderPeople() {
  const roster = state.roster;
  $('#people-count').textContent = String(roster.count);
  const list = $('#people-list');
  const summaryBox = $('#people-summary');
  if (roster.isBig) {
    // Hundreds of names help nobody: show who hosts and who needs attention.
    const summary = roster.summary();
    summaryBox.hidden = false;
    const group = (label, total, members) => {
      if (!total) return null;
      const shown = members.slice(0, SUMMARY_NAMES).map((m) => m.name);
      const more = total - shown.length;
      const who = shown.join(', ') + (more > 0 ? `${shown.length ? ' and ' : ''}${more} more` : '');
      return h('p', {}, `${label} (${total}): ${who}`);
    };
    setChildren(summaryBox,
      h('p', {}, `${summary.count} people are watching.`),
      h('p', {}, 'Host: ', h('strong', {}, summary.host ? summary.host.name : 'nobody')),
      group('Buffering', summary.bufferingCount, summary.buffering),
      group('Out of sync', summary.outOfSyncCount, summary.outOfSync),
      !summary.bufferingCount && !summary.outOfSyncCount ? h('p', { class: 'muted' }, 'Everyone is in sync.') : null,
    );
    const me = state.me && roster.members.get(state.me.id);
    setChildren(list, me ? personItem(me) : null);
    return;
  }
  summaryBox.hidden = true;
  setChildren(list, roster.list().map(personItem));
}

function personItem(member) {
  const isMe = !!state.me && member.id === state.me.id;
  const isHost = state.roster.isHost(member.id);
  let status;
  if (!member.connected) status = 'reconnecting…';
  else if (member.buffering) status = 'buffering…';
  else status = `rtt ${formatRtt(member.rtt_ms)} · drift ${formatDrift(member.drift_ms)}`;
  const quality = member.buffering || !member.connected ? 'fair' : syncQuality(member.drift_ms ?? NaN);
  return h('li', { class: `person${isMe ? ' me' : ''}${member.connected ? '' : ' away'}`, dataset: { id: member.id } },
    h('span', { class: 'avatar', style: `--hue:${hueOf(member.id)}`, 'aria-hidden': 'true' }, initialOf(member.name)),
    h('span', { class: 'person-main' },
      h('span', { class: 'person-name' },
        h('span', { class: 'name' }, member.name),
        isMe ? h('span', { class: 'you' }, ' (you)') : null,
        isHost ? h('span', { class: 'badge host-badge' }, 'host') : null),
      h('span', { class: 'person-status', dataset: { quality } }, status)),
    amHost() && !isMe && member.connected && state.connection === 'open'
      ? h('button', { class: 'button small ghost make-host', type: 'button', onclick: () => socket.send({ type: 'transfer_host', to: member.id }) }, 'Make host')
      : null);
}

function initialOf(name) {
  const first = [...String(name).trim()][0];
  return first ? first.toUpperCase() : '?';
}

function hueOf(id) {
  let hash = 0;
  for (const ch of id) hash = (hash * 31 + ch.charCodeAt(0)) % 360;
  return hash;
}

// ---------------------------------------------------------------------------
// Chat

function resetChat(history) {
  state.chatIds.clear();
  setChildren($('#chat-log'));
  for (const message of Array.isArray(history) ? history : []) addChat(message, { scroll: false });
  scrollChat(true);
}

function addChat(message, { scroll = true } = {}) {
  if (!message || typeof message !== 'object' || typeof message.text !== 'string') return;
  if (message.id !== undefined && state.chatIds.has(message.id)) return;
  if (message.id !== undefined) state.chatIds.add(message.id);
  const from = message.from && typeof message.from === 'object' ? message.from : {};
  const fromId = typeof from.id === 'string' ? from.id : '';
  const log = $('#chat-log');
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(h('li', { class: `chat-message${state.me && fromId === state.me.id ? ' mine' : ''}` },
    h('div', { class: 'chat-meta' },
      h('span', { class: 'chat-author', style: `--hue:${hueOf(fromId || '?')}` }, typeof from.name === 'string' ? from.name : '?'),
      h('time', { class: 'chat-time' }, formatChatTime(message.at))),
    h('div', { class: 'chat-text' }, message.text)));
  if (scroll) scrollChat(nearBottom || (state.me && fromId === state.me.id));
}

function scrollChat(force) {
  const log = $('#chat-log');
  if (force) log.scrollTop = log.scrollHeight;
}

// ---------------------------------------------------------------------------
// Read-only hook for the end-to-end tests (and the curious, from the console).

function exposeTestHook() {
  const copy = (x) => (x === null || x === undefined ? x : JSON.parse(JSON.stringify(x)));
  window.__wt = Object.freeze({
    /** This player's media position in seconds, or null without a ready player. */
    position: () => (engine.player && engine.playerReady ? engine.player.currentTime() : null),
    /** The room's authoritative position now, by this page's clock estimate. */
    expected: () => engine.expectedPosition(),
    /** Server time now (ms since epoch) by this page's estimate, or null before the first pong. */
    serverNow: () => engine.serverNow(),
    state: () => ({
      roomId,
      me: copy(state.me),
      hostId: state.roster.hostId,
      control: state.room.control,
      connection: state.connection,
      playback: copy(engine.model.current),
      playerReady: engine.playerReady,
      playerPaused: engine.player ? engine.player.paused() : null,
      playbackRate: engine.player && engine.player.video ? engine.player.video.playbackRate : null,
      autoplayBlocked: engine.autoplayBlocked,
      driftMs: engine.lastDriftMs,
      startLeadMs: engine.startLeadMs,
      arrivalLeadMs: engine.arrivalLeadMs,
      lastStart: copy(engine.lastStart),
      clockOffsetMs: engine.clock.offsetMs,
      rttMs: engine.clock.rttMs,
      participants: copy(state.roster.list()),
      count: state.roster.count,
      chat: state.chatIds.size,
    }),
  });
}

main();
