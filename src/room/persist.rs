//! `Persistence`: how a room's actor keeps its room stored, without ever waiting on I/O.
//!
//! - The record is written *behind*: a change marks the room dirty, and one write follows
//!   [`WRITE_BEHIND`] later with whatever changed meanwhile, so a burst of seeks costs one
//!   write and a crash loses at most that fraction of a second of playback, host or
//!   membership changes.
//! - A chat message is committed *before* it is broadcast: the room holds the message's
//!   effects until the store acknowledges the write, then delivers them in the order the
//!   messages were accepted. So every message its sender saw echoed is stored. If the store
//!   is failing, the room broadcasts anyway (the write is kept and retried) and says so in the
//!   log: chat keeps working, its durability waits for the store.
//! - The record carries an expiry: while the room has members, `--room-ttl` from the last
//!   write (refreshed well before it runs out); once it is empty, `--room-ttl` from then. The
//!   store deletes a room whose expiry passed.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::clock::ServerMs;
use crate::ids::RoomId;
use crate::protocol::ChatMessage;
use crate::room::record::RoomRecord;
use crate::room::state::Effect;
use crate::store::{Ack, Fence, Store, StoreError, WriteOp};

/// How long after a change the record is written: changes within it share one write.
pub const WRITE_BEHIND: Duration = Duration::from_millis(50);

/// A chat message's effects, held until the message is committed.
#[derive(Debug)]
struct HeldChat {
    /// Which write this is, to match its acknowledgement.
    ticket: u64,
    /// What to deliver once committed.
    effects: Vec<Effect>,
    /// Whether the store has answered (committed, or failed and retrying).
    answered: bool,
}

/// A room's link to the store.
#[derive(Debug)]
pub struct Persistence {
    /// Where the room is kept.
    store: Store,
    /// The ownership epoch every write carries (many-node mode).
    fence: Option<Fence>,
    /// False once the room lost its lease: nothing more is written.
    writing: bool,
    /// The room.
    room: RoomId,
    /// How long a stored room without members lives, in ms.
    ttl_ms: f64,
    /// Chat messages kept per room in the store (the room's history length).
    chat_keep: usize,
    /// A write of the record is scheduled.
    write_due: bool,
    /// Server time of the last record write, to refresh the expiry before it runs out.
    written_at: ServerMs,
    /// Chat effects waiting for their commits, in the order the messages were accepted.
    held: VecDeque<HeldChat>,
    /// Ticket of the next held chat.
    next_ticket: u64,
}

impl Persistence {
    /// The persistence of room `room` in `store`.
    pub fn new(
        store: Store,
        fence: Option<Fence>,
        room: RoomId,
        ttl_ms: f64,
        chat_keep: usize,
        now: ServerMs,
    ) -> Self {
        Persistence {
            store,
            fence,
            writing: true,
            room,
            ttl_ms,
            chat_keep,
            write_due: false,
            written_at: now,
            held: VecDeque::new(),
            next_ticket: 0,
        }
    }

    /// Whether writes go anywhere (the memory store forgets them, so nothing need wait).
    pub fn is_durable(&self) -> bool {
        self.store.kind() != "memory"
    }

    /// Notes that the record changed; true when the caller should schedule
    /// [`Persistence::write_record`] in [`WRITE_BEHIND`] (none is scheduled yet).
    pub fn mark_dirty(&mut self) -> bool {
        !std::mem::replace(&mut self.write_due, true)
    }

    /// Whether the record is due for a write only to keep its expiry ahead (an occupied
    /// room that has not changed for half its TTL).
    pub fn needs_refresh(&self, now: ServerMs) -> bool {
        now - self.written_at >= self.ttl_ms / 2.0
    }

    /// Writes `record` now. `empty_since` is when the room became empty, if it is.
    pub fn write_record(
        &mut self,
        record: &RoomRecord,
        empty_since: Option<ServerMs>,
        now: ServerMs,
    ) {
        self.write_due = false;
        self.written_at = now;
        let expires_at_ms = (empty_since.unwrap_or(now) + self.ttl_ms).max(0.0) as u64;
        self.write(
            WriteOp::PutRoom {
                room: self.room,
                record: record.to_bytes(),
                expires_at_ms,
            },
            None,
        );
    }

    /// The room is gone for good.
    pub fn delete(&mut self) {
        self.write_due = false;
        self.write(WriteOp::DeleteRoom { room: self.room }, None);
    }

    /// The room lost its lease: no more writes, and the chats held for their commit are
    /// dropped unseen (the store refuses them).
    pub fn stop_writing(&mut self) {
        self.writing = false;
        self.write_due = false;
        self.held.clear();
    }

    /// Queues `op` under the room's fence, unless the room stopped writing (an ack is then
    /// dropped, which its waiter reads as "the store stopped").
    fn write(&self, op: WriteOp, ack: Option<Ack>) {
        if self.writing {
            self.store.write_fenced(op, self.fence, ack);
        }
    }

    /// Stores `message` and holds `effects` (its broadcast) until the store answers; returns
    /// the ticket to pass to [`Persistence::answered`] and the answer to wait for.
    pub fn hold_chat(
        &mut self,
        message: &ChatMessage,
        effects: Vec<Effect>,
    ) -> (u64, oneshot::Receiver<Result<(), StoreError>>) {
        let (ack, answer) = oneshot::channel();
        self.write(
            WriteOp::AppendChat {
                room: self.room,
                id: message.id,
                // unwrap: a chat message is plain data and always serializes
                message: serde_json::to_vec(message).unwrap(),
                keep: self.chat_keep,
            },
            Some(ack),
        );
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.held.push_back(HeldChat {
            ticket,
            effects,
            answered: false,
        });
        (ticket, answer)
    }

    /// The store answered chat `ticket`: returns every held chat's effects that may go out
    /// now, in order (those at the front that have been answered).
    pub fn answered(&mut self, ticket: u64, outcome: Result<(), String>) -> Vec<Effect> {
        if let Err(e) = outcome {
            tracing::warn!(room = %self.room, error = %e, "chat broadcast before it was stored");
        }
        if let Some(held) = self.held.iter_mut().find(|h| h.ticket == ticket) {
            held.answered = true;
        }
        let mut ready = Vec::new();
        while self.held.front().is_some_and(|h| h.answered) {
            // unwrap: the front was just checked
            ready.extend(self.held.pop_front().unwrap().effects);
        }
        ready
    }

    /// Everything still held, to deliver before the room stops (the writes stay queued).
    pub fn release_all(&mut self) -> Vec<Effect> {
        self.held.drain(..).flat_map(|h| h.effects).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ParticipantRef, ServerMessage};
    use crate::room::state::Audience;

    fn chat(id: u64) -> (ChatMessage, Vec<Effect>) {
        let message = ChatMessage {
            id,
            from: ParticipantRef {
                id: "p".into(),
                name: "P".into(),
            },
            text: format!("m{id}"),
            at: 0.0,
        };
        let effects = vec![Effect {
            to: Audience::All,
            message: ServerMessage::Chat {
                message: message.clone(),
            },
        }];
        (message, effects)
    }

    fn ids(effects: &[Effect]) -> Vec<u64> {
        effects
            .iter()
            .map(|e| match &e.message {
                ServerMessage::Chat { message } => message.id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn held_chats_go_out_in_order_once_answered() {
        let mut p = Persistence::new(Store::memory(), None, RoomId::new(), 1000.0, 100, 0.0);
        let tickets: Vec<u64> = (1..=3)
            .map(|id| {
                let (message, effects) = chat(id);
                p.hold_chat(&message, effects).0
            })
            .collect();
        assert!(
            p.answered(tickets[1], Ok(())).is_empty(),
            "the first is not answered"
        );
        assert_eq!(ids(&p.answered(tickets[0], Ok(()))), [1, 2]);
        assert_eq!(
            ids(&p.answered(tickets[2], Err("disk full".into()))),
            [3],
            "a failed commit still goes out"
        );
    }

    #[test]
    fn one_write_is_scheduled_per_burst_and_an_idle_record_is_refreshed() {
        let mut p = Persistence::new(Store::memory(), None, RoomId::new(), 1000.0, 100, 0.0);
        assert!(p.mark_dirty());
        assert!(!p.mark_dirty(), "already scheduled");
        assert!(!p.needs_refresh(499.0));
        assert!(p.needs_refresh(500.0));
    }
}
