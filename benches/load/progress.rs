//! The progress line on stderr and the per-second timeline in the JSON report.
//!
//! Each row shows the last second only (fan-out rate and percentiles, CPU of the server, the
//! bench and everything else on the machine), so a stall or a neighbour's burst of CPU use
//! shows up when it happens instead of vanishing into the run's totals.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

use super::client::Ctx;
use super::server::{machine_cpu, sample, sample_sum, MachineCpu};

/// The readings of the previous row.
struct Last {
    /// When they were taken.
    at: Instant,
    /// Fan-out histogram so far (the row's own is the difference).
    fanout: Histogram<u64>,
    /// Ping histogram so far.
    ping: Histogram<u64>,
    /// Chat deliveries so far.
    chat: u64,
    /// Server CPU seconds so far.
    server_cpu: f64,
    /// Bench CPU seconds so far.
    bench_cpu: f64,
    /// Machine CPU so far.
    machine: MachineCpu,
}

/// Prints a row about once a second and keeps them all for the report.
pub struct Progress {
    /// The server's pids for memory and CPU: the one the bench started, or a cluster's
    /// processes; none for --target.
    server_pids: Vec<String>,
    /// Overwrite the line (terminal) or print every fifth row (log file).
    in_place: bool,
    /// The previous readings.
    last: Last,
    /// Every row, for the JSON report.
    timeline: Vec<Value>,
    /// When the run started (row times count from here).
    begin: Instant,
    /// Fan-out samples of hold seconds in which other processes left the bench and server
    /// their share of the machine (see `QUIET_OTHERS_PCT`).
    quiet_fanout: Histogram<u64>,
    /// Hold seconds counted as quiet, and all hold seconds.
    quiet_seconds: (u32, u32),
}

/// A second is "quiet" when everything but the server and the bench, plus the CPU time the
/// hypervisor stole from this VM, came to less than this share of one core: the machine's
/// two cores are shared with other people's work, which otherwise shows up as latency of its
/// own.
pub const QUIET_OTHERS_PCT: f64 = 25.0;

/// What the quiet hold seconds measured.
pub struct Quiet {
    /// Fan-out latency in those seconds.
    pub fanout: Histogram<u64>,
    /// How many hold seconds were quiet.
    pub seconds: u32,
    /// How many hold seconds there were.
    pub of: u32,
}

fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

impl Progress {
    /// Starts the clock for the timeline.
    pub fn new(server_pids: Vec<String>, ctx: &Ctx) -> Self {
        let server_cpu = sample_sum(&server_pids).map_or(0.0, |s| s.cpu_s);
        Progress {
            in_place: std::io::stderr().is_terminal(),
            last: Last {
                at: Instant::now(),
                fanout: ctx.stats.fanout.snapshot(),
                ping: ctx.stats.ping.snapshot(),
                chat: 0,
                server_cpu,
                bench_cpu: sample("self").map_or(0.0, |s| s.cpu_s),
                machine: machine_cpu().unwrap_or_default(),
            },
            server_pids,
            timeline: Vec::new(),
            begin: Instant::now(),
            quiet_fanout: ctx.stats.fanout.snapshot(),
            quiet_seconds: (0, 0),
        }
    }

    /// Sleeps a little, and reports once a second has passed since the last row.
    pub async fn tick(&mut self, ctx: &Ctx, phase: &str, since: Instant, nap: Duration) {
        sleep(nap).await;
        let now = Instant::now();
        let dt = now.duration_since(self.last.at).as_secs_f64();
        if dt < 1.0 {
            return;
        }
        let stats = &ctx.stats;
        let fanout = stats.fanout.snapshot();
        let ping = stats.ping.snapshot();
        let chat = stats.chat.snapshot().len();
        let mut fanout_row = fanout.clone();
        // The histograms only grow, so the last row's counts are always contained.
        let _ = fanout_row.subtract(&self.last.fanout);
        let mut ping_row = ping.clone();
        let _ = ping_row.subtract(&self.last.ping);
        let server = sample_sum(&self.server_pids);
        let server_cpu = server.map_or(0.0, |s| s.cpu_s);
        let bench_cpu = sample("self").map_or(0.0, |s| s.cpu_s);
        let machine = machine_cpu().unwrap_or_default();
        let pct = |a: f64, b: f64| ((b - a) / dt * 100.0).round();
        let server_pct = pct(self.last.server_cpu, server_cpu);
        let bench_pct = pct(self.last.bench_cpu, bench_cpu);
        let busy_pct = pct(self.last.machine.busy_s, machine.busy_s);
        let others_pct = (busy_pct - server_pct - bench_pct).max(0.0);
        let steal_pct = pct(self.last.machine.steal_s, machine.steal_s);
        let quantile =
            |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| ms(h.value_at_quantile(q)));
        let row = json!({
            "t_s": (now.duration_since(self.begin).as_secs_f64() * 10.0).round() / 10.0,
            "phase": phase,
            "admitted": stats.admitted.load(Relaxed),
            "fanout_per_s": (fanout_row.len() as f64 / dt).round(),
            "fanout_p50_ms": quantile(&fanout_row, 0.5),
            "fanout_p99_ms": quantile(&fanout_row, 0.99),
            "ping_p99_ms": quantile(&ping_row, 0.99),
            "chat_per_s": ((chat - self.last.chat) as f64 / dt).round(),
            "errors": stats.errors(),
            "server_rss_mib": server.map(|s| (s.rss as f64 / 1048576.0).round()),
            "server_cpu_pct": server.map(|_| server_pct),
            "bench_cpu_pct": bench_pct,
            "others_cpu_pct": others_pct,
            "steal_pct": steal_pct,
        });
        if phase == "hold" {
            self.quiet_seconds.1 += 1;
            if others_pct + steal_pct < QUIET_OTHERS_PCT {
                self.quiet_seconds.0 += 1;
                let _ = self.quiet_fanout.add(&fanout_row);
            }
        }
        let show = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| x.to_string());
        let line = format!(
            "[{phase} {:>5.1}s] admitted {}/{}  fan-out {}/s p99 {} ms  ping p99 {} ms  chat {}/s  errors {}  server {} MiB {}%  bench {}%  others {}%  steal {}%",
            now.duration_since(since).as_secs_f64(),
            row["admitted"],
            ctx.plan.sessions(),
            row["fanout_per_s"],
            show(&row["fanout_p99_ms"]),
            show(&row["ping_p99_ms"]),
            row["chat_per_s"],
            row["errors"],
            show(&row["server_rss_mib"]),
            show(&row["server_cpu_pct"]),
            bench_pct,
            others_pct,
            steal_pct,
        );
        self.last = Last {
            at: now,
            fanout,
            ping,
            chat,
            server_cpu,
            bench_cpu,
            machine,
        };
        let mut err = std::io::stderr().lock();
        if self.in_place {
            let _ = write!(err, "\r{line:<150}");
        } else if self.timeline.len().is_multiple_of(5) {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.timeline.push(row);
    }

    /// Ends the in-place line and hands over the timeline and the quiet seconds' figures.
    pub fn finish(self) -> (Vec<Value>, Quiet) {
        if self.in_place {
            eprintln!();
        }
        let quiet = Quiet {
            fanout: self.quiet_fanout,
            seconds: self.quiet_seconds.0,
            of: self.quiet_seconds.1,
        };
        (self.timeline, quiet)
    }
}
