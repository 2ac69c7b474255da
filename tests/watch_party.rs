//! The watch party (issue 13): a shared queue that advances at the end of each video, and
//! holds for buffering viewers that end when they are ready, leave, or time out.

use serde_json::{json, Value};

use crate::util::{Client, TestServer};

/// A room with a loaded library clip, its host (Ann), Bob and Bob's id; both have reported
/// a 5 ms round trip so starts are scheduled a short lead ahead.
async fn party(srv: &TestServer, room_body: Value) -> (String, Client, Client, String) {
    let (room, token) = srv.create_room(room_body).await;
    let (mut ann, _) = srv
        .join(&room, json!({"name": "Ann", "host_token": token}))
        .await;
    let (mut bob, welcome) = srv.join(&room, json!({"name": "Bob"})).await;
    let bob_id = welcome["you"]["id"].as_str().unwrap().to_owned();
    ann.send(json!({"type": "load", "video": {"kind": "url", "url": "/media/a.mp4"}}))
        .await;
    ann.expect("playback").await;
    bob.expect("playback").await;
    for c in [&mut ann, &mut bob] {
        c.send(json!({"type": "status", "rtt_ms": 5, "drift_ms": 0, "buffering": false}))
            .await;
    }
    (room, ann, bob, bob_id)
}

/// The next `playback` whose `seq` is above `after`.
async fn playback_after(c: &mut Client, after: u64) -> Value {
    loop {
        let m = c.expect("playback").await;
        if m["playback"]["seq"].as_u64().unwrap() > after {
            return m["playback"].clone();
        }
    }
}

/// The ids of a `queue` message's items.
fn ids(queue: &Value) -> Vec<u64> {
    queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect()
}

fn queue_add(url: &str, title: Option<&str>) -> Value {
    json!({"type": "queue_add", "video": {"kind": "url", "url": url}, "title": title})
}

#[actix_rt::test]
async fn the_queue_is_edited_broadcast_and_refuses_with_clear_errors() {
    let srv = TestServer::with(|c| c.max_queue = 3).await;
    let (room, mut ann, mut bob, _) = party(&srv, json!({})).await;
    for n in 1..=3 {
        ann.send(queue_add(
            &format!("/media/{n}.mp4"),
            Some(&format!("Part {n}")),
        ))
        .await;
        let q = bob.expect("queue").await;
        assert_eq!(q["items"].as_array().unwrap().len(), n);
    }
    let q = ann.expect("queue").await;
    assert_eq!(q["items"][0]["title"], "Part 1");
    assert_eq!(q["items"][0]["added_by"]["name"], "Ann");
    assert_eq!(q["items"][0]["video"]["url"], "/media/1.mp4");

    ann.send(queue_add("/media/4.mp4", None)).await;
    assert_eq!(ann.expect_error().await, "queue_full");
    bob.send(queue_add("/media/4.mp4", None)).await;
    assert_eq!(bob.expect_error().await, "not_host");

    ann.send(json!({"type": "queue_move", "item_id": 3, "index": 0}))
        .await;
    assert_eq!(ids(&bob.expect("queue").await), [3, 1, 2]);
    ann.send(json!({"type": "queue_remove", "item_id": 1}))
        .await;
    assert_eq!(ids(&bob.expect("queue").await), [3, 2]);
    ann.send(json!({"type": "queue_remove", "item_id": 1}))
        .await;
    assert_eq!(ann.expect_error().await, "not_found");
    ann.send(json!({"type": "queue_move", "item_id": 99, "index": 0}))
        .await;
    assert_eq!(ann.expect_error().await, "not_found");

    // `next` plays the front item now and broadcasts the shorter queue.
    ann.send(json!({"type": "next"})).await;
    let p = playback_after(&mut bob, 0).await;
    assert_eq!(p["video"]["url"], "/media/3.mp4");
    assert_eq!(
        (p["paused"].as_bool(), p["position"].as_f64()),
        (Some(false), Some(0.0))
    );
    assert_eq!(ids(&bob.expect("queue").await), [2]);
    // A newcomer sees the queue in its welcome.
    let (_cat, welcome) = srv.join(&room, json!({"name": "Cat"})).await;
    assert_eq!(ids(&json!({"items": welcome["queue"]})), [2]);
    ann.send(json!({"type": "next"})).await;
    ann.expect("queue").await;
    ann.send(json!({"type": "next"})).await;
    assert_eq!(ann.expect_error().await, "queue_empty");
}

#[actix_rt::test]
async fn the_reported_duration_advances_the_queue_then_ends_the_room() {
    let srv = TestServer::start().await;
    let (room, mut ann, mut bob, _) = party(&srv, json!({})).await;
    ann.send(queue_add("/media/b.mp4", None)).await;
    ann.expect("queue").await;
    ann.send(json!({"type": "play", "position": 0})).await;
    let p = playback_after(&mut bob, 0).await;
    // Bob's player learned the length: a very short clip. Bob has no control, so his word
    // alone does not end the video for the room; the host's page agrees.
    let before = ann.seen.len();
    bob.send(json!({"type": "media_info", "seq": p["seq"], "duration": 0.3}))
        .await;
    // The room handles Bob's messages in order: once his chat is out, the report was seen.
    bob.send(json!({"type": "chat", "text": "that was quick"}))
        .await;
    ann.expect("chat").await;
    assert!(
        !ann.seen[before..]
            .iter()
            .any(|m| m["type"] == "playback" && !m["playback"]["duration"].is_null()),
        "one viewer's report changed nothing"
    );
    ann.send(json!({"type": "media_info", "seq": p["seq"], "duration": 0.3}))
        .await;
    let with_duration = playback_after(&mut ann, p["seq"].as_u64().unwrap()).await;
    assert_eq!(with_duration["duration"], 0.3);
    // At the end the room plays the next item from the start, scheduled.
    let next = playback_after(&mut ann, with_duration["seq"].as_u64().unwrap()).await;
    assert_eq!(next["video"]["url"], "/media/b.mp4");
    assert_eq!(next["paused"], false);
    assert_eq!(next["position"], 0.0);
    assert_eq!(next["duration"], Value::Null);
    let q = ann.expect("queue").await;
    assert!(q["items"].as_array().unwrap().is_empty());
    // With nothing queued, the end stops the room there.
    ann.send(json!({"type": "media_info", "seq": next["seq"], "duration": 0.2}))
        .await;
    let known = playback_after(&mut bob, next["seq"].as_u64().unwrap()).await;
    let ended = playback_after(&mut bob, known["seq"].as_u64().unwrap()).await;
    assert_eq!(ended["ended"], true);
    assert_eq!(ended["paused"], true);
    assert_eq!(ended["position"], 0.2);
    let (_, summary) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(summary["playback"]["ended"], true);
}

/// Starts playback and waits until the scheduled start has passed on the server.
async fn start_playing(ann: &mut Client, bob: &mut Client) -> Value {
    ann.send(json!({"type": "play", "position": 0})).await;
    let p = playback_after(bob, 0).await;
    ann.wait_for_server_time(p["anchor"].as_f64().unwrap() + 1.0)
        .await;
    p
}

fn status(buffering: bool) -> Value {
    json!({"type": "status", "rtt_ms": 5, "drift_ms": 0, "buffering": buffering})
}

#[actix_rt::test]
async fn a_buffering_member_holds_everyone_until_it_is_ready() {
    let srv = TestServer::start().await;
    let (_room, mut ann, mut bob, bob_id) = party(&srv, json!({})).await;
    let p = start_playing(&mut ann, &mut bob).await;
    bob.send(status(true)).await;
    let held = playback_after(&mut ann, p["seq"].as_u64().unwrap()).await;
    assert_eq!(held["paused"], true);
    assert_eq!(held["waiting_for"], json!([bob_id]));
    bob.send(status(false)).await;
    let resumed = playback_after(&mut ann, held["seq"].as_u64().unwrap()).await;
    assert_eq!(resumed["paused"], false);
    assert_eq!(resumed["waiting_for"], json!([]));
    assert_eq!(
        resumed["position"], held["position"],
        "resumes where it held"
    );
    srv.wait_until("the hold to be counted", |s| {
        s.metric("watch_together_holds_total{outcome=\"ready\"}") == 1.0
    })
    .await;
}

#[actix_rt::test]
async fn a_hold_ends_at_its_timeout_or_when_the_member_leaves() {
    let srv = TestServer::start().await;
    let (_room, mut ann, mut bob, _) = party(&srv, json!({})).await;
    ann.send(json!({"type": "set_options", "buffering_timeout_s": 1}))
        .await;
    assert_eq!(bob.expect("room").await["room"]["buffering_timeout_s"], 1.0);
    let p = start_playing(&mut ann, &mut bob).await;
    bob.send(status(true)).await;
    let held = playback_after(&mut ann, p["seq"].as_u64().unwrap()).await;
    assert_eq!(held["paused"], true);
    // Nothing more from Bob: after a second the room plays on without him.
    let resumed = playback_after(&mut ann, held["seq"].as_u64().unwrap()).await;
    assert_eq!(resumed["paused"], false);
    assert_eq!(resumed["waiting_for"], json!([]));
    srv.wait_until("the timeout to be counted", |s| {
        s.metric("watch_together_holds_total{outcome=\"timeout\"}") == 1.0
    })
    .await;

    // A new spell (after being ready once) holds again; leaving ends it.
    bob.send(status(false)).await;
    ann.send(json!({"type": "seek", "position": 5})).await;
    let seek = playback_after(&mut ann, resumed["seq"].as_u64().unwrap()).await;
    ann.wait_for_server_time(seek["anchor"].as_f64().unwrap() + 1.0)
        .await;
    bob.send(status(true)).await;
    let held = playback_after(&mut ann, seek["seq"].as_u64().unwrap()).await;
    assert_eq!(held["paused"], true);
    bob.close().await;
    let resumed = playback_after(&mut ann, held["seq"].as_u64().unwrap()).await;
    assert_eq!(resumed["paused"], false);
    srv.wait_until("the leave to be counted", |s| {
        s.metric("watch_together_holds_total{outcome=\"left\"}") == 1.0
    })
    .await;
}

#[actix_rt::test]
async fn holds_are_the_hosts_option_and_big_rooms_never_hold() {
    let srv = TestServer::with(|c| c.presence_threshold = 2).await;
    let (room, mut ann, mut bob, _) = party(&srv, json!({})).await;
    bob.send(json!({"type": "set_options", "wait_for_buffering": false}))
        .await;
    assert_eq!(bob.expect_error().await, "not_host");
    let (_, summary) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(summary["wait_for_buffering"], true);
    assert_eq!(summary["buffering_timeout_s"], 8.0);

    // A third member makes the room big: a buffering member does not hold it.
    let (mut cat, welcome) = srv.join(&room, json!({"name": "Cat"})).await;
    assert_eq!(welcome["room"]["wait_for_buffering"], true);
    let p = start_playing(&mut ann, &mut bob).await;
    cat.send(status(true)).await;
    // Proof that the status was handled: a later chat from Cat arrives, and no playback
    // came before it.
    cat.send(json!({"type": "chat", "text": "buffering here"}))
        .await;
    loop {
        let m = ann.next().await;
        assert_ne!(m["type"], "playback", "a big room held: {m}");
        if m["type"] == "chat" {
            break;
        }
    }
    let (_, summary) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(summary["playback"]["paused"], false);
    assert_eq!(summary["playback"]["seq"], p["seq"]);
}
