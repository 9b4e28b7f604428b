//! `SnapshotConfig`: when snapshots are cut, how they are chunked, how much log is kept
//! behind them, and how transfers are paced.

use crate::{Digest, UniqueId};
use std::time::Duration;
use tessera_snapshots::{TransferConfig, WriterConfig};

/// Settings of [`super::SnapshotSync`]. Everything that decides which bytes a snapshot
/// holds (marker spacing, chunk size, level) is part of the sync signature, hence of the
/// group id: members with different settings are different groups, so every member of a
/// group cuts byte-identical snapshots and any of them can serve any chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// The leader proposes a snapshot marker once this many entries were committed since
    /// the last one (default 100,000).
    pub every_entries: u64,
    /// ... or once this many command payload bytes were applied since the last one
    /// (default 256 MiB).
    pub every_bytes: u64,
    /// Entries kept in the log behind the newest durable snapshot, so a follower that is
    /// only a little behind catches up from the log instead of a whole snapshot
    /// (default 10,000). `safe_to_prune_prefix` is the snapshot's anchor minus this.
    pub keep_tail: u64,
    /// Complete snapshots kept per group (default 2, at least 1): the older one keeps a
    /// transfer that started on it going while the newer one is cut.
    pub retain: usize,
    /// Chunking and compression.
    pub writer: WriterConfig,
    /// Pacing of the chunk transfer on the receiving side.
    pub transfer: TransferConfig,
    /// How long a session waits for providers to say what they hold (default 1 s).
    pub discovery_timeout: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            every_entries: 100_000,
            every_bytes: 256 << 20,
            keep_tail: 10_000,
            retain: 2,
            writer: WriterConfig::default(),
            transfer: TransferConfig::default(),
            discovery_timeout: Duration::from_secs(1),
        }
    }
}

impl SnapshotConfig {
    /// Sets `every_entries`.
    pub fn every_entries(mut self, n: u64) -> Self {
        self.every_entries = n.max(1);
        self
    }

    /// Sets `every_bytes`.
    pub fn every_bytes(mut self, n: u64) -> Self {
        self.every_bytes = n.max(1);
        self
    }

    /// Sets `keep_tail`.
    pub fn keep_tail(mut self, n: u64) -> Self {
        self.keep_tail = n;
        self
    }

    /// Sets the raw chunk size.
    pub fn chunk_size(mut self, bytes: u32) -> Self {
        self.writer.chunk_size = bytes;
        self
    }

    /// The part of the group id these settings decide.
    pub fn signature(&self) -> UniqueId {
        Digest::from_parts(&[
            b"tessera/snapshot-sync/v1".as_slice(),
            &self.every_entries.to_le_bytes(),
            &self.every_bytes.to_le_bytes(),
            &self.writer.chunk_size.to_le_bytes(),
            &self.writer.level.to_le_bytes(),
        ])
    }
}
