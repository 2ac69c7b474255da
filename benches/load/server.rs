//! The server under load: starting the release binary, reading its memory and CPU from
//! /proc, creating rooms over its REST API, stopping it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::plan::Plan;

/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server process the bench started.
pub struct Spawned {
    /// The child process, stopped when the run ends.
    child: Child,
    /// Its stdout, kept open so the server never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    /// Where its stderr (logs) goes, for the report and post-mortems.
    pub log: PathBuf,
}

/// The flags the bench gives the server: limits raised so the scenario itself is allowed.
/// Anything in `plan.server_args` replaces the bench's value for the same flag.
pub fn server_flags(plan: &Plan, store: &[(String, String)]) -> Vec<String> {
    let members_cap = (plan.members * 3 + 100).max(5000);
    let mut flags: Vec<(String, String)> = vec![
        ("--host".into(), "127.0.0.1".into()),
        ("--port".into(), "0".into()),
        // All sessions come from 127.0.0.1: per-IP limits would refuse the load itself.
        ("--max-sessions-per-ip".into(), "0".into()),
        ("--connects-per-ip-per-minute".into(), "0".into()),
        ("--rooms-per-ip-per-minute".into(), "0".into()),
        (
            "--max-rooms".into(),
            (plan.rooms + 100).max(10_000).to_string(),
        ),
        // Churned members linger for their grace period, so rooms hold more than `members`.
        ("--max-members".into(), members_cap.to_string()),
        // Chat limits sized to the chat rate asked for, with room for timer jitter.
        (
            "--chat-rate".into(),
            (plan.chat_rate * 2.0).max(1.0).to_string(),
        ),
        ("--chat-burst".into(), "10".into()),
    ];
    flags.extend(store.iter().cloned());
    for extra in &plan.server_args {
        let (key, value) = extra
            .split_once('=')
            .map_or((extra.as_str(), ""), |(k, v)| (k, v));
        flags.retain(|(k, _)| k != key);
        flags.push((key.to_owned(), value.to_owned()));
    }
    flags
        .into_iter()
        .flat_map(|(k, v)| if v.is_empty() { vec![k] } else { vec![k, v] })
        .collect()
}

/// Limits the bench lifts through the environment rather than flags: a binary that predates
/// them ignores an unknown variable but would refuse an unknown flag, and `--server-bin` runs
/// older builds. Every session comes from 127.0.0.1, so per-client caps would refuse the load.
pub const SERVER_ENV: &[(&str, &str)] = &[
    ("WT_MAX_CONNECTIONS_PER_IP", "0"),
    ("WT_MAX_ROOMS_PER_IP", "0"),
];

impl Spawned {
    /// Starts the server binary with [`SERVER_ENV`] and waits for its `listening on` line.
    pub fn start(binary: &str, flags: &[String]) -> Result<(Spawned, SocketAddr), String> {
        let log =
            std::env::temp_dir().join(format!("watch-together-bench-{}.log", std::process::id()));
        let log_file =
            File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = Command::new(binary)
            .args(flags)
            .envs(SERVER_ENV.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        // unwrap: stdout was set to piped just above
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Read the first line on a helper thread so a silent server cannot hang the bench.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = stdout;
            let mut line = String::new();
            let read = stdout.read_line(&mut line).map(|_| line);
            let _ = tx.send((read, stdout));
        });
        let (line, stdout) = match rx.recv_timeout(START_TIMEOUT) {
            Ok((Ok(line), stdout)) => (line, stdout),
            Ok((Err(e), _)) => {
                let _ = child.kill();
                return Err(format!("reading the server's stdout: {e}"));
            }
            Err(_) => {
                let _ = child.kill();
                return Err(format!(
                    "the server printed no address within {START_TIMEOUT:?}; log: {}",
                    log.display()
                ));
            }
        };
        let addr = line
            .trim()
            .strip_prefix("watch-together listening on http://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .ok_or_else(|| {
                let _ = child.kill();
                format!(
                    "unexpected first line from the server: {line:?}; log: {}",
                    log.display()
                )
            })?;
        Ok((
            Spawned {
                child,
                _stdout: stdout,
                log,
            },
            addr,
        ))
    }

    /// The server's process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the server to shut down (SIGTERM), then kills it if it lingers.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Memory and CPU of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// Resident set size now (VmRSS), bytes.
    pub rss: u64,
    /// Peak resident set size (VmHWM), bytes.
    pub hwm: u64,
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    /// User CPU time (utime), seconds: the process's own code, apart from the kernel's.
    pub user_s: f64,
    /// System CPU time (stime), seconds: syscalls, and on loopback the peer's TCP work.
    pub kernel_s: f64,
    /// Threads.
    pub threads: u64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat` (`"self"` for this process).
pub fn sample(pid: &str) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    let (utime, stime) = (ticks(14)?, ticks(15)?);
    let hz = clock_ticks_per_second();
    Some(ProcSample {
        rss: field("VmRSS:") * 1024,
        hwm: field("VmHWM:") * 1024,
        cpu_s: (utime + stime) / hz,
        user_s: utime / hz,
        kernel_s: stime / hz,
        threads: field("Threads:"),
    })
}

/// The sum of [`sample`] over several processes (a cluster's nodes, balancer and store):
/// memory and CPU of all of them together. None if any of them cannot be read (gone), as a
/// sum without it would be wrong.
pub fn sample_sum(pids: &[String]) -> Option<ProcSample> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(ProcSample::default(), |sum, pid| {
        let s = sample(pid)?;
        Some(ProcSample {
            rss: sum.rss + s.rss,
            hwm: sum.hwm + s.hwm,
            cpu_s: sum.cpu_s + s.cpu_s,
            user_s: sum.user_s + s.user_s,
            kernel_s: sum.kernel_s + s.kernel_s,
            threads: sum.threads + s.threads,
        })
    })
}

/// Whole-machine CPU time from the first line of /proc/stat, in seconds summed over cores.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    /// user + nice + system + irq + softirq.
    pub busy_s: f64,
    /// Time the hypervisor ran something else on our virtual CPUs.
    pub steal_s: f64,
    /// Every state counted.
    pub total_s: f64,
}

/// Reads the machine's CPU time (to tell how much other processes used during a run).
pub fn machine_cpu() -> Option<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse::<f64>().unwrap_or(0.0))
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0.0);
    let hz = clock_ticks_per_second();
    // user nice system idle iowait irq softirq steal
    Some(MachineCpu {
        busy_s: (get(0) + get(1) + get(2) + get(5) + get(6)) / hz,
        steal_s: get(7) / hz,
        total_s: (0..8).map(get).sum::<f64>() / hz,
    })
}

/// The kernel's USER_HZ, the unit of utime/stime.
fn clock_ticks_per_second() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|hz: &f64| *hz > 0.0)
            // Linux fixes USER_HZ at 100 on every common architecture.
            .unwrap_or(100.0)
    })
}

/// The soft limit on open files of process `pid` (`"self"` for this one), if readable.
pub fn open_file_limit(pid: &str) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A room the bench created: where to connect and how to become its host.
#[derive(Debug, Clone)]
pub struct CreatedRoom {
    /// The room id for the WebSocket path.
    pub id: String,
    /// Presented by member 0 in `join` to be the host.
    pub host_token: String,
}

/// `POST /api/rooms` with a plain HTTP/1.1 request (the bench needs nothing more).
pub async fn create_room(addr: SocketAddr, name: &str) -> Result<CreatedRoom, String> {
    let body = serde_json::json!({ "name": name }).to_string();
    let request = format!(
        "POST /api/rooms HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("POST /api/rooms: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("POST /api/rooms: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let status_ok = text.starts_with("HTTP/1.1 201");
    // The body is one JSON object; taking it from the first brace after the headers to the
    // last brace works whether or not the server chunks it.
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .and_then(|b| Some(&b[b.find('{')?..=b.rfind('}')?]));
    let parsed: Option<serde_json::Value> = body.and_then(|b| serde_json::from_str(b).ok());
    match parsed {
        Some(v) if status_ok => {
            let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
            match (field("room_id"), field("host_token")) {
                (Some(id), Some(host_token)) => Ok(CreatedRoom { id, host_token }),
                _ => Err(format!("POST /api/rooms: unexpected body {v}")),
            }
        }
        _ => Err(format!(
            "POST /api/rooms failed: {}",
            text.lines().next().unwrap_or("no response")
        )),
    }
}
