//! A real `redis-server` for one test: on a free loopback port, in its own directory, stopped
//! by PID when dropped.
//!
//! Readiness is Redis's own word: the test waits for the "Ready to accept connections" line
//! on its stdout (printed after an AOF is loaded), never a fixed sleep.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use crate::util::PATIENCE;

/// How the server keeps data on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk.
    None,
    /// AOF with `appendfsync everysec` (Redis's default).
    AofEverySec,
    /// AOF with `appendfsync always`: every `EXEC` is on disk before its reply.
    AofAlways,
}

/// A running (or stopped) `redis-server`.
pub struct RedisServer {
    /// Its loopback port, kept across restarts.
    pub port: u16,
    /// Its working directory (the AOF lives there).
    dir: PathBuf,
    /// How it persists.
    persistence: Persistence,
    /// The process, while running.
    child: Option<Child>,
}

/// A port free now on 127.0.0.1: bind port 0, read what the kernel chose, let it go.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl RedisServer {
    /// Starts a server with its files in `dir`.
    pub fn start(dir: &Path, persistence: Persistence) -> RedisServer {
        std::fs::create_dir_all(dir).expect("redis directory");
        let mut server = RedisServer {
            port: free_port(),
            dir: dir.to_owned(),
            persistence,
            child: None,
        };
        server.launch();
        server
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the process on the same port and directory; returns once it accepts
    /// connections.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let (aof, fsync) = match self.persistence {
            Persistence::None => ("no", "everysec"),
            Persistence::AofEverySec => ("yes", "everysec"),
            Persistence::AofAlways => ("yes", "always"),
        };
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", aof, "--appendfsync", fsync])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian: apt-get install redis-server)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        // Reads the log to its end, so Redis never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Ready to accept connections") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Ok(()));
                    }
                } else if ready.is_some() {
                    seen.push(line);
                }
            }
            if let Some(tx) = ready {
                let _ = tx.send(Err(seen.join("\n")));
            }
        });
        match ready_rx.recv_timeout(PATIENCE) {
            Ok(Ok(())) => self.child = Some(child),
            Ok(Err(log)) => panic!("redis-server exited before it was ready:\n{log}"),
            Err(e) => {
                let _ = child.kill();
                panic!("redis-server not ready in time: {e}");
            }
        }
    }

    /// Sends `signal` to the process and waits for it to exit.
    fn signal(&mut self, signal: libc::c_int) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: `kill` has no memory effects; the pid is our own child, not yet reaped
        // (we wait for it below), so it cannot name another process.
        unsafe {
            libc::kill(pid, signal);
        }
        child.wait().expect("wait for redis-server");
    }

    /// Stops it cleanly (SIGTERM: Redis writes and syncs its AOF, then exits).
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// Kills it (SIGKILL: a crash, nothing flushed on the way out).
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
