//! Load bench for watch-together (issue 4, with the issue 6 figures).
//!
//! `cargo bench --bench load -- [OPTIONS]` starts the release server binary as a child process
//! (or drives `--target`), fills rooms with real WebSocket sessions that speak the protocol
//! like the browser app, holds the load while hosts send controls and members chat, and
//! reports join time, fan-out and chat latency, traffic per member, errors, and the server's
//! memory and CPU. `--help` lists the options; docs/performance.md has the measured figures.
//!
//! The run has four phases: admit (connect everyone, paced by --connect-rate), hold (the
//! measured period), drain (sending stops, late frames still arrive and gaps are judged) and
//! done (everyone closes).

mod client;
mod floor;
mod plan;
mod progress;
mod report;
mod server;
mod stats;
mod store;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};

use client::{Ctx, RoomCtx};
use plan::{Options, Plan};
use progress::Progress;
use report::{Resources, Timing};
use server::{machine_cpu, sample, sample_sum, ProcSample, Spawned};
use stats::{Phase, RoomTally, Stats};

/// Rooms created at once over REST.
const CREATE_CONCURRENCY: usize = 16;
/// Admission may take this much longer than the connect pacing before the bench moves on.
const ADMISSION_SLACK: Duration = Duration::from_secs(60);
/// After the hold: time for deliveries still in flight before gaps are judged.
const DRAIN: Duration = Duration::from_secs(3);
/// After telling everyone to close: how long before stragglers are aborted.
const CLOSE_DEADLINE: Duration = Duration::from_secs(20);
/// Pause after the server starts, so its idle memory is read once it has settled.
const SETTLE: Duration = Duration::from_millis(500);
/// Frames each round of the floor writes and reads: 1–2 s of writing at the 2.5–4 µs a
/// frame cost the floor's writer here, so the kernel's tick-sampled user/kernel split has
/// hundreds of samples.
const FLOOR_FRAMES: u64 = 400_000;
/// The smoke run's floor: enough to go through every step, short enough for a test.
const SMOKE_FLOOR_FRAMES: u64 = 4_800;
/// Rounds of the floor: its median is the figure, the spread shows the machine's noise.
const FLOOR_ROUNDS: usize = 3;

fn main() -> ExitCode {
    let options = Options::parse();
    match run(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the bench with command-line style arguments (without the program name); true when
/// it saw no errors. For the test suite, which includes this file to run `--smoke`.
pub fn run_with_args(args: &[&str]) -> Result<bool, String> {
    let options = Options::try_parse_from(std::iter::once("load").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    run(options)
}

/// Runs one plan end to end; true when it saw no errors.
fn run(options: Options) -> Result<bool, String> {
    let plan = Plan::from_options(options)?;
    let own_limit = server::open_file_limit("self");
    plan.check_file_limit(own_limit)?;
    // Lives as long as the run: removes the SQLite directory or stops redis-server when dropped.
    let run_store = match plan.target {
        Some(_) => None,
        None => Some(store::RunStore::prepare(plan.store)?),
    };
    let (spawned, addr) = match plan.target {
        Some(addr) => (None, addr),
        None => {
            let store_flags = run_store.as_ref().map_or(&[][..], |s| &s.flags[..]);
            let flags = server::server_flags(&plan, store_flags);
            let binary = plan.server_bin.display().to_string();
            let env: Vec<String> = server::SERVER_ENV
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            eprintln!(
                "load: starting {} {binary} {}",
                env.join(" "),
                flags.join(" ")
            );
            let (s, addr) = Spawned::start(&binary, &flags)?;
            (Some(s), addr)
        }
    };
    let server_pid = spawned.as_ref().map(|s| s.pid().to_string());
    let server_limit = server_pid.as_deref().and_then(server::open_file_limit);
    // What counts as the server: the process started here, or every process of a cluster.
    let server_pids: Vec<String> = match &plan.cluster {
        Some(cluster) => cluster.pids(),
        None => server_pid.iter().cloned().collect(),
    };
    // A cluster's binding limit is its balancer's: two descriptors per session.
    let balancer_limit = plan
        .cluster
        .as_ref()
        .and_then(|c| server::open_file_limit(&c.balancer_pid.to_string()));
    if let Some(cluster) = &plan.cluster {
        plan.check_balancer_file_limit(balancer_limit)?;
        eprintln!(
            "load: cluster {}: {}",
            cluster.file.display(),
            cluster
                .processes
                .iter()
                .map(|(name, pid)| format!("{name} (pid {pid})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let limit = |l: Option<u64>| l.map_or("unknown".into(), |l| l.to_string());
    eprintln!(
        "load: {} sessions against {addr}; open-file limit: bench {}, {} {}",
        plan.sessions(),
        limit(own_limit),
        if plan.cluster.is_some() {
            "balancer"
        } else {
            "server"
        },
        limit(balancer_limit.or(server_limit)),
    );
    if let Err(e) = plan.check_file_limit(server_limit) {
        if let Some(s) = spawned {
            s.stop();
        }
        return Err(format!("server side: {e}"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the runtime: {e}"))?;
    let store_pid = run_store
        .as_ref()
        .and_then(store::RunStore::process)
        .map(|p| p.to_string());
    let outcome = runtime.block_on(drive(plan.clone(), addr, server_pids, store_pid));
    runtime.shutdown_timeout(Duration::from_secs(5));
    let server_log = spawned.as_ref().map(|s| s.log.display().to_string());
    if let Some(s) = spawned {
        s.stop();
    }
    let (stats, mut res, timing) = outcome?;
    res.bench = sample("self");
    // After the server stopped, so the floor has the machine to itself (but for neighbours).
    let floor = plan.floor.then(|| {
        let floor_plan = floor::FloorPlan {
            sockets: plan.sessions(),
            payload: average_payload(&stats),
            frames: if plan.smoke {
                SMOKE_FLOOR_FRAMES
            } else {
                FLOOR_FRAMES
            },
            rounds: FLOOR_ROUNDS,
        };
        eprintln!(
            "load: floor: {} rounds of {} frames of {} payload bytes over up to {} loopback \
             sockets",
            floor_plan.rounds, floor_plan.frames, floor_plan.payload, floor_plan.sockets
        );
        floor::measure(floor_plan)
    });
    match &floor {
        // A smoke run must prove the floor works; a full run's own figures stand without it,
        // and its report says why the floor is missing.
        Some(Err(e)) if plan.smoke => return Err(e.clone()),
        Some(Err(e)) => eprintln!("load: {e}"),
        _ => {}
    }
    let report = report::build(
        &plan,
        &stats,
        &res,
        &timing,
        server_log.as_deref(),
        floor.as_ref(),
    );
    let table = report::table(&report);
    if plan.json {
        eprint!("{table}");
        println!("{report}");
    } else {
        print!("{table}");
    }
    let errors = report["errors"]["total"].as_u64().unwrap_or(1);
    Ok(errors == 0)
}

/// The run's average server → client payload, for the floor's frames: the hold's, else the
/// whole run's (a run with no hold traffic still gets a floor), else a small frame.
fn average_payload(stats: &Stats) -> usize {
    let hold = &stats.traffic[Phase::Hold as usize];
    let (bytes, frames) = (hold.bytes.load(Relaxed), hold.frames.load(Relaxed));
    let (bytes, frames) = if frames > 0 {
        (bytes, frames)
    } else {
        stats.traffic.iter().fold((0, 0), |(b, f), t| {
            (b + t.bytes.load(Relaxed), f + t.frames.load(Relaxed))
        })
    };
    if frames == 0 {
        return 100;
    }
    (bytes as f64 / frames as f64).round() as usize
}

/// Creates the rooms, runs the four phases, and returns what was measured.
async fn drive(
    plan: Plan,
    addr: SocketAddr,
    server_pids: Vec<String>,
    store_pid: Option<String>,
) -> Result<(Arc<Stats>, Resources, Timing), String> {
    let server_sample = || sample_sum(&server_pids);
    // Each process of a cluster on its own, for the CPU each used in the hold.
    let each = || -> Vec<Option<ProcSample>> { server_pids.iter().map(|p| sample(p)).collect() };
    let mut res = Resources::default();
    sleep(SETTLE).await;
    res.idle = server_sample();

    let rooms = create_rooms(addr, plan.rooms, plan.room_rate).await?;
    let ctx = Arc::new(Ctx {
        plan: plan.clone(),
        addr,
        rooms,
        stats: Arc::new(Stats::new()),
    });
    let stats = Arc::clone(&ctx.stats);
    let (phase_tx, phase_rx) = watch::channel(Phase::Admit);

    // Admission: member-major order, so every room gets its host first and rooms fill evenly.
    let begin = Instant::now();
    let begin_us = stats.now_us();
    let gap = Duration::from_secs_f64(1.0 / plan.connect_rate);
    let mut sessions = JoinSet::new();
    for m in 0..plan.members {
        for r in 0..plan.rooms {
            let i = (m * plan.rooms + r) as u32;
            let start = begin + gap * i;
            sessions.spawn(client::member(
                Arc::clone(&ctx),
                r,
                m,
                start,
                phase_rx.clone(),
            ));
        }
    }
    drop(phase_rx);
    let mut progress = Progress::new(server_pids.clone(), &ctx);
    let total = plan.sessions() as u64;
    let deadline = begin + gap * total as u32 + ADMISSION_SLACK;
    let mut admission_incomplete = false;
    loop {
        let done = stats.admitted.load(Relaxed) + stats.admit_failed.load(Relaxed);
        if done >= total {
            break;
        }
        if Instant::now() >= deadline {
            admission_incomplete = true;
            eprintln!("\nload: admission deadline passed with {done} of {total} sessions settled");
            break;
        }
        progress
            .tick(&ctx, "admit", begin, Duration::from_millis(100))
            .await;
    }
    let admit_s = stats.last_admit_us.load(Relaxed).saturating_sub(begin_us) as f64 / 1e6;
    res.admitted = server_sample();

    // Hold: the measured period.
    stats.set_phase(Phase::Hold);
    let _ = phase_tx.send(Phase::Hold);
    res.hold_start = server_sample();
    let each_start = each();
    let lag_probe = tokio::spawn(probe_lag(Arc::clone(&stats)));
    let machine_start = machine_cpu();
    let bench_start = sample("self");
    let store_start = store_pid.as_deref().and_then(sample);
    let hold_began = Instant::now();
    while hold_began.elapsed() < plan.hold {
        progress
            .tick(&ctx, "hold", hold_began, Duration::from_millis(250))
            .await;
    }
    let hold_s = hold_began.elapsed().as_secs_f64();
    res.hold_end = server_sample();
    if let (Some(a), Some(b)) = (store_start, store_pid.as_deref().and_then(sample)) {
        res.store_hold = Some((b.user_s - a.user_s, b.kernel_s - a.kernel_s));
    }
    if let Some(cluster) = &plan.cluster {
        res.hold_cpu_by_process = cluster
            .processes
            .iter()
            .zip(each_start.iter().zip(each()))
            .map(|((name, _), (a, b))| {
                let cpu = a.zip(b).map(|(a, b)| b.cpu_s - a.cpu_s);
                (name.clone(), cpu)
            })
            .collect();
    }
    // What everything else on the machine used meanwhile: the bench shares its cores.
    if let (Some(m0), Some(m1), Some(b0), Some(b1)) =
        (machine_start, machine_cpu(), bench_start, sample("self"))
    {
        let server = res
            .hold_start
            .zip(res.hold_end)
            .map_or(0.0, |(a, b)| b.cpu_s - a.cpu_s);
        let bench = b1.cpu_s - b0.cpu_s;
        let store = res.store_hold.map_or(0.0, |(user, kernel)| user + kernel);
        res.others_cores_hold =
            Some(((m1.busy_s - m0.busy_s - server - bench - store) / hold_s).max(0.0));
        res.steal_pct_hold =
            Some((m1.steal_s - m0.steal_s) / (m1.total_s - m0.total_s).max(1e-9) * 100.0);
    }

    lag_probe.abort();
    // Drain, then close.
    stats.set_phase(Phase::Drain);
    let _ = phase_tx.send(Phase::Drain);
    let drain_began = Instant::now();
    // On loopback at smoke scale every delivery is done within milliseconds.
    let drain = if plan.smoke { DRAIN / 3 } else { DRAIN };
    while drain_began.elapsed() < drain {
        progress
            .tick(&ctx, "drain", drain_began, Duration::from_millis(250))
            .await;
    }
    stats.set_phase(Phase::Done);
    let _ = phase_tx.send(Phase::Done);
    let closing = async { while sessions.join_next().await.is_some() {} };
    let stuck = match tokio::time::timeout(CLOSE_DEADLINE, closing).await {
        Ok(()) => 0,
        Err(_) => {
            let left = sessions.len() as u64;
            sessions.abort_all();
            left
        }
    };
    (res.timeline, res.quiet) = {
        let (timeline, quiet) = progress.finish();
        (timeline, Some(quiet))
    };
    res.end = server_sample();
    let timing = Timing {
        admit_s,
        hold_s,
        stuck,
        admission_incomplete,
    };
    Ok((stats, res, timing))
}

/// Measures how late the bench's runtime runs a timer (until aborted at the end of the hold).
async fn probe_lag(stats: Arc<Stats>) {
    const PERIOD: Duration = Duration::from_millis(10);
    loop {
        let before = Instant::now();
        sleep(PERIOD).await;
        let late = before.elapsed().saturating_sub(PERIOD);
        stats.bench_lag.record(late.as_micros() as u64);
    }
}

/// `POST /api/rooms` for every room, a few at a time.
/// Paced at `rate` rooms per second when given: a room's periodic work (presence) runs on a
/// timer started at its creation, so rooms created in one burst all tick at the same moment.
async fn create_rooms(
    addr: SocketAddr,
    count: usize,
    rate: Option<f64>,
) -> Result<Vec<RoomCtx>, String> {
    let begin = Instant::now();
    let mut rooms: Vec<Option<RoomCtx>> = (0..count).map(|_| None).collect();
    let mut pending = JoinSet::new();
    let mut next = 0;
    while next < count || !pending.is_empty() {
        while next < count && pending.len() < CREATE_CONCURRENCY {
            let i = next;
            next += 1;
            if let Some(rate) = rate {
                tokio::time::sleep_until(begin + Duration::from_secs_f64(i as f64 / rate)).await;
            }
            pending
                .spawn(async move { (i, server::create_room(addr, &format!("bench {i}")).await) });
        }
        if let Some(joined) = pending.join_next().await {
            let (i, created) = joined.map_err(|e| format!("room creation task: {e}"))?;
            let created = created?;
            rooms[i] = Some(RoomCtx {
                id: created.id,
                host_token: created.host_token,
                tally: RoomTally::default(),
            });
        }
    }
    // Every slot was filled by the loop above (an error returned early).
    Ok(rooms.into_iter().flatten().collect())
}
