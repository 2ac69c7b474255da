//! Arbitrary and mutated frames against a live session: every frame gets a documented answer
//! (or none, for accepted fire-and-forget messages), nothing closes, the room keeps working.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::json;

use crate::util::{unthrottled, Event, TestServer};

/// Error codes documented in docs/api.md.
const DOCUMENTED: &[&str] = &[
    "bad_json",
    "unknown_type",
    "bad_message",
    "not_joined",
    "already_joined",
    "not_host",
    "rate_limited",
    "chat_rate_limited",
    "room_full",
    "room_not_found",
    "invalid_name",
    "invalid_chat",
    "not_found",
    "binary_unsupported",
];

/// Valid frames to mutate.
const SEEDS: &[&str] = &[
    r#"{"type":"play","position":1.5}"#,
    r#"{"type":"seek","position":30}"#,
    r#"{"type":"rate","rate":1.25}"#,
    r#"{"type":"load","video":{"kind":"youtube","id":"dQw4w9WgXcQ"}}"#,
    r#"{"type":"load","video":{"kind":"url","url":"/media/a.mp4"}}"#,
    r#"{"type":"chat","text":"hello"}"#,
    r#"{"type":"status","rtt_ms":10,"drift_ms":-2,"buffering":false}"#,
    r#"{"type":"transfer_host","to":"abc"}"#,
    r#"{"type":"set_control","control":"everyone"}"#,
    r#"{"type":"ping","t0":1}"#,
];

/// A frame: random text, or a seed with a few bytes replaced, cut or duplicated.
fn frames() -> impl Strategy<Value = String> {
    let mutated = (
        0..SEEDS.len(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..4),
    )
        .prop_map(|(i, edits)| {
            let mut bytes = SEEDS[i].as_bytes().to_vec();
            for (at, byte, op) in edits {
                let at = at % bytes.len().max(1);
                match op {
                    0 => bytes[at] = byte,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, byte),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        });
    prop_oneof![mutated, any::<String>(), "\\PC{0,64}"]
}

#[actix_rt::test]
async fn random_frames_never_break_a_session_or_its_room() {
    let srv = TestServer::with(|c| {
        unthrottled(c);
    })
    .await;
    let (room, token) = srv.create_room(json!({})).await;
    let (mut fuzzer, _) = srv
        .join(&room, json!({"name": "Fuzz", "host_token": token}))
        .await;
    let (mut bystander, _) = srv.join(&room, json!({"name": "Bystander"})).await;
    let mut runner = TestRunner::deterministic();
    let strategy = frames();
    let mut sent = 0;
    for _ in 0..400 {
        let frame = strategy.new_tree(&mut runner).expect("a value").current();
        fuzzer.send_text(&frame).await;
        sent += 1;
    }
    // A marker after the fuzz: everything before it has been answered once it arrives.
    fuzzer.send(json!({"type": "ping", "t0": -42})).await;
    loop {
        match fuzzer.next_event().await {
            Event::Json(v) if v["type"] == "pong" && v["t0"] == -42.0 => break,
            Event::Json(v) if v["type"] == "error" => {
                let code = v["code"].as_str().unwrap();
                assert!(DOCUMENTED.contains(&code), "undocumented code {code}");
            }
            Event::Json(_) => {}
            Event::Closed(code) => panic!("fuzzed session closed with {code:?}"),
        }
    }
    let errors = fuzzer.seen.iter().filter(|m| m["type"] == "error").count();
    assert!(
        errors > sent / 2,
        "most random frames are invalid: {errors} errors for {sent}"
    );
    // The room still works for everyone.
    fuzzer
        .send(json!({"type": "chat", "text": "after the storm"}))
        .await;
    assert_eq!(
        bystander.expect("chat").await["message"]["text"],
        "after the storm"
    );
    let (status, _) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(status, 200);
}
