//! What clients send: [`ClientMessage`], decoded and validated once by [`decode`].
//!
//! A frame is either for the session itself (`join`, `ping`) or a [`RoomCommand`], which
//! travels to the room unchanged and is applied there by `RoomState::apply`: a new command is
//! one variant here and one arm there.

use serde::Deserialize;

use crate::ids::ParticipantId;
use crate::protocol::text::{clean_chat, clean_name, clean_title};
use crate::protocol::{ControlMode, Video, MAX_POSITION_S, RATE_RANGE};

/// Shortest and longest wait for a buffering member that a host may set, in seconds.
pub const BUFFERING_TIMEOUT_RANGE_S: (f64, f64) = (1.0, 120.0);

/// A message from a client.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Enter the room; must be the first message.
    Join(JoinRequest),
    /// Clock-sync request; answered with `pong` by the session itself.
    Ping(PingRequest),
    /// Everything else goes to the room.
    #[serde(untagged)]
    Room(RoomCommand),
}

/// The body of `join`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct JoinRequest {
    /// Display name (trimmed and checked by [`decode`]).
    pub name: String,
    /// The room's host token, to become host as a new participant.
    #[serde(default)]
    pub host_token: Option<String>,
    /// A resume token from an earlier `welcome`, to keep the same identity.
    #[serde(default)]
    pub resume_token: Option<String>,
}

/// The body of `ping`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PingRequest {
    /// Client send time, echoed back.
    pub t0: f64,
}

/// A request a joined participant makes of its room.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomCommand {
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
    /// Load another video now (paused at 0); the queue stays as it is.
    Load {
        /// The video.
        video: Video,
    },
    /// Send a chat message.
    Chat {
        /// Text, 1–500 characters after trimming (trimmed by [`decode`]).
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
    /// Change the room's options (host only); absent fields stay as they are.
    SetOptions {
        /// Whether a buffering member puts the room on hold.
        #[serde(default)]
        wait_for_buffering: Option<bool>,
        /// Longest hold for buffering members, in seconds.
        #[serde(default)]
        buffering_timeout_s: Option<f64>,
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
    /// What the client's player learned about the current video.
    MediaInfo {
        /// The `seq` of the playback the report refers to.
        seq: u64,
        /// The video's length in seconds.
        duration: f64,
    },
    /// Append a video to the queue.
    QueueAdd {
        /// The video.
        video: Video,
        /// A title to show for it (trimmed by [`decode`]).
        #[serde(default)]
        title: Option<String>,
    },
    /// Take an item off the queue.
    QueueRemove {
        /// The item's id.
        item_id: u64,
    },
    /// Move an item to another place in the queue.
    QueueMove {
        /// The item's id.
        item_id: u64,
        /// Its new place, counted from 0 (the front).
        index: usize,
    },
    /// Play the next queued item now.
    Next,
}

impl ClientMessage {
    /// The message's `type`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join(_) => "join",
            ClientMessage::Ping(_) => "ping",
            ClientMessage::Room(command) => command.kind(),
        }
    }
}

impl RoomCommand {
    /// The command's `type`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RoomCommand::Play { .. } => "play",
            RoomCommand::Pause { .. } => "pause",
            RoomCommand::Seek { .. } => "seek",
            RoomCommand::Rate { .. } => "rate",
            RoomCommand::Load { .. } => "load",
            RoomCommand::Chat { .. } => "chat",
            RoomCommand::TransferHost { .. } => "transfer_host",
            RoomCommand::SetControl { .. } => "set_control",
            RoomCommand::SetOptions { .. } => "set_options",
            RoomCommand::Status { .. } => "status",
            RoomCommand::MediaInfo { .. } => "media_info",
            RoomCommand::QueueAdd { .. } => "queue_add",
            RoomCommand::QueueRemove { .. } => "queue_remove",
            RoomCommand::QueueMove { .. } => "queue_move",
            RoomCommand::Next => "next",
        }
    }

    /// Whether the room fans this out to every member as it is applied (for the broadcast
    /// latency metric).
    pub fn fans_out(&self) -> bool {
        !matches!(
            self,
            RoomCommand::Status { .. } | RoomCommand::MediaInfo { .. }
        )
    }

    /// Checks value ranges the JSON shape cannot express, and cleans the text fields, so
    /// the room gets only what it can apply.
    fn validate(&mut self) -> Result<(), DecodeError> {
        fn bad<T>(text: String) -> Result<T, DecodeError> {
            Err(DecodeError::BadMessage(text))
        }
        let position_ok = |p: f64| p.is_finite() && (0.0..=MAX_POSITION_S).contains(&p);
        match self {
            RoomCommand::Play { position: Some(p) }
            | RoomCommand::Pause { position: Some(p) }
            | RoomCommand::Seek { position: p }
                if !position_ok(*p) =>
            {
                bad(format!(
                    "position must be between 0 and {MAX_POSITION_S} seconds"
                ))
            }
            RoomCommand::Rate { rate } if !(RATE_RANGE.0..=RATE_RANGE.1).contains(rate) => bad(
                format!("rate must be between {} and {}", RATE_RANGE.0, RATE_RANGE.1),
            ),
            RoomCommand::Load { video } => video.validate().or_else(bad),
            RoomCommand::QueueAdd { video, title } => {
                video.validate().or_else(bad)?;
                if let Some(t) = title {
                    *title = clean_title(t).or_else(bad)?;
                }
                Ok(())
            }
            RoomCommand::Chat { text } => {
                *text = clean_chat(text).map_err(DecodeError::InvalidChat)?;
                Ok(())
            }
            RoomCommand::Status {
                rtt_ms, drift_ms, ..
            } if !rtt_ms.is_finite() || !drift_ms.is_finite() || *rtt_ms < 0.0 => {
                bad("rtt_ms and drift_ms must be finite, rtt_ms not negative".into())
            }
            RoomCommand::MediaInfo { duration, .. }
                if !(duration.is_finite() && *duration > 0.0 && *duration <= MAX_POSITION_S) =>
            {
                bad(format!(
                    "duration must be more than 0 and at most {MAX_POSITION_S} seconds"
                ))
            }
            RoomCommand::SetOptions {
                buffering_timeout_s: Some(t),
                ..
            } if !(BUFFERING_TIMEOUT_RANGE_S.0..=BUFFERING_TIMEOUT_RANGE_S.1).contains(t) => {
                bad(format!(
                    "buffering_timeout_s must be between {} and {}",
                    BUFFERING_TIMEOUT_RANGE_S.0, BUFFERING_TIMEOUT_RANGE_S.1
                ))
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
    "set_options",
    "status",
    "media_info",
    "queue_add",
    "queue_remove",
    "queue_move",
    "next",
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
    /// A `join` whose name breaks the rules.
    #[error("{0}")]
    InvalidName(String),
    /// A `chat` whose text breaks the rules.
    #[error("{0}")]
    InvalidChat(String),
}

/// Decodes and validates one client text frame.
pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
    // Serde also takes a tagged enum from an array (`[1, 2]` would be a ping): only objects
    // are messages.
    if !text.trim_start().starts_with('{') {
        return Err(classify(text));
    }
    let mut message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        // Only the failure path pays for a second parse, to say precisely what was wrong.
        Err(_) => return Err(classify(text)),
    };
    match &mut message {
        ClientMessage::Join(join) => {
            join.name = clean_name(&join.name).map_err(DecodeError::InvalidName)?;
        }
        ClientMessage::Ping(ping) if !ping.t0.is_finite() => {
            return Err(DecodeError::BadMessage("t0 must be a finite number".into()));
        }
        ClientMessage::Ping(_) => {}
        ClientMessage::Room(command) => command.validate()?,
    }
    Ok(message)
}

/// Explains a frame that did not decode: not JSON, no known `type`, or what is wrong with
/// the fields of a known one (found by decoding it again as just that kind of message).
fn classify(text: &str) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return DecodeError::BadJson(e.to_string()),
    };
    let kind = match value.get("type") {
        None => return DecodeError::UnknownType("<missing>".into()),
        Some(serde_json::Value::String(t)) => match CLIENT_TYPES.iter().find(|k| **k == t) {
            Some(kind) => *kind,
            None => return DecodeError::UnknownType(truncate(t, 40)),
        },
        Some(other) => return DecodeError::UnknownType(truncate(&other.to_string(), 40)),
    };
    let why = match kind {
        "join" => serde_json::from_value::<JoinRequest>(value).err(),
        "ping" => serde_json::from_value::<PingRequest>(value).err(),
        _ => serde_json::from_value::<RoomCommand>(value).err(),
    };
    DecodeError::BadMessage(why.map_or_else(
        || format!("malformed {kind} message"),
        |e| format!("{kind}: {e}"),
    ))
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
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
            json!({"type":"set_options","wait_for_buffering":false}),
            json!({"type":"set_options","buffering_timeout_s":3}),
            json!({"type":"media_info","seq":4,"duration":61.2}),
            json!({"type":"queue_add","video":{"kind":"url","url":"/media/b.mp4"}}),
            json!({"type":"queue_add","video":{"kind":"url","url":"/media/b.mp4"},"title":"B"}),
            json!({"type":"queue_remove","item_id":3}),
            json!({"type":"queue_move","item_id":3,"index":0}),
            json!({"type":"next"}),
        ];
        for case in cases {
            let msg = decode(&case.to_string()).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(msg.kind(), case["type"].as_str().unwrap());
        }
    }

    #[test]
    fn names_chat_and_titles_are_cleaned_where_they_are_decoded() {
        match decode(r#"{"type":"join","name":"  Ann "}"#) {
            Ok(ClientMessage::Join(join)) => assert_eq!(join.name, "Ann"),
            other => panic!("{other:?}"),
        }
        for bad in ["   ", "a\\u0007b", "Ann\\u202e"] {
            let frame = format!(r#"{{"type":"join","name":"{bad}"}}"#);
            assert!(
                matches!(decode(&frame), Err(DecodeError::InvalidName(_))),
                "{frame}"
            );
        }
        match decode(r#"{"type":"chat","text":"  hi "}"#) {
            Ok(ClientMessage::Room(RoomCommand::Chat { text })) => assert_eq!(text, "hi"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(r#"{"type":"chat","text":" \n "}"#),
            Err(DecodeError::InvalidChat(_))
        ));
        match decode(
            r#"{"type":"queue_add","video":{"kind":"youtube","id":"dQw4w9WgXcQ"},"title":"  "}"#,
        ) {
            Ok(ClientMessage::Room(RoomCommand::QueueAdd { title, .. })) => assert_eq!(title, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_broken_known_message_says_what_is_wrong() {
        let err = decode(r#"{"type":"seek","position":"x"}"#).unwrap_err();
        assert!(err.to_string().starts_with("seek: "), "{err}");
        let err = decode(r#"{"type":"join"}"#).unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
        let err = decode(r#"{"type":"queue_move","item_id":1}"#).unwrap_err();
        assert!(err.to_string().contains("index"), "{err}");
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
            r#"{"type":"media_info","seq":1,"duration":0}"#,
            r#"{"type":"media_info","seq":1,"duration":-3}"#,
            r#"{"type":"media_info","seq":-1,"duration":3}"#,
            r#"{"type":"set_options","buffering_timeout_s":0.5}"#,
            r#"{"type":"set_options","buffering_timeout_s":1000}"#,
            r#"{"type":"queue_add","video":{"kind":"url","url":"ftp://x"}}"#,
            r#"{"type":"queue_add","video":{"kind":"url","url":"/media/a.mp4"},"title":"a\u202eb"}"#,
            r#"{"type":"queue_move","item_id":1,"index":-1}"#,
            r#"{"type":"queue_remove"}"#,
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

    mod fuzz {
        use super::super::*;
        use crate::error::WireError;
        use crate::protocol::{clean_chat, clean_name, clean_room_name, ErrorCode, Video};
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
                    json!({"type": "queue_add", "video": {"kind": "url", "url": s}, "title": s}),
                    json!({"type": "chat", "text": s}),
                    json!({"type": "transfer_host", "to": s}),
                    json!({"type": "set_control", "control": s}),
                ];
                for message in messages {
                    let text = message.to_string();
                    match decode(&text) {
                        Ok(ClientMessage::Room(RoomCommand::Load { video })) => prop_assert!(video.validate().is_ok()),
                        Ok(_) => {}
                        Err(e) => prop_assert!(
                            [ErrorCode::BadMessage, ErrorCode::InvalidName, ErrorCode::InvalidChat].contains(&e.code()),
                            "{}", text
                        ),
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
                if let Ok(ClientMessage::Room(RoomCommand::Seek { position })) = decode(&seek) {
                    prop_assert!(position.is_finite() && (0.0..=MAX_POSITION_S).contains(&position));
                }
                let rate_msg = format!(r#"{{"type":"rate","rate":{rate:?}}}"#);
                if let Ok(ClientMessage::Room(RoomCommand::Rate { rate })) = decode(&rate_msg) {
                    prop_assert!((RATE_RANGE.0..=RATE_RANGE.1).contains(&rate));
                }
            }
        }
    }
}
