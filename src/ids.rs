//! Identifiers and secrets: room ids, participant ids, host and resume tokens.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A room's public id: a UUID v4, part of the invite link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(Uuid);

impl RoomId {
    /// A fresh random room id.
    pub fn new() -> Self {
        RoomId(Uuid::new_v4())
    }
}

impl RoomId {
    /// A fixed offset within `period` derived from the id's random bits: rooms created
    /// together then run their periodic work spread over the period, not all at once.
    pub fn phase_within(&self, period: Duration) -> Duration {
        let period_us = period.as_micros().max(1);
        Duration::from_micros((self.0.as_u128() % period_us) as u64)
    }
}

impl Default for RoomId {
    fn default() -> Self {
        Self::new()
    }
}

/// A room id that is not a hyphenated UUID.
#[derive(Debug, thiserror::Error)]
#[error("a room id is a UUID written as 8-4-4-4-12 hex digits")]
pub struct InvalidRoomId;

impl FromStr for RoomId {
    type Err = InvalidRoomId;

    /// Only the hyphenated form (either case): every spelling of a room must hash to the
    /// same node behind the balancer, which lower-cases the id it takes from the path but
    /// cannot turn `{...}`, `urn:uuid:...` or 32 bare digits into it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 36 {
            return Err(InvalidRoomId);
        }
        Uuid::try_parse(s).map(RoomId).map_err(|_| InvalidRoomId)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A participant's id, stable across reconnects that resume the same membership.
///
/// Short random hex rather than a UUID: it appears in every presence entry, so its size
/// multiplies with room size.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(String);

impl ParticipantId {
    /// A fresh random id (64 bits: unique within any room, not a secret).
    pub fn new() -> Self {
        ParticipantId(random_hex::<8>())
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ParticipantId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<&str> for ParticipantId {
    fn from(s: &str) -> Self {
        ParticipantId(s.to_owned())
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret proving a claim (host of a room, owner of a membership).
///
/// Compared in constant time so response timing cannot leak a prefix.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// 256 random bits as hex: far beyond guessing.
    pub fn generate() -> Self {
        Secret(random_hex::<32>())
    }

    /// Whether `candidate` equals this secret, in time independent of where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The secret as sent to its owner.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Secret {
    /// What is stored in place of the secret.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The SHA-256 of a secret, which is what a room keeps and stores: a restart, or a look at
/// the database, must not hand out tokens. The secrets are 256 random bits, so a plain hash
/// cannot be reversed by guessing.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(String);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        use sha2::{Digest, Sha256};
        SecretHash(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    /// Whether `candidate` is the secret this is the hash of, compared in time independent
    /// of where the hashes differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let other = SecretHash::of(candidate);
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    // The OS RNG failing means the machine cannot make secrets at all; nothing sensible remains.
    getrandom::getrandom(&mut bytes).expect("operating system random number generator failed");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_id_has_one_spelling_up_to_case() {
        let id = RoomId::new();
        let text = id.to_string();
        assert_eq!(text.parse::<RoomId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<RoomId>().unwrap(), id);
        let simple = text.replace('-', "");
        for other in [
            simple.clone(),
            format!("{{{text}}}"),
            format!("urn:uuid:{text}"),
            format!(" {text}"),
            String::new(),
        ] {
            assert!(other.parse::<RoomId>().is_err(), "{other:?}");
        }
    }

    #[test]
    fn secrets_are_long_unique_and_compare_exactly() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_eq!(a.as_str().len(), 64);
        assert_ne!(a, b);
        assert!(a.matches(a.as_str()));
        assert!(!a.matches(b.as_str()));
        assert!(!a.matches(&a.as_str()[..63]));
        assert!(!a.matches(""));
    }

    #[test]
    fn a_hash_recognises_its_secret_and_nothing_else() {
        let a = Secret::generate();
        let h = a.hash();
        assert!(h.matches(a.as_str()));
        assert!(!h.matches(Secret::generate().as_str()));
        assert!(!h.matches(""));
        assert_ne!(format!("{h:?}"), a.as_str());
        let stored = serde_json::to_string(&h).unwrap();
        assert!(
            !stored.contains(a.as_str()),
            "the token itself is never stored"
        );
        assert_eq!(stored.len(), 64 + 2);
    }

    #[test]
    fn room_id_round_trips_and_rejects_garbage() {
        let id = RoomId::new();
        assert_eq!(id.to_string().parse::<RoomId>().unwrap(), id);
        assert!("not-a-uuid".parse::<RoomId>().is_err());
    }

    #[test]
    fn room_phases_lie_within_the_period_and_spread_across_it() {
        let period = Duration::from_secs(1);
        let mut per_tenth = [0u32; 10];
        for _ in 0..1000 {
            let phase = RoomId::new().phase_within(period);
            assert!(phase < period);
            per_tenth[(phase.as_millis() / 100) as usize] += 1;
        }
        // 100 expected per tenth (σ ≈ 9.5); 200 would mean the phases clump.
        assert!(per_tenth.iter().all(|&n| n < 200), "{per_tenth:?}");
    }
}
