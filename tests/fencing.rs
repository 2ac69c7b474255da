//! A paused owner (SIGSTOP) loses its room to another node sharing the same real
//! `redis-server`, and when it wakes (SIGCONT) it cannot overwrite what the new owner stored:
//! it notices it lost the lease and closes its members with 1012, without echoing what they
//! sent while it slept. The real binary runs as child processes (tests/server_process.rs).
//!
//! Whether the woken node first reads its members' buffered messages or first renews its
//! leases is up to its event loop; either way nothing of it may land (a write made under the
//! old epoch is refused by Redis, which tests/leases.rs shows write by write).

use serde_json::{json, Value};

use crate::redis_server::{Persistence, RedisServer};
use crate::server_process::{ServerProcess, UNLIMITED};
use crate::store::TempDir;
use crate::util::Event;

fn node(redis: &RedisServer, id: &str, dir: &TempDir) -> ServerProcess {
    let url = redis.url();
    let mut args: Vec<&str> = UNLIMITED.to_vec();
    args.extend([
        "--redis-url",
        &url,
        "--node-id",
        id,
        "--lease-ttl",
        "1s",
        "--host-grace",
        "60s",
    ]);
    ServerProcess::start(&args, &dir.path().join(format!("{id}.log")))
}

fn chat_texts(welcome: &Value) -> Vec<String> {
    welcome["chat"]
        .as_array()
        .expect("chat history")
        .iter()
        .map(|m| m["text"].as_str().expect("text").to_owned())
        .collect()
}

/// The value of metric `name` in a node's `/metrics`.
async fn metric(node: &ServerProcess, name: &str) -> f64 {
    let mut resp = awc::Client::new()
        .get(format!("{}/metrics", node.base))
        .send()
        .await
        .expect("GET /metrics");
    let body = resp.body().await.expect("body");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[actix_rt::test]
async fn a_paused_owner_cannot_overwrite_the_room_it_lost() {
    let dir = TempDir::new("fencing");
    let redis = RedisServer::start(&dir.path().join("redis"), Persistence::None);
    let a = node(&redis, "a", &dir);
    let b = node(&redis, "b", &dir);

    let (room, token) = a
        .create_room(json!({"name": "split brain", "control": "everyone"}))
        .await;
    let (mut ann, _) = a
        .join(&room, json!({"name": "Ann", "host_token": token}))
        .await;
    ann.send(json!({"type": "load", "video": {"kind": "url", "url": "/media/a.mp4"}}))
        .await;
    ann.expect("playback").await;
    ann.send(json!({"type": "chat", "text": "before the pause"}))
        .await;
    ann.expect("chat").await;

    a.signal("STOP");
    // Sent to the sleeping node: they wait in its socket.
    ann.send(json!({"type": "chat", "text": "while asleep"}))
        .await;
    ann.send(json!({"type": "seek", "position": 99})).await;

    // The room moves to `b` (as the balancer sends it there once `a` fails its checks):
    // `b` waits for `a`'s lease to run out, then takes the room over.
    let (status, summary) = b.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(status, 200, "{summary}\n{}", b.logs());
    let (mut cy, _) = b.join(&room, json!({"name": "Cy"})).await;
    cy.send(json!({"type": "chat", "text": "on the new owner"}))
        .await;
    cy.expect("chat").await;
    cy.send(json!({"type": "pause", "position": 42})).await;
    cy.expect("playback").await;

    a.signal("CONT");
    let mut closed = None;
    while closed.is_none() {
        if let Event::Closed(code) = ann.next_event().await {
            closed = Some(code);
        }
    }
    assert_eq!(closed, Some(Some(1012)), "{}", a.logs());
    assert!(
        !ann.seen
            .iter()
            .any(|m| m["type"] == "chat" && m["message"]["text"] == "while asleep"),
        "the old owner echoed a message it could not store"
    );
    println!(
        "fencing: the woken node had {} write batch(es) refused by Redis",
        metric(&a, "watch_together_store_fenced_total").await
    );

    // What Redis holds is `b`'s room: `b` stops (writing its last state), and a third node
    // loads the room from Redis alone.
    b.signal("TERM");
    b.exited().await;
    let c = node(&redis, "c", &dir);
    let (_dee, welcome) = c.join(&room, json!({"name": "Dee"})).await;
    assert_eq!(
        chat_texts(&welcome),
        ["before the pause", "on the new owner"],
        "{}",
        c.logs()
    );
    assert_eq!(welcome["playback"]["paused"], true);
    assert_eq!(welcome["playback"]["position"], 42.0);
}
