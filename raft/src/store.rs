//! The log store the core writes through (the seed's `Storage` trait, made fallible and
//! durable): staged writes, one `sync` per `Ready`, and the hard state beside the log.
//!
//! Departures from the seed, each for durability:
//! - Every call returns `Result`; an I/O error or corruption stops the group with an error
//!   naming the store, index and cause. Nothing is skipped and nothing panics.
//! - Writes (`append`, `truncate`, `prune_prefix`, `reset_to`, `set_hard_state`) are
//!   *staged*: visible to reads at once, durable only after [`Storage::sync`], which makes
//!   everything staged durable with one write and one fsync (group commit) and reports the
//!   durable position. A crash loses exactly what was staged after the last `sync`.
//! - The store keeps the *anchor*: the (term, index) of the last entry removed by
//!   `prune_prefix` or set by `reset_to`. [`Storage::term_at`] answers for the anchor too,
//!   because Raft's log-matching check needs the term of the entry just before the first
//!   one it has (§5.3, §7).
//! - The hard state (term, vote, commit) lives beside the log so one sync covers both.
//!
//! Two implementations: [`InMemoryLogStore`](crate::InMemoryLogStore) here (tests and the
//! simulator; models a crash with `crash()`) and `GroupLog` in `tessera-storage` (RocksDB),
//! which stores these very types.

use crate::{Cursor, Entry, Index, Payload, PeerId, StorageError, Term};
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// What must be on disk before a node speaks in a term: Raft's persistent state (Figure 2),
/// plus the commit index so a restart does not re-derive it from scratch.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<PeerId>,
    /// The highest index known committed (may lag the true value; never ahead of it).
    pub commit: Index,
}

/// What one [`Storage::sync`] made durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SyncReport {
    /// The last entry now on disk.
    pub last: Cursor,
    /// The hard state now on disk.
    pub hard_state: HardState,
    /// How many staged operations the sync wrote (0: nothing was pending, no fsync made).
    pub operations: usize,
}

/// A damaged log record found by [`Storage::repair_from`], and what was done about it: the
/// log was truncated at `index` (everything from it on discarded, to be fetched again from
/// the leader) and votes are withheld until the log reaches `withheld_until` again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRepair {
    /// The first damaged entry: the log now ends just before it.
    pub index: Index,
    /// The last index the log had before the repair (the vote-withheld marker).
    pub withheld_until: Index,
    /// Where and what: column family, key and the damage, for the log line (not for
    /// matching on; the store's own error type names them precisely).
    pub what: String,
}

/// How a store that syncs on another thread tells its driver a sync ended: the sync's
/// generation and its result (see [`Storage::begin_sync`]).
pub type SyncDone = Box<dyn FnOnce(u64, Result<(), StorageError>) + Send>;

/// The log store of one consensus group. It stores the core's own [`Entry`] (a command
/// stays the bytes the typed layer encoded; a store writes them as they are, see
/// [`Payload::header`]).
///
/// Indices start at 1 and survive pruning and `reset_to`: the entry at index 57 is at 57
/// forever, whatever was removed before it.
///
/// Invariant: `available().start() <= last().index()`; entries exist exactly at
/// `available().start() + 1 ..= last().index()`.
pub trait Storage: Send + 'static {
    /// Stages a new entry at `last().index() + 1` and returns its index.
    fn append(&mut self, payload: Payload, term: Term) -> Result<Index, StorageError>;

    /// The anchor index (last removed entry, 0 if none) through the last index. Entries
    /// are readable at `start + 1 ..= end`; the range is `start..=start` when empty.
    fn available(&self) -> RangeInclusive<Index>;

    /// The entry at `index`, or `None` when it was pruned or not yet appended.
    fn get(&self, index: Index) -> Result<Option<Entry>, StorageError>;

    /// The entries in `range` that exist, in order; indices outside the available range
    /// are skipped (the seed's contract).
    fn get_range(&self, range: &RangeInclusive<Index>) -> Result<Vec<Entry>, StorageError>;

    /// Stages removal of every entry at `at` and above. Truncating at or below the anchor
    /// removes every entry and keeps the anchor.
    fn truncate(&mut self, at: Index) -> Result<(), StorageError>;

    /// The last entry, or the anchor when the log holds no entries (`Cursor::zero()` for a
    /// new log).
    fn last(&self) -> Cursor;

    /// The term of the entry at `index`; answers for the anchor too. `None` when the index
    /// is below the anchor or above the last entry.
    fn term_at(&self, index: Index) -> Result<Option<Term>, StorageError>;

    /// Stages removal of every entry up to and including `up_to` (clamped to the last
    /// entry); the removed prefix's last entry becomes the anchor. A no-op at or below the
    /// current anchor.
    fn prune_prefix(&mut self, up_to: Index) -> Result<(), StorageError>;

    /// Stages replacing the whole log with an empty one anchored at `anchor`: the next
    /// append gets `anchor.index() + 1`. Used when a snapshot is installed.
    fn reset_to(&mut self, anchor: Cursor) -> Result<(), StorageError>;

    /// The current (possibly staged) hard state.
    fn hard_state(&self) -> HardState;

    /// Stages a new hard state.
    fn set_hard_state(&mut self, state: HardState) -> Result<(), StorageError>;

    /// Makes everything staged durable with one write and at most one fsync, then reports
    /// the durable position. Nothing may be reported durable before this returns `Ok`.
    fn sync(&mut self) -> Result<SyncReport, StorageError>;

    /// Starts making everything staged durable without waiting for the disk: a store
    /// whose writes can finish on another thread hands them over and returns `Ok(None)`,
    /// then calls `done` (from any thread) with the number it must be finished with, and
    /// the driver calls [`finish_sync`](Self::finish_sync) with it. `Ok(Some(report))`
    /// means the sync already happened here (the default: a blocking [`sync`](Self::sync)).
    /// Whatever is staged after this call is not covered by it.
    fn begin_sync(&mut self, done: SyncDone) -> Result<Option<SyncReport>, StorageError> {
        drop(done);
        self.sync().map(Some)
    }

    /// The sync numbered `generation` (begun with [`begin_sync`](Self::begin_sync))
    /// returned successfully: records its writes durable and reports the durable
    /// position. Only for stores whose `begin_sync` returns `None`.
    fn finish_sync(&mut self, generation: u64) -> Result<SyncReport, StorageError> {
        let _ = generation;
        self.sync()
    }

    /// The last entry known durable (as of the last successful `sync` or open).
    fn durable(&self) -> Cursor;

    /// The vote-withheld marker: this node lost log entries it may have acknowledged (a
    /// damaged record was repaired by truncating the log), so it neither votes, pre-votes
    /// nor campaigns until its log reaches this index again through a leader (see
    /// `Node::vote_withheld`). Durable across restarts; `None` for a store that never
    /// repairs (the default).
    fn vote_withheld(&self) -> Option<Index> {
        None
    }

    /// Stages setting or clearing the vote-withheld marker; durable with the next `sync`.
    /// The default ignores it: a store whose [`Storage::repair_from`] never repairs never
    /// has a marker to set or clear.
    fn set_vote_withheld(&mut self, _until: Option<Index>) -> Result<(), StorageError> {
        Ok(())
    }

    /// Restart recovery: verifies every stored entry from `from` (clamped to the first one
    /// stored) to the last, plus any record a read found damaged while the node ran. At
    /// the first damaged one (bad crc, undecodable payload, missing inside the bounds) the
    /// log is truncated there, the commit index capped at the new last entry and the
    /// vote-withheld marker set to the old last index, all made durable before this
    /// returns. Damage is repaired by discarding, never by skipping: the entries come back
    /// from the leader. The default verifies nothing (the in-memory store cannot be
    /// damaged).
    fn repair_from(&mut self, _from: Index) -> Result<Option<LogRepair>, StorageError> {
        Ok(None)
    }
}
