//! The room's queue: videos still to come, in order, each with an id to name it by.

use std::collections::VecDeque;

use crate::error::RoomError;
use crate::protocol::{ParticipantRef, QueueItem, Video};

/// What is queued to play after the current video.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Items, front first.
    items: VecDeque<QueueItem>,
    /// Id for the next item: ids are never reused within a room, so a stale id from a
    /// client that missed a change names nothing rather than the wrong item.
    next_id: u64,
    /// Most items at once.
    max_len: usize,
}

impl Queue {
    /// An empty queue holding at most `max_len` items.
    pub fn new(max_len: usize) -> Self {
        Queue {
            items: VecDeque::new(),
            next_id: 1,
            max_len,
        }
    }

    /// A queue restored from stored items, with ids continuing after `next_id`.
    pub fn restore(items: Vec<QueueItem>, next_id: u64, max_len: usize) -> Self {
        let next_id = items
            .iter()
            .map(|i| i.id + 1)
            .max()
            .unwrap_or(1)
            .max(next_id);
        Queue {
            items: items.into(),
            next_id,
            max_len,
        }
    }

    /// Appends a video.
    pub fn add(
        &mut self,
        video: Video,
        title: Option<String>,
        added_by: ParticipantRef,
    ) -> Result<(), RoomError> {
        if self.items.len() >= self.max_len {
            return Err(RoomError::QueueFull(self.max_len));
        }
        self.items.push_back(QueueItem {
            id: self.next_id,
            video,
            title,
            added_by,
        });
        self.next_id += 1;
        Ok(())
    }

    /// Removes the item with id `item_id`.
    pub fn remove(&mut self, item_id: u64) -> Result<(), RoomError> {
        let at = self.position(item_id)?;
        self.items.remove(at);
        Ok(())
    }

    /// Moves the item with id `item_id` to `index` (0 is the front; past the end means the
    /// end).
    pub fn move_to(&mut self, item_id: u64, index: usize) -> Result<(), RoomError> {
        let at = self.position(item_id)?;
        // unwrap: `at` was just found in the queue
        let item = self.items.remove(at).unwrap();
        let index = index.min(self.items.len());
        self.items.insert(index, item);
        Ok(())
    }

    /// Takes the front item, to play it.
    pub fn pop_front(&mut self) -> Option<QueueItem> {
        self.items.pop_front()
    }

    /// How many items are queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items, front first.
    pub fn items(&self) -> Vec<QueueItem> {
        self.items.iter().cloned().collect()
    }

    /// Id the next added item will get (stored, so ids keep counting up after a restart).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    fn position(&self, item_id: u64) -> Result<usize, RoomError> {
        self.items
            .iter()
            .position(|i| i.id == item_id)
            .ok_or(RoomError::NoSuchQueueItem(item_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(n: u32) -> Video {
        Video::Url {
            url: format!("/media/{n}.mp4"),
        }
    }

    fn by() -> ParticipantRef {
        ParticipantRef {
            id: "p".into(),
            name: "Ann".into(),
        }
    }

    fn ids(q: &Queue) -> Vec<u64> {
        q.items().iter().map(|i| i.id).collect()
    }

    #[test]
    fn items_are_added_moved_removed_and_taken_in_order() {
        let mut q = Queue::new(10);
        for n in 0..4 {
            q.add(video(n), None, by()).unwrap();
        }
        assert_eq!(ids(&q), [1, 2, 3, 4]);
        q.move_to(4, 0).unwrap();
        assert_eq!(ids(&q), [4, 1, 2, 3]);
        q.move_to(4, 99).unwrap();
        assert_eq!(ids(&q), [1, 2, 3, 4], "past the end means the end");
        q.move_to(1, 2).unwrap();
        assert_eq!(ids(&q), [2, 3, 1, 4]);
        q.remove(3).unwrap();
        assert_eq!(ids(&q), [2, 1, 4]);
        assert_eq!(q.pop_front().unwrap().id, 2);
        assert_eq!(ids(&q), [1, 4]);
    }

    #[test]
    fn unknown_ids_and_a_full_queue_are_refused() {
        let mut q = Queue::new(2);
        q.add(video(1), Some("One".into()), by()).unwrap();
        q.add(video(2), None, by()).unwrap();
        assert_eq!(q.add(video(3), None, by()), Err(RoomError::QueueFull(2)));
        assert_eq!(q.remove(7), Err(RoomError::NoSuchQueueItem(7)));
        assert_eq!(q.move_to(7, 0), Err(RoomError::NoSuchQueueItem(7)));
        q.remove(1).unwrap();
        assert_eq!(
            q.remove(1),
            Err(RoomError::NoSuchQueueItem(1)),
            "ids are not reused"
        );
        q.add(video(3), None, by()).unwrap();
        assert_eq!(ids(&q), [2, 3]);
    }

    #[test]
    fn a_restored_queue_keeps_counting_up() {
        let mut q = Queue::new(5);
        q.add(video(1), None, by()).unwrap();
        q.add(video(2), None, by()).unwrap();
        q.pop_front();
        let mut restored = Queue::restore(q.items(), q.next_id(), 5);
        restored.add(video(3), None, by()).unwrap();
        assert_eq!(ids(&restored), [2, 3]);
    }
}
