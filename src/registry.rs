//! The room registry: which rooms exist, and their actors' addresses.
//!
//! A read-mostly map behind a `parking_lot::RwLock`: every WebSocket upgrade and REST read
//! takes the read lock for one lookup; only creating and removing rooms write.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Addr};
use parking_lot::RwLock;

use crate::clock;
use crate::error::ApiError;
use crate::ids::{RoomId, Secret};
use crate::metrics::Metrics;
use crate::protocol::{ControlMode, Video};
use crate::room::actor::{RoomActor, RoomTiming, Shutdown};
use crate::room::state::{RoomSettings, RoomState};

/// All rooms on this server.
pub struct Rooms {
    /// Room id → actor.
    map: RwLock<HashMap<RoomId, Addr<RoomActor>>>,
    /// Most rooms at once.
    max_rooms: usize,
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
    /// An empty registry holding at most `max_rooms`.
    pub fn new(max_rooms: usize) -> Self {
        Rooms {
            map: RwLock::new(HashMap::new()),
            max_rooms,
        }
    }

    /// Creates a room and starts its actor on the current arbiter; returns its id and host
    /// token.
    pub fn create(
        self: &Arc<Self>,
        new: NewRoom,
        settings: RoomSettings,
        timing: RoomTiming,
        metrics: Arc<Metrics>,
    ) -> Result<(RoomId, Secret), ApiError> {
        let mut map = self.map.write();
        if map.len() >= self.max_rooms {
            return Err(ApiError::RoomLimit(self.max_rooms));
        }
        let id = RoomId::new();
        let token = Secret::generate();
        let state = RoomState::new(
            id,
            new.name,
            new.control,
            new.video,
            token.clone(),
            settings,
            clock::now_ms(),
        );
        let addr = RoomActor::new(state, timing, Arc::clone(self), metrics).start();
        map.insert(id, addr);
        Ok((id, token))
    }

    /// The room's actor, if the room exists.
    pub fn get(&self, id: &RoomId) -> Option<Addr<RoomActor>> {
        self.map.read().get(id).cloned()
    }

    /// Forgets a room (its actor is stopping).
    pub fn remove(&self, id: &RoomId) {
        self.map.write().remove(id);
    }

    /// Number of rooms.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }

    /// Tells every room to close its connections for a restart.
    pub fn shutdown_all(&self) {
        for addr in self.map.write().drain().map(|(_, a)| a) {
            addr.do_send(Shutdown);
        }
    }
}
