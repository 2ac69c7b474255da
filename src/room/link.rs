//! `SessionLink`: how a room reaches one member's session, and how it tells a member that
//! cannot keep up from one that just received a burst.
//!
//! The room appends encoded frames to a queue it shares with the session ([`FrameQueue`],
//! behind a mutex) and wakes the session once; the session takes everything queued when it
//! runs and writes it to its socket. While the client reads, the queue empties each time the
//! session runs, however many frames a burst brought. While it does not, actix stops polling
//! the session (its socket is full), the queue keeps its frames, and the oldest of them
//! ages. A member is evicted when that age passes the room's `max_lag`, or at once when the
//! queue passes its byte limit: behind, not merely busy (docs/architecture.md, "Slow and
//! dead clients").
//!
//! A newer `playback` replaces one still queued (each carries the whole clock, so the older
//! one would be dropped by the client anyway): a lagging viewer of a seek storm holds one
//! update, not hundreds.
//!
//! The wake is a flag and a waker in [`Shared`], not an actor message: a broadcast to 4,000
//! members would otherwise allocate and queue 4,000 envelopes. The session polls it as a
//! stream ([`Wakes`]).
//!
//! The session also leaves the client's latest `status` report (round trip and drift) here
//! for the room to collect on its tick, so the room is not sent a message per member per
//! second; only a change of buffering, which can put the room on hold, goes to the room at
//! once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytestring::ByteString;
use futures_util::task::AtomicWaker;
use futures_util::Stream;
use parking_lot::Mutex;

use crate::clock::ServerMs;
use crate::protocol::CloseCode;

/// Tells a session that its queue has something new: an item of its [`Wakes`] stream. At
/// most one is pending per session.
#[derive(Debug, PartialEq, Eq)]
pub struct Wake;

/// A client's latest `status` report, as the room shows it in presence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// Its median round trip to the server, in ms.
    pub rtt_ms: f64,
    /// How far its player is from the room's clock, in ms (positive: ahead).
    pub drift_ms: f64,
}

/// When a member counts as unable to keep up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueLimits {
    /// Longest a frame may wait in the queue (ms) before its member counts as behind.
    pub max_lag_ms: f64,
    /// Most bytes queued at once; beyond this the member is behind at once.
    pub max_bytes: usize,
}

/// What a session writes, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    /// An encoded server message, written as one text message.
    Frame(ByteString),
    /// Close the connection with this code and reason; nothing follows it.
    Close(CloseCode, &'static str),
}

/// What a frame is to the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A `playback`: supersedes any `playback` still queued.
    Playback,
    /// Anything else: delivered as it is, in order.
    Other,
}

/// The result of offering a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Queued, and the session has been (or already was) woken.
    Queued,
    /// Queued, but the member is behind: its oldest frame is too old or the queue too big.
    Behind,
    /// The connection is closing; nothing more is queued.
    Closed,
}

/// One queued item and when it was queued.
#[derive(Debug)]
struct Entry {
    /// What to write.
    item: Outgoing,
    /// Whether a newer `playback` replaces it.
    kind: FrameKind,
    /// Server time it was queued; a replacing `playback` keeps the time of the one it
    /// replaced, since the member has been without the current clock since then.
    since: ServerMs,
}

/// The queue of one session, as plain data (unit-tested without actors).
#[derive(Debug, Default)]
pub struct FrameQueue {
    /// Items not yet taken by the session, oldest first.
    entries: VecDeque<Entry>,
    /// Bytes of the queued frames.
    bytes: usize,
    /// A wake is on its way and the session has not taken the queue since: no need for
    /// another.
    woken: bool,
    /// A close is queued: the connection is ending and takes nothing more.
    closing: bool,
}

impl FrameQueue {
    /// Queues `frame` at server time `now`. Returns whether the session needs a wake, and
    /// the outcome.
    pub fn offer(
        &mut self,
        frame: &ByteString,
        kind: FrameKind,
        now: ServerMs,
        limits: &QueueLimits,
    ) -> (bool, Offered) {
        if self.closing {
            return (false, Offered::Closed);
        }
        let replaced = (kind == FrameKind::Playback)
            .then(|| {
                self.entries
                    .iter_mut()
                    .find(|e| e.kind == FrameKind::Playback)
            })
            .flatten();
        match replaced {
            Some(old) => {
                if let Outgoing::Frame(f) = &old.item {
                    self.bytes -= f.len();
                }
                old.item = Outgoing::Frame(frame.clone());
            }
            None => self.entries.push_back(Entry {
                item: Outgoing::Frame(frame.clone()),
                kind,
                since: now,
            }),
        }
        self.bytes += frame.len();
        let outcome = if self.is_behind(now, limits) {
            Offered::Behind
        } else {
            Offered::Queued
        };
        (self.wake(), outcome)
    }

    /// Whether the member is behind: its oldest frame waited longer than the limit, or the
    /// queue holds more bytes than allowed.
    pub fn is_behind(&self, now: ServerMs, limits: &QueueLimits) -> bool {
        self.bytes > limits.max_bytes || self.lag_ms(now) > limits.max_lag_ms
    }

    /// How long the oldest queued frame has waited (0 when nothing waits).
    pub fn lag_ms(&self, now: ServerMs) -> f64 {
        self.entries
            .front()
            .map_or(0.0, |e| (now - e.since).max(0.0))
    }

    /// Ends the queue with a close. `keep_queued` keeps what is already queued in front of
    /// it (a restart notice should arrive); otherwise it is dropped (an evicted member is
    /// owed nothing more). Returns whether the session needs a wake.
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &'static str,
        keep_queued: bool,
        now: ServerMs,
    ) -> bool {
        if self.closing {
            return false;
        }
        if !keep_queued {
            self.entries.clear();
            self.bytes = 0;
        }
        self.closing = true;
        self.entries.push_back(Entry {
            item: Outgoing::Close(code, reason),
            kind: FrameKind::Other,
            since: now,
        });
        self.wake()
    }

    /// Queues a frame whatever the limits (a restart notice must not be refused).
    pub fn force(&mut self, frame: ByteString, now: ServerMs) -> bool {
        if self.closing {
            return false;
        }
        self.bytes += frame.len();
        self.entries.push_back(Entry {
            item: Outgoing::Frame(frame),
            kind: FrameKind::Other,
            since: now,
        });
        self.wake()
    }

    /// The session takes queued items, oldest first, up to and including the first frame
    /// longer than `whole_up_to` bytes (which it will write in fragments; what follows
    /// waits here, still counted, until it is done).
    pub fn take(&mut self, whole_up_to: usize, out: &mut Vec<Outgoing>) {
        self.woken = false;
        while let Some(entry) = self.entries.pop_front() {
            let large = match &entry.item {
                Outgoing::Frame(f) => {
                    self.bytes -= f.len();
                    f.len() > whole_up_to
                }
                Outgoing::Close(..) => false,
            };
            out.push(entry.item);
            if large {
                break;
            }
        }
    }

    /// Whether the session is owed a wake: true once per batch of offers until it takes.
    fn wake(&mut self) -> bool {
        !std::mem::replace(&mut self.woken, true)
    }
}

/// The part of a session its room shares: the queue, the wake, the last sign of life and
/// the latest report.
#[derive(Debug, Default)]
pub struct Shared {
    /// Frames for the session.
    queue: Mutex<FrameQueue>,
    /// Set when the session has something new to take, cleared when its stream yields.
    wake_pending: AtomicBool,
    /// The session's task, woken when `wake_pending` is set.
    waker: AtomicWaker,
    /// Server time (ms, as integer) when the client was last heard from. The room reads it
    /// every tick: a session whose socket stopped draining is not polled by actix at all,
    /// so it cannot notice its own silence; the room can.
    last_heard_ms: AtomicU64,
    /// The client's latest report not yet collected by the room.
    report: Mutex<Option<Report>>,
}

impl Shared {
    /// Records that the client was heard from now.
    pub fn heard(&self, now: ServerMs) {
        self.last_heard_ms.store(now as u64, Ordering::Relaxed);
    }

    /// Takes queued items for writing (see [`FrameQueue::take`]).
    pub fn take(&self, whole_up_to: usize, out: &mut Vec<Outgoing>) {
        self.queue.lock().take(whole_up_to, out);
    }

    /// Leaves the client's latest report for the room (replacing one not yet collected).
    pub fn report(&self, report: Report) {
        *self.report.lock() = Some(report);
    }

    /// Wakes the session.
    fn wake(&self) {
        self.wake_pending.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The wakes of one session, as a stream its actor polls (`ctx.add_stream`). It never ends.
#[derive(Debug)]
pub struct Wakes(
    /// What the room shares with the session.
    pub Arc<Shared>,
);

impl Stream for Wakes {
    type Item = Wake;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Wake>> {
        // Registered before the flag is read, so a wake between the two is not lost.
        self.0.waker.register(cx.waker());
        if self.0.wake_pending.swap(false, Ordering::AcqRel) {
            Poll::Ready(Some(Wake))
        } else {
            Poll::Pending
        }
    }
}

/// How a room reaches one connected session.
#[derive(Clone, Debug)]
pub struct SessionLink {
    /// The queue, wake, liveness and report, shared with the session.
    shared: Arc<Shared>,
}

impl SessionLink {
    /// A link to the session owning `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        SessionLink { shared }
    }

    /// The client's report since the last call, if it sent one.
    pub fn take_report(&self) -> Option<Report> {
        self.shared.report.lock().take()
    }

    /// Offers a frame (see [`FrameQueue::offer`]), waking the session if it needs it.
    pub fn offer(
        &self,
        frame: &ByteString,
        kind: FrameKind,
        now: ServerMs,
        limits: &QueueLimits,
    ) -> Offered {
        let (wake, outcome) = self.shared.queue.lock().offer(frame, kind, now, limits);
        if wake {
            self.shared.wake();
        }
        outcome
    }

    /// Whether the member is behind, judged now (for members whose queue stopped growing).
    pub fn is_behind(&self, now: ServerMs, limits: &QueueLimits) -> bool {
        self.shared.queue.lock().is_behind(now, limits)
    }

    /// Ends the connection after what is queued (`keep_queued`) or at once.
    pub fn close(&self, code: CloseCode, reason: &'static str, keep_queued: bool, now: ServerMs) {
        if self
            .shared
            .queue
            .lock()
            .close(code, reason, keep_queued, now)
        {
            self.shared.wake();
        }
    }

    /// Queues a frame whatever the limits.
    pub fn force(&self, frame: ByteString, now: ServerMs) {
        if self.shared.queue.lock().force(frame, now) {
            self.shared.wake();
        }
    }

    /// Milliseconds since the client was last heard from.
    pub fn silent_for(&self, now: ServerMs) -> f64 {
        now - self.shared.last_heard_ms.load(Ordering::Relaxed) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_set_before_the_stream_is_polled_is_not_lost_and_is_taken_once() {
        let shared = Arc::new(Shared::default());
        let link = SessionLink::new(Arc::clone(&shared));
        let mut wakes = Wakes(Arc::clone(&shared));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(Pin::new(&mut wakes).poll_next(&mut cx), Poll::Pending);
        let limits = QueueLimits {
            max_lag_ms: 1000.0,
            max_bytes: 100,
        };
        link.offer(&frame("a"), FrameKind::Other, 0.0, &limits);
        link.offer(&frame("b"), FrameKind::Other, 0.0, &limits);
        assert_eq!(
            Pin::new(&mut wakes).poll_next(&mut cx),
            Poll::Ready(Some(Wake))
        );
        assert_eq!(
            Pin::new(&mut wakes).poll_next(&mut cx),
            Poll::Pending,
            "one wake for the batch"
        );
    }

    #[test]
    fn the_room_collects_the_latest_report_once() {
        let shared = Arc::new(Shared::default());
        let link = SessionLink::new(Arc::clone(&shared));
        assert_eq!(link.take_report(), None);
        shared.report(Report {
            rtt_ms: 30.0,
            drift_ms: 1.0,
        });
        shared.report(Report {
            rtt_ms: 31.0,
            drift_ms: -2.0,
        });
        assert_eq!(
            link.take_report(),
            Some(Report {
                rtt_ms: 31.0,
                drift_ms: -2.0
            })
        );
        assert_eq!(link.take_report(), None);
    }

    const LIMITS: QueueLimits = QueueLimits {
        max_lag_ms: 1000.0,
        max_bytes: 100,
    };

    fn frame(text: &str) -> ByteString {
        ByteString::from(text.to_owned())
    }

    fn taken(q: &mut FrameQueue) -> Vec<Outgoing> {
        let mut out = Vec::new();
        q.take(8, &mut out);
        out
    }

    #[test]
    fn a_burst_wakes_once_and_is_taken_whole() {
        let mut q = FrameQueue::default();
        let wakes: Vec<bool> = (0..50)
            .map(|i| {
                let (wake, outcome) =
                    q.offer(&frame(&i.to_string()), FrameKind::Other, 0.0, &LIMITS);
                assert_eq!(outcome, Offered::Queued);
                wake
            })
            .collect();
        assert_eq!(
            wakes.iter().filter(|w| **w).count(),
            1,
            "one wake per batch"
        );
        assert_eq!(taken(&mut q).len(), 50);
        assert!(
            q.offer(&frame("x"), FrameKind::Other, 0.0, &LIMITS).0,
            "woken again after a take"
        );
    }

    #[test]
    fn a_member_is_behind_when_its_oldest_frame_is_too_old_not_when_the_queue_is_long() {
        let mut q = FrameQueue::default();
        for i in 0..90 {
            let (_, outcome) = q.offer(&frame("a"), FrameKind::Other, i as f64, &LIMITS);
            assert_eq!(outcome, Offered::Queued, "a burst of 90 frames is not lag");
        }
        assert!(!q.is_behind(1000.0, &LIMITS));
        assert!(q.is_behind(1000.5, &LIMITS));
        assert_eq!(
            q.offer(&frame("b"), FrameKind::Other, 1001.0, &LIMITS).1,
            Offered::Behind
        );
        taken(&mut q);
        assert_eq!(q.lag_ms(5000.0), 0.0);
    }

    #[test]
    fn the_byte_limit_is_immediate() {
        let mut q = FrameQueue::default();
        let big = frame(&"x".repeat(60));
        assert_eq!(
            q.offer(&big, FrameKind::Other, 0.0, &LIMITS).1,
            Offered::Queued
        );
        assert_eq!(
            q.offer(&big, FrameKind::Other, 0.0, &LIMITS).1,
            Offered::Behind
        );
    }

    #[test]
    fn a_newer_playback_replaces_the_queued_one_and_keeps_its_age() {
        let mut q = FrameQueue::default();
        q.offer(&frame("p1"), FrameKind::Playback, 0.0, &LIMITS);
        q.offer(&frame("chat"), FrameKind::Other, 10.0, &LIMITS);
        for i in 2..200 {
            let (_, outcome) =
                q.offer(&frame(&format!("p{i}")), FrameKind::Playback, 20.0, &LIMITS);
            assert_eq!(outcome, Offered::Queued);
        }
        assert_eq!(
            q.lag_ms(500.0),
            500.0,
            "the clock has been stale since the first"
        );
        assert_eq!(
            taken(&mut q),
            [
                Outgoing::Frame(frame("p199")),
                Outgoing::Frame(frame("chat"))
            ]
        );
        assert_eq!(q.bytes, 0);
    }

    #[test]
    fn a_close_ends_the_queue() {
        let mut q = FrameQueue::default();
        q.offer(&frame("old"), FrameKind::Other, 0.0, &LIMITS);
        taken(&mut q);
        q.offer(&frame("dropped"), FrameKind::Other, 0.0, &LIMITS);
        assert!(
            !q.close(CloseCode::Evicted, "behind", false, 0.0),
            "the wake sent for the dropped frame is still on its way"
        );
        assert_eq!(
            q.offer(&frame("late"), FrameKind::Other, 0.0, &LIMITS).1,
            Offered::Closed
        );
        assert!(!q.force(frame("late"), 0.0));
        assert_eq!(
            taken(&mut q),
            [Outgoing::Close(CloseCode::Evicted, "behind")]
        );

        let mut q = FrameQueue::default();
        q.force(frame("bye"), 0.0);
        q.close(CloseCode::Restart, "restart", true, 0.0);
        assert_eq!(
            taken(&mut q),
            [
                Outgoing::Frame(frame("bye")),
                Outgoing::Close(CloseCode::Restart, "restart")
            ]
        );
    }

    #[test]
    fn a_large_frame_holds_back_what_follows_it() {
        let mut q = FrameQueue::default();
        for text in ["a", "a long frame", "b"] {
            q.offer(&frame(text), FrameKind::Other, 0.0, &LIMITS);
        }
        assert_eq!(
            taken(&mut q),
            [
                Outgoing::Frame(frame("a")),
                Outgoing::Frame(frame("a long frame"))
            ]
        );
        assert_eq!(q.bytes, 1, "what waits still counts");
        assert_eq!(taken(&mut q), [Outgoing::Frame(frame("b"))]);
    }
}
