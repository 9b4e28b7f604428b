//! `GroupLog`: one group's Raft log and hard state, staged in memory and made durable by
//! one `WriteBatch` with one fsync per [`GroupLog::sync`].
//!
//! Staging model. The newest entries live in memory, in `tail`: always a contiguous suffix
//! `t..=last` of the log (appends extend it, truncation cuts it, prune and reset drop its
//! front or all of it). Of those, the ones at `dirty_from..` were appended since the last
//! sync. Writes since the last sync live in two places until `sync`:
//! - the entries of `tail` from `dirty_from` on;
//! - `deletes`: the key ranges truncation, pruning and reset removed.
//!
//! `sync` writes every delete range first, then the unsynced entries, then the bounds and
//! the hard state, as one batch. That order is equivalent to replaying the calls: an
//! unsynced entry still in `tail` was appended after every delete that could have covered
//! it. After the sync, `tail` keeps the newest synced entries (up to [`TAIL_ENTRIES`] and
//! [`TAIL_BYTES`]), so the entries a leader just wrote are replicated and applied from
//! memory, not read back from RocksDB.
//!
//! Reads see the staged state: indices `t..=last` from `tail`, the rest from RocksDB (no
//! staged delete can reach below `t` and above the anchor).
//!
//! Entry record payload (inside the [`crate::record`] envelope, key = group ‖ index):
//!
//! | offset | size | field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 8    | term (LE)                                                |
//! | 8      | n    | the core's payload bytes ([`Payload::header`], then a command's own bytes as the typed layer encoded them) |
//!
//! The types are the core's (`tessera-raft`): this crate stores its [`Entry`], [`Cursor`]
//! and [`HardState`] and reports its [`SyncReport`], so nothing converts between two
//! versions of them; `core_storage.rs` implements the core's `Storage` trait on top.

mod repair;

pub use repair::Repair;

use crate::error::{hex, Corruption, Error};
use crate::hard_state::{hard_state_record, LogBounds};
use crate::keys::{log_key, meta_key, MetaTag};
use crate::store::{ColumnFamily, Store};
use crate::{record, GroupId};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use std::collections::{BTreeMap, VecDeque};
use tessera_raft::{Cursor, Entry, HardState, Index, Payload, SyncReport, Term};

/// Most synced entries a group keeps in memory after a sync (the newest ones): enough for
/// the entries a leader replicates and applies right after writing them.
pub const TAIL_ENTRIES: usize = 256;
/// Most payload bytes of synced entries a group keeps in memory after a sync: a bound per
/// group (a node with many groups holds at most this much per group, idle or not).
pub const TAIL_BYTES: usize = 1 << 20;

/// What one batch makes durable, recorded when it is handed to the syncer.
#[derive(Clone, Copy, Debug)]
struct Staged {
    generation: u64,
    bounds: LogBounds,
    hard_state: HardState,
    vote_withheld: Option<Index>,
    clear_damage: bool,
    operations: usize,
}

/// One group's durable log. See the module docs for the staging model.
pub struct GroupLog {
    store: Store,
    group: GroupId,
    /// Bounds as staged (what reads see).
    bounds: LogBounds,
    /// Bounds as of the last sync.
    durable_bounds: LogBounds,
    hard_state: HardState,
    durable_hard_state: HardState,
    /// The newest entries, in memory: a contiguous suffix of the log (see the module docs).
    tail: BTreeMap<u64, (Term, Payload)>,
    /// Command bytes in `tail`.
    tail_bytes: usize,
    /// Entries of `tail` at this index and above were appended since the last sync
    /// (`u64::MAX`: none).
    dirty_from: u64,
    /// Index ranges `[from, to)` removed since the last sync, in call order.
    deletes: Vec<(u64, u64)>,
    /// Staged calls since the last sync, for the report.
    operations: usize,
    /// The vote-withheld marker as staged, and as of the last sync (`MetaTag::VoteWithheld`).
    vote_withheld: Option<Index>,
    durable_vote_withheld: Option<Index>,
    /// The lowest index a read found damaged in an earlier run (`MetaTag::LogDamage`), as
    /// found at open; `repair_from` starts there and clears it.
    damage_marker: Option<u64>,
    /// The next sync deletes the `LogDamage` record (a repair dealt with it).
    clear_damage_marker: bool,
    /// Opened for repair with a damaged or missing tail: verification starts here.
    suspect_from: Option<u64>,
    /// Batches handed to the node's syncer ([`GroupLog::begin_sync`]) and not yet known
    /// durable, oldest first.
    in_flight: VecDeque<Staged>,
    /// The generation of the next batch.
    next_generation: u64,
    /// When the deliberate lazy-fsync bug last wrote for real (see `faults`).
    #[cfg(feature = "fault-injection")]
    lazy_written: Option<std::time::Instant>,
}

/// The term of a stored entry record's payload, and the rest (the core's payload bytes).
fn split_term<'a>(cf_key: &[u8], payload: &'a [u8]) -> Result<(Term, &'a [u8]), Error> {
    if payload.len() < 8 {
        return Err(Error::Corruption {
            cf: "log",
            key: hex(cf_key),
            kind: Corruption::PayloadLength {
                len: payload.len(),
                expected: "at least 8 (term)",
            },
        });
    }
    let mut term = [0u8; 8];
    term.copy_from_slice(&payload[..8]);
    Ok((Term(u64::from_le_bytes(term)), &payload[8..]))
}

/// Reads one stored entry record (its envelope already checked).
fn decode_entry(key: &[u8], index: u64, payload: &[u8]) -> Result<Entry, Error> {
    let (term, bytes) = split_term(key, payload)?;
    let payload = Payload::from_bytes(bytes).map_err(|err| Error::Corruption {
        cf: "log",
        key: hex(key),
        kind: Corruption::Payload(err),
    })?;
    Ok(Entry {
        term,
        index: Index(index),
        payload,
    })
}

/// A small `meta` record holding one u64 (LE), if present.
fn read_index_record(store: &Store, key: &[u8]) -> Result<Option<u64>, Error> {
    let Some(raw) = store.get_raw(ColumnFamily::Meta, key)? else {
        return Ok(None);
    };
    let payload = record::decode("meta", key, &raw)?;
    let bytes: [u8; 8] = payload.try_into().map_err(|_| Error::Corruption {
        cf: "meta",
        key: hex(key),
        kind: Corruption::PayloadLength {
            len: payload.len(),
            expected: "8 (index)",
        },
    })?;
    Ok(Some(u64::from_le_bytes(bytes)))
}

impl GroupLog {
    /// Opens `group`'s log, refusing a damaged tail (bounds that disagree with the newest
    /// entry, or a damaged newest entry): for tools that read and must not repair.
    pub(crate) fn open(store: Store, group: GroupId) -> Result<Self, Error> {
        Self::open_with(store, group, false)
    }

    /// Opens `group`'s log for a node that repairs at once ([`GroupLog::repair_from`]):
    /// a damaged or missing tail is noted, not refused (reads of it still fail).
    pub(crate) fn open_for_repair(store: Store, group: GroupId) -> Result<Self, Error> {
        Self::open_with(store, group, true)
    }

    fn open_with(store: Store, group: GroupId, repairable: bool) -> Result<Self, Error> {
        let bounds_key = meta_key(&group, MetaTag::LogBounds);
        let bounds = match store.get_raw(ColumnFamily::Meta, &bounds_key)? {
            Some(raw) => {
                LogBounds::decode(&bounds_key, record::decode("meta", &bounds_key, &raw)?)?
            }
            None => LogBounds::default(),
        };
        let hs_key = meta_key(&group, MetaTag::HardState);
        let hard_state = match store.get_raw(ColumnFamily::Meta, &hs_key)? {
            Some(raw) => {
                hard_state_record::decode(&hs_key, record::decode("meta", &hs_key, &raw)?)?
            }
            None => HardState::default(),
        };
        let vote_withheld =
            read_index_record(&store, &meta_key(&group, MetaTag::VoteWithheld))?.map(Index);
        let damage_marker = read_index_record(&store, &meta_key(&group, MetaTag::LogDamage))?;
        let mut log = GroupLog {
            store,
            group,
            bounds,
            durable_bounds: bounds,
            hard_state,
            durable_hard_state: hard_state,
            tail: BTreeMap::new(),
            tail_bytes: 0,
            dirty_from: u64::MAX,
            deletes: Vec::new(),
            operations: 0,
            vote_withheld,
            durable_vote_withheld: vote_withheld,
            damage_marker,
            clear_damage_marker: false,
            suspect_from: None,
            in_flight: VecDeque::new(),
            next_generation: 1,
            #[cfg(feature = "fault-injection")]
            lazy_written: None,
        };
        match log.check_tail() {
            Ok(()) => {}
            Err(Error::Corruption {
                kind: Corruption::Bounds { recorded, found },
                ..
            }) if repairable && found < recorded => log.suspect_from = Some(found + 1),
            Err(Error::Corruption { kind, .. })
                if repairable
                    && !matches!(kind, Corruption::Key { .. } | Corruption::Bounds { .. }) =>
            {
                log.suspect_from = Some(log.bounds.last.index().0)
            }
            Err(err) => return Err(err),
        }
        Ok(log)
    }

    /// Verifies on open that the newest stored entry is exactly the recorded last one and
    /// is intact: bounds and entries are written in one batch, so any disagreement is
    /// damage, not a torn write.
    fn check_tail(&self) -> Result<(), Error> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(log_key(&self.group, 0).to_vec());
        let upper = log_key(&self.group, u64::MAX);
        let mut iter = self.store.db().iterator_cf_opt(
            self.store.cf(ColumnFamily::Log),
            opts,
            IteratorMode::From(&upper, Direction::Reverse),
        );
        let found = match iter.next() {
            None => None,
            Some(item) => {
                let (key, value) = item.map_err(|source| Error::Db {
                    op: "iterate",
                    cf: "log",
                    source,
                })?;
                let (group, index) =
                    crate::keys::parse_log_key(&key).ok_or_else(|| Error::Corruption {
                        cf: "log",
                        key: hex(&key),
                        kind: Corruption::Key { len: key.len() },
                    })?;
                if group != self.group {
                    None
                } else {
                    let (term, _) = split_term(&key, record::decode("log", &key, &value)?)?;
                    Some(Cursor(term, Index(index)))
                }
            }
        };
        let recorded = self.bounds.last;
        let expected = (recorded.index() > self.bounds.anchor.index()).then_some(recorded);
        if found != expected {
            return Err(Error::Corruption {
                cf: "log",
                key: hex(&log_key(&self.group, recorded.index().0)),
                kind: Corruption::Bounds {
                    recorded: recorded.index().0,
                    found: found.map_or(self.bounds.anchor.index(), |p| p.index()).0,
                },
            });
        }
        Ok(())
    }

    /// The group.
    pub fn group(&self) -> &GroupId {
        &self.group
    }

    /// Anchor (last removed entry) and last entry, as staged.
    pub fn bounds(&self) -> LogBounds {
        self.bounds
    }

    /// The last entry (the anchor when the log is empty), as staged.
    pub fn last(&self) -> Cursor {
        self.bounds.last
    }

    /// The last entry as of the last sync.
    pub fn durable_last(&self) -> Cursor {
        self.durable_bounds.last
    }

    /// The hard state, as staged.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Whether anything is staged and not yet synced.
    pub fn has_pending(&self) -> bool {
        self.operations > 0
    }

    fn out_of_range(&self, op: &'static str, index: u64) -> Error {
        Error::OutOfRange {
            group: hex(&self.group),
            op,
            index,
            anchor: self.bounds.anchor.index().0,
            last: self.bounds.last.index().0,
        }
    }

    /// Stages an entry at `last + 1` and returns its index.
    pub fn append(&mut self, payload: Payload, term: Term) -> Result<Index, Error> {
        let index = self.bounds.last.index().0 + 1;
        if index == u64::MAX {
            return Err(self.out_of_range("append", index));
        }
        self.tail_bytes += payload.body().len();
        self.tail.insert(index, (term, payload));
        self.dirty_from = self.dirty_from.min(index);
        self.bounds.last = Cursor(term, Index(index));
        self.operations += 1;
        Ok(Index(index))
    }

    /// The entry at `index`, or `None` outside `anchor + 1 ..= last`.
    pub fn get(&self, index: Index) -> Result<Option<Entry>, Error> {
        if index <= self.bounds.anchor.index() || index > self.bounds.last.index() {
            return Ok(None);
        }
        let index = index.0;
        if let Some((term, payload)) = self.tail.get(&index) {
            return Ok(Some(Entry {
                index: Index(index),
                term: *term,
                payload: payload.clone(),
            }));
        }
        let key = log_key(&self.group, index);
        let Some(raw) = self.store.get_raw(ColumnFamily::Log, &key)? else {
            let missing = Error::Corruption {
                cf: "log",
                key: hex(&key),
                kind: Corruption::Missing { index },
            };
            return Err(self.damaged(index, missing));
        };
        #[cfg(feature = "fault-injection")]
        let raw = {
            let mut raw = raw;
            if crate::faults::flip_target(self.store.path()) == Some(index) {
                crate::faults::flip_record(self.store.path(), index, &mut raw);
            }
            raw
        };
        record::decode("log", &key, &raw)
            .and_then(|payload| decode_entry(&key, index, payload))
            .map(Some)
            .map_err(|err| self.damaged(index, err))
    }

    /// A read found entry `index` damaged: records that durably (`MetaTag::LogDamage`,
    /// the lowest such index) so the next open repairs from there even when recovery
    /// would not read it, and returns `err`. Best effort: if the record cannot be written,
    /// `err` still stops whoever read, and the next open repairs what it verifies.
    fn damaged(&self, index: u64, err: Error) -> Error {
        if err.is_corruption() {
            let key = meta_key(&self.group, MetaTag::LogDamage);
            let lowest = match read_index_record(&self.store, &key) {
                Ok(Some(known)) => known.min(index),
                _ => index,
            };
            let _ = self.store.put_raw(
                ColumnFamily::Meta,
                &key,
                &record::encode(&key, &lowest.to_le_bytes()),
                true,
            );
        }
        err
    }

    /// The entries in `start..=end` that exist, in order.
    pub fn range(&self, start: Index, end: Index) -> Result<Vec<Entry>, Error> {
        let start = start.0.max(self.bounds.anchor.index().0 + 1);
        let end = end.0.min(self.bounds.last.index().0);
        if start > end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - start + 1).min(1 << 16) as usize);
        let first_in_memory = self.tail.keys().next().copied().unwrap_or(u64::MAX);
        let disk_end = end.min(first_in_memory.saturating_sub(1));
        if start <= disk_end {
            if let Err((index, err)) = self.scan_disk(start, disk_end, &mut |e| out.push(e))? {
                return Err(self.damaged(index, err));
            }
        }
        let memory_start = start.max(first_in_memory);
        if memory_start <= end {
            for (&index, (term, payload)) in self.tail.range(memory_start..=end) {
                out.push(Entry {
                    index: Index(index),
                    term: *term,
                    payload: payload.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Reads and checks the stored entries `start..=end` from RocksDB, in order, handing
    /// each to `visit`. The inner error is the first damaged entry (bad record, payload
    /// that does not decode, or missing inside the range) and its index; the outer one a
    /// failed read.
    pub(crate) fn scan_disk(
        &self,
        start: u64,
        end: u64,
        visit: &mut dyn FnMut(Entry),
    ) -> Result<Result<(), (u64, Error)>, Error> {
        let missing = |index: u64| {
            (
                index,
                Error::Corruption {
                    cf: "log",
                    key: hex(&log_key(&self.group, index)),
                    kind: Corruption::Missing { index },
                },
            )
        };
        #[cfg(feature = "fault-injection")]
        let flip = crate::faults::flip_target(self.store.path());
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(log_key(&self.group, end.saturating_add(1)).to_vec());
        let from = log_key(&self.group, start);
        let iter = self.store.db().iterator_cf_opt(
            self.store.cf(ColumnFamily::Log),
            opts,
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut expected = start;
        for item in iter {
            let (key, value) = item.map_err(|source| Error::Db {
                op: "iterate",
                cf: "log",
                source,
            })?;
            let index = match crate::keys::parse_log_key(&key) {
                Some((group, index)) if group == self.group => index,
                _ => {
                    let err = Error::Corruption {
                        cf: "log",
                        key: hex(&key),
                        kind: Corruption::Key { len: key.len() },
                    };
                    return Ok(Err((expected, err)));
                }
            };
            if index != expected {
                return Ok(Err(missing(expected)));
            }
            #[cfg(feature = "fault-injection")]
            let value = {
                let mut value = value.into_vec();
                if flip == Some(index) {
                    crate::faults::flip_record(self.store.path(), index, &mut value);
                }
                value
            };
            match record::decode("log", &key, &value)
                .and_then(|payload| decode_entry(&key, index, payload))
            {
                Ok(entry) => visit(entry),
                Err(err) => return Ok(Err((index, err))),
            }
            expected += 1;
        }
        if expected != end.saturating_add(1) {
            return Ok(Err(missing(expected)));
        }
        Ok(Ok(()))
    }

    /// The term of the entry at `index`; answers for the anchor too.
    pub fn term_at(&self, index: Index) -> Result<Option<Term>, Error> {
        if index == self.bounds.anchor.index() {
            return Ok(Some(self.bounds.anchor.term()));
        }
        if index == self.bounds.last.index() {
            return Ok(Some(self.bounds.last.term()));
        }
        Ok(self.get(index)?.map(|e| e.term))
    }

    /// Stages removal of entries `at..`. At or below the anchor, removes every entry.
    pub fn truncate(&mut self, at: Index) -> Result<(), Error> {
        if at > self.bounds.last.index() {
            return Ok(());
        }
        let at = at.0.max(self.bounds.anchor.index().0 + 1);
        let new_last = at - 1;
        let last_term = self
            .term_at(Index(new_last))?
            .ok_or_else(|| self.out_of_range("truncate", at))?;
        let cut = self.tail.split_off(&at);
        self.tail_bytes -= payload_bytes(&cut);
        self.deletes.push((at, u64::MAX));
        self.bounds.last = Cursor(last_term, Index(new_last));
        self.operations += 1;
        Ok(())
    }

    /// Stages removal of entries up to `up_to` (clamped to last); the last removed entry
    /// becomes the anchor. No-op at or below the current anchor.
    pub fn prune_prefix(&mut self, up_to: Index) -> Result<(), Error> {
        let up_to = up_to.min(self.bounds.last.index());
        if up_to <= self.bounds.anchor.index() {
            return Ok(());
        }
        let term = self
            .term_at(up_to)?
            .ok_or_else(|| self.out_of_range("prune_prefix", up_to.0))?;
        let up_to = up_to.0;
        let kept = self.tail.split_off(&(up_to + 1));
        self.tail = kept;
        self.tail_bytes = payload_bytes(&self.tail);
        self.deletes.push((0, up_to + 1));
        self.bounds.anchor = Cursor(term, Index(up_to));
        self.operations += 1;
        Ok(())
    }

    /// Stages replacing the log with an empty one anchored at `anchor`.
    pub fn reset_to(&mut self, anchor: Cursor) -> Result<(), Error> {
        if anchor.index().0 == u64::MAX {
            return Err(self.out_of_range("reset_to", anchor.index().0));
        }
        self.tail.clear();
        self.tail_bytes = 0;
        self.deletes.push((0, u64::MAX));
        self.bounds = LogBounds {
            anchor,
            last: anchor,
        };
        self.operations += 1;
        Ok(())
    }

    /// Stages a new hard state.
    pub fn set_hard_state(&mut self, state: HardState) {
        if state != self.hard_state {
            self.hard_state = state;
            self.operations += 1;
        }
    }

    /// The vote-withheld marker, as staged (see `MetaTag::VoteWithheld`).
    pub fn vote_withheld(&self) -> Option<Index> {
        self.vote_withheld
    }

    /// Stages setting or clearing the vote-withheld marker.
    pub fn set_vote_withheld(&mut self, until: Option<Index>) {
        if until != self.vote_withheld {
            self.vote_withheld = until;
            self.operations += 1;
        }
    }

    /// Writes everything staged as one `WriteBatch` with one fsync (shared with the other
    /// groups of the node, see `group_commit`); only after it returns is the reported
    /// position durable. With nothing staged and nothing in flight, returns at once.
    pub fn sync(&mut self) -> Result<SyncReport, Error> {
        if self.operations == 0 && self.in_flight.is_empty() {
            return Ok(self.report(0));
        }
        if let Some(report) = self.injected_fault()? {
            return Ok(report);
        }
        let (batch, staged) = self.take_batch();
        self.store.write_durable(batch)?;
        // Every batch begun before went through the same queue ahead of this one.
        self.in_flight.clear();
        Ok(self.mark_durable(staged))
    }

    /// Hands everything staged to the node's syncer as one batch and returns without
    /// waiting: `done` is called on the syncer thread (it must not block) with the
    /// batch's generation and result, and the caller then finishes with
    /// [`finish_sync`](Self::finish_sync). `Some(report)` when nothing needed writing.
    pub fn begin_sync(
        &mut self,
        done: Box<dyn FnOnce(u64, Result<(), Error>) + Send>,
    ) -> Result<Option<SyncReport>, Error> {
        if self.operations == 0 && self.in_flight.is_empty() {
            return Ok(Some(self.report(0)));
        }
        if let Some(report) = self.injected_fault()? {
            return Ok(Some(report));
        }
        let (batch, staged) = self.take_batch();
        let generation = staged.generation;
        self.in_flight.push_back(staged);
        self.store
            .submit_durable(batch, Box::new(move |result| done(generation, result)))?;
        Ok(None)
    }

    /// The batch of `generation` (and every one before it) is durable: reports the
    /// durable position.
    pub fn finish_sync(&mut self, generation: u64) -> SyncReport {
        let mut newest = None;
        while self
            .in_flight
            .front()
            .is_some_and(|staged| staged.generation <= generation)
        {
            newest = self.in_flight.pop_front();
        }
        match newest {
            Some(staged) => self.mark_durable(staged),
            // Covered already by a blocking sync that went after it.
            None => self.report(0),
        }
    }

    /// The injected faults of the nemesis suite: a failing sync, or the deliberate bug
    /// that reports everything durable and writes nothing.
    #[allow(clippy::unnecessary_wraps)]
    fn injected_fault(&mut self) -> Result<Option<SyncReport>, Error> {
        #[cfg(feature = "fault-injection")]
        {
            if let Some(source) = crate::faults::sync_fault(self.store.path()) {
                return Err(Error::Io {
                    path: self.store.path().to_path_buf(),
                    source,
                });
            }
            if crate::faults::pretend_sync(&mut self.lazy_written) {
                // The deliberate bug: everything staged reported durable, nothing written.
                return Ok(Some(SyncReport {
                    last: self.bounds.last,
                    hard_state: self.hard_state,
                    operations: self.operations,
                }));
            }
        }
        Ok(None)
    }

    /// Everything staged as one batch, and what it makes durable; the staging starts
    /// empty again.
    fn take_batch(&mut self) -> (WriteBatch, Staged) {
        let log_cf = self.store.cf(ColumnFamily::Log);
        let meta_cf = self.store.cf(ColumnFamily::Meta);
        let mut batch = WriteBatch::default();
        for &(from, to) in &self.deletes {
            batch.delete_range_cf(log_cf, log_key(&self.group, from), log_key(&self.group, to));
        }
        let mut header = Vec::new();
        for (&index, (term, payload)) in self.tail.range(self.dirty_from..) {
            let key = log_key(&self.group, index);
            header.clear();
            payload.write_header(&mut header);
            batch.put_cf(
                log_cf,
                key,
                record::encode_parts(&key, &[&term.0.to_le_bytes(), &header, payload.body()]),
            );
        }
        // Compared with what is durable, not with what is in flight: writing a record
        // again with the same value is harmless.
        if self.bounds != self.durable_bounds {
            let key = meta_key(&self.group, MetaTag::LogBounds);
            batch.put_cf(meta_cf, key, record::encode(&key, &self.bounds.encode()));
        }
        if self.hard_state != self.durable_hard_state {
            let key = meta_key(&self.group, MetaTag::HardState);
            batch.put_cf(
                meta_cf,
                key,
                record::encode(&key, &hard_state_record::encode(&self.hard_state)),
            );
        }
        if self.vote_withheld != self.durable_vote_withheld {
            let key = meta_key(&self.group, MetaTag::VoteWithheld);
            match self.vote_withheld {
                Some(until) => {
                    batch.put_cf(meta_cf, key, record::encode(&key, &until.0.to_le_bytes()))
                }
                None => batch.delete_cf(meta_cf, key),
            }
        }
        let clear_damage = std::mem::take(&mut self.clear_damage_marker);
        if clear_damage {
            batch.delete_cf(meta_cf, meta_key(&self.group, MetaTag::LogDamage));
        }
        let staged = Staged {
            generation: self.next_generation,
            bounds: self.bounds,
            hard_state: self.hard_state,
            vote_withheld: self.vote_withheld,
            clear_damage,
            operations: self.operations,
        };
        self.next_generation += 1;
        self.dirty_from = u64::MAX;
        self.deletes.clear();
        self.operations = 0;
        (batch, staged)
    }

    /// `staged`'s batch is durable.
    fn mark_durable(&mut self, staged: Staged) -> SyncReport {
        self.durable_bounds = staged.bounds;
        self.durable_hard_state = staged.hard_state;
        self.durable_vote_withheld = staged.vote_withheld;
        if staged.clear_damage {
            self.damage_marker = None;
        }
        self.trim_tail();
        self.report(staged.operations)
    }

    /// Drops the oldest in-memory entries beyond [`TAIL_ENTRIES`] and [`TAIL_BYTES`]
    /// (only synced ones: it runs right after a sync). They stay readable from RocksDB.
    fn trim_tail(&mut self) {
        // Only durable entries leave memory: a batch still in flight may not be in RocksDB
        // yet, and reads of its entries must find them here.
        let durable = self.durable_bounds.last.index().0;
        while self.tail.len() > TAIL_ENTRIES || self.tail_bytes > TAIL_BYTES {
            if self
                .tail
                .first_key_value()
                .is_some_and(|(&i, _)| i > durable)
            {
                break;
            }
            match self.tail.pop_first() {
                Some((_, (_, payload))) => self.tail_bytes -= payload.body().len(),
                None => break,
            }
        }
    }

    /// Entries held in memory (the newest ones), for tests and `inspect`.
    pub fn entries_in_memory(&self) -> usize {
        self.tail.len()
    }

    fn report(&self, operations: usize) -> SyncReport {
        SyncReport {
            last: self.durable_bounds.last,
            hard_state: self.durable_hard_state,
            operations,
        }
    }
}

fn payload_bytes(entries: &BTreeMap<u64, (Term, Payload)>) -> usize {
    entries
        .values()
        .map(|(_, payload)| payload.body().len())
        .sum()
}
