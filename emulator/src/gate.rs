//! The response gate: lets a test hold `POST /events` requests and release
//! them one by one, so it can synchronise on "the client has sent it" instead
//! of on emulator latency and sleeps.
//!
//! This is plain data: a queue of held items in arrival order plus counters.
//! What an item is (the request and where its reply goes) and what releasing
//! one means (processing it) belong to the caller (`state.rs`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The gate as reported by `GET /__emulator/gate` and [`Emulator::gate`](crate::Emulator::gate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateStatus {
    /// `true` while the gate is closed: new `POST /events` requests are held.
    pub hold: bool,
    /// Requests held now (received, not yet processed or answered).
    pub held: usize,
    /// Requests released (and so processed) since start or the last reset.
    pub released: u64,
    /// Held requests whose client disconnected before their release; they are
    /// never processed.
    pub gone: u64,
}

/// Held items of type `T`, oldest first.
#[derive(Debug)]
pub(crate) struct Gate<T> {
    hold: bool,
    queue: VecDeque<(u64, T)>,
    next_id: u64,
    released: u64,
    gone: u64,
}

impl<T> Default for Gate<T> {
    fn default() -> Self {
        Gate { hold: false, queue: VecDeque::new(), next_id: 0, released: 0, gone: 0 }
    }
}

impl<T> Gate<T> {
    /// Whether a new request must be held.
    pub fn is_closed(&self) -> bool {
        self.hold
    }

    /// Closes the gate (idempotent).
    pub fn close(&mut self) {
        self.hold = true;
    }

    /// Holds `item` at the back of the queue; the id names it for [`forget`](Self::forget).
    pub fn admit(&mut self, item: T) -> u64 {
        self.next_id += 1;
        self.queue.push_back((self.next_id, item));
        self.next_id
    }

    /// Takes the `n` oldest held items (fewer if fewer are held), oldest first.
    /// The gate stays as it is.
    pub fn release(&mut self, n: usize) -> Vec<T> {
        let n = n.min(self.queue.len());
        self.released += n as u64;
        self.queue.drain(..n).map(|(_, item)| item).collect()
    }

    /// Opens the gate and takes every held item, oldest first.
    pub fn open(&mut self) -> Vec<T> {
        self.hold = false;
        self.release(self.queue.len())
    }

    /// Drops a held item whose requester went away, counting it as gone.
    /// Returns `false` if it was no longer held (already released).
    pub fn forget(&mut self, id: u64) -> bool {
        match self.queue.iter().position(|(i, _)| *i == id) {
            Some(at) => {
                self.queue.remove(at);
                self.gone += 1;
                true
            }
            None => false,
        }
    }

    /// Snapshot for the control endpoints.
    pub fn status(&self) -> GateStatus {
        GateStatus { hold: self.hold, held: self.queue.len(), released: self.released, gone: self.gone }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_gate_holds_nothing_until_closed() {
        let g: Gate<u8> = Gate::default();
        assert!(!g.is_closed());
        assert_eq!(g.status(), GateStatus::default());
    }

    #[test]
    fn release_takes_the_oldest_first_and_keeps_the_gate_closed() {
        let mut g = Gate::default();
        g.close();
        for i in 1..=4 {
            g.admit(i);
        }
        assert_eq!(g.release(2), vec![1, 2]);
        assert_eq!(g.status(), GateStatus { hold: true, held: 2, released: 2, gone: 0 });
        assert_eq!(g.release(10), vec![3, 4], "asking for more than are held releases what there is");
        assert_eq!(g.status().released, 4);
    }

    #[test]
    fn open_releases_everything_in_arrival_order() {
        let mut g = Gate::default();
        g.close();
        g.admit("a");
        g.admit("b");
        assert_eq!(g.open(), vec!["a", "b"]);
        assert_eq!(g.status(), GateStatus { hold: false, held: 0, released: 2, gone: 0 });
    }

    #[test]
    fn forgotten_item_is_gone_and_never_released() {
        let mut g = Gate::default();
        g.close();
        let a = g.admit('a');
        g.admit('b');
        assert!(g.forget(a));
        assert!(!g.forget(a), "forgetting twice counts once");
        assert_eq!(g.release(1), vec!['b']);
        assert_eq!(g.status(), GateStatus { hold: true, held: 0, released: 1, gone: 1 });
    }

    #[test]
    fn forgetting_a_released_item_does_nothing() {
        let mut g = Gate::default();
        g.close();
        let a = g.admit(1);
        assert_eq!(g.release(1), vec![1]);
        assert!(!g.forget(a));
        assert_eq!(g.status().gone, 0);
    }
}
