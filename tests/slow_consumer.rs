//! A member that stops reading must neither delay its room nor hold server memory.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::util::{unthrottled, Client, Event, TestServer, PATIENCE};

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
        // Behind for half a second is behind; the kernel gives up on the socket later.
        c.max_lag = Duration::from_millis(500);
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
    // Evicted because its queue stayed behind, not because a timeout finally fired.
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

/// Issue 14, item 2: thirty members each send a burst of chat within their own limits. A
/// member reading normally takes all of it in and keeps its session: a burst that others
/// caused is not a reason to evict.
///
/// One worker thread makes the burst reach the room whole: the senders' sessions all run
/// before the room does, which then delivers every message before the reader's session can
/// take any (the old 128-frame mailbox overflowed here).
#[actix_rt::test]
async fn a_burst_from_many_well_behaved_senders_evicts_nobody() {
    const SENDERS: usize = 30;
    let srv = TestServer::with(|c| {
        c.max_sessions_per_ip = 0;
        c.connects_per_ip_per_minute = 0;
        c.workers = Some(1);
    })
    .await;
    let burst = srv.config().chat_burst as usize;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut reader, _) = srv.join(&room, json!({"name": "Reader"})).await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(srv.join(&room, json!({"name": format!("s{i}")})).await.0);
    }
    let padding = "x".repeat(100);
    for (i, sender) in senders.iter_mut().enumerate() {
        for j in 0..burst {
            sender
                .feed(json!({"type": "chat", "text": format!("{i}/{j} {padding}")}))
                .await;
        }
    }
    for sender in &mut senders {
        sender.flush().await;
    }
    let mut chats = 0;
    while chats < SENDERS * burst {
        match reader.next_event().await {
            Event::Json(v) if v["type"] == "chat" => chats += 1,
            Event::Json(_) => {}
            Event::Closed(code) => panic!("the reader was closed ({code:?}) after {chats} chats"),
        }
    }
    assert_eq!(reader.ping(7.0).await["t0"], 7.0, "still a working session");
    assert_eq!(
        srv.metric("watch_together_evictions_total{reason=\"slow\"}"),
        0.0
    );
    for sender in &mut senders {
        sender.drain_ready();
    }
}

/// Issue 14, item 2: in an "everyone" room, six members seek as fast as their budget allows.
/// A member reading normally keeps its session and ends on the room's final clock; a newer
/// `playback` may replace one it had not taken yet, never the last.
#[actix_rt::test]
async fn a_seek_storm_leaves_readers_on_the_final_clock() {
    const SEEKERS: usize = 6;
    let srv = TestServer::with(|c| {
        c.max_sessions_per_ip = 0;
        c.connects_per_ip_per_minute = 0;
        c.workers = Some(1);
    })
    .await;
    let per_seeker = srv.config().msg_burst as usize - 1; // the join took one token
    let (room, _) = srv.create_room(json!({"control": "everyone"})).await;
    let (mut reader, _) = srv.join(&room, json!({"name": "Reader"})).await;
    let mut seekers = Vec::new();
    for i in 0..SEEKERS {
        seekers.push(srv.join(&room, json!({"name": format!("s{i}")})).await.0);
    }
    for n in 0..per_seeker {
        for seeker in &mut seekers {
            seeker
                .feed(json!({"type": "seek", "position": n as f64}))
                .await;
        }
    }
    for seeker in &mut seekers {
        seeker.flush().await;
    }
    let last_seq = (SEEKERS * per_seeker) as u64;
    let mut seen_seq = 0;
    while seen_seq < last_seq {
        match reader.next_event().await {
            Event::Json(v) if v["type"] == "playback" => {
                let seq = v["playback"]["seq"].as_u64().expect("seq");
                assert!(
                    seq > seen_seq,
                    "playback went back from {seen_seq} to {seq}"
                );
                seen_seq = seq;
            }
            Event::Json(_) => {}
            Event::Closed(code) => panic!("the reader was closed ({code:?}) at seq {seen_seq}"),
        }
    }
    assert_eq!(reader.ping(7.0).await["t0"], 7.0, "still a working session");
    let (_, summary) = srv.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(summary["playback"]["seq"], last_seq);
    assert_eq!(
        srv.metric("watch_together_evictions_total{reason=\"slow\"}"),
        0.0
    );
    for seeker in &mut seekers {
        seeker.drain_ready();
    }
}
