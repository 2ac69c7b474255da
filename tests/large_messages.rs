//! Messages larger than one WebSocket fragment: they arrive whole, and nothing interleaves.

use serde_json::json;

use crate::util::{unthrottled, TestServer};

#[actix_rt::test]
async fn a_large_welcome_arrives_whole_and_later_frames_follow_it_in_order() {
    let srv = TestServer::with(|c| {
        unthrottled(c);
        c.chat_history_bytes = 1 << 20;
    })
    .await;
    let (room, token) = srv.create_room(json!({})).await;
    let (mut ann, _) = srv
        .join(&room, json!({"name": "Ann", "host_token": token}))
        .await;
    // 60 chats of 480 characters, with multi-byte ones, make the next welcome about 70 KiB:
    // several fragments, some of which would end inside a character if cut blindly.
    let texts: Vec<String> = (0..60)
        .map(|i| format!("{i:03} {}", "é€😀x".repeat(119)))
        .collect();
    for text in &texts {
        ann.send(json!({"type": "chat", "text": text})).await;
    }
    while ann.expect("chat").await["message"]["text"] != texts[59].as_str() {}

    let mut bob = srv.connect(&room).await;
    bob.send(json!({"type": "join", "name": "Bob"})).await;
    bob.send(json!({"type": "ping", "t0": 7.0})).await;
    // Once Ann hears of Bob, his welcome is on its way (in fragments, a millisecond apart);
    // her pause then reaches him behind it.
    ann.expect("joined").await;
    ann.send(json!({"type": "pause", "position": 3.0})).await;

    let welcome = bob.next().await;
    assert_eq!(welcome["type"], "welcome", "the welcome comes first");
    let chat: Vec<_> = welcome["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(chat, texts, "every kept chat message, intact");
    assert!(
        bob.fragmented >= 1,
        "a {}-byte welcome should have been fragmented",
        welcome.to_string().len()
    );
    // The pong and the pause were sent while the welcome was going out (in either order);
    // both follow it, whole.
    let (mut pong, mut playback) = (None, None);
    while pong.is_none() || playback.is_none() {
        let m = bob.next().await;
        match m["type"].as_str() {
            Some("pong") => pong = Some(m),
            Some("playback") => playback = Some(m),
            _ => {}
        }
    }
    assert_eq!(pong.unwrap()["t0"], 7.0);
    assert_eq!(playback.unwrap()["playback"]["position"], 3.0);
    assert_eq!(
        bob.seen.iter().filter(|m| m["type"] == "welcome").count(),
        1
    );
}
