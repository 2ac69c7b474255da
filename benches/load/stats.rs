//! What every session records while the bench runs: counters, latency histograms, traffic.
//!
//! One `Stats` is shared by all sessions. Counters are atomics; histograms sit behind a mutex
//! each, taken once per sample (at most a few hundred thousand samples a second, far below
//! where that lock would show up next to JSON parsing).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Where the run is; sessions read it to decide what to send and where to count traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Rooms are filling: connect, join, pings and status only.
    Admit = 0,
    /// The measured period: hosts send controls, members chat.
    Hold = 1,
    /// Controls and chat stopped; late deliveries may still arrive.
    Drain = 2,
    /// Close every connection.
    Done = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Admit,
            1 => Phase::Hold,
            2 => Phase::Drain,
            _ => Phase::Done,
        }
    }
}

/// Bytes and frames received (and frames sent) during one phase.
#[derive(Default)]
pub struct Traffic {
    /// Frames the bench sent (text frames, and the pongs its WebSocket library returns):
    /// the frames the server read, for its CPU per frame.
    pub sent_frames: AtomicU64,
    /// Frames received that carry no text (the server's pings): the server wrote them too.
    pub other_frames: AtomicU64,
    /// Every text frame's payload bytes.
    pub bytes: AtomicU64,
    /// Text frames.
    pub frames: AtomicU64,
    /// Membership and presence bytes (`presence`, `joined`, `left`, `host`, `room`): the
    /// traffic issue 6 bounds per member.
    pub membership_bytes: AtomicU64,
    /// Membership and presence frames.
    pub membership_frames: AtomicU64,
    /// `playback` bytes: the fan-out itself.
    pub playback_bytes: AtomicU64,
    /// `welcome` bytes: one per join, grows with the room.
    pub welcome_bytes: AtomicU64,
}

/// A latency histogram in microseconds.
pub struct Latency(
    /// Samples from every session; locked once per sample.
    Mutex<Histogram<u64>>,
);

impl Latency {
    fn new() -> Self {
        // 1 µs to 10 min at 3 significant digits: every latency this bench can see.
        // unwrap: the bounds are constants known to be valid
        Latency(Mutex::new(
            Histogram::new_with_bounds(1, 600_000_000, 3).unwrap(),
        ))
    }

    /// Adds one sample.
    pub fn record(&self, micros: u64) {
        let mut h = self.0.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(micros.max(1));
    }

    /// A copy to summarize.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Most problem descriptions kept verbatim for the report.
const MAX_PROBLEM_SAMPLES: usize = 12;

/// Everything the sessions measure.
pub struct Stats {
    /// Time zero of the run; every timestamp the bench puts on the wire is relative to it.
    pub epoch: Instant,
    /// The current phase, as `Phase as u8`.
    phase: AtomicU8,
    /// Connect + WebSocket upgrade + `join` until `welcome`, first join of each session.
    pub join: Latency,
    /// The same for rejoins while churning.
    pub rejoin: Latency,
    /// Host sends a control → its `playback` arrives at another member.
    pub fanout: Latency,
    /// Member sends `chat` → it arrives at another member.
    pub chat: Latency,
    /// `ping` → `pong` round trip, during the hold.
    pub ping: Latency,
    /// Ping, bench → server's `t1` stamp (client write, kernel, server read and decode).
    pub ping_up: Latency,
    /// Pong, server's `t2` stamp → bench (server write, kernel, bench read).
    pub ping_down: Latency,
    /// Host sends `pause` → the room applies it (its `anchor` is the room's clock then):
    /// the host's session, the room's mailbox and queue.
    pub control_up: Latency,
    /// The room applies `pause` → a member reads its `playback`: delivery to every session,
    /// their writes, the kernel, the bench's reading.
    pub control_down: Latency,
    /// How late a 10 ms timer on the bench's runtime fires during the hold: when this is
    /// large, the bench itself (not the server) is slow to read what arrives.
    pub bench_lag: Latency,
    /// A member's `buffering` flip (its `status` sent) → the flip shown to its room's host
    /// in `presence`: how current the room's view of its members is.
    pub presence_lag: Latency,
    /// Presence frames by the tenth of a second (of the bench's clock) they arrived in:
    /// rooms that flush presence at the same moment show up as one crowded tenth.
    pub presence_phase: [AtomicU64; 10],
    /// Buffering flips members reported.
    pub flips_sent: AtomicU64,
    /// Flips still not shown to the host when the run ended.
    pub flips_unseen: AtomicU64,
    /// Best clock-sync sample: (round trip without server time, server ms − bench ms).
    clock: Mutex<Option<(f64, f64)>>,
    /// Sessions that got their first `welcome`.
    pub admitted: AtomicU64,
    /// Sessions that gave up before their first `welcome`.
    pub admit_failed: AtomicU64,
    /// Microseconds since epoch at which the last first `welcome` arrived.
    pub last_admit_us: AtomicU64,
    /// TCP connects or WebSocket upgrades that failed.
    pub connect_failures: AtomicU64,
    /// Joins refused or unanswered.
    pub join_failures: AtomicU64,
    /// `error` frames received after joining.
    pub error_frames: AtomicU64,
    /// Connections the server closed (or lost) while the bench still wanted them.
    pub unexpected_closes: AtomicU64,
    /// `playback` updates a member never saw (gaps in `seq`, or behind the room at the end).
    pub playback_drops: AtomicU64,
    /// Chat messages a member never saw (gaps in chat ids, or behind the room at the end).
    pub chat_drops: AtomicU64,
    /// `playback` frames whose position was not one of the bench's timestamps.
    pub unmatched: AtomicU64,
    /// Frames the bench could not parse or did not expect.
    pub bad_frames: AtomicU64,
    /// Control messages hosts sent.
    pub controls_sent: AtomicU64,
    /// Chat messages members sent.
    pub chats_sent: AtomicU64,
    /// Pings sent.
    pub pings_sent: AtomicU64,
    /// Status reports sent.
    pub statuses_sent: AtomicU64,
    /// Members that left on purpose while churning.
    pub churn_leaves: AtomicU64,
    /// Traffic per phase (indexed by `Phase as usize`, Done unused).
    pub traffic: [Traffic; 4],
    /// The first few problems, verbatim, to explain the counters.
    problems: Mutex<Vec<String>>,
    /// WebSocket connections by the node that accepted them (its `X-Served-By`), to show
    /// how a balancer spread the rooms.
    pub served_by: Mutex<BTreeMap<String, u64>>,
    /// Rooms whose connections were accepted by more than one node.
    pub split_rooms: AtomicU64,
}

impl Stats {
    /// Fresh counters; time zero is now.
    pub fn new() -> Self {
        Stats {
            epoch: Instant::now(),
            phase: AtomicU8::new(Phase::Admit as u8),
            join: Latency::new(),
            rejoin: Latency::new(),
            fanout: Latency::new(),
            chat: Latency::new(),
            ping: Latency::new(),
            ping_up: Latency::new(),
            ping_down: Latency::new(),
            control_up: Latency::new(),
            control_down: Latency::new(),
            bench_lag: Latency::new(),
            presence_lag: Latency::new(),
            presence_phase: Default::default(),
            flips_sent: AtomicU64::new(0),
            flips_unseen: AtomicU64::new(0),
            clock: Mutex::new(None),
            admitted: AtomicU64::new(0),
            admit_failed: AtomicU64::new(0),
            last_admit_us: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            join_failures: AtomicU64::new(0),
            error_frames: AtomicU64::new(0),
            unexpected_closes: AtomicU64::new(0),
            playback_drops: AtomicU64::new(0),
            chat_drops: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            served_by: Mutex::new(BTreeMap::new()),
            split_rooms: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            controls_sent: AtomicU64::new(0),
            chats_sent: AtomicU64::new(0),
            pings_sent: AtomicU64::new(0),
            statuses_sent: AtomicU64::new(0),
            churn_leaves: AtomicU64::new(0),
            traffic: Default::default(),
            problems: Mutex::new(Vec::new()),
        }
    }

    /// Feeds one ping exchange (bench ms `t0`, `t3`; server ms `t1`, `t2`) to the clock
    /// offset estimate, keeping the exchange with the least network time (NTP's rule).
    pub fn clock_sample(&self, t0: f64, t1: f64, t2: f64, t3: f64) {
        let rtt = (t3 - t0) - (t2 - t1);
        let offset = ((t1 - t0) + (t2 - t3)) / 2.0;
        let mut best = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        if best.is_none_or(|(r, _)| rtt < r) {
            *best = Some((rtt, offset));
        }
    }

    /// Server ms − bench ms, once a ping has been answered.
    pub fn clock_offset_ms(&self) -> Option<f64> {
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(_, o)| o)
    }

    /// Microseconds since time zero.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// Moves the run to `phase` (sessions are told separately, through a watch channel).
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Traffic counters of the current phase.
    pub fn traffic_now(&self) -> &Traffic {
        &self.traffic[self.phase() as usize]
    }

    /// Counts one event and keeps its description if there is room.
    pub fn problem(&self, counter: &AtomicU64, what: impl FnOnce() -> String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < MAX_PROBLEM_SAMPLES {
            kept.push(what());
        }
    }

    /// Counts a connection accepted by `node` for `room`.
    pub fn served(&self, room: &RoomTally, node: &str) {
        let mut by = self.served_by.lock().unwrap_or_else(|p| p.into_inner());
        *by.entry(node.to_owned()).or_default() += 1;
        let mut nodes = room.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if !nodes.contains(node) {
            nodes.insert(node.to_owned());
            if nodes.len() == 2 {
                self.split_rooms.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The kept problem descriptions.
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every error the bench counts; a clean run has none.
    pub fn errors(&self) -> u64 {
        [
            &self.connect_failures,
            &self.join_failures,
            &self.error_frames,
            &self.unexpected_closes,
            &self.playback_drops,
            &self.chat_drops,
            &self.unmatched,
            &self.bad_frames,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// Per-room facts the members compare themselves against at the end.
#[derive(Default)]
pub struct RoomTally {
    /// Highest playback `seq` any member of the room has seen.
    pub max_seq: AtomicU64,
    /// Highest chat id any member of the room has seen.
    pub max_chat_id: AtomicU64,
    /// Latest buffering flip per participant id not yet seen by the host: (state, sent µs).
    pub flips: Mutex<HashMap<String, (bool, u64)>>,
    /// The nodes that accepted this room's connections (`X-Served-By`): one, unless a
    /// balancer split the room.
    pub nodes: Mutex<BTreeSet<String>>,
}
