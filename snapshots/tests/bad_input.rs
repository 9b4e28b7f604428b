//! Bad input is rejected with an error naming what was wrong, never a panic: corrupt,
//! missing, oversized and mislabelled chunks, and random or mutated manifests.

mod common;

use common::*;
use proptest::prelude::*;
use tessera_snapshots::*;

const CHUNK: u32 = 1024;

fn snapshot() -> (MemChunkStore, Manifest) {
    let mut store = MemChunkStore::new();
    let m = write_snapshot(
        &mut store,
        &config_items(3, 100),
        WriterConfig {
            chunk_size: CHUNK,
            level: 1,
        },
    );
    assert!(m.chunk_count() >= 4);
    (store, m)
}

/// The manifest with chunk `chunk`'s table entry replaced, crc resealed: a manifest that
/// parses and vouches for bytes of our choosing.
fn vouch_for(m: &Manifest, chunk: u32, compressed: &[u8]) -> Manifest {
    try_vouch_for(m, chunk, compressed).unwrap()
}

/// As `vouch_for`, for bytes the manifest may refuse to describe (e.g. an empty chunk).
fn try_vouch_for(m: &Manifest, chunk: u32, compressed: &[u8]) -> Result<Manifest> {
    let mut record = m.encode();
    let at = 95 + 12 * chunk as usize; // see the layout table on Manifest::encode
    record[at + 4..at + 8].copy_from_slice(&(compressed.len() as u32).to_le_bytes());
    record[at + 8..at + 12].copy_from_slice(&crc32fast::hash(compressed).to_le_bytes());
    let n = record.len() - 4;
    let crc = crc32fast::hash(&record[..n]);
    record[n..].copy_from_slice(&crc.to_le_bytes());
    Manifest::decode(&record)
}

fn read_snapshot_items(m: &Manifest, store: &MemChunkStore) -> Result<Vec<Vec<u8>>> {
    let mut r = SnapshotReader::new(m.clone(), StoreSource::new(store, m.key()))?;
    let mut items = Vec::new();
    while let Some(item) = r.next_item()? {
        items.push(item.to_vec());
    }
    Ok(items)
}

fn read_with(m: Manifest, store: &MemChunkStore) -> Result<u64> {
    let mut r = SnapshotReader::new(m.clone(), StoreSource::new(store, m.key()))?;
    let mut n = 0;
    while r.next_item()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Reads a damaged snapshot until its error: the items returned before it, and the error.
fn read_until_error<S: ChunkSource>(mut r: SnapshotReader<S>) -> (usize, SnapshotError) {
    let mut returned = 0;
    loop {
        match r.next_item() {
            Ok(Some(_)) => returned += 1,
            Ok(None) => panic!("damaged snapshot read to the end"),
            Err(e) => return (returned, e),
        }
    }
}

#[test]
fn corrupt_stored_chunk_is_named() {
    let (mut store, m) = snapshot();
    let mut c = Vec::new();
    store.read_chunk(key(), 2, &mut c).unwrap();
    c[3] ^= 0x10;
    store.corrupt_chunk(key(), 2, c.clone());
    match read_with(m.clone(), &store) {
        Err(SnapshotError::ChunkCrc {
            chunk: 2,
            expected,
            found,
            ..
        }) => {
            assert_eq!(expected, m.chunks()[2].crc32);
            assert_eq!(found, crc32fast::hash(&c));
        }
        r => panic!("{r:?}"),
    }
}

/// A bit flipped inside a chunk of incompressible bytes (a zstd raw block) decompresses
/// without complaint to the right length. Checking the digest, the reader finds the mismatch
/// at the end and names the chunk by its crc32; without the digest, the crc32 is checked
/// before decompressing and names it at once.
#[test]
fn damage_that_still_decompresses_is_named_by_chunk() {
    let mut rng = Rng(9);
    let items: Vec<Vec<u8>> = (0..8)
        .map(|_| (0..1000).map(|_| rng.next_u64() as u8).collect())
        .collect();
    let mut store = MemChunkStore::new();
    let config = WriterConfig {
        chunk_size: CHUNK,
        level: 1,
    };
    let m = write_snapshot(&mut store, &items, config);
    let mut c = Vec::new();
    store.read_chunk(key(), 3, &mut c).unwrap();
    assert!(c.len() > CHUNK as usize, "chunk 3 is stored raw");
    let middle = c.len() / 2;
    c[middle] ^= 0x01;
    store.corrupt_chunk(key(), 3, c.clone());

    let r = SnapshotReader::new(m.clone(), StoreSource::new(&store, key())).unwrap();
    let (returned, err) = read_until_error(r);
    assert_eq!(returned, items.len(), "found at the end, by the digest");
    match err {
        SnapshotError::ChunkCrc {
            chunk: 3,
            expected,
            found,
            ..
        } => {
            assert_eq!(expected, m.chunks()[3].crc32);
            assert_eq!(found, crc32fast::hash(&c));
        }
        e => panic!("{e:?}"),
    }

    let r = SnapshotReader::new(m.clone(), StoreSource::new(&store, key()))
        .unwrap()
        .without_digest_check();
    let (returned, err) = read_until_error(r);
    assert!(returned < items.len(), "found at chunk 3, before its items");
    assert!(
        matches!(err, SnapshotError::ChunkCrc { chunk: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn missing_chunk_is_named() {
    let (store, m) = snapshot();
    let mut partial = MemChunkStore::new();
    let mut buf = Vec::new();
    for c in (0..m.chunk_count()).filter(|&c| c != 1) {
        store.read_chunk(key(), c, &mut buf).unwrap();
        partial.put_chunk(key(), c, &buf).unwrap();
    }
    match read_with(m, &partial) {
        Err(SnapshotError::ChunkMissing { chunk: 1, .. }) => {}
        r => panic!("{r:?}"),
    }
}

#[test]
fn chunk_decompressing_to_less_than_the_manifest_says_is_named() {
    let (mut store, m) = snapshot();
    let short = zstd::bulk::compress(&[b'x'; 1000], 1).unwrap();
    store.corrupt_chunk(key(), 0, short.clone());
    match read_with(vouch_for(&m, 0, &short), &store) {
        Err(SnapshotError::ChunkRawLength {
            chunk: 0,
            expected: CHUNK,
            found: 1000,
            ..
        }) => {}
        r => panic!("{r:?}"),
    }
}

#[test]
fn chunk_decompressing_to_more_than_the_manifest_says_is_named() {
    let (mut store, m) = snapshot();
    // Highly compressible: 64 KiB that compresses below the bound for 1 KiB.
    let long = zstd::bulk::compress(&vec![0u8; 64 << 10], 1).unwrap();
    assert!(long.len() < CHUNK as usize);
    store.corrupt_chunk(key(), 1, long.clone());
    match read_with(vouch_for(&m, 1, &long), &store) {
        Err(SnapshotError::ChunkDecompress {
            chunk: 1,
            raw_len: CHUNK,
            ..
        }) => {}
        r => panic!("{r:?}"),
    }
}

#[test]
fn chunk_that_is_not_zstd_is_named() {
    let (mut store, m) = snapshot();
    let junk = b"definitely not a zstd frame".to_vec();
    store.corrupt_chunk(key(), 3, junk.clone());
    match read_with(vouch_for(&m, 3, &junk), &store) {
        Err(e @ SnapshotError::ChunkDecompress { chunk: 3, .. }) => {
            assert!(e.to_string().contains("chunk 3"))
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn chunk_stored_under_the_wrong_number_is_caught() {
    let (mut store, m) = snapshot();
    let mut c1 = Vec::new();
    store.read_chunk(key(), 1, &mut c1).unwrap();
    store.corrupt_chunk(key(), 0, c1);
    let err = read_with(m, &store).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::ChunkCrc { chunk: 0, .. } | SnapshotError::ChunkLength { chunk: 0, .. }
        ),
        "{err}"
    );
}

#[test]
fn manifest_under_the_wrong_key_is_caught() {
    let (mut store, m) = snapshot();
    let other = SnapshotKey::new(group(), 999);
    store.put_manifest(other, &m.encode()).unwrap();
    match store.load_manifest(other) {
        Err(SnapshotError::ManifestKey { expected, found }) => {
            assert_eq!((expected, found), (other, key()));
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn errors_render_with_their_context() {
    let (_, m) = snapshot();
    let e = m.verify_chunk(1, b"abc").unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("chunk 1") && text.contains("3 bytes") && text.contains("index 1234"),
        "{text}"
    );
    assert!(!e.is_fatal());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_the_manifest_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn any_mutation_of_a_manifest_is_rejected(at in 0usize..10_000, bit in 0u8..8) {
        let (_, m) = snapshot();
        let mut record = m.encode();
        let i = at % record.len();
        record[i] ^= 1 << bit;
        prop_assert!(Manifest::decode(&record).is_err());
    }

    #[test]
    fn mutated_chunks_never_panic_the_reader(chunk in 0u32..4, at in 0usize..2000, byte in any::<u8>(), truncate in any::<bool>()) {
        let (mut store, m) = snapshot();
        let mut c = Vec::new();
        store.read_chunk(key(), chunk, &mut c).unwrap();
        if truncate {
            c.truncate(at % c.len());
        } else {
            let i = at % c.len();
            c[i] = c[i].wrapping_add(byte.max(1));
        }
        store.corrupt_chunk(key(), chunk, c.clone());
        // Checking crc32s first, the reader refuses the chunk. Checking the digest, it fails
        // or gives back exactly the items written: some bytes of a zstd frame (unused table
        // weights, padding bits) do not change what it decompresses to, and then the raw
        // stream is intact (a provider still refuses to serve the chunk: it checks crc32s).
        let mut r = SnapshotReader::new(m.clone(), StoreSource::new(&store, m.key()))
            .unwrap()
            .without_digest_check();
        let mut crc_first = Ok(());
        while let Some(next) = r.next_item().transpose() {
            if let Err(e) = next {
                crc_first = Err(e);
                break;
            }
        }
        prop_assert!(crc_first.is_err());
        if let Ok(items) = read_snapshot_items(&m, &store) {
            prop_assert_eq!(items, config_items(3, 100));
        }
        if let Ok(vouching) = try_vouch_for(&m, chunk, &c) {
            let _ = read_with(vouching, &store);
        }
    }
}
