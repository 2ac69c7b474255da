//! `Hold`: a room paused for members whose players are buffering, with a deadline.
//!
//! Waiting for a buffering viewer keeps a watch party together, but waiting forever is how
//! groups of other systems hang: the hold ends when everyone it waits for is ready, has
//! left, or the timeout passes, whichever comes first.

use indexmap::IndexSet;

use crate::clock::ServerMs;
use crate::ids::ParticipantId;

/// Why a hold ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Everyone waited for reported they stopped buffering.
    Ready,
    /// The last member waited for left (or dropped).
    Left,
    /// The timeout passed with someone still buffering.
    Timeout,
    /// Someone with control paused, played, loaded or skipped during the hold.
    Cancelled,
}

impl HoldOutcome {
    /// Label for the `holds_total` metric.
    pub fn label(self) -> &'static str {
        match self {
            HoldOutcome::Ready => "ready",
            HoldOutcome::Left => "left",
            HoldOutcome::Timeout => "timeout",
            HoldOutcome::Cancelled => "cancelled",
        }
    }
}

/// The members a room waits for, and until when.
#[derive(Debug, Clone)]
pub struct Hold {
    /// Members still buffering, in the order they started.
    waiting: IndexSet<ParticipantId>,
    /// Server time at which the room resumes whoever is still buffering.
    deadline: ServerMs,
}

impl Hold {
    /// A hold for `first`, ending at `deadline` at the latest.
    pub fn new(first: ParticipantId, deadline: ServerMs) -> Self {
        Hold {
            waiting: IndexSet::from([first]),
            deadline,
        }
    }

    /// Waits for `id` too; true if it was not waited for already.
    pub fn add(&mut self, id: &ParticipantId) -> bool {
        self.waiting.insert(id.clone())
    }

    /// `id` is no longer waited for (ready or gone); true if it was.
    pub fn drop_member(&mut self, id: &ParticipantId) -> bool {
        self.waiting.shift_remove(id)
    }

    /// Whether nobody is waited for any more.
    pub fn is_done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// When the room resumes regardless.
    pub fn deadline(&self) -> ServerMs {
        self.deadline
    }

    /// Who the room waits for, as sent in `playback.waiting_for`.
    pub fn waiting_for(&self) -> Vec<ParticipantId> {
        self.waiting.iter().cloned().collect()
    }

    /// Whether `id` is waited for.
    pub fn waits_for(&self, id: &ParticipantId) -> bool {
        self.waiting.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_tracks_who_it_waits_for_in_order() {
        let (a, b) = (ParticipantId::from("a"), ParticipantId::from("b"));
        let mut hold = Hold::new(a.clone(), 8000.0);
        assert!(hold.add(&b));
        assert!(!hold.add(&a), "already waited for");
        assert_eq!(hold.waiting_for(), [a.clone(), b.clone()]);
        assert!(hold.drop_member(&a));
        assert!(!hold.drop_member(&a));
        assert!(!hold.is_done());
        assert!(hold.drop_member(&b));
        assert!(hold.is_done());
        assert_eq!(hold.deadline(), 8000.0);
    }
}
