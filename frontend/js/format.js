// Formatting of times and durations for display.

/** 75.3 → "1:15", 3725 → "1:02:05". */
export function formatClock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '0:00';
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** Signed milliseconds: "+12 ms", "−3 ms", "—" when unknown. */
export function formatDrift(ms) {
  if (!Number.isFinite(ms)) return '—';
  const rounded = Math.round(ms);
  if (rounded === 0) return '0 ms';
  return `${rounded > 0 ? '+' : '−'}${Math.abs(rounded)} ms`;
}

export function formatRtt(ms) {
  return Number.isFinite(ms) ? `${Math.round(ms)} ms` : '—';
}

/** Server ms since epoch → "14:05" in local time. */
export function formatChatTime(serverMs) {
  if (!Number.isFinite(serverMs)) return '';
  return new Date(serverMs).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** How well in sync a drift is: 'good' | 'fair' | 'bad'. */
export function syncQuality(driftMs) {
  const abs = Math.abs(driftMs);
  if (!Number.isFinite(abs)) return 'unknown';
  if (abs <= 50) return 'good';
  if (abs <= 250) return 'fair';
  return 'bad';
}

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Decodes percent-escapes for display; a malformed escape is shown as it is, never thrown. */
export function decodeForDisplay(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
