//! `Fragments`: a large text message written as WebSocket fragments, one per pacing step.
//!
//! Why: actix-http copies each outgoing chunk into the connection's write buffer and keeps
//! that buffer's capacity afterwards (up to 128 KiB) for the life of the connection. One
//! `welcome` of a big room (the full participant list, up to hundreds of KiB) would otherwise
//! leave every member's connection holding a buffer that large. Written as fragments of at
//! most [`FRAGMENT_BYTES`], one per pacing step, the buffer never grows past its initial
//! 8 KiB (docs/performance.md, finding 3).
//!
//! WebSocket forbids starting another data frame while a fragmented message is unfinished;
//! the session takes nothing more from its queue until [`Fragments::mid_message`] is false.

use actix_web::web::Bytes;
use bytestring::ByteString;

/// Largest piece of a text message written at once; fits the connection's initial 8 KiB
/// write buffer along with the frame header and a few small frames.
pub const FRAGMENT_BYTES: usize = 4096;

/// One fragment of a text message.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// The first fragment.
    First(Bytes),
    /// A middle fragment.
    Middle(Bytes),
    /// The final fragment.
    Last(Bytes),
}

/// The message being written in fragments, if any.
#[derive(Debug, Default)]
pub struct Fragments {
    /// The message and how many of its bytes are written.
    sending: Option<(Bytes, usize)>,
}

impl Fragments {
    /// Starts writing `message` in fragments. Only call between messages.
    pub fn start(&mut self, message: ByteString) {
        debug_assert!(
            self.sending.is_none(),
            "fragmented messages may not interleave"
        );
        self.sending = Some((message.into_bytes(), 0));
    }

    /// Whether a fragmented message is unfinished.
    pub fn mid_message(&self) -> bool {
        self.sending.is_some()
    }

    /// The next fragment of the message being written, if one is.
    pub fn next_piece(&mut self) -> Option<Piece> {
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

    fn pieces(message: ByteString) -> Vec<Piece> {
        let mut f = Fragments::default();
        f.start(message);
        let mut out = Vec::new();
        while let Some(piece) = f.next_piece() {
            out.push(piece);
        }
        assert!(!f.mid_message());
        out
    }

    fn bytes(piece: &Piece) -> &Bytes {
        match piece {
            Piece::First(b) | Piece::Middle(b) | Piece::Last(b) => b,
        }
    }

    #[test]
    fn a_large_message_goes_out_first_middle_last_and_rebuilds_exactly() {
        let big = ByteString::from("x".repeat(FRAGMENT_BYTES * 2 + 10));
        let out = pieces(big.clone());
        assert!(
            matches!(&out[..], [Piece::First(f), Piece::Middle(m), Piece::Last(l)]
            if f.len() == FRAGMENT_BYTES && m.len() == FRAGMENT_BYTES && l.len() == 10)
        );
        let rebuilt: Vec<u8> = out.iter().flat_map(|p| bytes(p).to_vec()).collect();
        assert_eq!(rebuilt, big.as_bytes().to_vec());
    }

    #[test]
    fn fragments_end_on_character_boundaries() {
        let big = ByteString::from("é".repeat(FRAGMENT_BYTES)); // 2 × FRAGMENT_BYTES bytes
        let mut rebuilt = String::new();
        for piece in pieces(big.clone()) {
            let b = bytes(&piece);
            assert!(b.len() <= FRAGMENT_BYTES);
            rebuilt.push_str(std::str::from_utf8(b).expect("each fragment is valid UTF-8"));
        }
        assert_eq!(rebuilt, &*big);
    }
}
