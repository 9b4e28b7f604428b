//! The key-level summary of a group that holds the key-value store: the state at the
//! group's commit index, rebuilt as a node rebuilds it at restart — the newest complete
//! snapshot, then every committed command after it decoded and applied as the worker does
//! (`groups/worker/batches.rs` decodes, `KvState::apply` applies). Read-only: nothing is
//! written, so it runs beside a live node.
//!
//! The commit index is the one in the stored hard state, which a node writes with its
//! next sync: entries after it are counted apart (`entries_after_commit`), never applied,
//! since they may still be replaced.

use crate::groups::raft::Payload;
use crate::groups::snapshot::{image, RocksChunkStore, SnapshotStore};
use crate::groups::Index;
use crate::primitives::codec;
use crate::store::backup::LARGEST;
use crate::store::kv::{KvCommand, KvSnapshot, KvState, Retention};
use crate::GroupId;
use serde::Serialize;

/// The summary of one group, or why there is none.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum KvView {
    /// The group holds the key-value store.
    Summary(KvSummary),
    /// It does not, or its state could not be rebuilt.
    Unavailable {
        /// Why, in words.
        unavailable: String,
    },
}

/// The key-value store of one group at its commit index.
#[derive(Debug, Serialize)]
pub struct KvSummary {
    /// The index the state is computed at: the stored commit index (or the snapshot's
    /// anchor when the hard state has not caught up with an installed snapshot).
    pub computed_at: u64,
    /// The snapshot it started from (its anchor index), if any.
    pub from_snapshot: Option<u64>,
    /// Log entries read after the snapshot (commands, configurations and no-ops).
    pub log_entries_applied: u64,
    /// Entries in the log after the commit index: not applied here.
    pub entries_after_commit: u64,
    /// The store's revision: the index of the last command applied.
    pub revision: u64,
    /// Live keys.
    pub keys: u64,
    /// Bytes of every live key and value.
    pub data_bytes: u64,
    /// The largest values, largest first.
    pub largest_values: Vec<LargestValue>,
    /// Changes kept for watches and blocking reads, with the default retention (a node
    /// started with another `--watch-history-*` keeps another count).
    pub history_events: u64,
}

/// One of the largest values.
#[derive(Debug, Serialize)]
pub struct LargestValue {
    /// Its key.
    pub key: String,
    /// Bytes of its value.
    pub bytes: u64,
}

/// The key-level summary of `group` in `store`.
pub fn summarize(store: &tessera_storage::Store, group: GroupId) -> KvView {
    match rebuild(store, group) {
        Ok(summary) => KvView::Summary(summary),
        Err(unavailable) => KvView::Unavailable { unavailable },
    }
}

fn rebuild(store: &tessera_storage::Store, group: GroupId) -> Result<KvSummary, String> {
    let snapshots = SnapshotStore::Rocks(RocksChunkStore::new(store.clone()));
    let anchors = snapshots
        .anchors(group)
        .map_err(|e| format!("cannot list the snapshots: {e}"))?;
    let (mut state, from_snapshot) = match anchors.last() {
        Some(&anchor) => {
            let loaded =
                image::load::<KvSnapshot>(&snapshots, group, image::snapshot_key(group, anchor))
                    .map_err(|e| match e.error {
                        image::ImageError::Refused { .. } => format!(
                    "not a key-value group: its snapshot at {anchor} is not the store's ({})",
                    e.error
                ),
                        other => format!("cannot read the snapshot at {anchor}: {other}"),
                    })?;
            (loaded.snapshot.state, Some(anchor))
        }
        None => (KvState::default(), None),
    };
    let from = from_snapshot.unwrap_or(0);
    let log = store
        .group_log(*group.as_bytes())
        .map_err(|e| format!("cannot open the log: {e}"))?;
    let bounds = log.bounds();
    let (anchor, last) = (bounds.anchor.index().0, bounds.last.index().0);
    if anchor > from {
        return Err(match from_snapshot {
            Some(s) => format!("the log starts after entry {anchor}, past the newest snapshot ({s}): the entries between are gone"),
            None => format!("the log starts after entry {anchor} and no snapshot holds what came before"),
        });
    }
    let commit = log.hard_state().commit.0.max(from);
    // Never below the snapshot: a log reset to an installed snapshot may end there.
    let until = commit.min(last).max(from);
    let mut applied = 0u64;
    for index in from + 1..=until {
        let entry = log
            .get(Index(index))
            .map_err(|e| format!("cannot read entry {index}: {e}"))?
            .ok_or_else(|| format!("entry {index} is missing from the log"))?;
        applied += 1;
        if let Payload::Command(bytes) = entry.payload {
            let command = codec::decode::<KvCommand>(&bytes).map_err(|e| {
                format!("not a key-value group: entry {index} does not decode as a key-value command ({e})")
            })?;
            state.apply(command, index, false);
        }
    }
    state.history.prune(&Retention::default());
    Ok(KvSummary {
        computed_at: until,
        from_snapshot,
        log_entries_applied: applied,
        entries_after_commit: last.saturating_sub(until),
        revision: state.revision,
        keys: state.keys.len() as u64,
        data_bytes: state.data_bytes(),
        largest_values: state
            .largest_values(LARGEST)
            .into_iter()
            .map(|(key, bytes)| LargestValue { key, bytes })
            .collect(),
        history_events: state.history.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::{HardState, Term};
    use crate::Digest;

    /// A store whose one group holds `payloads` at term 1, `commit` recorded.
    fn store_with(dir: &std::path::Path, payloads: Vec<Vec<u8>>, commit: u64) -> GroupId {
        let group = GroupId(Digest::of(b"inspect-kv"));
        let store = tessera_storage::Store::open(dir).unwrap();
        let mut log = store.group_log(*group.as_bytes()).unwrap();
        for bytes in payloads {
            log.append(Payload::Command(bytes), Term(1)).unwrap();
        }
        log.set_hard_state(HardState {
            term: Term(1),
            vote: None,
            commit: Index(commit),
        });
        log.sync().unwrap();
        group
    }

    fn command(c: KvCommand) -> Vec<u8> {
        codec::encode(&c).unwrap()
    }

    #[test]
    fn the_state_is_the_committed_commands_applied_and_later_entries_are_counted_apart() {
        let dir = tempfile::tempdir().unwrap();
        let put = |k: &str, v: &[u8]| {
            command(KvCommand::Put {
                key: k.into(),
                value: v.to_vec(),
            })
        };
        let payloads = vec![
            put("a", b"1"),
            put("b", &[7; 300]),
            command(KvCommand::Delete { key: "a".into() }),
            put("c", b"not committed"),
        ];
        let group = store_with(dir.path(), payloads, 3);
        let store = tessera_storage::Store::open_read_only(dir.path()).unwrap();
        let KvView::Summary(kv) = summarize(&store, group) else {
            panic!("no summary");
        };
        assert_eq!(
            (kv.computed_at, kv.entries_after_commit, kv.from_snapshot),
            (3, 1, None)
        );
        assert_eq!((kv.keys, kv.revision, kv.data_bytes), (1, 3, 301));
        assert_eq!(kv.largest_values.len(), 1);
        assert_eq!(
            (
                kv.largest_values[0].key.as_str(),
                kv.largest_values[0].bytes
            ),
            ("b", 300)
        );
        assert_eq!(kv.history_events, 3, "two puts and a delete");
    }

    #[test]
    fn a_group_whose_commands_do_not_decode_is_said_not_to_be_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let group = store_with(dir.path(), vec![vec![0xff; 9]], 1);
        let store = tessera_storage::Store::open_read_only(dir.path()).unwrap();
        match summarize(&store, group) {
            KvView::Unavailable { unavailable } => assert!(
                unavailable.contains("not a key-value group: entry 1 does not decode"),
                "{unavailable}"
            ),
            KvView::Summary(kv) => panic!("decoded: {kv:?}"),
        }
    }
}
