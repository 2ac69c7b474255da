// Who is in the room. The server sends a full list in `welcome`, then per-event
// `joined`/`left` (small rooms) and `presence` deltas: entries that changed
// (merged by id), ids that left, the current count and host. We keep a map by id
// and derive everything the UI shows from it. Big rooms announce entries within
// a budget, so their `presence` also carries exact totals (buffering, out of sync).

/**
 * Above this many members the UI shows a summary instead of every name: the server's
 * default, used until a `welcome` says what this server's threshold is.
 */
export const BIG_ROOM_THRESHOLD = 50;
/** |drift| from this on counts as "out of sync", as the server counts it. */
export const OUT_OF_SYNC_MS = 250;

function cleanEntry(raw) {
  if (!raw || typeof raw !== 'object' || typeof raw.id !== 'string' || !raw.id) return null;
  const num = (x) => (Number.isFinite(x) ? x : null);
  return {
    id: raw.id,
    name: typeof raw.name === 'string' ? raw.name : '?',
    rtt_ms: num(raw.rtt_ms),
    drift_ms: num(raw.drift_ms),
    buffering: raw.buffering === true,
    connected: raw.connected !== false,
  };
}

export class Roster {
  constructor() {
    this.members = new Map();
    this.hostId = null;
    this.reportedCount = null;
    this.reportedTotals = null;
    this.bigAbove = BIG_ROOM_THRESHOLD;
  }

  /**
   * Replaces everything (on welcome). `bigAbove` is the server's big-room threshold
   * (`welcome.big_room_threshold`), when it sent one.
   */
  reset(participants, hostId, bigAbove) {
    if (Number.isInteger(bigAbove) && bigAbove >= 0) this.bigAbove = bigAbove;
    this.members.clear();
    this.reportedCount = null;
    this.reportedTotals = null;
    for (const raw of Array.isArray(participants) ? participants : []) this.upsert(raw);
    this.setHost(hostId);
  }

  upsert(raw) {
    const entry = cleanEntry(raw);
    if (!entry) return false;
    this.members.set(entry.id, { ...this.members.get(entry.id), ...entry });
    if (raw.is_host === true) this.hostId = entry.id;
    return true;
  }

  remove(id) {
    this.members.delete(id);
    if (this.hostId === id) this.hostId = null;
  }

  setHost(hostId) {
    this.hostId = typeof hostId === 'string' && hostId ? hostId : null;
  }

  /** Applies a `presence` delta. */
  applyPresence(message) {
    if (!message || typeof message !== 'object') return;
    for (const raw of Array.isArray(message.participants) ? message.participants : []) this.upsert(raw);
    for (const id of Array.isArray(message.left) ? message.left : []) {
      if (typeof id === 'string') this.remove(id);
    }
    if ('host_id' in message) this.setHost(message.host_id);
    if (Number.isInteger(message.count) && message.count >= 0) this.reportedCount = message.count;
    const total = (x) => (Number.isInteger(x) && x >= 0 ? x : null);
    const buffering = total(message.buffering_count);
    const outOfSync = total(message.out_of_sync_count);
    if (buffering !== null && outOfSync !== null) this.reportedTotals = { buffering, outOfSync };
  }

  get count() {
    // The server's count is authoritative in big rooms, where we may not know every entry.
    return this.reportedCount ?? this.members.size;
  }

  get isBig() {
    return this.count > this.bigAbove;
  }

  get host() {
    return this.hostId ? this.members.get(this.hostId) ?? { id: this.hostId, name: '?' } : null;
  }

  isHost(id) {
    return !!id && id === this.hostId;
  }

  /** Host first, then by name (case-insensitive), then id for a stable order. */
  list() {
    return [...this.members.values()].sort((a, b) => {
      if (a.id === this.hostId) return -1;
      if (b.id === this.hostId) return 1;
      return a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }) || a.id.localeCompare(b.id);
    });
  }

  /**
   * For big rooms: who needs attention. The lists name those known to us; the counts are
   * the server's totals when it sent them (entries of big rooms may lag, totals do not).
   */
  summary() {
    const all = [...this.members.values()];
    const connected = all.filter((m) => m.connected);
    const buffering = connected.filter((m) => m.buffering);
    const outOfSync = connected.filter((m) => !m.buffering && m.drift_ms !== null && Math.abs(m.drift_ms) >= OUT_OF_SYNC_MS);
    return {
      count: this.count,
      host: this.host,
      buffering,
      outOfSync,
      bufferingCount: this.reportedTotals?.buffering ?? buffering.length,
      outOfSyncCount: this.reportedTotals?.outOfSync ?? outOfSync.length,
      disconnected: all.filter((m) => !m.connected),
    };
  }
}
