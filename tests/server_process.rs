//! The real binary as a child process, for tests that restart, kill or stop a server: started
//! on port 0 (the address read from its one stdout line), stopped by PID with a signal.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{Client, Merge, PATIENCE};

/// Flags that let one test address open as many rooms and sessions as it needs.
pub const UNLIMITED: &[&str] = &[
    "--max-sessions-per-ip",
    "0",
    "--connects-per-ip-per-minute",
    "0",
    "--rooms-per-ip-per-minute",
    "0",
    "--max-rooms-per-ip",
    "0",
    "--max-connections-per-ip",
    "0",
];

/// A running server process.
pub struct ServerProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The process.
    child: Child,
    /// Its stderr (logs), for a failing test to show.
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the binary with `args` (plus `--port 0`), its logs in `log`.
    pub fn start(args: &[&str], log: &Path) -> ServerProcess {
        let log_file = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_watch-together"))
            .args(["--port", "0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start the binary");
        let mut line = String::new();
        // unwrap: stdout was set to piped just above
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("first stdout line");
        let base = line
            .trim()
            .strip_prefix("watch-together listening on ")
            .unwrap_or_else(|| {
                let logs = std::fs::read_to_string(log).unwrap_or_default();
                panic!("the server did not start: {line:?}\n{logs}")
            })
            .to_owned();
        ServerProcess {
            base,
            child,
            log: log.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`KILL`, `TERM`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (off the test's runtime) until the process has exited; panics after PATIENCE.
    pub async fn exited(mut self) -> std::process::ExitStatus {
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + PATIENCE;
            loop {
                if let Some(status) = self.child.try_wait().expect("wait") {
                    return status;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the server did not exit"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .await
        .expect("waiting task")
    }

    /// The server's logs so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ws://` URL of a room's socket.
    pub fn ws_url(&self, room: &str) -> String {
        format!(
            "{}/api/rooms/{room}/ws",
            self.base.replacen("http", "ws", 1)
        )
    }

    /// Creates a room; returns `(room_id, host_token)`.
    pub async fn create_room(&self, body: Value) -> (String, String) {
        let mut resp = awc::Client::new()
            .post(format!("{}/api/rooms", self.base))
            .send_json(&body)
            .await
            .expect("POST /api/rooms");
        assert_eq!(resp.status().as_u16(), 201);
        let v: Value = resp.json().await.expect("JSON");
        (
            v["room_id"].as_str().unwrap().to_owned(),
            v["host_token"].as_str().unwrap().to_owned(),
        )
    }

    /// GETs a path; status and JSON body (Null if not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut resp = awc::Client::new()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let body = resp.body().await.expect("body");
        (
            resp.status().as_u16(),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// Connects to a room and joins with `join` (merged into `{"type": "join"}`); returns
    /// the client and its welcome.
    pub async fn join(&self, room: &str, join: Value) -> (Client, Value) {
        let (_, framed) = awc::Client::builder()
            .timeout(PATIENCE)
            .finish()
            .ws(self.ws_url(room))
            .max_frame_size(4 << 20)
            .connect()
            .await
            .expect("WebSocket connect");
        let mut client = Client::from_framed(framed);
        client.send(json!({"type": "join"}).merge(join)).await;
        let welcome = client.expect("welcome").await;
        (client, welcome)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
