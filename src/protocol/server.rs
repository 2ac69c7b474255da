//! What the server sends: [`ServerMessage`], built once and encoded once per broadcast.

use bytestring::ByteString;
use serde::Serialize;

use crate::clock::ServerMs;
use crate::ids::ParticipantId;
use crate::protocol::{
    ChatMessage, Entry, ErrorCode, ParticipantRef, Playback, QueueItem, RoomInfo,
};

/// A message from the server. Built once, encoded once, sent to one or many.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Reply to `join`: everything a client needs to render the room.
    Welcome(Box<Welcome>),
    /// Reply to `ping`.
    Pong {
        /// Client send time, echoed.
        t0: f64,
        /// Server receive time.
        t1: ServerMs,
        /// Server send time.
        t2: ServerMs,
    },
    /// The clock changed.
    Playback {
        /// The new authoritative clock.
        playback: Playback,
        /// Who changed it.
        by: Option<ParticipantId>,
    },
    /// A chat message.
    Chat {
        /// The message.
        message: ChatMessage,
    },
    /// Someone joined (small rooms only; big rooms batch this into `presence`).
    Joined {
        /// The newcomer.
        participant: Entry,
    },
    /// Someone left (small rooms only; big rooms batch this into `presence`).
    Left {
        /// Who.
        id: ParticipantId,
    },
    /// The host changed.
    Host {
        /// The new host, if any.
        host_id: Option<ParticipantId>,
    },
    /// The room's description or options changed.
    Room {
        /// The new description.
        room: RoomInfo,
    },
    /// The queue changed.
    Queue {
        /// What is still to come, front first.
        items: Vec<QueueItem>,
    },
    /// Participants whose entries changed since the last presence, and who left.
    Presence {
        /// Changed or added entries.
        participants: Vec<Entry>,
        /// Ids that left since the last presence (batched in big rooms).
        left: Vec<ParticipantId>,
        /// Current number of participants.
        count: usize,
        /// Current host.
        host_id: Option<ParticipantId>,
        /// Connected participants buffering right now.
        buffering_count: usize,
        /// Connected participants playing at least 250 ms off the room's clock right now.
        out_of_sync_count: usize,
    },
    /// A request was refused.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// The server is about to close every connection for a restart.
    ServerRestarting {},
}

/// The body of `welcome`.
#[derive(Clone, Debug, Serialize)]
pub struct Welcome {
    /// The joining participant.
    pub you: ParticipantRef,
    /// Present this in a later `join` to keep the same identity.
    pub resume_token: String,
    /// The room.
    pub room: RoomInfo,
    /// The host, if any.
    pub host_id: Option<ParticipantId>,
    /// Everyone in the room, including `you`.
    pub participants: Vec<Entry>,
    /// The live clock.
    pub playback: Playback,
    /// Recent chat, oldest first.
    pub chat: Vec<ChatMessage>,
    /// What is queued to play next, front first.
    pub queue: Vec<QueueItem>,
    /// Server time when this was sent.
    pub server_time: ServerMs,
    /// Rooms with more participants than this are big: membership comes in batched
    /// `presence`, and the app shows a summary instead of every name.
    pub big_room_threshold: usize,
}

/// Every `type` the server sends, for metric labels.
pub const SERVER_TYPES: &[&str] = &[
    "welcome",
    "pong",
    "playback",
    "chat",
    "joined",
    "left",
    "host",
    "room",
    "queue",
    "presence",
    "error",
    "server_restarting",
];

impl ServerMessage {
    /// The message's `type`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome(_) => "welcome",
            ServerMessage::Pong { .. } => "pong",
            ServerMessage::Playback { .. } => "playback",
            ServerMessage::Chat { .. } => "chat",
            ServerMessage::Joined { .. } => "joined",
            ServerMessage::Left { .. } => "left",
            ServerMessage::Host { .. } => "host",
            ServerMessage::Room { .. } => "room",
            ServerMessage::Queue { .. } => "queue",
            ServerMessage::Presence { .. } => "presence",
            ServerMessage::Error { .. } => "error",
            ServerMessage::ServerRestarting {} => "server_restarting",
        }
    }

    /// Serializes the message once; the result is cheap to clone for every recipient.
    pub fn encode(&self) -> ByteString {
        // Serializing these plain data types cannot fail (no maps with non-string keys,
        // no fallible Serialize impls), so a failure would be a programming error.
        let text = serde_json::to_string(self).expect("server messages always serialize");
        ByteString::from(text)
    }

    /// A refusal with its code and explanation.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_messages_are_tagged_snake_case() {
        let v: serde_json::Value =
            serde_json::from_str(&ServerMessage::ServerRestarting {}.encode()).unwrap();
        assert_eq!(v, json!({"type":"server_restarting"}));
        let v: serde_json::Value = serde_json::from_str(
            &ServerMessage::error(ErrorCode::NotHost, "only the host").encode(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"error","code":"not_host","message":"only the host"})
        );
    }
}
