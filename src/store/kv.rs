//! `KvMachine`: a replicated map from string keys to byte values.
//!
//! Deterministic (a `BTreeMap`), so every member holds the same map at the same index.
//! Catch-up is log replay ([`LogReplaySync`]); the machine keeps the sync value so its
//! counters can be read ([`KvMachine::replay_stats`]).

use crate::groups::machine::{ApplyContext, StateMachine};
use crate::groups::replay::{LogReplaySync, ReplayStats};
use crate::primitives::Digest;
use crate::UniqueId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A change to the map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
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

/// The replicated map.
#[derive(Default)]
pub struct KvMachine {
    map: BTreeMap<String, Vec<u8>>,
    sync: LogReplaySync<KvMachine>,
}

impl KvMachine {
    /// Log-replay counters of this node (served and fetched entries).
    pub fn replay_stats(&self) -> Arc<ReplayStats> {
        self.sync.stats()
    }
}

impl StateMachine for KvMachine {
    type Command = KvCommand;
    type Query = KvQuery;
    type QueryResult = KvResult;
    type StateSync = LogReplaySync<KvMachine>;

    fn signature(&self) -> UniqueId {
        Digest::of(b"tessera/kv-machine/v1")
    }

    fn apply(&mut self, command: KvCommand, _: &dyn ApplyContext) {
        match command {
            KvCommand::Put { key, value } => {
                self.map.insert(key, value);
            }
            KvCommand::Delete { key } => {
                self.map.remove(&key);
            }
        }
    }

    fn query(&self, query: KvQuery) -> KvResult {
        match query {
            KvQuery::Get { key } => KvResult::Value(self.map.get(&key).cloned()),
            KvQuery::Len => KvResult::Len(self.map.len() as u64),
        }
    }

    fn state_sync(&self) -> LogReplaySync<KvMachine> {
        self.sync.clone()
    }
}
