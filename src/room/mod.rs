//! Rooms: the rules ([`state`], [`playback`], [`chat`]) and the actor that runs them.

pub mod actor;
pub mod chat;
pub mod playback;
pub mod state;

pub use actor::RoomActor;
