//! What a room still owes its members in `presence`, and how much of it fits in one.
//!
//! Small rooms announce every change. Big rooms (above `--presence-threshold`) keep each
//! member's presence traffic bounded whatever the room size: few entries per message,
//! news about listed members before newcomers, nothing for a change that reverted before its
//! turn, and exact totals in every message (docs/api.md, "presence").

use indexmap::{IndexMap, IndexSet};

use crate::ids::ParticipantId;
use crate::protocol::ServerMessage;
use crate::room::state::Member;

/// Most entries in one big-room `presence`, so its size does not grow with the room.
pub const BIG_ROOM_MAX_ENTRIES: usize = 12;
/// Most departed ids in one big-room `presence`.
pub const BIG_ROOM_MAX_LEFT: usize = 32;

/// Round-trip bands (upper bounds, ms): in a big room, only a move between bands is news.
pub const RTT_BANDS_MS: [f64; 3] = [50.0, 150.0, 400.0];
/// Drift bands (upper bounds of |drift|, ms): in sync, slightly off, off, out of sync.
pub const DRIFT_BANDS_MS: [f64; 3] = [50.0, 250.0, 1000.0];
/// A connected, playing member whose |drift| is at least this counts as out of sync in
/// `presence.out_of_sync_count` (the start of the "off" drift band).
pub const OUT_OF_SYNC_MS: f64 = DRIFT_BANDS_MS[1];

pub(super) fn band(value: Option<f64>, bounds: &[f64; 3]) -> u8 {
    match value {
        None => 0,
        Some(v) => 1 + bounds.iter().filter(|b| v.abs() >= **b).count() as u8,
    }
}

/// What the others were last told about a member, reduced to what is news in a big room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Shown {
    /// Connected, or away within grace.
    pub(super) connected: bool,
    /// Holds the host role.
    pub(super) is_host: bool,
    /// Waiting for data.
    pub(super) buffering: bool,
    /// Round-trip band (see [`RTT_BANDS_MS`]).
    pub(super) rtt_band: u8,
    /// Drift band (see [`DRIFT_BANDS_MS`]).
    pub(super) drift_band: u8,
}

/// Running totals that every `presence` carries, so a view is right even when entries lag.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Totals {
    /// Participants, including those within grace.
    count: usize,
    /// The host.
    host_id: Option<ParticipantId>,
    /// Connected participants that are buffering.
    buffering: usize,
    /// Connected participants playing at least [`OUT_OF_SYNC_MS`] off the clock.
    out_of_sync: usize,
}

/// The changes, arrivals and departures not yet announced, and the totals last sent.
#[derive(Debug, Default)]
pub(super) struct PendingPresence {
    /// Announced participants whose entry changed since the last presence, oldest first.
    dirty: IndexSet<ParticipantId>,
    /// Newcomers to a big room, not yet announced. They wait behind `dirty`: news about
    /// someone already listed (buffering, out of sync, host) matters more than a new name,
    /// which `count` already reflects.
    arrivals: IndexSet<ParticipantId>,
    /// Participants gone since the last presence whose departure is not yet announced.
    departed: Vec<ParticipantId>,
    /// The totals in the last `presence`, to tell whether they changed since.
    last_totals: Option<Totals>,
}

impl PendingPresence {
    /// Queues `id`'s entry, unless it waits as a newcomer (which is announced with its state
    /// at that moment anyway).
    pub(super) fn changed(&mut self, id: &ParticipantId) {
        if !self.arrivals.contains(id) {
            self.dirty.insert(id.clone());
        }
    }

    /// Queues a newcomer to a big room.
    pub(super) fn arrived(&mut self, id: &ParticipantId) {
        self.dirty.shift_remove(id); // it may have become host as it joined
        self.arrivals.insert(id.clone());
    }

    /// Forgets whatever was queued for `id`, and in a big room queues its departure.
    pub(super) fn gone(&mut self, id: &ParticipantId, big: bool) {
        self.dirty.shift_remove(id);
        self.arrivals.shift_remove(id);
        if big {
            self.departed.push(id.clone());
        }
    }

    /// The next `presence`, if there is news: changed entries (then newcomers), departures,
    /// and the totals. A big room sends at most [`BIG_ROOM_MAX_ENTRIES`] entries and
    /// [`BIG_ROOM_MAX_LEFT`] ids, and skips entries that are back to what was last announced.
    pub(super) fn take<L>(
        &mut self,
        big: bool,
        members: &mut IndexMap<ParticipantId, Member<L>>,
        host: Option<&ParticipantId>,
    ) -> Option<ServerMessage> {
        let (max_entries, max_left) = if big {
            (BIG_ROOM_MAX_ENTRIES, BIG_ROOM_MAX_LEFT)
        } else {
            (usize::MAX, usize::MAX)
        };
        let mut participants = Vec::new();
        for queue in [&mut self.dirty, &mut self.arrivals] {
            let mut taken = 0;
            for id in queue.iter() {
                if participants.len() >= max_entries {
                    break;
                }
                taken += 1;
                let Some(m) = members.get_mut(id) else {
                    continue;
                };
                let is_host = host == Some(id);
                let shown = m.shown(is_host);
                // Small rooms announce exact values, so any queued change is news there.
                if big && m.shown == Some(shown) {
                    continue;
                }
                m.shown = Some(shown);
                participants.push(m.entry(id, is_host));
            }
            queue.drain(..taken);
        }
        let take = self.departed.len().min(max_left);
        let left: Vec<ParticipantId> = self.departed.drain(..take).collect();
        let nothing_listed = participants.is_empty() && left.is_empty();
        // Small rooms announce membership and host changes as they happen, so their totals
        // change only together with an entry: a quiet tick there costs no scan of members.
        if nothing_listed && !big {
            return None;
        }
        let totals = totals(members, host);
        if nothing_listed && self.last_totals.as_ref() == Some(&totals) {
            return None;
        }
        let message = ServerMessage::Presence {
            participants,
            left,
            count: totals.count,
            host_id: totals.host_id.clone(),
            buffering_count: totals.buffering,
            out_of_sync_count: totals.out_of_sync,
        };
        self.last_totals = Some(totals);
        Some(message)
    }
}

fn totals<L>(members: &IndexMap<ParticipantId, Member<L>>, host: Option<&ParticipantId>) -> Totals {
    let connected = || members.values().filter(|m| m.link.is_some());
    Totals {
        count: members.len(),
        host_id: host.cloned(),
        buffering: connected().filter(|m| m.buffering).count(),
        out_of_sync: connected()
            .filter(|m| !m.buffering && m.drift_ms.is_some_and(|d| d.abs() >= OUT_OF_SYNC_MS))
            .count(),
    }
}
