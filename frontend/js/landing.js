// Landing page: create a room or join one by link or id.

import { createRoom, getRoom, listMedia } from './api.js';
import { $, h } from './dom.js';
import { formatBytes } from './format.js';
import { roomIdFromInput, roomPath } from './room-link.js';
import { storage } from './storage.js';
import { parseVideoInput } from './video-input.js';

const createForm = $('#create-form');
const joinForm = $('#join-form');

function showMessage(node, text) {
  node.textContent = text;
  node.classList.toggle('visible', !!text);
}

/** url → media library entry, for the subtitles the library pairs with a video. */
const library = new Map();

async function fillLibrary() {
  const result = await listMedia();
  if (!result.ok || result.data.length === 0) return;
  const select = $('#library-select');
  for (const item of result.data) {
    library.set(item.url, item);
    select.append(h('option', { value: item.url }, `${item.name}${item.size ? ` · ${formatBytes(item.size)}` : ''}`));
  }
  $('#library-field').hidden = false;
}

createForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const message = $('#create-message');
  showMessage(message, '');
  const body = { control: new FormData(createForm).get('control') === 'everyone' ? 'everyone' : 'host' };
  const name = $('#room-name').value.trim();
  if (name) body.name = name;
  const typed = $('#first-video').value.trim();
  const fromLibrary = $('#library-select').value;
  if (typed) {
    const parsed = parseVideoInput(typed);
    if (parsed.error) {
      showMessage(message, parsed.error);
      return;
    }
    body.video = parsed.video;
  } else if (fromLibrary) {
    const subtitles = library.get(fromLibrary)?.subtitles;
    body.video = Array.isArray(subtitles) && subtitles.length ? { kind: 'url', url: fromLibrary, subtitles } : { kind: 'url', url: fromLibrary };
  }
  const button = $('#create-button');
  button.disabled = true;
  const result = await createRoom(body);
  button.disabled = false;
  if (!result.ok || !result.data || typeof result.data.room_id !== 'string') {
    showMessage(message, result.message || 'The room could not be created.');
    return;
  }
  const { room_id: roomId, host_token: hostToken } = result.data;
  if (typeof hostToken === 'string') storage.setHostToken(roomId, hostToken);
  location.assign(roomPath(roomId));
});

joinForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const message = $('#join-message');
  showMessage(message, '');
  const roomId = roomIdFromInput($('#join-input').value);
  if (!roomId) {
    showMessage(message, 'That does not look like a room link or id.');
    return;
  }
  const button = $('#join-button');
  button.disabled = true;
  const result = await getRoom(roomId);
  button.disabled = false;
  if (result.ok) {
    location.assign(roomPath(roomId));
  } else if (result.status === 404) {
    showMessage(message, 'There is no room with that id. It may have closed after everyone left — start a new one.');
  } else if (result.status === 400) {
    showMessage(message, 'That does not look like a room link or id.');
  } else {
    showMessage(message, result.message);
  }
});

fillLibrary();
