//! Counters and the live transfer status of one node's `SnapshotSync`, shared (behind an
//! `Arc`) between the provider, the session, and whoever reports on them (`/v1/status`,
//! `tessera inspect`, tests).

use super::lock;
use super::retention::RetentionFigures;
use crate::groups::Cursor;
use crate::PeerId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A snapshot this node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldSnapshot {
    /// Its anchor.
    pub anchor: Cursor,
    /// State-machine items (plus the header).
    pub items: u64,
    /// Raw bytes of the item stream.
    pub raw_bytes: u64,
    /// Bytes stored (compressed).
    pub compressed_bytes: u64,
    /// Chunks.
    pub chunks: u32,
}

/// A transfer in progress on this node.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferStatus {
    /// The snapshot being fetched.
    pub anchor: Cursor,
    /// What the session is doing: "discovering", "fetching", "verifying", "installing".
    pub phase: &'static str,
    /// Chunks in the snapshot.
    pub chunks_total: u32,
    /// Chunks verified and stored (including those found on resume).
    pub chunks_verified: u32,
    /// Compressed bytes in the snapshot.
    pub bytes_total: u64,
    /// Compressed bytes verified and stored.
    pub bytes_verified: u64,
    /// Raw bytes of the snapshot's state.
    pub raw_bytes: u64,
    /// Recent rate, compressed bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Estimated time left.
    pub eta_ms: Option<u64>,
    /// Peers serving it.
    pub providers: usize,
}

/// Counters of one node's snapshot sync. All monotonic except `held`/`transfer`.
#[derive(Debug, Default)]
pub struct SnapshotStats {
    /// Snapshots this node cut from its own state.
    pub snapshots_cut: AtomicU64,
    /// Cuts that failed (storage errors) or were skipped (one still running).
    pub cuts_skipped: AtomicU64,
    /// Milliseconds the last cut took on its background thread.
    pub last_cut_ms: AtomicU64,
    /// Chunks this node's provider served.
    pub chunks_served: AtomicU64,
    /// Compressed bytes this node's provider served.
    pub bytes_served: AtomicU64,
    /// Chunks this node's sessions fetched, verified and stored.
    pub chunks_fetched: AtomicU64,
    /// Compressed bytes fetched, verified and stored.
    pub bytes_fetched: AtomicU64,
    /// Chunks that arrived and failed verification.
    pub chunks_rejected: AtomicU64,
    /// Sessions started.
    pub sessions: AtomicU64,
    /// Snapshots installed from peers.
    pub installs: AtomicU64,
    /// Snapshots restored from local storage at start.
    pub restores: AtomicU64,
    /// Damaged local chunks found at start (fetched again from peers).
    pub damaged_chunks: AtomicU64,
    /// Chunks this node's provider found damaged when asked for them, and did not serve
    /// (answered "missing": the asker fetches them elsewhere).
    pub damaged_not_served: AtomicU64,
    /// Milliseconds this node's last install took to ship (choosing the snapshot to its
    /// last chunk stored); 0 before the first.
    pub last_ship_ms: AtomicU64,
    /// Milliseconds this node's last install took after the last chunk (decode finished,
    /// state swapped in); 0 before the first.
    pub last_install_ms: AtomicU64,
    retention: Mutex<RetentionFigures>,
    fetched_from: Mutex<BTreeMap<PeerId, u64>>,
    held: Mutex<Vec<HeldSnapshot>>,
    transfer: Mutex<Option<TransferStatus>>,
}

impl SnapshotStats {
    /// Chunks fetched from each peer.
    pub fn fetched_from(&self) -> BTreeMap<PeerId, u64> {
        lock(&self.fetched_from).clone()
    }

    /// The complete snapshots this node holds, oldest first.
    pub fn held(&self) -> Vec<HeldSnapshot> {
        lock(&self.held).clone()
    }

    /// The transfer in progress, if any.
    pub fn transfer(&self) -> Option<TransferStatus> {
        lock(&self.transfer).clone()
    }

    /// How much log this node keeps for members catching up, and why (`retention.rs`).
    pub fn retention(&self) -> RetentionFigures {
        lock(&self.retention).clone()
    }

    pub(crate) fn set_retention(&self, figures: RetentionFigures) {
        *lock(&self.retention) = figures;
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn fetched(&self, peer: PeerId, bytes: u64) {
        *lock(&self.fetched_from).entry(peer).or_default() += 1;
        Self::add(&self.chunks_fetched, 1);
        Self::add(&self.bytes_fetched, bytes);
    }

    pub(crate) fn set_held(&self, held: Vec<HeldSnapshot>) {
        *lock(&self.held) = held;
    }

    pub(crate) fn set_transfer(&self, status: Option<TransferStatus>) {
        *lock(&self.transfer) = status;
    }
}
