//! Transfers between simulated peers on a virtual clock: corrupt and vanishing providers,
//! a restart halfway through, local corruption found at the end, a lying manifest.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use tessera_snapshots::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    /// Serves every chunk intact after `LATENCY_MS`.
    Good,
    /// Serves every chunk with one byte flipped.
    Corrupt,
    /// Serves intact until this time, then answers nothing, ever (no goodbye).
    VanishAt(u64),
}

const LATENCY_MS: u64 = 5;

struct Provider {
    behaviour: Behaviour,
    /// Compressed bytes asked of this provider.
    bytes_requested: u64,
    chunks_requested: Vec<u32>,
    /// Chunks asked for and never answered (after vanishing).
    chunks_dropped: u32,
}

/// The network and the providers. Every provider serves from the same source store (byte-
/// identical chunks are the point of deterministic snapshots).
struct Sim {
    source: MemChunkStore,
    providers: BTreeMap<u8, Provider>,
    /// Deliveries by (time, sequence): (from, chunk, bytes).
    in_transit: BTreeMap<(u64, u64), (u8, u32, Vec<u8>)>,
    seq: u64,
    now: u64,
    rejected: u32,
}

impl Sim {
    fn new(source: MemChunkStore, behaviours: &[(u8, Behaviour)]) -> Self {
        let providers = behaviours
            .iter()
            .map(|&(p, behaviour)| {
                (
                    p,
                    Provider {
                        behaviour,
                        bytes_requested: 0,
                        chunks_requested: Vec::new(),
                        chunks_dropped: 0,
                    },
                )
            })
            .collect();
        Sim {
            source,
            providers,
            in_transit: BTreeMap::new(),
            seq: 0,
            now: 0,
            rejected: 0,
        }
    }

    fn requested_bytes(&self) -> u64 {
        self.providers.values().map(|p| p.bytes_requested).sum()
    }

    fn requested_chunks(&self) -> BTreeSet<u32> {
        self.providers
            .values()
            .flat_map(|p| p.chunks_requested.iter().copied())
            .collect()
    }

    fn send(&mut self, req: ChunkRequest<u8>) {
        let p = self
            .providers
            .get_mut(&req.peer)
            .expect("planner asked an unknown peer");
        p.bytes_requested += req.bytes;
        p.chunks_requested.extend(req.chunks.clone());
        if let Behaviour::VanishAt(t) = p.behaviour {
            if self.now >= t {
                p.chunks_dropped += req.chunks.len() as u32;
                return;
            }
        }
        for (i, chunk) in req.chunks.enumerate() {
            let mut bytes = Vec::new();
            assert!(self.source.read_chunk(key(), chunk, &mut bytes).unwrap());
            if p.behaviour == Behaviour::Corrupt {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
            }
            let at = self.now + LATENCY_MS * (i as u64 + 1);
            if let Behaviour::VanishAt(t) = p.behaviour {
                if at >= t {
                    p.chunks_dropped += 1;
                    continue;
                }
            }
            self.seq += 1;
            self.in_transit
                .insert((at, self.seq), (req.peer, chunk, bytes));
        }
    }

    /// Drives the transfer until complete, or until `stop(transfer)` says so. Checks the
    /// in-flight bound after every step.
    fn run(
        &mut self,
        t: &mut Transfer<u8>,
        store: &mut MemChunkStore,
        config: TransferConfig,
        stop: impl Fn(&mut Transfer<u8>) -> bool,
    ) {
        for _ in 0..100_000 {
            for req in t.poll(self.now) {
                assert!(req.chunks.end - req.chunks.start <= config.max_chunks_per_request);
                self.send(req);
            }
            let p = t.progress(self.now);
            assert!(p.chunks_in_flight <= config.max_in_flight, "{p:?}");
            if t.is_complete() || stop(t) {
                return;
            }
            let next_delivery = self.in_transit.keys().next().map(|k| k.0);
            let next = match (next_delivery, t.next_deadline()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a
                    .or(b)
                    .expect("transfer stalled: nothing in transit and no deadline"),
            };
            self.now = self.now.max(next);
            while let Some(entry) = self.in_transit.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (from, chunk, bytes) = entry.remove();
                match t.on_chunk(store, &from, chunk, &bytes, self.now).unwrap() {
                    ChunkOutcome::Rejected(_) => self.rejected += 1,
                    ChunkOutcome::Verified | ChunkOutcome::Duplicate => {}
                }
            }
        }
        panic!("transfer did not finish in 100000 steps");
    }
}

/// A source store holding a ~60-chunk snapshot of config records (4 KiB chunks).
fn source() -> (MemChunkStore, Manifest, Vec<Vec<u8>>) {
    let items = config_items(7, 1500);
    let mut store = MemChunkStore::new();
    let m = write_snapshot(
        &mut store,
        &items,
        WriterConfig {
            chunk_size: 4096,
            level: 1,
        },
    );
    assert!(m.chunk_count() > 40, "{}", m.chunk_count());
    (store, m, items)
}

fn config() -> TransferConfig {
    TransferConfig {
        max_chunks_per_request: 3,
        max_in_flight_per_peer: 6,
        max_in_flight: 12,
        request_timeout_ms: 100,
        max_peer_failures: 3,
        rate_window_ms: 1000,
    }
}

#[test]
fn completes_despite_a_corrupt_and_a_vanishing_provider() {
    let (src, m, items) = source();
    let mut sim = Sim::new(
        src,
        &[
            (1, Behaviour::Good),
            (2, Behaviour::Corrupt),
            (3, Behaviour::VanishAt(40)),
        ],
    );
    let mut store = MemChunkStore::new();
    let mut t = Transfer::start(&mut store, m.clone(), config(), 0).unwrap();
    for p in 1..=3 {
        t.add_peer(p, false);
    }
    sim.run(&mut t, &mut store, config(), |_| false);

    assert!(
        sim.rejected > 0,
        "the corrupt provider's chunks were rejected"
    );
    assert!(
        !t.peers().any(|&p| p == 2),
        "the corrupt provider was dropped"
    );
    let vanished = &sim.providers[&3];
    assert!(
        vanished.chunks_requested.len() as u32 > vanished.chunks_dropped,
        "it served some first"
    );
    assert!(
        vanished.chunks_dropped > 0,
        "then it vanished with chunks in flight, which were reassigned"
    );
    let done = t.finish(&mut store).unwrap();
    assert_eq!(done.digest(), m.digest());
    assert_eq!(store.load_manifest(key()).unwrap(), Some(m));
    assert!(
        store.load_transfer(key()).unwrap().is_none(),
        "transfer record dropped"
    );
    assert_eq!(read_snapshot(&store).unwrap(), items);
    let p = t.progress(sim.now);
    assert!(
        p.is_complete() && p.fraction() == 1.0 && p.eta_ms == Some(0),
        "{p:?}"
    );
}

#[test]
fn load_is_spread_and_the_leader_is_spared() {
    let (src, m, _) = source();
    let mut sim = Sim::new(
        src,
        &[
            (1, Behaviour::Good),
            (2, Behaviour::Good),
            (3, Behaviour::Good),
        ],
    );
    let mut store = MemChunkStore::new();
    let config = TransferConfig {
        max_in_flight: 12,
        max_in_flight_per_peer: 6,
        ..config()
    };
    let mut t = Transfer::start(&mut store, m, config, 0).unwrap();
    t.add_peer(1, true);
    t.add_peer(2, false);
    t.add_peer(3, false);
    sim.run(&mut t, &mut store, config, |_| false);
    let served: Vec<u64> = (1..=3).map(|p| sim.providers[&p].bytes_requested).collect();
    // The two followers can hold all 12 chunks in flight between them: the leader is never asked.
    assert_eq!(served[0], 0, "{served:?}");
    assert!(served[1] > 0 && served[2] > 0, "{served:?}");
    let (a, b) = (served[1] as f64, served[2] as f64);
    assert!(
        (a - b).abs() / (a + b) < 0.2,
        "followers share the load: {served:?}"
    );
    t.finish(&mut store).unwrap();
}

#[test]
fn leader_is_used_when_followers_are_full() {
    let (src, m, _) = source();
    let mut sim = Sim::new(src, &[(1, Behaviour::Good), (2, Behaviour::Good)]);
    let mut store = MemChunkStore::new();
    let mut t = Transfer::start(&mut store, m, config(), 0).unwrap();
    t.add_peer(1, true);
    t.add_peer(2, false);
    sim.run(&mut t, &mut store, config(), |_| false);
    assert!(sim.providers[&1].bytes_requested > 0);
    assert!(sim.providers[&2].bytes_requested >= sim.providers[&1].bytes_requested);
    t.finish(&mut store).unwrap();
}

#[test]
fn restarted_transfer_fetches_only_the_missing_chunks() {
    let (src, m, items) = source();
    let mut sim = Sim::new(src.clone(), &[(1, Behaviour::Good), (2, Behaviour::Good)]);
    let mut store = MemChunkStore::new();
    let mut t = Transfer::start(&mut store, m.clone(), config(), 0).unwrap();
    t.add_peer(1, false);
    t.add_peer(2, false);
    let half = m.chunk_count() / 2;
    sim.run(&mut t, &mut store, config(), |t| {
        t.progress(0).chunks_verified >= half
    });
    drop(t); // crash: the planner, and everything in transit, is gone

    let persisted = store.received_chunks(key()).unwrap();
    assert!(persisted.len() as u32 >= half && (persisted.len() as u32) < m.chunk_count());
    let missing: Vec<u32> = (0..m.chunk_count())
        .filter(|c| !persisted.contains(c))
        .collect();
    let missing_bytes: u64 = missing
        .iter()
        .map(|&c| u64::from(m.chunks()[c as usize].compressed_len))
        .sum();

    // Rebuilt from the store alone, on a fresh network.
    let mut t = Transfer::resume(&store, key(), config(), 0)
        .unwrap()
        .expect("transfer recorded");
    assert_eq!(t.manifest(), &m);
    assert_eq!(t.unverified_chunks().collect::<Vec<_>>(), missing);
    let mut sim = Sim::new(src, &[(1, Behaviour::Good), (2, Behaviour::Good)]);
    t.add_peer(1, false);
    t.add_peer(2, false);
    sim.run(&mut t, &mut store, config(), |_| false);

    assert_eq!(
        sim.requested_bytes(),
        missing_bytes,
        "only the missing chunks' bytes were requested"
    );
    assert_eq!(sim.requested_chunks(), missing.iter().copied().collect());
    t.finish(&mut store).unwrap();
    assert_eq!(read_snapshot(&store).unwrap(), items);
}

#[test]
fn start_resumes_and_refuses_a_different_manifest() {
    let (_, m, _) = source();
    let mut store = MemChunkStore::new();
    let t = Transfer::<u8>::start(&mut store, m.clone(), config(), 0).unwrap();
    drop(t);
    assert!(
        Transfer::<u8>::start(&mut store, m, config(), 0).is_ok(),
        "same manifest resumes"
    );

    let mut other_store = MemChunkStore::new();
    let other = write_snapshot(
        &mut other_store,
        &config_items(8, 10),
        WriterConfig::default(),
    );
    match Transfer::<u8>::start(&mut store, other, config(), 0) {
        Err(SnapshotError::ManifestConflict { key: k }) => assert_eq!(k, key()),
        r => panic!("{r:?}"),
    }
    assert!(
        Transfer::<u8>::resume(&MemChunkStore::new(), key(), config(), 0)
            .unwrap()
            .is_none()
    );
}

#[test]
fn locally_corrupted_chunk_is_found_at_finish_and_fetched_again() {
    let (src, m, items) = source();
    let mut sim = Sim::new(src, &[(1, Behaviour::Good)]);
    let mut store = MemChunkStore::new();
    let mut t = Transfer::start(&mut store, m, config(), 0).unwrap();
    t.add_peer(1, false);
    sim.run(&mut t, &mut store, config(), |_| false);
    store.corrupt_chunk(key(), 5, vec![1, 2, 3]);
    match t.finish(&mut store) {
        Err(SnapshotError::ChunkLength {
            chunk: 5, found: 3, ..
        }) => {}
        r => panic!("{r:?}"),
    }
    assert_eq!(t.unverified_chunks().collect::<Vec<_>>(), vec![5]);
    let before = sim.requested_bytes();
    sim.run(&mut t, &mut store, config(), |_| false);
    t.finish(&mut store).unwrap();
    assert_eq!(
        sim.requested_chunks().len() as u32,
        t.manifest().chunk_count()
    );
    assert!(sim.requested_bytes() > before);
    assert_eq!(read_snapshot(&store).unwrap(), items);
}

#[test]
fn a_lying_manifest_fails_the_digest_check() {
    let (src, m, _) = source();
    let mut record = m.encode();
    record[75] ^= 1; // digest, see the layout table on Manifest::encode
    let n = record.len() - 4;
    let crc = crc32fast::hash(&record[..n]);
    record[n..].copy_from_slice(&crc.to_le_bytes());
    let lying = Manifest::decode(&record).unwrap();

    let mut sim = Sim::new(src, &[(1, Behaviour::Good)]);
    let mut store = MemChunkStore::new();
    let mut t = Transfer::start(&mut store, lying, config(), 0).unwrap();
    t.add_peer(1, false);
    sim.run(&mut t, &mut store, config(), |_| false);
    match t.finish(&mut store) {
        Err(SnapshotError::DigestMismatch {
            expected, found, ..
        }) => {
            assert_ne!(expected, m.digest());
            assert_eq!(found, m.digest());
        }
        r => panic!("{r:?}"),
    }
    assert!(
        store.load_manifest(key()).unwrap().is_none(),
        "not installable"
    );
}

#[test]
fn store_failure_is_fatal_and_loses_nothing() {
    let (src, m, _) = source();
    let mut store = MemChunkStore::new();
    let mut t = Transfer::start(&mut store, m, config(), 0).unwrap();
    t.add_peer(1, false);
    let req = t.poll(0).remove(0);
    let mut bytes = Vec::new();
    src.read_chunk(key(), req.chunks.start, &mut bytes).unwrap();
    store.set_fail_writes(true);
    let err = t
        .on_chunk(&mut store, &1, req.chunks.start, &bytes, 1)
        .unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert!(matches!(
        err,
        SnapshotError::Store {
            op: StoreOp::PutReceivedChunk,
            ..
        }
    ));
    assert_eq!(t.progress(1).chunks_verified, 0);
    store.set_fail_writes(false);
    assert!(matches!(
        t.on_chunk(&mut store, &1, req.chunks.start, &bytes, 2)
            .unwrap(),
        ChunkOutcome::Verified
    ));
    assert!(matches!(
        t.on_chunk(&mut store, &1, req.chunks.start, &bytes, 3)
            .unwrap(),
        ChunkOutcome::Duplicate
    ));
}

#[test]
fn empty_snapshot_transfer_is_complete_at_once() {
    let mut src = MemChunkStore::new();
    let m = write_snapshot(&mut src, &[], WriterConfig::default());
    let mut store = MemChunkStore::new();
    let mut t = Transfer::<u8>::start(&mut store, m, config(), 0).unwrap();
    assert!(t.is_complete());
    assert!(t.poll(0).is_empty());
    t.finish(&mut store).unwrap();
    assert!(read_snapshot(&store).unwrap().is_empty());
}
