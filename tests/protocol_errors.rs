//! Bad input and limits: each gets its documented error or close code, and the server keeps
//! serving everyone else.

use std::time::Duration;

use awc::ws;
use serde_json::json;

use crate::util::TestServer;

#[actix_rt::test]
async fn ping_pong_carries_server_receive_and_send_times() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let mut c = srv.connect(&room).await;
    // Clock sync works before join, so a client can sync while asking for a name.
    let pong = c.ping(12345.5).await;
    assert_eq!(pong["t0"], 12345.5);
    let (t1, t2) = (pong["t1"].as_f64().unwrap(), pong["t2"].as_f64().unwrap());
    assert!(t1 <= t2 && t2 - t1 < 1000.0, "t1 {t1} t2 {t2}");
    let later = c.ping(0.0).await["t1"].as_f64().unwrap();
    assert!(later >= t2, "server time never goes back");
}

#[actix_rt::test]
async fn bad_frames_get_errors_and_the_session_survives() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let mut c = srv.connect(&room).await;
    c.send(json!({"type": "chat", "text": "early"})).await;
    assert_eq!(c.expect_error().await, "not_joined");
    c.send(json!({"type": "join", "name": "   "})).await;
    assert_eq!(c.expect_error().await, "invalid_name");
    c.send(json!({"type": "join", "name": "Ann\u{0007}"})).await;
    assert_eq!(c.expect_error().await, "invalid_name");
    c.send(json!({"type": "join", "name": "x".repeat(33)}))
        .await;
    assert_eq!(c.expect_error().await, "invalid_name");
    c.send(json!({"type": "join", "name": "Ann"})).await;
    c.expect("welcome").await;
    let cases: Vec<(String, &str)> = vec![
        ("{\"type\":\"chat\",".into(), "bad_json"),
        ("hello".into(), "bad_json"),
        (json!({"type": "teleport"}).to_string(), "unknown_type"),
        (json!({"text": "no type"}).to_string(), "unknown_type"),
        (json!({"type": "seek"}).to_string(), "bad_message"),
        (
            json!({"type": "seek", "position": -3}).to_string(),
            "bad_message",
        ),
        (
            json!({"type": "rate", "rate": 10}).to_string(),
            "bad_message",
        ),
        (
            json!({"type": "load", "video": {"kind": "youtube", "id": "x"}}).to_string(),
            "bad_message",
        ),
        (
            json!({"type": "load", "video": {"kind": "url", "url": "file:///etc/passwd"}})
                .to_string(),
            "bad_message",
        ),
        (
            json!({"type": "load", "video": {"kind": "dvd"}}).to_string(),
            "bad_message",
        ),
        (
            json!({"type": "chat", "text": "x".repeat(501)}).to_string(),
            "invalid_chat",
        ),
        (
            json!({"type": "chat", "text": " \n "}).to_string(),
            "invalid_chat",
        ),
        (
            json!({"type": "join", "name": "Again"}).to_string(),
            "already_joined",
        ),
    ];
    for (frame, code) in cases {
        c.send_text(&frame).await;
        assert_eq!(c.expect_error().await, code, "frame {frame}");
    }
    c.send_raw(ws::Message::Binary(vec![1u8, 2, 3].into()))
        .await;
    assert_eq!(c.expect_error().await, "binary_unsupported");
    // Still a working member: it can chat and nothing it sent changed the clock.
    c.send(json!({"type": "chat", "text": "still here"})).await;
    assert_eq!(c.expect("chat").await["message"]["text"], "still here");
    let (_, room) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(room["playback"]["seq"], 0);
}

#[actix_rt::test]
async fn oversize_frame_closes_with_1009_and_others_are_unaffected() {
    let srv = TestServer::with(|c| c.max_frame_bytes = 1024).await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut other, _) = srv.join(&room, json!({"name": "Other"})).await;
    let (mut big, _) = srv.join(&room, json!({"name": "Big"})).await;
    big.send(json!({"type": "chat", "text": "y".repeat(2000)}))
        .await;
    assert_eq!(big.expect_close().await, Some(1009));
    other.send(json!({"type": "chat", "text": "fine"})).await;
    assert_eq!(other.expect("chat").await["message"]["text"], "fine");
    let (_fresh, _) = srv.join(&room, json!({"name": "Fresh"})).await;
}

#[actix_rt::test]
async fn rate_limit_errors_then_closes_sustained_abuse_with_1008() {
    let srv = TestServer::with(|c| {
        c.msg_burst = 5;
        c.msg_rate = 1.0;
    })
    .await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut neighbour, _) = srv.join(&room, json!({"name": "Calm"})).await;
    let (mut flood, _) = srv.join(&room, json!({"name": "Flood"})).await;
    // The join used one token; four more pings pass, the next is refused.
    for _ in 0..4 {
        flood.ping(0.0).await;
    }
    flood.send(json!({"type": "ping", "t0": 0})).await;
    assert_eq!(flood.expect_error().await, "rate_limited");
    for _ in 0..100 {
        flood.send_text("{\"type\":\"ping\",\"t0\":0}").await;
    }
    assert_eq!(flood.expect_close().await, Some(1008));
    assert_eq!(neighbour.ping(1.0).await["t0"], 1.0);
    srv.wait_until("the rejected counter", |s| {
        s.metric("watch_together_rejected_total{limit=\"message_rate\"}") >= 1.0
    })
    .await;
}

#[actix_rt::test]
async fn no_join_within_the_deadline_closes_with_1008() {
    let srv = TestServer::with(|c| c.join_timeout = Duration::from_millis(300)).await;
    let (room, _) = srv.create_room(json!({})).await;
    let mut idle = srv.connect(&room).await;
    assert_eq!(idle.expect_close().await, Some(1008));
    let (_ok, _) = srv.join(&room, json!({"name": "Punctual"})).await;
}

#[actix_rt::test]
async fn chat_flood_is_limited_per_participant() {
    let srv = TestServer::with(|c| {
        c.chat_burst = 2;
        c.chat_rate = 0.01;
    })
    .await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut c, _) = srv.join(&room, json!({"name": "Chatty"})).await;
    for i in 0..2 {
        c.send(json!({"type": "chat", "text": format!("m{i}")}))
            .await;
        c.expect("chat").await;
    }
    c.send(json!({"type": "chat", "text": "too much"})).await;
    assert_eq!(c.expect_error().await, "chat_rate_limited");
}

/// Issue 14, item 1: a URL with a multi-byte character where the scheme check looked used
/// to panic the session (and with `panic = "abort"`, the server).
#[actix_rt::test]
async fn multibyte_characters_in_a_video_url_are_refused_not_a_crash() {
    let srv = TestServer::start().await;
    let (room, token) = srv.create_room(json!({})).await;
    let (mut host, _) = srv
        .join(&room, json!({"name": "Host", "host_token": token}))
        .await;
    for url in ["aaaaaaé.mp4", "aaaaaaaé", "httpsé://x", "/media/%E0.mp4"] {
        host.send(json!({"type": "load", "video": {"kind": "url", "url": url}}))
            .await;
        assert_eq!(host.expect_error().await, "bad_message", "{url}");
    }
    // The session and the room are fine.
    host.send(json!({"type": "load", "video": {"kind": "url", "url": "/media/été.mp4"}}))
        .await;
    assert_eq!(
        host.expect("playback").await["playback"]["video"]["url"],
        "/media/été.mp4"
    );
}

/// Issue 14, item 12: control characters in chat, invisible and text-direction characters
/// in names.
#[actix_rt::test]
async fn chat_refuses_control_characters_and_names_refuse_invisible_ones() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let mut c = srv.connect(&room).await;
    for name in [
        "Ann\u{202E}",
        "A\u{200B}nn",
        "\u{3164}",
        "Ann\u{2066}x\u{2069}",
    ] {
        c.send(json!({"type": "join", "name": name})).await;
        assert_eq!(c.expect_error().await, "invalid_name", "{name:?}");
    }
    c.send(json!({"type": "join", "name": "Zoë 👩‍👩‍👧"})).await;
    assert_eq!(c.expect("welcome").await["you"]["name"], "Zoë 👩‍👩‍👧");
    for text in ["a\u{0}b", "two\nlines", "bell\u{7}", "\u{1b}[31mred"] {
        c.send(json!({"type": "chat", "text": text})).await;
        assert_eq!(c.expect_error().await, "invalid_chat", "{text:?}");
    }
    c.send(json!({"type": "chat", "text": "fine"})).await;
    assert_eq!(c.expect("chat").await["message"]["text"], "fine");
}

/// Issue 14, item 7: binary frames pay into the same budget as text frames, so a client
/// cannot make the server answer at its own pace.
#[actix_rt::test]
async fn binary_frames_are_rate_limited_like_text() {
    let srv = TestServer::with(|c| {
        c.msg_burst = 5;
        c.msg_rate = 1.0;
    })
    .await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut neighbour, _) = srv.join(&room, json!({"name": "Calm"})).await;
    let (mut flood, _) = srv.join(&room, json!({"name": "Binary"})).await;
    for _ in 0..150 {
        flood
            .send_raw(ws::Message::Binary(vec![0u8; 8].into()))
            .await;
    }
    assert_eq!(flood.expect_close().await, Some(1008));
    let refusals = flood
        .seen
        .iter()
        .filter(|m| m["code"] == "binary_unsupported")
        .count();
    assert!(refusals <= 5, "{refusals} binary frames were answered");
    assert_eq!(neighbour.ping(1.0).await["t0"], 1.0);
}

/// Issue 14, item 10: RFC 6455 section 8.1 asks for 1007 when a text frame is not UTF-8.
#[actix_rt::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;

    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(srv.ws_url(&room))
        .await
        .expect("handshake");
    let frame = Frame::message(vec![b'{', 0xE0, 0x80, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).await.unwrap();
    let code = loop {
        match tokio::time::timeout(crate::util::PATIENCE, ws.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Message::Close(Some(close)))) => break u16::from(close.code),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, 1007);
}
