//! The session side of `SnapshotSync`, on a member whose gap is no longer in any log (or
//! whose newest local snapshot is damaged):
//! 1. **discover**: ask every bonded peer which snapshots it holds;
//! 2. **fetch**: pick one — an unfinished local transfer that a peer still serves (a
//!    restart resumes it), else the newest — and pull its chunks from every peer holding
//!    it through `tessera_snapshots::Transfer`, which verifies each chunk and stores it
//!    with its received mark as it arrives;
//! 3. **install**: on a background thread, read the snapshot back (every chunk and the
//!    digest checked, items decoded), store its manifest (the install's commit point: a
//!    restart from here finishes the install), then on the worker swap the state in and
//!    fast-forward the core to the anchor.
//!
//! From the moment it picks a snapshot until it installed it, the session pins it on every
//! bonded peer ([`SnapshotMessage::Keep`], refreshed every second): they keep that
//! snapshot and the log after it (`retention.rs`), so the transfer cannot be outrun by
//! newer snapshots and pruning. After the install it reports how long the transfer took
//! ([`SnapshotMessage::Shipped`]); a session that gives up releases its pin.
//!
//! Normal catch-up installs at most the leader commit index the catch-up came with: a
//! snapshot is committed state, but only positions a leader of this node's term announced
//! are safe to claim committed here.

use super::image::{self, Loaded};
use super::machine::{Snapshot, SnapshotStateMachine};
use super::message::{Held, SnapshotMessage};
use super::retention::PIN_REFRESH;
use super::stats::{SnapshotStats, TransferStatus};
use super::store::SnapshotStore;
use super::sync::SnapshotSync;
use crate::groups::machine::{StateSyncSession, SyncSessionContext};
use crate::groups::{Cursor, Index, Term};
use crate::primitives::Short;
use crate::{GroupId, PeerId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tessera_snapshots::{
    ChunkOutcome, ChunkSource, ChunkStore, Manifest, SnapshotError, SnapshotKey, StoreOp, Transfer,
};

/// A normal session with no peer offering a usable snapshot for this many discovery
/// timeouts ends (the leader streams the log or asks again).
const GIVE_UP_AFTER_DISCOVERIES: u32 = 5;

/// How often a running transfer asks newly bonded peers what they hold.
const PROBE_NEW_PEERS: Duration = Duration::from_millis(300);

/// The thread that reads and decodes the snapshot while its chunks arrive: it takes chunk
/// `n` once `ready[n]` is set (verified and stored), so the decode overlaps the fetch and
/// the install is done moments after the last chunk. Dropping it (the session ends or
/// picks another snapshot, the group stops) cancels and joins the thread.
struct Reading<S> {
    done: mpsc::Receiver<Result<Loaded<S>, String>>,
    ready: Arc<Vec<AtomicBool>>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S> Reading<S> {
    fn chunk_ready(&self, chunk: u32) {
        if let Some(flag) = self.ready.get(chunk as usize) {
            flag.store(true, Ordering::Release);
        }
    }
}

impl<S> Drop for Reading<S> {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long the reading thread sleeps while the chunk it needs is not there yet.
const WAIT_FOR_CHUNK: Duration = Duration::from_millis(2);

/// The reading thread's chunks: each one is lent from the store once the session has
/// stored and verified it (waiting for it until then), and the read fails once the session
/// ends.
struct ArrivingChunks<'a> {
    store: &'a SnapshotStore,
    key: SnapshotKey,
    ready: &'a [AtomicBool],
    stop: &'a AtomicBool,
}

impl ChunkSource for ArrivingChunks<'_> {
    fn with_chunk(
        &mut self,
        chunk: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<(), SnapshotError>,
    ) -> Result<bool, SnapshotError> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(SnapshotError::store(
                    StoreOp::ReadChunk,
                    self.key,
                    Some(chunk),
                    "the session ended",
                ));
            }
            if self
                .ready
                .get(chunk as usize)
                .is_some_and(|f| f.load(Ordering::Acquire))
            {
                return self.store.with_chunk(self.key, chunk, take);
            }
            std::thread::sleep(WAIT_FOR_CHUNK);
        }
    }
}

/// Starts the reading thread for `transfer`'s snapshot (`None` if no thread could start).
fn start_reading<S: Snapshot>(
    store: &SnapshotStore,
    transfer: &Transfer<PeerId>,
) -> Option<Reading<S>> {
    let manifest = transfer.manifest().clone();
    let key = manifest.key();
    let ready: Arc<Vec<AtomicBool>> = Arc::new(
        (0..manifest.chunk_count())
            .map(|_| AtomicBool::new(true))
            .collect(),
    );
    for chunk in transfer.unverified_chunks() {
        ready[chunk as usize].store(false, Ordering::Relaxed);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, done) = mpsc::sync_channel(1);
    let (flags, stop) = (ready.clone(), cancel.clone());
    let mut store = store.clone();
    let thread = std::thread::Builder::new()
        .name("tessera-snapshot-install".into())
        .spawn(move || {
            let source = ArrivingChunks {
                store: &store,
                key,
                ready: &flags,
                stop: &stop,
            };
            let result = match image::read_from::<S, _>(manifest.clone(), source) {
                // Storing the manifest makes the snapshot complete: the install's commit
                // point (a restart from here finishes the install).
                Ok(loaded) => store
                    .complete_transfer(key, &manifest.encode())
                    .map(|()| loaded)
                    .map_err(|e| e.to_string()),
                Err(failure) => Err(failure.error.to_string()),
            };
            let _ = tx.send(result);
        });
    match thread {
        Ok(thread) => Some(Reading {
            done,
            ready,
            cancel,
            thread: Some(thread),
        }),
        Err(err) => {
            tracing::warn!(%err, "cannot start a snapshot reading thread");
            None
        }
    }
}

enum Phase<M: SnapshotStateMachine> {
    Discover {
        asked: BTreeSet<PeerId>,
        offers: BTreeMap<PeerId, Vec<Held>>,
        since: Instant,
        rounds: u32,
    },
    Fetch {
        transfer: Box<Transfer<PeerId>>,
        anchor: Cursor,
        fingerprint: tessera_snapshots::Digest,
        /// Peers asked what they hold (peers bonded later are asked too, and join the
        /// transfer if they hold the same snapshot).
        asked: BTreeSet<PeerId>,
        probed_at: Instant,
        reading: Reading<M::Snapshot>,
    },
    Install {
        anchor: Cursor,
        reading: Reading<M::Snapshot>,
    },
    Done(Cursor),
}

/// See the module docs.
pub struct SnapshotSession<M: SnapshotStateMachine> {
    sync: SnapshotSync<M>,
    group: GroupId,
    store: SnapshotStore,
    /// Only snapshots anchored above this are useful.
    floor: Index,
    /// Install at most this (normal catch-up); `None` when repairing.
    ceiling: Option<Index>,
    repair: Option<Cursor>,
    started: Instant,
    phase: Phase<M>,
    /// Providers that answered "missing" per chunk of the current transfer.
    missing: BTreeMap<u32, BTreeSet<PeerId>>,
    /// The pin sent last: (anchor, when).
    pinned: Option<(u64, Instant)>,
    /// The snapshot chosen and when (its ship time is measured from there).
    chosen: Option<(u64, Instant)>,
    /// When its last chunk was stored (its install time is measured from there).
    fetched_at: Option<Instant>,
}

impl<M: SnapshotStateMachine> SnapshotSession<M> {
    pub(crate) fn new(
        sync: SnapshotSync<M>,
        cx: &mut dyn SyncSessionContext<SnapshotSync<M>>,
        _position: Cursor,
        leader_commit: Index,
    ) -> Self {
        let repair = cx.repairing();
        let (floor, ceiling) = match repair {
            Some(anchor) => (anchor.index().prev(), None),
            None => (cx.committed().index(), Some(leader_commit)),
        };
        SnapshotStats::add(&sync.shared.stats.sessions, 1);
        let mut session = SnapshotSession {
            group: cx.group_id(),
            store: sync.store().clone(),
            sync,
            floor,
            ceiling,
            repair,
            started: Instant::now(),
            phase: Phase::Done(Cursor::zero()),
            missing: BTreeMap::new(),
            pinned: None,
            chosen: None,
            fetched_at: None,
        };
        if session.ceiling.is_some_and(|c| c <= session.floor) {
            // A catch-up request from before this node installed or replayed past the
            // leader's commit it carries (a delayed flagged append): nothing to fetch.
            session.phase = Phase::Done(cx.committed());
        } else {
            session.discover(cx, 0);
        }
        session
    }

    fn stats(&self) -> &SnapshotStats {
        &self.sync.shared.stats
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn discover(&mut self, cx: &mut dyn SyncSessionContext<SnapshotSync<M>>, rounds: u32) {
        let asked = cx
            .broadcast(SnapshotMessage::Query)
            .unwrap_or_default()
            .into_iter()
            .collect();
        self.phase = Phase::Discover {
            asked,
            offers: BTreeMap::new(),
            since: Instant::now(),
            rounds,
        };
        self.stats().set_transfer(Some(TransferStatus {
            anchor: Cursor::zero(),
            phase: "discovering",
            chunks_total: 0,
            chunks_verified: 0,
            bytes_total: 0,
            bytes_verified: 0,
            raw_bytes: 0,
            rate_bytes_per_sec: 0,
            eta_ms: None,
            providers: 0,
        }));
    }

    /// Asks every bonded peer to keep the snapshot at `anchor` and the log after it, at
    /// once for a new anchor, else every `PIN_REFRESH`.
    fn keep(&mut self, cx: &mut dyn SyncSessionContext<SnapshotSync<M>>, anchor: u64) {
        let due = self
            .pinned
            .is_none_or(|(at, sent)| at != anchor || sent.elapsed() >= PIN_REFRESH);
        if due {
            self.pinned = Some((anchor, Instant::now()));
            if let Err(err) = cx.broadcast(SnapshotMessage::Keep { after: anchor }) {
                tracing::warn!(%err, "cannot encode a pin");
            }
        }
    }

    /// Ends the session without installing anything.
    fn give_up(&mut self, cx: &mut dyn SyncSessionContext<SnapshotSync<M>>, why: &str) {
        tracing::info!(group = %Short(&self.group), why, "snapshot session ends without installing");
        if self.pinned.take().is_some() {
            if let Err(err) = cx.broadcast(SnapshotMessage::Release) {
                tracing::warn!(%err, "cannot encode a release");
            }
        }
        self.stats().set_transfer(None);
        self.phase = Phase::Done(cx.committed());
    }

    fn discovery_done(&self) -> bool {
        match &self.phase {
            Phase::Discover {
                asked,
                offers,
                since,
                ..
            } => {
                let timeout = self.sync.config.discovery_timeout;
                (!asked.is_empty() && asked.iter().all(|p| offers.contains_key(p)))
                    || since.elapsed() >= timeout
            }
            _ => false,
        }
    }

    /// Picks the snapshot to fetch among the offers and starts its transfer.
    fn choose(&mut self, cx: &mut dyn SyncSessionContext<SnapshotSync<M>>) {
        let Phase::Discover {
            offers,
            rounds,
            asked,
            ..
        } = &self.phase
        else {
            return;
        };
        let rounds = *rounds;
        let asked = asked.clone();
        // (anchor index, fingerprint) → (manifest, peers)
        let mut candidates: BTreeMap<(u64, [u8; 32]), (Manifest, Vec<PeerId>)> = BTreeMap::new();
        for (peer, held) in offers {
            for h in held {
                let Ok(manifest) = Manifest::decode(&h.manifest.0) else {
                    tracing::warn!(peer = %Short(peer), "undecodable manifest offered; ignored");
                    continue;
                };
                let index = manifest.anchor().index;
                let usable = manifest.group().0 == *self.group.as_bytes()
                    && index == h.anchor.index().0
                    && manifest.anchor().term == h.anchor.term().0
                    && index > self.floor.0
                    && self.ceiling.is_none_or(|c| index <= c.0);
                if usable {
                    candidates
                        .entry((index, manifest.fingerprint().0))
                        .or_insert_with(|| (manifest, Vec::new()))
                        .1
                        .push(*peer);
                }
            }
        }
        let unfinished: BTreeSet<u64> = self
            .store
            .transfers(self.group)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let chosen = candidates
            .iter()
            .filter(|((index, _), _)| unfinished.contains(index))
            .max_by_key(|((index, _), (_, peers))| (*index, peers.len()))
            .or_else(|| {
                candidates
                    .iter()
                    .max_by_key(|((index, _), (_, peers))| (*index, peers.len()))
            })
            .map(|(_, v)| v.clone());
        let Some((manifest, peers)) = chosen else {
            if self.repair.is_some() || rounds + 1 < GIVE_UP_AFTER_DISCOVERIES {
                // Ask again after a pause (`poll` re-asks once nobody is left to answer).
                self.phase = Phase::Discover {
                    asked: BTreeSet::new(),
                    offers: BTreeMap::new(),
                    since: Instant::now(),
                    rounds: rounds + 1,
                };
            } else {
                self.give_up(cx, "no peer offers a snapshot ahead of this node");
            }
            return;
        };
        // Transfers of other snapshots will never finish: drop them.
        for index in unfinished {
            if index != manifest.anchor().index {
                let _ = self
                    .store
                    .delete_snapshot(image::snapshot_key(self.group, index));
            }
        }
        let now = self.now_ms();
        let key = manifest.key();
        let started = match Transfer::start(
            &mut self.store,
            manifest.clone(),
            self.sync.config.transfer,
            now,
        ) {
            Err(SnapshotError::ManifestConflict { .. }) => {
                let _ = self.store.delete_snapshot(key);
                Transfer::start(
                    &mut self.store,
                    manifest.clone(),
                    self.sync.config.transfer,
                    now,
                )
            }
            other => other,
        };
        let mut transfer = match started {
            Ok(t) => t,
            Err(err) => {
                tracing::warn!(group = %Short(&self.group), %err, "cannot start a snapshot transfer");
                self.give_up(cx, "transfer could not start");
                return;
            }
        };
        let leader = cx.leader();
        for peer in &peers {
            transfer.add_peer(*peer, *peer == leader);
        }
        let anchor = Cursor(Term(manifest.anchor().term), Index(manifest.anchor().index));
        let missing = transfer.unverified_chunks().count();
        let Some(reading) = start_reading::<M::Snapshot>(&self.store, &transfer) else {
            self.give_up(cx, "no reading thread");
            return;
        };
        tracing::info!(
            group = %Short(&self.group),
            %anchor,
            chunks = manifest.chunk_count(),
            missing,
            raw_bytes = manifest.raw_bytes(),
            providers = peers.len(),
            "fetching a snapshot"
        );
        let index = anchor.index().0;
        if self.chosen.is_none_or(|(at, _)| at != index) {
            self.chosen = Some((index, Instant::now()));
        }
        self.keep(cx, index);
        self.phase = Phase::Fetch {
            fingerprint: manifest.fingerprint(),
            transfer: Box::new(transfer),
            anchor,
            asked,
            probed_at: Instant::now(),
            reading,
        };
        self.pump(cx);
    }

    /// Sends the requests the planner wants now; starts the install once complete.
    fn pump(&mut self, cx: &mut dyn SyncSessionContext<SnapshotSync<M>>) {
        let now = self.now_ms();
        if let Phase::Fetch { anchor, .. } = &self.phase {
            let index = anchor.index().0;
            self.keep(cx, index);
        }
        let Phase::Fetch {
            transfer,
            anchor,
            asked,
            probed_at,
            ..
        } = &mut self.phase
        else {
            return;
        };
        let anchor = *anchor;
        if probed_at.elapsed() >= PROBE_NEW_PEERS {
            *probed_at = Instant::now();
            if transfer.peers().next().is_none() {
                // The planner dropped every provider (three failures in a row each, e.g.
                // replies lost while links were down): ask every bonded peer again, or the
                // transfer would wait for ever. A peer still holding the snapshot answers
                // and rejoins with a clean record; the chunks stored so far are kept.
                asked.clear();
            }
            for peer in cx.peers() {
                if asked.insert(peer) {
                    let _ = cx.send_to(peer, SnapshotMessage::Query);
                }
            }
        }
        for request in transfer.poll(now) {
            let message = SnapshotMessage::Fetch {
                anchor: anchor.index().0,
                chunks: request.chunks.clone(),
            };
            if let Err(err) = cx.send_to(request.peer, message) {
                tracing::warn!(%err, "cannot encode a fetch");
            }
        }
        let progress = transfer.progress(now);
        let raw_bytes = transfer.manifest().raw_bytes();
        let complete = transfer.is_complete();
        self.stats().set_transfer(Some(TransferStatus {
            anchor,
            phase: if complete { "installing" } else { "fetching" },
            chunks_total: progress.chunks_total,
            chunks_verified: progress.chunks_verified,
            bytes_total: progress.bytes_total,
            bytes_verified: progress.bytes_verified,
            raw_bytes,
            rate_bytes_per_sec: progress.rate_bytes_per_sec,
            eta_ms: progress.eta_ms,
            providers: progress.peers,
        }));
        if complete {
            self.start_install();
        }
    }

    /// Every chunk is stored: wait for the reading thread to finish the decode.
    fn start_install(&mut self) {
        self.fetched_at = Some(Instant::now());
        let phase = std::mem::replace(&mut self.phase, Phase::Done(Cursor::zero()));
        match phase {
            Phase::Fetch {
                anchor, reading, ..
            } => self.phase = Phase::Install { anchor, reading },
            other => self.phase = other,
        }
    }

    fn check_install(&mut self, cx: &mut dyn SyncSessionContext<SnapshotSync<M>>) {
        let Phase::Install { anchor, .. } = &self.phase else {
            return;
        };
        let anchor = *anchor;
        self.keep(cx, anchor.index().0);
        let Phase::Install { reading, .. } = &self.phase else {
            return;
        };
        let result = match reading.done.try_recv() {
            Ok(finished) => finished,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                self.give_up(cx, "the install thread died");
                return;
            }
        };
        match result {
            Ok(loaded) => {
                let took = self.started.elapsed();
                self.report_shipped(cx, &loaded.manifest);
                cx.state_machine_mut().install_snapshot(loaded.snapshot);
                cx.set_synced_membership(loaded.header.membership);
                cx.set_committed(loaded.header.anchor);
                SnapshotStats::add(&self.stats().installs, 1);
                self.stats().set_transfer(None);
                tracing::info!(
                    group = %Short(&self.group),
                    %anchor,
                    raw_bytes = loaded.manifest.raw_bytes(),
                    ms = took.as_millis() as u64,
                    "snapshot installed"
                );
                self.phase = Phase::Done(loaded.header.anchor);
            }
            Err(err) => {
                tracing::warn!(group = %Short(&self.group), %anchor, %err, "snapshot does not check out; dropping it");
                let _ = self
                    .store
                    .delete_snapshot(image::snapshot_key(self.group, anchor.index().0));
                self.discover(cx, 0);
            }
        }
    }
}

impl<M: SnapshotStateMachine> SnapshotSession<M> {
    /// Records how long the transfer and the install took and tells every bonded peer,
    /// which sizes the log tail they keep by it (`retention.rs`). The pin stays: the
    /// provider here takes over (it pins this node's commit while it streams the log).
    fn report_shipped(
        &mut self,
        cx: &mut dyn SyncSessionContext<SnapshotSync<M>>,
        manifest: &Manifest,
    ) {
        let (Some((_, chosen)), Some(fetched)) = (self.chosen, self.fetched_at) else {
            return;
        };
        let ship_ms = fetched.saturating_duration_since(chosen).as_millis() as u64;
        let install_ms = fetched.elapsed().as_millis() as u64;
        let stats = self.stats();
        stats.last_ship_ms.store(ship_ms, Ordering::Relaxed);
        stats.last_install_ms.store(install_ms, Ordering::Relaxed);
        tracing::info!(
            group = %Short(&self.group),
            anchor = manifest.anchor().index,
            compressed_bytes = manifest.compressed_bytes(),
            ship_ms,
            install_ms,
            "snapshot shipped"
        );
        let message = SnapshotMessage::Shipped {
            anchor: manifest.anchor().index,
            bytes: manifest.compressed_bytes(),
            ship_ms,
            install_ms,
        };
        if let Err(err) = cx.broadcast(message) {
            tracing::warn!(%err, "cannot encode a transfer report");
        }
    }
}

impl<M: SnapshotStateMachine> StateSyncSession for SnapshotSession<M> {
    type Owner = SnapshotSync<M>;

    fn poll(
        &mut self,
        _: &mut Context<'_>,
        cx: &mut dyn SyncSessionContext<SnapshotSync<M>>,
    ) -> Poll<Cursor> {
        match &self.phase {
            Phase::Discover { asked, since, .. } => {
                if asked.is_empty() && since.elapsed() >= Duration::from_millis(200) {
                    // Nobody was bonded when we asked: ask again.
                    let rounds = match &self.phase {
                        Phase::Discover { rounds, .. } => *rounds,
                        _ => 0,
                    };
                    self.discover(cx, rounds);
                } else if self.discovery_done() {
                    self.choose(cx);
                }
            }
            Phase::Fetch { .. } => self.pump(cx),
            Phase::Install { .. } => self.check_install(cx),
            Phase::Done(_) => {}
        }
        match self.phase {
            Phase::Done(position) => Poll::Ready(position),
            _ => Poll::Pending,
        }
    }

    fn receive(
        &mut self,
        message: SnapshotMessage,
        sender: PeerId,
        cx: &mut dyn SyncSessionContext<SnapshotSync<M>>,
    ) {
        let now = self.now_ms();
        match (&mut self.phase, message) {
            (Phase::Discover { offers, .. }, SnapshotMessage::Holding(held)) => {
                offers.insert(sender, held);
                if self.discovery_done() {
                    self.choose(cx);
                }
            }
            (
                Phase::Fetch {
                    transfer,
                    fingerprint,
                    ..
                },
                SnapshotMessage::Holding(held),
            ) => {
                // A late answer: a peer holding the same snapshot joins the transfer.
                let same = held.iter().any(|h| {
                    Manifest::decode(&h.manifest.0).is_ok_and(|m| m.fingerprint() == *fingerprint)
                });
                if same {
                    transfer.add_peer(sender, sender == cx.leader());
                }
            }
            (
                Phase::Fetch {
                    transfer,
                    anchor,
                    reading,
                    ..
                },
                SnapshotMessage::Chunk {
                    anchor: at,
                    chunk,
                    bytes,
                },
            ) if at == anchor.index().0 => {
                match transfer.on_chunk(&mut self.store, &sender, chunk, &bytes.0, now) {
                    Ok(ChunkOutcome::Verified) => {
                        reading.chunk_ready(chunk);
                        self.sync.shared.stats.fetched(sender, bytes.0.len() as u64)
                    }
                    Ok(ChunkOutcome::Duplicate) => {}
                    Ok(ChunkOutcome::Rejected(err)) => {
                        SnapshotStats::add(&self.sync.shared.stats.chunks_rejected, 1);
                        tracing::warn!(peer = %Short(&sender), chunk, %err, "chunk rejected; asking another peer");
                    }
                    Err(err) => {
                        tracing::error!(group = %Short(&self.group), %err, "cannot store a snapshot chunk");
                        self.give_up(cx, "chunk store failed");
                        return;
                    }
                }
                self.pump(cx);
            }
            (
                Phase::Fetch {
                    transfer, anchor, ..
                },
                SnapshotMessage::Missing { anchor: at, chunk },
            ) if at == anchor.index().0 => {
                transfer.on_chunk_unavailable(&sender, chunk);
                let lacking = self.missing.entry(chunk).or_default();
                lacking.insert(sender);
                if transfer.peers().all(|p| lacking.contains(p)) {
                    // Every provider dropped this snapshot (retention moved on): start
                    // over on what they hold now.
                    tracing::info!(group = %Short(&self.group), chunk, "no provider has the snapshot any more; discovering again");
                    self.missing.clear();
                    self.discover(cx, 0);
                    return;
                }
                self.pump(cx);
            }
            _ => {}
        }
    }

    fn buffer(
        &mut self,
        _position: Cursor,
        _entries: Vec<crate::groups::raft::Entry>,
        _cx: &mut dyn SyncSessionContext<SnapshotSync<M>>,
    ) {
        // Not kept: after the install the leader sends everything after the anchor.
    }
}
