//! `Outbox`: the text frames a session still has to write, with large ones cut into pieces.
//!
//! Why: actix-http copies each outgoing chunk into the connection's write buffer and keeps
//! that buffer's capacity afterwards (up to 128 KiB) for the life of the connection. One
//! `welcome` of a big room (the full participant list, up to hundreds of KiB) would otherwise
//! leave every member's connection holding a buffer that large. Written as WebSocket
//! fragments of at most [`FRAGMENT_BYTES`], one piece per pacing step, the buffer never grows
//! past its initial 8 KiB (docs/performance.md, finding 3).
//!
//! WebSocket forbids starting another data frame while a fragmented message is unfinished,
//! so frames that arrive meanwhile wait here, in order, up to a limit.

use std::collections::VecDeque;

use actix_web::web::Bytes;
use bytestring::ByteString;

/// Largest piece of a text message written at once; fits the connection's initial 8 KiB
/// write buffer along with the frame header and a few small frames.
pub const FRAGMENT_BYTES: usize = 4096;

/// One thing to write on the socket.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// A whole text message in one frame.
    Whole(ByteString),
    /// The first fragment of a text message.
    First(Bytes),
    /// A middle fragment.
    Middle(Bytes),
    /// The final fragment.
    Last(Bytes),
}

/// The frame queue of one session.
#[derive(Debug)]
pub struct Outbox {
    /// Frames not yet started, oldest first.
    queued: VecDeque<ByteString>,
    /// The message being written in fragments, and how many bytes of it are written.
    sending: Option<(Bytes, usize)>,
    /// Most frames that may wait: beyond this the client is not keeping up.
    limit: usize,
}

/// The queue is full: the client does not read fast enough.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

impl Outbox {
    /// An empty outbox that holds at most `limit` waiting frames.
    pub fn new(limit: usize) -> Self {
        Outbox {
            queued: VecDeque::new(),
            sending: None,
            limit: limit.max(1),
        }
    }

    /// Queues a frame.
    pub fn push(&mut self, frame: ByteString) -> Result<(), Overflow> {
        if self.queued.len() >= self.limit {
            return Err(Overflow);
        }
        self.queued.push_back(frame);
        Ok(())
    }

    /// Whether a frame of `len` bytes may be written at once, bypassing the queue: nothing
    /// waits and it needs no fragments (the common case, kept free of queue work).
    pub fn passes_straight(&self, len: usize) -> bool {
        self.sending.is_none() && self.queued.is_empty() && len <= FRAGMENT_BYTES
    }

    /// Whether a fragmented message is unfinished, so another step is needed.
    pub fn mid_message(&self) -> bool {
        self.sending.is_some()
    }

    /// Hands `write` what goes out now: the next fragment of an unfinished message, or else
    /// queued frames in order up to and including the first fragment of the next large one.
    pub fn step(&mut self, mut write: impl FnMut(Piece)) {
        if let Some(piece) = self.next_fragment() {
            write(piece);
            if self.sending.is_some() {
                return;
            }
        }
        while let Some(frame) = self.queued.pop_front() {
            if frame.len() <= FRAGMENT_BYTES {
                write(Piece::Whole(frame));
                continue;
            }
            self.sending = Some((frame.into_bytes(), 0));
            // unwrap: `sending` was just set to a message longer than one fragment
            write(self.next_fragment().unwrap());
            break;
        }
    }

    fn next_fragment(&mut self) -> Option<Piece> {
        let (message, written) = self.sending.as_mut()?;
        let start = *written;
        let end = fragment_end(message, start);
        *written = end;
        let piece = message.slice(start..end);
        Some(if end == message.len() {
            self.sending = None;
            Piece::Last(piece)
        } else if start == 0 {
            Piece::First(piece)
        } else {
            Piece::Middle(piece)
        })
    }
}

/// Where the fragment starting at `start` ends: at most [`FRAGMENT_BYTES`] on, moved back to
/// a character boundary so every fragment is valid UTF-8 on its own (receivers that check
/// fragments eagerly then have nothing to complain about).
fn fragment_end(text: &[u8], start: usize) -> usize {
    let mut end = (start + FRAGMENT_BYTES).min(text.len());
    // A UTF-8 continuation byte looks like 0b10xx_xxxx; a boundary is never in front of one.
    while end < text.len() && end > start + 1 && (text[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, fill: &str) -> ByteString {
        ByteString::from(fill.repeat(n))
    }

    /// One step's pieces.
    fn step(outbox: &mut Outbox) -> Vec<Piece> {
        let mut pieces = Vec::new();
        outbox.step(|p| pieces.push(p));
        pieces
    }

    /// Runs steps until the outbox is drained, returning every step's pieces.
    fn drain(outbox: &mut Outbox) -> Vec<Vec<Piece>> {
        let mut steps = Vec::new();
        loop {
            let pieces = step(outbox);
            if pieces.is_empty() {
                return steps;
            }
            steps.push(pieces);
        }
    }

    #[test]
    fn small_frames_go_out_whole_in_one_step() {
        let mut o = Outbox::new(8);
        assert!(o.passes_straight(FRAGMENT_BYTES));
        assert!(!o.passes_straight(FRAGMENT_BYTES + 1));
        o.push("a".into()).unwrap();
        assert!(!o.passes_straight(1), "nothing overtakes a queued frame");
        o.push("b".into()).unwrap();
        assert_eq!(
            step(&mut o),
            [Piece::Whole("a".into()), Piece::Whole("b".into())]
        );
        assert!(!o.mid_message());
        assert!(step(&mut o).is_empty());
    }

    #[test]
    fn a_large_frame_goes_out_one_fragment_per_step_and_later_frames_wait() {
        let mut o = Outbox::new(8);
        let big = text(FRAGMENT_BYTES * 2 + 10, "x");
        o.push("before".into()).unwrap();
        o.push(big.clone()).unwrap();
        o.push("after".into()).unwrap();
        let steps = drain(&mut o);
        assert_eq!(steps.len(), 3);
        assert!(
            matches!(&steps[0][..], [Piece::Whole(b), Piece::First(f)] if b == "before" && f.len() == FRAGMENT_BYTES)
        );
        assert!(matches!(&steps[1][..], [Piece::Middle(m)] if m.len() == FRAGMENT_BYTES));
        assert!(
            matches!(&steps[2][..], [Piece::Last(l), Piece::Whole(a)] if l.len() == 10 && a == "after")
        );
        let rebuilt: Vec<u8> = steps
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Piece::First(b) | Piece::Middle(b) | Piece::Last(b) => Some(b.to_vec()),
                Piece::Whole(_) => None,
            })
            .flatten()
            .collect();
        assert_eq!(rebuilt, big.as_bytes().to_vec());
    }

    #[test]
    fn fragments_end_on_character_boundaries() {
        let mut o = Outbox::new(2);
        let big = text(FRAGMENT_BYTES, "é"); // two bytes each, so 2 × FRAGMENT_BYTES bytes
        o.push(big.clone()).unwrap();
        let mut rebuilt = String::new();
        for piece in drain(&mut o).into_iter().flatten() {
            let (Piece::First(b) | Piece::Middle(b) | Piece::Last(b)) = piece else {
                panic!("{piece:?}");
            };
            assert!(b.len() <= FRAGMENT_BYTES);
            rebuilt.push_str(std::str::from_utf8(&b).expect("each fragment is valid UTF-8"));
        }
        assert_eq!(rebuilt, &*big);
    }

    #[test]
    fn a_full_outbox_refuses_more() {
        let mut o = Outbox::new(2);
        o.push("a".into()).unwrap();
        o.push("b".into()).unwrap();
        assert_eq!(o.push("c".into()), Err(Overflow));
        step(&mut o);
        assert_eq!(o.push("c".into()), Ok(()));
    }
}
