//! `SnapshotSync<M>`: the seed's `StateSync` over snapshots. Every member cuts the same
//! snapshot at the same marker entry, keeps it in its snapshot store, serves its chunks,
//! and lets the group prune the log behind it; a member whose gap is no longer in any log
//! fetches a snapshot's chunks from every peer holding it and installs it.
//!
//! Clones share their counters and restart state: a state machine keeps one
//! `SnapshotSync` and returns clones of it from `state_sync()`.

use super::config::SnapshotConfig;
use super::image::{self, snapshot_key};
use super::lock;
use super::machine::{SnapshotRequest, SnapshotStateMachine};
use super::message::SnapshotMessage;
use super::provider::SnapshotProvider;
use super::session::SnapshotSession;
use super::stats::SnapshotStats;
use super::store::SnapshotStore;
use crate::groups::machine::{Command, StateSync, SyncContext, SyncSessionContext};
use crate::groups::raft::{Entry, Membership};
use crate::groups::{Cursor, Index, Term};
use crate::{GroupId, UniqueId};
use std::sync::{Arc, Mutex};
use tessera_snapshots::ChunkStore;

/// What [`StateSync::restore`] found in local storage at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restored {
    /// No local state: the log is replayed from its start.
    Nothing,
    /// The machine holds the snapshot at `anchor`; replay the log after it.
    Snapshot {
        /// The snapshot's anchor.
        anchor: Cursor,
        /// The configuration in force there.
        membership: Membership,
    },
    /// The newest snapshot (at `anchor`) is damaged; the machine holds nothing. Its intact
    /// chunks are kept as an unfinished transfer, and a session fetches the rest from peers
    /// before anything is applied.
    Damaged {
        /// The damaged snapshot's anchor.
        anchor: Cursor,
        /// The configuration at the anchor, if the header was readable.
        membership: Option<Membership>,
    },
    /// Local storage failed: the group cannot start.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// State shared by all clones.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) stats: Arc<SnapshotStats>,
    /// Set by `restore` when the newest local snapshot is damaged: the anchor to repair.
    pub(crate) repair: Mutex<Option<Cursor>>,
    /// Set by a session that installed a snapshot: the provider serves it from then on.
    pub(crate) installed: Mutex<Option<tessera_snapshots::Manifest>>,
}

/// Snapshot-based state sync (see the module docs).
pub struct SnapshotSync<M: SnapshotStateMachine> {
    pub(crate) config: SnapshotConfig,
    pub(crate) marker: fn(SnapshotRequest) -> M::Command,
    is_marker: fn(&M::Command) -> bool,
    pub(crate) shared: Arc<Shared>,
}

impl<M: SnapshotStateMachine> Clone for SnapshotSync<M> {
    fn clone(&self) -> Self {
        SnapshotSync {
            config: self.config,
            marker: self.marker,
            is_marker: self.is_marker,
            shared: self.shared.clone(),
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
        }
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

impl<M: SnapshotStateMachine> SnapshotSync<M> {
    pub(crate) fn take_repair(&self) -> Option<Cursor> {
        lock(&self.shared.repair).take()
    }

    pub(crate) fn set_installed(&self, manifest: tessera_snapshots::Manifest) {
        *lock(&self.shared.installed) = Some(manifest);
    }

    pub(crate) fn take_installed(&self) -> Option<tessera_snapshots::Manifest> {
        lock(&self.shared.installed).take()
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

    fn is_barrier(&self, command: &Command<Self>) -> bool {
        (self.is_marker)(command)
    }

    fn restore(&self, machine: &mut M, snapshots: &SnapshotStore, group: GroupId) -> Restored {
        let anchors = match snapshots.anchors(group) {
            Ok(a) => a,
            Err(e) => {
                return Restored::Failed {
                    reason: e.to_string(),
                }
            }
        };
        let Some(&newest) = anchors.last() else {
            return Restored::Nothing;
        };
        let started = std::time::Instant::now();
        // Read once: a damaged snapshot is reopened from this manifest below.
        let manifest = match snapshots.load_manifest(snapshot_key(group, newest)) {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Restored::Failed {
                    reason: image::ImageError::Missing {
                        group,
                        index: newest,
                    }
                    .to_string(),
                }
            }
            Err(e) => {
                return Restored::Failed {
                    reason: e.to_string(),
                }
            }
        };
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
                Restored::Snapshot {
                    anchor: loaded.header.anchor,
                    membership: loaded.header.membership,
                }
            }
            Err(failure) if failure.error.is_damage() => {
                let image::LoadError { header, error: err } = *failure;
                let anchor = Cursor(Term(manifest.anchor().term), Index(newest));
                let mut store = snapshots.clone();
                match image::reopen_damaged(&mut store, &manifest) {
                    Ok(damaged) => {
                        tracing::warn!(
                            group = %crate::primitives::Short(&group),
                            %anchor,
                            %err,
                            damaged = damaged.len(),
                            "the newest local snapshot is damaged; fetching the damaged chunks from peers"
                        );
                        SnapshotStats::add(&self.shared.stats.damaged_chunks, damaged.len() as u64);
                        *lock(&self.shared.repair) = Some(anchor);
                        Restored::Damaged {
                            anchor,
                            membership: header.map(|h| h.membership),
                        }
                    }
                    Err(e) => Restored::Failed {
                        reason: format!(
                            "snapshot {anchor} is damaged ({err}) and could not be reopened: {e}"
                        ),
                    },
                }
            }
            Err(failure) => Restored::Failed {
                reason: failure.error.to_string(),
            },
        }
    }
}
