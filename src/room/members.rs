//! One participant of a room: the durable record (who it is) and the live state beside it
//! (its connection, its last sync report, what the others were last told about it).
//!
//! The record is what a restart must keep; everything else is rebuilt as members reconnect.

use serde::{Deserialize, Serialize};

use crate::clock::ServerMs;
use crate::ids::{ParticipantId, SecretHash};
use crate::limits::TokenBucket;
use crate::protocol::Entry;
use crate::room::state::ConnId;

/// Round-trip bands (upper bounds, ms): in a big room, only a move between bands is news.
pub const RTT_BANDS_MS: [f64; 3] = [50.0, 150.0, 400.0];
/// Drift bands (upper bounds of |drift|, ms): in sync, slightly off, off, out of sync.
pub const DRIFT_BANDS_MS: [f64; 3] = [50.0, 250.0, 1000.0];
/// A connected, playing member whose |drift| is at least this counts as out of sync in
/// `presence.out_of_sync_count` (the start of the "off" drift band).
pub const OUT_OF_SYNC_MS: f64 = DRIFT_BANDS_MS[1];

/// Which band `value` falls in: 0 when nothing was reported, then 1 to 4 by the bounds.
pub fn band(value: Option<f64>, bounds: &[f64; 3]) -> u8 {
    match value {
        None => 0,
        Some(v) => 1 + bounds.iter().filter(|b| v.abs() >= **b).count() as u8,
    }
}

/// What the others were last told about a member, reduced to what is news in a big room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    /// Connected, or away within grace.
    pub connected: bool,
    /// Holds the host role.
    pub is_host: bool,
    /// Waiting for data.
    pub buffering: bool,
    /// Round-trip band (see [`RTT_BANDS_MS`]).
    pub rtt_band: u8,
    /// Drift band (see [`DRIFT_BANDS_MS`]).
    pub drift_band: u8,
}

/// Who a participant is: what a restart must not lose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Display name.
    pub name: String,
    /// The hash of the token that proves ownership of this membership when reconnecting.
    pub resume: SecretHash,
}

/// One participant: its record, and the live state the room keeps beside it.
#[derive(Debug)]
pub struct Member<L> {
    /// Who it is.
    pub record: MemberRecord,
    /// The live connection, if any: its id and the handle to reach it.
    pub link: Option<(ConnId, L)>,
    /// When the connection dropped; the grace period runs from here.
    pub away_since: Option<ServerMs>,
    /// Last reported round trip.
    pub rtt_ms: Option<f64>,
    /// Last reported drift.
    pub drift_ms: Option<f64>,
    /// Last reported buffering flag.
    pub buffering: bool,
    /// A hold for this member ran out while it was still buffering: it does not hold the
    /// room again until it reports it is ready, or every start would wait for it anew.
    pub held_out: bool,
    /// What the room last announced about this member (`None`: never announced, or its name
    /// changed), so a change that reverted before the next `presence` is not sent again.
    pub shown: Option<Shown>,
    /// Chat flood control.
    pub chat_bucket: TokenBucket,
}

impl<L> Member<L> {
    /// A member with `record`, connected over `link`.
    pub fn new(record: MemberRecord, link: Option<(ConnId, L)>, chat_bucket: TokenBucket) -> Self {
        Member {
            record,
            link,
            away_since: None,
            rtt_ms: None,
            drift_ms: None,
            buffering: false,
            held_out: false,
            shown: None,
            chat_bucket,
        }
    }

    /// Whether the member has a live connection.
    pub fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// What a big room counts as news about this member.
    pub fn shown(&self, is_host: bool) -> Shown {
        Shown {
            connected: self.link.is_some(),
            is_host,
            buffering: self.buffering,
            rtt_band: band(self.rtt_ms, &RTT_BANDS_MS),
            drift_band: band(self.drift_ms, &DRIFT_BANDS_MS),
        }
    }

    /// The member as listed to others.
    pub fn entry(&self, id: &ParticipantId, is_host: bool) -> Entry {
        Entry {
            id: id.clone(),
            name: self.record.name.clone(),
            is_host,
            rtt_ms: self.rtt_ms,
            drift_ms: self.drift_ms,
            buffering: self.buffering,
            connected: self.link.is_some(),
        }
    }
}
