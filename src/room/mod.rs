//! Rooms: the rules ([`state`], with [`members`], [`playback`], [`queue`], [`hold`],
//! [`presence`], [`chat`]) and the actor that runs them ([`actor`]), delivering into each
//! member's queue ([`link`]) and pacing a big room's presence over the second ([`paced`]).

pub mod actor;
pub mod chat;
pub mod hold;
pub mod link;
pub mod mailbox;
pub mod members;
pub mod paced;
pub mod persist;
pub mod playback;
pub mod presence;
pub mod queue;
pub mod record;
pub mod state;

pub use actor::RoomActor;
