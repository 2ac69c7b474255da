//! The room registry: which rooms are loaded, their actors' addresses, and how a room gets
//! here — created, or loaded from the store when someone asks for a room that is stored but
//! not in memory (after a restart, or after it was unloaded while idle).
//!
//! A read-mostly map behind a `parking_lot::RwLock`: every WebSocket upgrade and REST read
//! takes the read lock for one lookup; only creating, loading and removing rooms write.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use parking_lot::RwLock;

use crate::clock;
use crate::error::ApiError;
use crate::ids::{RoomId, Secret};
use crate::limits::per_ip::{SessionCounter, SessionSlot};
use crate::metrics::Metrics;
use crate::protocol::{ChatMessage, ControlMode, Video};
use crate::room::actor::{Origin, RoomActor, RoomTiming};
use crate::room::mailbox::Shutdown;
use crate::room::record::RoomRecord;
use crate::room::state::{RoomSettings, RoomState};
use crate::store::{Store, WriteOp};

/// One room in the registry.
struct Entry {
    /// The room's actor.
    addr: Addr<RoomActor>,
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
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
}

/// All rooms on this server.
pub struct Rooms {
    /// The loaded rooms.
    map: RwLock<Map>,
    /// Live rooms per creating client.
    per_creator: SessionCounter,
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
            config,
        }
    }

    /// The store rooms are kept in.
    pub fn store(&self) -> &Store {
        &self.config.store
    }

    /// Creates a room for the client at `creator`, stores it, and starts its actor on the
    /// current arbiter; returns its id and host token. The answer waits for the store to
    /// commit the room, so a room whose link was handed out survives a crash.
    pub async fn create(
        self: &Arc<Self>,
        new: NewRoom,
        creator: IpAddr,
    ) -> Result<(RoomId, Secret), ApiError> {
        self.check_open_and_room()?;
        let slot = self.per_creator.acquire(creator).ok_or_else(|| {
            self.config.metrics.reject("rooms_per_ip");
            ApiError::RateLimited(format!(
                "{creator} already has as many rooms as one address may hold; \
                 an unused room is removed after a while"
            ))
        })?;
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
        match committed.await {
            Ok(Ok(())) => {}
            // Degraded: the room works from memory and its write is retried.
            Ok(Err(e)) => tracing::warn!(room = %id, error = %e, "new room not stored yet"),
            Err(_) => tracing::warn!(room = %id, "the store stopped before storing a new room"),
        }
        self.insert(id, state, Origin::Created, Some(slot))
            .map(|_| (id, token))
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
        let stored = self.config.store.load(*id).await.map_err(|e| {
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
        // Another request may have loaded it meanwhile: the map decides, under its lock.
        if let Some(addr) = self.get(id) {
            return Ok(Some(addr));
        }
        self.check_open_and_room()?;
        let state =
            RoomState::from_record(record, chat, self.config.settings.clone(), clock::now_ms());
        tracing::info!(room = %id, members = state.len(), "room loaded from the store");
        self.config.metrics.room_loaded();
        self.insert(*id, state, Origin::Loaded, None).map(Some)
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
        )
        .start();
        map.rooms.insert(
            id,
            Entry {
                addr: addr.clone(),
                _creator: creator,
            },
        );
        Ok(addr)
    }

    /// The room's actor, if the room is loaded.
    pub fn get(&self, id: &RoomId) -> Option<Addr<RoomActor>> {
        self.map.read().rooms.get(id).map(|e| e.addr.clone())
    }

    /// Forgets a room (its actor is stopping).
    pub fn remove(&self, id: &RoomId) {
        self.map.write().rooms.remove(id);
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
        let addrs: Vec<Addr<RoomActor>> = {
            let mut map = self.map.write();
            map.open = false;
            map.rooms.drain().map(|(_, e)| e.addr).collect()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let told = addrs.iter().map(|addr| addr.send(Shutdown));
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
