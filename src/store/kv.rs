//! `KvMachine`: a replicated map from string keys to byte values.
//!
//! Deterministic (an ordered map), so every member holds the same map at the same index.
//! The map is an `im::OrdMap`, whose clone is O(1): a snapshot is a frozen clone, cut in
//! the background while apply goes on. Catch-up and restart go through [`SnapshotSync`];
//! the machine keeps the sync value so its counters can be read
//! ([`KvMachine::snapshot_stats`]).

use crate::groups::machine::{ApplyContext, StateMachine};
use crate::groups::snapshot::{
    Snapshot, SnapshotConfig, SnapshotRequest, SnapshotStateMachine, SnapshotStats, SnapshotSync,
};
use crate::primitives::{Bytes, Digest};
use crate::UniqueId;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// A change to the map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// A snapshot marker (proposed by the leader's sync provider; changes nothing).
    TakeSnapshot(SnapshotRequest),
}

/// A read of the map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvQuery {
    /// The value of `key`.
    Get {
        /// The key.
        key: String,
    },
    /// How many keys there are.
    Len,
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResult {
    /// The value, when present.
    Value(Option<Vec<u8>>),
    /// A count.
    Len(u64),
}

/// The map's entries, frozen: a snapshot of [`KvMachine`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvSnapshot(pub im::OrdMap<String, Vec<u8>>);

impl Snapshot for KvSnapshot {
    type Item = (String, Bytes);

    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn iter_range(&self, range: Range<u64>) -> Option<impl Iterator<Item = Self::Item>> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        Some(
            self.0
                .iter()
                .skip(range.start as usize)
                .take((range.end - range.start) as usize)
                .map(|(k, v)| (k.clone(), Bytes(v.clone()))),
        )
    }

    fn append(&mut self, items: impl IntoIterator<Item = Self::Item>) {
        for (k, v) in items {
            self.0.insert(k, v.0);
        }
    }
}

/// The map's transition: what one committed command does to it (a marker does nothing).
/// Public so that a machine with another state sync can keep the same map semantics.
pub fn apply_to(map: &mut im::OrdMap<String, Vec<u8>>, command: KvCommand) {
    match command {
        KvCommand::Put { key, value } => {
            map.insert(key, value);
        }
        KvCommand::Delete { key } => {
            map.remove(&key);
        }
        KvCommand::TakeSnapshot(_) => {}
    }
}

/// Answers a query from the map.
pub fn answer(map: &im::OrdMap<String, Vec<u8>>, query: KvQuery) -> KvResult {
    match query {
        KvQuery::Get { key } => KvResult::Value(map.get(&key).cloned()),
        KvQuery::Len => KvResult::Len(map.len() as u64),
    }
}

/// The replicated map.
pub struct KvMachine {
    map: im::OrdMap<String, Vec<u8>>,
    sync: SnapshotSync<KvMachine>,
}

impl Default for KvMachine {
    fn default() -> Self {
        KvMachine::new(SnapshotConfig::default())
    }
}

impl KvMachine {
    /// A machine whose snapshots follow `config`.
    pub fn new(config: SnapshotConfig) -> Self {
        KvMachine {
            map: im::OrdMap::new(),
            sync: SnapshotSync::new(config, KvCommand::TakeSnapshot, |c| {
                matches!(c, KvCommand::TakeSnapshot(_))
            }),
        }
    }

    /// Snapshot counters and the transfer in progress on this node.
    pub fn snapshot_stats(&self) -> Arc<SnapshotStats> {
        self.sync.stats()
    }
}

impl StateMachine for KvMachine {
    type Command = KvCommand;
    type Query = KvQuery;
    type QueryResult = KvResult;
    type StateSync = SnapshotSync<KvMachine>;

    fn signature(&self) -> UniqueId {
        Digest::of(b"tessera/kv-machine/v2")
    }

    fn apply(&mut self, command: KvCommand, _: &dyn ApplyContext) {
        apply_to(&mut self.map, command);
    }

    fn query(&self, query: KvQuery) -> KvResult {
        answer(&self.map, query)
    }

    fn state_sync(&self) -> SnapshotSync<KvMachine> {
        self.sync.clone()
    }
}

impl SnapshotStateMachine for KvMachine {
    type Snapshot = KvSnapshot;

    fn create_snapshot(&self) -> KvSnapshot {
        KvSnapshot(self.map.clone())
    }

    fn install_snapshot(&mut self, snapshot: KvSnapshot) {
        self.map = snapshot.0;
    }
}
