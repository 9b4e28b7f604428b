//! The provider side of `SnapshotSync`, on every member:
//! - on the leader, proposes a snapshot marker every `every_entries` entries or
//!   `every_bytes` applied bytes;
//! - after a marker is applied, cuts the snapshot: a frozen copy of the state is taken on
//!   the worker (O(1)) and written to the snapshot store on a background thread, so apply
//!   and heartbeats never wait for it;
//! - answers which snapshots it holds and serves their chunks straight from the store;
//! - keeps `retain` snapshots and reports `safe_to_prune_prefix` = newest anchor minus
//!   the tail kept, both never touching what a catching-up member pinned
//!   (`retention.rs`: the rule that keeps a slow catch-up from livelocking);
//! - after a session installed a snapshot here, pins the log after this node's commit
//!   index on every peer until it is within half `keep_tail` of the leader's commit.

use super::image::{self, snapshot_key};
use super::machine::{SnapshotRequest, SnapshotStateMachine};
use super::message::{Held, SnapshotMessage};
use super::retention::{self, Retention, Shipped, PIN_REFRESH};
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
use std::time::{Duration, Instant};
use tessera_snapshots::{ChunkStore, Manifest};

/// Most chunks one `Fetch` is answered with (more are ignored: the session asks again).
const MAX_CHUNKS_PER_FETCH: u32 = 16;

/// How often the retention figures are published to the stats.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// This node installed a snapshot and streams the log after it: it pins its commit index
/// on every peer until it is close to the leader's commit.
struct Streaming {
    pinned_at: Instant,
}

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
    /// What this node keeps for members catching up (see `retention.rs`).
    retention: Retention,
    streaming: Option<Streaming>,
    published_at: Option<Instant>,
}

impl<M: SnapshotStateMachine> SnapshotProvider<M> {
    pub(crate) fn new(sync: SnapshotSync<M>, cx: &dyn SyncContext<SnapshotSync<M>>) -> Self {
        let group = cx.group_id();
        let store = sync.store().clone();
        let retention = Retention::new(sync.config.retention_limits());
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
            retention,
            streaming: None,
            published_at: None,
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

    /// Deletes all but the newest `retain` snapshots, sparing those a catching-up member
    /// fetches (pinned).
    fn apply_retention(&mut self) {
        let pinned = self.retention.pinned();
        let doomed =
            retention::to_delete(self.held.keys().copied(), self.sync.config.retain, &pinned);
        for index in doomed {
            self.held.remove(&index);
            if let Err(err) = self.store.delete_snapshot(snapshot_key(self.group, index)) {
                tracing::warn!(group = %Short(&self.group), index, %err, "could not delete an old snapshot");
            }
        }
    }

    fn newest(&self) -> Option<Index> {
        self.held.keys().next_back().map(|&i| Index(i))
    }

    /// Pins expired: snapshots they spared may go now.
    fn expire_pins(&mut self, now: Instant) {
        if self.retention.expire(now) {
            tracing::info!(group = %Short(&self.group), "a catching-up member went silent; its pin is dropped");
            self.apply_retention();
            self.publish_held();
        }
    }

    /// After an install here: pins this node's commit index on every peer while it is
    /// more than half `keep_tail` behind the leader's commit, then releases the pin.
    fn stream_pin(&mut self, cx: &mut dyn SyncProviderContext<SnapshotSync<M>>, now: Instant) {
        let Some(streaming) = &mut self.streaming else {
            return;
        };
        let committed = cx.committed().index();
        let lag = cx.leader_commit().0.saturating_sub(committed.0);
        let message = if lag <= self.sync.config.keep_tail / 2 {
            tracing::info!(group = %Short(&self.group), at = committed.0, "caught up with the leader; peers keep no log for this node any more");
            self.streaming = None;
            SnapshotMessage::Release
        } else if now.saturating_duration_since(streaming.pinned_at) >= PIN_REFRESH {
            streaming.pinned_at = now;
            SnapshotMessage::Keep { after: committed.0 }
        } else {
            return;
        };
        if let Err(err) = cx.broadcast_to_providers(message) {
            tracing::warn!(%err, "cannot encode a pin");
        }
    }

    /// Publishes the retention figures (at most every `PUBLISH_EVERY`).
    fn publish_retention(&mut self, now: Instant) {
        if self
            .published_at
            .is_some_and(|at| now.saturating_duration_since(at) < PUBLISH_EVERY)
        {
            return;
        }
        self.published_at = Some(now);
        self.stats()
            .set_retention(self.retention.figures(self.newest()));
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
                            tracing::warn!(group = %Short(&self.group), anchor, chunk, %err, "a stored chunk is damaged; not served (repaired from peers at the next restart)");
                            SnapshotStats::add(&self.stats().damaged_not_served, 1);
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
        cx: &mut dyn SyncProviderContext<SnapshotSync<M>>,
    ) -> Poll<()> {
        self.check_cut();
        let now = Instant::now();
        self.expire_pins(now);
        self.stream_pin(cx, now);
        self.publish_retention(now);
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
            SnapshotMessage::Keep { after } => {
                if !self.retention.pinned().contains(&after) {
                    tracing::debug!(peer = %Short(&sender), after, "a catching-up member pins the log after this index");
                }
                self.retention.pin(sender, Index(after), Instant::now());
                Ok(())
            }
            SnapshotMessage::Release => {
                if self.retention.release(&sender) {
                    self.apply_retention();
                    self.publish_held();
                }
                Ok(())
            }
            SnapshotMessage::Shipped {
                anchor,
                bytes,
                ship_ms,
                install_ms,
            } => {
                tracing::info!(peer = %Short(&sender), anchor, bytes, ship_ms, install_ms, "a member reports how long its snapshot took");
                self.retention.shipped(Shipped {
                    ship_ms,
                    install_ms,
                });
                Ok(())
            }
            other => Err(other),
        }
    }

    fn safe_to_prune_prefix(
        &self,
        cx: &mut dyn SyncProviderContext<SnapshotSync<M>>,
    ) -> Option<Index> {
        self.retention
            .prune_point(self.newest(), cx.committed().index())
    }

    fn committed(&mut self, position: Cursor, cx: &mut dyn SyncProviderContext<SnapshotSync<M>>) {
        self.retention
            .observe_commit(position.index(), Instant::now());
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

    fn installed(&mut self, position: Cursor, cx: &mut dyn SyncProviderContext<SnapshotSync<M>>) {
        // A session installed the snapshot at `position`: serve it, count the next marker
        // from it, size the tail by how long it took, and keep the log after it pinned
        // while this node streams it.
        let index = position.index().0;
        let stats = self.stats();
        let shipped = Shipped {
            ship_ms: SnapshotStats::get(&stats.last_ship_ms),
            install_ms: SnapshotStats::get(&stats.last_install_ms),
        };
        self.retention.shipped(shipped);
        self.streaming = Some(Streaming {
            pinned_at: Instant::now(),
        });
        if let Err(err) = cx.broadcast_to_providers(SnapshotMessage::Keep { after: index }) {
            tracing::warn!(%err, "cannot encode a pin");
        }
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
