//! Joining, the host role, resuming, chat history, presence.

use std::time::Duration;

use serde_json::json;

use crate::util::TestServer;

#[actix_rt::test]
async fn welcome_describes_the_room_and_others_see_the_newcomer() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({"name": "Club"})).await;
    let (mut ann, w1) = srv.join(&room, json!({"name": "  Ann  "})).await;
    assert_eq!(w1["you"]["name"], "Ann");
    assert_eq!(w1["room"]["id"], room);
    assert_eq!(w1["room"]["name"], "Club");
    assert_eq!(w1["room"]["control"], "host");
    assert_eq!(
        w1["host_id"], w1["you"]["id"],
        "first member of a hostless room is host"
    );
    assert!(w1["resume_token"].as_str().unwrap().len() >= 32);
    assert!(w1["server_time"].as_f64().unwrap() > 1.6e12);
    assert_eq!(w1["chat"], json!([]));
    let (_bob, w2) = srv.join(&room, json!({"name": "Bob"})).await;
    assert_eq!(w2["host_id"], w1["you"]["id"]);
    let names: Vec<_> = w2["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("Ann"), json!("Bob")]);
    let joined = ann.expect("joined").await;
    assert_eq!(joined["participant"]["id"], w2["you"]["id"]);
    // Usual values are left out: not host, connected, nothing reported yet.
    let entry = joined["participant"].as_object().unwrap();
    let keys: Vec<_> = entry.keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "name"], "{entry:?}");
}

#[actix_rt::test]
async fn host_role_passes_to_longest_present_member_after_grace_and_token_reclaims_it() {
    let srv = TestServer::with(|c| c.host_grace = Duration::from_millis(400)).await;
    let (room, token) = srv.create_room(json!({})).await;
    let (host, hw) = srv
        .join(&room, json!({"name": "Host", "host_token": token}))
        .await;
    let (mut second, sw) = srv.join(&room, json!({"name": "Second"})).await;
    let (mut third, _) = srv.join(&room, json!({"name": "Third"})).await;
    assert_eq!(sw["host_id"], hw["you"]["id"]);
    let closed_at = second.ping(0.0).await["t2"].as_f64().unwrap();
    host.close().await;
    let change = second.expect("host").await;
    assert_eq!(
        change["host_id"], sw["you"]["id"],
        "longest-present member becomes host"
    );
    let after = second.ping(0.0).await["t2"].as_f64().unwrap();
    assert!(
        after - closed_at >= 400.0,
        "the role was kept for the grace period"
    );
    // Others learn that the host left, then who took over.
    assert_eq!(third.expect("left").await["id"], hw["you"]["id"]);
    assert_eq!(third.expect("host").await["host_id"], sw["you"]["id"]);

    // The creator comes back with the host token and takes the role back.
    let (_back, bw) = srv
        .join(&room, json!({"name": "Host", "host_token": token}))
        .await;
    assert_eq!(bw["host_id"], bw["you"]["id"]);
    assert_eq!(third.expect("host").await["host_id"], bw["you"]["id"]);
    // The new host can control; the former interim host no longer can.
    second.send(json!({"type": "play"})).await;
    assert_eq!(second.expect_error().await, "not_host");
}

#[actix_rt::test]
async fn host_reload_within_grace_keeps_the_role() {
    let srv = TestServer::with(|c| c.host_grace = Duration::from_secs(30)).await;
    let (room, _) = srv.create_room(json!({})).await;
    let (host, hw) = srv.join(&room, json!({"name": "Host"})).await;
    let (mut guest, _) = srv.join(&room, json!({"name": "Guest"})).await;
    let resume = hw["resume_token"].as_str().unwrap().to_owned();
    host.close().await;
    let (mut host, again) = srv
        .join(&room, json!({"name": "Host", "resume_token": resume}))
        .await;
    assert_eq!(again["you"]["id"], hw["you"]["id"]);
    assert_eq!(again["host_id"], hw["you"]["id"]);
    host.send(json!({"type": "pause", "position": 1})).await;
    assert_eq!(guest.expect("playback").await["by"], hw["you"]["id"]);
    assert!(guest
        .seen
        .iter()
        .all(|m| m["type"] != "host" && m["type"] != "left"));
}

#[actix_rt::test]
async fn resume_keeps_identity_without_join_or_leave_noise() {
    // The grace outlasts a room tick, so the resume always lands within it.
    let srv = TestServer::with(|c| c.host_grace = Duration::from_millis(2500)).await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ann, _) = srv.join(&room, json!({"name": "Ann"})).await;
    let (bob, bw) = srv.join(&room, json!({"name": "Bob"})).await;
    ann.expect("joined").await;
    let token = bw["resume_token"].as_str().unwrap().to_owned();
    bob.close().await;
    let (mut bob, again) = srv
        .join(&room, json!({"name": "Bob", "resume_token": token}))
        .await;
    assert_eq!(again["you"]["id"], bw["you"]["id"]);
    assert_eq!(again["participants"].as_array().unwrap().len(), 2);
    // Outlive the grace period, then send a marker: nothing about Bob may precede it.
    let t = bob.ping(0.0).await["t2"].as_f64().unwrap();
    ann.wait_for_server_time(t + 2500.0 + 1200.0).await;
    bob.send(json!({"type": "chat", "text": "still me"})).await;
    let chat = ann.expect("chat").await;
    assert_eq!(chat["message"]["from"]["id"], bw["you"]["id"]);
    let noise: Vec<_> = ann
        .seen
        .iter()
        .filter(|m| m["type"] == "joined" || m["type"] == "left")
        .collect();
    assert_eq!(
        noise.len(),
        1,
        "only Bob's first join was announced: {noise:?}"
    );
    // Presence told Ann about Bob's connection state, never that he left.
    assert!(ann
        .seen
        .iter()
        .filter(|m| m["type"] == "presence")
        .all(|m| m["left"] == json!([])));
}

#[actix_rt::test]
async fn member_who_does_not_return_leaves_after_grace() {
    // Longer than one room tick: a presence (away) always comes before the expiry.
    let srv = TestServer::with(|c| c.host_grace = Duration::from_millis(1500)).await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ann, _) = srv.join(&room, json!({"name": "Ann"})).await;
    let (bob, bw) = srv.join(&room, json!({"name": "Bob"})).await;
    bob.close().await;
    // First presence shows Bob as disconnected (within grace), then he leaves.
    loop {
        let p = ann.expect("presence").await;
        let bob_entry = p["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == bw["you"]["id"])
            .cloned();
        if let Some(entry) = bob_entry {
            assert_eq!(entry["connected"], false);
            break;
        }
    }
    assert_eq!(ann.expect("left").await["id"], bw["you"]["id"]);
    let (_, summary) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(summary["participants"], 1);
}

#[actix_rt::test]
async fn chat_is_broadcast_and_replayed_oldest_first() {
    let srv = TestServer::with(|c| c.chat_history = 3).await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ann, _) = srv.join(&room, json!({"name": "Ann"})).await;
    let (mut bob, _) = srv.join(&room, json!({"name": "Bob"})).await;
    for text in ["one", "two", "three", "four"] {
        ann.send(json!({"type": "chat", "text": format!("  {text} ")}))
            .await;
        let got = bob.expect("chat").await;
        assert_eq!(got["message"]["text"], text);
        assert_eq!(got["message"]["from"]["name"], "Ann");
    }
    let (_cat, welcome) = srv.join(&room, json!({"name": "Cat"})).await;
    let texts: Vec<_> = welcome["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("two"), json!("three"), json!("four")]);
    let ids: Vec<_> = welcome["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert!(welcome["chat"][0]["at"].as_f64().unwrap() > 1.6e12);
}

/// Issue 14, item 12: the history every newcomer's `welcome` replays is bounded in bytes
/// too, whatever `--chat-history` allows.
#[actix_rt::test]
async fn chat_history_is_capped_in_bytes() {
    let srv = TestServer::with(|c| {
        c.chat_history = 100;
        c.chat_history_bytes = 1000;
        c.chat_burst = 100;
    })
    .await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ann, _) = srv.join(&room, json!({"name": "Ann"})).await;
    for i in 0..10 {
        let text = format!("{i} {}", "é".repeat(200)); // 402 bytes
        ann.send(json!({"type": "chat", "text": text})).await;
        ann.expect("chat").await;
    }
    let (_bob, welcome) = srv.join(&room, json!({"name": "Bob"})).await;
    let texts: Vec<&str> = welcome["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 2, "two messages of 402 bytes fit in 1000");
    assert!(
        texts[0].starts_with("8 ") && texts[1].starts_with("9 "),
        "the newest kept"
    );
}

#[actix_rt::test]
async fn transfer_host_hands_the_role_over() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ann, _) = srv.join(&room, json!({"name": "Ann"})).await;
    let (mut bob, bw) = srv.join(&room, json!({"name": "Bob"})).await;
    ann.send(json!({"type": "transfer_host", "to": "missing"}))
        .await;
    assert_eq!(ann.expect_error().await, "not_found");
    ann.send(json!({"type": "transfer_host", "to": bw["you"]["id"]}))
        .await;
    assert_eq!(bob.expect("host").await["host_id"], bw["you"]["id"]);
    bob.send(json!({"type": "seek", "position": 2})).await;
    assert_eq!(ann.expect("playback").await["by"], bw["you"]["id"]);
    ann.send(json!({"type": "play"})).await;
    assert_eq!(ann.expect_error().await, "not_host");
}

#[actix_rt::test]
async fn presence_reports_status_changes_as_deltas() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ann, _) = srv.join(&room, json!({"name": "Ann"})).await;
    let (mut bob, bw) = srv.join(&room, json!({"name": "Bob"})).await;
    bob.send(json!({"type": "status", "rtt_ms": 33.5, "drift_ms": -12, "buffering": true}))
        .await;
    let bob_id = bw["you"]["id"].clone();
    let entry = loop {
        let p = ann.expect("presence").await;
        if let Some(e) = p["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == bob_id && e["rtt_ms"] == 33.5)
        {
            assert_eq!(p["count"], 2);
            break e.clone();
        }
    };
    assert_eq!(entry["drift_ms"], -12.0);
    assert_eq!(entry["buffering"], true);
    assert_eq!(entry["name"], "Bob");
    assert!(entry.get("is_host").is_none(), "not host: left out");
}
