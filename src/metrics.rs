//! Server metrics, exposed at `GET /metrics` in the Prometheus text format.
//!
//! One [`Metrics`] per server (not a global registry), so several servers in one test process
//! keep separate counts. Every metric is an atomic, and labelled counters are looked up once,
//! at start-up ([`Labelled`]): recording never takes a lock.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use std::sync::Arc;

use crate::protocol::{CLIENT_TYPES, SERVER_TYPES};
use crate::store::StoreMetrics;

/// Limits whose refusals are counted, by label.
pub const LIMITS: &[&str] = &[
    "message_rate",
    "frame_size",
    "connect_rate",
    "sessions_per_ip",
    "connections_per_ip",
    "rooms_per_ip",
];
/// Reasons a member is removed without a clean close.
pub const EVICTION_REASONS: &[&str] = &["slow", "silent", "timeout"];
/// How a hold for buffering members ends.
pub const HOLD_OUTCOMES: &[&str] = &["ready", "left", "timeout", "cancelled"];

/// A labelled counter family with the handle of every known label resolved once.
/// `with_label_values` takes a read lock and hashes the labels on each call, and some of these
/// counters are recorded for every frame.
pub struct Labelled {
    /// The family, for a label nobody listed (a slip, caught in debug builds).
    family: IntCounterVec,
    /// Known labels and their counters.
    known: Vec<(&'static str, IntCounter)>,
}

impl Labelled {
    fn new(family: &IntCounterVec, labels: &[&'static str]) -> Self {
        Labelled {
            known: labels
                .iter()
                .map(|l| (*l, family.with_label_values(&[*l])))
                .collect(),
            family: family.clone(),
        }
    }

    /// Adds `n` to the counter of `label`.
    pub fn inc_by(&self, label: &str, n: u64) {
        match self.known.iter().find(|(l, _)| *l == label) {
            Some((_, counter)) => counter.inc_by(n),
            None => {
                debug_assert!(false, "metric label {label:?} was not listed");
                self.family.with_label_values(&[label]).inc_by(n);
            }
        }
    }
}

/// Every metric the server records.
pub struct Metrics {
    /// Where the metrics are registered, for encoding.
    registry: Registry,
    /// Rooms alive now.
    pub rooms: IntGauge,
    /// WebSocket sessions open now.
    pub sessions: IntGauge,
    /// Client messages received, by `type` (and `invalid`).
    messages_in: Labelled,
    /// Frames queued to sessions by the rooms, by message type.
    frames_out: Labelled,
    /// Members removed without a clean close, by reason: `slow` (queue behind), `silent`
    /// (the room saw no sign of life), `timeout` (the session's heartbeat gave up).
    evictions: Labelled,
    /// Requests refused by a limit, by limit name.
    rejected: Labelled,
    /// `error` messages sent to clients.
    pub errors_sent: IntCounter,
    /// Time from a session receiving a control or chat frame to the room having queued it
    /// to every member.
    pub broadcast_seconds: Histogram,
    /// Holds for buffering members, by how they ended.
    holds: Labelled,
    /// |drift| that clients report in `status`, in ms: how well viewers are in sync.
    client_drift_ms: Histogram,
    /// Round trip that clients report in `status`, in ms.
    client_rtt_ms: Histogram,
    /// Rooms loaded from the store (after a restart, or after being unloaded while idle).
    rooms_loaded: IntCounter,
    /// Rooms this node handed over to another node that asked for them (many-node mode).
    rooms_handed_over: IntCounter,
    /// The room store's own metrics, in the same registry.
    pub store: Arc<StoreMetrics>,
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("watch_together".into()), None)
            .expect("a static prefix is a valid metric namespace");
        let family = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric")
        };
        let messages_in = family(
            "messages_in_total",
            "Client messages received by type",
            "type",
        );
        let frames_out = family(
            "frames_out_total",
            "Frames queued to sessions by type",
            "type",
        );
        let evictions = family(
            "evictions_total",
            "Members removed without a clean close",
            "reason",
        );
        let rejected = family("rejected_total", "Requests refused by a limit", "limit");
        let holds = family(
            "holds_total",
            "Holds for buffering members, by how they ended",
            "outcome",
        );
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric")
        };
        let client_drift_ms = histogram(
            "client_drift_ms",
            "Absolute drift from the room clock that clients report, in ms",
            vec![
                2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
            ],
        );
        let client_rtt_ms = histogram(
            "client_rtt_ms",
            "Round trip to the server that clients report, in ms",
            vec![
                5.0, 10.0, 25.0, 50.0, 100.0, 150.0, 250.0, 400.0, 750.0, 1500.0,
            ],
        );
        let client_types: Vec<&'static str> =
            CLIENT_TYPES.iter().copied().chain(["invalid"]).collect();
        let m = Metrics {
            rooms: IntGauge::new("rooms", "Rooms alive").expect("valid metric"),
            sessions: IntGauge::new("sessions", "Open WebSocket sessions").expect("valid metric"),
            messages_in: Labelled::new(&messages_in, &client_types),
            frames_out: Labelled::new(&frames_out, SERVER_TYPES),
            evictions: Labelled::new(&evictions, EVICTION_REASONS),
            rejected: Labelled::new(&rejected, LIMITS),
            holds: Labelled::new(&holds, HOLD_OUTCOMES),
            client_drift_ms: client_drift_ms.clone(),
            client_rtt_ms: client_rtt_ms.clone(),
            rooms_handed_over: IntCounter::new(
                "rooms_handed_over_total",
                "Rooms handed over to another node that asked for them",
            )
            .expect("valid metric"),
            rooms_loaded: IntCounter::new(
                "rooms_loaded_total",
                "Rooms loaded from the store after a restart or an idle unload",
            )
            .expect("valid metric"),
            store: Arc::new(StoreMetrics::new()),
            errors_sent: IntCounter::new("errors_sent_total", "Error messages sent to clients")
                .expect("valid metric"),
            broadcast_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "broadcast_seconds",
                    "From receiving a control or chat frame to queuing it for every member",
                )
                .buckets(vec![
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                    0.1,
                ]),
            )
            .expect("valid metric"),
            registry,
        };
        for metric in [
            Box::new(m.rooms.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.sessions.clone()),
            Box::new(messages_in),
            Box::new(frames_out),
            Box::new(evictions),
            Box::new(rejected),
            Box::new(holds),
            Box::new(client_drift_ms),
            Box::new(client_rtt_ms),
            Box::new(m.rooms_loaded.clone()),
            Box::new(m.rooms_handed_over.clone()),
            Box::new(m.errors_sent.clone()),
            Box::new(m.broadcast_seconds.clone()),
        ] {
            m.registry
                .register(metric)
                .expect("each metric is registered once");
        }
        m.store
            .register(&m.registry)
            .expect("the store's metrics are registered once");
        m
    }

    /// Counts one request or message refused by the limit named `limit` (one of [`LIMITS`]).
    pub fn reject(&self, limit: &str) {
        self.rejected.inc_by(limit, 1);
    }

    /// Counts one member removed for `reason` (one of [`EVICTION_REASONS`]).
    pub fn eviction(&self, reason: &str) {
        self.evictions.inc_by(reason, 1);
    }

    /// Counts `n` frames of type `kind` queued to sessions.
    pub fn frames_out(&self, kind: &str, n: u64) {
        self.frames_out.inc_by(kind, n);
    }

    /// Counts a room loaded from the store.
    pub fn room_loaded(&self) {
        self.rooms_loaded.inc();
    }

    /// Counts a room handed over to another node.
    pub fn room_handed_over(&self) {
        self.rooms_handed_over.inc();
    }

    /// Counts a hold that ended with `outcome` (one of [`HOLD_OUTCOMES`]).
    pub fn hold(&self, outcome: &str) {
        self.holds.inc_by(outcome, 1);
    }

    /// Records a client's sync report.
    pub fn client_report(&self, rtt_ms: f64, drift_ms: f64) {
        self.client_rtt_ms.observe(rtt_ms);
        self.client_drift_ms.observe(drift_ms.abs());
    }

    /// Counts one client message of type `kind` (or `invalid`).
    pub fn message_in(&self, kind: &str) {
        self.messages_in.inc_by(kind, 1);
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding in-memory metric families into a Vec cannot fail.
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
