//! The WebSocket protocol: every JSON message a client and the server exchange over the
//! socket, in one place (the REST bodies are beside their handlers in `http/`).
//!
//! Client frames are decoded (and validated) once by [`decode`] into a [`ClientMessage`];
//! a room's part of it is a [`RoomCommand`] that goes to the room unchanged (`client`).
//! Server frames are built as [`ServerMessage`] values and encoded once by
//! [`ServerMessage::encode`], so a broadcast is serialized a single time and the same bytes go
//! to every member (`server`). The shapes both sides share are here. docs/api.md documents
//! every type with an example.

use serde::{Deserialize, Serialize};

use crate::clock::ServerMs;
use crate::ids::{ParticipantId, RoomId};

mod client;
mod server;
mod text;
mod video;

pub use client::{
    decode, ClientMessage, DecodeError, JoinRequest, PingRequest, RoomCommand,
    BUFFERING_TIMEOUT_RANGE_S, CLIENT_TYPES,
};
pub use server::{ServerMessage, Welcome, SERVER_TYPES};
pub use text::{
    clean_chat, clean_name, clean_room_name, clean_title, MAX_CHAT_CHARS, MAX_NAME_CHARS,
    MAX_ROOM_NAME_CHARS, MAX_TITLE_CHARS,
};
pub use video::{Subtitle, Video, MAX_URL_BYTES};

/// Slowest and fastest accepted playback rates.
pub const RATE_RANGE: (f64, f64) = (0.25, 4.0);
/// Furthest accepted position, in seconds (a week): beyond any real video, far below f64 trouble.
pub const MAX_POSITION_S: f64 = 7.0 * 24.0 * 3600.0;

/// Who may control playback in a room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlMode {
    /// Only the host.
    #[default]
    Host,
    /// Every participant.
    Everyone,
}

/// The authoritative playback clock as sent to clients.
///
/// While playing, the position at server time `t` is
/// `position + max(0, t - anchor) / 1000 * rate`; while paused it is `position`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Playback {
    /// The loaded video, if any.
    pub video: Option<Video>,
    /// Whether playback is paused.
    pub paused: bool,
    /// Position in seconds at `anchor`.
    pub position: f64,
    /// Playback rate (1.0 is normal speed).
    pub rate: f64,
    /// Server time (ms) at which `position` holds; in the future for a scheduled start.
    pub anchor: ServerMs,
    /// Increases with every change, so clients can drop stale updates.
    pub seq: u64,
    /// The video's length in seconds, once a client reported it (`media_info`).
    pub duration: Option<f64>,
    /// The video played to its end and nothing was queued: paused at `duration`.
    pub ended: bool,
    /// Participants the room is on hold for (paused until they stop buffering); empty when
    /// it is not on hold.
    pub waiting_for: Vec<ParticipantId>,
    /// While on hold: the server time at which the room plays on even if someone is still
    /// buffering (the hold's timeout, fixed when it began); `null` otherwise.
    pub hold_until: Option<ServerMs>,
}

/// A participant as shown in welcome, joined and presence messages.
///
/// Fields at their usual value (not host, not buffering, connected, nothing reported) are
/// left out: a big room's `welcome` lists thousands of entries, and this makes it a third
/// smaller. A missing field means that usual value, never "unchanged".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Stable participant id.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Whether this participant holds the host role.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_host: bool,
    /// Last reported round-trip time to the server, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Last reported drift from the authoritative clock (positive: ahead), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_ms: Option<f64>,
    /// Whether the participant's player is waiting for data.
    #[serde(default, skip_serializing_if = "is_false")]
    pub buffering: bool,
    /// False while a dropped participant is within its resume grace period.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub connected: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

/// `{id, name}` of a participant, where the rest of an entry is not needed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticipantRef {
    /// Participant id.
    pub id: ParticipantId,
    /// Display name at the time of reference.
    pub name: String,
}

/// A chat message as stored in the room log and broadcast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Per-room increasing id.
    pub id: u64,
    /// Who wrote it.
    pub from: ParticipantRef,
    /// The text, trimmed.
    pub text: String,
    /// Server time it was accepted.
    pub at: ServerMs,
}

/// The room's public description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Room id.
    pub id: RoomId,
    /// Room name (may be empty).
    pub name: String,
    /// Who may control playback.
    pub control: ControlMode,
    /// Whether a buffering member puts the room on hold.
    pub wait_for_buffering: bool,
    /// Longest hold for buffering members, in seconds.
    pub buffering_timeout_s: f64,
}

/// One video waiting in the room's queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    /// Per-room increasing id, to name it in `queue_remove` and `queue_move`.
    pub id: u64,
    /// The video.
    pub video: Video,
    /// A title to show, if one was given.
    pub title: Option<String>,
    /// Who queued it (name at the time).
    pub added_by: ParticipantRef,
}

/// Documented error codes carried by WebSocket `error` messages (REST errors use
/// [`crate::error::ApiError::code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not JSON.
    BadJson,
    /// The `type` was missing or unknown.
    UnknownType,
    /// The fields or values were wrong (including an invalid video).
    BadMessage,
    /// A message other than `join` arrived before `join`.
    NotJoined,
    /// A second `join` on the same connection.
    AlreadyJoined,
    /// A control message from someone who may not control.
    NotHost,
    /// The session's message budget is exhausted.
    RateLimited,
    /// The participant is sending chat too fast.
    ChatRateLimited,
    /// The room has reached its member limit.
    RoomFull,
    /// The room does not exist (any more).
    RoomNotFound,
    /// The display name is empty, too long, or has control characters.
    InvalidName,
    /// The chat text is empty or too long.
    InvalidChat,
    /// The participant or queue item named in the message does not exist.
    NotFound,
    /// The queue is at its length limit.
    QueueFull,
    /// `next` with nothing queued.
    QueueEmpty,
    /// The frame was binary; only text frames carry the protocol.
    BinaryUnsupported,
}

/// WebSocket close codes the server uses, with their meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// 1007: a text frame that is not valid UTF-8 (RFC 6455, section 8.1).
    InvalidData,
    /// 1008: no join in time, sustained abuse, or a policy refusal.
    Policy,
    /// 1009: a frame over the size limit.
    TooBig,
    /// 1012: the server is restarting; reconnect.
    Restart,
    /// 4000: evicted because the connection could not keep up.
    Evicted,
    /// 4001: the same participant resumed on another connection.
    Replaced,
    /// 4004: the room no longer exists.
    RoomClosed,
    /// 4008: nothing heard from the client within the timeout.
    Timeout,
}

impl CloseCode {
    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::InvalidData => 1007,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::Restart => 1012,
            CloseCode::Evicted => 4000,
            CloseCode::Replaced => 4001,
            CloseCode::RoomClosed => 4004,
            CloseCode::Timeout => 4008,
        }
    }
}
