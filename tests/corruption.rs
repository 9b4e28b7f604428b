//! Damaged records are reported as corruption naming the column family and key, never a
//! panic and never a silent skip. A damaged log record is repaired at open by truncating
//! the log there (never by skipping it), capping the commit index and withholding the
//! vote until the log reaches its old last index again; the marker and the truncation are
//! durable together. A record a read found damaged while the node ran is repaired at the
//! next open even when it lies before where recovery starts reading.

use tessera::groups::raft::Payload;
use tessera::groups::{GroupLog, HardState, Index, Storage, StorageError, Term};
use tessera::{Digest, GroupId};
use tessera_storage::{ColumnFamily, Corruption, Error, Store};

fn group() -> GroupId {
    GroupId(Digest::of(b"corruption"))
}

fn open(store: &Store) -> Result<GroupLog, Error> {
    store.group_log(*group().as_bytes())
}

fn write_entries(dir: &std::path::Path, n: u64) {
    let store = Store::open(dir).unwrap();
    let mut log = open(&store).unwrap();
    for i in 1..=n {
        log.append(Payload::Command(vec![i as u8; 64]), Term(1))
            .unwrap();
    }
    log.sync().unwrap();
}

fn damage(dir: &std::path::Path, index: u64, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let store = Store::open(dir).unwrap();
    let key = Store::log_key(group().as_bytes(), index);
    let mut value = store.get_raw(ColumnFamily::Log, &key).unwrap().unwrap();
    f(&mut value);
    store
        .put_raw(ColumnFamily::Log, &key, &value, true)
        .unwrap();
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The corruption inside an error the core's `Storage` calls return.
fn corruption(err: StorageError) -> (&'static str, String, Corruption) {
    let found = match &err {
        StorageError::Backend { source, .. } => source.downcast_ref::<Error>(),
    };
    match found {
        Some(Error::Corruption { cf, key, kind }) => (cf, key.clone(), kind.clone()),
        _ => panic!("expected corruption, got {err}"),
    }
}

#[test]
fn flipped_byte_in_an_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_entries(dir.path(), 10);
    let key = damage(dir.path(), 5, |v| v[20] ^= 0x40);
    let store = Store::open(dir.path()).unwrap();
    let log = open(&store).unwrap();
    assert_eq!(
        Storage::get(&log, Index(4)).unwrap().map(|e| e.payload),
        Some(Payload::Command(vec![4; 64]))
    );
    let err = Storage::get(&log, Index(5)).unwrap_err();
    let message = err.to_string();
    let (cf, at, kind) = corruption(err);
    assert_eq!(cf, "log");
    assert_eq!(at, key);
    assert!(matches!(kind, Corruption::Crc { .. }), "{kind}");
    assert!(
        message.contains(&key),
        "the message names the key: {message}"
    );
    assert!(
        message.contains("(entry 5)"),
        "and the entry's index: {message}"
    );
    // A range read over the damage fails too rather than skipping the entry.
    assert!(log.get_range(&(Index(1)..=Index(10))).is_err());
}

#[test]
fn short_record_and_unknown_version_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_entries(dir.path(), 10);
    damage(dir.path(), 3, |v| v.truncate(3));
    damage(dir.path(), 4, |v| v[0] = 42);
    let store = Store::open(dir.path()).unwrap();
    let log = open(&store).unwrap();
    assert!(matches!(
        corruption(Storage::get(&log, Index(3)).unwrap_err()).2,
        Corruption::Short { len: 3, .. }
    ));
    assert!(matches!(
        corruption(Storage::get(&log, Index(4)).unwrap_err()).2,
        Corruption::Version {
            found: 42,
            expected: 1
        }
    ));
}

#[test]
fn damaged_tail_or_hard_state_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    write_entries(dir.path(), 10);
    damage(dir.path(), 10, |v| v[9] ^= 1);
    let store = Store::open(dir.path()).unwrap();
    let err = open(&store).err().expect("open must fail");
    assert!(
        matches!(
            err,
            Error::Corruption {
                kind: Corruption::Crc { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_entry_moved_under_another_key_fails_its_crc() {
    let dir = tempfile::tempdir().unwrap();
    write_entries(dir.path(), 10);
    let store = Store::open(dir.path()).unwrap();
    let from = Store::log_key(group().as_bytes(), 2);
    let to = Store::log_key(group().as_bytes(), 7);
    let value = store.get_raw(ColumnFamily::Log, &from).unwrap().unwrap();
    store.put_raw(ColumnFamily::Log, &to, &value, true).unwrap();
    let log = open(&store).unwrap();
    assert!(matches!(
        corruption(Storage::get(&log, Index(7)).unwrap_err()).2,
        Corruption::Crc { .. }
    ));
}

#[test]
fn inspect_refuses_what_is_not_a_data_dir() {
    let missing =
        tessera::inspect::inspect(std::path::Path::new("/nonexistent/tessera")).unwrap_err();
    assert!(
        matches!(missing, Error::NoSuchDirectory { .. }),
        "{missing}"
    );
    assert_eq!(
        missing.to_string(),
        "/nonexistent/tessera: no such directory"
    );
    let empty = tempfile::tempdir().unwrap();
    let file = empty.path().join("notes.txt");
    std::fs::write(&file, b"hello").unwrap();
    let err = tessera::inspect::inspect(&file).unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }), "{err}");
    assert!(
        err.to_string().ends_with("is a file, not a data directory"),
        "{err}"
    );
    let err = tessera::inspect::inspect(empty.path()).unwrap_err();
    assert!(
        err.to_string().contains("not a tessera data directory"),
        "{err}"
    );
}

#[test]
fn inspect_reports_groups_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_entries(dir.path(), 10);
    let json: serde_json::Value =
        serde_json::from_str(&tessera::inspect::inspect(dir.path()).unwrap()).unwrap();
    let g = &json["groups"][0];
    assert_eq!(g["group"], group().to_string());
    assert_eq!(g["log"]["last"]["index"], 10);
    assert_eq!(g["entries"], 10);
    let log_cf = json["column_families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "log")
        .unwrap();
    assert_eq!(log_cf["keys"], 10);
    assert!(log_cf["bytes"].as_u64().unwrap() > 640);
    // Written by hand, not by a node: no key file (said, not an error), and no commit
    // recorded, so the key-level summary applies none of the entries.
    assert_eq!(json["node"]["id"], serde_json::Value::Null);
    assert!(json["node"]["reason"]
        .as_str()
        .unwrap()
        .contains("no node.key"));
    assert_eq!(g["kv"]["computed_at"], 0, "{}", g["kv"]);
    assert_eq!(g["kv"]["entries_after_commit"], 10, "{}", g["kv"]);
    assert_eq!(g["kv"]["keys"], 0, "{}", g["kv"]);
}

// ---- repair ------------------------------------------------------------------------

fn open_core(store: &Store) -> GroupLog {
    store.open_core_log(*group().as_bytes()).expect("open")
}

/// `n` entries at term 1, all committed.
fn write_committed(dir: &std::path::Path, n: u64) {
    let store = Store::open(dir).unwrap();
    let mut log = open_core(&store);
    for i in 1..=n {
        log.append(Payload::Command(vec![i as u8; 64]), Term(1))
            .unwrap();
    }
    log.set_hard_state(HardState {
        term: Term(1),
        vote: None,
        commit: Index(n),
    });
    log.sync().unwrap();
}

/// Flips one bit of entry `index`'s stored record.
fn flip_bit(dir: &std::path::Path, index: u64) {
    let store = Store::open(dir).unwrap();
    let key = Store::log_key(group().as_bytes(), index);
    let mut value = store.get_raw(ColumnFamily::Log, &key).unwrap().unwrap();
    value[20] ^= 0x08;
    store
        .put_raw(ColumnFamily::Log, &key, &value, true)
        .unwrap();
}

#[test]
fn a_flipped_bit_is_repaired_by_truncation_with_the_vote_withheld() {
    let dir = tempfile::tempdir().unwrap();
    write_committed(dir.path(), 10);
    flip_bit(dir.path(), 6);
    let store = Store::open(dir.path()).unwrap();
    let mut log = open_core(&store);
    let repair = Storage::repair_from(&mut log, Index(3))
        .unwrap()
        .expect("damage found");
    assert_eq!(repair.index, Index(6));
    assert_eq!(repair.withheld_until, Index(10));
    assert!(repair.what.contains("crc mismatch"), "{}", repair.what);
    assert!(repair.what.contains("log"), "names the column family");
    assert_eq!(Storage::last(&log).index(), Index(5));
    assert_eq!(Storage::hard_state(&log).commit, Index(5), "commit capped");
    assert_eq!(Storage::vote_withheld(&log), Some(Index(10)));
    assert_eq!(Storage::durable(&log).index(), Index(5), "durable at once");
    drop(log);
    // After a restart: the same, and nothing left to repair.
    let mut log = open_core(&store);
    assert_eq!(Storage::last(&log).index(), Index(5));
    assert_eq!(Storage::vote_withheld(&log), Some(Index(10)));
    assert_eq!(Storage::repair_from(&mut log, Index(0)).unwrap(), None);
    assert_eq!(
        Storage::get(&log, Index(5)).unwrap().map(|e| e.payload),
        Some(Payload::Command(vec![5; 64]))
    );
    // The entries come back (from a leader), and the marker is cleared with them.
    for i in 6..=10u64 {
        Storage::append(&mut log, Payload::Command(vec![i as u8; 64]), Term(2)).unwrap();
    }
    Storage::set_vote_withheld(&mut log, None).unwrap();
    Storage::sync(&mut log).unwrap();
    drop(log);
    let log = open_core(&store);
    assert_eq!(Storage::vote_withheld(&log), None);
    assert_eq!(Storage::last(&log).index(), Index(10));
}

#[test]
fn a_damaged_tail_opens_for_repair_and_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    write_committed(dir.path(), 10);
    flip_bit(dir.path(), 10);
    let store = Store::open(dir.path()).unwrap();
    assert!(
        store.group_log(*group().as_bytes()).is_err(),
        "a tool's open still refuses it"
    );
    let mut log = open_core(&store);
    let repair = Storage::repair_from(&mut log, Index(9)).unwrap().unwrap();
    assert_eq!(repair.index, Index(10));
    assert_eq!(Storage::last(&log).index(), Index(9));
    drop(log);
    assert!(store.group_log(*group().as_bytes()).is_ok());
}

#[test]
fn damage_found_while_running_is_repaired_at_the_next_open_even_before_the_start() {
    let dir = tempfile::tempdir().unwrap();
    write_committed(dir.path(), 10);
    flip_bit(dir.path(), 2);
    let store = Store::open(dir.path()).unwrap();
    let log = open_core(&store);
    // A running read (replicating to a lagging follower, say) hits it: an error, never
    // the damaged bytes.
    assert!(Storage::get(&log, Index(2)).is_err());
    assert!(Storage::get_range(&log, &(Index(1)..=Index(4))).is_err());
    drop(log);
    // Recovery would read from 7 only (a snapshot at 7, say): the recorded damage at 2
    // is repaired anyway.
    let mut log = open_core(&store);
    let repair = Storage::repair_from(&mut log, Index(7)).unwrap().unwrap();
    assert_eq!(repair.index, Index(2));
    assert_eq!(Storage::last(&log).index(), Index(1));
    assert_eq!(Storage::vote_withheld(&log), Some(Index(10)));
    drop(log);
    let mut log = open_core(&store);
    assert_eq!(
        Storage::repair_from(&mut log, Index(7)).unwrap(),
        None,
        "the damage record was cleared with the repair"
    );
}

#[test]
fn an_intact_log_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_committed(dir.path(), 10);
    let store = Store::open(dir.path()).unwrap();
    let mut log = open_core(&store);
    assert_eq!(Storage::repair_from(&mut log, Index(0)).unwrap(), None);
    assert_eq!(Storage::last(&log).index(), Index(10));
    assert_eq!(Storage::hard_state(&log).commit, Index(10));
    assert_eq!(Storage::vote_withheld(&log), None);
}
