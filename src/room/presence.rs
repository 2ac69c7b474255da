//! What a room still owes its members in `presence`, and how much of it fits in one.
//!
//! Small rooms announce every change. Big rooms (above `--presence-threshold`) keep each
//! member's presence traffic bounded whatever the room size: few entries per message,
//! news about listed members before newcomers, nothing for a change that reverted before its
//! turn, and exact totals in every message (docs/api.md, "presence").

use indexmap::{IndexMap, IndexSet};

use crate::ids::ParticipantId;
use crate::protocol::ServerMessage;
use crate::room::members::{Member, OUT_OF_SYNC_MS};

/// Most entries in one big-room `presence`, so its size does not grow with the room.
pub const BIG_ROOM_MAX_ENTRIES: usize = 12;
/// Most departed ids in one big-room `presence`.
pub const BIG_ROOM_MAX_LEFT: usize = 32;

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
