//! Store speed figures, not tests: ignored, run by hand in release (docs/storage.md):
//!
//! ```sh
//! cargo test --release --test integration store_bench -- --ignored --nocapture --test-threads=1
//! ```
//!
//! For each backend: the ack latency of single chats sent one after the other (each waits
//! for its ack, as a room's chat would), and the throughput of a burst of 10,000 chats
//! queued at once, first with `keep` above the burst (every message written), then with a
//! chat history of 100 (the plan leaves out what the trim would delete at once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::oneshot;
use watch_together::ids::RoomId;
use watch_together::store::{Store, StoreMetrics, StoreOptions, WriteOp};

use crate::redis_server::{Persistence, RedisServer};
use crate::store::TempDir;
use crate::util::PATIENCE;

/// Single chats measured.
const SINGLES: u64 = 2_000;
/// Chats in the burst.
const BURST: u64 = 10_000;

/// A chat message about the size a real one has (~120 bytes of JSON).
fn message(id: u64) -> Vec<u8> {
    format!(
        r#"{{"id":{id},"from":"3f9a2c41d0e7b6a5","name":"Someone","text":"a chat message of ordinary length, about this long","at":1767225600000.0}}"#
    )
    .into_bytes()
}

async fn acked(store: &Store, op: WriteOp) {
    let (tx, rx) = oneshot::channel();
    store.write(op, Some(tx));
    tokio::time::timeout(PATIENCE, rx)
        .await
        .expect("ack in time")
        .expect("answered")
        .expect("committed");
}

/// A room with a record of a realistic size (a room with no record is not loaded).
async fn new_room(store: &Store) -> RoomId {
    let room = RoomId::new();
    acked(
        store,
        WriteOp::PutRoom {
            room,
            record: vec![b'x'; 2_000],
            expires_at_ms: u64::MAX / 2,
        },
    )
    .await;
    room
}

/// Runs both measurements on `store` and prints them under `label`.
async fn measure(label: &str, store: &Store, metrics: &StoreMetrics) {
    let room = new_room(store).await;

    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    for id in 0..SINGLES {
        let started = Instant::now();
        acked(
            store,
            WriteOp::AppendChat {
                room,
                id,
                message: message(id),
                keep: 100,
            },
        )
        .await;
        latency
            .record(started.elapsed().as_micros() as u64)
            .expect("in range");
    }
    println!(
        "{label:<28} single chat ack: p50 {:>6} µs  p99 {:>6} µs  max {:>6} µs  ({SINGLES} chats)",
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    );

    for keep in [BURST as usize, 100] {
        let room = new_room(store).await;
        let commits_before = metrics.commits();
        let started = Instant::now();
        let acks: Vec<_> = (0..BURST)
            .map(|id| {
                let (tx, rx) = oneshot::channel();
                store.write(
                    WriteOp::AppendChat {
                        room,
                        id,
                        message: message(id),
                        keep,
                    },
                    Some(tx),
                );
                rx
            })
            .collect();
        let queued = started.elapsed();
        for ack in acks {
            ack.await.expect("answered").expect("committed");
        }
        let elapsed = started.elapsed();
        let commits = metrics.commits() - commits_before;
        println!(
            "{label:<28} burst of {BURST}, keep {keep:>5}: {:>8.0} chats/s  ({:.1} ms, queued in {:.1} ms, {commits} commits, {:.0} per commit)",
            BURST as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e3,
            queued.as_secs_f64() * 1e3,
            BURST as f64 / commits.max(1) as f64
        );
        let stored = store.load(room).await.expect("load");
        assert_eq!(stored.map(|r| r.chat.len()), Some(keep.min(BURST as usize)));
    }
}

#[actix_rt::test]
#[ignore = "a measurement; run by hand in release"]
async fn store_bench_sqlite() {
    let dir = TempDir::new("bench-sqlite");
    let metrics = Arc::new(StoreMetrics::new());
    let store = Store::sqlite(dir.path(), metrics.clone()).expect("open");
    measure("sqlite (WAL, NORMAL)", &store, &metrics).await;
    assert_eq!(store.flush(PATIENCE).await, 0);
}

#[actix_rt::test]
#[ignore = "a measurement; run by hand in release"]
async fn store_bench_redis() {
    for (label, persistence) in [
        ("redis (no persistence)", Persistence::None),
        ("redis (AOF everysec)", Persistence::AofEverySec),
        ("redis (AOF always)", Persistence::AofAlways),
    ] {
        let dir = TempDir::new("bench-redis");
        let server = RedisServer::start(dir.path(), persistence);
        let metrics = Arc::new(StoreMetrics::new());
        let store = Store::redis_with(&server.url(), metrics.clone(), StoreOptions::default())
            .await
            .expect("connect");
        measure(label, &store, &metrics).await;
        assert_eq!(store.flush(Duration::from_secs(5)).await, 0);
    }
}
