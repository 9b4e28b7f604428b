//! The peer table: the addresses this node knows, from bootstrap and from peer exchange.
//!
//! Bootstrap addresses are pinned: never evicted or overwritten by what peers say. Learned
//! addresses are capped at [`PeerTable::new`]'s `max_learned`; when full, new learned peers
//! are ignored (the first ones learned stay), so a peer flooding exchange messages cannot
//! grow memory or push out good entries. An address learned from the peer itself (its hello
//! on an authenticated link) replaces a second-hand one.

use super::peer_addr::PeerAddr;
use crate::primitives::PeerId;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Where an entry came from, strongest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Told by another peer (peer exchange).
    Exchange,
    /// Told by the peer itself on an authenticated link.
    Direct,
    /// Configured by the operator.
    Bootstrap,
}

/// Known peers and their addresses.
#[derive(Debug)]
pub struct PeerTable {
    me: PeerId,
    entries: HashMap<PeerId, (SocketAddr, Source)>,
    learned: usize,
    max_learned: usize,
}

impl PeerTable {
    /// An empty table for node `me` (never stored), keeping at most `max_learned` peers
    /// that were not bootstrap addresses.
    pub fn new(me: PeerId, max_learned: usize) -> Self {
        Self {
            me,
            entries: HashMap::new(),
            learned: 0,
            max_learned,
        }
    }

    /// Records `peer`; returns whether the table changed.
    pub fn insert(&mut self, peer: PeerAddr, source: Source) -> bool {
        if peer.id == self.me {
            return false;
        }
        match self.entries.get_mut(&peer.id) {
            Some((addr, old)) => {
                if source < *old || (*addr == peer.addr && source == *old) {
                    return false;
                }
                if *old != Source::Bootstrap && source == Source::Bootstrap {
                    self.learned -= 1;
                }
                *addr = peer.addr;
                *old = source;
                true
            }
            None => {
                if source != Source::Bootstrap {
                    if self.learned >= self.max_learned {
                        return false;
                    }
                    self.learned += 1;
                }
                self.entries.insert(peer.id, (peer.addr, source));
                true
            }
        }
    }

    /// The address known for `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<PeerAddr> {
        self.entries
            .get(peer)
            .map(|(addr, _)| PeerAddr::new(*peer, *addr))
    }

    /// Every known peer, in id order.
    pub fn all(&self) -> Vec<PeerAddr> {
        let mut all: Vec<_> = self
            .entries
            .iter()
            .map(|(id, (addr, _))| PeerAddr::new(*id, *addr))
            .collect();
        all.sort_by_key(|p| p.id);
        all
    }

    /// Number of known peers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pa(id: u8, port: u16) -> PeerAddr {
        PeerAddr::new(PeerId([id; 32]), ([127, 0, 0, 1], port).into())
    }

    #[test]
    fn bootstrap_is_pinned_and_self_ignored() {
        let mut t = PeerTable::new(PeerId([0; 32]), 10);
        assert!(!t.insert(pa(0, 1), Source::Bootstrap));
        assert!(t.insert(pa(1, 1), Source::Bootstrap));
        assert!(!t.insert(pa(1, 2), Source::Exchange));
        assert!(!t.insert(pa(1, 2), Source::Direct));
        assert_eq!(t.get(&PeerId([1; 32])), Some(pa(1, 1)));
    }

    #[test]
    fn direct_beats_exchange_and_learned_is_capped() {
        let mut t = PeerTable::new(PeerId([0; 32]), 2);
        assert!(t.insert(pa(1, 1), Source::Exchange));
        assert!(t.insert(pa(1, 2), Source::Direct));
        assert!(!t.insert(pa(1, 3), Source::Exchange));
        assert!(t.insert(pa(2, 1), Source::Exchange));
        assert!(
            !t.insert(pa(3, 1), Source::Exchange),
            "cap of 2 learned reached"
        );
        assert!(
            t.insert(pa(3, 1), Source::Bootstrap),
            "bootstrap is not capped"
        );
        // Promoting a learned peer to bootstrap frees a learned slot.
        assert!(t.insert(pa(2, 1), Source::Bootstrap));
        assert!(t.insert(pa(4, 1), Source::Exchange));
        assert_eq!(t.len(), 4);
        assert_eq!(t.all().first(), Some(&pa(1, 2)));
    }
}
