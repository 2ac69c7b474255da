//! The room's chat log: the last N messages, replayed to every newcomer.

use std::collections::VecDeque;

use crate::protocol::ChatMessage;

/// A bounded log; the oldest messages fall out when a new one would exceed the capacity in
/// messages or in bytes of text.
#[derive(Debug, Clone)]
pub struct ChatLog {
    /// Messages, oldest first.
    messages: VecDeque<ChatMessage>,
    /// Most messages kept.
    capacity: usize,
    /// Most bytes of text kept: every newcomer's `welcome` carries the whole log.
    max_bytes: usize,
    /// Bytes of text kept now.
    bytes: usize,
    /// Id for the next message: ids keep increasing even as old messages are dropped.
    next_id: u64,
}

impl ChatLog {
    /// An empty log keeping at most `capacity` messages and `max_bytes` of their text.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        ChatLog {
            messages: VecDeque::with_capacity(capacity.min(64)),
            capacity,
            max_bytes,
            bytes: 0,
            next_id: 1,
        }
    }

    /// A log holding `messages` (oldest first, as stored) with ids continuing at `next_id`.
    pub fn restore(
        messages: Vec<ChatMessage>,
        next_id: u64,
        capacity: usize,
        max_bytes: usize,
    ) -> Self {
        let mut log = ChatLog::new(capacity, max_bytes);
        let highest = messages.iter().map(|m| m.id).max().unwrap_or(0);
        for message in messages {
            log.keep(message);
        }
        log.next_id = next_id.max(highest + 1);
        log
    }

    /// The id the next message gets (stored, so ids keep counting up after a restart).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Appends a message (assigning its id) and returns it, as stored.
    pub fn push(&mut self, mut message: ChatMessage) -> ChatMessage {
        message.id = self.next_id;
        self.next_id += 1;
        self.keep(message.clone());
        message
    }

    /// Keeps `message` in the log, dropping the oldest beyond the caps.
    fn keep(&mut self, message: ChatMessage) {
        if self.capacity == 0 || message.text.len() > self.max_bytes {
            return;
        }
        self.bytes += message.text.len();
        self.messages.push_back(message);
        while self.messages.len() > self.capacity || self.bytes > self.max_bytes {
            if let Some(old) = self.messages.pop_front() {
                self.bytes -= old.text.len();
            }
        }
    }

    /// The kept messages, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &ChatMessage> {
        self.messages.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ParticipantRef;

    fn msg(text: &str) -> ChatMessage {
        ChatMessage {
            id: 0,
            from: ParticipantRef {
                id: "p".into(),
                name: "P".into(),
            },
            text: text.into(),
            at: 0.0,
        }
    }

    #[test]
    fn keeps_the_last_n_in_order_with_increasing_ids() {
        let mut log = ChatLog::new(3, 1000);
        for i in 0..5 {
            log.push(msg(&i.to_string()));
        }
        let kept: Vec<_> = log.recent().map(|m| (m.id, m.text.as_str())).collect();
        assert_eq!(kept, vec![(3, "2"), (4, "3"), (5, "4")]);
    }

    #[test]
    fn zero_capacity_keeps_nothing_but_still_numbers() {
        let mut log = ChatLog::new(0, 1000);
        assert_eq!(log.push(msg("a")).id, 1);
        assert_eq!(log.push(msg("b")).id, 2);
        assert_eq!(log.recent().count(), 0);
    }

    #[test]
    fn the_byte_cap_drops_the_oldest_first() {
        let mut log = ChatLog::new(100, 10);
        for text in ["aaaa", "bbbb", "cccc"] {
            log.push(msg(text));
        }
        let kept: Vec<_> = log.recent().map(|m| m.text.as_str()).collect();
        assert_eq!(kept, ["bbbb", "cccc"]);
        // One message over the cap by itself is numbered but not kept.
        assert_eq!(log.push(msg(&"x".repeat(11))).id, 4);
        assert_eq!(log.recent().count(), 2);
    }
}
