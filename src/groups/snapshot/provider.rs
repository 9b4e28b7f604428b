//! The provider side of `SnapshotSync`, on every member:
//! - on the leader, proposes a snapshot marker every `every_entries` entries or
//!   `every_bytes` applied bytes;
//! - after a marker is applied, cuts the snapshot: a frozen copy of the state is taken on
//!   the worker (O(1)) and written to the snapshot store on a background thread, so apply
//!   and heartbeats never wait for it;
//! - answers which snapshots it holds and serves their chunks straight from the store;
//! - keeps `retain` snapshots and reports `safe_to_prune_prefix` = newest anchor minus
//!   `keep_tail`.

use super::image::{self, snapshot_key};
use super::machine::{SnapshotRequest, SnapshotStateMachine};
use super::message::{Held, SnapshotMessage};
use super::stats::{HeldSnapshot, SnapshotStats};
use super::store::SnapshotStore;
use super::sync::SnapshotSync;
use crate::groups::machine::{StateSyncProvider, SyncContext, SyncProviderContext};
use crate::groups::{Cursor, Index, Term};
use crate::primitives::{Bytes, Short};
use crate::{GroupId, PeerId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::Instant;
use tessera_snapshots::{ChunkStore, Manifest};

/// Most chunks one `Fetch` is answered with (more are ignored: the session asks again).
const MAX_CHUNKS_PER_FETCH: u32 = 16;

/// A cut running on its background thread.
struct Cutting {
    anchor: Cursor,
    started: Instant,
    done: mpsc::Receiver<Result<Manifest, image::ImageError>>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Cutting {
    /// A group that stops cancels its cut and waits for the thread, so the store (and
    /// the database lock) is released when the group is gone.
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A complete snapshot this node holds.
struct Stored {
    anchor: Cursor,
    manifest: Manifest,
    encoded: Bytes,
}

/// See the module docs.
pub struct SnapshotProvider<M: SnapshotStateMachine> {
    sync: SnapshotSync<M>,
    group: GroupId,
    store: SnapshotStore,
    held: BTreeMap<u64, Stored>,
    cutting: Option<Cutting>,
    /// Index of the newest marker applied (or snapshot restored).
    last_marker: Index,
    /// `applied_bytes` when that marker was applied.
    bytes_at_marker: u64,
    /// Commit index when this leader last proposed a marker not yet applied.
    proposed_at: Option<Index>,
    seq: u64,
}

impl<M: SnapshotStateMachine> SnapshotProvider<M> {
    pub(crate) fn new(sync: SnapshotSync<M>, cx: &dyn SyncContext<SnapshotSync<M>>) -> Self {
        let group = cx.group_id();
        let store = sync.store().clone();
        let mut provider = SnapshotProvider {
            sync,
            group,
            store,
            held: BTreeMap::new(),
            cutting: None,
            last_marker: Index(0),
            bytes_at_marker: cx.applied_bytes(),
            proposed_at: None,
            seq: 0,
        };
        provider.load_held();
        provider.last_marker = provider
            .held
            .keys()
            .next_back()
            .map_or(Index(0), |&i| Index(i));
        provider
    }

    fn stats(&self) -> &SnapshotStats {
        &self.sync.shared.stats
    }

    /// Loads the manifests of the complete snapshots in the store.
    fn load_held(&mut self) {
        let anchors = match self.store.anchors(self.group) {
            Ok(a) => a,
            Err(err) => {
                tracing::warn!(group = %Short(&self.group), %err, "cannot list local snapshots");
                return;
            }
        };
        for index in anchors {
            match self.store.load_manifest(snapshot_key(self.group, index)) {
                Ok(Some(manifest)) => self.remember(manifest),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(group = %Short(&self.group), index, %err, "unreadable snapshot manifest; not served")
                }
            }
        }
        self.publish_held();
    }

    fn remember(&mut self, manifest: Manifest) {
        let anchor = Cursor(Term(manifest.anchor().term), Index(manifest.anchor().index));
        let encoded = Bytes(manifest.encode());
        self.held.insert(
            anchor.index().0,
            Stored {
                anchor,
                manifest,
                encoded,
            },
        );
    }

    fn publish_held(&self) {
        self.stats().set_held(
            self.held
                .values()
                .map(|s| HeldSnapshot {
                    anchor: s.anchor,
                    items: s.manifest.item_count(),
                    raw_bytes: s.manifest.raw_bytes(),
                    compressed_bytes: s.manifest.compressed_bytes(),
                    chunks: s.manifest.chunk_count(),
                })
                .collect(),
        );
    }

    /// Serves a new complete snapshot (cut here or installed by a session), keeping only
    /// the newest `retain`.
    fn hold(&mut self, manifest: Manifest) {
        self.remember(manifest);
        self.apply_retention();
        self.publish_held();
    }

    /// Deletes all but the newest `retain` snapshots.
    fn apply_retention(&mut self) {
        let retain = self.sync.config.retain.max(1);
        while self.held.len() > retain {
            let Some((index, _)) = self.held.pop_first() else {
                break;
            };
            if let Err(err) = self.store.delete_snapshot(snapshot_key(self.group, index)) {
                tracing::warn!(group = %Short(&self.group), index, %err, "could not delete an old snapshot");
            }
        }
    }

    /// Starts cutting the snapshot at `anchor` from the state the machine holds now.
    fn start_cut(&mut self, anchor: Cursor, cx: &dyn SyncContext<SnapshotSync<M>>) {
        if self.held.contains_key(&anchor.index().0) {
            return;
        }
        if let Some(cutting) = &self.cutting {
            tracing::warn!(
                group = %Short(&self.group),
                running = %cutting.anchor,
                skipped = %anchor,
                "a snapshot cut is still running; this marker is skipped here"
            );
            SnapshotStats::add(&self.stats().cuts_skipped, 1);
            return;
        }
        let snapshot = cx.state_machine().create_snapshot();
        let membership = cx.applied_membership().clone();
        let store = self.store.clone();
        let group = self.group;
        let config = self.sync.config.writer;
        let (tx, done) = mpsc::sync_channel(1);
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let spawned = std::thread::Builder::new()
            .name("tessera-snapshot-cut".into())
            .spawn(move || {
                let result = image::cut(store, group, anchor, membership, &snapshot, config, &stop);
                let _ = tx.send(result);
            });
        match spawned {
            Ok(thread) => {
                self.cutting = Some(Cutting {
                    anchor,
                    started: Instant::now(),
                    done,
                    cancel,
                    thread: Some(thread),
                })
            }
            Err(err) => {
                tracing::warn!(group = %Short(&self.group), %err, "cannot start a snapshot thread");
                SnapshotStats::add(&self.stats().cuts_skipped, 1);
            }
        }
    }

    /// Picks up a finished cut.
    fn check_cut(&mut self) {
        let Some(cutting) = &self.cutting else {
            return;
        };
        let result = match cutting.done.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => Err(image::ImageError::Header {
                anchor: cutting.anchor.index().0,
                reason: "the cutting thread died".into(),
            }),
        };
        let anchor = cutting.anchor;
        let ms = cutting.started.elapsed().as_millis() as u64;
        self.cutting = None;
        match result {
            Ok(manifest) => {
                tracing::info!(
                    group = %Short(&self.group),
                    %anchor,
                    raw_bytes = manifest.raw_bytes(),
                    compressed_bytes = manifest.compressed_bytes(),
                    ms,
                    "snapshot cut"
                );
                SnapshotStats::add(&self.stats().snapshots_cut, 1);
                self.stats().last_cut_ms.store(ms, Ordering::Relaxed);
                self.hold(manifest);
            }
            Err(err) => {
                tracing::warn!(group = %Short(&self.group), %anchor, %err, "snapshot cut failed");
                SnapshotStats::add(&self.stats().cuts_skipped, 1);
            }
        }
    }

    fn serve(
        &mut self,
        anchor: u64,
        chunks: std::ops::Range<u32>,
        to: PeerId,
        cx: &mut dyn SyncProviderContext<SnapshotSync<M>>,
    ) {
        let end = chunks
            .end
            .min(chunks.start.saturating_add(MAX_CHUNKS_PER_FETCH));
        let stored = self.held.get(&anchor);
        let mut buf = Vec::new();
        for chunk in chunks.start..end {
            let found = stored.is_some_and(|stored| {
                match self.store.read_chunk(stored.manifest.key(), chunk, &mut buf) {
                    Ok(true) => match stored.manifest.verify_chunk(chunk, &buf) {
                        Ok(_) => true,
                        Err(err) => {
                            tracing::warn!(group = %Short(&self.group), anchor, chunk, %err, "a stored chunk is damaged; not served");
                            false
                        }
                    },
                    Ok(false) => false,
                    Err(err) => {
                        tracing::warn!(group = %Short(&self.group), anchor, chunk, %err, "cannot read a chunk");
                        false
                    }
                }
            });
            let message = if found {
                SnapshotStats::add(&self.stats().chunks_served, 1);
                SnapshotStats::add(&self.stats().bytes_served, buf.len() as u64);
                SnapshotMessage::Chunk {
                    anchor,
                    chunk,
                    bytes: Bytes(std::mem::take(&mut buf)),
                }
            } else {
                SnapshotMessage::Missing { anchor, chunk }
            };
            if let Err(err) = cx.send_to(to, message) {
                tracing::warn!(%err, "cannot encode a chunk answer");
            }
        }
    }
}

impl<M: SnapshotStateMachine> StateSyncProvider for SnapshotProvider<M> {
    type Owner = SnapshotSync<M>;

    fn poll(
        &mut self,
        _: &mut Context<'_>,
        _: &mut dyn SyncProviderContext<SnapshotSync<M>>,
    ) -> Poll<()> {
        self.check_cut();
        Poll::Pending
    }

    fn receive(
        &mut self,
        message: SnapshotMessage,
        sender: PeerId,
        cx: &mut dyn SyncProviderContext<SnapshotSync<M>>,
    ) -> Result<(), SnapshotMessage> {
        match message {
            SnapshotMessage::Query => {
                let held = self
                    .held
                    .values()
                    .map(|s| Held {
                        anchor: s.anchor,
                        manifest: s.encoded.clone(),
                    })
                    .collect();
                if let Err(err) = cx.send_to(sender, SnapshotMessage::Holding(held)) {
                    tracing::warn!(%err, "cannot encode a snapshot list");
                }
                Ok(())
            }
            SnapshotMessage::Fetch { anchor, chunks } => {
                self.serve(anchor, chunks, sender, cx);
                Ok(())
            }
            other => Err(other),
        }
    }

    fn safe_to_prune_prefix(
        &self,
        cx: &mut dyn SyncProviderContext<SnapshotSync<M>>,
    ) -> Option<Index> {
        let newest = *self.held.keys().next_back()?;
        let prune = newest
            .saturating_sub(self.sync.config.keep_tail)
            .min(cx.committed().index().0);
        (prune > 0).then_some(Index(prune))
    }

    fn committed(&mut self, position: Cursor, cx: &mut dyn SyncProviderContext<SnapshotSync<M>>) {
        if !cx.is_leader() {
            self.proposed_at = None;
            return;
        }
        let config = &self.sync.config;
        let entries = position.index().0.saturating_sub(self.last_marker.0);
        let bytes = cx.applied_bytes().saturating_sub(self.bytes_at_marker);
        if entries < config.every_entries && bytes < config.every_bytes {
            return;
        }
        // One marker in flight at a time; propose again if it got lost (a leader change
        // before it committed) after another half period.
        if let Some(at) = self.proposed_at {
            if position.index().0 < at.0 + config.every_entries / 2 + 1 {
                return;
            }
        }
        self.seq += 1;
        let request = SnapshotRequest {
            requested_by: cx.local_id(),
            seq: self.seq,
        };
        if cx.feed_command((self.sync.marker)(request)).is_ok() {
            self.proposed_at = Some(position.index());
        }
    }

    fn barrier_applied(
        &mut self,
        position: Cursor,
        cx: &mut dyn SyncProviderContext<SnapshotSync<M>>,
    ) {
        self.last_marker = position.index();
        self.bytes_at_marker = cx.applied_bytes();
        self.proposed_at = None;
        self.start_cut(position, cx);
    }

    fn installed(&mut self, position: Cursor, _: &mut dyn SyncProviderContext<SnapshotSync<M>>) {
        // A session installed the snapshot at `position`: serve it, and count the next
        // marker from it.
        let index = position.index().0;
        match self.store.load_manifest(snapshot_key(self.group, index)) {
            Ok(Some(manifest)) => {
                self.last_marker = self.last_marker.max(position.index());
                self.hold(manifest);
            }
            Ok(None) => {
                tracing::warn!(group = %Short(&self.group), index, "installed snapshot is not in the store; not served");
            }
            Err(err) => {
                tracing::warn!(group = %Short(&self.group), index, %err, "unreadable manifest of the installed snapshot; not served");
            }
        }
    }
}
