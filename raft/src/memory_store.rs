//! `InMemoryLogStore`: the seed's in-memory log, made to model durability so tests and the
//! simulator can crash a node and see exactly what a disk would have kept.
//!
//! It holds two copies of the log: `current` (what reads see, every staged write applied)
//! and `durable` (what the last `sync` made durable). Staged writes are also queued as
//! operations; `sync` replays the queue onto `durable`, and [`InMemoryLogStore::crash`]
//! throws `current` and the queue away. Cost per sync is linear in the staged operations,
//! not in the log.

use crate::{Cursor, Entry, HardState, Index, Payload, Storage, StorageError, SyncReport, Term};
use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// One log state: the anchor, the entries after it, and the hard state.
#[derive(Clone, Debug)]
struct LogState {
    anchor: Cursor,
    /// Entry `i` is at index `anchor.index() + 1 + i`.
    entries: VecDeque<(Payload, Term)>,
    hard_state: HardState,
    /// The vote-withheld marker ([`Storage::vote_withheld`]).
    withheld: Option<Index>,
}

impl Default for LogState {
    fn default() -> Self {
        LogState {
            anchor: Cursor::zero(),
            entries: VecDeque::new(),
            hard_state: HardState::default(),
            withheld: None,
        }
    }
}

/// A staged write, replayed onto the durable copy at `sync`.
#[derive(Clone, Debug)]
enum Op {
    Append(Payload, Term),
    Truncate(Index),
    Prune(Index),
    Reset(Cursor),
    HardState(HardState),
    Withhold(Option<Index>),
}

impl LogState {
    fn last(&self) -> Cursor {
        match self.entries.back() {
            Some((_, term)) => Cursor(
                *term,
                Index(self.anchor.index().0 + self.entries.len() as u64),
            ),
            None => self.anchor,
        }
    }

    fn position(&self, index: Index) -> Option<usize> {
        let first = self.anchor.index().0 + 1;
        if index.0 < first {
            return None;
        }
        let offset = (index.0 - first) as usize;
        (offset < self.entries.len()).then_some(offset)
    }

    fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.anchor.index() {
            return Some(self.anchor.term());
        }
        self.position(index).map(|p| self.entries[p].1)
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Append(command, term) => self.entries.push_back((command, term)),
            Op::Truncate(at) => {
                let keep = at.0.saturating_sub(self.anchor.index().0 + 1) as usize;
                self.entries.truncate(keep);
            }
            Op::Prune(up_to) => {
                let up_to = up_to.min(self.last().index());
                if up_to <= self.anchor.index() {
                    return;
                }
                let term = self.term_at(up_to).unwrap_or(self.anchor.term());
                let drop = (up_to.0 - self.anchor.index().0) as usize;
                self.entries.drain(..drop);
                self.anchor = Cursor(term, up_to);
            }
            Op::Reset(anchor) => {
                self.entries.clear();
                self.anchor = anchor;
            }
            Op::HardState(state) => self.hard_state = state,
            Op::Withhold(until) => self.withheld = until,
        }
    }
}

/// An in-memory `Storage` that models durability. See the module docs.
#[derive(Debug)]
pub struct InMemoryLogStore {
    current: LogState,
    durable: LogState,
    pending: Vec<Op>,
}

impl Default for InMemoryLogStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryLogStore {
    /// An empty store.
    pub fn new() -> Self {
        InMemoryLogStore {
            current: LogState::default(),
            durable: LogState::default(),
            pending: Vec::new(),
        }
    }
}

impl InMemoryLogStore {
    /// Simulates a crash and restart: everything staged since the last `sync` is lost.
    pub fn crash(&mut self) {
        self.current = self.durable.clone();
        self.pending.clear();
    }

    /// Models what [`Storage::repair_from`] does on a damaged disk, for tests and the
    /// simulator: the entries from `at` on are discarded, the commit index capped, and the
    /// vote withheld until the old last index, durably (everything staged is synced first).
    pub fn lose_from(&mut self, at: Index) -> Result<(), StorageError> {
        self.sync()?;
        let last = self.current.last().index();
        if at > last {
            return Ok(());
        }
        self.truncate(at)?;
        let mut hs = self.current.hard_state;
        hs.commit = hs.commit.min(self.current.last().index());
        self.set_hard_state(hs)?;
        let until = self.current.withheld.map_or(last, |w| w.max(last));
        self.set_vote_withheld(Some(until))?;
        self.sync()?;
        Ok(())
    }

    /// The vote-withheld marker as of the last sync (what a crash keeps).
    pub fn durable_vote_withheld(&self) -> Option<Index> {
        self.durable.withheld
    }

    /// Staged operations not yet synced.
    pub fn pending_operations(&self) -> usize {
        self.pending.len()
    }

    fn stage(&mut self, op: Op) {
        self.current.apply(op.clone());
        self.pending.push(op);
    }
}

impl Storage for InMemoryLogStore {
    fn append(&mut self, payload: Payload, term: Term) -> Result<Index, StorageError> {
        self.stage(Op::Append(payload, term));
        Ok(self.current.last().index())
    }

    fn available(&self) -> RangeInclusive<Index> {
        self.current.anchor.index()..=self.current.last().index()
    }

    fn get(&self, index: Index) -> Result<Option<Entry>, StorageError> {
        Ok(self.current.position(index).map(|p| {
            let (payload, term) = &self.current.entries[p];
            Entry {
                term: *term,
                index,
                payload: payload.clone(),
            }
        }))
    }

    fn get_range(&self, range: &RangeInclusive<Index>) -> Result<Vec<Entry>, StorageError> {
        let first = (self.current.anchor.index().0 + 1).max(range.start().0);
        let last = self.current.last().index().0.min(range.end().0);
        Ok((first..=last)
            .filter_map(|i| {
                let p = self.current.position(Index(i))?;
                let (payload, term) = &self.current.entries[p];
                Some(Entry {
                    term: *term,
                    index: Index(i),
                    payload: payload.clone(),
                })
            })
            .collect())
    }

    fn truncate(&mut self, at: Index) -> Result<(), StorageError> {
        if at <= self.current.last().index() {
            self.stage(Op::Truncate(at));
        }
        Ok(())
    }

    fn last(&self) -> Cursor {
        self.current.last()
    }

    fn term_at(&self, index: Index) -> Result<Option<Term>, StorageError> {
        Ok(self.current.term_at(index))
    }

    fn prune_prefix(&mut self, up_to: Index) -> Result<(), StorageError> {
        if up_to.min(self.current.last().index()) > self.current.anchor.index() {
            self.stage(Op::Prune(up_to));
        }
        Ok(())
    }

    fn reset_to(&mut self, anchor: Cursor) -> Result<(), StorageError> {
        self.stage(Op::Reset(anchor));
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.current.hard_state
    }

    fn set_hard_state(&mut self, state: HardState) -> Result<(), StorageError> {
        if state != self.current.hard_state {
            self.stage(Op::HardState(state));
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<SyncReport, StorageError> {
        let operations = self.pending.len();
        for op in self.pending.drain(..) {
            self.durable.apply(op);
        }
        Ok(SyncReport {
            last: self.durable.last(),
            hard_state: self.durable.hard_state,
            operations,
        })
    }

    fn durable(&self) -> Cursor {
        self.durable.last()
    }

    fn vote_withheld(&self) -> Option<Index> {
        self.current.withheld
    }

    fn set_vote_withheld(&mut self, until: Option<Index>) -> Result<(), StorageError> {
        if until != self.current.withheld {
            self.stage(Op::Withhold(until));
        }
        Ok(())
    }
}
