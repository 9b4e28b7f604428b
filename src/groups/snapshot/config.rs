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
    /// A catching-up member's pin (the log after the snapshot it fetches, see
    /// `retention.rs`) is dropped when not refreshed for this long (default 30 s): a
    /// member that died keeps nothing for long.
    pub pin_ttl: Duration,
    /// Most entries kept behind the newest snapshot for catching-up members, by pins and
    /// by the measured tail together (default 1,000,000): a member whose link cannot
    /// carry the write stream does not grow every log without end (it starts over).
    pub max_retained: u64,
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
            pin_ttl: Duration::from_secs(30),
            max_retained: 1_000_000,
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

    /// Sets `pin_ttl`.
    pub fn pin_ttl(mut self, ttl: Duration) -> Self {
        self.pin_ttl = ttl;
        self
    }

    /// Sets `max_retained`.
    pub fn max_retained(mut self, entries: u64) -> Self {
        self.max_retained = entries;
        self
    }

    /// The limits of the retention rules (`retention.rs`).
    pub(crate) fn retention_limits(&self) -> super::retention::RetentionLimits {
        super::retention::RetentionLimits {
            keep_tail: self.keep_tail,
            pin_ttl: self.pin_ttl,
            max_retained: self.max_retained,
        }
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
