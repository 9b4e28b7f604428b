//! The core's view of the replicated log: entries not yet handed out ([`Unstable`]) over
//! the driver's storage, read through [`LogReader`], plus the commit, apply and durability
//! positions.
//!
//! **How the core reads stable entries.** The core never holds the whole log. Calls that
//! may need old entries (`step`, `tick`, `propose`, `ready`, ...) take a `&dyn LogReader`:
//! a small read-only view the driver passes in, implemented for every
//! `Storage`. It is deterministic and synchronous (the in-memory store answers at
//! once; RocksDB reads are point lookups); a read error is fatal and stops the group.
//!
//! Contract with the driver: everything a `Ready` hands out is written to the storage
//! (staged is enough) before the node is called again, so the storage always holds the
//! log below [`Unstable::offset`].

use super::message::Entry;
use super::unstable::Unstable;
use super::RaftError;
use crate::{Cursor, HardState, Index, Storage, StorageError, Term};

/// Read-only access to the driver's log store.
pub trait LogReader {
    /// The anchor: the last entry removed by pruning or set by a reset (zero for a new log).
    fn anchor(&self) -> Result<Cursor, StorageError>;
    /// The last entry (or the anchor when the log is empty).
    fn last(&self) -> Cursor;
    /// The term at `index`, also for the anchor; `None` outside the stored range.
    fn term_at(&self, index: Index) -> Result<Option<Term>, StorageError>;
    /// The stored entries in `from ..= to`, in order; indices not stored are skipped.
    fn entries(&self, from: Index, to: Index) -> Result<Vec<Entry>, StorageError>;
    /// The hard state (staged or durable).
    fn hard_state(&self) -> HardState;
    /// The vote-withheld marker ([`Storage::vote_withheld`]).
    fn vote_withheld(&self) -> Option<Index>;
}

impl<S: Storage + ?Sized> LogReader for S {
    fn anchor(&self) -> Result<Cursor, StorageError> {
        let index = *self.available().start();
        let term = Storage::term_at(self, index)?.unwrap_or(Term(0));
        Ok(Cursor(term, index))
    }

    fn last(&self) -> Cursor {
        Storage::last(self)
    }

    fn term_at(&self, index: Index) -> Result<Option<Term>, StorageError> {
        Storage::term_at(self, index)
    }

    fn entries(&self, from: Index, to: Index) -> Result<Vec<Entry>, StorageError> {
        if to < from {
            return Ok(Vec::new());
        }
        self.get_range(&(from..=to))
    }

    fn hard_state(&self) -> HardState {
        Storage::hard_state(self)
    }

    fn vote_withheld(&self) -> Option<Index> {
        Storage::vote_withheld(self)
    }
}

/// The log as the core sees it.
///
/// Invariants: `applied <= handed <= committed <= last.index()`; `durable.index() <=
/// last.index()`; the storage holds every entry below `unstable.offset()`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    unstable: Unstable,
    /// The last entry (in unstable, or in storage when unstable is empty).
    last: Cursor,
    /// Highest index known committed.
    pub(crate) committed: Index,
    /// Highest index the driver reported applied.
    pub(crate) applied: Index,
    /// Highest index handed out for applying.
    pub(crate) handed: Index,
    /// The last entry known durable in this node's storage (and still in its log).
    pub(crate) durable: Cursor,
    /// A log reset (state sync install) the next `Ready` must carry.
    pending_reset: Option<Cursor>,
}

impl RaftLog {
    /// The log after a restart: everything in storage is durable (a crash dropped the rest).
    pub(crate) fn restore(last: Cursor, committed: Index, applied: Index) -> Self {
        let committed = committed.min(last.index());
        let applied = applied.min(committed);
        RaftLog {
            unstable: Unstable::new(last.index().next()),
            last,
            committed,
            applied,
            handed: applied,
            durable: last,
            pending_reset: None,
        }
    }

    pub(crate) fn last(&self) -> Cursor {
        self.last
    }

    /// The term at `index`; `None` beyond the last entry or below the anchor.
    pub(crate) fn term_at(
        &self,
        index: Index,
        store: &dyn LogReader,
    ) -> Result<Option<Term>, RaftError> {
        if index.is_zero() {
            // "Before the first entry" matches only a log that still starts there: once
            // pruned or reset, index 0 is below the anchor like any pruned index.
            let reset = self.pending_reset.is_some_and(|r| !r.index().is_zero());
            let pruned = !store.anchor()?.index().is_zero();
            return Ok((!reset && !pruned).then_some(Term(0)));
        }
        if index > self.last.index() {
            return Ok(None);
        }
        if index == self.last.index() {
            return Ok(Some(self.last.term()));
        }
        if let Some(e) = self.unstable.get(index) {
            return Ok(Some(e.term));
        }
        if let Some(reset) = self.pending_reset {
            if index == reset.index() {
                return Ok(Some(reset.term()));
            }
            if index < reset.index() {
                return Ok(None);
            }
        }
        Ok(store.term_at(index)?)
    }

    /// Whether the log holds an entry at `at.index()` with term `at.term()`.
    pub(crate) fn matches(&self, at: Cursor, store: &dyn LogReader) -> Result<bool, RaftError> {
        Ok(self.term_at(at.index(), store)? == Some(at.term()))
    }

    /// Up to `max` entries from `from ..= to` (clamped to the log).
    pub(crate) fn entries(
        &self,
        from: Index,
        to: Index,
        max: usize,
        store: &dyn LogReader,
    ) -> Result<Vec<Entry>, RaftError> {
        if max == 0 || from.is_zero() {
            return Ok(Vec::new());
        }
        let to = Index(to.0.min(self.last.index().0).min(from.0 + max as u64 - 1));
        if to < from {
            return Ok(Vec::new());
        }
        let offset = self.unstable.offset();
        let mut out = Vec::new();
        if from < offset {
            let stored_to = Index(to.0.min(offset.0 - 1));
            out = store.entries(from, stored_to)?;
            let expected = stored_to.0 - from.0 + 1;
            if out.len() as u64 != expected {
                return Err(RaftError::MissingEntries {
                    from,
                    to: stored_to,
                    found: out.len(),
                });
            }
        }
        out.extend_from_slice(self.unstable.slice(from.max(offset), to));
        Ok(out)
    }

    /// Appends entries (consecutive, non-empty) that the caller checked against the log.
    pub(crate) fn append(
        &mut self,
        entries: Vec<Entry>,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let (first, last) = (first.index, last.cursor());
        if first <= self.committed {
            return Err(RaftError::CommittedOverwrite {
                index: first,
                committed: self.committed,
            });
        }
        if first <= self.durable.index() {
            let before = first.prev();
            let term = self.term_at(before, store)?.unwrap_or(Term(0));
            self.durable = Cursor(term, before);
        }
        self.unstable.truncate_and_append(entries);
        self.last = last;
        Ok(())
    }

    /// §5.3 receiver rules 2–4: if `prev` matches, writes the entries that are new or
    /// conflict and returns (last index verified to match, first index written).
    pub(crate) fn maybe_append(
        &mut self,
        prev: Cursor,
        entries: Vec<Entry>,
        store: &dyn LogReader,
    ) -> Result<Option<(Index, Option<Index>)>, RaftError> {
        if !self.matches(prev, store)? {
            return Ok(None);
        }
        let verified = Index(prev.index().0 + entries.len() as u64);
        let mut first_new = None;
        for (k, e) in entries.iter().enumerate() {
            if self.term_at(e.index, store)? != Some(e.term) {
                first_new = Some(k);
                break;
            }
        }
        let written = match first_new {
            Some(k) => {
                let rest: Vec<Entry> = entries.into_iter().skip(k).collect();
                let from = rest[0].index;
                self.append(rest, store)?;
                Some(from)
            }
            None => None,
        };
        Ok(Some((verified, written)))
    }

    /// The first index of the term the log holds at `index` (scanning back at most 1024
    /// entries, never to or below the commit index): where a leader should retry.
    pub(crate) fn conflict_hint(
        &self,
        index: Index,
        store: &dyn LogReader,
    ) -> Result<Index, RaftError> {
        let index = index.min(self.last.index());
        let Some(term) = self.term_at(index, store)? else {
            return Ok(index.max(Index(1)));
        };
        let mut i = index;
        let floor = self.committed.next();
        let mut steps = 0;
        while i > floor && steps < 1024 {
            if self.term_at(i.prev(), store)? != Some(term) {
                break;
            }
            i = i.prev();
            steps += 1;
        }
        Ok(i.max(Index(1)))
    }

    /// Raises the commit index (never lowers it, never past the last entry).
    pub(crate) fn commit_to(&mut self, index: Index) -> bool {
        let index = index.min(self.last.index());
        if index > self.committed {
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// Committed entries not yet handed out, at most `max`; marks them handed out.
    pub(crate) fn take_committed(
        &mut self,
        max: usize,
        store: &dyn LogReader,
    ) -> Result<Vec<Entry>, RaftError> {
        if self.handed >= self.committed {
            return Ok(Vec::new());
        }
        let out = self.entries(self.handed.next(), self.committed, max, store)?;
        if let Some(last) = out.last() {
            self.handed = last.index;
        }
        Ok(out)
    }

    /// Whether committed entries wait to be handed out.
    pub(crate) fn has_committed(&self) -> bool {
        self.handed < self.committed
    }

    /// Entries to hand to the driver (which truncates at the first one's index).
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        self.unstable.take(self.last.index().next())
    }

    pub(crate) fn has_unstable(&self) -> bool {
        !self.unstable.is_empty()
    }

    /// A pending log reset, moved out.
    pub(crate) fn take_reset(&mut self) -> Option<Cursor> {
        self.pending_reset.take()
    }

    /// Records the driver's durable position if the log still holds that entry (guards
    /// against a later leader having rewritten the index: the ABA case).
    pub(crate) fn on_persisted(
        &mut self,
        at: Cursor,
        store: &dyn LogReader,
    ) -> Result<bool, RaftError> {
        if at.index() <= self.last.index() && self.matches(at, store)? && at != self.durable {
            self.durable = at;
            return Ok(true);
        }
        Ok(false)
    }

    /// Replaces the log with an empty one anchored at `at`, whose state the state machine
    /// already holds (state sync).
    pub(crate) fn reset_to(&mut self, at: Cursor) {
        self.unstable.reset(at.index().next());
        self.last = at;
        self.committed = self.committed.max(at.index());
        self.applied = at.index();
        self.handed = at.index();
        self.durable = Cursor::zero();
        self.pending_reset = Some(at);
    }

    /// Debug-only: the ordering invariants.
    pub(crate) fn check_invariants(&self) {
        debug_assert!(
            self.applied <= self.handed,
            "applied {} > handed {}",
            self.applied,
            self.handed
        );
        debug_assert!(
            self.handed <= self.committed,
            "handed {} > committed {}",
            self.handed,
            self.committed
        );
        debug_assert!(
            self.committed <= self.last.index(),
            "committed {} > last {}",
            self.committed,
            self.last
        );
        debug_assert!(self.durable.index() <= self.last.index());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryLogStore, Payload};

    fn e(t: u64, i: u64) -> Entry {
        Entry {
            term: Term(t),
            index: Index(i),
            payload: Payload::Noop,
        }
    }

    fn flush(log: &mut RaftLog, store: &mut InMemoryLogStore) {
        let entries = log.take_unstable();
        if let Some(first) = entries.first() {
            if Storage::last(store).index() >= first.index {
                store.truncate(first.index).unwrap();
            }
        }
        for x in entries {
            store.append(x.payload, x.term).unwrap();
        }
    }

    #[test]
    fn conflicting_entries_are_replaced_and_reads_span_storage_and_unstable() {
        let mut store = InMemoryLogStore::default();
        let mut log = RaftLog::restore(Cursor::zero(), Index(0), Index(0));
        log.append(vec![e(1, 1), e(1, 2), e(1, 3)], &store).unwrap();
        flush(&mut log, &mut store);
        log.append(vec![e(1, 4)], &store).unwrap();
        assert_eq!(
            log.entries(Index(2), Index(4), 10, &store).unwrap(),
            vec![e(1, 2), e(1, 3), e(1, 4)]
        );
        // A new leader's entries conflict at 3.
        let out = log
            .maybe_append(Cursor(Term(1), Index(2)), vec![e(2, 3)], &store)
            .unwrap();
        assert_eq!(out, Some((Index(3), Some(Index(3)))));
        assert_eq!(log.last(), Cursor(Term(2), Index(3)));
        assert_eq!(log.term_at(Index(4), &store).unwrap(), None);
        flush(&mut log, &mut store);
        assert_eq!(Storage::last(&store), Cursor(Term(2), Index(3)));
        // Mismatch at prev.
        assert_eq!(
            log.maybe_append(Cursor(Term(3), Index(3)), vec![], &store)
                .unwrap(),
            None
        );
        // Duplicate: nothing written, still verified.
        assert_eq!(
            log.maybe_append(Cursor(Term(1), Index(1)), vec![e(1, 2)], &store)
                .unwrap(),
            Some((Index(2), None))
        );
    }

    #[test]
    fn committed_entries_cannot_be_overwritten() {
        let store = InMemoryLogStore::default();
        let mut log = RaftLog::restore(Cursor::zero(), Index(0), Index(0));
        log.append(vec![e(1, 1), e(1, 2)], &store).unwrap();
        log.commit_to(Index(2));
        assert!(matches!(
            log.maybe_append(Cursor(Term(1), Index(1)), vec![e(2, 2)], &store),
            Err(RaftError::CommittedOverwrite { .. })
        ));
    }

    #[test]
    fn conflict_hint_finds_the_start_of_the_term() {
        let store = InMemoryLogStore::default();
        let mut log = RaftLog::restore(Cursor::zero(), Index(0), Index(0));
        log.append(vec![e(1, 1), e(2, 2), e(2, 3), e(2, 4)], &store)
            .unwrap();
        assert_eq!(log.conflict_hint(Index(4), &store).unwrap(), Index(2));
        assert_eq!(log.conflict_hint(Index(9), &store).unwrap(), Index(2));
    }

    #[test]
    fn persisted_position_is_ignored_when_rewritten() {
        let store = InMemoryLogStore::default();
        let mut log = RaftLog::restore(Cursor::zero(), Index(0), Index(0));
        log.append(vec![e(1, 1), e(1, 2)], &store).unwrap();
        log.maybe_append(Cursor(Term(1), Index(1)), vec![e(2, 2)], &store)
            .unwrap();
        assert!(!log.on_persisted(Cursor(Term(1), Index(2)), &store).unwrap());
        assert!(log.on_persisted(Cursor(Term(2), Index(2)), &store).unwrap());
    }
}
