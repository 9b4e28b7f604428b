//! Counters of log replay, for tests, metrics and operators.

use crate::PeerId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What providers served and sessions fetched.
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// Entries this node's provider sent.
    pub entries_served: AtomicU64,
    /// Batches this node's provider answered.
    pub batches_served: AtomicU64,
    /// Sessions started on this node.
    pub sessions: AtomicU64,
    /// Entries this node's sessions handed to the consensus core.
    pub delivered: AtomicU64,
    /// Entries this node's sessions received, per provider.
    fetched: Mutex<BTreeMap<PeerId, u64>>,
}

impl ReplayStats {
    pub(crate) fn served(&self, entries: usize) {
        self.entries_served
            .fetch_add(entries as u64, Ordering::Relaxed);
        self.batches_served.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fetched_from(&self, peer: PeerId, entries: usize) {
        let mut map = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(peer).or_default() += entries as u64;
    }

    /// Entries received by sessions on this node, per provider.
    pub fn fetched(&self) -> BTreeMap<PeerId, u64> {
        self.fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
