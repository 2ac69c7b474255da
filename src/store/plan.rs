//! What a batch of writes amounts to: the steps a backend applies in one transaction, with
//! the writes that a later write of the same batch makes pointless left out.
//!
//! Plain functions over [`WriteOp`]s, no I/O, so the coalescing rules are tested on their
//! own. A write is *live* unless a later write of the same batch voids it:
//! - anything before a `DeleteRoom` of its room (the room's record and chat are deleted);
//! - a `PutRoom` before another `PutRoom` of its room (records replace each other);
//! - an `AppendChat` followed by at least `keep` more appends of its room, `keep` being that of
//!   the room's latest append, except that latest append itself (it carries the trim).
//!
//! Since the batch commits as a whole, leaving these out changes nothing a reader can see
//! after the commit. The trim of a room's chat is one step after its appends, with the keep of
//! its latest append: a chat storm of hundreds of messages costs one trim, not hundreds.

use std::collections::HashMap;

use super::{Fence, WriteOp};
use crate::ids::RoomId;

/// One thing a backend does, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// Store the room's record and its expiry, replacing any earlier one.
    Put {
        /// The room.
        room: RoomId,
        /// The record.
        record: &'a [u8],
        /// Epoch ms after which the room may be deleted.
        expires_at_ms: u64,
    },
    /// Store one chat message (replacing one with the same id).
    Append {
        /// The room.
        room: RoomId,
        /// The message id.
        id: u64,
        /// The message.
        message: &'a [u8],
    },
    /// Keep only the room's newest `keep` messages.
    Trim {
        /// The room.
        room: RoomId,
        /// How many to keep.
        keep: usize,
        /// The id of the room's newest message (its latest append). A room's ids are
        /// consecutive (`room::chat` counts them up by one), so the messages to drop are
        /// exactly those with ids up to `newest - keep`: a backend can delete that range of
        /// its key without counting rows first.
        newest: u64,
    },
    /// Delete the room's record and chat.
    Delete {
        /// The room.
        room: RoomId,
    },
}

impl Step<'_> {
    /// The room the step is about.
    pub fn room(&self) -> RoomId {
        match *self {
            Step::Put { room, .. }
            | Step::Append { room, .. }
            | Step::Trim { room, .. }
            | Step::Delete { room } => room,
        }
    }

    /// The step's name, as `store::redis::FENCED_STEP` takes it.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Put { .. } => "put",
            Step::Append { .. } => "append",
            Step::Trim { .. } => "trim",
            Step::Delete { .. } => "delete",
        }
    }
}

/// The steps of one batch: live writes in the order they were made, then one trim per room
/// that appended chat.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan<'a> {
    /// What to do, in order.
    pub steps: Vec<Step<'a>>,
    /// The fence each room's steps are written under, for rooms whose latest write in the
    /// batch carried one (filled in by the queue, which keeps the fences).
    pub fences: HashMap<RoomId, Fence>,
}

/// Which of `ops` are live, and which rooms need their chat trimmed afterwards.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Liveness {
    /// `live[i]`: whether `ops[i]` must be applied.
    pub live: Vec<bool>,
    /// Rooms with appends no delete voided, with the keep and the id of their latest
    /// append, in the order of those latest appends.
    pub trims: Vec<(RoomId, usize, u64)>,
}

/// What the writes after a position hold for one room (the pass runs backwards).
#[derive(Default)]
struct Later {
    /// A `DeleteRoom` comes later.
    delete: bool,
    /// A `PutRoom` comes later.
    put: bool,
    /// How many `AppendChat`s come later (before any later delete).
    appends: usize,
    /// The keep of the room's latest append, once seen.
    keep: Option<usize>,
}

/// Marks which writes are live (module doc), in one backward pass.
pub(crate) fn liveness(ops: &[&WriteOp]) -> Liveness {
    let mut later: HashMap<RoomId, Later> = HashMap::new();
    let mut live = vec![false; ops.len()];
    let mut trims = Vec::new();
    for (i, op) in ops.iter().enumerate().rev() {
        let room = op.room();
        let after = later.entry(room).or_default();
        live[i] = match op {
            WriteOp::DeleteRoom { .. } => {
                let first = !after.delete;
                after.delete = true;
                first
            }
            WriteOp::PutRoom { .. } => {
                let replaced = after.delete || after.put;
                after.put = true;
                !replaced
            }
            WriteOp::AppendChat { keep, id, .. } => {
                if after.delete {
                    false
                } else {
                    let keep = match after.keep {
                        Some(k) => k,
                        None => {
                            after.keep = Some(*keep);
                            trims.push((room, *keep, *id));
                            *keep
                        }
                    };
                    let kept = after.appends == 0 || after.appends < keep;
                    after.appends += 1;
                    kept
                }
            }
        };
    }
    trims.reverse();
    Liveness { live, trims }
}

/// The steps that apply `ops` (module doc).
pub(crate) fn plan<'a>(ops: &[&'a WriteOp]) -> Plan<'a> {
    let Liveness { live, trims } = liveness(ops);
    let mut steps: Vec<Step<'a>> = ops
        .iter()
        .zip(&live)
        .filter(|(_, live)| **live)
        .map(|(op, _)| match op {
            WriteOp::PutRoom {
                room,
                record,
                expires_at_ms,
            } => Step::Put {
                room: *room,
                record,
                expires_at_ms: *expires_at_ms,
            },
            WriteOp::AppendChat {
                room, id, message, ..
            } => Step::Append {
                room: *room,
                id: *id,
                message,
            },
            WriteOp::DeleteRoom { room } => Step::Delete { room: *room },
        })
        .collect();
    steps.extend(
        trims
            .into_iter()
            .map(|(room, keep, newest)| Step::Trim { room, keep, newest }),
    );
    Plan {
        steps,
        fences: HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(room: RoomId, v: u8) -> WriteOp {
        WriteOp::PutRoom {
            room,
            record: vec![v],
            expires_at_ms: 1000 + u64::from(v),
        }
    }

    fn chat(room: RoomId, id: u64, keep: usize) -> WriteOp {
        WriteOp::AppendChat {
            room,
            id,
            message: vec![id as u8],
            keep,
        }
    }

    fn live_of(ops: &[WriteOp]) -> Vec<bool> {
        liveness(&ops.iter().collect::<Vec<_>>()).live
    }

    #[test]
    fn a_later_put_replaces_an_earlier_one_of_the_same_room_only() {
        let (a, b) = (RoomId::new(), RoomId::new());
        let ops = [put(a, 1), put(b, 1), put(a, 2), put(a, 3)];
        assert_eq!(live_of(&ops), [false, true, false, true]);
        let refs: Vec<_> = ops.iter().collect();
        assert_eq!(
            plan(&refs).steps,
            [
                Step::Put {
                    room: b,
                    record: &[1],
                    expires_at_ms: 1001
                },
                Step::Put {
                    room: a,
                    record: &[3],
                    expires_at_ms: 1003
                },
            ]
        );
    }

    #[test]
    fn a_delete_voids_everything_before_it_and_nothing_after() {
        let a = RoomId::new();
        let ops = [
            put(a, 1),
            chat(a, 1, 10),
            WriteOp::DeleteRoom { room: a },
            chat(a, 2, 10),
            put(a, 2),
            WriteOp::DeleteRoom { room: a },
            put(a, 3),
            chat(a, 3, 10),
        ];
        assert_eq!(
            live_of(&ops),
            [false, false, false, false, false, true, true, true]
        );
        let refs: Vec<_> = ops.iter().collect();
        assert_eq!(
            plan(&refs).steps,
            [
                Step::Delete { room: a },
                Step::Put {
                    room: a,
                    record: &[3],
                    expires_at_ms: 1003
                },
                Step::Append {
                    room: a,
                    id: 3,
                    message: &[3]
                },
                Step::Trim {
                    room: a,
                    keep: 10,
                    newest: 3
                },
            ]
        );
    }

    #[test]
    fn chat_beyond_the_latest_keep_is_left_out_and_trimmed_once() {
        let (a, b) = (RoomId::new(), RoomId::new());
        let mut ops: Vec<WriteOp> = (1..=500).map(|id| chat(a, id, 50)).collect();
        ops.push(chat(b, 1, 50));
        let refs: Vec<_> = ops.iter().collect();
        let steps = plan(&refs).steps;
        let appended: Vec<u64> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Append { room, id, .. } if *room == a => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(appended, (451..=500).collect::<Vec<_>>());
        let trims: Vec<_> = steps
            .iter()
            .filter(|s| matches!(s, Step::Trim { .. }))
            .collect();
        assert_eq!(
            trims,
            [
                &Step::Trim {
                    room: a,
                    keep: 50,
                    newest: 500
                },
                &Step::Trim {
                    room: b,
                    keep: 50,
                    newest: 1
                }
            ]
        );
    }

    #[test]
    fn a_keep_of_zero_still_trims_away_what_was_stored() {
        let a = RoomId::new();
        let ops = [chat(a, 1, 0), chat(a, 2, 0)];
        assert_eq!(live_of(&ops), [false, true]);
        let refs: Vec<_> = ops.iter().collect();
        assert_eq!(
            plan(&refs).steps.last(),
            Some(&Step::Trim {
                room: a,
                keep: 0,
                newest: 2
            })
        );
    }

    #[test]
    fn the_last_write_of_every_room_is_live() {
        // The queue moves the acks of voided writes onto the room's last write, so that one
        // must never be voided itself.
        let rooms: Vec<RoomId> = (0..4).map(|_| RoomId::new()).collect();
        let mut ops = Vec::new();
        for i in 0..200u64 {
            let room = rooms[(i * 7 % 4) as usize];
            ops.push(match i % 5 {
                0 => put(room, i as u8),
                4 if i % 3 == 0 => WriteOp::DeleteRoom { room },
                _ => chat(room, i, (i % 3) as usize),
            });
        }
        let live = live_of(&ops);
        for room in &rooms {
            let last = ops.iter().rposition(|op| op.room() == *room).unwrap(); // unwrap: every room has writes
            assert!(live[last], "last write of {room} voided");
        }
    }

    #[test]
    fn an_empty_batch_plans_nothing() {
        assert_eq!(plan(&[]), Plan::default());
    }
}
