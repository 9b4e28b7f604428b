//! `GroupLog` against a model: random appends (single and in bulk, so the in-memory tail
//! is trimmed), truncations, prunes, resets, syncs and reopens (a crash for whatever was
//! not synced). After every step the log reads exactly what the model holds, whether an
//! entry comes from memory or from RocksDB; after a reopen it holds what the last sync
//! made durable.

use proptest::prelude::*;
use tessera_raft::{Cursor, Index, Payload, Term};
use tessera_storage::{Store, TAIL_ENTRIES};

fn cur(term: u64, index: u64) -> Cursor {
    Cursor(Term(term), Index(index))
}

#[derive(Clone, Debug)]
enum Op {
    Append { term_step: u64, len: usize },
    AppendMany { count: usize },
    Truncate { back: u64 },
    Prune { fraction: u8 },
    Reset { ahead: u64 },
    Sync,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..2, 0usize..48).prop_map(|(term_step, len)| Op::Append { term_step, len }),
        1 => (1usize..(TAIL_ENTRIES / 2)).prop_map(|count| Op::AppendMany { count }),
        2 => (0u64..40).prop_map(|back| Op::Truncate { back }),
        1 => (0u8..=100).prop_map(|fraction| Op::Prune { fraction }),
        1 => (0u64..5).prop_map(|ahead| Op::Reset { ahead }),
        4 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

/// The log as it should read: the anchor and the entries after it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    anchor: Cursor,
    entries: Vec<(u64, Vec<u8>)>,
}

impl Model {
    fn last(&self) -> Cursor {
        match self.entries.last() {
            Some((term, _)) => cur(*term, self.anchor.index().0 + self.entries.len() as u64),
            None => self.anchor,
        }
    }

    fn append(&mut self, term: u64, payload: Vec<u8>) {
        self.entries.push((term, payload));
    }
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as u8).wrapping_add(i as u8))
        .collect()
}

fn check(log: &tessera_storage::GroupLog, model: &Model) {
    assert_eq!(log.bounds().anchor, model.anchor, "anchor");
    assert_eq!(log.last(), model.last(), "last");
    let got = log.range(Index(0), Index(u64::MAX - 1)).expect("range");
    assert_eq!(got.len(), model.entries.len(), "entry count");
    for (e, (i, (term, payload))) in got.iter().zip(model.entries.iter().enumerate()) {
        let index = model.anchor.index().0 + 1 + i as u64;
        assert_eq!(
            (e.index.0, e.term.0, &e.payload),
            (index, *term, &Payload::Command(payload.clone()))
        );
    }
    // Single reads too, at both ends and in the middle (memory and disk).
    let n = model.entries.len() as u64;
    for k in [1, n / 2 + 1, n] {
        if k >= 1 && k <= n {
            let index = model.anchor.index().0 + k;
            let e = log.get(Index(index)).expect("get").expect("present");
            assert_eq!(
                e.payload,
                Payload::Command(model.entries[(k - 1) as usize].1.clone())
            );
            assert_eq!(log.term_at(Index(index)).expect("term_at"), Some(e.term));
        }
    }
    assert_eq!(
        log.get(Index(model.last().index().0 + 1))
            .expect("get past the end"),
        None
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_log_reads_what_the_model_holds_from_memory_or_disk(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let group = [5u8; 32];
        let mut store = Store::open(dir.path()).unwrap();
        let mut log = store.group_log(group).unwrap();
        let mut model = Model::default();
        let mut durable = Model::default();
        let mut seed = 0u64;
        for op in ops {
            match op {
                Op::Append { term_step, len } => {
                    let term = model.last().term().0.max(1) + term_step;
                    seed += 1;
                    log.append(Payload::Command(payload(seed, len)), Term(term)).unwrap();
                    model.append(term, payload(seed, len));
                }
                Op::AppendMany { count } => {
                    let term = model.last().term().0.max(1);
                    for _ in 0..count {
                        seed += 1;
                        log.append(Payload::Command(payload(seed, 16)), Term(term)).unwrap();
                        model.append(term, payload(seed, 16));
                    }
                }
                Op::Truncate { back } => {
                    let at = model.last().index().0.saturating_sub(back).max(model.anchor.index().0 + 1);
                    log.truncate(Index(at)).unwrap();
                    let keep = (at - model.anchor.index().0 - 1) as usize;
                    model.entries.truncate(keep.min(model.entries.len()));
                }
                Op::Prune { fraction } => {
                    let n = model.entries.len() as u64;
                    let k = n * u64::from(fraction) / 100;
                    if k > 0 {
                        let up_to = model.anchor.index().0 + k;
                        log.prune_prefix(Index(up_to)).unwrap();
                        let term = model.entries[(k - 1) as usize].0;
                        model.entries.drain(..k as usize);
                        model.anchor = cur(term, up_to);
                    }
                }
                Op::Reset { ahead } => {
                    let last = model.last();
                    let anchor = cur(last.term().0 + 1, last.index().0 + ahead);
                    log.reset_to(anchor).unwrap();
                    model = Model { anchor, entries: Vec::new() };
                }
                Op::Sync => {
                    let report = log.sync().unwrap();
                    assert_eq!(report.last, model.last());
                    assert!(log.entries_in_memory() <= TAIL_ENTRIES);
                    durable = model.clone();
                }
                Op::Reopen => {
                    drop(log);
                    drop(store);
                    store = Store::open(dir.path()).unwrap();
                    log = store.group_log(group).unwrap();
                    model = durable.clone();
                }
            }
            check(&log, &model);
        }
    }
}
