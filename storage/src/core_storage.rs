//! The core's [`Storage`] trait on a [`GroupLog`]: the RocksDB log store a `tessera` group
//! runs on. A thin adapter: the types are the core's already, so each call forwards, and
//! a storage error becomes the core's [`StorageError::Backend`] naming the group.

use crate::error::hex;
use crate::{Error, GroupId, GroupLog, Store};
use std::ops::RangeInclusive;
use tessera_raft::{
    Cursor, Entry, HardState, Index, LogRepair, Payload, Storage, StorageError, SyncDone,
    SyncReport, Term,
};

/// A storage error as the core reports it, naming the group.
fn backend(group: &GroupId, source: Error) -> StorageError {
    StorageError::Backend {
        store: format!("group {}", hex(group)),
        source: Box::new(source),
    }
}

impl Store {
    /// Opens `group`'s log for the core: [`Store::group_log`] with the core's error.
    ///
    /// A damaged or missing tail does not fail the open: the node repairs it at once
    /// through [`Storage::repair_from`] (restart recovery does).
    pub fn open_core_log(&self, group: GroupId) -> Result<GroupLog, StorageError> {
        GroupLog::open_for_repair(self.clone(), group).map_err(|e| backend(&group, e))
    }
}

impl GroupLog {
    fn backend(&self, source: Error) -> StorageError {
        backend(self.group(), source)
    }
}

impl Storage for GroupLog {
    fn append(&mut self, payload: Payload, term: Term) -> Result<Index, StorageError> {
        GroupLog::append(self, payload, term).map_err(|e| self.backend(e))
    }

    fn available(&self) -> RangeInclusive<Index> {
        let bounds = self.bounds();
        bounds.anchor.index()..=bounds.last.index()
    }

    fn get(&self, index: Index) -> Result<Option<Entry>, StorageError> {
        GroupLog::get(self, index).map_err(|e| self.backend(e))
    }

    fn get_range(&self, range: &RangeInclusive<Index>) -> Result<Vec<Entry>, StorageError> {
        self.range(*range.start(), *range.end())
            .map_err(|e| self.backend(e))
    }

    fn truncate(&mut self, at: Index) -> Result<(), StorageError> {
        GroupLog::truncate(self, at).map_err(|e| self.backend(e))
    }

    fn last(&self) -> Cursor {
        GroupLog::last(self)
    }

    fn term_at(&self, index: Index) -> Result<Option<Term>, StorageError> {
        GroupLog::term_at(self, index).map_err(|e| self.backend(e))
    }

    fn prune_prefix(&mut self, up_to: Index) -> Result<(), StorageError> {
        GroupLog::prune_prefix(self, up_to).map_err(|e| self.backend(e))
    }

    fn reset_to(&mut self, anchor: Cursor) -> Result<(), StorageError> {
        GroupLog::reset_to(self, anchor).map_err(|e| self.backend(e))
    }

    fn hard_state(&self) -> HardState {
        GroupLog::hard_state(self)
    }

    fn set_hard_state(&mut self, state: HardState) -> Result<(), StorageError> {
        GroupLog::set_hard_state(self, state);
        Ok(())
    }

    fn sync(&mut self) -> Result<SyncReport, StorageError> {
        GroupLog::sync(self).map_err(|e| self.backend(e))
    }

    fn begin_sync(&mut self, done: SyncDone) -> Result<Option<SyncReport>, StorageError> {
        let group = *self.group();
        GroupLog::begin_sync(
            self,
            Box::new(move |generation, result| {
                done(generation, result.map_err(|e| backend(&group, e)))
            }),
        )
        .map_err(|e| self.backend(e))
    }

    fn finish_sync(&mut self, generation: u64) -> Result<SyncReport, StorageError> {
        Ok(GroupLog::finish_sync(self, generation))
    }

    fn durable(&self) -> Cursor {
        self.durable_last()
    }

    fn vote_withheld(&self) -> Option<Index> {
        GroupLog::vote_withheld(self)
    }

    fn set_vote_withheld(&mut self, until: Option<Index>) -> Result<(), StorageError> {
        GroupLog::set_vote_withheld(self, until);
        Ok(())
    }

    fn repair_from(&mut self, from: Index) -> Result<Option<LogRepair>, StorageError> {
        let repair = GroupLog::repair_from(self, from).map_err(|e| self.backend(e))?;
        Ok(repair.map(|r| LogRepair {
            index: Index(r.index),
            withheld_until: Index(r.withheld_until),
            what: r.cause.to_string(),
        }))
    }
}
