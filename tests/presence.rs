//! Presence as deltas; big rooms batch membership and announce only significant changes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{Client, TestServer};

/// A participant list rebuilt the way a browser does: `welcome`, then every message.
#[derive(Default, Debug)]
struct View {
    /// Entries by id.
    entries: BTreeMap<String, Value>,
    /// Last announced count.
    count: Option<u64>,
}

impl View {
    fn from_welcome(w: &Value) -> Self {
        let mut v = View::default();
        for e in w["participants"].as_array().unwrap() {
            v.entries
                .insert(e["id"].as_str().unwrap().to_owned(), e.clone());
        }
        v
    }

    fn apply(&mut self, m: &Value) {
        match m["type"].as_str().unwrap() {
            "joined" => {
                let e = &m["participant"];
                self.entries
                    .insert(e["id"].as_str().unwrap().to_owned(), e.clone());
            }
            "left" => {
                self.entries.remove(m["id"].as_str().unwrap());
            }
            "presence" => {
                for e in m["participants"].as_array().unwrap() {
                    self.entries
                        .insert(e["id"].as_str().unwrap().to_owned(), e.clone());
                }
                for id in m["left"].as_array().unwrap() {
                    self.entries.remove(id.as_str().unwrap());
                }
                self.count = m["count"].as_u64();
            }
            _ => {}
        }
    }
}

/// Skips messages until a `presence` carries an entry matching `wanted`; returns that presence.
async fn presence_with(client: &mut Client, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let p = client.expect("presence").await;
        if p["participants"].as_array().unwrap().iter().any(&wanted) {
            return p;
        }
    }
}

fn ids(m: &Value) -> Vec<String> {
    m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_rt::test]
async fn small_room_presence_is_a_delta_with_count_and_host() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ann, aw) = srv.join(&room, json!({"name": "Ann"})).await;
    let (mut bob, bw) = srv.join(&room, json!({"name": "Bob"})).await;
    let (_cat, _) = srv.join(&room, json!({"name": "Cat"})).await;
    // Ann's entry changed when she became host; let that delta go out first.
    let ann_id = aw["you"]["id"].as_str().unwrap().to_owned();
    while !ids(&ann.expect("presence").await).contains(&ann_id) {}
    bob.send(json!({"type": "status", "rtt_ms": 20, "drift_ms": 3, "buffering": false}))
        .await;
    let bob_id = bw["you"]["id"].as_str().unwrap().to_owned();
    let p = presence_with(&mut ann, |e| e["id"] == bob_id.as_str()).await;
    assert_eq!(ids(&p), [bob_id], "only the changed entry is sent");
    assert_eq!(p["left"], json!([]));
    assert_eq!(p["count"], 3);
    assert_eq!(p["host_id"], aw["you"]["id"]);
    assert_eq!(
        (&p["buffering_count"], &p["out_of_sync_count"]),
        (&json!(0), &json!(0))
    );
    // In small rooms joins are still announced one by one.
    assert_eq!(ann.seen.iter().filter(|m| m["type"] == "joined").count(), 2);
}

#[actix_rt::test]
async fn big_room_batches_membership_and_drops_insignificant_status() {
    let srv = TestServer::with(|c| {
        c.presence_threshold = 3;
        c.host_grace = Duration::from_millis(1500);
    })
    .await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut ann, _) = srv.join(&room, json!({"name": "Ann"})).await;
    let (mut bob, bw) = srv.join(&room, json!({"name": "Bob"})).await;
    let (mut cat, cw) = srv.join(&room, json!({"name": "Cat"})).await;
    let (_dan, dw) = srv.join(&room, json!({"name": "Dan"})).await; // 4 > 3: big from here
    let (eve, ew) = srv.join(&room, json!({"name": "Eve"})).await;
    let id = |w: &Value| w["you"]["id"].as_str().unwrap().to_owned();

    // Dan and Eve arrive through presence, not as joined broadcasts.
    let mut added = Vec::new();
    while !(added.contains(&id(&dw)) && added.contains(&id(&ew))) {
        let p = ann.expect("presence").await;
        added.extend(ids(&p));
    }
    let joined: Vec<_> = ann
        .seen
        .iter()
        .filter(|m| m["type"] == "joined")
        .map(|m| m["participant"]["name"].clone())
        .collect();
    assert_eq!(joined, [json!("Bob"), json!("Cat")]);

    // Bob's first report is news; a change within the same bands is not.
    bob.send(json!({"type": "status", "rtt_ms": 10, "drift_ms": 5, "buffering": false}))
        .await;
    presence_with(&mut ann, |e| e["id"] == id(&bw) && e["rtt_ms"] == 10.0).await;
    bob.send(json!({"type": "status", "rtt_ms": 12, "drift_ms": 8, "buffering": false}))
        .await;
    bob.ping(0.0).await; // Bob's status is queued at the room before Cat's below.
    cat.send(json!({"type": "status", "rtt_ms": 12, "drift_ms": 0, "buffering": true}))
        .await;
    let p = presence_with(&mut ann, |e| e["id"] == id(&cw) && e["buffering"] == true).await;
    assert_eq!(
        p["buffering_count"], 1,
        "totals travel with the entries: {p}"
    );
    assert_eq!(p["out_of_sync_count"], 0);
    assert!(
        !ann.seen.iter().any(|m| m["type"] == "presence"
            && m["participants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == id(&bw) && e["rtt_ms"] == 12.0)),
        "an insignificant change was broadcast"
    );

    // Eve leaves: after her grace period, her id is batched into presence.left.
    eve.close().await;
    let p = loop {
        let p = ann.expect("presence").await;
        if p["left"].as_array().unwrap().iter().any(|l| *l == id(&ew)) {
            break p;
        }
    };
    assert_eq!(p["count"], 4);
    assert!(!ann.seen.iter().any(|m| m["type"] == "left"));
}

/// Applies `client`'s messages to `view` until it equals `expected` (by id and entry).
async fn converge(client: &mut Client, view: &mut View, expected: &View) {
    let mut applied = 0;
    loop {
        while applied < client.seen.len() {
            view.apply(&client.seen[applied]);
            applied += 1;
        }
        if view.entries == expected.entries {
            return;
        }
        client.next().await;
    }
}

#[actix_rt::test]
async fn welcome_plus_deltas_equals_a_fresh_welcome() {
    for threshold in [50, 2] {
        let srv = TestServer::with(|c| {
            c.presence_threshold = threshold;
            c.host_grace = Duration::from_millis(1500);
        })
        .await;
        let (room, _) = srv.create_room(json!({})).await;
        let (mut watcher, ww) = srv.join(&room, json!({"name": "Watcher"})).await;
        let mut view = View::from_welcome(&ww);
        let mut others = Vec::new();
        for i in 0..6 {
            let (mut c, w) = srv.join(&room, json!({"name": format!("m{i}")})).await;
            c.send(json!({"type": "status", "rtt_ms": 30 * i, "drift_ms": 400 * i, "buffering": i % 2 == 0})).await;
            others.push((c, w));
        }
        // Two leave for good, the host role moves.
        let (gone1, _) = others.remove(0);
        let (gone2, _) = others.remove(0);
        gone1.close().await;
        gone2.close().await;
        let to = others[0].1["you"]["id"].clone();
        watcher
            .send(json!({"type": "transfer_host", "to": to}))
            .await;
        watcher.expect("host").await;
        // Wait for the two departures to be final (grace + a tick), then compare.
        let t = watcher.ping(0.0).await["t2"].as_f64().unwrap();
        watcher.wait_for_server_time(t + 1500.0 + 1100.0).await;
        let (_fresh, fw) = srv.join(&room, json!({"name": "Fresh"})).await;
        let expected = View::from_welcome(&fw);
        assert_eq!(expected.entries.len(), 6);
        converge(&mut watcher, &mut view, &expected).await;
        if threshold == 2 {
            assert_eq!(view.count, Some(6), "count is current in big rooms");
        }
    }
}

#[actix_rt::test]
async fn a_paced_presence_reaches_everyone_before_later_news_of_members() {
    let srv = TestServer::with(|c| c.presence_threshold = 2).await;
    let (room, _) = srv.create_room(json!({})).await;
    let mut members = Vec::new();
    for i in 0..8 {
        members.push(srv.join(&room, json!({"name": format!("m{i}")})).await);
    }
    let newest = members[7].1["you"]["id"].clone();
    // A big room hands its presence out one slice per step (here one member per slice),
    // host first, so the others are still owed it when the host hears it. The host hands
    // its role on at once; the room must give everyone the rest of that presence (which
    // still names the old host) before the `host` message, or their views would end on the
    // wrong host.
    let (mut host, _) = members.remove(0);
    // On a slow machine a tick can fall between two joins; that earlier presence never
    // reaches the members who joined after it, so take the one that counts all eight.
    let presence = loop {
        let p = host.expect("presence").await;
        if p["count"] == 8 {
            break p;
        }
    };
    host.send(json!({"type": "transfer_host", "to": newest}))
        .await;
    for (i, (m, _)) in members.iter_mut().enumerate() {
        loop {
            if m.expect("host").await["host_id"] == newest {
                break;
            }
        }
        let at = m.seen.len() - 1;
        assert!(
            m.seen[..at].contains(&presence),
            "member {i} heard the host change before the presence {presence}: {:?}",
            m.seen
        );
    }
}
