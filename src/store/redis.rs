//! The Redis backend: keys under `wt:`, each batch one `MULTI`/`EXEC`.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `wt:room:{id}` | string | the record, expiring at `expires_at_ms` (`SET … PXAT`) |
//! | `wt:chat:{id}` | sorted set | each message as member `id (8 bytes, big-endian) ‖ message`, scored by id; same expiry |
//! | `wt:rooms` | set | room ids, for `list` (members whose record expired are removed as `list` finds them) |
//! | `wt:epoch:{id}` | integer | the room's ownership epoch when nodes share this Redis (`crate::cluster` takes it with `INCR`) |
//!
//! A write under a [`Fence`] goes through [`FENCED_STEP`], a Lua script that
//! applies the step only while `wt:epoch:{id}` still holds the fence's epoch: Redis runs a
//! script atomically, so no write of a node that lost the room can land after the new owner
//! took it. The batch stays one `MULTI`/`EXEC`; the script's reply tells the writer which
//! rooms were refused.
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
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, Pipeline, RedisError};

use super::plan::{Plan, Step};
use super::writer::{Backend, Read};
use super::{BackendError, Fence, StoreError, StoredRoom};
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

/// The key of a room's ownership epoch (see `crate::cluster`).
pub fn epoch_key(room: RoomId) -> String {
    format!("wt:epoch:{room}")
}

/// Applies one step to a room if its epoch is still the writer's (module doc). Replies 1 if
/// applied, 0 if refused.
///
/// KEYS: epoch, record, chat, room set. ARGV: fence, step, room id, then by step: `put`
/// record and expiry; `append` message id and member; `trim` the last rank to drop and the
/// expiry (or empty); `delete` nothing. The epoch key lives as long as the room's record, so
/// it is still there to refuse a stale owner's writes.
pub const FENCED_STEP: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local step = ARGV[2]
if step == 'put' then
  redis.call('SET', KEYS[2], ARGV[4], 'PXAT', ARGV[5])
  redis.call('SADD', KEYS[4], ARGV[3])
  redis.call('PEXPIREAT', KEYS[3], ARGV[5])
  redis.call('PEXPIREAT', KEYS[1], ARGV[5])
elseif step == 'append' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], ARGV[4], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
elseif step == 'trim' then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, ARGV[4])
  if ARGV[5] ~= '' then redis.call('PEXPIREAT', KEYS[3], ARGV[5]) end
elseif step == 'delete' then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('SREM', KEYS[4], ARGV[3])
end
return 1
";

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
    /// [`FENCED_STEP`]'s SHA-1, for `EVALSHA`.
    fenced_step: ::redis::Script,
}

/// The smallest `prune_at`: below it the map is too small to be worth a pass.
const PRUNE_FLOOR: usize = 1024;

/// A connection to `url` that reconnects by itself, every request bounded by `timeout` and
/// none retried (the caller decides what a failure means). Fails if Redis does not answer
/// within `timeout`. The store and the leases (`cluster`) each hold one.
pub async fn connection(url: &str, timeout: Duration) -> Result<ConnectionManager, RedisError> {
    let client = Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    ConnectionManager::new_with_config(client, config).await
}

impl Redis {
    /// Connects to `url`; fails if Redis does not answer within `timeout`.
    pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<Redis, BackendError> {
        let conn = connection(url, timeout).await?;
        Ok(Redis {
            conn,
            expiry: HashMap::new(),
            prune_at: PRUNE_FLOOR,
            fenced_step: ::redis::Script::new(FENCED_STEP),
        })
    }

    /// The `MULTI`/`EXEC` that applies `plan`, and the room of each fenced step, in the
    /// order of their replies.
    fn pipeline(&mut self, plan: &Plan<'_>) -> (Pipeline, Vec<RoomId>) {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        let mut fenced = Vec::new();
        if !plan.fences.is_empty() {
            // Loaded in every such batch: a restarted Redis has forgotten its scripts, and
            // `SCRIPT LOAD` of a known script costs next to nothing.
            pipe.cmd("SCRIPT").arg("LOAD").arg(FENCED_STEP).ignore();
        }
        for step in &plan.steps {
            let room = step.room();
            if let Some(fence) = plan.fences.get(&room) {
                self.fenced_step(&mut pipe, step, *fence);
                fenced.push(room);
                continue;
            }
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
                Step::Trim { room, keep, .. } => {
                    let key = chat_key(room);
                    pipe.cmd("ZREMRANGEBYRANK")
                        .arg(&key)
                        .arg(0)
                        .arg(last_dropped_rank(keep))
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
        (pipe, fenced)
    }

    /// Adds `step` to `pipe` as an `EVALSHA` of [`FENCED_STEP`] under `fence`.
    fn fenced_step(&mut self, pipe: &mut Pipeline, step: &Step<'_>, fence: Fence) {
        let room = step.room();
        let cmd = pipe
            .cmd("EVALSHA")
            .arg(self.fenced_step.get_hash())
            .arg(4)
            .arg(epoch_key(room))
            .arg(room_key(room))
            .arg(chat_key(room))
            .arg(ROOMS_KEY)
            .arg(fence.0)
            .arg(step.name())
            .arg(room.to_string());
        match *step {
            Step::Put {
                record,
                expires_at_ms,
                ..
            } => {
                let at = expires_at_ms.max(1);
                cmd.arg(record).arg(at);
                self.expiry.insert(room, at);
            }
            Step::Append { id, message, .. } => {
                cmd.arg(id).arg(chat_member(id, message));
            }
            Step::Trim { keep, .. } => {
                cmd.arg(last_dropped_rank(keep));
                match self.expiry.get(&room) {
                    Some(at) => cmd.arg(*at),
                    None => cmd.arg(""),
                };
            }
            Step::Delete { .. } => {
                self.expiry.remove(&room);
            }
        }
    }
}

/// The rank of the newest chat message a trim to `keep` removes (ranks count from the
/// oldest; negative ones from the newest).
fn last_dropped_rank(keep: usize) -> i64 {
    -i64::try_from(keep).unwrap_or(i64::MAX) - 1
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

impl Backend for Redis {
    const KIND: &'static str = KIND;
    const PROBES: bool = true;

    async fn commit(&mut self, plan: &Plan<'_>) -> Result<Vec<RoomId>, BackendError> {
        let (pipe, fenced) = self.pipeline(plan);
        let applied: Vec<i64> = pipe.query_async(&mut self.conn).await?;
        let mut refused: Vec<RoomId> = fenced
            .into_iter()
            .zip(applied)
            .filter(|(_, applied)| *applied == 0)
            .map(|(room, _)| room)
            .collect();
        refused.dedup();
        Ok(refused)
    }

    fn read(&mut self, read: Read) {
        let mut conn = self.conn.clone();
        // Replies whose caller gave up need no answer.
        tokio::spawn(async move {
            match read {
                Read::Load { room, reply } => {
                    let _ = reply.send(load(&mut conn, room).await.map_err(StoreError::read(KIND)));
                }
                Read::List { reply } => {
                    let _ = reply.send(list(&mut conn).await.map_err(StoreError::read(KIND)));
                }
            }
        });
    }

    async fn probe(&mut self) -> Result<(), BackendError> {
        let _: String = ::redis::cmd("PING").query_async(&mut self.conn).await?;
        Ok(())
    }
}
