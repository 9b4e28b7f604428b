//! Rate limit of the accepting side's "refused incoming link" lines: a peer that keeps
//! dialing with the wrong group key would otherwise log a line per retry for ever.
//!
//! One line per (peer, close code) the first time and then every
//! [`WARN_EVERY`](super::names::WARN_EVERY); lines in between go to debug. The table is
//! bounded: when [`MAX_TRACKED`] peers are tracked it is cleared (a few repeated lines
//! are the worst outcome).

use super::names::Every;
use crate::primitives::PeerId;
use std::collections::HashMap;

/// Peers tracked at most.
pub const MAX_TRACKED: usize = 1024;

/// When each refused peer was last logged.
#[derive(Debug, Default)]
pub struct RefusalLog {
    seen: HashMap<(PeerId, u32), Every>,
}

impl RefusalLog {
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
}
