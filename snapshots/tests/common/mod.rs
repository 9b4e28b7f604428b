//! Helpers shared by the integration tests: a seeded generator of config-like records and a
//! one-call snapshot writer.

#![allow(dead_code)]

use tessera_snapshots::*;

mod records;

pub use records::{config_record, Rng};

pub fn group() -> GroupId {
    GroupId([0xab; 32])
}

pub fn anchor() -> Cursor {
    Cursor {
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
