//! Many nodes, one Redis: which node runs which room.
//!
//! HAProxy sends every request about a room to the node its id hashes to, but a balancer
//! and the nodes can disagree about who is up (a node paused, cut off, or just restarted).
//! This module is what makes sure that one node at a time *runs* a room: before loading a
//! room, a node takes its lease in Redis; while it runs the room, it renews the lease; it
//! writes the room only under the lease's epoch, and the store refuses a write made under an
//! older one (`store::redis::FENCED_STEP`).
//!
//! | key | holds |
//! | --- | --- |
//! | `wt:lease:{id}` | `{node} {instance} {epoch}` of the holder, expiring after the lease TTL unless renewed |
//! | `wt:epoch:{id}` | the room's epoch: `INCR`ed at every take-over, checked by every fenced write |
//! | `wt:handover:{id}` | the node that asked the holder to give the room up |
//!
//! Each step is one Lua script, so Redis applies it atomically:
//! - **claim** ([`Leases::claim`]): take the lease if nobody holds it (or if it was left by an
//!   earlier process of this same node, which is gone), with a new epoch; else say who holds it.
//! - **renew** ([`Leases::renew`]): extend every lease this node holds, in one round trip per
//!   few hundred rooms. A lease that expired while nobody else took the room (this node was
//!   paused or cut off) is taken back under the same epoch; one that another node took is
//!   lost. A lease someone asked to be handed over is reported as wanted.
//! - **release** ([`Leases::release`]): give the lease up, only if it is still ours.
//!
//! What the node does with the answers (load, hand over, stop) is the registry's business
//! (`crate::registry`); docs/architecture.md ("Many nodes") tells the whole story.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Script};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::ids::RoomId;
use crate::store::redis::{self, epoch_key, room_key};
use crate::store::Fence;

/// The key of a room's lease.
pub fn lease_key(room: RoomId) -> String {
    format!("wt:lease:{room}")
}

/// The key where a node asks the holder of a room's lease to hand the room over.
pub fn handover_key(room: RoomId) -> String {
    format!("wt:handover:{room}")
}

/// How long the epoch key outlives a room whose record has no expiry (or no record): long
/// enough that no stale owner is still around to write under an epoch that restarted.
const EPOCH_FLOOR_MS: u64 = 24 * 60 * 60 * 1000;

/// Takes the lease (module doc). KEYS: lease, epoch, handover, record. ARGV: node,
/// instance, lease TTL (ms), epoch floor (ms). Replies `{1, epoch}` when taken, `{0,
/// holder}` when someone else holds it.
const CLAIM: &str = r"
local held = redis.call('GET', KEYS[1])
if held then
  local node, instance = string.match(held, '^(%S+) (%S+) %d+$')
  if node ~= ARGV[1] or instance == ARGV[2] then return {0, held} end
end
local epoch = redis.call('INCR', KEYS[2])
local ttl = redis.call('PTTL', KEYS[4])
local floor = tonumber(ARGV[4])
if ttl < floor then ttl = floor end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. epoch, 'PX', ARGV[3])
redis.call('DEL', KEYS[3])
return {1, epoch}
";

/// Renews leases (module doc). KEYS: lease, epoch, handover of each room. ARGV: lease TTL
/// (ms), then each room's lease value and epoch. Replies one status per room: 0 lost, 1 kept,
/// 2 kept but wanted elsewhere.
const RENEW: &str = r"
local out = {}
for i = 1, #KEYS / 3 do
  local lease, epoch, handover = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local held = redis.call('GET', lease)
  local status = 0
  if held == ARGV[2 * i] or (not held and redis.call('GET', epoch) == ARGV[2 * i + 1]) then
    redis.call('SET', lease, ARGV[2 * i], 'PX', ARGV[1])
    status = 1
    if redis.call('EXISTS', handover) == 1 then status = 2 end
  end
  out[i] = status
end
return out
";

/// Releases a lease if it is still ours. KEYS: lease. ARGV: our lease value. Replies 1 if
/// released.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Rooms renewed per script call: keeps each call short, so Redis never stalls on one node.
const RENEW_CHUNK: usize = 256;

/// The answer to a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The lease is ours, under this epoch.
    Taken(Fence),
    /// Another node (or a load still running on this one) holds it.
    Held {
        /// The holder's node id.
        node: String,
        /// Whether the holder is this very process.
        ours: bool,
    },
}

/// What a renewal found for one room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours.
    Kept,
    /// Still ours, and another node asked for it.
    Wanted,
    /// Another node holds it now: stop the room without writing.
    Lost,
}

/// A lease this node holds.
#[derive(Clone, Debug)]
struct Held {
    /// The epoch it was taken under.
    fence: Fence,
    /// The lease key's value while it is ours.
    value: String,
}

/// This node's leases, and its connection to the Redis that keeps them.
pub struct Leases {
    /// This node's id (`--node-id`).
    node: String,
    /// This process, among processes with the same node id over time: a lease left by an
    /// earlier one is taken over at once, since that process is gone.
    instance: String,
    /// How long a lease lives without renewal.
    ttl: Duration,
    /// The connection (multiplexed, reconnecting; clones share it).
    conn: ConnectionManager,
    /// Rooms whose lease this node holds.
    held: Mutex<HashMap<RoomId, Held>>,
    /// The scripts (sent by hash; loaded again when Redis forgot them).
    claim: Script,
    /// See [`RENEW`].
    renew: Script,
    /// See [`RELEASE`].
    release: Script,
}

impl Leases {
    /// Connects to Redis at `url` for node `node`; fails if Redis does not answer within
    /// `timeout`.
    pub async fn connect(
        url: &str,
        node: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Leases, RedisError> {
        let conn = redis::connection(url, timeout).await?;
        Ok(Leases {
            node: node.to_owned(),
            instance: Uuid::new_v4().simple().to_string(),
            ttl,
            conn,
            held: Mutex::new(HashMap::new()),
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long a lease lives without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often [`Leases::renew`] should run: three chances before a lease runs out.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Tries to take `room`'s lease.
    pub async fn claim(&self, room: RoomId) -> Result<Claim, RedisError> {
        let mut conn = self.conn.clone();
        let (taken, value): (i64, ::redis::Value) = self
            .claim
            .key(lease_key(room))
            .key(epoch_key(room))
            .key(handover_key(room))
            .key(room_key(room))
            .arg(&self.node)
            .arg(&self.instance)
            .arg(millis(self.ttl))
            .arg(EPOCH_FLOOR_MS)
            .invoke_async(&mut conn)
            .await?;
        if taken == 1 {
            let epoch: u64 = ::redis::from_redis_value(value)?;
            let fence = Fence(epoch);
            self.held.lock().insert(
                room,
                Held {
                    fence,
                    value: self.value(fence),
                },
            );
            return Ok(Claim::Taken(fence));
        }
        let holder: String = ::redis::from_redis_value(value)?;
        let mut parts = holder.split(' ');
        let node = parts.next().unwrap_or_default().to_owned();
        let ours = node == self.node && parts.next() == Some(self.instance.as_str());
        Ok(Claim::Held { node, ours })
    }

    /// Asks the holder of `room`'s lease to hand the room over (it sees the request at its
    /// next renewal). The request lapses after two lease TTLs if nobody acts on it.
    pub async fn ask_handover(&self, room: RoomId) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        ::redis::cmd("SET")
            .arg(handover_key(room))
            .arg(&self.node)
            .arg("PX")
            .arg(millis(self.ttl) * 2)
            .query_async(&mut conn)
            .await
    }

    /// Gives up `room`'s lease if it is still ours under `fence` (another node may take the
    /// room at once). Returns whether Redis held it for us.
    pub async fn release(&self, room: RoomId, fence: Fence) -> Result<bool, RedisError> {
        let value = {
            let mut held = self.held.lock();
            match held.get(&room) {
                Some(h) if h.fence == fence => held.remove(&room).map(|h| h.value),
                // Lost, or taken again since under a newer epoch: nothing of ours to give.
                _ => None,
            }
        };
        let Some(value) = value else {
            return Ok(false);
        };
        let mut conn = self.conn.clone();
        let released: i64 = self
            .release
            .key(lease_key(room))
            .arg(value)
            .invoke_async(&mut conn)
            .await?;
        Ok(released == 1)
    }

    /// Stops renewing `room`'s lease under `fence` without touching Redis (the room was
    /// lost, or could not be released: the lease then runs out by itself).
    pub fn forget(&self, room: RoomId, fence: Fence) {
        let mut held = self.held.lock();
        if held.get(&room).is_some_and(|h| h.fence == fence) {
            held.remove(&room);
        }
    }

    /// The epoch this node holds `room` under, if it does.
    pub fn fence(&self, room: RoomId) -> Option<Fence> {
        self.held.lock().get(&room).map(|h| h.fence)
    }

    /// Rooms whose lease this node holds.
    pub fn len(&self) -> usize {
        self.held.lock().len()
    }

    /// Whether this node holds no lease.
    pub fn is_empty(&self) -> bool {
        self.held.lock().is_empty()
    }

    /// Renews every lease this node holds; returns each room's outcome with the epoch it was
    /// renewed under. Lost rooms are forgotten here. An error (Redis unreachable) renews
    /// nothing: the caller keeps its rooms and tries again (see the module doc of
    /// `crate::registry` for why).
    pub async fn renew(&self) -> Result<Vec<(RoomId, Fence, Renewal)>, RedisError> {
        let held: Vec<(RoomId, Held)> = self
            .held
            .lock()
            .iter()
            .map(|(room, h)| (*room, h.clone()))
            .collect();
        let mut outcomes = Vec::with_capacity(held.len());
        let mut conn = self.conn.clone();
        for chunk in held.chunks(RENEW_CHUNK) {
            let mut call = self.renew.prepare_invoke();
            call.arg(millis(self.ttl));
            for (room, h) in chunk {
                call.key(lease_key(*room))
                    .key(epoch_key(*room))
                    .key(handover_key(*room))
                    .arg(&h.value)
                    .arg(h.fence.0);
            }
            let statuses: Vec<i64> = call.invoke_async(&mut conn).await?;
            for ((room, h), status) in chunk.iter().zip(statuses) {
                let renewal = match status {
                    1 => Renewal::Kept,
                    2 => Renewal::Wanted,
                    _ => Renewal::Lost,
                };
                if renewal == Renewal::Lost {
                    self.forget(*room, h.fence);
                }
                outcomes.push((*room, h.fence, renewal));
            }
        }
        Ok(outcomes)
    }

    /// The lease key's value while we hold it under `fence`.
    fn value(&self, fence: Fence) -> String {
        format!("{} {} {}", self.node, self.instance, fence.0)
    }
}

/// A duration in whole milliseconds, for `PX`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
