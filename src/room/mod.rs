//! Rooms: the rules ([`state`], [`playback`], [`presence`], [`chat`]) and the actor that
//! runs them.

pub mod actor;
pub mod chat;
pub mod playback;
pub mod presence;
pub mod state;

pub use actor::RoomActor;
