//! The WebSocket protocol: every JSON message a client and the server exchange over the
//! socket, in one place (the REST bodies are beside their handlers in `http/`).
//!
//! Client frames are decoded (and validated) by [`decode`]; server frames are built as
//! [`ServerMessage`] values and encoded once by [`ServerMessage::encode`], so a broadcast is
//! serialized a single time and the same bytes go to every member. docs/api.md documents
//! every type here with an example.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use crate::clock::ServerMs;
use crate::ids::{ParticipantId, RoomId};

mod text;
mod video;

pub use text::{
    clean_chat, clean_name, clean_room_name, MAX_CHAT_CHARS, MAX_NAME_CHARS, MAX_ROOM_NAME_CHARS,
};
pub use video::{Video, MAX_URL_BYTES};

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
}

/// A message from a client.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Enter the room; must be the first message.
    Join {
        /// Display name.
        name: String,
        /// The room's host token, to become (or reclaim) host.
        #[serde(default)]
        host_token: Option<String>,
        /// A resume token from an earlier `welcome`, to keep the same identity.
        #[serde(default)]
        resume_token: Option<String>,
    },
    /// Clock-sync request; answered with `pong`.
    Ping {
        /// Client send time, echoed back.
        t0: f64,
    },
    /// Start (or continue) playback, optionally from a position.
    Play {
        /// Position to start from; the live position if absent.
        #[serde(default)]
        position: Option<f64>,
    },
    /// Pause, optionally at a position.
    Pause {
        /// Position to pause at; the live position if absent.
        #[serde(default)]
        position: Option<f64>,
    },
    /// Jump to a position.
    Seek {
        /// Target position in seconds.
        position: f64,
    },
    /// Change the playback rate.
    Rate {
        /// New rate, 0.25 to 4.
        rate: f64,
    },
    /// Load another video (paused at 0).
    Load {
        /// The video.
        video: Video,
    },
    /// Send a chat message.
    Chat {
        /// Text, 1–500 characters after trimming.
        text: String,
    },
    /// Hand the host role to another participant (host only).
    TransferHost {
        /// The new host's participant id.
        to: ParticipantId,
    },
    /// Change who may control playback (host only).
    SetControl {
        /// The new mode.
        control: ControlMode,
    },
    /// The client's own sync report, shown to others in presence.
    Status {
        /// Measured round trip to the server.
        rtt_ms: f64,
        /// Player position minus the authoritative position, in ms.
        drift_ms: f64,
        /// Whether the player is waiting for data.
        buffering: bool,
    },
}

impl ClientMessage {
    /// The message's `type`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Play { .. } => "play",
            ClientMessage::Pause { .. } => "pause",
            ClientMessage::Seek { .. } => "seek",
            ClientMessage::Rate { .. } => "rate",
            ClientMessage::Load { .. } => "load",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::TransferHost { .. } => "transfer_host",
            ClientMessage::SetControl { .. } => "set_control",
            ClientMessage::Status { .. } => "status",
        }
    }

    /// Checks value ranges that the JSON shape alone cannot express.
    fn validate(&self) -> Result<(), String> {
        let position_ok = |p: f64| p.is_finite() && (0.0..=MAX_POSITION_S).contains(&p);
        match self {
            ClientMessage::Ping { t0 } if !t0.is_finite() => {
                Err("t0 must be a finite number".into())
            }
            ClientMessage::Play { position: Some(p) }
            | ClientMessage::Pause { position: Some(p) }
            | ClientMessage::Seek { position: p }
                if !position_ok(*p) =>
            {
                Err(format!(
                    "position must be between 0 and {MAX_POSITION_S} seconds"
                ))
            }
            ClientMessage::Rate { rate } if !(RATE_RANGE.0..=RATE_RANGE.1).contains(rate) => Err(
                format!("rate must be between {} and {}", RATE_RANGE.0, RATE_RANGE.1),
            ),
            ClientMessage::Load { video } => video.validate(),
            ClientMessage::Status {
                rtt_ms, drift_ms, ..
            } if !rtt_ms.is_finite() || !drift_ms.is_finite() || *rtt_ms < 0.0 => {
                Err("rtt_ms and drift_ms must be finite, rtt_ms not negative".into())
            }
            _ => Ok(()),
        }
    }
}

/// Every `type` a client may send, for the `unknown_type` error text and metric labels.
pub const CLIENT_TYPES: &[&str] = &[
    "join",
    "ping",
    "play",
    "pause",
    "seek",
    "rate",
    "load",
    "chat",
    "transfer_host",
    "set_control",
    "status",
];

/// Why a client frame was refused. Each maps to one documented error code
/// (`crate::error::WireError`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all.
    #[error("frame is not valid JSON: {0}")]
    BadJson(String),
    /// JSON without a known `type`.
    #[error("unknown message type {0:?}; expected one of {CLIENT_TYPES:?}")]
    UnknownType(String),
    /// Known type, wrong fields or values.
    #[error("{0}")]
    BadMessage(String),
}

/// Decodes and validates one client text frame.
pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(msg) => {
            msg.validate().map_err(DecodeError::BadMessage)?;
            Ok(msg)
        }
        // Only the failure path pays for a second parse, to say precisely what was wrong.
        Err(err) => Err(classify(text, err)),
    }
}

fn classify(text: &str, err: serde_json::Error) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return DecodeError::BadJson(e.to_string()),
    };
    match value.get("type") {
        None => DecodeError::UnknownType("<missing>".into()),
        Some(serde_json::Value::String(t)) if !CLIENT_TYPES.contains(&t.as_str()) => {
            DecodeError::UnknownType(truncate(t, 40))
        }
        Some(serde_json::Value::String(_)) => DecodeError::BadMessage(err.to_string()),
        Some(other) => DecodeError::UnknownType(truncate(&other.to_string(), 40)),
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
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
    /// The participant named in the message is not in the room.
    NotFound,
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
    /// The room's description changed.
    Room {
        /// The new description.
        room: RoomInfo,
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
    fn decodes_every_client_type() {
        let cases = [
            json!({"type":"join","name":"Ann"}),
            json!({"type":"join","name":"Ann","host_token":"x","resume_token":"y"}),
            json!({"type":"ping","t0":1.5}),
            json!({"type":"play"}),
            json!({"type":"play","position":3}),
            json!({"type":"pause","position":null}),
            json!({"type":"seek","position":30}),
            json!({"type":"rate","rate":1.5}),
            json!({"type":"load","video":{"kind":"youtube","id":"dQw4w9WgXcQ"}}),
            json!({"type":"load","video":{"kind":"url","url":"/media/clip.mp4"}}),
            json!({"type":"chat","text":"hi"}),
            json!({"type":"transfer_host","to":"abc"}),
            json!({"type":"set_control","control":"everyone"}),
            json!({"type":"status","rtt_ms":12,"drift_ms":-3.5,"buffering":false}),
        ];
        for case in cases {
            let msg = decode(&case.to_string()).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(msg.kind(), case["type"].as_str().unwrap());
        }
    }

    #[test]
    fn classifies_bad_frames() {
        assert!(matches!(decode("{not json"), Err(DecodeError::BadJson(_))));
        assert!(matches!(decode("[1,2]"), Err(DecodeError::UnknownType(_))));
        assert!(matches!(
            decode(r#"{"t0":1}"#),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"dance"}"#),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            decode(r#"{"type":7}"#),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"seek"}"#),
            Err(DecodeError::BadMessage(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"seek","position":"x"}"#),
            Err(DecodeError::BadMessage(_))
        ));
    }

    #[test]
    fn rejects_out_of_range_values() {
        for bad in [
            r#"{"type":"rate","rate":0.1}"#,
            r#"{"type":"rate","rate":5}"#,
            r#"{"type":"seek","position":-1}"#,
            r#"{"type":"seek","position":1e300}"#,
            r#"{"type":"play","position":-0.5}"#,
            r#"{"type":"status","rtt_ms":-1,"drift_ms":0,"buffering":false}"#,
            r#"{"type":"load","video":{"kind":"youtube","id":"short"}}"#,
            r#"{"type":"load","video":{"kind":"youtube","id":"dQw4w9WgX<>"}}"#,
            r#"{"type":"load","video":{"kind":"url","url":"javascript:alert(1)"}}"#,
            r#"{"type":"load","video":{"kind":"url","url":"/media/../etc/passwd"}}"#,
            r#"{"type":"load","video":{"kind":"url","url":"http://"}}"#,
            r#"{"type":"load","video":{"kind":"vimeo","id":"1"}}"#,
        ] {
            assert!(
                matches!(decode(bad), Err(DecodeError::BadMessage(_))),
                "{bad} was not rejected as bad_message: {:?}",
                decode(bad)
            );
        }
        assert!(
            decode(r#"{"type":"load","video":{"kind":"url","url":"HTTPS://x.org/a.mp4"}}"#).is_ok()
        );
    }

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

    mod fuzz {
        use super::super::*;
        use crate::error::WireError;
        use proptest::prelude::*;
        use serde_json::json;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any text at all decodes to a message or to one of the three decode errors.
            #[test]
            fn arbitrary_text_never_panics(text in any::<String>()) {
                let _ = decode(&text);
            }

            /// JSON objects with a known type and random fields: never a panic, and a
            /// failure is always `bad_message` (the type was known).
            #[test]
            fn known_type_with_random_fields_is_bad_message_or_valid(
                kind in prop::sample::select(CLIENT_TYPES),
                fields in prop::collection::btree_map("[a-z_]{1,12}", any::<f64>(), 0..4),
            ) {
                let mut obj = serde_json::Map::new();
                obj.insert("type".into(), kind.into());
                for (k, v) in fields {
                    obj.insert(k, serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into));
                }
                let text = serde_json::Value::Object(obj).to_string();
                if let Err(e) = decode(&text) {
                    prop_assert_eq!(e.code(), ErrorCode::BadMessage, "{}", text);
                }
            }

            /// Arbitrary Unicode, often behind a prefix that reaches the deeper rules, in
            /// every string field of every message: decoding never panics, a failure is
            /// `bad_message`, and an accepted video passes the URL rules again.
            #[test]
            fn arbitrary_unicode_in_every_string_field(
                prefix in prop::sample::select(&["", "http://", "https://", "HTTPS:", "/media/", "/media/.", "aaaaaa", "http"][..]),
                text in any::<String>(),
            ) {
                let s = format!("{prefix}{text}");
                let messages = [
                    json!({"type": "join", "name": s}),
                    json!({"type": "join", "name": "Ann", "host_token": s, "resume_token": s}),
                    json!({"type": "load", "video": {"kind": "url", "url": s}}),
                    json!({"type": "load", "video": {"kind": "youtube", "id": s}}),
                    json!({"type": "load", "video": {"kind": s, "url": s}}),
                    json!({"type": "chat", "text": s}),
                    json!({"type": "transfer_host", "to": s}),
                    json!({"type": "set_control", "control": s}),
                ];
                for message in messages {
                    let text = message.to_string();
                    match decode(&text) {
                        Ok(ClientMessage::Load { video }) => prop_assert!(video.validate().is_ok()),
                        Ok(_) => {}
                        Err(e) => prop_assert_eq!(e.code(), ErrorCode::BadMessage, "{}", text),
                    }
                }
                // The text rules the room applies take any Unicode too.
                let _ = (clean_name(&s), clean_room_name(&s), clean_chat(&s));
                let _ = Video::Url { url: s }.points_at_private_network();
            }

            /// Accepted messages are always within the documented ranges.
            #[test]
            fn accepted_numbers_are_in_range(position in any::<f64>(), rate in any::<f64>()) {
                let seek = format!(r#"{{"type":"seek","position":{position:?}}}"#);
                if let Ok(ClientMessage::Seek { position }) = decode(&seek) {
                    prop_assert!(position.is_finite() && (0.0..=MAX_POSITION_S).contains(&position));
                }
                let rate_msg = format!(r#"{{"type":"rate","rate":{rate:?}}}"#);
                if let Ok(ClientMessage::Rate { rate }) = decode(&rate_msg) {
                    prop_assert!((RATE_RANGE.0..=RATE_RANGE.1).contains(&rate));
                }
            }
        }
    }
}
