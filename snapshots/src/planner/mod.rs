//! The transfer planner: which chunk ranges to ask from which peer, and what to do with what
//! comes back. Sans-IO and deterministic: the caller sends the requests it returns, feeds in
//! what arrives, and passes the time (`now_ms`, milliseconds from any fixed origin, never
//! decreasing); the planner touches nothing but the [`ChunkStore`] it is handed.
//!
//! Life of a chunk: *missing* → *in flight* (part of one request to one peer) → *received*
//! (verified against the manifest and stored with its received mark in one store call). A
//! chunk that arrives corrupt, that its peer says it lacks, or whose request times out or
//! whose peer vanishes goes back to missing; the peer that failed it is not asked for it
//! again while another peer can be. Only verified chunks reach the store, so after a restart
//! [`Transfer::start`] or [`Transfer::resume`] rebuilds the planner from the store's marks
//! and asks only for the rest.
//!
//! Scheduling: requests cover up to `max_chunks_per_request` consecutive missing chunks;
//! each peer has at most `max_in_flight_per_peer` chunks in flight and the transfer at most
//! `max_in_flight`, which bounds the memory the network layer holds for chunks in flight.
//! Each new request goes to the usable peer that is not the leader (the leader is busy
//! replicating), then has the fewest chunks in flight, then the fewest recent failures;
//! ties go to the smaller peer id, so the plan is a pure function of the inputs.
//!
//! Failures: a timeout or a corrupt chunk counts against a peer and suspends it for
//! `request_timeout_ms` times its consecutive failures; after `max_peer_failures` in a row it
//! is dropped (a verified chunk resets the count). A peer that is removed or dropped has all
//! its in-flight chunks reassigned.

use crate::error::{Result, SnapshotError};
use crate::key::SnapshotKey;
use crate::manifest::Manifest;
use crate::progress::{Progress, RateMeter};
use crate::reader::SnapshotReader;
use crate::store::{ChunkStore, StoreSource};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// Planner settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferConfig {
    /// Most consecutive chunks in one request (default 4).
    pub max_chunks_per_request: u32,
    /// Most chunks in flight to one peer (default 8).
    pub max_in_flight_per_peer: u32,
    /// Most chunks in flight in total (default 32: 32 MiB of raw data at the default chunk
    /// size, less once compressed).
    pub max_in_flight: u32,
    /// A request with no chunk arriving for this long is given up and its chunks reassigned
    /// (default 10 s).
    pub request_timeout_ms: u64,
    /// Consecutive failures (timeouts, corrupt chunks) after which a peer is dropped
    /// (default 3).
    pub max_peer_failures: u32,
    /// Window of the transfer rate shown in [`Progress`] (default 5 s).
    pub rate_window_ms: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            max_chunks_per_request: 4,
            max_in_flight_per_peer: 8,
            max_in_flight: 32,
            request_timeout_ms: 10_000,
            max_peer_failures: 3,
            rate_window_ms: 5_000,
        }
    }
}

impl TransferConfig {
    /// Checks every setting is at least 1.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            (
                "max_chunks_per_request",
                u64::from(self.max_chunks_per_request),
            ),
            (
                "max_in_flight_per_peer",
                u64::from(self.max_in_flight_per_peer),
            ),
            ("max_in_flight", u64::from(self.max_in_flight)),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_peer_failures", u64::from(self.max_peer_failures)),
            ("rate_window_ms", self.rate_window_ms),
        ];
        match fields.iter().find(|(_, v)| *v == 0) {
            Some(&(field, value)) => Err(SnapshotError::TransferConfig { field, value }),
            None => Ok(()),
        }
    }
}

/// Identifies one request, unique within a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// "Ask `peer` for chunks `chunks` of the snapshot": the caller sends it and feeds each
/// chunk that comes back to [`Transfer::on_chunk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRequest<P> {
    /// The request's id.
    pub id: RequestId,
    /// Whom to ask.
    pub peer: P,
    /// Chunk numbers asked for, consecutive.
    pub chunks: Range<u32>,
    /// Compressed bytes those chunks hold.
    pub bytes: u64,
}

/// What became of a chunk fed to [`Transfer::on_chunk`].
#[derive(Debug)]
pub enum ChunkOutcome {
    /// Verified and stored.
    Verified,
    /// Already received; ignored.
    Duplicate,
    /// Failed verification (the error says how); it will be asked from another peer, and the
    /// sender was charged a failure.
    Rejected(SnapshotError),
}

/// Where a chunk stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Missing,
    InFlight(RequestId),
    Received,
}

/// One outstanding request.
#[derive(Clone, Debug)]
struct Request<P> {
    peer: P,
    chunks: Range<u32>,
    /// Chunks of `chunks` still `InFlight(this id)`.
    outstanding: u32,
    /// Given up at this time unless a chunk arrives first.
    deadline_ms: u64,
}

/// What the planner knows of one peer.
#[derive(Clone, Debug, Default)]
struct PeerState {
    leader: bool,
    in_flight: u32,
    /// Consecutive failures.
    failures: u32,
    /// Not asked for anything before this time.
    suspended_until_ms: u64,
}

/// A resumable transfer of one snapshot from several peers. `P` identifies a peer.
#[derive(Debug)]
pub struct Transfer<P> {
    manifest: Manifest,
    key: SnapshotKey,
    config: TransferConfig,
    /// One entry per chunk.
    state: Vec<ChunkState>,
    /// Chunks in state `Missing`, for picking ranges in order.
    missing: BTreeSet<u32>,
    received_chunks: u32,
    received_bytes: u64,
    /// Chunks in state `InFlight`.
    in_flight: u32,
    peers: BTreeMap<P, PeerState>,
    requests: BTreeMap<RequestId, Request<P>>,
    /// Peers not to ask for a chunk again: they sent a bad copy or said they lack it.
    excluded: BTreeMap<u32, BTreeSet<P>>,
    next_request: u64,
    rate: RateMeter,
}

impl<P: Clone + Ord> Transfer<P> {
    /// Starts a transfer of the snapshot `manifest` describes, or resumes it if `store` holds
    /// an unfinished transfer of the same snapshot: chunks already marked received are not
    /// asked for again. Fails with [`SnapshotError::ManifestConflict`] if the store's transfer
    /// of this key has a different manifest (the caller decides whether to delete it).
    pub fn start<S: ChunkStore + ?Sized>(
        store: &mut S,
        manifest: Manifest,
        config: TransferConfig,
        now_ms: u64,
    ) -> Result<Self> {
        config.validate()?;
        let key = manifest.key();
        match store.load_transfer(key)? {
            Some(stored) if stored != manifest => {
                return Err(SnapshotError::ManifestConflict { key })
            }
            Some(_) => {}
            None => store.begin_transfer(key, &manifest.encode())?,
        }
        Self::rebuild(store, manifest, config, now_ms)
    }

    /// Rebuilds the planner of the unfinished transfer `key` from the store alone (after a
    /// restart); `Ok(None)` if there is none.
    pub fn resume<S: ChunkStore + ?Sized>(
        store: &S,
        key: SnapshotKey,
        config: TransferConfig,
        now_ms: u64,
    ) -> Result<Option<Self>> {
        config.validate()?;
        match store.load_transfer(key)? {
            Some(manifest) => Self::rebuild(store, manifest, config, now_ms).map(Some),
            None => Ok(None),
        }
    }

    fn rebuild<S: ChunkStore + ?Sized>(
        store: &S,
        manifest: Manifest,
        config: TransferConfig,
        now_ms: u64,
    ) -> Result<Self> {
        let key = manifest.key();
        let count = manifest.chunk_count();
        let mut state = vec![ChunkState::Missing; count as usize];
        let mut received_chunks = 0;
        let mut received_bytes = 0;
        for chunk in store.received_chunks(key)? {
            let slot = state
                .get_mut(chunk as usize)
                .ok_or(SnapshotError::TransferState { key, chunk, count })?;
            if *slot != ChunkState::Received {
                *slot = ChunkState::Received;
                received_chunks += 1;
                received_bytes += u64::from(manifest.chunks()[chunk as usize].compressed_len);
            }
        }
        let missing = (0..count)
            .filter(|&c| state[c as usize] == ChunkState::Missing)
            .collect();
        Ok(Transfer {
            key,
            config,
            state,
            missing,
            received_chunks,
            received_bytes,
            in_flight: 0,
            peers: BTreeMap::new(),
            requests: BTreeMap::new(),
            excluded: BTreeMap::new(),
            next_request: 0,
            rate: RateMeter::new(config.rate_window_ms, now_ms),
            manifest,
        })
    }

    /// The snapshot being fetched.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Adds a peer that holds the snapshot (same manifest fingerprint), or updates its leader
    /// flag. Re-adding a dropped peer gives it a clean record.
    pub fn add_peer(&mut self, peer: P, leader: bool) {
        self.peers.entry(peer).or_default().leader = leader;
    }

    /// Marks `leader` as the group's leader (and no other peer), or none.
    pub fn set_leader(&mut self, leader: Option<&P>) {
        for (p, s) in self.peers.iter_mut() {
            s.leader = Some(p) == leader;
        }
    }

    /// A peer vanished (link closed, left the group): its chunks in flight are reassigned.
    pub fn remove_peer(&mut self, peer: &P) {
        let ids: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.peer == *peer)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.cancel_request(id);
        }
        self.peers.remove(peer);
    }

    /// The peers still usable.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.keys()
    }

    /// Gives up timed-out requests, then returns the new requests to send now. Call it after
    /// every event and at [`Transfer::next_deadline`].
    pub fn poll(&mut self, now_ms: u64) -> Vec<ChunkRequest<P>> {
        self.expire(now_ms);
        self.forget_exhausted_exclusions();
        let mut out = Vec::new();
        while self.in_flight < self.config.max_in_flight && !self.missing.is_empty() {
            let mut candidates: Vec<(bool, u32, u32, &P)> = self
                .peers
                .iter()
                .filter(|(_, s)| {
                    s.suspended_until_ms <= now_ms
                        && s.in_flight < self.config.max_in_flight_per_peer
                })
                .map(|(p, s)| (s.leader, s.in_flight, s.failures, p))
                .collect();
            candidates.sort();
            let planned = candidates.iter().find_map(|&(_, peer_in_flight, _, peer)| {
                let budget = self
                    .config
                    .max_chunks_per_request
                    .min(self.config.max_in_flight_per_peer - peer_in_flight)
                    .min(self.config.max_in_flight - self.in_flight);
                self.pick_range(peer, budget)
                    .map(|range| (peer.clone(), range))
            });
            let Some((peer, chunks)) = planned else { break };
            out.push(self.send(peer, chunks, now_ms));
        }
        out
    }

    /// Feeds in chunk `chunk` as received from `from`: verifies its length and crc32 against
    /// the manifest and, if good, stores it with its received mark. `Err` only for a store
    /// failure (after which the transfer should stop); a bad chunk is
    /// [`ChunkOutcome::Rejected`] and will be asked again from someone else.
    pub fn on_chunk<S: ChunkStore + ?Sized>(
        &mut self,
        store: &mut S,
        from: &P,
        chunk: u32,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<ChunkOutcome> {
        let Some(&state) = self.state.get(chunk as usize) else {
            self.charge_failure(from, now_ms);
            return Ok(ChunkOutcome::Rejected(SnapshotError::ChunkOutOfRange {
                key: self.key,
                chunk,
                count: self.manifest.chunk_count(),
            }));
        };
        if state == ChunkState::Received {
            return Ok(ChunkOutcome::Duplicate);
        }
        if let Err(e) = self.manifest.verify_chunk(chunk, bytes) {
            if let ChunkState::InFlight(id) = state {
                if self.requests.get(&id).is_some_and(|r| r.peer == *from) {
                    self.settle(chunk);
                    self.mark_missing(chunk);
                }
            }
            self.excluded.entry(chunk).or_default().insert(from.clone());
            self.charge_failure(from, now_ms);
            return Ok(ChunkOutcome::Rejected(e));
        }
        store.put_received_chunk(self.key, chunk, bytes)?;
        match state {
            ChunkState::InFlight(id) => {
                if let Some(r) = self.requests.get_mut(&id) {
                    if r.peer == *from {
                        r.deadline_ms = now_ms + self.config.request_timeout_ms;
                    }
                }
                self.settle(chunk);
            }
            ChunkState::Missing => {
                self.missing.remove(&chunk);
            }
            ChunkState::Received => {}
        }
        self.state[chunk as usize] = ChunkState::Received;
        self.excluded.remove(&chunk);
        self.received_chunks += 1;
        self.received_bytes += bytes.len() as u64;
        self.rate.record(now_ms, bytes.len() as u64);
        if let Some(p) = self.peers.get_mut(from) {
            p.failures = 0;
        }
        Ok(ChunkOutcome::Verified)
    }

    /// `from` says it does not hold chunk `chunk`: ask someone else. Not counted as a failure.
    pub fn on_chunk_unavailable(&mut self, from: &P, chunk: u32) {
        let Some(&ChunkState::InFlight(id)) = self.state.get(chunk as usize) else {
            return;
        };
        if self.requests.get(&id).is_some_and(|r| r.peer == *from) {
            self.settle(chunk);
            self.mark_missing(chunk);
            self.excluded.entry(chunk).or_default().insert(from.clone());
        }
    }

    /// True once every chunk is verified and stored; then call [`Transfer::finish`].
    pub fn is_complete(&self) -> bool {
        self.received_chunks == self.manifest.chunk_count()
    }

    /// Chunks not yet verified (missing or in flight), in order.
    pub fn unverified_chunks(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.manifest.chunk_count()).filter(|&c| self.state[c as usize] != ChunkState::Received)
    }

    /// The earliest time at which [`Transfer::poll`] may act without any new event (a request
    /// deadline or the end of a peer's suspension), if any.
    pub fn next_deadline(&self) -> Option<u64> {
        let requests = self.requests.values().map(|r| r.deadline_ms);
        let peers = self
            .peers
            .values()
            .filter(|p| p.suspended_until_ms > 0)
            .map(|p| p.suspended_until_ms);
        requests.chain(peers).min()
    }

    /// The transfer's progress at `now_ms`.
    pub fn progress(&self, now_ms: u64) -> Progress {
        let rate = self.rate.rate(now_ms);
        let left = self.manifest.compressed_bytes() - self.received_bytes;
        Progress {
            chunks_total: self.manifest.chunk_count(),
            chunks_verified: self.received_chunks,
            chunks_in_flight: self.in_flight,
            bytes_total: self.manifest.compressed_bytes(),
            bytes_verified: self.received_bytes,
            rate_bytes_per_sec: rate,
            eta_ms: if left == 0 {
                Some(0)
            } else {
                (rate > 0).then(|| left.saturating_mul(1000).div_ceil(rate))
            },
            peers: self.peers.len(),
        }
    }

    /// Checks the complete snapshot as stored: reads every chunk back (length, crc32,
    /// decompressed length), the item framing and count, and the digest of the raw stream.
    /// Reads the whole snapshot: run it off any latency-sensitive thread.
    ///
    /// If a stored chunk fails its check (local corruption), that chunk goes back to missing
    /// (poll again, then retry) and the error is returned. A digest mismatch with every chunk
    /// intact means the manifest itself is wrong: delete the transfer and fetch from others.
    pub fn verify<S: ChunkStore + ?Sized>(&mut self, store: &S) -> Result<()> {
        if !self.is_complete() {
            return Err(SnapshotError::Incomplete {
                key: self.key,
                missing: self.manifest.chunk_count() - self.received_chunks,
                count: self.manifest.chunk_count(),
            });
        }
        let reader = SnapshotReader::new(self.manifest.clone(), StoreSource::new(store, self.key))?;
        match reader.verify_all() {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(chunk) = chunk_of(&e) {
                    if self.state.get(chunk as usize) == Some(&ChunkState::Received) {
                        self.state[chunk as usize] = ChunkState::Missing;
                        self.missing.insert(chunk);
                        self.received_chunks -= 1;
                        self.received_bytes -=
                            u64::from(self.manifest.chunks()[chunk as usize].compressed_len);
                    }
                }
                Err(e)
            }
        }
    }

    /// [`Transfer::verify`], then [`ChunkStore::complete_transfer`]: the snapshot is stored
    /// as complete and installable, and its manifest is returned.
    pub fn finish<S: ChunkStore + ?Sized>(&mut self, store: &mut S) -> Result<Manifest> {
        self.verify(store)?;
        store.complete_transfer(self.key, &self.manifest.encode())?;
        Ok(self.manifest.clone())
    }

    /// Picks up to `budget` consecutive missing chunks, the first that `peer` may be asked for
    /// and those following it.
    fn pick_range(&self, peer: &P, budget: u32) -> Option<Range<u32>> {
        let allowed = |c: u32| self.excluded.get(&c).is_none_or(|s| !s.contains(peer));
        let mut it = self.missing.iter().copied().skip_while(|&c| !allowed(c));
        let start = it.next()?;
        let mut end = start + 1;
        for c in it {
            if c != end || end - start >= budget || !allowed(c) {
                break;
            }
            end += 1;
        }
        Some(start..end)
    }

    fn send(&mut self, peer: P, chunks: Range<u32>, now_ms: u64) -> ChunkRequest<P> {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let n = chunks.end - chunks.start;
        let mut bytes = 0;
        for c in chunks.clone() {
            self.missing.remove(&c);
            self.state[c as usize] = ChunkState::InFlight(id);
            bytes += u64::from(self.manifest.chunks()[c as usize].compressed_len);
        }
        self.in_flight += n;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.in_flight += n;
        }
        let deadline_ms = now_ms + self.config.request_timeout_ms;
        self.requests.insert(
            id,
            Request {
                peer: peer.clone(),
                chunks: chunks.clone(),
                outstanding: n,
                deadline_ms,
            },
        );
        ChunkRequest {
            id,
            peer,
            chunks,
            bytes,
        }
    }

    /// Takes an in-flight chunk off its request's books (state is left to the caller).
    fn settle(&mut self, chunk: u32) {
        let ChunkState::InFlight(id) = self.state[chunk as usize] else {
            return;
        };
        self.state[chunk as usize] = ChunkState::Missing;
        self.in_flight -= 1;
        if let Some(r) = self.requests.get_mut(&id) {
            r.outstanding -= 1;
            if let Some(p) = self.peers.get_mut(&r.peer) {
                p.in_flight -= 1;
            }
            if r.outstanding == 0 {
                self.requests.remove(&id);
            }
        }
    }

    fn mark_missing(&mut self, chunk: u32) {
        self.state[chunk as usize] = ChunkState::Missing;
        self.missing.insert(chunk);
    }

    /// Gives up a request: its unanswered chunks become missing.
    fn cancel_request(&mut self, id: RequestId) {
        let Some(r) = self.requests.get(&id) else {
            return;
        };
        for c in r.chunks.clone() {
            if self.state[c as usize] == ChunkState::InFlight(id) {
                self.settle(c);
                self.mark_missing(c);
            }
        }
        // settle removed it when its last chunk went; remove in case none was outstanding
        self.requests.remove(&id);
    }

    fn expire(&mut self, now_ms: u64) {
        let expired: Vec<(RequestId, P)> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline_ms <= now_ms)
            .map(|(id, r)| (*id, r.peer.clone()))
            .collect();
        let mut charged = BTreeSet::new();
        for (id, peer) in expired {
            self.cancel_request(id);
            if charged.insert(peer.clone()) {
                self.charge_failure(&peer, now_ms);
            }
        }
    }

    /// Counts a failure against `peer`: suspends it, and drops it after too many in a row.
    fn charge_failure(&mut self, peer: &P, now_ms: u64) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        p.failures += 1;
        p.suspended_until_ms = now_ms + self.config.request_timeout_ms * u64::from(p.failures);
        if p.failures >= self.config.max_peer_failures {
            self.remove_peer(peer);
        }
    }

    /// A chunk every usable peer is excluded from would never be asked again: forget its
    /// exclusions so everyone may be tried once more.
    fn forget_exhausted_exclusions(&mut self) {
        let peers = &self.peers;
        self.excluded
            .retain(|_, s| !peers.keys().all(|p| s.contains(p)));
    }
}

/// The chunk a read-back error is about, if it is about one chunk's bytes.
fn chunk_of(e: &SnapshotError) -> Option<u32> {
    match e {
        SnapshotError::ChunkLength { chunk, .. }
        | SnapshotError::ChunkCrc { chunk, .. }
        | SnapshotError::ChunkDecompress { chunk, .. }
        | SnapshotError::ChunkRawLength { chunk, .. }
        | SnapshotError::ChunkMissing { chunk, .. } => Some(*chunk),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
