//! Server metrics, exposed at `GET /metrics` in the Prometheus text format.
//!
//! One [`Metrics`] per server (not a global registry), so several servers in one test process
//! keep separate counts. Every metric is an atomic: recording never takes a lock.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric the server records.
pub struct Metrics {
    /// Where the metrics are registered, for encoding.
    registry: Registry,
    /// Rooms alive now.
    pub rooms: IntGauge,
    /// WebSocket sessions open now.
    pub sessions: IntGauge,
    /// Client messages received, by `type` (and `invalid`).
    pub messages_in: IntCounterVec,
    /// Frames queued to sessions by the rooms, by message type.
    pub frames_out: IntCounterVec,
    /// Members removed without a clean close, by reason: `slow` (queue full), `silent`
    /// (the room saw no sign of life), `timeout` (the session's heartbeat gave up).
    pub evictions: IntCounterVec,
    /// Requests refused by a limit, by limit name.
    pub rejected: IntCounterVec,
    /// `error` messages sent to clients.
    pub errors_sent: IntCounter,
    /// Time from a session receiving a control or chat frame to the room having queued it
    /// to every member.
    pub broadcast_seconds: Histogram,
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("watch_together".into()), None)
            .expect("a static prefix is a valid metric namespace");
        let m = Metrics {
            rooms: IntGauge::new("rooms", "Rooms alive").expect("valid metric"),
            sessions: IntGauge::new("sessions", "Open WebSocket sessions").expect("valid metric"),
            messages_in: IntCounterVec::new(
                Opts::new("messages_in_total", "Client messages received by type"),
                &["type"],
            )
            .expect("valid metric"),
            frames_out: IntCounterVec::new(
                Opts::new("frames_out_total", "Frames queued to sessions by type"),
                &["type"],
            )
            .expect("valid metric"),
            evictions: IntCounterVec::new(
                Opts::new("evictions_total", "Members removed without a clean close"),
                &["reason"],
            )
            .expect("valid metric"),
            rejected: IntCounterVec::new(
                Opts::new("rejected_total", "Requests refused by a limit"),
                &["limit"],
            )
            .expect("valid metric"),
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
            Box::new(m.messages_in.clone()),
            Box::new(m.frames_out.clone()),
            Box::new(m.evictions.clone()),
            Box::new(m.rejected.clone()),
            Box::new(m.errors_sent.clone()),
            Box::new(m.broadcast_seconds.clone()),
        ] {
            m.registry
                .register(metric)
                .expect("each metric is registered once");
        }
        m
    }

    /// Counts one request or message refused by the limit named `limit`.
    pub fn reject(&self, limit: &str) {
        self.rejected.with_label_values(&[limit]).inc();
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
