//! Two nodes sharing one real `redis-server`, in this process: a room asked for on the node
//! that does not run it moves there (the balancer's view changed), its members are closed
//! with 1012 and come back on the new node as themselves, with the clock and the chat where
//! they were; a node that shuts down lets its rooms go at once.
//!
//! The balancer is left out here (tests/cluster.rs has it): requests go to a node directly,
//! as HAProxy would send them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::redis_server::{Persistence, RedisServer};
use crate::store::TempDir;
use crate::util::{position_at, Event, TestServer};

/// Starts node `id` on `redis` with leases of `lease_ttl`.
async fn node(redis: &RedisServer, id: &str, lease_ttl: Duration) -> TestServer {
    let url = redis.url();
    let id = id.to_owned();
    TestServer::with(move |c| {
        c.redis_url = Some(url);
        c.node_id = Some(id);
        c.lease_ttl = lease_ttl;
    })
    .await
}

/// The lease value of `room` in Redis (`node instance epoch`), if any.
async fn lease_holder(redis: &RedisServer, room: &str) -> Option<String> {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("GET")
        .arg(format!("wt:lease:{room}"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Nothing but `server_restarting` and the close: the member was told, then let go.
async fn expect_moved(client: &mut crate::util::Client) {
    let mut told = false;
    loop {
        match client.next_event().await {
            Event::Json(m) if m["type"] == "server_restarting" => told = true,
            Event::Json(_) => {}
            Event::Closed(code) => {
                assert_eq!(code, Some(1012), "closed for a restart");
                assert!(told, "told to reconnect before the close");
                return;
            }
        }
    }
}

#[actix_rt::test]
async fn a_room_asked_for_on_another_node_moves_there_with_its_members() {
    let dir = TempDir::new("handover");
    let redis = RedisServer::start(dir.path(), Persistence::None);
    let ttl = Duration::from_millis(600);
    let (a, b) = (node(&redis, "a", ttl).await, node(&redis, "b", ttl).await);

    let (room, token) = a.create_room(json!({"name": "movie night"})).await;
    assert_eq!(a.state.rooms.len(), 0, "creating a room only stores it");
    let (mut host, welcome) = a
        .join(&room, json!({"name": "Ann", "host_token": token}))
        .await;
    let host_id = welcome["you"]["id"].as_str().unwrap().to_owned();
    let host_resume = welcome["resume_token"].as_str().unwrap().to_owned();
    let (mut guest, welcome) = a.join(&room, json!({"name": "Bob"})).await;
    let guest_id = welcome["you"]["id"].as_str().unwrap().to_owned();
    let guest_resume = welcome["resume_token"].as_str().unwrap().to_owned();
    assert!(lease_holder(&redis, &room).await.unwrap().starts_with("a "));

    host.send(json!({"type": "load", "video": {"kind": "url", "url": "/media/a.mp4"}}))
        .await;
    host.expect("playback").await;
    host.send(json!({"type": "play", "position": 12})).await;
    let playback = host.expect("playback").await["playback"].clone();
    host.send(json!({"type": "chat", "text": "before the move"}))
        .await;
    host.expect("chat").await;
    guest.expect("chat").await;

    // The balancer now sends the room to `b`: its first request takes the room over.
    let (status, summary) = b.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["participants"], 2, "both still members: {summary}");
    assert_eq!(summary["host"]["id"], host_id.as_str());
    expect_moved(&mut host).await;
    expect_moved(&mut guest).await;
    assert_eq!(a.state.rooms.len(), 0);
    assert_eq!(a.metric("watch_together_rooms_handed_over_total"), 1.0);
    assert!(lease_holder(&redis, &room).await.unwrap().starts_with("b "));

    // Both come back on `b` as themselves.
    let (mut host, welcome) = b
        .join(&room, json!({"name": "Ann", "resume_token": host_resume}))
        .await;
    assert_eq!(welcome["you"]["id"], host_id.as_str());
    assert_eq!(welcome["host_id"], host_id.as_str());
    let t = welcome["server_time"].as_f64().unwrap();
    let error_ms = (position_at(&welcome["playback"], t) - position_at(&playback, t)).abs() * 1e3;
    assert!(error_ms <= 100.0, "clock off by {error_ms:.1} ms");
    let texts: Vec<&str> = welcome["chat"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["before the move"]);
    let (_guest, welcome) = b
        .join(&room, json!({"name": "Bob", "resume_token": guest_resume}))
        .await;
    assert_eq!(welcome["you"]["id"], guest_id.as_str());
    host.send(json!({"type": "chat", "text": "after the move"}))
        .await;
    let echo = host.expect("chat").await;
    assert_eq!(echo["message"]["text"], "after the move");
    let noise: Vec<&Value> = host
        .seen
        .iter()
        .filter(|m| m["type"] == "joined" || m["type"] == "left")
        .collect();
    assert!(noise.is_empty(), "join/leave noise: {noise:?}");
}

#[actix_rt::test]
async fn a_node_that_shuts_down_lets_its_rooms_go_at_once() {
    let dir = TempDir::new("handover-shutdown");
    let redis = RedisServer::start(dir.path(), Persistence::None);
    // Far longer than the test waits: the room can only move because it was released.
    let ttl = Duration::from_secs(60);
    let (a, b) = (node(&redis, "a", ttl).await, node(&redis, "b", ttl).await);
    let (room, token) = a.create_room(json!({"name": "late show"})).await;
    let (mut host, welcome) = a
        .join(&room, json!({"name": "Ann", "host_token": token}))
        .await;
    let resume = welcome["resume_token"].as_str().unwrap().to_owned();
    host.send(json!({"type": "chat", "text": "still here"}))
        .await;
    host.expect("chat").await;

    a.shutdown.shutdown().await;
    assert_eq!(host.expect_close().await, Some(1012));
    assert_eq!(lease_holder(&redis, &room).await, None, "released");
    let (_host, welcome) = b
        .join(&room, json!({"name": "Ann", "resume_token": resume}))
        .await;
    assert_eq!(welcome["chat"][0]["text"], "still here");
    assert!(lease_holder(&redis, &room).await.unwrap().starts_with("b "));
}
