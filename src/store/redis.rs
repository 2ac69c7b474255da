//! The Redis backend: keys under `wt:`, each batch one `MULTI`/`EXEC`.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `wt:room:{id}` | string | the record, expiring at `expires_at_ms` (`SET … PXAT`) |
//! | `wt:chat:{id}` | sorted set | each message as member `id (8 bytes, big-endian) ‖ message`, scored by id; same expiry |
//! | `wt:rooms` | set | room ids, for `list` (members whose record expired are removed as `list` finds them) |
//!
//! Chat is a sorted set rather than a list so that every write is idempotent: when a
//! connection drops after Redis ran an `EXEC` but before its reply arrived, the writer
//! retries the batch, and a list would then hold those messages twice. With the id as score
//! (and the message's old entry removed by score first), a retried append replaces itself.
//!
//! Durability is the Redis server's: with AOF and `appendfsync everysec` (its default), a
//! Redis crash loses at most about the last second; `always` loses nothing acknowledged (an
//! fsync per `EXEC`, which group commit keeps to one per batch). docs/storage.md has more.
//!
//! The connection manager reconnects by itself; it is told not to retry on its own (the
//! writer's backoff does that) and to give up on a command after
//! [`StoreOptions::redis_timeout`](super::StoreOptions::redis_timeout).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, Pipeline};

use super::plan::{Plan, Step};
use super::writer::{Backend, Read};
use super::{BackendError, StoreError, StoredRoom};
use crate::ids::RoomId;

/// The backend's name.
pub const KIND: &str = "redis";

/// The set of stored room ids.
pub const ROOMS_KEY: &str = "wt:rooms";

/// The key of a room's record.
pub fn room_key(room: RoomId) -> String {
    format!("wt:room:{room}")
}

/// The key of a room's chat.
pub fn chat_key(room: RoomId) -> String {
    format!("wt:chat:{room}")
}

/// A chat member: the id first, so members are unique and ordered like the messages.
fn chat_member(id: u64, message: &[u8]) -> Vec<u8> {
    let mut member = Vec::with_capacity(8 + message.len());
    member.extend_from_slice(&id.to_be_bytes());
    member.extend_from_slice(message);
    member
}

/// The writer's connection and what it remembers between batches.
pub(crate) struct Redis {
    /// Reconnects by itself; clones share the connection (reads run on clones).
    conn: ConnectionManager,
    /// Each room's latest `expires_at_ms` seen in this process, so chat appended after the
    /// record was stored gets the record's expiry too (`PEXPIREAT` on a key that does not
    /// exist yet does nothing). Rooms are forgotten on delete, and once expired.
    expiry: HashMap<RoomId, u64>,
    /// The size of `expiry` at which expired rooms are next forgotten (rooms that expire
    /// without a delete would otherwise stay in it for good).
    prune_at: usize,
}

/// The smallest `prune_at`: below it the map is too small to be worth a pass.
const PRUNE_FLOOR: usize = 1024;

impl Redis {
    /// Connects to `url`; fails if Redis does not answer within `timeout`.
    pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<Redis, BackendError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Redis {
            conn,
            expiry: HashMap::new(),
            prune_at: PRUNE_FLOOR,
        })
    }

    /// The `MULTI`/`EXEC` that applies `plan`.
    fn pipeline(&mut self, plan: &Plan<'_>) -> Pipeline {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for step in &plan.steps {
            match *step {
                Step::Put {
                    room,
                    record,
                    expires_at_ms,
                } => {
                    // PXAT refuses 0; the epoch's first millisecond is as expired as any.
                    let at = expires_at_ms.max(1);
                    pipe.cmd("SET")
                        .arg(room_key(room))
                        .arg(record)
                        .arg("PXAT")
                        .arg(at)
                        .ignore();
                    pipe.sadd(ROOMS_KEY, room.to_string()).ignore();
                    pipe.cmd("PEXPIREAT").arg(chat_key(room)).arg(at).ignore();
                    self.expiry.insert(room, at);
                }
                Step::Append { room, id, message } => {
                    let key = chat_key(room);
                    pipe.cmd("ZREMRANGEBYSCORE")
                        .arg(&key)
                        .arg(id)
                        .arg(id)
                        .ignore();
                    pipe.cmd("ZADD")
                        .arg(&key)
                        .arg(id)
                        .arg(chat_member(id, message))
                        .ignore();
                }
                Step::Trim { room, keep } => {
                    let key = chat_key(room);
                    let last_dropped = -i64::try_from(keep).unwrap_or(i64::MAX) - 1;
                    pipe.cmd("ZREMRANGEBYRANK")
                        .arg(&key)
                        .arg(0)
                        .arg(last_dropped)
                        .ignore();
                    if let Some(at) = self.expiry.get(&room) {
                        pipe.cmd("PEXPIREAT").arg(&key).arg(*at).ignore();
                    }
                }
                Step::Delete { room } => {
                    pipe.del(&[room_key(room), chat_key(room)]).ignore();
                    pipe.srem(ROOMS_KEY, room.to_string()).ignore();
                    self.expiry.remove(&room);
                }
            }
        }
        if self.expiry.len() >= self.prune_at {
            let now = crate::clock::now_ms() as u64;
            self.expiry.retain(|_, at| *at > now);
            // Twice what is left: the pass costs O(1) per room stored since the last one.
            self.prune_at = (self.expiry.len() * 2).max(PRUNE_FLOOR);
        }
        pipe
    }
}

/// The room's record and chat, read in one `MULTI` so they match.
async fn load(
    conn: &mut ConnectionManager,
    room: RoomId,
) -> Result<Option<StoredRoom>, BackendError> {
    let (record, members): (Option<Vec<u8>>, Vec<Vec<u8>>) = ::redis::pipe()
        .atomic()
        .get(room_key(room))
        .zrange(chat_key(room), 0, -1)
        .query_async(conn)
        .await?;
    let Some(record) = record else {
        return Ok(None);
    };
    let chat = members
        .into_iter()
        .map(|member| match member.get(8..) {
            Some(message) => Ok(message.to_vec()),
            None => Err(BackendError::Data(format!(
                "a chat member of {} is {} bytes, shorter than its id",
                chat_key(room),
                member.len()
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(StoredRoom { record, chat }))
}

/// Every room whose record still exists; removes from `wt:rooms` those that expired.
async fn list(conn: &mut ConnectionManager) -> Result<Vec<RoomId>, BackendError> {
    let ids: Vec<String> = conn.smembers(ROOMS_KEY).await?;
    let mut parsed = Vec::with_capacity(ids.len());
    let mut stale = Vec::new();
    for id in ids {
        match id.parse::<RoomId>() {
            Ok(room) => parsed.push(room),
            Err(_) => stale.push(id),
        }
    }
    let mut exists = ::redis::pipe();
    for room in &parsed {
        exists.exists(room_key(*room));
    }
    let present: Vec<bool> = if parsed.is_empty() {
        Vec::new()
    } else {
        exists.query_async(conn).await?
    };
    let mut rooms = Vec::with_capacity(parsed.len());
    for (room, present) in parsed.into_iter().zip(present) {
        if present {
            rooms.push(room);
        } else {
            stale.push(room.to_string());
        }
    }
    if !stale.is_empty() {
        // Only tidying: a failure leaves them to the next list.
        let removed: Result<(), _> = conn.srem(ROOMS_KEY, &stale).await;
        if let Err(e) = removed {
            tracing::debug!(error = %e, "store: could not remove expired rooms from the set");
        }
    }
    rooms.sort_by_key(|room| room.to_string());
    Ok(rooms)
}

/// A failed read, as the caller sees it.
fn read_error(e: BackendError) -> StoreError {
    StoreError::Read {
        backend: KIND,
        source: Arc::new(e),
    }
}

impl Backend for Redis {
    const KIND: &'static str = KIND;
    const PROBES: bool = true;

    async fn commit(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        let pipe = self.pipeline(plan);
        let () = pipe.query_async(&mut self.conn).await?;
        Ok(())
    }

    fn read(&mut self, read: Read) {
        let mut conn = self.conn.clone();
        // Replies whose caller gave up need no answer.
        tokio::spawn(async move {
            match read {
                Read::Load { room, reply } => {
                    let _ = reply.send(load(&mut conn, room).await.map_err(read_error));
                }
                Read::List { reply } => {
                    let _ = reply.send(list(&mut conn).await.map_err(read_error));
                }
            }
        });
    }

    async fn probe(&mut self) -> Result<(), BackendError> {
        let _: String = ::redis::cmd("PING").query_async(&mut self.conn).await?;
        Ok(())
    }
}
