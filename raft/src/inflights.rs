//! The window of `AppendEntries` in flight to one follower: flow control for pipelined
//! replication. Pure data.

use crate::Index;
use std::collections::VecDeque;

/// The last index of each append sent and not yet acknowledged, oldest first.
///
/// Invariant: indices strictly increase; at most `capacity` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    sent: VecDeque<Index>,
    capacity: usize,
}

impl Inflights {
    /// An empty window of `capacity` messages (at least 1).
    pub fn new(capacity: usize) -> Self {
        Inflights {
            sent: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records an append whose last entry is `last`. Ignored when not above the newest.
    pub fn add(&mut self, last: Index) {
        if self.sent.back().is_some_and(|b| *b >= last) {
            return;
        }
        self.sent.push_back(last);
    }

    /// Frees every append whose last entry is at or below `acked`.
    pub fn free_le(&mut self, acked: Index) {
        while self.sent.front().is_some_and(|f| *f <= acked) {
            self.sent.pop_front();
        }
    }

    /// Frees the oldest append (a heartbeat answer says the window may be stuck).
    pub fn free_first(&mut self) {
        self.sent.pop_front();
    }

    /// Whether no more appends may be sent.
    pub fn full(&self) -> bool {
        self.sent.len() >= self.capacity
    }

    /// How many appends are in flight.
    pub fn count(&self) -> usize {
        self.sent.len()
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fills_and_frees_in_order() {
        let mut w = Inflights::new(3);
        w.add(Index(5));
        w.add(Index(9));
        assert!(!w.full());
        w.add(Index(12));
        assert!(w.full());
        w.add(Index(12));
        assert_eq!(w.count(), 3, "duplicates are ignored");
        w.free_le(Index(9));
        assert_eq!(w.count(), 1);
        w.free_le(Index(3));
        assert_eq!(w.count(), 1);
        w.free_first();
        assert_eq!(w.count(), 0);
        assert!(Inflights::new(0).capacity == 1);
    }
}
