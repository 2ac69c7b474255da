// When and how soon to reconnect a dropped room socket.

export const BASE_DELAY_MS = 500;
export const MAX_DELAY_MS = 15_000;

/** Exponential backoff with jitter so a restarted server is not hit by everyone at once. */
export function reconnectDelayMs(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Close codes after which reconnecting would be wrong, with what to tell the person.
 * Anything else (network loss 1006, server restart 1012, eviction 4000, ...) is retried.
 */
const FINAL_CLOSES = {
  1008: 'The server closed the connection (policy).',
  1009: 'A message was too large for the server.',
  4001: 'This room was opened in another tab or window with the same identity.',
  4004: 'This room has been closed.',
};

export function finalCloseReason(code) {
  return FINAL_CLOSES[code] ?? null;
}

/** Join errors after which retrying the same join cannot succeed. */
export const FATAL_JOIN_ERRORS = new Set(['room_not_found', 'room_full', 'invalid_name']);
