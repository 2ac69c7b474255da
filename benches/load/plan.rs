//! Command-line options and the scenarios they select: what one run of the bench does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use super::store::StoreKind;

/// The shapes of load the bench knows. Each sets defaults that any option may override.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1,000 rooms × 10 members: the capacity question (how many small watch parties).
    ManyRooms,
    /// 1 room × 2,000 members: fan-out to one large audience.
    BigRoom,
    /// 1 room × 4,000 members: admission and presence traffic of a very large room (issue 6).
    HugeRoom,
    /// 100 rooms × 20 members, every member chatting once a second.
    ChatStorm,
    /// 100 rooms × 20 members; everyone but the host leaves and rejoins continuously.
    Churn,
    /// 1,900 rooms × 10 members, one control per room per second, 60 s: the most small
    /// watch parties this machine's open-file limit (20,000 per process) leaves room for.
    Capacity,
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ManyRooms => "many-rooms",
            Scenario::BigRoom => "big-room",
            Scenario::HugeRoom => "huge-room",
            Scenario::ChatStorm => "chat-storm",
            Scenario::Churn => "churn",
            Scenario::Capacity => "capacity",
        }
    }
}

/// Load generator for watch-together: real WebSocket sessions speaking the documented
/// protocol like browsers do, measuring join time, fan-out and chat latency, traffic, and the
/// server's memory and CPU.
///
/// Run with `cargo bench --bench load -- [OPTIONS]`.
#[derive(Parser, Debug)]
#[command(name = "load", bin_name = "cargo bench --bench load --")]
pub struct Options {
    /// Which load shape to run; the other options override its defaults.
    #[arg(long, value_enum, default_value_t = Scenario::ManyRooms)]
    pub scenario: Scenario,

    /// Number of rooms.
    #[arg(long)]
    pub rooms: Option<usize>,

    /// Members per room, the host included.
    #[arg(long)]
    pub members: Option<usize>,

    /// How long to hold the load once every member is admitted (`60`, `60s`, `2m`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Control events (seek/play/pause) each room's host sends per second.
    #[arg(long)]
    pub control_rate: Option<f64>,

    /// Chat messages each member sends per second.
    #[arg(long)]
    pub chat_rate: Option<f64>,

    /// New connections opened per second while filling the rooms.
    #[arg(long)]
    pub connect_rate: Option<f64>,

    /// Rooms created per second before the members connect (default: as fast as the server
    /// answers, 16 at a time).
    #[arg(long)]
    pub room_rate: Option<f64>,

    /// Amplitude (ms) of the random drift each member reports in `status`; a viewer in sync
    /// reports a few ms, so the default stays inside the server's smallest drift band.
    #[arg(long, default_value_t = 20.0)]
    pub drift_jitter_ms: f64,

    /// Chance per member per second of starting a 2-second buffering spell, reported in
    /// `status` like a browser whose video stalls.
    #[arg(long, default_value_t = 0.005)]
    pub buffering_rate: f64,

    /// Drive an already running server at this loopback URL (e.g. http://127.0.0.1:8080)
    /// instead of starting one; server memory and CPU are then not measured.
    #[arg(long)]
    pub target: Option<String>,

    /// Drive the balancer of a local cluster (the `cluster.json` scripts/cluster.sh writes,
    /// e.g. target/cluster/cluster.json) and measure its processes: nodes, HAProxy and Redis
    /// count as the server, and their CPU is also given one by one.
    #[arg(long, value_name = "CLUSTER_JSON", conflicts_with = "target")]
    pub cluster: Option<PathBuf>,

    /// Server binary to start instead of this build's (e.g. an older build saved as
    /// /tmp/wt-old), so two builds can be compared in one session.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["target", "cluster"])]
    pub server_bin: Option<PathBuf>,

    /// Where the started server keeps its rooms (its default is SQLite; `redis` starts a
    /// redis-server for the run).
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,

    /// Skip the machine's floor (raw sockets, no framework) measured after the run.
    #[arg(long)]
    pub no_floor: bool,

    /// Extra flag for the started server, as `--flag=value` (repeatable); replaces the bench's
    /// own setting of the same flag.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,

    /// Worker threads of the load generator's runtime (default: one per CPU core).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// A few dozen sessions for a few seconds: proves the bench and the server still work
    /// together. Exits non-zero on any error.
    #[arg(long)]
    pub smoke: bool,

    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// Accepts plain seconds (`60`, `2.5`) or humantime (`90s`, `2m`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!(
            "{s}: a duration must be a non-negative number of seconds"
        ));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s}: {e}"))
}

/// Everything one run does, with every default resolved.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The scenario, for the report.
    pub scenario: Scenario,
    /// Rooms to create.
    pub rooms: usize,
    /// Members per room (index 0 is the host).
    pub members: usize,
    /// How long the load is held after admission.
    pub hold: Duration,
    /// Host control events per room per second.
    pub control_rate: f64,
    /// Chat messages per member per second.
    pub chat_rate: f64,
    /// New connections per second.
    pub connect_rate: f64,
    /// Rooms created per second, if paced.
    pub room_rate: Option<f64>,
    /// Churn: how long a non-host member stays before leaving (uniform in this range).
    pub churn_lifetime: Option<(Duration, Duration)>,
    /// Amplitude of the reported drift.
    pub drift_jitter_ms: f64,
    /// Buffering spells per member per second.
    pub buffering_rate: f64,
    /// A running server to drive, if not starting one.
    pub target: Option<SocketAddr>,
    /// The local cluster behind `target`, when given with --cluster.
    pub cluster: Option<Cluster>,
    /// The server binary to start (unless `target` is set).
    pub server_bin: PathBuf,
    /// Where the started server keeps its rooms.
    pub store: StoreKind,
    /// Whether to measure the machine's floor after the run.
    pub floor: bool,
    /// Extra server flags.
    pub server_args: Vec<String>,
    /// Load generator worker threads.
    pub threads: usize,
    /// JSON output.
    pub json: bool,
    /// Smoke mode: small and short.
    pub smoke: bool,
}

/// Sockets the bench needs besides its sessions (room creation, the runtime, stdio).
pub const SPARE_FILES: usize = 100;

impl Plan {
    /// Resolves the options against the scenario's defaults (and smoke mode's).
    pub fn from_options(o: Options) -> Result<Plan, String> {
        // (rooms, members, hold s, control/s, chat/s, connects/s)
        let (rooms, members, hold, control, chat, connect): (usize, usize, f64, f64, f64, f64) =
            match o.scenario {
                Scenario::ManyRooms => (1000, 10, 60.0, 1.0, 0.0, 1000.0),
                Scenario::BigRoom => (1, 2000, 30.0, 1.0, 0.0, 1000.0),
                Scenario::HugeRoom => (1, 4000, 30.0, 1.0, 0.0, 2000.0),
                Scenario::ChatStorm => (100, 20, 30.0, 1.0, 1.0, 1000.0),
                Scenario::Churn => (100, 20, 30.0, 1.0, 0.0, 1000.0),
                // many-rooms' 10 s of admission at 1,000/s, scaled to 19,000 sessions.
                Scenario::Capacity => (1900, 10, 60.0, 1.0, 0.0, 1900.0),
            };
        let (rooms, members, hold, control, chat, connect) = if o.smoke {
            // Small enough for a test run, yet every message kind flows.
            (4, 6, 3.0, 2.0, chat.max(0.5), 200.0)
        } else {
            (rooms, members, hold, control, chat, connect)
        };
        let churn_lifetime = (o.scenario == Scenario::Churn).then(|| {
            if o.smoke {
                (Duration::from_millis(500), Duration::from_millis(1500))
            } else {
                (Duration::from_secs(5), Duration::from_secs(15))
            }
        });
        let cluster = o.cluster.as_deref().map(Cluster::read).transpose()?;
        let target = match &cluster {
            Some(c) => Some(parse_target(&c.url)?),
            None => o.target.as_deref().map(parse_target).transpose()?,
        };
        let plan = Plan {
            scenario: o.scenario,
            rooms: o.rooms.unwrap_or(rooms),
            members: o.members.unwrap_or(members),
            hold: o.duration.unwrap_or(Duration::from_secs_f64(hold)),
            control_rate: o.control_rate.unwrap_or(control),
            chat_rate: o.chat_rate.unwrap_or(chat),
            connect_rate: o.connect_rate.unwrap_or(connect),
            room_rate: o.room_rate,
            churn_lifetime,
            drift_jitter_ms: o.drift_jitter_ms,
            buffering_rate: o.buffering_rate,
            target,
            cluster,
            server_bin: o
                .server_bin
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_watch-together"))),
            store: o.store,
            floor: !o.no_floor,
            server_args: o.server_args,
            threads: o
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            json: o.json,
            smoke: o.smoke,
        };
        plan.validate()?;
        Ok(plan)
    }

    fn validate(&self) -> Result<(), String> {
        if self.rooms == 0 || self.members == 0 {
            return Err("--rooms and --members must be at least 1".into());
        }
        for (name, rate) in [
            ("--control-rate", self.control_rate),
            ("--chat-rate", self.chat_rate),
            ("--buffering-rate", self.buffering_rate),
            ("--drift-jitter-ms", self.drift_jitter_ms),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(format!("{name} must be a non-negative number"));
            }
        }
        if self.room_rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
            return Err("--room-rate must be a positive number".into());
        }
        if !self.connect_rate.is_finite() || self.connect_rate <= 0.0 {
            return Err("--connect-rate must be a positive number".into());
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if self.hold.is_zero() {
            return Err("--duration must be more than zero".into());
        }
        Ok(())
    }

    /// Concurrent WebSocket sessions.
    pub fn sessions(&self) -> usize {
        self.rooms * self.members
    }

    /// Refuses a plan whose sessions would not fit the cluster's balancer: HAProxy holds
    /// two descriptors per session (the client's and the node's), and derives its
    /// connection cap from its open-file limit.
    pub fn check_balancer_file_limit(&self, limit: Option<u64>) -> Result<(), String> {
        let Some(limit) = limit else {
            return Ok(());
        };
        let needed = (2 * self.sessions() + SPARE_FILES) as u64;
        if needed > limit {
            return Err(format!(
                "this plan needs about {needed} open files in HAProxy (2 per session + \
                 {SPARE_FILES}) but it may open only {limit}; lower --rooms or --members \
                 (or raise HAProxy's limit)"
            ));
        }
        Ok(())
    }

    /// Refuses a plan whose sockets exceed this process's open-file limit.
    pub fn check_file_limit(&self, limit: Option<u64>) -> Result<(), String> {
        let Some(limit) = limit else {
            return Ok(());
        };
        let needed = (self.sessions() + SPARE_FILES) as u64;
        if needed > limit {
            return Err(format!(
                "this plan needs about {needed} open files ({} sessions + {SPARE_FILES} spare) but \
                 this process may open only {limit} (RLIMIT_NOFILE); lower --rooms or --members \
                 (the server, a separate process, needs as many on its side)",
                self.sessions()
            ));
        }
        Ok(())
    }
}

/// A local cluster (scripts/cluster.sh): its balancer and the processes behind it.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The cluster.json it was read from.
    pub file: PathBuf,
    /// The balancer's URL.
    pub url: String,
    /// Every process of the cluster as (name, pid): the nodes, `haproxy`, `redis`.
    pub processes: Vec<(String, u32)>,
    /// HAProxy's pid: every session holds two of its descriptors.
    pub balancer_pid: u32,
}

impl Cluster {
    /// Reads the cluster.json that `scripts/cluster.sh up` wrote.
    fn read(file: &std::path::Path) -> Result<Cluster, String> {
        let bad = |what: &str| format!("--cluster {}: {what}", file.display());
        let text = std::fs::read_to_string(file)
            .map_err(|e| bad(&format!("{e} (is the cluster up? scripts/cluster.sh up)")))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        let pid = |v: &serde_json::Value| {
            v.as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| bad("a pid is missing"))
        };
        let mut processes = Vec::new();
        for node in v["nodes"].as_array().ok_or_else(|| bad("no nodes"))? {
            let id = node["id"].as_str().ok_or_else(|| bad("a node has no id"))?;
            processes.push((id.to_owned(), pid(&node["pid"])?));
        }
        let balancer_pid = pid(&v["haproxy_pid"])?;
        processes.push(("haproxy".to_owned(), balancer_pid));
        processes.push(("redis".to_owned(), pid(&v["redis_pid"])?));
        Ok(Cluster {
            file: file.to_owned(),
            url: v["url"].as_str().ok_or_else(|| bad("no url"))?.to_owned(),
            processes,
            balancer_pid,
        })
    }

    /// The processes' pids, as /proc names them.
    pub fn pids(&self) -> Vec<String> {
        self.processes.iter().map(|(_, p)| p.to_string()).collect()
    }
}

/// Parses `--target`: an http(s) or ws URL, or a bare `host:port`, that must be loopback.
fn parse_target(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    let hostport = rest.split('/').next().unwrap_or_default();
    let hostport = hostport.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = hostport
        .parse()
        .map_err(|e| format!("--target {url}: expected http://127.0.0.1:PORT ({e})"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--target {url}: only loopback servers may be loaded by this bench"
        ));
    }
    Ok(addr)
}
