//! Rate limit of the accepting side's "refused incoming link" lines: a peer that keeps
//! dialing with the wrong group key would otherwise log a line per retry for ever.
//!
//! One line per (peer, close code) the first time and then every
//! [`WARN_EVERY`](super::names::WARN_EVERY); lines in between go to debug. The table is
//! bounded: when [`MAX_TRACKED`] peers are tracked it is cleared (a few repeated lines
//! are the worst outcome).
//!
//! It also remembers the groups this node left lately (at most [`MAX_LEFT`]): a node
//! shutting down leaves its groups before its network stops, and peers dialing them
//! meanwhile are refused as normal, not as a misconfiguration.

use super::names::Every;
use crate::primitives::{GroupId, PeerId};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Peers tracked at most.
pub const MAX_TRACKED: usize = 1024;

/// Groups left remembered at most (the oldest is forgotten first).
pub const MAX_LEFT: usize = 4096;

/// When each refused peer was last logged, and the groups left lately.
#[derive(Debug, Default)]
pub struct RefusalLog {
    seen: HashMap<(PeerId, u32), Every>,
    left: VecDeque<(GroupId, Instant)>,
}

impl RefusalLog {
    /// This node left `group` now.
    pub fn left(&mut self, group: GroupId) {
        if self.left.len() >= MAX_LEFT {
            self.left.pop_front();
        }
        self.left.push_back((group, Instant::now()));
    }

    /// Whether this node left `group` less than `within` ago.
    pub fn just_left(&self, group: &GroupId, within: Duration) -> bool {
        self.left
            .iter()
            .rev()
            .take_while(|(_, at)| at.elapsed() < within)
            .any(|(g, _)| g == group)
    }

    /// Whether a refusal of `peer` with `code` should be logged at warn now.
    pub fn due(&mut self, peer: PeerId, code: u32) -> bool {
        if self.seen.len() >= MAX_TRACKED && !self.seen.contains_key(&(peer, code)) {
            self.seen.clear();
        }
        self.seen.entry((peer, code)).or_default().due()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_peer_and_code_and_bounded() {
        let mut log = RefusalLog::default();
        assert!(log.due(PeerId([1; 32]), 7));
        assert!(!log.due(PeerId([1; 32]), 7));
        assert!(log.due(PeerId([1; 32]), 2));
        assert!(log.due(PeerId([2; 32]), 7));
        for i in 0..(MAX_TRACKED * 2) {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            log.due(PeerId(id), 7);
        }
        assert!(log.seen.len() <= MAX_TRACKED);
    }

    #[test]
    fn groups_left_are_remembered_for_a_while_and_bounded() {
        let mut log = RefusalLog::default();
        let g = GroupId(crate::primitives::Digest([3; 32]));
        assert!(!log.just_left(&g, Duration::from_secs(5)));
        log.left(g);
        assert!(log.just_left(&g, Duration::from_secs(5)));
        assert!(!log.just_left(&g, Duration::ZERO));
        for i in 0..(MAX_LEFT * 2) {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            log.left(GroupId(crate::primitives::Digest(id)));
        }
        assert_eq!(log.left.len(), MAX_LEFT);
        assert!(
            !log.just_left(&g, Duration::from_secs(5)),
            "forgotten first"
        );
    }
}
