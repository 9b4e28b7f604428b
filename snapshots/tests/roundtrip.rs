//! Round trips and determinism: items written come back identical, in order, and two writers
//! given the same items and settings produce byte-identical chunks and manifests.

mod common;

use common::*;
use proptest::prelude::*;
use tessera_snapshots::*;

fn small_config() -> WriterConfig {
    WriterConfig {
        chunk_size: 1024,
        level: 1,
    }
}

/// Items of mixed sizes: mostly small, some empty, some larger than several 1 KiB chunks.
fn items() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let item = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        2 => proptest::collection::vec(0u8..4, 0..600),
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<u8>(), 1000..5000),
    ];
    proptest::collection::vec(item, 0..60)
}

fn chunks_of(store: &MemChunkStore, m: &Manifest) -> Vec<Vec<u8>> {
    (0..m.chunk_count())
        .map(|c| {
            let mut buf = Vec::new();
            assert!(store.read_chunk(m.key(), c, &mut buf).unwrap());
            buf
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn round_trip_random_items(
        items in items(),
        chunk_kib in 1u32..5,
        level in prop_oneof![Just(1), Just(3), Just(-1)],
    ) {
        let config = WriterConfig { chunk_size: chunk_kib * 1024, level };
        let mut store = MemChunkStore::new();
        let sink = StoreSink::new(&mut store, key());
        let mut w = SnapshotWriter::new(group(), anchor(), config, sink).unwrap();
        for item in &items {
            w.push(item).unwrap();
        }
        let (m, _) = w.finish().unwrap();
        prop_assert_eq!(m.item_count(), items.len() as u64);
        let raw: u64 = items.iter().map(|i| i.len() as u64).sum();
        prop_assert!(m.raw_bytes() >= raw + items.len() as u64);
        prop_assert_eq!(Manifest::decode_for(key(), &m.encode()).unwrap(), m.clone());

        // Read through the store (chunks lent) and through a copying source: same items.
        for copying in [false, true] {
            let mut read = Vec::new();
            if copying {
                let copy = |c: u32, buf: &mut Vec<u8>| store.read_chunk(key(), c, buf);
                let mut r = SnapshotReader::new(m.clone(), CopyingSource::new(copy)).unwrap();
                while let Some(item) = r.next_item().unwrap() {
                    read.push(item.to_vec());
                }
            } else {
                let mut r = SnapshotReader::new(m.clone(), StoreSource::new(&store, key())).unwrap();
                while let Some(item) = r.next_item().unwrap() {
                    read.push(item.to_vec());
                }
            }
            prop_assert_eq!(&read, &items);
        }
    }

    #[test]
    fn two_writers_agree_byte_for_byte(items in items(), level in prop_oneof![Just(1), Just(3)]) {
        let config = WriterConfig { chunk_size: 2048, level };
        let (mut a, mut b) = (MemChunkStore::new(), MemChunkStore::new());
        let ma = write_snapshot(&mut a, &items, config);
        let mb = write_snapshot(&mut b, &items, config);
        prop_assert_eq!(ma.encode(), mb.encode());
        prop_assert_eq!(ma.fingerprint(), mb.fingerprint());
        prop_assert_eq!(chunks_of(&a, &ma), chunks_of(&b, &mb));
    }
}

#[test]
fn empty_snapshot_round_trips() {
    let mut store = MemChunkStore::new();
    let m = write_snapshot(&mut store, &[], WriterConfig::default());
    assert_eq!((m.item_count(), m.raw_bytes(), m.chunk_count()), (0, 0, 0));
    assert_eq!(m.digest(), StreamDigest::of(b""));
    assert!(read_snapshot(&store).unwrap().is_empty());
}

#[test]
fn one_item_round_trips() {
    let mut store = MemChunkStore::new();
    let m = write_snapshot(&mut store, &[b"only".to_vec()], WriterConfig::default());
    assert_eq!((m.item_count(), m.raw_bytes(), m.chunk_count()), (1, 5, 1));
    assert_eq!(read_snapshot(&store).unwrap(), vec![b"only".to_vec()]);
}

#[test]
fn one_empty_item_round_trips() {
    let mut store = MemChunkStore::new();
    let m = write_snapshot(&mut store, &[vec![]], small_config());
    assert_eq!((m.item_count(), m.raw_bytes(), m.chunk_count()), (1, 1, 1));
    assert_eq!(read_snapshot(&store).unwrap(), vec![Vec::<u8>::new()]);
}

#[test]
fn items_exactly_filling_chunks_and_larger_than_chunks_round_trip() {
    // 1022 bytes + 2-byte prefix = exactly one 1 KiB chunk; then items of 1, 2.5 and 10 chunks.
    let items = vec![
        vec![1u8; 1022],
        vec![2u8; 1024],
        vec![3u8; 2560],
        vec![4u8; 10 * 1024],
        vec![5u8; 3],
    ];
    let mut store = MemChunkStore::new();
    let m = write_snapshot(&mut store, &items, small_config());
    assert_eq!(m.chunks()[0].raw_len, 1024);
    assert_eq!(m.chunk_count() as u64, m.raw_bytes().div_ceil(1024));
    assert_eq!(read_snapshot(&store).unwrap(), items);
}

#[test]
fn digest_is_xxh3_128_of_the_framed_raw_stream() {
    let items = config_items(1, 500);
    let mut store = MemChunkStore::new();
    let m = write_snapshot(&mut store, &items, small_config());
    let mut raw = Vec::new();
    for i in &items {
        let mut len = i.len() as u64;
        while len >= 0x80 {
            raw.push(len as u8 | 0x80);
            len >>= 7;
        }
        raw.push(len as u8);
        raw.extend_from_slice(i);
    }
    assert_eq!(m.raw_bytes(), raw.len() as u64);
    let expected = StreamDigest::of(&raw);
    assert_eq!(m.digest(), expected);
    // The digest is of the stream, whatever the chunking.
    for chunk_size in [1024, 3000, 4096, 1 << 20] {
        let config = WriterConfig {
            chunk_size,
            level: 1,
        };
        let sink = |_: u32, _: &[u8]| Ok(());
        let mut w = SnapshotWriter::new(group(), anchor(), config, sink).unwrap();
        for item in &items {
            w.push(item).unwrap();
        }
        let (m, _) = w.finish().unwrap();
        assert_eq!(m.digest(), expected, "chunk size {chunk_size}");
    }
}

#[test]
fn settings_are_validated() {
    let sink = |_: u32, _: &[u8]| Ok(());
    for (config, field) in [
        (
            WriterConfig {
                chunk_size: 100,
                level: 1,
            },
            "chunk_size",
        ),
        (
            WriterConfig {
                chunk_size: 64 << 20,
                level: 1,
            },
            "chunk_size",
        ),
        (
            WriterConfig {
                chunk_size: 4096,
                level: 99,
            },
            "level",
        ),
    ] {
        match SnapshotWriter::new(group(), anchor(), config, sink) {
            Err(SnapshotError::Config { field: f, .. }) => assert_eq!(f, field),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted {config:?}"),
        }
    }
}

#[test]
fn writer_and_reader_refuse_use_after_an_error() {
    let mut store = MemChunkStore::new();
    store.set_fail_writes(true);
    let mut w = SnapshotWriter::new(
        group(),
        anchor(),
        small_config(),
        StoreSink::new(&mut store, key()),
    )
    .unwrap();
    assert!(w.push(&[0u8; 3000]).is_err());
    assert!(matches!(
        w.push(b"x"),
        Err(SnapshotError::Poisoned { role: "writer", .. })
    ));
    assert!(matches!(w.finish(), Err(SnapshotError::Poisoned { .. })));

    let mut store = MemChunkStore::new();
    let m = write_snapshot(&mut store, &config_items(5, 200), small_config());
    store.corrupt_chunk(key(), 0, vec![0; 10]);
    let mut r = SnapshotReader::new(m, StoreSource::new(&store, key())).unwrap();
    assert!(matches!(
        r.next_item(),
        Err(SnapshotError::ChunkLength { chunk: 0, .. })
    ));
    assert!(matches!(
        r.next_item(),
        Err(SnapshotError::Poisoned { role: "reader", .. })
    ));
}

#[test]
fn sink_failure_is_fatal_and_names_the_chunk() {
    let mut store = MemChunkStore::new();
    store.set_fail_writes(true);
    let mut w = SnapshotWriter::new(
        group(),
        anchor(),
        small_config(),
        StoreSink::new(&mut store, key()),
    )
    .unwrap();
    let err = w.push(&[0u8; 3000]).unwrap_err();
    assert!(err.is_fatal());
    assert!(
        matches!(
            err,
            SnapshotError::Store {
                op: StoreOp::PutChunk,
                chunk: Some(0),
                ..
            }
        ),
        "{err}"
    );
}

/// Calls `f` with seeded items until `target` raw bytes: config-like records, and every
/// 20000th item a 1.5 MiB random blob spanning two or three 1 MiB chunks (about a third of
/// the bytes). Returns the item count.
fn generate(target: u64, f: &mut dyn FnMut(&[u8])) -> u64 {
    let mut rng = Rng(42);
    let mut buf = Vec::new();
    let (mut bytes, mut i) = (0u64, 0u64);
    while bytes < target {
        buf.clear();
        if i % 20_000 == 19_999 {
            while buf.len() < 3 << 19 {
                buf.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
        } else {
            config_record(&mut rng, i, &mut buf);
        }
        f(&buf);
        bytes += buf.len() as u64;
        i += 1;
    }
    i
}

/// The "hundreds of MiB" round trip. Its size depends on the build: 300 MiB of raw records in
/// release (`cargo test --release`), 24 MiB in debug so `cargo test` stays quick. Items are
/// generated twice from the same seed rather than kept.
#[test]
fn large_round_trip() {
    let target: u64 = if cfg!(debug_assertions) {
        24 << 20
    } else {
        300 << 20
    };
    let mut store = MemChunkStore::new();
    let mut w = SnapshotWriter::new(
        group(),
        anchor(),
        WriterConfig::default(),
        StoreSink::new(&mut store, key()),
    )
    .unwrap();
    let mut write_err = None;
    let n = generate(target, &mut |item| {
        if let Err(e) = w.push(item) {
            write_err.get_or_insert(e);
        }
    });
    assert!(write_err.is_none(), "{write_err:?}");
    let (m, _) = w.finish().unwrap();
    assert_eq!(m.item_count(), n);
    assert!(m.raw_bytes() >= target);
    println!(
        "large_round_trip: {} items, {} raw bytes, {} chunks",
        n,
        m.raw_bytes(),
        m.chunk_count()
    );
    store.put_manifest(key(), &m.encode()).unwrap();

    let mut r = SnapshotReader::from_store(&store, key()).unwrap().unwrap();
    let mut read = 0u64;
    let mut mismatch = None;
    generate(target, &mut |expected| {
        match r.next_item() {
            Ok(Some(item)) if item == expected => {}
            other => {
                let got = other.map(|o| o.map(|i| i.len()));
                mismatch.get_or_insert(format!(
                    "item {read}: expected {} bytes, got {got:?}",
                    expected.len()
                ));
            }
        }
        read += 1;
    });
    assert_eq!(mismatch, None);
    assert!(
        r.next_item().unwrap().is_none(),
        "digest checked at the end"
    );
    assert_eq!(read, n);
}
