//! The writer's queue of uncommitted writes, bounded, and the backoff between retries.
//!
//! Plain structs, no I/O: generic over the ack type so tests use numbers. The queue holds
//! every write not yet committed: the writer commits a prefix of it and removes that prefix
//! only once the commit succeeded, so a failed batch is retried as it was, with whatever
//! arrived meanwhile behind it.
//!
//! The bound (count and bytes) matters when the backend is down for long: then writes keep
//! arriving and none leave. Over the bound the queue first removes the writes a later write
//! voids ([`plan::liveness`]: replaced records, chat beyond `keep`, anything before a delete),
//! which loses nothing; their acks move to the room's last write, whose commit makes them
//! true. If that is not enough it drops, oldest first, chat messages, then any writes,
//! down to 7/8 of the bound: the slack keeps the O(n) pass from running on every write.

use std::collections::VecDeque;

use super::plan::{self, Plan};
use super::{Fence, WriteOp};
use crate::ids::RoomId;

/// One queued write.
#[derive(Debug)]
pub(crate) struct Entry<A> {
    /// Position in arrival order, for flushes: a flush waits for everything up to its mark.
    pub seq: u64,
    /// The write.
    pub op: WriteOp,
    /// The ownership epoch it was made under, if any.
    pub fence: Option<Fence>,
    /// Acks to complete when this write commits: its own, if not answered yet, and those of
    /// voided writes it took over.
    pub acks: Vec<A>,
}

/// How much the queue may hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The most writes.
    pub max_ops: usize,
    /// The most bytes ([`WriteOp::size`]).
    pub max_bytes: usize,
}

/// What the queue gave up to stay within its bound.
#[derive(Debug)]
pub(crate) struct Evicted<A> {
    /// Writes removed because a later write voids them (nothing lost).
    pub coalesced: usize,
    /// Writes thrown away.
    pub dropped: usize,
    /// Acks of the thrown-away writes, to be answered with an error.
    pub dropped_acks: Vec<A>,
}

impl<A> Default for Evicted<A> {
    fn default() -> Self {
        Evicted {
            coalesced: 0,
            dropped: 0,
            dropped_acks: Vec::new(),
        }
    }
}

/// Uncommitted writes in arrival order (module doc).
#[derive(Debug)]
pub(crate) struct Queue<A> {
    /// The writes.
    entries: VecDeque<Entry<A>>,
    /// The next write's `seq`.
    next_seq: u64,
    /// Sum of [`WriteOp::size`] over `entries`.
    bytes: usize,
    /// The bound.
    limits: Limits,
}

impl<A> Queue<A> {
    /// An empty queue with this bound.
    pub fn new(limits: Limits) -> Self {
        Queue {
            entries: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            limits,
        }
    }

    /// Writes queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `seq` of the newest write, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.entries.back().map(|e| e.seq)
    }

    /// The `seq` of the oldest write, if any: everything before it has left the queue.
    pub fn front_seq(&self) -> Option<u64> {
        self.entries.front().map(|e| e.seq)
    }

    /// Appends a write; returns what had to go to stay within the bound.
    pub fn push(&mut self, op: WriteOp, fence: Option<Fence>, ack: Option<A>) -> Evicted<A> {
        self.bytes += op.size();
        self.entries.push_back(Entry {
            seq: self.next_seq,
            op,
            fence,
            acks: ack.into_iter().collect(),
        });
        self.next_seq += 1;
        if self.entries.len() > self.limits.max_ops || self.bytes > self.limits.max_bytes {
            self.make_room()
        } else {
            Evicted::default()
        }
    }

    /// The plan of the oldest `n` writes.
    pub fn plan(&self, n: usize) -> Plan<'_> {
        let ops: Vec<&WriteOp> = self.entries.iter().take(n).map(|e| &e.op).collect();
        let mut plan = plan::plan(&ops);
        // The latest fence of each room in the batch is the one its steps are written under.
        for entry in self.entries.iter().take(n) {
            match entry.fence {
                Some(fence) => plan.fences.insert(entry.op.room(), fence),
                None => plan.fences.remove(&entry.op.room()),
            };
        }
        plan
    }

    /// Removes the oldest `n` writes (they are committed); returns their acks with the room
    /// each is about.
    pub fn pop_front(&mut self, n: usize) -> Vec<(RoomId, A)> {
        let mut acks = Vec::new();
        for entry in self.entries.drain(..n.min(self.entries.len())) {
            self.bytes -= entry.op.size();
            let room = entry.op.room();
            acks.extend(entry.acks.into_iter().map(|ack| (room, ack)));
        }
        acks
    }

    /// Takes the acks of the oldest `n` writes, which stay queued (their commit failed and
    /// the acks are answered with the error now).
    pub fn take_acks(&mut self, n: usize) -> Vec<A> {
        self.entries
            .iter_mut()
            .take(n)
            .flat_map(|e| std::mem::take(&mut e.acks))
            .collect()
    }

    /// Removes everything; returns how many writes there were.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.bytes = 0;
        n
    }

    /// Brings the queue back under its bound (module doc).
    fn make_room(&mut self) -> Evicted<A> {
        let coalesced = self.coalesce();
        let low_ops = self.limits.max_ops - self.limits.max_ops / 8;
        let low_bytes = self.limits.max_bytes - self.limits.max_bytes / 8;
        if self.entries.len() <= low_ops && self.bytes <= low_bytes {
            return Evicted {
                coalesced,
                ..Evicted::default()
            };
        }
        let mut excess_ops = self.entries.len().saturating_sub(low_ops);
        let mut excess_bytes = self.bytes.saturating_sub(low_bytes);
        let mut doomed = vec![false; self.entries.len()];
        // Chat first (each message matters least), then anything, oldest first both times.
        for chat_only in [true, false] {
            for (i, entry) in self.entries.iter().enumerate() {
                if excess_ops == 0 && excess_bytes == 0 {
                    break;
                }
                let is_chat = matches!(entry.op, WriteOp::AppendChat { .. });
                if !doomed[i] && (is_chat || !chat_only) {
                    doomed[i] = true;
                    excess_ops = excess_ops.saturating_sub(1);
                    excess_bytes = excess_bytes.saturating_sub(entry.op.size());
                }
            }
        }
        let mut evicted = Evicted {
            coalesced,
            ..Evicted::default()
        };
        let mut kept = VecDeque::with_capacity(self.entries.len());
        for (entry, doomed) in self.entries.drain(..).zip(doomed) {
            if doomed {
                self.bytes -= entry.op.size();
                evicted.dropped += 1;
                evicted.dropped_acks.extend(entry.acks);
            } else {
                kept.push_back(entry);
            }
        }
        self.entries = kept;
        evicted
    }

    /// Removes the writes a later write voids, moving their acks to the last write of their
    /// room (never voided itself); returns how many went.
    fn coalesce(&mut self) -> usize {
        let ops: Vec<&WriteOp> = self.entries.iter().map(|e| &e.op).collect();
        let live = plan::liveness(&ops).live;
        let mut last_of_room = std::collections::HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            last_of_room.insert(op.room(), i);
        }
        let moved: Vec<(usize, usize)> = live
            .iter()
            .enumerate()
            .filter(|(_, live)| !**live)
            .map(|(i, _)| (i, last_of_room[&ops[i].room()]))
            .collect();
        for (from, to) in moved {
            let acks = std::mem::take(&mut self.entries[from].acks);
            self.entries[to].acks.extend(acks);
        }
        let before = self.entries.len();
        let mut live = live.into_iter();
        let mut freed = 0;
        self.entries.retain(|entry| {
            // unwrap: `live` has one flag per entry, taken in the same order.
            let keep = live.next().unwrap();
            if !keep {
                freed += entry.op.size();
            }
            keep
        });
        self.bytes -= freed;
        before - self.entries.len()
    }
}

/// Exponential backoff between retries of a failed commit.
#[derive(Debug)]
pub(crate) struct Backoff {
    /// The first wait.
    min: std::time::Duration,
    /// The longest wait.
    max: std::time::Duration,
    /// The wait after the next failure.
    next: std::time::Duration,
}

impl Backoff {
    /// Starts at `min`, doubling up to `max`.
    pub fn new(min: std::time::Duration, max: std::time::Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next retry; doubles the one after.
    pub fn next_delay(&mut self) -> std::time::Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ids::RoomId;

    fn put(room: RoomId, v: u8) -> WriteOp {
        WriteOp::PutRoom {
            room,
            record: vec![v],
            expires_at_ms: 0,
        }
    }

    fn chat(room: RoomId, id: u64) -> WriteOp {
        WriteOp::AppendChat {
            room,
            id,
            message: vec![0; 10],
            keep: 100,
        }
    }

    fn roomy() -> Limits {
        Limits {
            max_ops: 1000,
            max_bytes: usize::MAX,
        }
    }

    #[test]
    fn a_plan_writes_each_room_under_the_fence_of_its_latest_write() {
        let (a, b, c) = (RoomId::new(), RoomId::new(), RoomId::new());
        let mut q: Queue<()> = Queue::new(roomy());
        q.push(put(a, 1), Some(Fence(1)), None);
        q.push(put(b, 1), Some(Fence(7)), None);
        q.push(chat(a, 1), Some(Fence(2)), None);
        q.push(put(c, 1), None, None);
        q.push(put(b, 2), None, None);
        let plan = q.plan(5);
        assert_eq!(plan.fences.get(&a), Some(&Fence(2)));
        assert_eq!(
            plan.fences.get(&b),
            None,
            "the latest write of b has no fence"
        );
        assert_eq!(plan.fences.get(&c), None);
        assert_eq!(
            q.plan(2).fences.get(&b),
            Some(&Fence(7)),
            "within the batch only"
        );
    }

    #[test]
    fn a_failed_batch_keeps_its_writes_and_gives_up_its_acks_once() {
        let a = RoomId::new();
        let mut q = Queue::new(roomy());
        for v in 0..3 {
            q.push(put(a, v), None, Some(u32::from(v)));
        }
        assert_eq!(q.take_acks(2), [0, 1]);
        assert_eq!(q.take_acks(2), Vec::<u32>::new());
        q.push(put(a, 3), None, Some(3));
        assert_eq!(q.len(), 4);
        // The retry covers the failed writes and what came after; the plan writes the newest.
        assert_eq!(q.plan(4).steps.len(), 1);
        assert_eq!(q.pop_front(4), [(a, 2), (a, 3)]);
        assert!(q.is_empty());
        assert_eq!(q.bytes, 0);
    }

    #[test]
    fn over_the_bound_replaced_records_go_first_and_lose_no_ack() {
        let (a, b) = (RoomId::new(), RoomId::new());
        let mut q = Queue::new(Limits {
            max_ops: 8,
            max_bytes: usize::MAX,
        });
        for v in 0..8u8 {
            let e = q.push(
                put(if v % 2 == 0 { a } else { b }, v),
                None,
                Some(u32::from(v)),
            );
            assert_eq!((e.coalesced, e.dropped), (0, 0));
        }
        let e = q.push(put(a, 8), None, Some(8));
        // Only each room's newest record is left, carrying every ack of its room.
        assert_eq!((e.coalesced, e.dropped), (7, 0));
        assert_eq!(q.len(), 2);
        let mut acks: Vec<u32> = q.pop_front(2).into_iter().map(|(_, ack)| ack).collect();
        acks.sort_unstable();
        assert_eq!(acks, (0..=8).collect::<Vec<_>>());
        assert_eq!(q.bytes, 0);
    }

    #[test]
    fn with_nothing_to_coalesce_the_oldest_chat_is_dropped_before_any_record() {
        let mut q = Queue::new(Limits {
            max_ops: 16,
            max_bytes: usize::MAX,
        });
        let rooms: Vec<RoomId> = (0..16).map(|_| RoomId::new()).collect();
        // Eight records of eight rooms, then one chat in each of eight other rooms.
        for (i, room) in rooms.iter().enumerate().take(8) {
            q.push(put(*room, i as u8), None, None);
        }
        for (i, room) in rooms.iter().enumerate().skip(8) {
            q.push(chat(*room, i as u64), None, Some(i));
        }
        let e = q.push(chat(rooms[0], 99), None, Some(99));
        // 17 writes, all live: back down to 14 by dropping the three oldest chats.
        assert_eq!((e.coalesced, e.dropped), (0, 3));
        assert_eq!(e.dropped_acks, [8, 9, 10]);
        assert_eq!(q.len(), 14);
        assert!(q
            .entries
            .iter()
            .take(8)
            .all(|e| matches!(e.op, WriteOp::PutRoom { .. })));
    }

    #[test]
    fn records_are_dropped_oldest_first_when_nothing_else_is_left() {
        let mut q = Queue::new(Limits {
            max_ops: 8,
            max_bytes: usize::MAX,
        });
        let rooms: Vec<RoomId> = (0..9).map(|_| RoomId::new()).collect();
        for (i, room) in rooms.iter().enumerate() {
            q.push(put(*room, i as u8), None, Some(i));
        }
        // 9 live records over a bound of 8: down to 7, the two oldest gone.
        assert_eq!(q.len(), 7);
        assert_eq!(q.front_seq(), Some(2));
    }

    #[test]
    fn the_byte_bound_counts_payloads() {
        let a = RoomId::new();
        let one = put(a, 0).size();
        let mut q: Queue<()> = Queue::new(Limits {
            max_ops: usize::MAX,
            max_bytes: one * 4,
        });
        for id in 0..5 {
            q.push(
                WriteOp::AppendChat {
                    room: RoomId::new(),
                    id,
                    message: vec![0],
                    keep: 10,
                },
                None,
                None,
            );
        }
        assert!(q.bytes <= one * 4);
        assert!(q.len() < 5);
    }

    #[test]
    fn seqs_follow_arrival_and_survive_removal() {
        let a = RoomId::new();
        let mut q: Queue<()> = Queue::new(roomy());
        assert_eq!((q.front_seq(), q.last_seq()), (None, None));
        for id in 0..5 {
            q.push(chat(a, id), None, None);
        }
        q.pop_front(2);
        assert_eq!((q.front_seq(), q.last_seq()), (Some(2), Some(4)));
        assert_eq!(q.clear(), 3);
        q.push(chat(a, 5), None, None);
        assert_eq!(q.front_seq(), Some(5));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        let waits: Vec<u128> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(50));
    }
}
