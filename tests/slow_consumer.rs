//! A member that stops reading must neither delay its room nor hold server memory.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::util::{unthrottled, Client, TestServer, PATIENCE};

/// Members in the room: the host, the frozen reader, and the rest reading normally.
const MEMBERS: usize = 50;
/// Chat messages the host sends, paced; far more than the frozen member's buffers hold.
const EVENTS: usize = 1200;
/// Pace of the host: a brisk but human-plausible stream of events.
const PACE: Duration = Duration::from_millis(5);

/// Connects a client whose kernel receive buffer is tiny, joins, then never reads again.
async fn frozen_reader(
    srv: &TestServer,
    room: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    String,
) {
    let addr: std::net::SocketAddr = srv.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(srv.ws_url(room), stream)
        .await
        .expect("handshake");
    ws.send(Message::text(
        json!({"type": "join", "name": "Frozen"}).to_string(),
    ))
    .await
    .unwrap();
    let id = loop {
        let msg = ws.next().await.expect("frame").expect("ok");
        let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if v["type"] == "welcome" {
            break v["you"]["id"].as_str().unwrap().to_owned();
        }
    };
    (ws, id)
}

#[actix_rt::test]
async fn frozen_reader_is_evicted_without_delaying_the_room() {
    let srv = TestServer::with(|c| {
        c.max_sessions_per_ip = 0;
        c.connects_per_ip_per_minute = 0;
        unthrottled(c);
        c.tcp_user_timeout = Duration::from_secs(2);
    })
    .await;
    let (room, token) = srv.create_room(json!({})).await;
    let (mut host, _) = srv
        .join(&room, json!({"name": "Host", "host_token": token}))
        .await;
    let (frozen, frozen_id) = frozen_reader(&srv, &room).await;
    let mut readers: Vec<Client> = Vec::new();
    for i in 0..MEMBERS - 2 {
        readers.push(
            srv.join(&room, json!({"name": format!("viewer {i}")}))
                .await
                .0,
        );
    }

    // Each reader records when every chat arrives and when it learns the frozen member left.
    let sent_at: Rc<RefCell<Vec<Instant>>> = Rc::new(RefCell::new(Vec::new()));
    let mut tasks = Vec::new();
    for mut reader in readers {
        let sent_at = Rc::clone(&sent_at);
        let frozen_id = frozen_id.clone();
        tasks.push(actix_rt::spawn(async move {
            let mut latencies = Vec::new();
            let mut left_at = None;
            while latencies.len() < EVENTS || left_at.is_none() {
                let v = reader.next().await;
                match v["type"].as_str() {
                    Some("chat") => {
                        let seq: usize =
                            v["message"]["text"].as_str().unwrap()[..4].parse().unwrap();
                        latencies.push(sent_at.borrow()[seq].elapsed());
                    }
                    Some("left") if v["id"] == frozen_id.as_str() => left_at = Some(Instant::now()),
                    _ => {}
                }
            }
            (latencies, left_at.unwrap())
        }));
    }

    let padding = "x".repeat(480);
    let start = Instant::now();
    let mut pace = tokio::time::interval(PACE);
    for seq in 0..EVENTS {
        pace.tick().await;
        sent_at.borrow_mut().push(Instant::now());
        host.send(json!({"type": "chat", "text": format!("{seq:04} {padding}")}))
            .await;
        host.drain_ready();
    }
    let mut all = Vec::new();
    let mut evicted_after = Duration::ZERO;
    for task in tasks {
        let (latencies, left_at) = task.await.unwrap();
        all.extend(latencies);
        evicted_after = evicted_after.max(left_at - start);
    }
    all.sort();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize];
    println!(
        "slow consumer: {} deliveries to {} readers; latency p50 {:?} p99 {:?} max {:?}; \
         frozen member gone from the room {:?} after the first event",
        all.len(),
        MEMBERS - 2,
        pct(0.5),
        pct(0.99),
        all[all.len() - 1],
        evicted_after
    );
    // Generous bounds: a room blocked by its frozen member would stall for the whole
    // eviction timeout (20 s), not fractions of a second.
    assert!(pct(0.99) < Duration::from_secs(1), "p99 {:?}", pct(0.99));
    assert!(evicted_after < PATIENCE, "evicted after {evicted_after:?}");
    // Evicted because its bounded queue overflowed, not because a timeout finally fired.
    assert_eq!(
        srv.metric("watch_together_evictions_total{reason=\"slow\"}"),
        1.0
    );

    // The frozen session itself is dropped once the kernel gives up on the stalled socket
    // (TCP_USER_TIMEOUT, 2 s here), freeing its memory.
    srv.wait_until("the frozen session to be dropped", |s| {
        s.metric("watch_together_sessions") <= (MEMBERS - 1) as f64
    })
    .await;
    let (_, summary) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(summary["participants"], MEMBERS - 1);
    drop(frozen);
}

#[actix_rt::test]
async fn an_evicted_reader_that_catches_up_is_told_it_was_evicted() {
    let srv = TestServer::with(|c| {
        unthrottled(c);
        c.heartbeat_interval = Duration::from_millis(300);
        c.client_timeout = Duration::from_secs(60);
        c.tcp_user_timeout = Duration::ZERO; // the socket survives: the client will catch up
    })
    .await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut host, _) = srv.join(&room, json!({"name": "Host"})).await;
    let (mut frozen, frozen_id) = frozen_reader(&srv, &room).await;
    let padding = "x".repeat(480);
    let mut seq = 0;
    // Keep the host talking until the room gives up on the frozen member.
    while !host
        .seen
        .iter()
        .any(|m| m["type"] == "left" && m["id"] == frozen_id.as_str())
    {
        for _ in 0..20 {
            host.send(json!({"type": "chat", "text": format!("{seq:04} {padding}")}))
                .await;
            seq += 1;
        }
        host.ping(0.0).await;
    }
    // Now it reads again: past the backlog comes a close saying why.
    let code = loop {
        match tokio::time::timeout(PATIENCE, frozen.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => {}
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, 4000);
}
