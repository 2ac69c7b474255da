// Room ids and links: what the landing page accepts as "join this room".

/** Accepts the server's ids: url-safe tokens, 4 to 64 characters. */
const ROOM_ID = /^[A-Za-z0-9_-]{4,64}$/;

export function isRoomId(text) {
  return ROOM_ID.test(text);
}

/** Extracts a room id from a pasted link (any host) or a bare id; null if none. */
export function roomIdFromInput(text) {
  const input = String(text ?? '').trim();
  if (isRoomId(input)) return input;
  const match = /(?:^|\/)r\/([^/?#\s]+)\/?(?:[?#].*)?$/.exec(input);
  if (match && isRoomId(match[1])) return match[1];
  return null;
}

export function roomPath(roomId) {
  return `/r/${encodeURIComponent(roomId)}`;
}
