//! REST endpoints and the WebSocket upgrade's refusals.

use serde_json::json;

use crate::util::TestServer;

#[actix_rt::test]
async fn create_then_get_room() {
    let srv = TestServer::start().await;
    let (status, created) = srv
        .post(
            "/api/rooms",
            json!({"name": " Friday film ", "control": "everyone",
                   "video": {"kind": "youtube", "id": "dQw4w9WgXcQ"}}),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["room_id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(created["url"], format!("/r/{id}"));
    assert!(
        created["host_token"].as_str().unwrap().len() >= 32,
        "token carries >= 128 bits"
    );

    let (status, room) = srv.get(&format!("/api/rooms/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(room["room_id"], id);
    assert_eq!(room["name"], "Friday film");
    assert_eq!(room["control"], "everyone");
    assert_eq!(room["participants"], 0);
    assert_eq!(room["host"], json!(null));
    assert_eq!(room["playback"]["video"]["id"], "dQw4w9WgXcQ");
    assert_eq!(room["playback"]["paused"], true);
    assert_eq!(room["playback"]["seq"], 0);
}

#[actix_rt::test]
async fn empty_body_creates_a_default_room() {
    let srv = TestServer::start().await;
    let mut resp = awc::Client::new()
        .post(format!("{}/api/rooms", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let v: serde_json::Value = resp.json().await.unwrap();
    let (_, room) = srv
        .get(&format!("/api/rooms/{}", v["room_id"].as_str().unwrap()))
        .await;
    assert_eq!(room["control"], "host");
    assert_eq!(room["name"], "");
}

#[actix_rt::test]
async fn invalid_room_bodies_are_refused_with_400() {
    let srv = TestServer::start().await;
    for body in [
        json!({"control": "anyone"}),
        json!({"video": {"kind": "youtube", "id": "nope"}}),
        json!({"video": {"kind": "url", "url": "ftp://x/y.mp4"}}),
        json!({"name": "x".repeat(81)}),
        json!({"name": "Movie\u{202E}night"}),
        json!({"colour": "red"}),
        // Issue 14, item 1: this used to close the connection without a response.
        json!({"video": {"kind": "url", "url": "aaaaaaé…"}}),
        json!({"video": {"kind": "url", "url": "/media/%E0.mp4"}}),
        json!([1, 2]),
    ] {
        let (status, v) = srv.post("/api/rooms", body.clone()).await;
        assert_eq!(status, 400, "{body} → {v}");
        assert_eq!(v["error"]["code"], "bad_request");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5);
    }
}

#[actix_rt::test]
async fn unknown_and_malformed_rooms() {
    let srv = TestServer::start().await;
    let unknown = uuid::Uuid::new_v4();
    let (status, v) = srv.get(&format!("/api/rooms/{unknown}")).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "room_not_found");
    let (status, v) = srv.get("/api/rooms/not-a-room").await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "bad_room_id");
    // A socket to an unknown room is refused before the upgrade, and creates nothing.
    assert_eq!(
        srv.try_connect(&unknown.to_string(), &[]).await.err(),
        Some(404)
    );
    assert_eq!(srv.try_connect("not-a-room", &[]).await.err(), Some(400));
    assert_eq!(srv.get(&format!("/api/rooms/{unknown}")).await.0, 404);
    assert!(srv.state.rooms.is_empty());
}

#[actix_rt::test]
async fn health_and_unknown_api_routes() {
    let srv = TestServer::start().await;
    let (status, v) = srv.get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok");
    // deploy/haproxy.cfg matches these exact bytes: a space here would take every node out
    // of the balancer.
    let (_, body) = srv.get_raw("/api/health", &[]).await;
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains(r#""status":"ok""#), "{body}");
    let (status, v) = srv.get("/api/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "not_found");
}

#[actix_rt::test]
async fn room_limit_is_enforced() {
    let srv = TestServer::with(|c| c.max_rooms = 2).await;
    srv.create_room(json!({})).await;
    srv.create_room(json!({})).await;
    let (status, v) = srv.post("/api/rooms", json!({})).await;
    assert_eq!(status, 503);
    assert_eq!(v["error"]["code"], "room_limit");
}

#[actix_rt::test]
async fn empty_rooms_are_removed_after_the_idle_ttl() {
    let srv = TestServer::with(|c| {
        c.room_idle_ttl = std::time::Duration::from_millis(500);
        c.unjoined_room_ttl = std::time::Duration::from_millis(500);
    })
    .await;
    let (idle, _) = srv.create_room(json!({})).await;
    let (busy, _) = srv.create_room(json!({})).await;
    let (_viewer, _) = srv.join(&busy, json!({"name": "Viewer"})).await;
    srv.wait_until("the idle room to be removed", |s| s.state.rooms.len() == 1)
        .await;
    assert_eq!(srv.get(&format!("/api/rooms/{idle}")).await.0, 404);
    assert_eq!(srv.get(&format!("/api/rooms/{busy}")).await.0, 200);
    assert_eq!(srv.try_connect(&idle, &[]).await.err(), Some(404));
}

#[actix_rt::test]
async fn a_full_room_refuses_newcomers_with_room_full() {
    let srv = TestServer::with(|c| c.max_members = 2).await;
    let (room, _) = srv.create_room(json!({})).await;
    let (_a, _) = srv.join(&room, json!({"name": "A"})).await;
    let (_b, _) = srv.join(&room, json!({"name": "B"})).await;
    let mut c = srv.connect(&room).await;
    c.send(json!({"type": "join", "name": "C"})).await;
    assert_eq!(c.expect_error().await, "room_full");
    assert_eq!(c.expect_close().await, Some(1008));
}

#[actix_rt::test]
async fn oversized_bodies_and_wrong_methods_get_json_errors() {
    let srv = TestServer::start().await;
    let (status, v) = srv
        .post("/api/rooms", json!({"name": "x".repeat(20_000)}))
        .await;
    assert_eq!(status, 413);
    assert_eq!(v["error"]["code"], "too_large");
    let mut resp = awc::Client::new()
        .post(format!("{}/", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

/// Issue 14, item 3: a room nobody ever joins goes after a minute (here 300 ms), while one
/// that was used waits out the full idle TTL once empty.
#[actix_rt::test]
async fn rooms_nobody_joined_are_removed_sooner() {
    let srv = TestServer::with(|c| {
        c.room_idle_ttl = std::time::Duration::from_secs(3600);
        c.unjoined_room_ttl = std::time::Duration::from_millis(300);
        c.host_grace = std::time::Duration::from_millis(100);
    })
    .await;
    let (unused, _) = srv.create_room(json!({})).await;
    let (used, _) = srv.create_room(json!({})).await;
    let (viewer, _) = srv.join(&used, json!({"name": "Viewer"})).await;
    viewer.close().await;
    srv.wait_until("the unused room to be removed", |s| {
        s.state.rooms.len() == 1
    })
    .await;
    assert_eq!(srv.get(&format!("/api/rooms/{unused}")).await.0, 404);
    // Once the used room is empty, give it more than the unjoined TTL and two ticks: it
    // stays, because it was used.
    let mut clock = srv.connect(&used).await;
    loop {
        let (status, room) = srv.get(&format!("/api/rooms/{used}")).await;
        assert_eq!(status, 200);
        if room["participants"] == 0 {
            break;
        }
        let now = clock.ping(0.0).await["t2"].as_f64().unwrap();
        clock.wait_for_server_time(now + 50.0).await;
    }
    let emptied = clock.ping(0.0).await["t2"].as_f64().unwrap();
    clock.wait_for_server_time(emptied + 2300.0).await;
    assert_eq!(srv.get(&format!("/api/rooms/{used}")).await.0, 200);
}
