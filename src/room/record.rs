//! `RoomRecord`: a room as it is stored, so that a restart or a crash brings it back.
//!
//! It holds what a room *is* — its description and options, the hash of its host token,
//! the playback clock, the host, the members' records in arrival order and the queue — and
//! nothing that is live: links, round trips, drift, presence views and rate buckets are
//! rebuilt as members reconnect. Chat is stored message by message beside it (each one is
//! committed before it is broadcast), so the record only says where chat ids continue.

use serde::{Deserialize, Serialize};

use crate::ids::{ParticipantId, RoomId, SecretHash};
use crate::protocol::{ControlMode, QueueItem};
use crate::room::members::MemberRecord;
use crate::room::playback::PlaybackClock;
use crate::room::state::RoomOptions;

/// The shape of [`RoomRecord`]; a record of another version is refused rather than misread.
pub const RECORD_VERSION: u32 = 1;

/// A room's durable state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// [`RECORD_VERSION`] when written.
    pub version: u32,
    /// The room's id.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// Who may control playback.
    pub control: ControlMode,
    /// The host's hold options.
    pub options: RoomOptions,
    /// Hash of the host token.
    pub host_token: SecretHash,
    /// The authoritative clock; its anchor is server time (epoch ms), so it means the same
    /// in the next process.
    pub clock: PlaybackClock,
    /// Whether the room was paused by a hold: restored, it plays on instead of waiting for
    /// someone who may never come back.
    pub held: bool,
    /// The host.
    pub host: Option<ParticipantId>,
    /// Every member, in arrival order.
    pub members: Vec<StoredMember>,
    /// What plays next, front first.
    pub queue: Vec<QueueItem>,
    /// The id the next queue item gets.
    pub queue_next_id: u64,
    /// The id the next chat message gets.
    pub chat_next_id: u64,
}

/// One member as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredMember {
    /// Its participant id.
    pub id: ParticipantId,
    /// Who it is.
    #[serde(flatten)]
    pub record: MemberRecord,
}

/// Why a stored record could not be brought back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not JSON of this shape.
    #[error("stored room record is unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// Written by another version of the server.
    #[error("stored room record has version {0}; this server reads version {RECORD_VERSION}")]
    Version(u32),
}

impl RoomRecord {
    /// The record as stored: JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        // unwrap: plain data with string map keys always serializes
        serde_json::to_vec(self).unwrap()
    }

    /// A record read back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let record: RoomRecord = serde_json::from_slice(bytes)?;
        if record.version != RECORD_VERSION {
            return Err(RecordError::Version(record.version));
        }
        Ok(record)
    }
}
