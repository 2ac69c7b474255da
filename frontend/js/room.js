// Room page: joins the room over the WebSocket, keeps the player in sync through
// the SyncEngine, and renders controls, the queue, people and chat (with the page's own
// system lines: who joined, who played or paused, holds, what plays now).

import { getRoom, listMedia } from './api.js';
import { $, h, setChildren, toast } from './dom.js';
import { decodeForDisplay, formatBytes, formatChatTime, formatClock, formatDrift, formatRtt, syncQuality } from './format.js';
import { classifyChange, describeChange, dropIndex, holdRemainingS, joinNames, parseQueue, queueLabel, videoLabel } from './party.js';
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
/** System lines kept (they are not in the server's history, so a reconnect re-merges these). */
const MAX_SYSTEM_LINES = 200;
/** Seeks by the same person this close together make one line, not a scrolling list. */
const MERGE_SEEKS_MS = 1000;
/** How far ← and → move playback. */
const SEEK_STEP_S = 5;
/** A hold that ends this close to its timeout ended because of it (the server does not say why). */
const TIMEOUT_SLACK_MS = 750;
/**
 * A hold gets lines in the chat only once it has lasted this long. Pages loading the next
 * video hold nearly every start for a few hundred ms; two lines each time would be noise.
 */
const HOLD_LINE_AFTER_MS = 1000;

const roomId = decodeForDisplay(location.pathname.split('/')[2] || '');

const state = {
  me: null,
  room: { id: roomId, name: '', control: 'host', waitForBuffering: true, bufferingTimeoutS: 8 },
  roster: new Roster(),
  queue: [], // what plays after the current video, front first (parsed `queue` items)
  chatIds: new Set(),
  systemLines: [], // {at (server ms), text, kind, by, localAt, node}
  holdTimeoutS: null, // the timeout in force when the current hold began
  holdLine: null, // {timer, written}: the current hold's chat line, written once it lasts
  holdsSeen: 0, // holds this page has seen begin (for the tests' figures)
  optionsPending: null, // option values sent and not yet confirmed by a `room` (or refused)
  queueFocus: null, // {id, action}: where keyboard focus goes after the queue re-renders
  queueShown: null, // what the queue list was last rendered from, to re-render only on change
  dragId: null, // the queue item being dragged
  lastRequestKind: null, // 'control' | 'queue' | 'options' | 'transfer': words an error
  connection: 'connecting',
  seekDragging: false,
  muted: false,
  name: '',
  lastErrorCode: null, // the last `error` code from the server, to word a final disconnect
  library: new Map(), // url → entry of the media library (for the subtitles that go with it)
  subtitlesOf: null, // the subtitle track list (a player's) that the menu shows
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
    // Only a clear 404 means gone: a server that is down or restarting answers nothing or 503.
    roomGone: async () => (await getRoom(roomId)).status === 404,
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
    case 'playback': {
      // What the change was is judged against the state before it, queue and hold included.
      const before = { playback: engine.model.current, queue: state.queue, holdDeadline: engine.model.holdDeadline(state.holdTimeoutS ?? state.room.bufferingTimeoutS) };
      const by = typeof message.by === 'string' ? message.by : null;
      if (engine.onPlayback(message.playback) === 'applied') onPlaybackChange(before, engine.model.current, by);
      renderControls();
      return renderStage();
    }
    case 'queue':
      state.queue = parseQueue(message.items);
      renderQueue();
      return renderStage();
    case 'chat':
      addChat(message.message);
      return;
    case 'joined':
      state.roster.upsert(message.participant);
      // Big rooms list nobody by name; a line per arrival there would drown the chat.
      if (!state.roster.isBig && message.participant) addSystemLine(`${nameOf(message.participant.id) || 'Someone'} joined`, { kind: 'join' });
      return renderPeople();
    case 'left': {
      const name = nameOf(message.id);
      state.roster.remove(message.id);
      if (!state.roster.isBig && name) addSystemLine(`${name} left`, { kind: 'leave' });
      return renderPeople();
    }
    case 'host': {
      const before = state.roster.hostId;
      state.roster.setHost(message.host_id);
      if (state.roster.hostId !== before) addSystemLine(hostLine(state.roster.hostId), { kind: 'host' });
      renderPeople();
      renderQueue();
      return renderControls();
    }
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
  state.queue = parseQueue(message.queue);
  state.optionsPending = null; // a new session: the welcome's room is the truth
  resetChat(message.chat);
  engine.setSelf(state.me ? state.me.id : null);
  engine.onWelcome(message.playback);
  engine.onConnected();
  // A hold under way when we arrived: its timeout is the room's current one.
  state.holdTimeoutS = engine.model.onHold ? state.room.bufferingTimeoutS : null;
  forgetHoldLine();
  hideBanner();
  renderPeople();
  renderQueue();
  renderControls();
  renderStage();
}

function applyRoomInfo(room) {
  if (!room || typeof room !== 'object') return;
  if (typeof room.name === 'string') state.room.name = room.name;
  if (room.control === 'host' || room.control === 'everyone') state.room.control = room.control;
  if (typeof room.wait_for_buffering === 'boolean') state.room.waitForBuffering = room.wait_for_buffering;
  if (Number.isFinite(room.buffering_timeout_s) && room.buffering_timeout_s > 0) state.room.bufferingTimeoutS = room.buffering_timeout_s;
  const pending = state.optionsPending;
  if (pending) {
    // Each sent value is done with once the room shows it.
    if (pending.wait_for_buffering === state.room.waitForBuffering) delete pending.wait_for_buffering;
    if (pending.buffering_timeout_s === state.room.bufferingTimeoutS) delete pending.buffering_timeout_s;
    if (Object.keys(pending).length === 0) state.optionsPending = null;
  }
  renderRoomInfo();
  renderQueue();
  renderControls();
}

/** Writes the system line and activity text for an applied playback change. */
function onPlaybackChange(before, playback, by) {
  const change = classifyChange(before.playback, playback, by);
  if (change.kind === 'hold') {
    state.holdTimeoutS = state.room.bufferingTimeoutS;
    state.holdsSeen += 1;
  }
  let timedOut = false;
  if (change.kind === 'release') {
    // The room does not say why it resumed: at the hold's deadline, or because the host just
    // turned waiting off (its `room` came first), it stopped waiting; otherwise they were ready.
    const now = engine.serverNow();
    timedOut = !state.room.waitForBuffering
      || (before.holdDeadline !== null && now !== null && now >= before.holdDeadline - TIMEOUT_SLACK_MS);
  }
  if (!engine.model.onHold) {
    state.holdTimeoutS = null;
    if (change.kind !== 'release') forgetHoldLine(); // a person ended it: their line says so
  }
  const text = describeChange(change, playback, by, {
    name: (id) => (state.me && id === state.me.id ? 'you' : nameOf(id) || 'someone'),
    // The item that just left the queue is still in the queue we had: its title names it.
    label: (video) => videoLabel(video, before.queue),
    timedOut,
  });
  if (!text) return;
  $('#activity').textContent = text;
  const kind = ['hold', 'hold-change', 'release'].includes(change.kind) ? 'hold' : change.kind;
  if (kind === 'hold' && !holdLineWritten(change.kind)) return;
  const now = performance.now();
  // One line per hold while it changes (someone else starts or stops buffering), and seeks
  // by the same person in quick succession (dragging along the seek bar) make one line.
  const merge = change.kind === 'hold-change'
    ? (last) => last.change === 'hold' || last.change === 'hold-change'
    : change.kind === 'seek' ? (last) => last.change === 'seek' && last.by === by && now - last.localAt < MERGE_SEEKS_MS : null;
  addSystemLine(text, { kind, by, change: change.kind, merge });
}

/**
 * Whether a hold's change gets its own line: a new hold starts a timer that writes it once it
 * has lasted; changes and the release of a hold too short to be written stay out of the chat.
 */
function holdLineWritten(kind) {
  const current = state.holdLine;
  if (kind === 'hold') {
    forgetHoldLine();
    const line = { written: false, timer: null };
    line.timer = setTimeout(() => {
      line.timer = null;
      const playback = engine.model.current;
      if (state.holdLine !== line || !engine.model.onHold) return;
      line.written = true;
      addSystemLine(`Waiting for ${waitingNames(playback.waiting_for)}…`, { kind: 'hold', change: 'hold' });
    }, HOLD_LINE_AFTER_MS);
    state.holdLine = line;
    return false;
  }
  const written = !!current && current.written;
  if (kind === 'release') forgetHoldLine();
  return written;
}

function forgetHoldLine() {
  if (state.holdLine && state.holdLine.timer !== null) clearTimeout(state.holdLine.timer);
  state.holdLine = null;
}

function hostLine(hostId) {
  if (!hostId) return 'Nobody is the host now';
  if (state.me && hostId === state.me.id) return 'You are now the host';
  return `${nameOf(hostId) || 'Someone'} is now the host`;
}

const ERROR_TEXT = {
  not_host: 'Only the host can control playback in this room.',
  queue_full: 'The queue is full. Remove something from it first.',
  queue_empty: 'Nothing is queued to play next.',
  rate_limited: 'Slow down a little — too many actions at once.',
  chat_rate_limited: 'You are sending messages too fast. Wait a moment.',
  invalid_chat: 'Messages must be 1 to 500 characters.',
  bad_message: 'The server refused that request.',
  not_found: 'That person is no longer in the room.',
  invalid_name: 'That name is not accepted. Use 1 to 32 characters.',
  room_full: 'This room is full.',
  room_not_found: 'This room no longer exists.',
};

/** The same codes answer different requests: say it in terms of what was asked. */
const ERROR_TEXT_FOR = {
  queue: {
    not_host: 'Only the host can change the queue in this room.',
    not_found: 'That video is no longer in the queue.',
  },
  options: { not_host: 'Only the host can change how the room waits for viewers.' },
  transfer: { not_host: 'Only the host can hand over the host role.' },
};

function onServerError(message) {
  state.lastErrorCode = typeof message.code === 'string' ? message.code : null;
  const specific = ERROR_TEXT_FOR[state.lastRequestKind] || {};
  const text = specific[message.code] || ERROR_TEXT[message.code] || (typeof message.message === 'string' ? message.message : 'Something went wrong.');
  toast(text, 'error');
  if (message.code === 'invalid_name') storage.setName('');
  state.optionsPending = null; // a refused option change shows the room's value again
  renderControls();
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
  } else if (connectionState === 'gone') {
    // Nothing to follow any more: the player stops with the room.
    engine.destroy();
    showRoomError(
      'This room no longer exists',
      'It was removed after everyone left it for a long time, or the server lost it. Start a new room to watch together again.',
    );
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
  state.lastRequestKind = 'control';
  socket.send(message);
}

/** Queue edits and `next` need the same right as playback controls. */
function sendQueue(message) {
  if (!canControl()) {
    toast(queueLockedText() || 'You cannot change the queue right now.', 'error');
    return false;
  }
  state.lastRequestKind = 'queue';
  if (socket.send(message)) return true;
  toast('Not connected — the queue was not changed.', 'error');
  return false;
}

function sendOptions(options) {
  if (!amHost()) {
    toast('Only the host can change how the room waits for viewers.', 'error');
    renderControls();
    return;
  }
  state.lastRequestKind = 'options';
  if (!socket.send({ type: 'set_options', ...options })) {
    toast('Not connected — the option was not changed.', 'error');
    renderControls();
    return;
  }
  // Shown as chosen until the room's `room` broadcast confirms it (or an error refuses it),
  // so a render in between does not flip the control back.
  state.optionsPending = { ...state.optionsPending, ...options };
  renderControls();
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
  $('#mute-button').addEventListener('click', toggleMute);
  $('#subtitle-select').addEventListener('change', (event) => {
    // This page only: nobody else's subtitles change.
    const index = event.target.value === '' ? null : Number(event.target.value);
    if (engine.player && typeof engine.player.showSubtitle === 'function') engine.player.showSubtitle(index);
  });
  $('#fullscreen-button').addEventListener('click', toggleFullscreen);
  document.addEventListener('fullscreenchange', renderFullscreen);
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
    if (url) sendControl({ type: 'load', video: libraryVideo(url) });
  });
  $('#everyone-toggle').addEventListener('change', (event) => {
    if (!amHost()) return;
    socket.send({ type: 'set_control', control: event.target.checked ? 'everyone' : 'host' });
  });
  $('#wait-toggle').addEventListener('change', (event) => sendOptions({ wait_for_buffering: event.target.checked }));
  $('#wait-timeout').addEventListener('change', (event) => {
    const seconds = Number(event.target.value);
    if (Number.isFinite(seconds)) sendOptions({ buffering_timeout_s: seconds });
  });
  $('#queue-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const parsed = parseVideoInput($('#queue-input').value);
    if (parsed.error) {
      toast(parsed.error, 'error');
      return;
    }
    if (sendQueue({ type: 'queue_add', video: parsed.video })) $('#queue-input').value = '';
  });
  $('#queue-library-select').addEventListener('change', (event) => {
    const url = event.target.value;
    event.target.value = '';
    if (url) sendQueue({ type: 'queue_add', video: libraryVideo(url) });
  });
  $('#next-button').addEventListener('click', () => sendQueue({ type: 'next' }));
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
  document.addEventListener('keydown', onKey);
}

/**
 * Keyboard shortcuts (listed in the ? tooltip): space plays or pauses, ←/→ seek 5 s, for
 * those who may control playback; f (fullscreen) and m (mute) act on this page only, for
 * everyone. Keys typed into a field, or with a modifier, are left alone.
 */
function onKey(event) {
  if (event.ctrlKey || event.altKey || event.metaKey || event.defaultPrevented) return;
  const target = event.target instanceof HTMLElement ? event.target : null;
  if (target && target.closest('input, textarea, select, [contenteditable="true"]')) return;
  // A focused button answers Space and Enter itself.
  if (event.code === 'Space' && target && target.closest('button')) return;
  const playback = engine && engine.model.current;
  const hasVideo = !!(playback && playback.video);
  switch (event.key) {
    case ' ':
      if (!canControl()) return;
      event.preventDefault();
      togglePlay();
      break;
    case 'ArrowLeft':
    case 'ArrowRight': {
      if (!canControl() || !hasVideo) return;
      event.preventDefault();
      const from = engine.player && engine.playerReady ? engine.player.currentTime() : engine.expectedPosition();
      if (!Number.isFinite(from)) return;
      const duration = engine.player && engine.playerReady ? engine.player.duration() : NaN;
      let to = Math.max(0, from + (event.key === 'ArrowLeft' ? -SEEK_STEP_S : SEEK_STEP_S));
      if (Number.isFinite(duration)) to = Math.min(to, duration);
      sendControl({ type: 'seek', position: to });
      break;
    }
    case 'f':
    case 'F':
      event.preventDefault();
      toggleFullscreen();
      break;
    case 'm':
    case 'M':
      event.preventDefault();
      toggleMute();
      break;
    default:
  }
}

function toggleMute() {
  state.muted = !state.muted;
  if (engine.player) engine.player.setMuted(state.muted);
  $('#mute-button').textContent = state.muted ? 'Unmute' : 'Mute';
}

/** Fullscreen for the player area (picture and controls); the sync engine runs on untouched. */
function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
    return;
  }
  const area = $('#player-area');
  if (!area.requestFullscreen) {
    toast('This browser cannot show the player fullscreen.', 'error');
    return;
  }
  area.requestFullscreen().catch((error) => toast(`Fullscreen was refused: ${error.message}`, 'error'));
}

function renderFullscreen() {
  const on = document.fullscreenElement === $('#player-area');
  const button = $('#fullscreen-button');
  button.setAttribute('aria-label', on ? 'Exit fullscreen' : 'Fullscreen');
  button.title = on ? 'Exit fullscreen (f)' : 'Fullscreen (f)';
  button.classList.toggle('active', on);
}

/** A library video to load or queue: its URL, with the subtitles the library pairs with it. */
function libraryVideo(url) {
  const entry = state.library.get(url);
  const subtitles = entry && Array.isArray(entry.subtitles) ? entry.subtitles : [];
  return subtitles.length ? { kind: 'url', url, subtitles } : { kind: 'url', url };
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
  if (!result.ok || !Array.isArray(result.data)) return;
  for (const item of result.data) if (item && typeof item.url === 'string') state.library.set(item.url, item);
  for (const select of [$('#library-select'), $('#queue-library-select')]) {
    for (const item of result.data) {
      select.append(h('option', { value: item.url }, `${item.name}${item.size ? ` · ${formatBytes(item.size)}` : ''}`));
    }
    select.hidden = result.data.length === 0;
  }
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

/** Names for ids a hold waits for: "you" for this page's own participant. */
function waitingNames(ids) {
  return joinNames(ids.map((id) => (state.me && id === state.me.id ? 'you' : nameOf(id) || 'someone')));
}

function renderControls() {
  const allowed = canControl();
  const playback = engine && engine.model.current;
  const hasVideo = !!(playback && playback.video);
  for (const id of ['#play-button', '#seek-bar', '#rate-select']) $(id).disabled = !allowed || !hasVideo;
  for (const id of ['#load-input', '#load-button', '#library-select']) $(id).disabled = !allowed;
  $('#host-tools').classList.toggle('disabled', !allowed);
  $('#keys-help-note').textContent = allowed ? '' : 'Space and ←/→ work for those who control playback.';
  renderSubtitleMenu();
  const toggle = $('#everyone-toggle');
  toggle.checked = state.room.control === 'everyone';
  toggle.disabled = !amHost() || state.connection !== 'open';
  $('#control-mode-choice').hidden = !amHost();
  // Holds are the host's call even where everyone controls playback (set_options is host only).
  $('#hold-options').hidden = !amHost();
  const pending = state.optionsPending || {};
  const waiting = pending.wait_for_buffering ?? state.room.waitForBuffering;
  const waitToggle = $('#wait-toggle');
  waitToggle.checked = waiting;
  waitToggle.disabled = !amHost() || state.connection !== 'open';
  const timeout = $('#wait-timeout');
  const seconds = String(pending.buffering_timeout_s ?? state.room.bufferingTimeoutS);
  if (![...timeout.options].some((o) => o.value === seconds)) timeout.append(h('option', { value: seconds }, `${seconds} s`));
  timeout.value = seconds;
  timeout.disabled = waitToggle.disabled || !waiting;

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
  renderQueue();
}

/** The subtitle menu lists the current player's tracks; a new video starts with them off. */
function renderSubtitleMenu() {
  const player = engine && engine.player;
  const tracks = player && Array.isArray(player.subtitles) ? player.subtitles : [];
  // The player replaces its list when it loads a video: a new list is a new menu.
  if (state.subtitlesOf === tracks) return;
  state.subtitlesOf = tracks;
  const select = $('#subtitle-select');
  setChildren(select, [
    h('option', { value: '' }, 'Subtitles off'),
    ...tracks.map((track, i) => h('option', { value: String(i) }, track.label)),
  ]);
  select.value = '';
  select.hidden = tracks.length === 0;
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
  renderHoldCountdown();
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
  } else if (engine.model.onHold) {
    text = `Paused for ${waitingNames(playback.waiting_for)}`;
    quality = 'fair';
  } else if (playback.ended) {
    text = `Ended · rtt ${formatRtt(clock.rttMs)}`;
    quality = 'good';
  } else if (engine.player.buffering() || engine.buffering) {
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
  renderNotices(!text);
  renderControls();
}

/** The hold and end notices over the picture (`visible`: the picture is showing). */
function renderNotices(visible) {
  const playback = engine.model.current;
  const hold = visible && !!playback && engine.model.onHold;
  const holdNotice = $('#hold-notice');
  holdNotice.hidden = !hold;
  if (hold) {
    $('#hold-text').textContent = `Waiting for ${waitingNames(playback.waiting_for)}…`;
    renderHoldCountdown();
  }
  const ended = visible && !!playback && playback.ended && !hold;
  $('#ended-notice').hidden = !ended;
  if (ended) {
    const next = state.queue[0];
    let text = 'Nothing else is queued.';
    if (next) text = `Up next: ${queueLabel(next)}${canControl() ? ' (press “Play next”)' : ''}`;
    $('#ended-next').textContent = text;
  }
}

function renderHoldCountdown() {
  if ($('#hold-notice').hidden) return;
  const timeoutS = state.holdTimeoutS ?? state.room.bufferingTimeoutS;
  const left = holdRemainingS(engine.model.holdDeadline(timeoutS), engine.serverNow());
  let text = '';
  if (left !== null) text = left > 0.5 ? `Playing on in ${Math.ceil(left)} s at the latest` : 'Playing on…';
  const countdown = $('#hold-countdown');
  if (countdown.textContent !== text) countdown.textContent = text;
}

// ---------------------------------------------------------------------------
// Queue

/** Why this person cannot change the queue, or '' when they can. */
function queueLockedText() {
  if (canControl()) return '';
  if (!state.me || state.connection !== 'open') return 'Not connected: the queue cannot be changed right now.';
  const host = state.roster.host;
  return host ? `Only ${host.name}, the host, can change the queue in this room.` : 'Nobody controls this room right now, so the queue cannot be changed.';
}

function renderQueue() {
  const allowed = canControl();
  const items = state.queue;
  $('#queue-count').textContent = String(items.length);
  $('#queue-empty').hidden = items.length > 0;
  $('#queue-note').textContent = queueLockedText();
  $('#queue-panel').classList.toggle('disabled', !allowed);
  for (const id of ['#queue-input', '#queue-add-button', '#queue-library-select']) $(id).disabled = !allowed;
  $('#next-button').disabled = !allowed || items.length === 0;
  // Rebuilt only when something shown changed: a rebuild in the middle of a drag would end it.
  const shown = JSON.stringify([allowed, items]);
  if (shown === state.queueShown) return;
  state.queueShown = shown;
  const list = $('#queue-list');
  setChildren(list, items.map((item, index) => queueItemNode(item, index, items.length, allowed)));
  restoreQueueFocus(list);
}

function queueItemNode(item, index, count, allowed) {
  const label = queueLabel(item);
  const button = (action, text, aria, disabled, onclick) => h('button', {
    class: `button small ghost queue-${action}`,
    type: 'button',
    'aria-label': aria,
    title: aria,
    disabled: !allowed || disabled,
    onclick: () => {
      state.queueFocus = { id: item.id, action };
      onclick();
    },
  }, text);
  return h('li', {
    class: 'queue-item',
    draggable: allowed ? 'true' : 'false',
    dataset: { id: String(item.id) },
    ondragstart: (event) => onQueueDragStart(event, item),
    ondragover: onQueueDragOver,
    ondragleave: (event) => clearDropMarks(event.currentTarget),
    ondrop: (event) => onQueueDrop(event, item),
    ondragend: onQueueDragEnd,
  },
  h('span', { class: 'queue-pos', 'aria-hidden': 'true' }, String(index + 1)),
  h('span', { class: 'queue-main' },
    h('span', { class: 'queue-title', title: label }, label),
    h('span', { class: 'queue-meta' }, `added by ${item.addedBy.name}`)),
  h('span', { class: 'queue-actions' },
    button('up', '↑', `Move ${label} up`, index === 0, () => sendQueue({ type: 'queue_move', item_id: item.id, index: index - 1 })),
    button('down', '↓', `Move ${label} down`, index === count - 1, () => sendQueue({ type: 'queue_move', item_id: item.id, index: index + 1 })),
    button('remove', '✕', `Remove ${label} from the queue`, false, () => sendQueue({ type: 'queue_remove', item_id: item.id }))));
}

/** Keyboard users keep their place: focus returns to the button they used, on the moved item. */
function restoreQueueFocus(list) {
  const wanted = state.queueFocus;
  if (!wanted) return;
  state.queueFocus = null;
  const row = list.querySelector(`.queue-item[data-id="${wanted.id}"]`);
  const candidates = row
    ? [row.querySelector(`.queue-${wanted.action}`), row.querySelector('.queue-up'), row.querySelector('.queue-down')]
    : [list.querySelector('.queue-remove'), $('#queue-input')]; // removed: the next one, or the input
  const target = candidates.find((el) => el && !el.disabled);
  if (target) target.focus();
}

function onQueueDragStart(event, item) {
  if (!canControl()) {
    event.preventDefault();
    return;
  }
  state.dragId = item.id;
  event.dataTransfer.effectAllowed = 'move';
  event.dataTransfer.setData('text/plain', String(item.id));
  event.currentTarget.classList.add('dragging');
}

/** Whether the pointer is over the lower half of `row`: drop after it rather than before. */
function dropsAfter(event, row) {
  const box = row.getBoundingClientRect();
  return event.clientY > box.top + box.height / 2;
}

function onQueueDragOver(event) {
  if (state.dragId === null) return;
  event.preventDefault(); // allows the drop
  event.dataTransfer.dropEffect = 'move';
  const row = event.currentTarget;
  const after = dropsAfter(event, row);
  row.classList.toggle('drop-after', after);
  row.classList.toggle('drop-before', !after);
}

function onQueueDrop(event, target) {
  event.preventDefault();
  const row = event.currentTarget;
  const after = dropsAfter(event, row);
  clearDropMarks(row);
  const dragged = state.dragId;
  state.dragId = null;
  if (dragged === null) return;
  const from = state.queue.findIndex((i) => i.id === dragged);
  const index = dropIndex(from, state.queue.findIndex((i) => i.id === target.id), after);
  // The list moves when the room's `queue` comes back, for everyone at once.
  if (index !== null) sendQueue({ type: 'queue_move', item_id: dragged, index });
}

function onQueueDragEnd(event) {
  state.dragId = null;
  event.currentTarget.classList.remove('dragging');
  for (const row of $('#queue-list').children) clearDropMarks(row);
}

function clearDropMarks(row) {
  row.classList.remove('drop-before', 'drop-after');
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
      ? h('button', {
        class: 'button small ghost make-host',
        type: 'button',
        onclick: () => {
          state.lastRequestKind = 'transfer';
          socket.send({ type: 'transfer_host', to: member.id });
        },
      }, 'Make host')
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
  // System lines are this page's own: merge them back in among the replayed history by time.
  const messages = Array.isArray(history) ? history.filter((m) => m && typeof m === 'object') : [];
  const lines = state.systemLines;
  let i = 0;
  for (const message of messages) {
    const at = Number.isFinite(message.at) ? message.at : Infinity;
    while (i < lines.length && lines[i].at <= at) appendSystemNode(lines[i++]);
    addChat(message, { scroll: false });
  }
  while (i < lines.length) appendSystemNode(lines[i++]);
  scrollChat(true);
}

/**
 * Adds a line of the page's own to the chat log (never sent to the server). With `merge`,
 * the last line is rewritten instead when `merge(last)` holds and nothing came after it.
 */
function addSystemLine(text, { kind = 'info', by = null, change = null, merge = null } = {}) {
  const now = performance.now();
  const at = engine ? engine.serverNow() ?? lastLineAt() : lastLineAt();
  const last = state.systemLines.at(-1);
  const log = $('#chat-log');
  if (merge && last && last.node && log.lastElementChild === last.node && merge(last)) {
    Object.assign(last, { text, at, change, localAt: now });
    last.node.querySelector('.chat-system-text').textContent = text;
    return;
  }
  const line = { at, text, kind, by, change, localAt: now, node: null };
  state.systemLines.push(line);
  if (state.systemLines.length > MAX_SYSTEM_LINES) {
    const dropped = state.systemLines.shift();
    if (dropped.node) dropped.node.remove();
  }
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  appendSystemNode(line);
  scrollChat(nearBottom);
}

/** Without a clock estimate yet, a line sorts after everything shown so far. */
function lastLineAt() {
  return state.systemLines.length ? state.systemLines.at(-1).at : 0;
}

function appendSystemNode(line) {
  line.node = h('li', { class: 'chat-system', dataset: { kind: line.kind } },
    h('span', { class: 'chat-system-text' }, line.text),
    h('time', { class: 'chat-time' }, formatChatTime(line.at)));
  $('#chat-log').append(line.node);
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
      /** Whether the socket will try again: false once it stopped for good. */
      retrying: socket.retrying,
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
      startLeads: copy(engine.startLeads),
      startKind: engine.player ? engine.startKind : null,
      /** How the player plays the video: 'file', 'native-hls', 'hls.js' or 'youtube'. */
      playerEngine: engine.player ? engine.player.engine || engine.player.kind : null,
      subtitles: engine.player && Array.isArray(engine.player.subtitles)
        ? { tracks: copy(engine.player.subtitles), shown: engine.player.subtitleShown, cues: engine.player.activeCueTexts() }
        : null,
      fullscreen: document.fullscreenElement ? document.fullscreenElement.id || true : null,
      arrivalLeadMs: engine.arrivalLeadMs,
      lastStart: copy(engine.lastStart),
      /** The audio callback grid starts are planned on (start-grid.js). */
      startGrid: engine.grid.snapshot(),
      clockOffsetMs: engine.clock.offsetMs,
      rttMs: engine.clock.rttMs,
      clockSamples: engine.clock.samples.length,
      participants: copy(state.roster.list()),
      count: state.roster.count,
      chat: state.chatIds.size,
      queue: copy(state.queue),
      room: copy(state.room),
      onHold: engine.model.onHold,
      holdsSeen: state.holdsSeen,
      holdStartedAt: engine.model.holdStartedAt,
      holdUntil: engine.model.current?.hold_until ?? null,
      buffering: engine.buffering,
      inStep: engine.inStep,
      systemLines: state.systemLines.map((line) => ({ text: line.text, kind: line.kind })),
    }),
  });
}

main();
