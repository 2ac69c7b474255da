//! Room leases and fenced writes against a real `redis-server` (tests/redis_server.rs): what
//! lets one node at a time run a room when several share one Redis.
//!
//! A lease that "runs out" is deleted here rather than waited for: the expiry itself is
//! Redis's business, and the process-level test of a paused node (tests/fencing.rs) lets a
//! real one run out.

use std::time::Duration;

use serde_json::json;
use tokio::sync::oneshot;
use watch_together::cluster::{lease_key, Claim, Leases, Renewal};
use watch_together::ids::RoomId;
use watch_together::store::{Fence, Store, StoreError, StoreMetrics, WriteOp};

use crate::redis_server::{Persistence, RedisServer};
use crate::store::TempDir;
use crate::util::PATIENCE;

/// Long enough that no lease runs out by itself during a test.
const TTL: Duration = Duration::from_secs(30);

async fn node(redis: &RedisServer, id: &str) -> Leases {
    Leases::connect(&redis.url(), id, TTL, PATIENCE)
        .await
        .expect("leases connect")
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

fn taken(claim: Claim) -> Fence {
    match claim {
        Claim::Taken(fence) => fence,
        other => panic!("expected the lease, got {other:?}"),
    }
}

fn outcome(outcomes: &[(RoomId, Fence, Renewal)], room: RoomId) -> Option<Renewal> {
    outcomes
        .iter()
        .find(|(r, _, _)| *r == room)
        .map(|(_, _, renewal)| *renewal)
}

#[actix_rt::test]
async fn one_node_holds_a_room_until_it_hands_it_over() {
    let dir = TempDir::new("leases-handover");
    let redis = RedisServer::start(dir.path(), Persistence::None);
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let room = RoomId::new();

    let first = taken(a.claim(room).await.unwrap());
    assert_eq!(a.fence(room), Some(first));
    assert_eq!(
        b.claim(room).await.unwrap(),
        Claim::Held {
            node: "a".into(),
            ours: false
        }
    );
    assert_eq!(
        a.claim(room).await.unwrap(),
        Claim::Held {
            node: "a".into(),
            ours: true
        },
        "a second claim from the holder is told it holds it already"
    );
    assert_eq!(
        outcome(&a.renew().await.unwrap(), room),
        Some(Renewal::Kept)
    );

    b.ask_handover(room).await.unwrap();
    assert_eq!(
        outcome(&a.renew().await.unwrap(), room),
        Some(Renewal::Wanted),
        "the holder sees the request at its renewal"
    );
    assert!(a.release(room, first).await.unwrap());
    assert!(a.is_empty());
    let second = taken(b.claim(room).await.unwrap());
    assert!(second.0 > first.0, "each take-over has a newer epoch");
    assert_eq!(
        outcome(&b.renew().await.unwrap(), room),
        Some(Renewal::Kept),
        "taking the lease cleared the request"
    );
    assert!(
        !a.release(room, first).await.unwrap(),
        "an old holder cannot release someone else's lease"
    );
    assert_eq!(b.fence(room), Some(second));
}

#[actix_rt::test]
async fn a_lease_that_ran_out_is_kept_unless_another_node_took_the_room() {
    let dir = TempDir::new("leases-lost");
    let redis = RedisServer::start(dir.path(), Persistence::None);
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let mut conn = redis_conn(&redis).await;
    let (kept, lost) = (RoomId::new(), RoomId::new());
    let kept_fence = taken(a.claim(kept).await.unwrap());
    taken(a.claim(lost).await.unwrap());

    // Both leases run out while `a` is paused; `b` takes one of the rooms.
    let _: () = redis::cmd("DEL")
        .arg(lease_key(kept))
        .arg(lease_key(lost))
        .query_async(&mut conn)
        .await
        .unwrap();
    taken(b.claim(lost).await.unwrap());

    let outcomes = a.renew().await.unwrap();
    assert_eq!(outcome(&outcomes, kept), Some(Renewal::Kept));
    assert_eq!(outcome(&outcomes, lost), Some(Renewal::Lost));
    assert_eq!(a.fence(lost), None, "a lost room is forgotten");
    assert_eq!(a.fence(kept), Some(kept_fence), "same epoch: nobody wrote");
    let holder: String = redis::cmd("GET")
        .arg(lease_key(kept))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(holder.starts_with("a "), "renewal took it back: {holder}");
    assert!(matches!(
        b.claim(kept).await.unwrap(),
        Claim::Held { node, ours: false } if node == "a"
    ));
}

#[actix_rt::test]
async fn a_restarted_node_takes_over_its_own_leases_at_once() {
    let dir = TempDir::new("leases-restart");
    let redis = RedisServer::start(dir.path(), Persistence::None);
    let room = RoomId::new();
    let before = node(&redis, "a").await;
    let old = taken(before.claim(room).await.unwrap());
    // The process is gone without releasing (a crash); its successor has the same id.
    drop(before);
    let after = node(&redis, "a").await;
    let new = taken(after.claim(room).await.unwrap());
    assert!(new.0 > old.0);
    let other = node(&redis, "b").await;
    assert!(matches!(
        other.claim(room).await.unwrap(),
        Claim::Held { .. }
    ));
}

/// Writes `op` under `fence` and waits for the store's answer.
async fn write(store: &Store, op: WriteOp, fence: Option<Fence>) -> Result<(), StoreError> {
    let (ack, answer) = oneshot::channel();
    store.write_fenced(op, fence, Some(ack));
    tokio::time::timeout(PATIENCE, answer)
        .await
        .expect("ack in time")
        .expect("ack sent")
}

fn put(room: RoomId, v: u64) -> WriteOp {
    WriteOp::PutRoom {
        room,
        record: json!({ "v": v }).to_string().into_bytes(),
        expires_at_ms: watch_together::clock::now_ms() as u64 + 3_600_000,
    }
}

fn chat(room: RoomId, id: u64) -> WriteOp {
    WriteOp::AppendChat {
        room,
        id,
        message: json!({ "id": id }).to_string().into_bytes(),
        keep: 10,
    }
}

#[actix_rt::test]
async fn the_store_refuses_a_write_made_under_an_older_epoch() {
    let dir = TempDir::new("leases-fence");
    let redis = RedisServer::start(dir.path(), Persistence::None);
    let metrics = std::sync::Arc::new(StoreMetrics::new());
    let store = Store::redis(&redis.url(), metrics.clone()).await.unwrap();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let (room, bystander) = (RoomId::new(), RoomId::new());

    let old = taken(a.claim(room).await.unwrap());
    write(&store, put(room, 1), Some(old)).await.unwrap();
    write(&store, chat(room, 1), Some(old)).await.unwrap();

    // `b` takes the room over (the lease ran out while `a` was paused) and writes.
    let mut conn = redis_conn(&redis).await;
    let _: () = redis::cmd("DEL")
        .arg(lease_key(room))
        .query_async(&mut conn)
        .await
        .unwrap();
    let new = taken(b.claim(room).await.unwrap());
    write(&store, put(room, 2), Some(new)).await.unwrap();

    // `a` wakes up and writes under its old epoch, in one batch with a bystander's write.
    let (stale_put, stale_chat, other) =
        (oneshot::channel(), oneshot::channel(), oneshot::channel());
    store.write_fenced(put(room, 3), Some(old), Some(stale_put.0));
    store.write_fenced(chat(room, 2), Some(old), Some(stale_chat.0));
    store.write_fenced(put(bystander, 7), None, Some(other.0));
    for answer in [stale_put.1, stale_chat.1] {
        let result = tokio::time::timeout(PATIENCE, answer)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(result, Err(StoreError::Fenced { room: r }) if r == room),
            "{result:?}"
        );
    }
    tokio::time::timeout(PATIENCE, other.1)
        .await
        .unwrap()
        .unwrap()
        .expect("the bystander's write lands");
    assert!(metrics.fenced.get() >= 1);

    let stored = store.load(room).await.unwrap().expect("room stored");
    let record: serde_json::Value = serde_json::from_slice(&stored.record).unwrap();
    assert_eq!(record["v"], 2, "the new owner's record stands");
    assert_eq!(stored.chat.len(), 1, "the stale chat was not appended");
    let other_room = store
        .load(bystander)
        .await
        .unwrap()
        .expect("bystander stored");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&other_room.record).unwrap()["v"],
        7
    );

    // The script is loaded again by the batch after Redis forgot it.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    write(&store, put(room, 4), Some(new)).await.unwrap();
    let stored = store.load(room).await.unwrap().expect("room stored");
    let record: serde_json::Value = serde_json::from_slice(&stored.record).unwrap();
    assert_eq!(record["v"], 4);
}
