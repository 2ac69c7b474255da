//! Rooms: the rules ([`state`], [`playback`], [`presence`], [`chat`]) and the actor that
//! runs them, pacing a big room's presence over the second ([`paced`]).

pub mod actor;
pub mod chat;
pub mod link;
pub mod paced;
pub mod playback;
pub mod presence;
pub mod state;

pub use actor::RoomActor;
