//! Where the started server keeps its rooms during a run: `--store memory|sqlite|redis`.
//!
//! SQLite gets a fresh directory under the system's temp dir; Redis a `redis-server` of its
//! own on a free loopback port (AOF on, `appendfsync everysec`, the Redis default), stopped
//! and removed with its files when the run ends. The bench measures the server as operators
//! run it: with its store on.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;

/// The store the started server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// Rooms in memory only (`--ephemeral`).
    Memory,
    /// An SQLite file in a temporary directory (the server's default store).
    Sqlite,
    /// A `redis-server` started for the run.
    Redis,
}

impl StoreKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite",
            StoreKind::Redis => "redis",
        }
    }
}

/// How long `redis-server` may take to say it accepts connections.
const REDIS_START: Duration = Duration::from_secs(20);

/// The store of one run, prepared; removes what it made when dropped.
pub struct RunStore {
    /// The server flags that select it, as (flag, value) with "" for none.
    pub flags: Vec<(String, String)>,
    /// The directory made for it (SQLite's file, Redis's AOF).
    dir: Option<PathBuf>,
    /// The redis-server started for it.
    redis: Option<Child>,
}

impl RunStore {
    /// Prepares `kind` for a run.
    pub fn prepare(kind: StoreKind) -> Result<RunStore, String> {
        let dir = || {
            let dir = std::env::temp_dir().join(format!(
                "watch-together-bench-{}-{}",
                kind.name(),
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Ok::<_, String>(dir)
        };
        match kind {
            StoreKind::Memory => Ok(RunStore {
                flags: vec![("--ephemeral".into(), String::new())],
                dir: None,
                redis: None,
            }),
            StoreKind::Sqlite => {
                let dir = dir()?;
                Ok(RunStore {
                    flags: vec![("--data-dir".into(), dir.display().to_string())],
                    dir: Some(dir),
                    redis: None,
                })
            }
            StoreKind::Redis => {
                let dir = dir()?;
                let port = TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map_err(|e| format!("no free port for redis-server: {e}"))?
                    .port();
                let redis = start_redis(port, &dir)?;
                Ok(RunStore {
                    flags: vec![("--redis-url".into(), format!("redis://127.0.0.1:{port}/0"))],
                    dir: Some(dir),
                    redis: Some(redis),
                })
            }
        }
    }

    /// The store's own process (the redis-server started for the run), whose CPU is part of
    /// what the server's store costs.
    pub fn process(&self) -> Option<u32> {
        self.redis.as_ref().map(Child::id)
    }
}

impl Drop for RunStore {
    fn drop(&mut self) {
        if let Some(mut redis) = self.redis.take() {
            let _ = redis.kill();
            let _ = redis.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts `redis-server` on `port` with its files in `dir`; returns once it is ready.
fn start_redis(port: u16, dir: &std::path::Path) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("cannot start redis-server (Debian: apt-get install redis-server): {e}")
        })?;
    // unwrap: stdout was set to piped just above
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    for line in stdout.lines() {
        let line = line.map_err(|e| format!("reading redis-server's output: {e}"))?;
        if line.contains("Ready to accept connections") {
            return Ok(child);
        }
        if started.elapsed() > REDIS_START {
            break;
        }
    }
    let _ = child.kill();
    Err("redis-server did not become ready".into())
}
