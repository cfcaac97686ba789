//! Where accepted events are kept until they are settled.
//!
//! The scheduler appends every accepted event to an [`EventStore`] and
//! settles it there exactly once (delivered, failed, dropped). The store
//! decides nothing: order, retries and overflow are the scheduler's. Its
//! first implementation, [`MemoryStore`], keeps bodies in memory; the disk
//! spool is the second, and gives back on start what an earlier process left
//! unsettled through [`EventStore::recover`].

use std::collections::VecDeque;
use std::sync::Arc;

/// An event body as stored and sent: the exact JSON posted to `/events`.
pub type Body = Arc<[u8]>;

/// Keeps unsettled events by sequence number. Owned by the scheduler (one
/// thread). Sequence numbers are handed out by the store, increasing.
pub trait EventStore: Send {
    /// Keep a new event; returns its sequence number.
    fn append(&mut self, body: Body) -> u64;
    /// The body of an unsettled event.
    fn get(&self, seq: u64) -> Option<Body>;
    /// Forget a settled event. Settling twice, or an unknown sequence, does nothing.
    fn settle(&mut self, seq: u64);
    /// The smallest unsettled sequence number, if any.
    fn oldest(&self) -> Option<u64>;
    /// The sequence number the next append will get.
    fn next_seq(&self) -> u64;
    /// Unsettled events held.
    fn len(&self) -> usize;
    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Events an earlier process left unsettled, oldest first, already held
    /// under the returned sequence numbers. Called once, before any append.
    fn recover(&mut self) -> Vec<u64> {
        Vec::new()
    }
}

/// Bodies in memory, in a ring indexed by sequence number.
#[derive(Default)]
pub struct MemoryStore {
    /// `slots[i]` holds sequence `first + i`; settled slots are `None` until
    /// they reach the front.
    slots: VecDeque<Option<Body>>,
    first: u64,
    held: usize,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl EventStore for MemoryStore {
    fn append(&mut self, body: Body) -> u64 {
        let seq = self.first + self.slots.len() as u64;
        self.slots.push_back(Some(body));
        self.held += 1;
        seq
    }

    fn get(&self, seq: u64) -> Option<Body> {
        let i = seq.checked_sub(self.first)?;
        self.slots.get(usize::try_from(i).ok()?)?.clone()
    }

    fn settle(&mut self, seq: u64) {
        let Some(i) = seq.checked_sub(self.first).and_then(|i| usize::try_from(i).ok()) else { return };
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.take().is_some() {
                self.held -= 1;
            }
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    fn oldest(&self) -> Option<u64> {
        // The front slot is always unsettled (settled fronts are popped).
        (!self.slots.is_empty()).then_some(self.first)
    }

    fn next_seq(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    fn len(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Body {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn settles_out_of_order_and_tracks_the_oldest() {
        let mut s = MemoryStore::new();
        let a = s.append(body("a"));
        let b = s.append(body("b"));
        let c = s.append(body("c"));
        assert_eq!((a, b, c), (0, 1, 2));
        s.settle(b);
        assert_eq!(s.oldest(), Some(a));
        assert_eq!(s.len(), 2);
        s.settle(a);
        assert_eq!(s.oldest(), Some(c), "settled slots before the oldest are dropped");
        s.settle(a);
        s.settle(99);
        assert_eq!(s.len(), 1, "settling twice or an unknown sequence does nothing");
        assert_eq!(&*s.get(c).unwrap(), b"c");
        assert!(s.get(a).is_none());
        s.settle(c);
        assert!(s.is_empty());
        assert_eq!(s.oldest(), None);
        assert_eq!(s.append(body("d")), 3, "sequence numbers keep increasing");
    }
}
