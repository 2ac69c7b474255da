//! The messages a room actor takes: from its members' sessions, from the HTTP handlers and
//! from the registry. Each carries what the room needs and nothing it would have to look up.

use std::time::Instant;

use actix::prelude::*;
use bytestring::ByteString;

use crate::error::RoomError;
use crate::ids::{ParticipantId, RoomId};
use crate::protocol::{ControlMode, JoinRequest, ParticipantRef, Playback, RoomCommand};
use crate::room::link::SessionLink;
use crate::room::state::ConnId;

/// Join request from a session, answered with the participant's id and its `welcome`.
///
/// The session holds its other events until the answer comes (`ctx.wait`), so the welcome it
/// writes is ahead of every broadcast the room queues for it afterwards.
#[derive(Message)]
#[rtype(result = "Result<Admitted, RoomError>")]
pub struct Join {
    /// The connection's id.
    pub conn: ConnId,
    /// How to reach the session.
    pub link: SessionLink,
    /// The decoded `join` (its name already checked).
    pub request: JoinRequest,
}

/// A session's admission to a room.
#[derive(Debug)]
pub struct Admitted {
    /// The participant's id (the old one when resumed).
    pub id: ParticipantId,
    /// The `welcome`, encoded.
    pub welcome: ByteString,
}

/// A joined participant's request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromMember {
    /// Who.
    pub id: ParticipantId,
    /// Over which connection (requests from a replaced connection are dropped).
    pub conn: ConnId,
    /// What, as decoded from the frame.
    pub command: RoomCommand,
    /// When the session received the frame, for the broadcast latency metric.
    pub received: Instant,
}

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    /// Who.
    pub id: ParticipantId,
    /// Which connection ended.
    pub conn: ConnId,
    /// How it ended, which decides whether the participant keeps its resume grace period.
    pub ended: SessionEnd,
}

/// How a session ended, as far as its room cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// A clean close, such as a reload: the participant keeps its grace period.
    Closed,
    /// The heartbeat gave up on the client: removed at once.
    TimedOut,
}

/// The room as shown by `GET /api/rooms/{id}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoomSummary {
    /// Room id.
    pub room_id: RoomId,
    /// Room name.
    pub name: String,
    /// Control mode.
    pub control: ControlMode,
    /// Whether a buffering member puts the room on hold.
    pub wait_for_buffering: bool,
    /// Longest hold for buffering members, in seconds.
    pub buffering_timeout_s: f64,
    /// Participant count.
    pub participants: usize,
    /// The host, if any.
    pub host: Option<ParticipantRef>,
    /// The live clock.
    pub playback: Playback,
    /// Items waiting in the queue.
    pub queued: usize,
}

/// Asks for the room's summary.
#[derive(Message)]
#[rtype(result = "RoomSummary")]
pub struct GetSummary;

/// The room leaves this server: it tells everyone to reconnect and closes every connection
/// with 1012, then stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown(pub Leaving);

/// Why a room leaves its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaving {
    /// The server is shutting down: the room writes its last state first.
    Restart,
    /// Another node asked for the room (many-node mode): the room writes its last state
    /// first, and its members reconnect to that node through the balancer.
    Moved,
    /// Another node took the room over while this one was paused or cut off: the room
    /// writes nothing (the store would refuse it) and drops chat not yet committed.
    Lost,
}

impl Leaving {
    /// Whether the room writes its last state on the way out.
    pub fn writes(self) -> bool {
        self != Leaving::Lost
    }

    /// The close reason members see.
    pub fn close_text(self) -> &'static str {
        match self {
            Leaving::Restart => "server restarting",
            Leaving::Moved | Leaving::Lost => "room moved to another server",
        }
    }
}
