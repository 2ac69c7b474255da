//! The authoritative clock over the wire: broadcasts, scheduling, late joiners, permissions.

use serde_json::{json, Value};

use crate::util::{position_at, Client, TestServer};

/// Sends a control and returns the `playback` message every client received for it.
async fn control_everywhere(sender: usize, clients: &mut [Client], msg: Value) -> Vec<Value> {
    clients[sender].send(msg).await;
    let mut got = Vec::new();
    for c in clients.iter_mut() {
        got.push(c.expect("playback").await);
    }
    got
}

#[actix_rt::test]
async fn every_control_reaches_every_member_with_increasing_seq() {
    let srv = TestServer::start().await;
    let (room, token) = srv.create_room(json!({})).await;
    let (host, welcome) = srv
        .join(&room, json!({"name": "Host", "host_token": token}))
        .await;
    let host_id = welcome["you"]["id"].clone();
    let (a, _) = srv.join(&room, json!({"name": "A"})).await;
    let (b, _) = srv.join(&room, json!({"name": "B"})).await;
    let mut clients = [host, a, b];
    let controls = [
        json!({"type": "load", "video": {"kind": "url", "url": "/media/clip.mp4"}}),
        json!({"type": "play", "position": 1.5}),
        json!({"type": "rate", "rate": 1.25}),
        json!({"type": "seek", "position": 42}),
        json!({"type": "pause", "position": 43}),
        json!({"type": "play"}),
    ];
    let mut last_seq = 0;
    for control in controls {
        let got = control_everywhere(0, &mut clients, control.clone()).await;
        for msg in &got {
            assert_eq!(msg, &got[0], "every member gets the same bytes");
        }
        let p = &got[0]["playback"];
        assert_eq!(got[0]["by"], host_id);
        let seq = p["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "seq must increase: {seq} after {last_seq}");
        last_seq = seq;
        match control["type"].as_str().unwrap() {
            "load" => {
                assert_eq!(p["video"]["url"], "/media/clip.mp4");
                assert_eq!(
                    (p["paused"].as_bool(), p["position"].as_f64()),
                    (Some(true), Some(0.0))
                );
            }
            "play" => assert_eq!(p["paused"], false),
            "rate" => assert_eq!(p["rate"], 1.25),
            "seek" => assert_eq!(p["position"], 42.0),
            "pause" => assert_eq!(
                (p["paused"].as_bool(), p["position"].as_f64()),
                (Some(true), Some(43.0))
            ),
            _ => unreachable!(),
        }
    }
    // The REST view agrees with what was broadcast.
    let (_, summary) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(summary["playback"]["seq"], last_seq);
    assert_eq!(summary["participants"], 3);
    assert_eq!(summary["host"]["name"], "Host");
}

#[actix_rt::test]
async fn play_is_scheduled_in_the_future_covering_the_slowest_member() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut host, _) = srv.join(&room, json!({"name": "Host"})).await;
    let (mut slow, _) = srv.join(&room, json!({"name": "Slow"})).await;
    slow.send(json!({"type": "status", "rtt_ms": 400, "drift_ms": 0, "buffering": false}))
        .await;
    // The status is processed before anything the room receives later from the same
    // session; a ping round trip on it orders our next step after it.
    slow.ping(0.0).await;
    let before = host.ping(0.0).await["t2"].as_f64().unwrap();
    host.send(json!({"type": "play", "position": 10})).await;
    let p = host.expect("playback").await["playback"].clone();
    let after = host.ping(0.0).await["t2"].as_f64().unwrap();
    let anchor = p["anchor"].as_f64().unwrap();
    assert!(
        anchor >= before + 400.0,
        "anchor {anchor} must cover the 400 ms member (sent at >= {before})"
    );
    assert!(
        anchor <= after + 1000.0,
        "anchor {anchor} is at most 1 s ahead of {after}"
    );
    assert_eq!(
        position_at(&p, anchor - 50.0),
        10.0,
        "nothing moves before the anchor"
    );
    let slow_p = slow.expect("playback").await;
    assert_eq!(slow_p["playback"], p);
}

#[actix_rt::test]
async fn minimum_lead_applies_when_everyone_is_fast() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut host, _) = srv.join(&room, json!({"name": "Host"})).await;
    let before = host.ping(0.0).await["t2"].as_f64().unwrap();
    host.send(json!({"type": "play"})).await;
    let p = host.expect("playback").await["playback"].clone();
    let after = host.ping(0.0).await["t2"].as_f64().unwrap();
    let anchor = p["anchor"].as_f64().unwrap();
    assert!(
        anchor >= before + 100.0 && anchor <= after + 1000.0,
        "{before} {anchor} {after}"
    );
}

#[actix_rt::test]
async fn late_joiner_lands_on_the_live_clock() {
    let srv = TestServer::start().await;
    let (room, _) = srv
        .create_room(json!({"video": {"kind": "url", "url": "https://example.org/a.mp4"}}))
        .await;
    let (mut host, _) = srv.join(&room, json!({"name": "Host"})).await;
    host.send(json!({"type": "play", "position": 5})).await;
    let p = host.expect("playback").await["playback"].clone();
    let anchor = p["anchor"].as_f64().unwrap();
    // Let playback run for a while past its scheduled start.
    host.wait_for_server_time(anchor + 700.0).await;
    let (_late, welcome) = srv.join(&room, json!({"name": "Late"})).await;
    let t = welcome["server_time"].as_f64().unwrap();
    let late_position = position_at(&welcome["playback"], t);
    let live_position = 5.0 + (t - anchor) / 1000.0;
    assert!(
        late_position > 5.6,
        "the late joiner is not sent to where playback started"
    );
    assert!(
        (late_position - live_position).abs() * 1000.0 <= 50.0,
        "late joiner at {late_position}, live clock at {live_position}"
    );
}

#[actix_rt::test]
async fn non_host_is_refused_until_control_is_everyone() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut host, _) = srv.join(&room, json!({"name": "Host"})).await;
    let (mut guest, _) = srv.join(&room, json!({"name": "Guest"})).await;
    for msg in [
        json!({"type": "play"}),
        json!({"type": "pause"}),
        json!({"type": "seek", "position": 3}),
        json!({"type": "rate", "rate": 2}),
        json!({"type": "load", "video": {"kind": "youtube", "id": "dQw4w9WgXcQ"}}),
        json!({"type": "set_control", "control": "everyone"}),
        json!({"type": "transfer_host", "to": "someone"}),
    ] {
        guest.send(msg.clone()).await;
        assert_eq!(guest.expect_error().await, "not_host", "{msg}");
    }
    host.send(json!({"type": "set_control", "control": "everyone"}))
        .await;
    assert_eq!(guest.expect("room").await["room"]["control"], "everyone");
    guest.send(json!({"type": "seek", "position": 7})).await;
    let p = host.expect("playback").await;
    assert_eq!(p["playback"]["position"], 7.0);
    assert_eq!(p["by"], guest.seen[0]["you"]["id"]);
    // Nothing the guest tried before took effect: this is the first change.
    assert_eq!(p["playback"]["seq"], 1);
}
