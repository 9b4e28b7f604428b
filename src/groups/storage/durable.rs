//! `DurableLogStore`: the typed `Storage` over RocksDB, through `tessera-storage`'s
//! `GroupLog`. Commands are encoded with the one codec; terms and indices map 1:1.

use super::{HardState, Storage, StorageError, SyncReport};
use crate::groups::{Command, Cursor, Index, Term};
use crate::primitives::codec;
use crate::{GroupId, PeerId};
use std::marker::PhantomData;
use std::ops::RangeInclusive;
use tessera_storage::{GroupLog, Position, Store};

/// The RocksDB-backed log store of one group.
pub struct DurableLogStore<C> {
    group: GroupId,
    log: GroupLog,
    _command: PhantomData<fn() -> C>,
}

/// How errors name this store.
fn store_name(group: GroupId) -> String {
    format!("group {group}")
}

fn cursor(p: Position) -> Cursor {
    Cursor(Term(p.term), Index(p.index))
}

fn to_storage(state: HardState) -> tessera_storage::HardState {
    tessera_storage::HardState {
        term: state.term.0,
        vote: state.vote.map(|v| v.0),
        commit: state.commit.0,
    }
}

fn from_storage(state: tessera_storage::HardState) -> HardState {
    HardState {
        term: Term(state.term),
        vote: state.vote.map(PeerId),
        commit: Index(state.commit),
    }
}

impl<C: Command> DurableLogStore<C> {
    /// Opens the log of `group` in `store`, loading its bounds and hard state. Open each
    /// group once per store.
    pub fn open(store: &Store, group: GroupId) -> Result<Self, StorageError> {
        let log = store
            .group_log(*group.as_bytes())
            .map_err(|source| StorageError::Backend {
                store: store_name(group),
                source: Box::new(source),
            })?;
        Ok(DurableLogStore {
            group,
            log,
            _command: PhantomData,
        })
    }

    fn backend(&self, source: tessera_storage::Error) -> StorageError {
        StorageError::Backend {
            store: store_name(self.group),
            source: Box::new(source),
        }
    }

    fn decode(&self, index: u64, payload: &[u8]) -> Result<C, StorageError> {
        codec::decode(payload).map_err(|e| StorageError::Codec {
            store: store_name(self.group),
            index: Index(index),
            reason: e.to_string(),
        })
    }
}

impl<C: Command> Storage<C> for DurableLogStore<C> {
    fn append(&mut self, command: C, term: Term) -> Result<Index, StorageError> {
        let last = self.log.last().index;
        let payload = codec::encode(&command).map_err(|e| StorageError::Codec {
            store: store_name(self.group),
            index: Index(last + 1),
            reason: e.to_string(),
        })?;
        self.log
            .append(term.0, payload)
            .map(Index)
            .map_err(|e| self.backend(e))
    }

    fn available(&self) -> RangeInclusive<Index> {
        let b = self.log.bounds();
        Index(b.anchor.index)..=Index(b.last.index)
    }

    fn get(&self, index: Index) -> Result<Option<(C, Term)>, StorageError> {
        match self.log.get(index.0).map_err(|e| self.backend(e))? {
            Some(entry) => Ok(Some((
                self.decode(entry.index, &entry.payload)?,
                Term(entry.term),
            ))),
            None => Ok(None),
        }
    }

    fn get_range(
        &self,
        range: &RangeInclusive<Index>,
    ) -> Result<Vec<(Term, Index, C)>, StorageError> {
        self.log
            .range(range.start().0, range.end().0)
            .map_err(|e| self.backend(e))?
            .into_iter()
            .map(|e| {
                Ok((
                    Term(e.term),
                    Index(e.index),
                    self.decode(e.index, &e.payload)?,
                ))
            })
            .collect()
    }

    fn truncate(&mut self, at: Index) -> Result<(), StorageError> {
        self.log.truncate(at.0).map_err(|e| self.backend(e))
    }

    fn last(&self) -> Cursor {
        cursor(self.log.last())
    }

    fn term_at(&self, index: Index) -> Result<Option<Term>, StorageError> {
        Ok(self
            .log
            .term_at(index.0)
            .map_err(|e| self.backend(e))?
            .map(Term))
    }

    fn prune_prefix(&mut self, up_to: Index) -> Result<(), StorageError> {
        self.log.prune_prefix(up_to.0).map_err(|e| self.backend(e))
    }

    fn reset_to(&mut self, anchor: Cursor) -> Result<(), StorageError> {
        self.log
            .reset_to(Position::new(anchor.term().0, anchor.index().0))
            .map_err(|e| self.backend(e))
    }

    fn hard_state(&self) -> HardState {
        from_storage(self.log.hard_state())
    }

    fn set_hard_state(&mut self, state: HardState) -> Result<(), StorageError> {
        self.log.set_hard_state(to_storage(state));
        Ok(())
    }

    fn sync(&mut self) -> Result<SyncReport, StorageError> {
        let report = self.log.sync().map_err(|e| self.backend(e))?;
        Ok(SyncReport {
            last: cursor(report.last),
            hard_state: from_storage(report.hard_state),
            operations: report.operations,
        })
    }

    fn durable(&self) -> Cursor {
        cursor(self.log.durable_last())
    }
}
