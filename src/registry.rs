//! The room registry: which rooms are loaded, their actors' addresses, and how a room gets
//! here — created, or loaded from the store when someone asks for a room that is stored but
//! not in memory (after a restart, or after it was unloaded while idle).
//!
//! A read-mostly map behind a `parking_lot::RwLock`: every WebSocket upgrade and REST read
//! takes the read lock for one lookup; only creating, loading and removing rooms write.
//!
//! # Many nodes
//!
//! With `--redis-url`, nodes share the store and a room runs where its lease is
//! (`crate::cluster`):
//! - **Create** only stores the room: its first request, routed by the balancer, loads it
//!   on the node its id hashes to.
//! - **Load** takes the lease first (asking the holder to hand the room over, and waiting
//!   up to a lease TTL and a second for it or for a dead holder's lease to run out; past
//!   that, 503 `room_moving`), then reads the room, so it sees everything the last holder
//!   wrote.
//! - **Renewal** ([`Rooms::keep_leases`]) runs every third of the TTL: a room someone asked
//!   for is handed over (last state written, members closed with 1012, lease released once
//!   the store committed); a room another node took is dropped without a write.
//! - **Unreachable Redis** renews nothing and stops nothing: rooms keep playing from memory
//!   as on a single server (issue 11's rule for a failing store). If another node took a room
//!   meanwhile, the fence refuses this node's writes and the first renewal that reaches
//!   Redis stops the room here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use parking_lot::{Mutex, RwLock};

use crate::clock;
use crate::cluster::{Claim, Leases, Renewal};
use crate::error::ApiError;
use crate::ids::{RoomId, Secret};
use crate::limits::per_ip::{SessionCounter, SessionSlot};
use crate::metrics::Metrics;
use crate::protocol::{ChatMessage, ControlMode, Video};
use crate::room::actor::{Origin, RoomActor, RoomTiming};
use crate::room::mailbox::{Leaving, Shutdown};
use crate::room::record::RoomRecord;
use crate::room::state::{RoomSettings, RoomState};
use crate::store::{Fence, Store, WriteOp};

/// How often a node waiting for a room's lease asks again.
const CLAIM_EVERY: Duration = Duration::from_millis(50);

/// One room in the registry.
struct Entry {
    /// The room's actor.
    addr: Addr<RoomActor>,
    /// The epoch of the room's lease (many-node mode), telling this actor from a later one
    /// of the same room.
    fence: Option<Fence>,
    /// The room's place in its creator's count of live rooms, given back when it goes.
    _creator: Option<SessionSlot>,
}

/// The map and whether it still takes rooms, under one lock so that no room can be created
/// after shutdown has emptied the map.
struct Map {
    /// Room id → entry.
    rooms: HashMap<RoomId, Entry>,
    /// False once shutdown began.
    open: bool,
}

/// What every room of this server is made with.
pub struct RoomsConfig {
    /// Most rooms loaded at once.
    pub max_rooms: usize,
    /// Most live rooms one client may create (0: unlimited).
    pub max_per_creator: usize,
    /// The rules of every room.
    pub settings: RoomSettings,
    /// The timing of every room actor.
    pub timing: RoomTiming,
    /// Where rooms are stored.
    pub store: Store,
    /// Room leases, when several nodes share the store (`--redis-url`).
    pub leases: Option<Arc<Leases>>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
}

/// All rooms on this server.
pub struct Rooms {
    /// The loaded rooms.
    map: RwLock<Map>,
    /// Live rooms per creating client.
    per_creator: SessionCounter,
    /// One lock per room being loaded, so that concurrent requests for it load it once.
    loading: Mutex<HashMap<RoomId, Arc<tokio::sync::Mutex<()>>>>,
    /// How rooms are made, and where they are stored.
    config: RoomsConfig,
}

/// What a new room needs besides its id.
pub struct NewRoom {
    /// Display name.
    pub name: String,
    /// Who may control playback.
    pub control: ControlMode,
    /// First video, if any.
    pub video: Option<Video>,
}

impl Rooms {
    /// An empty registry.
    pub fn new(config: RoomsConfig) -> Self {
        Rooms {
            map: RwLock::new(Map {
                rooms: HashMap::new(),
                open: true,
            }),
            per_creator: SessionCounter::new(config.max_per_creator),
            loading: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// The store rooms are kept in.
    pub fn store(&self) -> &Store {
        &self.config.store
    }

    /// The room leases, in many-node mode.
    pub fn leases(&self) -> Option<&Arc<Leases>> {
        self.config.leases.as_ref()
    }

    /// Creates a room for the client at `creator`, stores it, and starts its actor on the
    /// current arbiter; returns its id and host token. The answer waits for the store to
    /// commit the room, so a room whose link was handed out survives a crash.
    ///
    /// In many-node mode the room is only stored (and the answer is 503 if the store cannot
    /// take it): the node its id hashes to loads it on its first request. The count of live
    /// rooms per creator is then not kept (each node only knows the rooms it runs); the
    /// creation rate per client still applies.
    pub async fn create(
        self: &Arc<Self>,
        new: NewRoom,
        creator: IpAddr,
    ) -> Result<(RoomId, Secret), ApiError> {
        self.check_open_and_room()?;
        let clustered = self.config.leases.is_some();
        let slot = if clustered {
            None
        } else {
            Some(self.creator_slot(creator)?)
        };
        let id = RoomId::new();
        let token = Secret::generate();
        let now = clock::now_ms();
        let state = RoomState::new(
            id,
            new.name,
            new.control,
            new.video,
            token.hash(),
            self.config.settings.clone(),
            now,
        );
        let (ack, committed) = tokio::sync::oneshot::channel();
        let expires_at_ms = (now + self.config.timing.unjoined_ttl_ms) as u64;
        self.config.store.write(
            WriteOp::PutRoom {
                room: id,
                record: state.to_record().to_bytes(),
                expires_at_ms,
            },
            Some(ack),
        );
        let stored = match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the store stopped".to_owned()),
        };
        match (stored, clustered) {
            (Ok(()), true) => return Ok((id, token)),
            (Ok(()), false) => {}
            // Other nodes would not find it: refuse rather than hand out a dead link.
            (Err(e), true) => return Err(ApiError::StoreUnavailable(e)),
            // Degraded: the room works from memory and its write is retried.
            (Err(e), false) => tracing::warn!(room = %id, error = %e, "new room not stored yet"),
        }
        self.insert(id, state, Origin::Created, None, slot)
            .map(|_| (id, token))
    }

    /// The creator's place in its count of live rooms, or 429 past the limit.
    fn creator_slot(&self, creator: IpAddr) -> Result<SessionSlot, ApiError> {
        self.per_creator.acquire(creator).ok_or_else(|| {
            self.config.metrics.reject("rooms_per_ip");
            ApiError::RateLimited(format!(
                "{creator} already has as many rooms as one address may hold; \
                 an unused room is removed after a while"
            ))
        })
    }

    /// The room's actor: the loaded one, or the room loaded from the store. `None` when no
    /// such room exists (never created, or deleted).
    pub async fn get_or_load(
        self: &Arc<Self>,
        id: &RoomId,
    ) -> Result<Option<Addr<RoomActor>>, ApiError> {
        if let Some(addr) = self.get(id) {
            return Ok(Some(addr));
        }
        let lock = Arc::clone(self.loading.lock().entry(*id).or_default());
        let loaded = {
            let _loading = lock.lock().await;
            self.load(*id).await
        };
        let mut loading = self.loading.lock();
        // Ours and the map's: nobody else is waiting on this lock.
        if Arc::strong_count(&lock) == 2 {
            loading.remove(id);
        }
        loaded
    }

    /// Loads a room that was not in memory (under its load lock).
    async fn load(self: &Arc<Self>, id: RoomId) -> Result<Option<Addr<RoomActor>>, ApiError> {
        // A request that held the lock before us may have loaded it.
        if let Some(addr) = self.get(&id) {
            return Ok(Some(addr));
        }
        self.check_open_and_room()?;
        let fence = match &self.config.leases {
            Some(leases) => Some(self.take_lease(leases, id).await?),
            None => None,
        };
        let loaded = match self.read(id).await {
            Ok(Some(state)) => {
                tracing::info!(room = %id, members = state.len(), fence = ?fence, "room loaded from the store");
                self.config.metrics.room_loaded();
                self.insert(id, state, Origin::Loaded, fence, None)
                    .map(Some)
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if let (Some(leases), Some(fence), Ok(None) | Err(_)) =
            (&self.config.leases, fence, &loaded)
        {
            // Nothing runs here after all: let the lease go at once.
            if let Err(e) = leases.release(id, fence).await {
                tracing::warn!(room = %id, error = %e, "could not release a lease; it runs out by itself");
                leases.forget(id, fence);
            }
        }
        loaded
    }

    /// Takes `room`'s lease, asking its holder to hand the room over; waits up to a lease
    /// TTL and a second (a dead holder's lease runs out within the TTL). Past that, 503
    /// `room_moving`.
    async fn take_lease(&self, leases: &Leases, room: RoomId) -> Result<Fence, ApiError> {
        let deadline = tokio::time::Instant::now() + leases.ttl() + Duration::from_secs(1);
        let mut asked = false;
        loop {
            let claim = leases.claim(room).await.map_err(|e| {
                tracing::warn!(room = %room, error = %e, "cannot claim a room");
                ApiError::StoreUnavailable(e.to_string())
            })?;
            let holder = match claim {
                Claim::Taken(fence) => return Ok(fence),
                Claim::Held { node, ours } => {
                    if !ours && !asked {
                        tracing::info!(room = %room, holder = %node, "asking for a room's hand-over");
                        leases
                            .ask_handover(room)
                            .await
                            .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?;
                        asked = true;
                    }
                    node
                }
            };
            if tokio::time::Instant::now() + CLAIM_EVERY > deadline {
                return Err(ApiError::RoomMoving(holder));
            }
            tokio::time::sleep(CLAIM_EVERY).await;
        }
    }

    /// The room as stored, ready to run, or `None` if it is not stored.
    async fn read(
        &self,
        id: RoomId,
    ) -> Result<Option<RoomState<crate::room::link::SessionLink>>, ApiError> {
        let stored = self.config.store.load(id).await.map_err(|e| {
            tracing::warn!(room = %id, error = %e, "cannot load a room");
            ApiError::StoreUnavailable(e.to_string())
        })?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let record = RoomRecord::from_bytes(&stored.record).map_err(|e| {
            tracing::error!(room = %id, error = %e, "stored room cannot be read");
            ApiError::Internal(format!(
                "room {id} is stored in a form this server cannot read"
            ))
        })?;
        let chat: Vec<ChatMessage> = stored
            .chat
            .iter()
            .filter_map(|bytes| match serde_json::from_slice(bytes) {
                Ok(message) => Some(message),
                Err(e) => {
                    tracing::warn!(room = %id, error = %e, "skipping an unreadable stored chat message");
                    None
                }
            })
            .collect();
        Ok(Some(RoomState::from_record(
            record,
            chat,
            self.config.settings.clone(),
            clock::now_ms(),
        )))
    }

    fn check_open_and_room(&self) -> Result<(), ApiError> {
        let map = self.map.read();
        if !map.open {
            return Err(ApiError::ShuttingDown);
        }
        if map.rooms.len() >= self.config.max_rooms {
            return Err(ApiError::RoomLimit(self.config.max_rooms));
        }
        Ok(())
    }

    /// Starts the actor of `state` and registers it, unless shutdown began, the server is
    /// full, or the room is already there (its actor wins; `state` is dropped).
    fn insert(
        self: &Arc<Self>,
        id: RoomId,
        state: RoomState<crate::room::link::SessionLink>,
        origin: Origin,
        fence: Option<Fence>,
        creator: Option<SessionSlot>,
    ) -> Result<Addr<RoomActor>, ApiError> {
        let mut map = self.map.write();
        if !map.open {
            return Err(ApiError::ShuttingDown);
        }
        if let Some(entry) = map.rooms.get(&id) {
            return Ok(entry.addr.clone());
        }
        if map.rooms.len() >= self.config.max_rooms {
            return Err(ApiError::RoomLimit(self.config.max_rooms));
        }
        let addr = RoomActor::new(
            state,
            origin,
            self.config.timing.clone(),
            Arc::clone(self),
            Arc::clone(&self.config.metrics),
            self.config.store.clone(),
            fence,
        )
        .start();
        map.rooms.insert(
            id,
            Entry {
                addr: addr.clone(),
                fence,
                _creator: creator,
            },
        );
        Ok(addr)
    }

    /// The room's actor, if the room is loaded.
    pub fn get(&self, id: &RoomId) -> Option<Addr<RoomActor>> {
        self.map.read().rooms.get(id).map(|e| e.addr.clone())
    }

    /// Takes the room out of the map if its entry is the actor holding `fence` (a later
    /// actor of the same room stays).
    fn take(&self, id: RoomId, fence: Option<Fence>) -> Option<Entry> {
        let mut map = self.map.write();
        match map.rooms.get(&id) {
            Some(entry) if entry.fence == fence => map.rooms.remove(&id),
            _ => None,
        }
    }

    /// A room's actor stopped by itself (unloaded or deleted after its last write): forget
    /// it, and in many-node mode let its lease go once the store has committed that write.
    pub fn stopped(self: &Arc<Self>, id: RoomId, fence: Option<Fence>) {
        self.take(id, fence);
        if let Some(fence) = fence {
            self.release_after_flush(id, fence);
        }
    }

    /// The store refused a write of the room under `fence`: another node took it over. The
    /// actor is leaving by itself; its lease is not ours any more.
    pub fn lost(&self, id: RoomId, fence: Option<Fence>) {
        self.take(id, fence);
        if let (Some(leases), Some(fence)) = (&self.config.leases, fence) {
            leases.forget(id, fence);
        }
    }

    /// Releases the lease of a room that stopped here, once everything it wrote is committed,
    /// so the next holder loads its last state. A store that cannot commit in a lease TTL
    /// keeps the lease from being released: it then runs out by itself, and the fence
    /// refuses whatever of ours lands later.
    fn release_after_flush(self: &Arc<Self>, id: RoomId, fence: Fence) {
        let Some(leases) = self.config.leases.clone() else {
            return;
        };
        let store = self.config.store.clone();
        actix::spawn(async move {
            if store.flush(leases.ttl()).await > 0 {
                tracing::warn!(room = %id, "store did not commit a room's last state in time: its lease runs out instead");
                leases.forget(id, fence);
                return;
            }
            match leases.release(id, fence).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(room = %id, error = %e, "could not release a lease; it runs out by itself");
                    leases.forget(id, fence);
                }
            }
        });
    }

    /// Renews this node's leases every third of their TTL until shutdown, handing over rooms
    /// other nodes ask for and dropping rooms they took (module doc). Returns at once on a
    /// server of its own.
    pub async fn keep_leases(self: Arc<Self>) {
        let Some(leases) = self.config.leases.clone() else {
            return;
        };
        let mut every = tokio::time::interval(leases.renew_every());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            every.tick().await;
            if !self.map.read().open {
                return;
            }
            let outcomes = match leases.renew().await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot renew room leases; rooms keep running");
                    }
                    failing = true;
                    continue;
                }
            };
            if std::mem::take(&mut failing) {
                tracing::info!("room leases renewed again");
            }
            for (id, fence, renewal) in outcomes {
                match renewal {
                    Renewal::Kept => {}
                    Renewal::Wanted => self.hand_over(id, fence),
                    Renewal::Lost => {
                        tracing::warn!(room = %id, "lost a room's lease to another node");
                        if let Some(entry) = self.take(id, Some(fence)) {
                            entry.addr.do_send(Shutdown(Leaving::Lost));
                        }
                    }
                }
            }
        }
    }

    /// Another node asked for room `id`: it writes its last state, closes its members (they
    /// come back through the balancer to that node), and its lease goes once that is
    /// committed.
    fn hand_over(self: &Arc<Self>, id: RoomId, fence: Fence) {
        let Some(entry) = self.take(id, Some(fence)) else {
            return;
        };
        tracing::info!(room = %id, "handing a room over");
        self.config.metrics.room_handed_over();
        let rooms = Arc::clone(self);
        actix::spawn(async move {
            // An actor already gone has written what it had.
            let _ = entry.addr.send(Shutdown(Leaving::Moved)).await;
            rooms.release_after_flush(id, fence);
        });
    }

    /// Number of loaded rooms.
    pub fn len(&self) -> usize {
        self.map.read().rooms.len()
    }

    /// Whether no room is loaded.
    pub fn is_empty(&self) -> bool {
        self.map.read().rooms.is_empty()
    }

    /// Stops taking rooms, tells every room to close its connections for a restart (each
    /// writes its last state first), and waits for the store to commit what they wrote,
    /// for at most `timeout` altogether.
    pub async fn shutdown_all(&self, timeout: Duration) {
        let entries: Vec<(RoomId, Entry)> = {
            let mut map = self.map.write();
            map.open = false;
            map.rooms.drain().collect()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let told = entries
            .iter()
            .map(|(_, entry)| entry.addr.send(Shutdown(Leaving::Restart)));
        if tokio::time::timeout_at(deadline, futures_util::future::join_all(told))
            .await
            .is_err()
        {
            tracing::warn!("some rooms did not answer the shutdown in time");
        }
        let left = tokio::time::timeout_at(
            deadline,
            self.config
                .store
                .flush(deadline.saturating_duration_since(tokio::time::Instant::now())),
        )
        .await
        .unwrap_or(usize::MAX);
        if left > 0 {
            tracing::warn!(pending = left, "store writes still pending at shutdown");
            return;
        }
        // Everything is committed: other nodes may take these rooms at once rather than
        // wait for the leases to run out.
        if let Some(leases) = &self.config.leases {
            let released = entries
                .iter()
                .filter_map(|(id, entry)| entry.fence.map(|fence| leases.release(*id, fence)));
            let _ =
                tokio::time::timeout_at(deadline, futures_util::future::join_all(released)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, item 12: `POST /api/rooms` checks the shutdown flag before it reads its
    /// body; a room created after shutdown emptied the map would live on unannounced. The
    /// registry itself refuses.
    #[actix_rt::test]
    async fn no_room_is_created_once_shutdown_began() {
        let rooms = Arc::new(Rooms::new(RoomsConfig {
            max_rooms: 10,
            max_per_creator: 0,
            settings: RoomSettings::default(),
            timing: RoomTiming {
                silence_evict_ms: 1.0,
                idle_ttl_ms: 1.0,
                unjoined_ttl_ms: 1.0,
                room_ttl_ms: 1.0,
                queue: crate::room::link::QueueLimits {
                    max_lag_ms: 1.0,
                    max_bytes: 1,
                },
            },
            store: Store::memory(),
            leases: None,
            metrics: Arc::new(Metrics::new()),
        }));
        rooms.shutdown_all(Duration::from_secs(1)).await;
        let created = rooms
            .create(
                NewRoom {
                    name: String::new(),
                    control: ControlMode::Host,
                    video: None,
                },
                "192.0.2.1".parse().unwrap(),
            )
            .await;
        assert!(matches!(created, Err(ApiError::ShuttingDown)));
        assert!(rooms.is_empty());
    }
}
