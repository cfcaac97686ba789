//! Where accepted events are kept until they are settled.
//!
//! The scheduler appends every accepted event to an [`EventStore`] and
//! settles it there exactly once (delivered, failed, dropped). The store
//! decides nothing: order, retries and overflow are the scheduler's. Its
//! first implementation, [`MemoryStore`], keeps bodies in memory; the disk
//! spool (`spool.rs`, option `spool_dir`) is the second: it keeps a bounded
//! window in memory, the rest on disk, and gives back on start what an
//! earlier process left unsettled through [`EventStore::recover`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// An event body as stored and sent: the exact JSON posted to `/events`.
pub type Body = Arc<[u8]>;

/// What [`EventStore::append`] did with a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// `true`: its body is in memory and the scheduler queues it now.
    /// `false`: it waits on disk only ("cold") until [`EventStore::load`] reads it back.
    pub hot: bool,
}

/// Keeps unsettled events by sequence number. Owned by the scheduler (one
/// thread). Sequence numbers are handed out by the store, increasing.
pub trait EventStore: Send {
    /// Keep a new event. `Err` gives the body back when the store is full.
    fn append(&mut self, body: Vec<u8>) -> Result<Appended, Vec<u8>>;
    /// The body of an unsettled event that is in memory.
    fn get(&self, seq: u64) -> Option<Body>;
    /// Forget a settled event. Settling twice, or an unknown sequence, does nothing.
    fn settle(&mut self, seq: u64);
    /// The smallest unsettled sequence number, if any (a lower bound while
    /// some wait on disk).
    fn oldest(&self) -> Option<u64>;
    /// The sequence number the next append will get.
    fn next_seq(&self) -> u64;
    /// Unsettled events held, in memory or on disk.
    fn len(&self) -> usize;
    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Unsettled events waiting on disk only.
    fn cold(&self) -> u64 {
        0
    }
    /// How many events ready to send it keeps in memory: events on disk are
    /// read back when fewer than half this many are ready, up to this many.
    fn window(&self) -> usize {
        usize::MAX
    }
    /// Read up to `n` events waiting on disk back into memory, oldest first.
    fn load(&mut self, _n: usize) -> Vec<u64> {
        Vec::new()
    }
    /// Whether what is left at shutdown survives for the next tracker.
    fn durable(&self) -> bool {
        false
    }
    /// Take over what an earlier process left unsettled (it waits on disk
    /// and is counted in `recovered`). Called once, on the dispatcher
    /// thread, before any append.
    fn recover(&mut self) {}
    /// Write out what was appended and settled; sync it to disk when `sync`
    /// or when the store's own interval has passed. Called every dispatcher cycle.
    fn commit(&mut self, _now: Instant, _sync: bool) -> Result<(), String> {
        Ok(())
    }
    /// When the next `commit` has something due by time (a sync).
    fn next_commit(&self) -> Option<Instant> {
        None
    }
    /// Lines the store wants logged (state changes, recovery).
    fn take_logs(&mut self) -> Vec<(log::Level, String)> {
        Vec::new()
    }
    /// Shutdown of a durable store: keep everything unsettled for the next
    /// start; returns how many events that is.
    fn leave(&mut self) -> u64 {
        0
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
    fn append(&mut self, body: Vec<u8>) -> Result<Appended, Vec<u8>> {
        let seq = self.first + self.slots.len() as u64;
        self.slots.push_back(Some(Body::from(body)));
        self.held += 1;
        Ok(Appended { seq, hot: true })
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

    fn body(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn settles_out_of_order_and_tracks_the_oldest() {
        let mut s = MemoryStore::new();
        let a = s.append(body("a")).unwrap().seq;
        let b = s.append(body("b")).unwrap().seq;
        let c = s.append(body("c")).unwrap().seq;
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
        assert_eq!(
            s.append(body("d")).unwrap().seq,
            3,
            "sequence numbers keep increasing"
        );
    }
}
