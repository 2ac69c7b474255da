//! The durable store against real backends: a SQLite file in a temporary directory, and a
//! `redis-server` each test starts on a free loopback port (tests/redis_server.rs).
//!
//! Nothing here waits on the clock. To hold a commit back on purpose, a test takes the
//! backend's own write lock from outside: an exclusive SQLite transaction on a second
//! connection, or Redis's `CLIENT PAUSE … WRITE`. Everything else waits for an event (an
//! ack, a flush, a health change) with [`PATIENCE`] only as the bound that turns a hang into
//! a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use watch_together::ids::RoomId;
use watch_together::store::{
    sqlite, Store, StoreError, StoreHealth, StoreMetrics, StoreOptions, WriteOp,
};

use crate::redis_server::{Persistence, RedisServer};
use crate::util::PATIENCE;

/// A directory of this test's own, removed when dropped.
pub struct TempDir(
    /// Unique to this process and test: tests run in parallel.
    PathBuf,
);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wt-store-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Epoch ms an hour from now: rooms written by the tests do not expire during them.
fn in_an_hour() -> u64 {
    watch_together::clock::now_ms() as u64 + 3_600_000
}

fn put(room: RoomId, v: u64) -> WriteOp {
    WriteOp::PutRoom {
        room,
        record: json!({ "v": v }).to_string().into_bytes(),
        expires_at_ms: in_an_hour(),
    }
}

fn chat(room: RoomId, id: u64, keep: usize) -> WriteOp {
    WriteOp::AppendChat {
        room,
        id,
        message: json!({ "id": id, "text": format!("message {id}") })
            .to_string()
            .into_bytes(),
        keep,
    }
}

/// The `v` of a stored record.
fn version(record: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(record).expect("record is JSON");
    v["v"].as_u64().expect("v")
}

/// The ids of stored chat messages, in the order stored.
fn ids(chat: &[Vec<u8>]) -> Vec<u64> {
    chat.iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(m).expect("message is JSON");
            v["id"].as_u64().expect("id")
        })
        .collect()
}

type AckRx = oneshot::Receiver<Result<(), StoreError>>;

/// Writes `op` with an ack; returns the ack's receiver.
fn write_acked(store: &Store, op: WriteOp) -> AckRx {
    let (tx, rx) = oneshot::channel();
    store.write(op, Some(tx));
    rx
}

/// The ack's answer, once it comes.
async fn answer(rx: AckRx) -> Result<(), StoreError> {
    tokio::time::timeout(PATIENCE, rx)
        .await
        .expect("an ack in time")
        .expect("the ack was answered")
}

/// Waits until `condition` holds, checking every 10 ms.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Options for tests: retries come quickly, so recovery is seen soon.
fn quick_retries() -> StoreOptions {
    StoreOptions {
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(200),
        ..StoreOptions::default()
    }
}

/// Options for tests that hold a commit back: a batch gathers all that is queued, however
/// long that takes, and a held lock never times the commit out.
fn patient() -> StoreOptions {
    StoreOptions {
        batch_window: PATIENCE,
        sqlite_busy_timeout: PATIENCE,
        redis_timeout: PATIENCE,
        ..quick_retries()
    }
}

fn sqlite_store(dir: &Path, options: StoreOptions) -> (Store, Arc<StoreMetrics>) {
    let metrics = Arc::new(StoreMetrics::new());
    let store = Store::sqlite_with(dir, metrics.clone(), options).expect("SQLite store opens");
    (store, metrics)
}

async fn redis_store(url: &str, options: StoreOptions) -> (Store, Arc<StoreMetrics>) {
    let metrics = Arc::new(StoreMetrics::new());
    let store = Store::redis_with(url, metrics.clone(), options)
        .await
        .expect("Redis store connects");
    (store, metrics)
}

/// A second, independent SQLite connection to the store's file, as another process would
/// have.
fn raw_sqlite(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join(sqlite::FILE_NAME)).expect("open the file");
    conn.busy_timeout(PATIENCE).expect("busy timeout");
    conn
}

/// Takes SQLite's write lock on a second connection: the store's commits wait (or fail,
/// past their busy timeout) until it is dropped.
fn sqlite_lock(dir: &Path) -> rusqlite::Connection {
    let conn = raw_sqlite(dir);
    conn.execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");
    conn
}

/// Chat messages of `room` another connection sees committed.
fn sqlite_chat_rows(dir: &Path, room: RoomId) -> i64 {
    raw_sqlite(dir)
        .query_row(
            "SELECT count(*) FROM chat WHERE room = ?1",
            [room.to_string()],
            |r| r.get(0),
        )
        .expect("count")
}

/// A separate Redis connection, as another client would have.
async fn raw_redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Sends one command on `conn`.
async fn redis_cmd<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await.expect("redis command")
}

// ---- Scenarios run against both backends ------------------------------------------------

/// Put, append, load, list, a later put winning, delete.
async fn round_trip(store: &Store) {
    let (a, b, nobody) = (RoomId::new(), RoomId::new(), RoomId::new());
    store.write(put(a, 1), None);
    store.write(put(a, 2), None);
    for id in 1..=3 {
        store.write(chat(a, id, 50), None);
    }
    store.write(put(b, 7), None);
    answer(write_acked(store, chat(b, 1, 50)))
        .await
        .expect("committed");

    let room_a = store.load(a).await.expect("load").expect("a is stored");
    assert_eq!(version(&room_a.record), 2, "the later put wins");
    assert_eq!(ids(&room_a.chat), [1, 2, 3]);
    let room_b = store.load(b).await.expect("load").expect("b is stored");
    assert_eq!((version(&room_b.record), ids(&room_b.chat)), (7, vec![1]));
    assert_eq!(store.load(nobody).await.expect("load"), None);
    let mut listed = store.list().await.expect("list");
    listed.sort_by_key(|r| r.to_string());
    let mut expected = vec![a, b];
    expected.sort_by_key(|r| r.to_string());
    assert_eq!(listed, expected);

    answer(write_acked(store, WriteOp::DeleteRoom { room: a }))
        .await
        .expect("committed");
    assert_eq!(store.load(a).await.expect("load"), None);
    assert_eq!(store.list().await.expect("list"), [b]);
}

/// Chat keeps the newest `keep`, whether the appends come one commit each or in one burst.
async fn chat_is_trimmed(store: &Store) {
    let room = RoomId::new();
    store.write(put(room, 1), None);
    for id in 1..=30 {
        answer(write_acked(store, chat(room, id, 10)))
            .await
            .expect("committed");
    }
    let stored = store.load(room).await.expect("load").expect("stored");
    assert_eq!(ids(&stored.chat), (21..=30).collect::<Vec<_>>());

    for id in 31..=200 {
        store.write(chat(room, id, 10), None);
    }
    assert_eq!(store.flush(PATIENCE).await, 0);
    let stored = store.load(room).await.expect("load").expect("stored");
    assert_eq!(ids(&stored.chat), (191..=200).collect::<Vec<_>>());
}

/// Thousands of interleaved writes to a few rooms, with batch boundaries anywhere: each
/// room ends exactly as the writes made one after the other would leave it.
async fn order_per_room(store: &Store) {
    const KEEP: usize = 20;
    let rooms: Vec<RoomId> = (0..4).map(|_| RoomId::new()).collect();
    // What each room should hold: its record's version and its chat ids.
    let mut model: HashMap<RoomId, (Option<u64>, Vec<u64>)> = HashMap::new();
    // Each room's last chat id: a room's ids are consecutive, as `room::chat` makes them.
    let mut last_id: HashMap<RoomId, u64> = HashMap::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..3000u64 {
        let r = next();
        let room = rooms[(r % 4) as usize];
        let entry = model.entry(room).or_default();
        let op = match (r >> 8) % 100 {
            0 => {
                *entry = (None, Vec::new());
                WriteOp::DeleteRoom { room }
            }
            1..=40 => {
                entry.0 = Some(i);
                put(room, i)
            }
            _ => {
                let id = last_id.entry(room).or_default();
                *id += 1;
                entry.1.push(*id);
                if entry.1.len() > KEEP {
                    entry.1.remove(0);
                }
                chat(room, *id, KEEP)
            }
        };
        store.write(op, None);
        if (r >> 20) % 250 == 0 {
            // A batch boundary here.
            assert_eq!(store.flush(PATIENCE).await, 0);
        }
    }
    assert_eq!(store.flush(PATIENCE).await, 0);
    for room in &rooms {
        let loaded = store.load(*room).await.expect("load");
        match model.get(room) {
            Some((Some(v), chat)) => {
                let loaded = loaded.expect("room stored");
                assert_eq!(version(&loaded.record), *v);
                assert_eq!(&ids(&loaded.chat), chat);
            }
            _ => assert_eq!(loaded, None, "room deleted and never put again"),
        }
    }
}

// ---- Memory ------------------------------------------------------------------------------

#[actix_rt::test]
async fn memory_store_acknowledges_at_once_and_finds_nothing() {
    let store = Store::memory();
    let mut ack = write_acked(&store, put(RoomId::new(), 1));
    assert!(matches!(ack.try_recv(), Ok(Ok(()))));
    assert_eq!(store.load(RoomId::new()).await.expect("load"), None);
    assert!(store.list().await.expect("list").is_empty());
    assert_eq!(store.flush(Duration::ZERO).await, 0);
    assert_eq!(store.health(), StoreHealth::Ok);
    assert_eq!(store.kind(), "memory");
}

// ---- SQLite ------------------------------------------------------------------------------

#[actix_rt::test]
async fn sqlite_round_trip() {
    let dir = TempDir::new("round-trip");
    let (store, _) = sqlite_store(dir.path(), quick_retries());
    assert_eq!(store.kind(), "sqlite");
    round_trip(&store).await;
}

#[actix_rt::test]
async fn sqlite_chat_is_trimmed_to_keep() {
    let dir = TempDir::new("trim");
    let (store, _) = sqlite_store(dir.path(), quick_retries());
    chat_is_trimmed(&store).await;
}

#[actix_rt::test]
async fn sqlite_keeps_order_per_room_across_interleaved_writes() {
    let dir = TempDir::new("order");
    let (store, _) = sqlite_store(dir.path(), quick_retries());
    order_per_room(&store).await;
}

#[actix_rt::test]
async fn sqlite_ack_waits_for_the_commit() {
    let dir = TempDir::new("ack");
    let (store, _) = sqlite_store(dir.path(), patient());
    let room = RoomId::new();
    let lock = sqlite_lock(dir.path());
    let mut ack = write_acked(&store, chat(room, 1, 10));
    // The commit cannot happen while the lock is held: the write stays pending, unanswered.
    assert_eq!(store.flush(Duration::from_millis(50)).await, 1);
    assert!(matches!(
        ack.try_recv(),
        Err(oneshot::error::TryRecvError::Empty)
    ));
    assert_eq!(sqlite_chat_rows(dir.path(), room), 0);
    drop(lock);
    answer(ack).await.expect("committed");
    // Answered means committed: another connection sees it.
    assert_eq!(sqlite_chat_rows(dir.path(), room), 1);
}

#[actix_rt::test]
async fn sqlite_burst_of_500_chats_lands_in_two_commits() {
    let dir = TempDir::new("burst");
    let (store, metrics) = sqlite_store(dir.path(), patient());
    let room = RoomId::new();
    // Held until all 500 are queued: the writer can take at most its first batch before.
    let lock = sqlite_lock(dir.path());
    let acks: Vec<AckRx> = (1..=500)
        .map(|id| write_acked(&store, chat(room, id, 1000)))
        .collect();
    drop(lock);
    for ack in acks {
        answer(ack).await.expect("committed");
    }
    assert!(metrics.commits() <= 2, "{} commits", metrics.commits());
    assert_eq!(metrics.committed_writes(), 500);
    assert_eq!(sqlite_chat_rows(dir.path(), room), 500);
    assert_eq!(store.pending(), 0);
}

#[actix_rt::test]
async fn sqlite_write_behind_records_wait_for_company_and_an_ack_takes_them_along() {
    let dir = TempDir::new("company");
    // A window longer than the test: only an awaited write can end the batch.
    let (store, metrics) = sqlite_store(dir.path(), patient());
    let (a, b) = (RoomId::new(), RoomId::new());
    store.write(put(a, 1), None);
    // A read goes through the same channel, after the write: the writer has the record in
    // hand by then, and nobody waits for it, so it is still uncommitted.
    assert!(store.load(a).await.expect("read").is_none());
    assert_eq!(metrics.commits(), 0);
    answer(write_acked(&store, put(b, 1)))
        .await
        .expect("committed");
    assert_eq!(metrics.commits(), 1, "both records in one transaction");
    assert_eq!(metrics.committed_writes(), 2);
    assert!(store.load(a).await.expect("read").is_some());
}

#[actix_rt::test]
async fn sqlite_log_is_checkpointed_into_the_file_outside_the_commits() {
    let dir = TempDir::new("checkpoint");
    let (store, _) = sqlite_store(dir.path(), quick_retries());
    let room = RoomId::new();
    let file = dir.path().join(sqlite::FILE_NAME);
    let size = || std::fs::metadata(&file).map_or(0, |m| m.len());
    let empty = size();
    // A burst lands in a commit or two: a few dozen pages of log, far below the 1,000 at
    // which SQLite would checkpoint by itself. Only the checkpointer copies them over.
    for id in 1..=2000 {
        store.write(chat(room, id, 10_000), None);
    }
    assert_eq!(store.flush(PATIENCE).await, 0);
    eventually("the chat copied into the database file", || {
        size() > empty + 100 * 1024
    })
    .await;
    assert_eq!(sqlite_chat_rows(dir.path(), room), 2000);
}

#[actix_rt::test]
async fn sqlite_flush_waits_for_every_queued_write() {
    let dir = TempDir::new("flush");
    let (store, _) = sqlite_store(dir.path(), patient());
    let room = RoomId::new();
    let lock = sqlite_lock(dir.path());
    for id in 1..=100 {
        store.write(chat(room, id, 1000), None);
    }
    assert_eq!(store.flush(Duration::from_millis(20)).await, 100);
    drop(lock);
    assert_eq!(store.flush(PATIENCE).await, 0);
    assert_eq!(sqlite_chat_rows(dir.path(), room), 100);
}

#[actix_rt::test]
async fn sqlite_reopened_file_has_everything_committed() {
    let dir = TempDir::new("reopen");
    let (a, b) = (RoomId::new(), RoomId::new());
    {
        let (store, _) = sqlite_store(dir.path(), quick_retries());
        store.write(put(a, 3), None);
        store.write(put(b, 4), None);
        for id in 1..=5 {
            store.write(chat(a, id, 3), None);
        }
        assert_eq!(store.flush(PATIENCE).await, 0);
    }
    let (store, _) = sqlite_store(dir.path(), quick_retries());
    let mut listed = store.list().await.expect("list");
    listed.sort_by_key(|r| r.to_string());
    let mut expected = vec![a, b];
    expected.sort_by_key(|r| r.to_string());
    assert_eq!(listed, expected);
    let room_a = store.load(a).await.expect("load").expect("stored");
    assert_eq!(
        (version(&room_a.record), ids(&room_a.chat)),
        (3, vec![3, 4, 5])
    );
}

/// Run by `sqlite_process_crash_loses_nothing_acknowledged` in a child process: writes,
/// waits for every ack, says so, and aborts without any shutdown.
#[actix_rt::test]
#[ignore = "a child process of sqlite_process_crash_loses_nothing_acknowledged"]
async fn sqlite_crash_child() {
    use std::io::Write;
    let Ok(dir) = std::env::var("WT_STORE_CRASH_DIR") else {
        return;
    };
    let room: RoomId = std::env::var("WT_STORE_CRASH_ROOM")
        .expect("room")
        .parse()
        .expect("room id");
    let (store, _) = sqlite_store(Path::new(&dir), quick_retries());
    store.write(put(room, 9), None);
    let acks: Vec<AckRx> = (1..=300)
        .map(|id| write_acked(&store, chat(room, id, 1000)))
        .collect();
    for ack in acks {
        answer(ack).await.expect("committed");
    }
    let mut out = std::io::stdout();
    // On a line of its own: libtest has printed the test's name without a newline.
    writeln!(out, "\nWT-STORE-ACKED").expect("stdout");
    out.flush().expect("stdout");
    std::process::abort();
}

#[actix_rt::test]
async fn sqlite_process_crash_loses_nothing_acknowledged() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("crash");
    let room = RoomId::new();
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["store::sqlite_crash_child", "--exact", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env("WT_STORE_CRASH_DIR", dir.path())
        .env("WT_STORE_CRASH_ROOM", room.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the child");
    let stdout = child.stdout.take().expect("stdout");
    let acked = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "WT-STORE-ACKED");
    let status = child.wait().expect("child exits");
    assert!(acked, "the child never saw its acks ({status})");
    assert!(!status.success(), "the child should have aborted");

    let (store, _) = sqlite_store(dir.path(), quick_retries());
    let stored = store.load(room).await.expect("load").expect("stored");
    assert_eq!(version(&stored.record), 9);
    assert_eq!(ids(&stored.chat), (1..=300).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn sqlite_locked_database_degrades_then_recovers() {
    // Tests run as root here, which ignores a read-only directory or file mode, so the
    // failure is the other common one: another process holding the write lock.
    let dir = TempDir::new("degraded");
    let options = StoreOptions {
        sqlite_busy_timeout: Duration::from_millis(20),
        ..quick_retries()
    };
    let (store, metrics) = sqlite_store(dir.path(), options);
    let room = RoomId::new();
    answer(write_acked(&store, put(room, 1)))
        .await
        .expect("committed");

    let lock = sqlite_lock(dir.path());
    let first = answer(write_acked(&store, chat(room, 1, 10))).await;
    assert!(matches!(first, Err(StoreError::Commit { .. })), "{first:?}");
    let StoreHealth::Degraded { reason } = store.health() else {
        panic!("not degraded after a failed commit");
    };
    assert!(reason.contains("locked"), "{reason}");
    // While degraded a write is answered before `write` returns: nobody waits on a retry.
    let mut second = write_acked(&store, chat(room, 2, 10));
    assert!(
        matches!(second.try_recv(), Ok(Err(StoreError::Degraded { .. }))),
        "not answered at once"
    );
    store.write(put(room, 2), None);
    eventually("a retry", || metrics.retries.get() >= 1).await;
    assert!(metrics.commit_errors.get() >= 1);
    assert_eq!(metrics.degraded.get(), 1);

    drop(lock);
    eventually("health back to Ok", || store.health() == StoreHealth::Ok).await;
    assert_eq!(store.flush(PATIENCE).await, 0);
    let stored = store.load(room).await.expect("load").expect("stored");
    assert_eq!(
        (version(&stored.record), ids(&stored.chat)),
        (2, vec![1, 2])
    );
    assert_eq!(metrics.degraded.get(), 0);
    assert_eq!(metrics.dropped_writes.get(), 0);
}

#[actix_rt::test]
async fn sqlite_open_fails_on_a_path_that_is_a_file() {
    let dir = TempDir::new("not-a-dir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let result = Store::sqlite(&file, Arc::new(StoreMetrics::new()));
    assert!(matches!(
        result,
        Err(StoreError::Open {
            backend: "sqlite",
            ..
        })
    ));
}

#[actix_rt::test]
async fn sqlite_refuses_a_file_from_a_newer_schema() {
    let dir = TempDir::new("schema");
    drop(sqlite_store(dir.path(), quick_retries()));
    raw_sqlite(dir.path())
        .pragma_update(None, "user_version", sqlite::SCHEMA_VERSION + 1)
        .expect("set version");
    let result = Store::sqlite(dir.path(), Arc::new(StoreMetrics::new()));
    let Err(error) = result else {
        panic!("a newer schema was opened");
    };
    assert!(error.to_string().contains("schema"), "{error}");
}

/// A file written by the first release (schema version 1: `rooms` without rowid and with
/// an index on the expiry) opens with its rooms and chat, and is at the current version
/// after.
#[actix_rt::test]
async fn sqlite_file_of_schema_version_1_is_migrated_with_its_rooms() {
    let dir = TempDir::new("schema-v1");
    let room = RoomId::new();
    {
        let conn = raw_sqlite(dir.path());
        conn.execute_batch(
            "CREATE TABLE rooms (
                 room TEXT PRIMARY KEY,
                 record BLOB NOT NULL,
                 expires_at_ms INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX rooms_by_expiry ON rooms (expires_at_ms);
             CREATE TABLE chat (
                 room TEXT NOT NULL,
                 id INTEGER NOT NULL,
                 message BLOB NOT NULL,
                 PRIMARY KEY (room, id)
             ) WITHOUT ROWID;
             PRAGMA user_version = 1;",
        )
        .expect("a version 1 file");
        let WriteOp::PutRoom { record, .. } = put(room, 7) else {
            unreachable!("put makes a PutRoom")
        };
        conn.execute(
            "INSERT INTO rooms VALUES (?1, ?2, ?3)",
            rusqlite::params![room.to_string(), record, in_an_hour() as i64],
        )
        .expect("a room");
        for id in 1..=3u64 {
            let WriteOp::AppendChat { message, .. } = chat(room, id, 10) else {
                unreachable!("chat makes an AppendChat")
            };
            conn.execute(
                "INSERT INTO chat VALUES (?1, ?2, ?3)",
                rusqlite::params![room.to_string(), id as i64, message],
            )
            .expect("a message");
        }
    }

    let (store, _) = sqlite_store(dir.path(), quick_retries());
    let stored = store
        .load(room)
        .await
        .expect("load")
        .expect("migrated room");
    assert_eq!(
        (version(&stored.record), ids(&stored.chat)),
        (7, vec![1, 2, 3])
    );
    assert_eq!(store.list().await.expect("list"), vec![room]);
    // It is written to like any room of the new schema.
    store.write(put(room, 8), None);
    answer(write_acked(&store, chat(room, 4, 2)))
        .await
        .expect("committed");
    let stored = store.load(room).await.expect("load").expect("stored");
    assert_eq!(
        (version(&stored.record), ids(&stored.chat)),
        (8, vec![3, 4])
    );

    let conn = raw_sqlite(dir.path());
    let schema: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(schema, sqlite::SCHEMA_VERSION);
    let old_index: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'rooms_by_expiry'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    assert_eq!(old_index, 0, "the version 1 table and its index are gone");
}

#[actix_rt::test]
async fn sqlite_expired_rooms_are_not_loaded_and_go_at_open() {
    let dir = TempDir::new("expiry");
    let (live, expired) = (RoomId::new(), RoomId::new());
    {
        let (store, _) = sqlite_store(dir.path(), quick_retries());
        store.write(put(live, 1), None);
        store.write(
            WriteOp::PutRoom {
                room: expired,
                record: b"{}".to_vec(),
                expires_at_ms: 1,
            },
            None,
        );
        store.write(chat(expired, 1, 10), None);
        assert_eq!(store.flush(PATIENCE).await, 0);
        assert_eq!(store.load(expired).await.expect("load"), None);
        assert_eq!(store.list().await.expect("list"), [live]);
        assert_eq!(sqlite_chat_rows(dir.path(), expired), 1);
    }
    let (_store, _) = sqlite_store(dir.path(), quick_retries());
    assert_eq!(sqlite_chat_rows(dir.path(), expired), 0);
    let rooms: i64 = raw_sqlite(dir.path())
        .query_row("SELECT count(*) FROM rooms", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rooms, 1);
}

// ---- Redis -------------------------------------------------------------------------------

#[actix_rt::test]
async fn redis_round_trip() {
    let dir = TempDir::new("redis-round-trip");
    let server = RedisServer::start(dir.path(), Persistence::None);
    let (store, _) = redis_store(&server.url(), quick_retries()).await;
    assert_eq!(store.kind(), "redis");
    round_trip(&store).await;
}

#[actix_rt::test]
async fn redis_chat_is_trimmed_to_keep() {
    let dir = TempDir::new("redis-trim");
    let server = RedisServer::start(dir.path(), Persistence::None);
    let (store, _) = redis_store(&server.url(), quick_retries()).await;
    chat_is_trimmed(&store).await;
}

#[actix_rt::test]
async fn redis_keeps_order_per_room_across_interleaved_writes() {
    let dir = TempDir::new("redis-order");
    let server = RedisServer::start(dir.path(), Persistence::None);
    let (store, _) = redis_store(&server.url(), quick_retries()).await;
    order_per_room(&store).await;
}

#[actix_rt::test]
async fn redis_ack_waits_for_the_exec_and_keys_expire_with_the_room() {
    let dir = TempDir::new("redis-ack");
    let server = RedisServer::start(dir.path(), Persistence::None);
    let (store, _) = redis_store(&server.url(), patient()).await;
    let mut raw = raw_redis(&server.url()).await;
    let room = RoomId::new();
    let chat_key = watch_together::store::redis::chat_key(room);
    let room_key = watch_together::store::redis::room_key(room);

    let _: () = redis_cmd(&mut raw, &["CLIENT", "PAUSE", "60000", "WRITE"]).await;
    let put_ack = write_acked(&store, put(room, 1));
    let mut chat_ack = write_acked(&store, chat(room, 1, 10));
    assert_eq!(store.flush(Duration::from_millis(50)).await, 2);
    assert!(matches!(
        chat_ack.try_recv(),
        Err(oneshot::error::TryRecvError::Empty)
    ));
    let _: () = redis_cmd(&mut raw, &["CLIENT", "UNPAUSE"]).await;
    answer(put_ack).await.expect("committed");
    answer(chat_ack).await.expect("committed");

    let members: i64 = redis_cmd(&mut raw, &["ZCARD", &chat_key]).await;
    assert_eq!(members, 1);
    // Both keys carry the room's expiry (in ms from now; about an hour).
    for key in [&room_key, &chat_key] {
        let ttl: i64 = redis_cmd(&mut raw, &["PTTL", key]).await;
        assert!(ttl > 3_000_000 && ttl <= 3_600_000, "{key}: {ttl}");
    }
}

#[actix_rt::test]
async fn redis_burst_of_500_chats_lands_in_two_commits() {
    let dir = TempDir::new("redis-burst");
    let server = RedisServer::start(dir.path(), Persistence::None);
    let (store, metrics) = redis_store(&server.url(), patient()).await;
    let mut raw = raw_redis(&server.url()).await;
    let room = RoomId::new();
    // Writes held until all 500 are queued: the writer can take at most its first batch.
    let _: () = redis_cmd(&mut raw, &["CLIENT", "PAUSE", "60000", "WRITE"]).await;
    let acks: Vec<AckRx> = (1..=500)
        .map(|id| write_acked(&store, chat(room, id, 1000)))
        .collect();
    let _: () = redis_cmd(&mut raw, &["CLIENT", "UNPAUSE"]).await;
    for ack in acks {
        answer(ack).await.expect("committed");
    }
    assert!(metrics.commits() <= 2, "{} commits", metrics.commits());
    assert_eq!(metrics.committed_writes(), 500);
    let members: i64 = redis_cmd(
        &mut raw,
        &["ZCARD", &watch_together::store::redis::chat_key(room)],
    )
    .await;
    assert_eq!(members, 500);
}

#[actix_rt::test]
async fn redis_restarted_with_aof_has_everything_acknowledged() {
    let dir = TempDir::new("redis-restart");
    let mut server = RedisServer::start(dir.path(), Persistence::AofEverySec);
    let room = RoomId::new();
    {
        let (store, _) = redis_store(&server.url(), quick_retries()).await;
        store.write(put(room, 5), None);
        for id in 1..=20 {
            store.write(chat(room, id, 10), None);
        }
        assert_eq!(store.flush(PATIENCE).await, 0);
    }
    server.stop();
    server.launch();
    let (store, _) = redis_store(&server.url(), quick_retries()).await;
    assert_eq!(store.list().await.expect("list"), [room]);
    let stored = store.load(room).await.expect("load").expect("stored");
    assert_eq!(
        (version(&stored.record), ids(&stored.chat)),
        (5, (11..=20).collect())
    );
}

#[actix_rt::test]
async fn redis_crash_with_appendfsync_always_loses_nothing_acknowledged() {
    let dir = TempDir::new("redis-crash");
    let mut server = RedisServer::start(dir.path(), Persistence::AofAlways);
    let room = RoomId::new();
    {
        let (store, _) = redis_store(&server.url(), quick_retries()).await;
        store.write(put(room, 6), None);
        let acks: Vec<AckRx> = (1..=300)
            .map(|id| write_acked(&store, chat(room, id, 1000)))
            .collect();
        for ack in acks {
            answer(ack).await.expect("committed");
        }
        server.kill();
    }
    server.launch();
    let (store, _) = redis_store(&server.url(), quick_retries()).await;
    let stored = store.load(room).await.expect("load").expect("stored");
    assert_eq!(version(&stored.record), 6);
    assert_eq!(ids(&stored.chat), (1..=300).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn redis_down_degrades_then_recovers_when_it_is_back() {
    let dir = TempDir::new("redis-down");
    let mut server = RedisServer::start(dir.path(), Persistence::AofEverySec);
    let (store, metrics) = redis_store(&server.url(), quick_retries()).await;
    let room = RoomId::new();
    answer(write_acked(&store, put(room, 1)))
        .await
        .expect("committed");

    server.stop();
    let first = answer(write_acked(&store, chat(room, 1, 10))).await;
    assert!(
        matches!(
            first,
            Err(StoreError::Commit { .. } | StoreError::Degraded { .. })
        ),
        "{first:?}"
    );
    eventually("health Degraded", || store.health() != StoreHealth::Ok).await;
    let mut second = write_acked(&store, chat(room, 2, 10));
    assert!(
        matches!(second.try_recv(), Ok(Err(StoreError::Degraded { .. }))),
        "not answered at once"
    );
    store.write(put(room, 2), None);
    assert!(
        store.load(room).await.is_err(),
        "a read while Redis is down"
    );

    server.launch();
    eventually("health back to Ok", || store.health() == StoreHealth::Ok).await;
    assert_eq!(store.flush(PATIENCE).await, 0);
    let stored = store.load(room).await.expect("load").expect("stored");
    assert_eq!(
        (version(&stored.record), ids(&stored.chat)),
        (2, vec![1, 2])
    );
    assert!(metrics.commit_errors.get() + metrics.probe_errors.get() >= 1);
    assert_eq!(metrics.dropped_writes.get(), 0);
}

#[actix_rt::test]
async fn redis_expired_rooms_are_neither_loaded_nor_listed() {
    let dir = TempDir::new("redis-expiry");
    let server = RedisServer::start(dir.path(), Persistence::None);
    let (store, _) = redis_store(&server.url(), quick_retries()).await;
    let (live, expired) = (RoomId::new(), RoomId::new());
    store.write(put(live, 1), None);
    store.write(
        WriteOp::PutRoom {
            room: expired,
            record: b"{}".to_vec(),
            expires_at_ms: 1,
        },
        None,
    );
    assert_eq!(store.flush(PATIENCE).await, 0);
    assert_eq!(store.load(expired).await.expect("load"), None);
    assert_eq!(store.list().await.expect("list"), [live]);
    // The listing removed the expired id from the set.
    let mut raw = raw_redis(&server.url()).await;
    let members: Vec<String> = redis_cmd(
        &mut raw,
        &["SMEMBERS", watch_together::store::redis::ROOMS_KEY],
    )
    .await;
    assert_eq!(members, [live.to_string()]);
}

#[actix_rt::test]
async fn redis_open_fails_when_nothing_listens() {
    let dir = TempDir::new("redis-nothing");
    let mut server = RedisServer::start(dir.path(), Persistence::None);
    server.stop();
    let result = Store::redis(&server.url(), Arc::new(StoreMetrics::new())).await;
    assert!(matches!(
        result,
        Err(StoreError::Open {
            backend: "redis",
            ..
        })
    ));
}
