//! Byte-level behaviour of `GroupLog` and `Store` that the typed suite cannot see: groups
//! sharing one instance, the format record, bounds checks at open, prune at scale.

use tessera_raft::{Cursor, HardState, Index, Payload, PeerId, Term};
use tessera_storage::{ColumnFamily, Corruption, Error, Store};

fn cur(term: u64, index: u64) -> Cursor {
    Cursor(Term(term), Index(index))
}

fn payload(i: u64) -> Payload {
    Payload::Command(i.to_le_bytes().repeat(4))
}

#[test]
fn groups_share_one_instance_without_touching_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut a = store.group_log([1; 32]).unwrap();
    let mut b = store.group_log([2; 32]).unwrap();
    for i in 1..=100 {
        a.append(payload(i), Term(1)).unwrap();
    }
    for i in 1..=10 {
        b.append(payload(i + 1000), Term(7)).unwrap();
    }
    a.sync().unwrap();
    b.sync().unwrap();
    a.prune_prefix(Index(50)).unwrap();
    a.truncate(Index(90)).unwrap();
    a.sync().unwrap();
    b.reset_to(cur(9, 500)).unwrap();
    b.sync().unwrap();
    drop((a, b));
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.groups().unwrap(), vec![[1; 32], [2; 32]]);
    let a = store.group_log([1; 32]).unwrap();
    let b = store.group_log([2; 32]).unwrap();
    assert_eq!(a.bounds().anchor, cur(1, 50));
    assert_eq!(a.last(), cur(1, 89));
    let got: Vec<u64> = a
        .range(Index(0), Index(1000))
        .unwrap()
        .iter()
        .map(|e| e.index.0)
        .collect();
    assert_eq!(got, (51..=89).collect::<Vec<_>>());
    assert_eq!(a.get(Index(60)).unwrap().unwrap().payload, payload(60));
    assert_eq!(b.last(), cur(9, 500));
    assert!(b.range(Index(0), Index(1000)).unwrap().is_empty());
}

#[test]
fn hard_state_survives_and_unsynced_does_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut log = store.group_log([3; 32]).unwrap();
        log.set_hard_state(HardState {
            term: Term(4),
            vote: Some(PeerId([9; 32])),
            commit: Index(0),
        });
        let report = log.sync().unwrap();
        assert_eq!(report.operations, 1);
        log.set_hard_state(HardState {
            term: Term(5),
            vote: None,
            commit: Index(0),
        });
        log.append(Payload::Command(vec![1]), Term(5)).unwrap();
        assert!(log.has_pending());
        // dropped without sync: a crash for everything staged
    }
    let store = Store::open(dir.path()).unwrap();
    let log = store.group_log([3; 32]).unwrap();
    assert_eq!(
        log.hard_state(),
        HardState {
            term: Term(4),
            vote: Some(PeerId([9; 32])),
            commit: Index(0),
        }
    );
    assert_eq!(log.last(), Cursor::default());
}

#[test]
fn bounds_that_disagree_with_the_entries_stop_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut log = store.group_log([4; 32]).unwrap();
    for i in 1..=5 {
        log.append(payload(i), Term(1)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    // An entry beyond the recorded end, as a bug or a foreign write would leave it.
    let key = Store::log_key(&[4; 32], 6);
    let record = tessera_storage::record::encode(&key, &[1, 0, 0, 0, 0, 0, 0, 0]);
    store
        .put_raw(ColumnFamily::Log, &key, &record, true)
        .unwrap();
    match store.group_log([4; 32]) {
        Err(Error::Corruption {
            cf: "log",
            kind:
                Corruption::Bounds {
                    recorded: 5,
                    found: 6,
                },
            ..
        }) => {}
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("open must fail"),
    }
}

#[test]
fn a_foreign_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let key = b"tessera/format";
        store
            .put_raw(
                ColumnFamily::Meta,
                key,
                &tessera_storage::record::encode(key, &99u32.to_le_bytes()),
                true,
            )
            .unwrap();
    }
    match Store::open(dir.path()) {
        Err(Error::Format {
            found: 99,
            expected: tessera_storage::DATA_FORMAT,
            ..
        }) => {}
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("open must fail"),
    }
}

#[test]
fn pruning_many_entries_is_one_range_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut log = store.group_log([5; 32]).unwrap();
    for _ in 0..20 {
        for _ in 0..10_000 {
            log.append(Payload::Command(vec![0u8; 8]), Term(2)).unwrap();
        }
        log.sync().unwrap();
    }
    log.prune_prefix(Index(199_990)).unwrap();
    let report = log.sync().unwrap();
    assert_eq!(
        report.operations, 1,
        "one staged operation, however many entries"
    );
    assert_eq!(log.range(Index(0), Index(u64::MAX - 1)).unwrap().len(), 10);
    assert_eq!(log.term_at(Index(199_990)).unwrap(), Some(Term(2)));
    assert_eq!(log.get(Index(199_990)).unwrap(), None);
}

/// Many groups syncing at once from several threads through the shared syncer all end
/// durable, each batch in exactly one sync, every one answered through its callback.
#[test]
fn batches_handed_to_the_shared_syncer_from_many_threads_are_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    const GROUPS: u8 = 8;
    const ROUNDS: u64 = 50;
    {
        let store = Store::open(dir.path()).unwrap();
        let before = store.sync_counts();
        let threads: Vec<_> = (0..GROUPS)
            .map(|g| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut log = store.group_log([g; 32]).unwrap();
                    for i in 1..=ROUNDS {
                        log.append(payload(i), Term(1)).unwrap();
                        let (tx, rx) = std::sync::mpsc::channel();
                        let done = Box::new(move |generation, result: Result<(), Error>| {
                            tx.send((generation, result.is_ok())).unwrap();
                        });
                        assert!(log.begin_sync(done).unwrap().is_none(), "handed over");
                        let (generation, ok) = rx.recv().expect("answered");
                        assert!(ok);
                        let report = log.finish_sync(generation);
                        assert_eq!(report.last, cur(1, i), "group {g}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let end = store.sync_counts();
        assert_eq!(
            end.batches - before.batches,
            u64::from(GROUPS) * ROUNDS,
            "every batch in exactly one sync"
        );
        assert!(end.syncs - before.syncs <= end.batches - before.batches);
    }
    let store = Store::open(dir.path()).unwrap();
    for g in 0..GROUPS {
        assert_eq!(store.group_log([g; 32]).unwrap().last(), cur(1, ROUNDS));
    }
}
