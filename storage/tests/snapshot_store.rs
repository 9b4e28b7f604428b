//! A partially received snapshot survives reopening the database; chunks are checked.

use tessera_storage::{ColumnFamily, Corruption, Error, Store};

const GROUP: [u8; 32] = [8; 32];

#[test]
fn partial_transfer_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let snaps = store.snapshot_store(GROUP);
        snaps.put_transfer(500, b"manifest-being-fetched").unwrap();
        for chunk in [0u64, 1, 2, 5, 9] {
            snaps
                .put_received_chunk(500, chunk, &vec![chunk as u8; 1000 + chunk as usize])
                .unwrap();
        }
        snaps.put_chunk(500, 11, b"local chunk, no mark").unwrap();
        // Another group's chunks must not leak into this one's listing.
        store
            .snapshot_store([9; 32])
            .put_chunk(500, 3, b"other")
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let snaps = store.snapshot_store(GROUP);
    assert_eq!(snaps.transfers().unwrap(), vec![500]);
    assert_eq!(
        snaps.transfer(500).unwrap().as_deref(),
        Some(&b"manifest-being-fetched"[..])
    );
    assert_eq!(snaps.received_chunks(500).unwrap(), vec![0, 1, 2, 5, 9]);
    assert_eq!(snaps.chunks_present(500).unwrap(), vec![0, 1, 2, 5, 9, 11]);
    assert_eq!(snaps.chunk(500, 5).unwrap(), Some(vec![5u8; 1005]));
    assert_eq!(snaps.chunk(500, 4).unwrap(), None);
    assert!(
        snaps.anchors().unwrap().is_empty(),
        "no manifest yet: not complete"
    );

    snaps.put_manifest(500, b"manifest").unwrap();
    assert_eq!(snaps.anchors().unwrap(), vec![500]);
    assert!(
        snaps.transfers().unwrap().is_empty(),
        "completing drops the transfer record"
    );
    assert!(
        snaps.received_chunks(500).unwrap().is_empty(),
        "and its marks"
    );
    assert_eq!(
        snaps.chunks_present(500).unwrap(),
        vec![0, 1, 2, 5, 9, 11],
        "the chunks stay"
    );

    snaps.delete(500).unwrap();
    assert!(snaps.chunks_present(500).unwrap().is_empty());
    assert_eq!(snaps.manifest(500).unwrap(), None);
}

#[test]
fn a_damaged_chunk_is_reported_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let snaps = store.snapshot_store(GROUP);
    snaps.put_chunk(7, 1, &[1u8; 4096]).unwrap();
    let mut key = GROUP.to_vec();
    key.extend_from_slice(&7u64.to_be_bytes());
    key.extend_from_slice(&1u64.to_be_bytes());
    let mut raw = store
        .get_raw(ColumnFamily::Snapshots, &key)
        .unwrap()
        .unwrap();
    raw[100] ^= 0xFF;
    store
        .put_raw(ColumnFamily::Snapshots, &key, &raw, false)
        .unwrap();
    match snaps.chunk(7, 1) {
        Err(Error::Corruption {
            cf: "snapshots",
            kind: Corruption::Crc { .. },
            ..
        }) => {}
        other => panic!("expected a crc error, got {other:?}"),
    }
}

/// Chunks written in bulk (a snapshot cut, a transfer) never make RocksDB stop or slow the
/// node's writes. Its write stop is for the whole database: the log's syncs would wait
/// behind snapshot bytes for up to a second at a time (seen in CI: followers missed their
/// election timeout while three nodes each cut 268 MB, and a leader lost its term).
#[test]
fn bulk_chunk_writes_never_stall_the_other_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let snaps = store.snapshot_store(GROUP);
    let received = store.snapshot_store([9; 32]);
    // 160 MiB of 1 MiB chunks that do not compress (xorshift), half cut locally and half
    // received, as fast as RocksDB takes them.
    let mut chunk = vec![0u8; 1 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..80u64 {
        for word in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        snaps.put_chunk(1, n, &chunk).unwrap();
        received.put_received_chunk(1, n, &chunk).unwrap();
    }
    let stalls = store.write_stalls().unwrap();
    assert_eq!(stalls.stops, 0, "writes stopped: {stalls:?}");
    assert_eq!(stalls.delays, 0, "writes delayed: {stalls:?}");
    assert_eq!(snaps.chunks_present(1).unwrap().len(), 80);
    assert_eq!(received.received_chunks(1).unwrap().len(), 80);
}
