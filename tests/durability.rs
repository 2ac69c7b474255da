//! Durable rooms (issue 11): the real binary is killed (SIGKILL) or stopped (SIGTERM)
//! mid-playback and mid-chat, and started again on the same store. Every room answers, every
//! member resumes as itself with the host in place and no join/leave noise, the clock is
//! where it should be, and every chat message whose sender saw its echo is there. Then: a
//! room left empty past `--room-ttl` is gone, and a store that fails degrades instead of
//! taking rooms down.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::redis_server::{Persistence, RedisServer};
use crate::server_process::{ServerProcess, UNLIMITED};
use crate::util::{position_at, Client, Event, TestServer};

const ROOMS: usize = 20;
const MEMBERS: usize = 5;
const CHATS: usize = 50;

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wt-durability-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One member as the test knows it: enough to resume it after the restart.
struct Member {
    /// Index of its room.
    room: usize,
    /// Its participant id.
    id: String,
    /// Its resume token.
    token: String,
    /// Its name.
    name: String,
}

/// What the test knows of a room before the restart.
struct Room {
    /// The room's id.
    id: String,
    /// The host's participant id.
    host: String,
    /// The last `playback` seen.
    playback: Value,
}

/// Server flags for these tests: limits out of the way, a grace period longer than the
/// restart, the whole chat kept.
fn flags(store: &[String]) -> Vec<String> {
    let mut flags: Vec<String> = UNLIMITED.iter().map(|s| s.to_string()).collect();
    for f in [
        "--host-grace",
        "60s",
        "--chat-history",
        "300",
        "--chat-rate",
        "10000",
        "--chat-burst",
        "10000",
        "--msg-rate",
        "10000",
        "--msg-burst",
        "10000",
        "--shutdown-timeout",
        "5s",
    ] {
        flags.push(f.into());
    }
    flags.extend(store.iter().cloned());
    flags
}

fn start(flags: &[String], log: &Path) -> ServerProcess {
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    ServerProcess::start(&args, log)
}

/// Fills `ROOMS` rooms with `MEMBERS` members each, starts playback in each, then has every
/// member send `CHATS` messages and stops the server with `signal` once half of them were
/// echoed. Returns the rooms, the members and the texts echoed to their senders before the
/// stop; the server has exited.
async fn load_and_stop(
    server: ServerProcess,
    signal: &str,
) -> (Vec<Room>, Vec<Member>, BTreeSet<String>) {
    let mut rooms = Vec::new();
    let mut members = Vec::new();
    let mut clients: Vec<Client> = Vec::new();
    for r in 0..ROOMS {
        let (id, token) = server
            .create_room(json!({"name": format!("room {r}")}))
            .await;
        let mut host = None;
        for m in 0..MEMBERS {
            let name = format!("r{r}m{m}");
            let join = if m == 0 {
                json!({"name": name, "host_token": token})
            } else {
                json!({"name": name})
            };
            let (client, welcome) = server.join(&id, join).await;
            let me = welcome["you"]["id"].as_str().unwrap().to_owned();
            host.get_or_insert_with(|| me.clone());
            members.push(Member {
                room: r,
                id: me,
                token: welcome["resume_token"].as_str().unwrap().to_owned(),
                name,
            });
            clients.push(client);
        }
        let host_client = clients.len() - MEMBERS;
        let c = &mut clients[host_client];
        c.send(json!({"type": "load", "video": {"kind": "url", "url": "/media/a.mp4"}}))
            .await;
        c.expect("playback").await;
        c.send(json!({"type": "play", "position": 0})).await;
        let playback = c.expect("playback").await["playback"].clone();
        assert_eq!(playback["paused"], false);
        rooms.push(Room {
            id,
            host: host.unwrap(),
            playback,
        });
    }

    // Every member chats, one message at a time: each waits for the echo of its message
    // before it sends the next, so when the server is stopped (as soon as half of all
    // messages were echoed) about one message per member is in flight.
    let echoed: Rc<RefCell<BTreeSet<String>>> = Rc::new(RefCell::new(BTreeSet::new()));
    let count = Rc::new(Cell::new(0usize));
    let half = Rc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for (member, mut client) in members.iter().zip(clients) {
        let (echoed, count, half) = (Rc::clone(&echoed), Rc::clone(&count), Rc::clone(&half));
        let name = member.name.clone();
        tasks.push(actix_rt::spawn(async move {
            for n in 0..CHATS {
                let text = format!("{name} says {n}");
                client.send(json!({"type": "chat", "text": text})).await;
                loop {
                    match client.next_event().await {
                        Event::Json(m) if m["type"] == "chat" && m["message"]["text"] == text => {
                            echoed.borrow_mut().insert(text);
                            count.set(count.get() + 1);
                            if count.get() == ROOMS * MEMBERS * CHATS / 2 {
                                half.notify_one();
                            }
                            break;
                        }
                        Event::Json(_) => {}
                        Event::Closed(_) => return,
                    }
                }
            }
            // Read on until the server goes, so its socket never backs up.
            while let Event::Json(_) = client.next_event().await {}
        }));
    }
    half.notified().await;
    server.signal(signal);
    for task in tasks {
        task.await.expect("member task");
    }
    server.exited().await;
    let echoed = echoed.take();
    assert!(
        (ROOMS * MEMBERS * CHATS / 2..ROOMS * MEMBERS * CHATS).contains(&echoed.len()),
        "stopped mid-chat: {} of {} echoed",
        echoed.len(),
        ROOMS * MEMBERS * CHATS
    );
    (rooms, members, echoed)
}

/// Starts the server again on the same store and checks everything survived.
async fn check_after_restart(
    server: &ServerProcess,
    rooms: &[Room],
    members: &[Member],
    echoed: &BTreeSet<String>,
) {
    // Before anyone is back: every room answers, with everyone counted (within grace).
    for room in rooms {
        let (status, summary) = server.get(&format!("/api/rooms/{}", room.id)).await;
        assert_eq!(
            status,
            200,
            "room {} after the restart: {summary}\n{}",
            room.id,
            server.logs()
        );
        assert_eq!(summary["participants"], MEMBERS);
        assert_eq!(summary["host"]["id"], room.host.as_str());
    }
    let mut stored = BTreeSet::new();
    let mut first_room_highest = 0;
    let mut worst_ms: f64 = 0.0;
    let mut clients = Vec::new();
    for member in members {
        let room = &rooms[member.room];
        let (client, welcome) = server
            .join(
                &room.id,
                json!({"name": member.name, "resume_token": member.token}),
            )
            .await;
        assert_eq!(welcome["you"]["id"], member.id.as_str(), "same identity");
        assert_eq!(welcome["host_id"], room.host.as_str(), "same host");
        assert_eq!(welcome["resume_token"], member.token.as_str());
        // The live position, by the welcome and by the clock from before the stop.
        let t = welcome["server_time"].as_f64().unwrap();
        let error_ms =
            (position_at(&welcome["playback"], t) - position_at(&room.playback, t)).abs() * 1000.0;
        worst_ms = worst_ms.max(error_ms);
        assert!(
            error_ms <= 100.0,
            "position off by {error_ms:.1} ms: {}",
            welcome["playback"]
        );
        for message in welcome["chat"].as_array().unwrap() {
            stored.insert(message["text"].as_str().unwrap().to_owned());
            if member.room == 0 {
                first_room_highest = first_room_highest.max(message["id"].as_u64().unwrap());
            }
        }
        clients.push(client);
    }
    let lost: Vec<&String> = echoed.difference(&stored).collect();
    println!(
        "durability: {} of {} echoed messages replayed after the restart ({} stored in all), \
         worst clock error {worst_ms:.2} ms",
        echoed.len() - lost.len(),
        echoed.len(),
        stored.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost: {lost:?}",
        lost.len()
    );
    // Chat ids keep counting: a new message gets an id above every stored one.
    let first = &mut clients[0];
    first.send(json!({"type": "chat", "text": "after"})).await;
    let after = first.expect("chat").await;
    assert!(after["message"]["id"].as_u64().unwrap() > first_room_highest);
    // Nobody saw anyone join or leave: everyone came back as themselves.
    for c in &mut clients {
        c.drain_ready();
        assert!(
            !c.seen
                .iter()
                .any(|m| m["type"] == "joined" || m["type"] == "left"),
            "join/leave noise after the restart"
        );
    }
}

async fn restart_loses_nothing(name: &str, store: Vec<String>, signal: &str) {
    let dir = temp_dir(name);
    let flags = flags(&store);
    let server = start(&flags, &dir.join("first.log"));
    let (rooms, members, echoed) = load_and_stop(server, signal).await;
    let server = start(&flags, &dir.join("second.log"));
    check_after_restart(&server, &rooms, &members, &echoed).await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn sqlite_rooms_survive_sigkill() {
    let data = temp_dir("sqlite-kill-data");
    restart_loses_nothing(
        "sqlite-kill",
        vec!["--data-dir".into(), data.display().to_string()],
        "KILL",
    )
    .await;
    let _ = std::fs::remove_dir_all(&data);
}

#[actix_rt::test]
async fn sqlite_rooms_survive_sigterm() {
    let data = temp_dir("sqlite-term-data");
    restart_loses_nothing(
        "sqlite-term",
        vec!["--data-dir".into(), data.display().to_string()],
        "TERM",
    )
    .await;
    let _ = std::fs::remove_dir_all(&data);
}

#[actix_rt::test]
async fn redis_rooms_survive_sigkill() {
    let dir = temp_dir("redis-kill-redis");
    let redis = RedisServer::start(&dir, Persistence::AofEverySec);
    restart_loses_nothing(
        "redis-kill",
        vec!["--redis-url".into(), redis.url()],
        "KILL",
    )
    .await;
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_room_empty_past_its_ttl_is_gone_after_a_restart() {
    let dir = temp_dir("ttl");
    let data = dir.join("data").display().to_string();
    let server = ServerProcess::start(
        &[
            "--data-dir",
            &data,
            "--room-ttl",
            "3s",
            "--host-grace",
            "100ms",
        ],
        &dir.join("first.log"),
    );
    let (kept, _) = server.create_room(json!({})).await;
    let (gone, _) = server.create_room(json!({})).await;
    let (viewer, _) = server.join(&gone, json!({"name": "Viewer"})).await;
    let (mut stays, _) = server.join(&kept, json!({"name": "Stays"})).await;
    viewer.close().await;
    // The viewer's grace ends and the room is empty: its record is written with the expiry.
    let emptied = loop {
        let (_, summary) = server.get(&format!("/api/rooms/{gone}")).await;
        if summary["participants"] == 0 {
            break stays.ping(0.0).await["t2"].as_f64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Past its TTL, and then stopped; the occupied room's record was written at the stop,
    // so it has its 3 s still ahead.
    stays.wait_for_server_time(emptied + 3100.0).await;
    server.signal("TERM");
    server.exited().await;
    let server = ServerProcess::start(
        &["--data-dir", &data, "--host-grace", "60s"],
        &dir.join("second.log"),
    );
    assert_eq!(server.get(&format!("/api/rooms/{gone}")).await.0, 404);
    assert_eq!(server.get(&format!("/api/rooms/{kept}")).await.0, 200);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `/api/health` until its status is `status`; returns the health then.
async fn wait_for_health(srv: &TestServer, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + crate::util::PATIENCE;
    loop {
        let (_, health) = srv.get("/api/health").await;
        if health["status"] == status {
            return health;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never became {status}: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_failing_store_degrades_and_rooms_keep_working() {
    let dir = temp_dir("degraded");
    let srv = TestServer::with(|c| {
        c.ephemeral = false;
        c.data_dir = dir.clone();
    })
    .await;
    let (room, token) = srv.create_room(json!({})).await;
    let (mut host, _) = srv
        .join(&room, json!({"name": "Host", "host_token": token}))
        .await;
    assert_eq!(srv.get("/api/health").await.1["status"], "ok");
    // Another process holds the database's write lock: every commit now fails.
    let db = rusqlite::Connection::open(dir.join("watch-together.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    host.send(json!({"type": "chat", "text": "while the disk is stuck"}))
        .await;
    // The room still answers: the message is broadcast (its write is retried).
    assert_eq!(
        host.expect("chat").await["message"]["text"],
        "while the disk is stuck"
    );
    host.send(json!({"type": "play", "position": 3})).await;
    assert_eq!(host.expect("playback").await["playback"]["position"], 3.0);
    let health = wait_for_health(&srv, "degraded").await;
    assert!(
        health["reason"]
            .as_str()
            .is_some_and(|r| r.contains("locked")),
        "{health}"
    );
    assert!(srv.metric("watch_together_store_degraded") == 1.0);
    // The lock goes: the retried writes land and the store is healthy again.
    db.execute_batch("COMMIT").unwrap();
    wait_for_health(&srv, "ok").await;
    srv.state.rooms.store().flush(Duration::from_secs(10)).await;
    let stored: String = db
        .query_row(
            "SELECT count(*) FROM chat WHERE room = ?1",
            [&room],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n.to_string())
        .unwrap();
    assert_eq!(stored, "1", "the chat written while degraded landed");
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
