//! `PacedFanOut`: one frame handed to a big room's members a slice at a time.
//!
//! Why: a big room sends its `presence` to thousands of members once a second. Handed out
//! at once, it has thousands of sockets written in the same instant, and a host's `play`
//! arriving then waits behind all of them, first to be read and then to be sent
//! (docs/performance.md, finding 5). Spread over the second in equal slices, no burst is
//! bigger than one slice.
//!
//! The frame must still reach each member before anything the room sends it later, or the
//! member would apply an older delta over newer news. The actor therefore hands out the
//! whole remainder ([`PacedFanOut::rest`]) before it delivers anything else.

use bytestring::ByteString;

/// A frame and the recipients still owed it.
#[derive(Debug)]
pub struct PacedFanOut<R> {
    /// The encoded message, the same bytes for every recipient.
    frame: ByteString,
    /// Recipients not yet handed the frame.
    owed: Vec<R>,
    /// Recipients per slice, fixed at the start so the last slice is due at the last step.
    per_step: usize,
}

impl<R> PacedFanOut<R> {
    /// Plans to hand `frame` to `owed` in at most `steps` slices of equal size.
    pub fn new(frame: ByteString, owed: Vec<R>, steps: usize) -> Self {
        let per_step = owed.len().div_ceil(steps.max(1)).max(1);
        PacedFanOut {
            frame,
            owed,
            per_step,
        }
    }

    /// The frame to hand out.
    pub fn frame(&self) -> &ByteString {
        &self.frame
    }

    /// The recipients of the next slice (empty once everyone has been served).
    pub fn next_slice(&mut self) -> Vec<R> {
        let keep = self.owed.len().saturating_sub(self.per_step);
        self.owed.split_off(keep)
    }

    /// Every recipient still owed the frame, for when it must go out now.
    pub fn rest(&mut self) -> Vec<R> {
        std::mem::take(&mut self.owed)
    }

    /// Whether everyone has been served.
    pub fn is_done(&self) -> bool {
        self.owed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paced(n: u32, steps: usize) -> PacedFanOut<u32> {
        PacedFanOut::new(ByteString::from_static("{}"), (0..n).collect(), steps)
    }

    #[test]
    fn slices_are_equal_and_serve_everyone_once_within_the_steps() {
        let mut p = paced(4000, 20);
        let mut served = Vec::new();
        let mut slices = 0;
        while !p.is_done() {
            let slice = p.next_slice();
            assert_eq!(slice.len(), 200);
            served.extend(slice);
            slices += 1;
        }
        assert_eq!(slices, 20);
        served.sort_unstable();
        assert_eq!(served, (0..4000).collect::<Vec<_>>());
        assert!(p.next_slice().is_empty());
    }

    #[test]
    fn an_uneven_count_still_fits_the_steps() {
        let mut p = paced(61, 20);
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let s = p.next_slice();
            (!s.is_empty()).then_some(s.len())
        })
        .collect();
        assert!(sizes.len() <= 20, "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 61);
        assert!(sizes.iter().all(|&s| s <= 4), "{sizes:?}");
    }

    #[test]
    fn fewer_recipients_than_steps_go_one_per_slice() {
        let mut p = paced(3, 20);
        assert_eq!(p.next_slice().len(), 1);
        assert_eq!(p.rest().len(), 2);
        assert!(p.is_done());
    }

    #[test]
    fn rest_takes_everyone_left_and_leaves_nothing() {
        let mut p = paced(100, 10);
        p.next_slice();
        let rest = p.rest();
        assert_eq!(rest.len(), 90);
        assert!(p.is_done());
        assert!(p.next_slice().is_empty());
    }
}
