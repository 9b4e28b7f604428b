//! One behavioural suite for every `Storage` implementation: the in-memory store and the
//! RocksDB store must be indistinguishable, including across a crash (what was not synced
//! is gone, what was synced is intact).
//!
//! Scenario tests run through `conformance!`, once per implementation; the property test
//! drives random operation sequences against a plain model.

use proptest::prelude::*;
use tessera::groups::raft::{Entry, Payload};
use tessera::groups::{Cursor, GroupLog, HardState, InMemoryLogStore, Index, Storage, Term};
use tessera::{Digest, GroupId, PeerId};

/// A store under test plus the means to crash and reopen it.
trait Harness {
    type S: Storage;
    fn new() -> Self;
    fn store(&mut self) -> &mut Self::S;
    /// kill -9 and restart: unsynced writes are lost, synced ones must be back.
    fn crash_and_reopen(&mut self);
}

struct Memory(InMemoryLogStore);

impl Harness for Memory {
    type S = InMemoryLogStore;
    fn new() -> Self {
        Memory(InMemoryLogStore::new())
    }
    fn store(&mut self) -> &mut Self::S {
        &mut self.0
    }
    fn crash_and_reopen(&mut self) {
        self.0.crash();
    }
}

struct Rocks {
    dir: tempfile::TempDir,
    log: Option<GroupLog>,
}

impl Harness for Rocks {
    type S = GroupLog;
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = Rocks { dir, log: None };
        h.crash_and_reopen();
        h
    }
    fn store(&mut self) -> &mut Self::S {
        self.log.as_mut().expect("open")
    }
    fn crash_and_reopen(&mut self) {
        // Dropping the store drops its staged writes (they never reached RocksDB) and
        // closes the database; reopening replays RocksDB's write-ahead log.
        self.log = None;
        let store = tessera_storage::Store::open(self.dir.path()).expect("open store");
        self.log = Some(store.group_log(*group().as_bytes()).expect("open log"));
    }
}

fn group() -> GroupId {
    GroupId(Digest::of(b"conformance"))
}

/// The suite's commands are numbers; the stores keep the core's payloads.
fn cmd(value: u64) -> Payload {
    Payload::Command(value.to_le_bytes().to_vec())
}

fn value(payload: &Payload) -> u64 {
    match payload {
        Payload::Command(bytes) => u64::from_le_bytes(bytes[..].try_into().expect("8 bytes")),
        other => panic!("not a command: {other:?}"),
    }
}

/// An entry as (command, term), like the seed's `get`.
fn get<S: Storage>(s: &S, index: Index) -> Option<(u64, Term)> {
    s.get(index)
        .unwrap()
        .map(|e: Entry| (value(&e.payload), e.term))
}

fn fill<S: Storage>(s: &mut S, n: u64, term: u64) {
    for _ in 0..n {
        let next = s.last().index().next().0;
        s.append(cmd(next * 10), Term(term)).unwrap();
    }
}

fn indices<S: Storage>(s: &S, from: u64, to: u64) -> Vec<u64> {
    s.get_range(&(Index(from)..=Index(to)))
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(
                value(&e.payload),
                e.index.0 * 10,
                "payload of entry {}",
                e.index
            );
            e.index.0
        })
        .collect()
}

fn append_and_read<H: Harness>() {
    let mut h = H::new();
    let s = h.store();
    assert_eq!(s.last(), Cursor::zero());
    assert_eq!(s.available(), Index(0)..=Index(0));
    assert_eq!(s.append(cmd(10), Term(1)).unwrap(), Index(1));
    assert_eq!(s.append(cmd(20), Term(1)).unwrap(), Index(2));
    assert_eq!(s.append(cmd(30), Term(2)).unwrap(), Index(3));
    assert_eq!(get(s, Index(0)), None);
    assert_eq!(get(s, Index(2)), Some((20, Term(1))));
    assert_eq!(get(s, Index(4)), None);
    assert_eq!(s.last(), Cursor(Term(2), Index(3)));
    assert_eq!(s.term_at(Index(0)).unwrap(), Some(Term(0)));
    assert_eq!(s.term_at(Index(3)).unwrap(), Some(Term(2)));
    assert_eq!(s.term_at(Index(4)).unwrap(), None);
    assert_eq!(indices(s, 0, 100), vec![1, 2, 3]);
    assert_eq!(indices(s, 2, 2), vec![2]);
    assert!(indices(s, 5, 9).is_empty());
}

fn truncate_semantics<H: Harness>() {
    let mut h = H::new();
    let s = h.store();
    fill(s, 6, 1);
    s.sync().unwrap();
    s.truncate(Index(9)).unwrap(); // beyond the end: no-op
    assert_eq!(s.last().index(), Index(6));
    s.truncate(Index(4)).unwrap();
    assert_eq!(s.last(), Cursor(Term(1), Index(3)));
    assert_eq!(get(s, Index(4)), None);
    // Overwrite with a new term: the classic conflicting-suffix replacement.
    assert_eq!(s.append(cmd(40), Term(3)).unwrap(), Index(4));
    assert_eq!(get(s, Index(4)), Some((40, Term(3))));
    assert_eq!(get(s, Index(5)), None);
    s.sync().unwrap();
    h.crash_and_reopen();
    let s = h.store();
    assert_eq!(s.last(), Cursor(Term(3), Index(4)));
    assert_eq!(
        get(s, Index(5)),
        None,
        "truncated entries stay gone after restart"
    );
    s.truncate(Index(0)).unwrap();
    assert_eq!(s.last(), Cursor::zero());
}

fn prune_keeps_indices<H: Harness>() {
    let mut h = H::new();
    let s = h.store();
    fill(s, 5, 1);
    fill(s, 1, 2);
    s.prune_prefix(Index(3)).unwrap();
    assert_eq!(s.available(), Index(3)..=Index(6));
    assert_eq!(get(s, Index(3)), None);
    assert_eq!(
        s.term_at(Index(3)).unwrap(),
        Some(Term(1)),
        "the anchor keeps its term"
    );
    assert_eq!(s.term_at(Index(2)).unwrap(), None);
    assert_eq!(indices(s, 1, 9), vec![4, 5, 6]);
    s.prune_prefix(Index(2)).unwrap(); // already below the anchor
    assert_eq!(s.available(), Index(3)..=Index(6));
    s.sync().unwrap();
    h.crash_and_reopen();
    let s = h.store();
    assert_eq!(s.available(), Index(3)..=Index(6));
    assert_eq!(s.last(), Cursor(Term(2), Index(6)));
    s.prune_prefix(Index(100)).unwrap(); // clamps to the last entry
    assert_eq!(s.available(), Index(6)..=Index(6));
    assert_eq!(s.last(), Cursor(Term(2), Index(6)));
    assert_eq!(s.append(cmd(70), Term(2)).unwrap(), Index(7));
    s.truncate(Index(2)).unwrap(); // below the anchor: clears entries, keeps the anchor
    assert_eq!(s.last(), Cursor(Term(2), Index(6)));
}

fn reset_to_anchor<H: Harness>() {
    let mut h = H::new();
    let s = h.store();
    fill(s, 4, 1);
    s.sync().unwrap();
    s.reset_to(Cursor(Term(5), Index(100))).unwrap();
    assert_eq!(s.last(), Cursor(Term(5), Index(100)));
    assert_eq!(s.available(), Index(100)..=Index(100));
    assert_eq!(get(s, Index(2)), None);
    assert_eq!(s.term_at(Index(100)).unwrap(), Some(Term(5)));
    assert_eq!(s.append(cmd(1010), Term(5)).unwrap(), Index(101));
    s.sync().unwrap();
    h.crash_and_reopen();
    let s = h.store();
    assert_eq!(s.available(), Index(100)..=Index(101));
    assert_eq!(indices(s, 0, 200), vec![101]);
}

fn crash_loses_exactly_the_unsynced<H: Harness>() {
    let mut h = H::new();
    let s = h.store();
    let hs = HardState {
        term: Term(3),
        vote: Some(PeerId([7; 32])),
        commit: Index(2),
    };
    fill(s, 3, 3);
    s.set_hard_state(hs).unwrap();
    let report = s.sync().unwrap();
    assert_eq!(report.last, Cursor(Term(3), Index(3)));
    assert_eq!(report.hard_state, hs);
    assert_eq!(s.sync().unwrap().operations, 0, "nothing staged: no write");
    fill(s, 2, 4);
    s.set_hard_state(HardState {
        term: Term(4),
        vote: None,
        commit: Index(3),
    })
    .unwrap();
    s.truncate(Index(2)).unwrap();
    assert_eq!(s.durable(), Cursor(Term(3), Index(3)));
    h.crash_and_reopen();
    let s = h.store();
    assert_eq!(s.last(), Cursor(Term(3), Index(3)));
    assert_eq!(s.hard_state(), hs);
    assert_eq!(indices(s, 1, 10), vec![1, 2, 3]);
}

macro_rules! conformance {
    ($module:ident, $harness:ty) => {
        mod $module {
            use super::*;
            #[test]
            fn append_and_read() {
                super::append_and_read::<$harness>();
            }
            #[test]
            fn truncate_semantics() {
                super::truncate_semantics::<$harness>();
            }
            #[test]
            fn prune_keeps_indices() {
                super::prune_keeps_indices::<$harness>();
            }
            #[test]
            fn reset_to_anchor() {
                super::reset_to_anchor::<$harness>();
            }
            #[test]
            fn crash_loses_exactly_the_unsynced() {
                super::crash_loses_exactly_the_unsynced::<$harness>();
            }
        }
    };
}

conformance!(memory, Memory);
conformance!(rocksdb, Rocks);

// ---- property test against a model ----

/// The simplest correct log: a vector of (command, term) after an anchor.
#[derive(Clone, Debug, Default)]
struct Model {
    anchor: Cursor,
    entries: Vec<(u64, Term)>,
    hard_state: HardState,
}

impl Model {
    fn last(&self) -> Cursor {
        match self.entries.last() {
            Some((_, t)) => Cursor(*t, Index(self.anchor.index().0 + self.entries.len() as u64)),
            None => self.anchor,
        }
    }
    fn term_at(&self, i: u64) -> Option<Term> {
        if i == self.anchor.index().0 {
            return Some(self.anchor.term());
        }
        let first = self.anchor.index().0 + 1;
        (i >= first)
            .then(|| self.entries.get((i - first) as usize).map(|e| e.1))
            .flatten()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append { command: u64, term_bump: u64 },
    Truncate(u64),
    Prune(u64),
    Reset { term_bump: u64, skip: u64 },
    HardState(u64),
    Sync,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u64>(), 0..2u64).prop_map(|(command, term_bump)| Op::Append { command, term_bump }),
        2 => (0..40u64).prop_map(Op::Truncate),
        2 => (0..40u64).prop_map(Op::Prune),
        1 => (0..2u64, 0..20u64).prop_map(|(term_bump, skip)| Op::Reset { term_bump, skip }),
        1 => (0..10u64).prop_map(Op::HardState),
        3 => Just(Op::Sync),
        1 => Just(Op::Crash),
    ]
}

fn run_model<H: Harness>(ops: Vec<Op>) {
    let mut h = H::new();
    let mut model = Model::default();
    let mut durable = Model::default();
    for op in ops {
        let s = h.store();
        match op {
            Op::Append { command, term_bump } => {
                let term = Term(model.last().term().0.max(1) + term_bump);
                let got = s.append(cmd(command), term).unwrap();
                model.entries.push((command, term));
                assert_eq!(got, model.last().index());
            }
            Op::Truncate(at) => {
                s.truncate(Index(at)).unwrap();
                let keep = at.saturating_sub(model.anchor.index().0 + 1) as usize;
                model.entries.truncate(keep);
            }
            Op::Prune(up_to) => {
                s.prune_prefix(Index(up_to)).unwrap();
                let up_to = up_to.min(model.last().index().0);
                if up_to > model.anchor.index().0 {
                    let term = model.term_at(up_to).unwrap();
                    let n = (up_to - model.anchor.index().0) as usize;
                    model.entries.drain(..n);
                    model.anchor = Cursor(term, Index(up_to));
                }
            }
            Op::Reset { term_bump, skip } => {
                let last = model.last();
                let anchor = Cursor(
                    Term(last.term().0 + term_bump),
                    Index(last.index().0 + skip),
                );
                s.reset_to(anchor).unwrap();
                model.anchor = anchor;
                model.entries.clear();
            }
            Op::HardState(t) => {
                let hs = HardState {
                    term: Term(t),
                    vote: (t % 2 == 0).then_some(PeerId([t as u8; 32])),
                    commit: Index(t),
                };
                s.set_hard_state(hs).unwrap();
                model.hard_state = hs;
            }
            Op::Sync => {
                let report = s.sync().unwrap();
                durable = model.clone();
                assert_eq!(report.last, model.last());
                assert_eq!(report.hard_state, model.hard_state);
            }
            Op::Crash => {
                h.crash_and_reopen();
                model = durable.clone();
            }
        }
        let s = h.store();
        assert_eq!(s.last(), model.last());
        assert_eq!(s.durable(), durable.last());
        assert_eq!(s.hard_state(), model.hard_state);
        assert_eq!(s.available(), model.anchor.index()..=model.last().index());
        let want: Vec<Entry> = model
            .entries
            .iter()
            .enumerate()
            .map(|(i, (c, t))| Entry {
                term: *t,
                index: Index(model.anchor.index().0 + 1 + i as u64),
                payload: cmd(*c),
            })
            .collect();
        assert_eq!(
            s.get_range(&(Index(0)..=Index(u64::MAX - 1))).unwrap(),
            want
        );
        let probe = model.last().index().0 + 1;
        for i in [
            0,
            model.anchor.index().0,
            model.anchor.index().0 + 1,
            probe / 2,
            probe,
        ] {
            assert_eq!(
                s.term_at(Index(i)).unwrap(),
                model.term_at(i),
                "term_at({i})"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn memory_store_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        run_model::<Memory>(ops);
    }
}

proptest! {
    // Each case opens a fresh RocksDB: fewer cases, same operation mix.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn rocksdb_store_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        run_model::<Rocks>(ops);
    }
}
