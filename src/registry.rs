//! The room registry: which rooms exist, and their actors' addresses.
//!
//! A read-mostly map behind a `parking_lot::RwLock`: every WebSocket upgrade and REST read
//! takes the read lock for one lookup; only creating and removing rooms write.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use actix::{Actor, Addr};
use parking_lot::RwLock;

use crate::clock;
use crate::error::ApiError;
use crate::ids::{RoomId, Secret};
use crate::limits::per_ip::{SessionCounter, SessionSlot};
use crate::metrics::Metrics;
use crate::protocol::{ControlMode, Video};
use crate::room::actor::{RoomActor, RoomTiming};
use crate::room::mailbox::Shutdown;
use crate::room::state::{RoomSettings, RoomState};

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

/// All rooms on this server.
pub struct Rooms {
    /// The rooms.
    map: RwLock<Map>,
    /// Most rooms at once.
    max_rooms: usize,
    /// Live rooms per creating client.
    per_creator: SessionCounter,
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
    /// An empty registry holding at most `max_rooms`, at most `max_per_creator` of them
    /// created by one client (0: unlimited).
    pub fn new(max_rooms: usize, max_per_creator: usize) -> Self {
        Rooms {
            map: RwLock::new(Map {
                rooms: HashMap::new(),
                open: true,
            }),
            max_rooms,
            per_creator: SessionCounter::new(max_per_creator),
        }
    }

    /// Creates a room for the client at `creator` and starts its actor on the current
    /// arbiter; returns its id and host token.
    pub fn create(
        self: &Arc<Self>,
        new: NewRoom,
        creator: IpAddr,
        settings: RoomSettings,
        timing: RoomTiming,
        metrics: Arc<Metrics>,
    ) -> Result<(RoomId, Secret), ApiError> {
        let mut map = self.map.write();
        if !map.open {
            return Err(ApiError::ShuttingDown);
        }
        if map.rooms.len() >= self.max_rooms {
            return Err(ApiError::RoomLimit(self.max_rooms));
        }
        let slot = self.per_creator.acquire(creator).ok_or_else(|| {
            metrics.reject("rooms_per_ip");
            ApiError::RateLimited(format!(
                "{creator} already has as many rooms as one address may hold; \
                 an unused room is removed after a while"
            ))
        })?;
        let id = RoomId::new();
        let token = Secret::generate();
        let state = RoomState::new(
            id,
            new.name,
            new.control,
            new.video,
            token.hash(),
            settings,
            clock::now_ms(),
        );
        let addr = RoomActor::new(state, timing, Arc::clone(self), metrics).start();
        map.rooms.insert(
            id,
            Entry {
                addr,
                _creator: Some(slot),
            },
        );
        Ok((id, token))
    }

    /// The room's actor, if the room exists.
    pub fn get(&self, id: &RoomId) -> Option<Addr<RoomActor>> {
        self.map.read().rooms.get(id).map(|e| e.addr.clone())
    }

    /// Forgets a room (its actor is stopping).
    pub fn remove(&self, id: &RoomId) {
        self.map.write().rooms.remove(id);
    }

    /// Number of rooms.
    pub fn len(&self) -> usize {
        self.map.read().rooms.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.map.read().rooms.is_empty()
    }

    /// Stops taking rooms and tells every room to close its connections for a restart.
    pub fn shutdown_all(&self) {
        let mut map = self.map.write();
        map.open = false;
        for entry in map.rooms.drain().map(|(_, e)| e) {
            entry.addr.do_send(Shutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, item 12: `POST /api/rooms` checks the shutdown flag before it reads its
    /// body; a room created after shutdown emptied the map would live on unannounced. The
    /// registry itself refuses.
    #[test]
    fn no_room_is_created_once_shutdown_began() {
        let rooms = Arc::new(Rooms::new(10, 0));
        rooms.shutdown_all();
        let timing = RoomTiming {
            silence_evict_ms: 1.0,
            idle_ttl_ms: 1.0,
            unjoined_ttl_ms: 1.0,
            queue: crate::room::link::QueueLimits {
                max_lag_ms: 1.0,
                max_bytes: 1,
            },
        };
        let created = rooms.create(
            NewRoom {
                name: String::new(),
                control: ControlMode::Host,
                video: None,
            },
            "192.0.2.1".parse().unwrap(),
            RoomSettings::default(),
            timing,
            Arc::new(Metrics::new()),
        );
        assert!(matches!(created, Err(ApiError::ShuttingDown)));
        assert!(rooms.is_empty());
    }
}
