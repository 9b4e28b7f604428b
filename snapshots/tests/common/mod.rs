//! Helpers shared by the integration tests: a seeded generator of config-like records and a
//! one-call snapshot writer.

#![allow(dead_code)]

use tessera_snapshots::*;

/// splitmix64: a tiny seeded generator, so tests need no RNG crate and replay exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Appends one config-like record (a key path and a small JSON value, 80–300 bytes) to `out`.
pub fn config_record(rng: &mut Rng, i: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    const SERVICES: [&str; 6] = [
        "billing",
        "auth",
        "search",
        "ingest",
        "gateway",
        "scheduler",
    ];
    const KEYS: [&str; 5] = [
        "timeout_ms",
        "replicas",
        "endpoint",
        "feature_flags",
        "limits",
    ];
    let svc = SERVICES[rng.below(6) as usize];
    let key = KEYS[rng.below(5) as usize];
    let _ = write!(
        out,
        "/services/{svc}/{i}/{key} {{\"value\":{},\"owner\":\"team-{svc}\",\"region\":\"eu-west-{}\",\"updated\":{},\"enabled\":{}",
        rng.below(100_000),
        rng.below(3),
        1_700_000_000 + rng.below(10_000_000),
        rng.below(2) == 1
    );
    for _ in 0..rng.below(4) {
        let _ = write!(out, ",\"tag{}\":\"{:x}\"", rng.below(100), rng.next_u64());
    }
    out.push(b'}');
}

pub fn group() -> GroupId {
    GroupId([0xab; 32])
}

pub fn anchor() -> Anchor {
    Anchor {
        term: 7,
        index: 1234,
    }
}

pub fn key() -> SnapshotKey {
    SnapshotKey::new(group(), anchor().index)
}

/// Writes `items` into `store` as the complete snapshot `key()`; returns its manifest.
pub fn write_snapshot(
    store: &mut MemChunkStore,
    items: &[Vec<u8>],
    config: WriterConfig,
) -> Manifest {
    let mut w =
        SnapshotWriter::new(group(), anchor(), config, StoreSink::new(store, key())).unwrap();
    for item in items {
        w.push(item).unwrap();
    }
    let (m, _) = w.finish().unwrap();
    store.put_manifest(key(), &m.encode()).unwrap();
    m
}

/// Reads every item of the complete snapshot `key()` back.
pub fn read_snapshot(store: &MemChunkStore) -> Result<Vec<Vec<u8>>> {
    let mut r = SnapshotReader::from_store(store, key())?.expect("manifest stored");
    let mut out = Vec::new();
    while let Some(item) = r.next_item()? {
        out.push(item.to_vec());
    }
    Ok(out)
}

/// `n` config-like records.
pub fn config_items(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    (0..n as u64)
        .map(|i| {
            let mut v = Vec::new();
            config_record(&mut rng, i, &mut v);
            v
        })
        .collect()
}
