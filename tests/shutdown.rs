//! Graceful shutdown of the real binary on SIGTERM, and its JSON logs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::util::{Client, PATIENCE};

/// Talks to an already running server at `base` (reuses the test client helpers).
async fn join(base: &str, room: &str, name: &str) -> Client {
    let url = format!("{}/api/rooms/{room}/ws", base.replacen("http", "ws", 1));
    let (_, framed) = awc::Client::new().ws(url).connect().await.expect("connect");
    let mut c = Client::from_framed(framed);
    c.send(json!({"type": "join", "name": name})).await;
    c.expect("welcome").await;
    c
}

#[actix_rt::test]
async fn sigterm_tells_clients_to_reconnect_and_exits() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_watch-together"))
        .args([
            "--port",
            "0",
            "--ephemeral",
            "--log-json",
            "--shutdown-timeout",
            "3s",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("first stdout line");
    let base = line
        .trim()
        .strip_prefix("watch-together listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let mut resp = awc::Client::new()
        .post(format!("{base}/api/rooms"))
        .send_json(&json!({}))
        .await
        .unwrap();
    let room: serde_json::Value = resp.json().await.unwrap();
    let room = room["room_id"].as_str().unwrap().to_owned();
    let mut a = join(&base, &room, "A").await;
    let mut b = join(&base, &room, "B").await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for c in [&mut a, &mut b] {
        c.expect("server_restarting").await;
        assert_eq!(c.expect_close().await, Some(1012));
    }
    // The process ends by itself, well within the shutdown timeout plus margin.
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, child);
            }
            assert!(std::time::Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (status, mut child) = exit.await.unwrap();
    assert!(status.success(), "exit status {status}");

    // Every log line is JSON; the room creation was logged inside its request's span.
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let created = lines
        .iter()
        .find(|l| l["fields"]["message"] == "room created")
        .expect("room creation logged");
    assert_eq!(created["span"]["http.route"], "/api/rooms");
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"] == "shutting down"));
}
