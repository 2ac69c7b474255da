//! Turning the counters into figures: the table a person reads, the JSON a script reads, and
//! the targets of issues 4 and 6 checked against what was measured.

use std::sync::atomic::Ordering::Relaxed;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::floor::{Floor, Round, ThreadCpu};
use super::plan::{Plan, Scenario};
use super::progress::{Quiet, QUIET_OTHERS_PCT};
use super::server::ProcSample;
use super::stats::{Phase, Stats};

/// Server (and bench) resource readings at the points of the run that matter.
#[derive(Default)]
pub struct Resources {
    /// Server right after start, before any room: the baseline for per-session memory.
    pub idle: Option<ProcSample>,
    /// Server once every member is admitted.
    pub admitted: Option<ProcSample>,
    /// Server when the hold starts (CPU baseline of the hold).
    pub hold_start: Option<ProcSample>,
    /// Server when the hold ends (memory held with every session open).
    pub hold_end: Option<ProcSample>,
    /// Server after every session closed (its VmHWM is the run's peak).
    pub end: Option<ProcSample>,
    /// The load generator itself at the end.
    pub bench: Option<ProcSample>,
    /// Cores used on average by every other process during the hold: the bench's and the
    /// server's share of a machine others work on too.
    pub others_cores_hold: Option<f64>,
    /// Share of CPU time the hypervisor gave to other machines during the hold.
    pub steal_pct_hold: Option<f64>,
    /// One row per second of the run.
    pub timeline: Vec<Value>,
    /// Fan-out in the hold seconds other processes left alone.
    pub quiet: Option<Quiet>,
    /// A cluster's processes and the CPU seconds each used in the hold (None: unreadable).
    pub hold_cpu_by_process: Vec<(String, Option<f64>)>,
    /// User and kernel CPU seconds the run's own redis-server used in the hold: the work a
    /// Redis store moves out of the server, so comparing stores needs it.
    pub store_hold: Option<(f64, f64)>,
}

/// Wall-clock facts of the run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Seconds from the first connect to the last first `welcome`.
    pub admit_s: f64,
    /// Seconds the hold actually lasted.
    pub hold_s: f64,
    /// Sessions still running after the close deadline (they were aborted).
    pub stuck: u64,
    /// Whether admission hit its deadline before every session was in.
    pub admission_incomplete: bool,
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 100.0).round() / 100.0
}

fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
    })
}

fn mib(bytes: u64) -> f64 {
    round2(bytes as f64 / (1024.0 * 1024.0))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Microseconds per frame, user and kernel apart, from CPU seconds over `frames`.
fn per_frame(user_s: f64, kernel_s: f64, frames: u64) -> Value {
    if frames == 0 {
        return Value::Null;
    }
    let us = |s: f64| round2(s * 1e6 / frames as f64);
    json!({ "user": us(user_s), "kernel": us(kernel_s), "total": us(user_s + kernel_s) })
}

/// One round of the floor: µs per frame for each thread, and the conditions it ran in.
fn round_json(r: &Round, frames: u64) -> Value {
    let thread = |t: ThreadCpu| per_frame(t.user_s, t.kernel_s, frames);
    let per = |n: u64| (frames > 0).then(|| round2(n as f64 / frames as f64));
    json!({
        "writer_us_per_frame": thread(r.writer),
        "reader_us_per_frame": thread(r.reader),
        "frames_per_read": (r.reads > 0).then(|| round2(frames as f64 / r.reads as f64)),
        "reader_sleeps_per_frame": per(r.sleeps),
        "epoll_waits_per_frame": per(r.waits),
        "wall_s": round2(r.wall_s),
        "steal_pct": r.conditions.map(|c| round1(c.steal_pct)),
        "others_cores": r.conditions.map(|c| round2(c.others_cores)),
        "quiet": r.conditions.map(|c| c.quiet()),
    })
}

/// The floor's figures (its median round, and every round), and the floor weighted by this
/// run's frames in and out (a frame out costs at least the writer's work, a frame in the
/// reader's), set against the server's.
fn floor_json(floor: &Floor, frames_in: u64, frames_out: u64, server: &Value) -> Value {
    let median = floor.round();
    let (w, r) = (median.writer, median.reader);
    let frames = frames_in + frames_out;
    // Per frame of this run: (out × writer + in × reader) ÷ (in + out), user and kernel apart.
    let mixed = (frames > 0).then(|| {
        let weigh = |wr: f64, rd: f64| {
            (frames_out as f64 * wr + frames_in as f64 * rd) / floor.frames as f64 * 1e6
                / frames as f64
        };
        let (user, kernel) = (weigh(w.user_s, r.user_s), weigh(w.kernel_s, r.kernel_s));
        (user, kernel, user + kernel)
    });
    let server_total = server["total"].as_f64();
    let mut out = round_json(median, floor.frames);
    let fields = json!({
        "sockets": floor.sockets,
        "sockets_wanted": floor.sockets_wanted,
        "capped_by_open_file_limit": floor.capped_by_limit,
        "payload_bytes": floor.payload,
        "frame_bytes": floor.frame_bytes,
        "frames_per_round": floor.frames,
        "median_of_rounds": if floor.quiet_rounds > 0 { floor.quiet_rounds } else { floor.rounds.len() },
        "quiet_rounds": floor.quiet_rounds,
        "rounds": floor.rounds.iter().map(|r| round_json(r, floor.frames)).collect::<Vec<_>>(),
        "us_per_frame": mixed.map(|(u, k, t)| json!({
            "user": round2(u), "kernel": round2(k), "total": round2(t),
        })),
        "ratio": mixed
            .zip(server_total)
            .filter(|((_, _, floor), _)| *floor > 0.0)
            .map(|((_, _, floor), server)| round2(server / floor)),
    });
    if let (Some(out), Some(fields)) = (out.as_object_mut(), fields.as_object()) {
        out.extend(fields.clone());
    }
    out
}

/// Builds the JSON report (the table is printed from it too, so both always agree).
pub fn build(
    plan: &Plan,
    stats: &Stats,
    res: &Resources,
    timing: &Timing,
    server_log: Option<&str>,
    floor: Option<&Result<Floor, String>>,
) -> Value {
    let sessions = plan.sessions() as f64;
    let hold = &stats.traffic[Phase::Hold as usize];
    let admit = &stats.traffic[Phase::Admit as usize];
    let per_member_s = |bytes: u64, secs: f64| {
        if secs > 0.0 {
            round1(bytes as f64 / sessions / secs)
        } else {
            0.0
        }
    };
    let fanout = stats.fanout.snapshot();
    let chat = stats.chat.snapshot();
    let welcome_total: u64 = stats
        .traffic
        .iter()
        .map(|t| t.welcome_bytes.load(Relaxed))
        .sum();
    // The frames the server handled in the hold: every frame the bench sent, and every frame
    // its sessions received.
    let frames_in = hold.sent_frames.load(Relaxed);
    let frames_out = hold.frames.load(Relaxed) + hold.other_frames.load(Relaxed);
    let server = res.idle.map(|idle| {
        let cpu = |a: Option<ProcSample>, b: Option<ProcSample>| {
            a.zip(b).map(|(a, b)| round2((b.cpu_s - a.cpu_s).max(0.0)))
        };
        let peak = res.end.or(res.hold_end).map_or(0, |s| s.hwm);
        let held = res.hold_end.map_or(0, |s| s.rss);
        let hold_cpu = cpu(res.hold_start, res.hold_end);
        let hold_split = res
            .hold_start
            .zip(res.hold_end)
            .map(|(a, b)| (b.user_s - a.user_s, b.kernel_s - a.kernel_s));
        let server_per_frame = hold_split.map_or(Value::Null, |(user, kernel)| {
            let mut v = per_frame(user, kernel, frames_in + frames_out);
            if v.is_object() {
                v["frames_in"] = json!(frames_in);
                v["frames_out"] = json!(frames_out);
            }
            v
        });
        json!({
            "idle_rss_mib": mib(idle.rss),
            "admitted_rss_mib": res.admitted.map(|s| mib(s.rss)),
            "held_rss_mib": mib(held),
            "peak_rss_mib": mib(peak),
            "peak_rss_per_session_kib": round1(peak.saturating_sub(idle.rss) as f64 / 1024.0 / sessions),
            "held_rss_per_session_kib": round1(held.saturating_sub(idle.rss) as f64 / 1024.0 / sessions),
            "cpu_s_admission": cpu(res.idle, res.admitted),
            "cpu_s_hold": hold_cpu,
            "cpu_s_hold_user": hold_split.map(|(u, _)| round2(u)),
            "cpu_s_hold_kernel": hold_split.map(|(_, k)| round2(k)),
            "cpu_us_per_frame": server_per_frame,
            "store_process": res.store_hold.map(|(user, kernel)| json!({
                "name": "redis-server",
                "cpu_s_hold": round2(user + kernel),
                "cpu_us_per_frame": per_frame(user, kernel, frames_in + frames_out),
            })),
            "cpu_percent_hold": hold_cpu.map(|c| round1(c / timing.hold_s.max(1e-9) * 100.0)),
            "cpu_s_total": res.end.or(res.hold_end).map(|s| round2(s.cpu_s)),
            "threads": res.hold_end.map(|s| s.threads),
            "log": server_log,
        })
    });
    let errors = json!({
        "total": stats.errors() + timing.stuck + u64::from(timing.admission_incomplete),
        "connect_failures": stats.connect_failures.load(Relaxed),
        "join_failures": stats.join_failures.load(Relaxed),
        "error_frames": stats.error_frames.load(Relaxed),
        "unexpected_closes": stats.unexpected_closes.load(Relaxed),
        "playback_drops": stats.playback_drops.load(Relaxed),
        "chat_drops": stats.chat_drops.load(Relaxed),
        "unmatched_timestamps": stats.unmatched.load(Relaxed),
        "bad_frames": stats.bad_frames.load(Relaxed),
        "stuck_sessions": timing.stuck,
        "admission_incomplete": timing.admission_incomplete,
        "samples": stats.problems(),
    });
    let floor = floor.map(|f| match f {
        Ok(f) => floor_json(
            f,
            frames_in,
            frames_out,
            server
                .as_ref()
                .map_or(&Value::Null, |s| &s["cpu_us_per_frame"]),
        ),
        Err(e) => json!({ "error": e }),
    });
    let mut report = json!({
        "scenario": plan.scenario.name(),
        "smoke": plan.smoke,
        "server_bin": plan.target.is_none().then(|| plan.server_bin.display().to_string()),
        "store": plan.target.is_none().then(|| plan.store.name()),
        "plan": {
            "rooms": plan.rooms,
            "members": plan.members,
            "sessions": plan.sessions(),
            "hold_s": plan.hold.as_secs_f64(),
            "control_rate": plan.control_rate,
            "chat_rate": plan.chat_rate,
            "connect_rate": plan.connect_rate,
            "room_rate": plan.room_rate,
            "churn": plan.churn_lifetime.map(|(lo, hi)| json!([lo.as_secs_f64(), hi.as_secs_f64()])),
            "drift_jitter_ms": plan.drift_jitter_ms,
            "buffering_rate": plan.buffering_rate,
            "threads": plan.threads,
            "target": plan.target.map(|a| a.to_string()),
        },
        "cluster": plan.cluster.as_ref().map(|c| json!({
            "file": c.file.display().to_string(),
            "processes": c.processes.iter().map(|(name, pid)| {
                let cpu = res.hold_cpu_by_process.iter().find(|(n, _)| n == name).and_then(|(_, c)| *c);
                json!({"name": name, "pid": pid, "cpu_s_hold": cpu.map(round2)})
            }).collect::<Vec<_>>(),
        })),
        "served_by": {
            "connections": *stats.served_by.lock().unwrap_or_else(|p| p.into_inner()),
            "rooms_on_several_nodes": stats.split_rooms.load(Relaxed),
        },
        "admission": {
            "admitted": stats.admitted.load(Relaxed),
            "failed": stats.admit_failed.load(Relaxed),
            "admit_s": round2(timing.admit_s),
            "connect_pacing_s": round2(sessions / plan.connect_rate),
            "join": latency_json(&stats.join.snapshot()),
            "membership_bytes_per_member_s": per_member_s(admit.membership_bytes.load(Relaxed), timing.admit_s),
            "welcome_mib_total": mib(welcome_total),
        },
        "fanout": {
            "controls_sent": stats.controls_sent.load(Relaxed),
            "latency": latency_json(&fanout),
            "deliveries_per_s": round1(fanout.len() as f64 / timing.hold_s.max(1e-9)),
            "quiet_seconds": res.quiet.as_ref().map(|q| json!({
                "others_below_pct_of_a_core": QUIET_OTHERS_PCT,
                "seconds": q.seconds,
                "of": q.of,
                "latency": latency_json(&q.fanout),
            })),
        },
        "chat": {
            "sent": stats.chats_sent.load(Relaxed),
            "latency": latency_json(&chat),
            "delivered_per_s": round1(chat.len() as f64 / timing.hold_s.max(1e-9)),
        },
        "ping_rtt": latency_json(&stats.ping.snapshot()),
        // Where the time goes (clock offset from the best ping; pauses only for controls).
        "split": {
            "control_to_room": latency_json(&stats.control_up.snapshot()),
            "room_to_member": latency_json(&stats.control_down.snapshot()),
            "ping_to_server": latency_json(&stats.ping_up.snapshot()),
            "pong_to_bench": latency_json(&stats.ping_down.snapshot()),
            "bench_timer_lag": latency_json(&stats.bench_lag.snapshot()),
        },
        "churn": {
            "leaves": stats.churn_leaves.load(Relaxed),
            "rejoin": latency_json(&stats.rejoin.snapshot()),
        },
        "presence_lag": {
            "flips_sent": stats.flips_sent.load(Relaxed),
            "flips_unseen_at_end": stats.flips_unseen.load(Relaxed),
            "latency": latency_json(&stats.presence_lag.snapshot()),
        },
        "presence_arrivals_by_tenth_of_second": stats
            .presence_phase
            .iter()
            .map(|c| c.load(Relaxed))
            .collect::<Vec<_>>(),
        "traffic_hold": {
            "frames_per_member_s": per_member_s(hold.frames.load(Relaxed), timing.hold_s),
            "bytes_per_member_s": per_member_s(hold.bytes.load(Relaxed), timing.hold_s),
            "membership_bytes_per_member_s": per_member_s(hold.membership_bytes.load(Relaxed), timing.hold_s),
            "non_playback_bytes_per_member_s": per_member_s(
                hold.bytes.load(Relaxed) - hold.playback_bytes.load(Relaxed),
                timing.hold_s,
            ),
            "membership_frames": hold.membership_frames.load(Relaxed),
        },
        "server": server,
        "bench": res.bench.map(|b| json!({ "cpu_s": round2(b.cpu_s), "peak_rss_mib": mib(b.hwm) })),
        "floor": floor,
        "machine": {
            "others_cores_hold": res.others_cores_hold.map(round2),
            "steal_pct_hold": res.steal_pct_hold.map(round1),
        },
        "errors": errors,
        "timeline": res.timeline,
    });
    report["targets"] = targets(plan, &report);
    report
}

/// One target: what, the limit, the measured value, whether it holds.
fn check(what: &str, measured: Option<f64>, limit: f64, unit: &str) -> Value {
    json!({
        "target": what,
        "limit": limit,
        "unit": unit,
        "measured": measured,
        "holds": measured.map(|m| m <= limit),
    })
}

/// The targets of issues 4 and 6 that apply to this run's shape.
fn targets(plan: &Plan, r: &Value) -> Value {
    let f = |path: &[&str]| {
        path.iter()
            .try_fold(r, |v, k| v.get(*k))
            .and_then(Value::as_f64)
    };
    let mut out = vec![check(
        "errors and drops",
        f(&["errors", "total"]),
        0.0,
        "count",
    )];
    let sessions = plan.sessions();
    match plan.scenario {
        Scenario::ManyRooms if sessions >= 10_000 => out.push(check(
            "fan-out p99 at 10,000 sessions",
            f(&["fanout", "latency", "p99_ms"]),
            25.0,
            "ms",
        )),
        Scenario::BigRoom | Scenario::HugeRoom => out.push(check(
            "big-room fan-out p99",
            f(&["fanout", "latency", "p99_ms"]),
            50.0,
            "ms",
        )),
        _ => {}
    }
    if plan.scenario == Scenario::HugeRoom {
        out.push(check(
            "4,000-member room admitted",
            f(&["admission", "admit_s"]),
            10.0,
            "s",
        ));
    }
    if plan.members > 50 {
        out.push(check(
            "presence/membership traffic while holding (big room)",
            f(&["traffic_hold", "membership_bytes_per_member_s"]),
            2048.0,
            "B/member/s",
        ));
    }
    if plan.target.is_none() {
        out.push(check(
            "server RSS per session (peak)",
            f(&["server", "peak_rss_per_session_kib"]),
            64.0,
            "KiB",
        ));
    }
    Value::Array(out)
}

/// "1.2 µs user + 3.4 µs kernel = 4.6 µs total".
fn us_split(v: &Value) -> String {
    format!(
        "{} µs user + {} µs kernel = {} µs total",
        v["user"], v["kernel"], v["total"]
    )
}

/// The floor's rows of the table.
fn floor_rows(f: &Value, row: &mut impl FnMut(&str, String)) {
    if let Some(e) = f["error"].as_str() {
        row("floor", format!("not measured: {e}"));
        return;
    }
    if !f.is_object() {
        return;
    }
    let capped = match f["capped_by_open_file_limit"].as_u64() {
        Some(limit) => format!(
            " (capped from {}: both ends in one process, open-file limit {limit})",
            f["sockets_wanted"]
        ),
        None => String::new(),
    };
    let rounds = f["rounds"].as_array().map_or(0, Vec::len);
    let of = match f["quiet_rounds"].as_u64() {
        Some(0) => format!(
            "median of {rounds} rounds, none quiet (other processes + steal ≥ {QUIET_OTHERS_PCT}% \
             of a core: reads low)"
        ),
        Some(q) if q as usize == rounds => format!("median of {rounds} rounds, all quiet"),
        Some(q) => format!("median of the {q} quiet rounds of {rounds}"),
        None => format!("median of {rounds} rounds"),
    };
    row(
        "floor (raw sockets)",
        format!(
            "{of}; {} frames each, {} B, over {} loopback sockets{capped}",
            f["frames_per_round"], f["frame_bytes"], f["sockets"]
        ),
    );
    row("  writer, per frame", us_split(&f["writer_us_per_frame"]));
    row(
        "  reader, per frame",
        format!(
            "{} ({} frames per read, {} sleeps per frame)",
            us_split(&f["reader_us_per_frame"]),
            f["frames_per_read"],
            f["reader_sleeps_per_frame"]
        ),
    );
    if let Some(rounds) = f["rounds"].as_array() {
        let each: Vec<String> = rounds
            .iter()
            .map(|r| {
                format!(
                    "{} + {} µs (steal {}%, others {} cores)",
                    r["writer_us_per_frame"]["total"],
                    r["reader_us_per_frame"]["total"],
                    r["steal_pct"],
                    r["others_cores"]
                )
            })
            .collect();
        row("  rounds, writer + reader", each.join("; "));
    }
    if f["us_per_frame"].is_object() {
        // No ratio when the bench did not start the server (--target): its CPU is unknown.
        let ratio = f["ratio"]
            .as_f64()
            .map_or(String::new(), |r| format!("; server ÷ floor = {r}"));
        row(
            "  floor, this run's mix",
            format!("{}{ratio}", us_split(&f["us_per_frame"])),
        );
    }
}

fn lat(v: &Value) -> String {
    if v["count"].as_u64().unwrap_or(0) == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {} ms  p90 {} ms  p99 {} ms  max {} ms  (n={})",
        v["p50_ms"], v["p90_ms"], v["p99_ms"], v["max_ms"], v["count"]
    )
}

/// The readable table.
pub fn table(r: &Value) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
    let p = &r["plan"];
    row(
        "scenario",
        format!(
            "{}{}: {} rooms × {} members = {} sessions, hold {} s, {} control/room/s, {} chat/member/s, connect {}/s",
            r["scenario"].as_str().unwrap_or("?"),
            if r["smoke"].as_bool() == Some(true) { " (smoke)" } else { "" },
            p["rooms"], p["members"], p["sessions"], p["hold_s"], p["control_rate"], p["chat_rate"], p["connect_rate"]
        ),
    );
    if let Some(bin) = r["server_bin"].as_str() {
        row("server binary", bin.to_owned());
    }
    if let Some(store) = r["store"].as_str() {
        row("server store", store.to_owned());
    }
    let a = &r["admission"];
    row(
        "admitted",
        format!(
            "{} of {} in {} s (connect pacing alone: {} s)",
            a["admitted"], p["sessions"], a["admit_s"], a["connect_pacing_s"]
        ),
    );
    row("connect+join", lat(&a["join"]));
    row("fan-out (control → member)", lat(&r["fanout"]["latency"]));
    let quiet = &r["fanout"]["quiet_seconds"];
    if !quiet.is_null() {
        row(
            "  in quiet seconds",
            format!(
                "{} ({} of {} hold seconds with other processes + steal < {}% of a core)",
                lat(&quiet["latency"]),
                quiet["seconds"],
                quiet["of"],
                quiet["others_below_pct_of_a_core"]
            ),
        );
    }
    row(
        "fan-out deliveries",
        format!(
            "{}/s from {} controls",
            r["fanout"]["deliveries_per_s"], r["fanout"]["controls_sent"]
        ),
    );
    if r["chat"]["sent"].as_u64().unwrap_or(0) > 0 {
        row("chat latency", lat(&r["chat"]["latency"]));
        row(
            "chat delivered",
            format!(
                "{} msgs/s ({} sent)",
                r["chat"]["delivered_per_s"], r["chat"]["sent"]
            ),
        );
    }
    row("ping round trip (hold)", lat(&r["ping_rtt"]));
    let split = &r["split"];
    row("  host → room (pause)", lat(&split["control_to_room"]));
    row("  room → member (pause)", lat(&split["room_to_member"]));
    row("  ping → server", lat(&split["ping_to_server"]));
    row("  pong → bench", lat(&split["pong_to_bench"]));
    row("bench timer lateness", lat(&split["bench_timer_lag"]));
    if r["churn"]["leaves"].as_u64().unwrap_or(0) > 0 {
        row(
            "churn",
            format!(
                "{} leaves; rejoin {}",
                r["churn"]["leaves"],
                lat(&r["churn"]["rejoin"])
            ),
        );
    }
    let pl = &r["presence_lag"];
    if pl["flips_sent"].as_u64().unwrap_or(0) > 0 {
        row(
            "buffering flip → host's presence",
            format!(
                "{}; {} flips, {} never shown by the end",
                lat(&pl["latency"]),
                pl["flips_sent"],
                pl["flips_unseen_at_end"]
            ),
        );
    }
    if let Some(tenths) = r["presence_arrivals_by_tenth_of_second"].as_array() {
        let counts: Vec<u64> = tenths.iter().filter_map(Value::as_u64).collect();
        let total: u64 = counts.iter().sum();
        if total > 0 {
            let shares: Vec<String> = counts
                .iter()
                .map(|c| format!("{:.0}", *c as f64 * 100.0 / total as f64))
                .collect();
            row(
                "presence arrivals by 0.1 s",
                format!("{} % (hold; even spread is 10 % each)", shares.join(" ")),
            );
        }
    }
    let t = &r["traffic_hold"];
    row(
        "traffic per member (hold)",
        format!(
            "{} B/s in {} frames/s; all but playback {} B/s, of which membership/presence {} B/s",
            t["bytes_per_member_s"],
            t["frames_per_member_s"],
            t["non_playback_bytes_per_member_s"],
            t["membership_bytes_per_member_s"]
        ),
    );
    row(
        "traffic per member (admission)",
        format!(
            "membership/presence {} B/s; welcomes {} MiB in all",
            a["membership_bytes_per_member_s"], a["welcome_mib_total"]
        ),
    );
    let by = &r["served_by"]["connections"];
    if let Some(by) = by
        .as_object()
        .filter(|b| b.len() > 1 || !r["cluster"].is_null())
    {
        let each: Vec<String> = by.iter().map(|(node, n)| format!("{node} {n}")).collect();
        row(
            "connections by node",
            format!(
                "{}; rooms on more than one node: {}",
                each.join(", "),
                r["served_by"]["rooms_on_several_nodes"]
            ),
        );
    }
    // A cluster's figures are the sum of its processes: nodes, HAProxy and Redis.
    let who = if r["cluster"].is_null() {
        "server"
    } else {
        "cluster"
    };
    if let Some(c) = r["cluster"].as_object() {
        let each: Vec<String> = c["processes"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        format!(
                            "{} {} s",
                            p["name"].as_str().unwrap_or("?"),
                            p["cpu_s_hold"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        row("cluster", c["file"].as_str().unwrap_or_default().to_owned());
        row("cluster CPU by process (hold)", each.join(", "));
    }
    let s = &r["server"];
    if !s.is_null() {
        row(
            &format!("{who} RSS"),
            format!(
                "idle {} MiB, admitted {} MiB, held {} MiB, peak {} MiB",
                s["idle_rss_mib"], s["admitted_rss_mib"], s["held_rss_mib"], s["peak_rss_mib"]
            ),
        );
        row(
            &format!("{who} RSS per session"),
            format!(
                "{} KiB peak, {} KiB held",
                s["peak_rss_per_session_kib"], s["held_rss_per_session_kib"]
            ),
        );
        row(
            &format!("{who} CPU"),
            format!(
                "{} s admitting, {} s holding ({}% of a core), {} s total",
                s["cpu_s_admission"], s["cpu_s_hold"], s["cpu_percent_hold"], s["cpu_s_total"]
            ),
        );
    }
    let cpu_frame = &s["cpu_us_per_frame"];
    if cpu_frame.is_object() {
        row(
            &format!("{who} cpu/frame (hold)"),
            format!(
                "{} ({} frames in + {} out)",
                us_split(cpu_frame),
                cpu_frame["frames_in"],
                cpu_frame["frames_out"]
            ),
        );
    }
    let store = &s["store_process"];
    if store.is_object() {
        row(
            &format!(
                "{} cpu/frame (hold)",
                store["name"].as_str().unwrap_or("store")
            ),
            format!(
                "{} ({} s; not in the server's figures)",
                us_split(&store["cpu_us_per_frame"]),
                store["cpu_s_hold"]
            ),
        );
    }
    floor_rows(&r["floor"], &mut row);
    if let Some(b) = r["bench"].as_object() {
        row(
            "load generator",
            format!("{} CPU s, peak RSS {} MiB", b["cpu_s"], b["peak_rss_mib"]),
        );
    }
    if let Some(others) = r["machine"]["others_cores_hold"].as_f64() {
        row(
            "other processes (hold)",
            format!(
                "{others} cores on average; steal {}%",
                r["machine"]["steal_pct_hold"]
            ),
        );
    }
    let e = &r["errors"];
    row(
        "errors",
        format!(
            "{} (connect {}, join {}, error frames {}, unexpected closes {}, playback drops {}, chat drops {}, unmatched {}, bad frames {}, stuck {})",
            e["total"], e["connect_failures"], e["join_failures"], e["error_frames"],
            e["unexpected_closes"], e["playback_drops"], e["chat_drops"],
            e["unmatched_timestamps"], e["bad_frames"], e["stuck_sessions"]
        ),
    );
    if let Some(samples) = e["samples"].as_array() {
        for (i, sample) in samples.iter().enumerate() {
            row(
                if i == 0 { "first problems" } else { "" },
                sample.as_str().unwrap_or_default().to_owned(),
            );
        }
    }
    if let Some(targets) = r["targets"].as_array() {
        for (i, t) in targets.iter().enumerate() {
            let verdict = match t["holds"].as_bool() {
                Some(true) => "holds",
                Some(false) => "MISSED",
                None => "not measured",
            };
            row(
                if i == 0 { "targets" } else { "" },
                format!(
                    "{verdict:>12}  {}: {} (limit {} {})",
                    t["target"].as_str().unwrap_or_default(),
                    t["measured"],
                    t["limit"],
                    t["unit"].as_str().unwrap_or_default()
                ),
            );
        }
    }
    if let Some(log) = s.get("log").and_then(Value::as_str) {
        row("server log", log.to_owned());
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<width$}  {v}\n"));
    }
    out
}
