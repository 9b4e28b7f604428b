//! `SnapshotSync<M>`: the seed's `StateSync` over snapshots. Every member cuts the same
//! snapshot at the same marker entry, keeps it in its snapshot store, serves its chunks,
//! and lets the group prune the log behind it; a member whose gap is no longer in any log
//! fetches a snapshot's chunks from every peer holding it and installs it.
//!
//! Clones share their counters: a state machine keeps one
//! `SnapshotSync` and returns clones of it from `state_sync()`.

use super::config::SnapshotConfig;
use super::image::{self, snapshot_key, ImageError};
use super::machine::{SnapshotRequest, SnapshotStateMachine};
use super::message::SnapshotMessage;
use super::provider::SnapshotProvider;
use super::session::SnapshotSession;
use super::stats::SnapshotStats;
use super::store::SnapshotStore;
use super::RocksChunkStore;
use crate::groups::machine::{
    Command, RestoreError, Restored, StateSync, SyncContext, SyncSessionContext,
};
use crate::groups::raft::Entry;
use crate::groups::{Cursor, Index, LocalStorage, Term};
use crate::{GroupId, UniqueId};
use std::sync::Arc;
use tessera_snapshots::ChunkStore;

/// State shared by all clones: the counters only. What the provider and a session must
/// tell each other (an installed snapshot, a damaged one to repair) goes through the
/// worker ([`crate::groups::machine::StateSyncProvider::installed`],
/// [`crate::groups::machine::SyncSessionContext::repairing`]).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) stats: Arc<SnapshotStats>,
}

/// Snapshot-based state sync (see the module docs).
pub struct SnapshotSync<M: SnapshotStateMachine> {
    pub(crate) config: SnapshotConfig,
    pub(crate) marker: fn(SnapshotRequest) -> M::Command,
    is_marker: fn(&M::Command) -> bool,
    pub(crate) shared: Arc<Shared>,
    /// Where the snapshots live: memory until [`StateSync::attach`] gives the node's
    /// RocksDB store. Providers and sessions take a clone (clones share the storage).
    store: SnapshotStore,
}

impl<M: SnapshotStateMachine> Clone for SnapshotSync<M> {
    fn clone(&self) -> Self {
        SnapshotSync {
            config: self.config,
            marker: self.marker,
            is_marker: self.is_marker,
            shared: self.shared.clone(),
            store: self.store.clone(),
        }
    }
}

impl<M: SnapshotStateMachine> SnapshotSync<M> {
    /// A snapshot sync with `config`. `marker` wraps a [`SnapshotRequest`] into the state
    /// machine's command (the seed's `SnapshotSync::new(config, |r| Cmd::TakeSnapshot(r))`),
    /// and `is_marker` recognises that command; the machine's `apply` ignores it.
    pub fn new(
        config: SnapshotConfig,
        marker: fn(SnapshotRequest) -> M::Command,
        is_marker: fn(&M::Command) -> bool,
    ) -> Self {
        SnapshotSync {
            config,
            marker,
            is_marker,
            shared: Arc::new(Shared::default()),
            store: SnapshotStore::memory(),
        }
    }

    /// Where this sync's snapshots live (see [`StateSync::attach`]).
    pub(crate) fn store(&self) -> &SnapshotStore {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &SnapshotConfig {
        &self.config
    }

    /// This node's counters and transfer status.
    pub fn stats(&self) -> Arc<SnapshotStats> {
        self.shared.stats.clone()
    }
}

impl<M: SnapshotStateMachine> StateSync for SnapshotSync<M> {
    type Machine = M;
    type Message = SnapshotMessage;
    type Provider = SnapshotProvider<M>;
    type Session = SnapshotSession<M>;

    fn signature(&self) -> UniqueId {
        self.config.signature()
    }

    fn attach(&mut self, local: &LocalStorage) {
        self.store = match local.store() {
            Some(store) => SnapshotStore::Rocks(RocksChunkStore::new(store.clone())),
            None => SnapshotStore::memory(),
        };
    }

    fn create_provider(&self, cx: &dyn SyncContext<Self>) -> SnapshotProvider<M> {
        SnapshotProvider::new(self.clone(), cx)
    }

    fn create_session(
        &self,
        cx: &mut dyn SyncSessionContext<Self>,
        position: Cursor,
        leader_commit: Index,
        _entries: Vec<Entry>,
    ) -> SnapshotSession<M> {
        // The entries that revealed the gap are not kept: once the snapshot is installed
        // the leader sends everything after its anchor again.
        SnapshotSession::new(self.clone(), cx, position, leader_commit)
    }

    fn sessions_while_log_holds(&self) -> bool {
        false
    }

    fn is_barrier(&self, command: &Command<Self>) -> bool {
        (self.is_marker)(command)
    }

    fn restore(&self, machine: &mut M, group: GroupId) -> Result<Restored, RestoreError> {
        let snapshots = &self.store;
        let failed = |e: ImageError| RestoreError::new(group, e);
        let anchors = snapshots
            .anchors(group)
            .map_err(|e| failed(ImageError::from(e)))?;
        let Some(&newest) = anchors.last() else {
            return Ok(Restored::Nothing);
        };
        let started = std::time::Instant::now();
        // Read once: a damaged snapshot is reopened from this manifest below.
        let manifest = snapshots
            .load_manifest(snapshot_key(group, newest))
            .map_err(|e| failed(ImageError::from(e)))?
            .ok_or_else(|| {
                failed(ImageError::Missing {
                    group,
                    index: newest,
                })
            })?;
        match image::read::<M::Snapshot>(snapshots, manifest.clone()) {
            Ok(loaded) => {
                machine.install_snapshot(loaded.snapshot);
                SnapshotStats::add(&self.shared.stats.restores, 1);
                tracing::info!(
                    group = %crate::primitives::Short(&group),
                    anchor = %loaded.header.anchor,
                    raw_bytes = loaded.manifest.raw_bytes(),
                    ms = started.elapsed().as_millis() as u64,
                    "restored the newest local snapshot"
                );
                Ok(Restored::State {
                    at: loaded.header.anchor,
                    membership: loaded.header.membership,
                })
            }
            Err(failure) if failure.error.is_damage() => {
                let image::LoadError { header, error: err } = *failure;
                let anchor = Cursor(Term(manifest.anchor().term), Index(newest));
                let mut store = snapshots.clone();
                let damaged = match image::reopen_damaged(&mut store, &manifest) {
                    Ok(damaged) => damaged,
                    Err(reopen) => {
                        return Err(failed(ImageError::Unrepairable {
                            anchor: newest,
                            damage: Box::new(err),
                            reopen: Box::new(reopen),
                        }))
                    }
                };
                tracing::warn!(
                    group = %crate::primitives::Short(&group),
                    %anchor,
                    %err,
                    damaged = damaged.len(),
                    "the newest local snapshot is damaged; fetching the damaged chunks from peers"
                );
                SnapshotStats::add(&self.shared.stats.damaged_chunks, damaged.len() as u64);
                Ok(Restored::Damaged {
                    at: anchor,
                    membership: header.map(|h| h.membership),
                })
            }
            Err(failure) => Err(failed(failure.error)),
        }
    }
}
