//! A conformance suite for [`ChunkStore`] implementations: the same checks run on
//! [`MemChunkStore`] here and on tessera's RocksDB chunk store (`tests/chunk_store.rs`), so
//! both honour one contract.
//!
//! Each check panics with a message naming the broken rule, like a test assertion. Call
//! [`check_chunk_store`] on an empty store from a test. For durability, pair
//! [`write_partial_transfer`] before closing a database with [`check_partial_transfer`]
//! after reopening it.

use tessera_snapshots::{
    ChunkStore, Cursor, GroupId, Manifest, MemChunkStore, SnapshotKey, SnapshotWriter, StoreSink,
    Transfer, TransferConfig, WriterConfig,
};

fn key(group: u8, index: u64) -> SnapshotKey {
    SnapshotKey::new(GroupId([group; 32]), index)
}

/// A small valid snapshot (6 chunks of 1 KiB) of `key`, with its chunks.
fn sample(key: SnapshotKey) -> (Manifest, Vec<Vec<u8>>) {
    let mut src = MemChunkStore::new();
    let anchor = Cursor {
        term: 1,
        index: key.index,
    };
    let config = WriterConfig {
        chunk_size: 1024,
        level: 1,
    };
    let mut w = SnapshotWriter::new(key.group, anchor, config, StoreSink::new(&mut src, key))
        .expect("conformance: writer");
    for i in 0..300u32 {
        w.push(format!("conformance item {i:05} {}", i * 7919).as_bytes())
            .expect("conformance: push");
    }
    let (m, _) = w.finish().expect("conformance: finish");
    let chunks = (0..m.chunk_count())
        .map(|c| {
            let mut buf = Vec::new();
            ChunkStore::read_chunk(&src, key, c, &mut buf).expect("conformance: read");
            buf
        })
        .collect();
    (m, chunks)
}

fn read(store: &dyn ChunkStore, key: SnapshotKey, chunk: u32) -> Option<Vec<u8>> {
    let mut buf = vec![0xee; 7]; // must be cleared by the store
    store
        .read_chunk(key, chunk, &mut buf)
        .expect("read_chunk failed")
        .then_some(buf)
}

/// Checks the [`ChunkStore`] contract on an empty store.
pub fn check_chunk_store(store: &mut dyn ChunkStore) {
    let a = key(1, 10);
    let b = key(1, 11); // same group, next index
    let c = key(2, 10); // other group, same index

    // Absent things are Ok(None) / Ok(false) / empty.
    assert_eq!(
        store.manifest(a).expect("manifest"),
        None,
        "no manifest yet"
    );
    assert_eq!(
        store.transfer(a).expect("transfer"),
        None,
        "no transfer yet"
    );
    assert_eq!(read(store, a, 0), None, "no chunk yet");
    assert!(
        store.received_chunks(a).expect("received").is_empty(),
        "no marks yet"
    );

    // Chunks and manifests, kept apart per snapshot key.
    store.put_chunk(a, 0, b"a0").expect("put_chunk");
    store.put_chunk(a, 1, b"a1").expect("put_chunk");
    store.put_chunk(b, 0, b"b0").expect("put_chunk");
    store.put_chunk(c, 0, b"c0").expect("put_chunk");
    assert_eq!(
        read(store, a, 0).as_deref(),
        Some(&b"a0"[..]),
        "read_chunk clears buf and reads"
    );
    assert_eq!(
        read(store, b, 0).as_deref(),
        Some(&b"b0"[..]),
        "keys differ by index"
    );
    assert_eq!(
        read(store, c, 0).as_deref(),
        Some(&b"c0"[..]),
        "keys differ by group"
    );
    store.put_chunk(a, 0, b"a0 again").expect("put_chunk");
    assert_eq!(
        read(store, a, 0).as_deref(),
        Some(&b"a0 again"[..]),
        "put_chunk overwrites"
    );
    let empty: &[u8] = &[];
    store.put_chunk(a, 2, empty).expect("put_chunk");
    assert_eq!(
        read(store, a, 2).as_deref(),
        Some(empty),
        "an empty value is present, not absent"
    );
    store.put_manifest(a, b"manifest a").expect("put_manifest");
    assert_eq!(
        store.manifest(a).expect("manifest").as_deref(),
        Some(&b"manifest a"[..])
    );
    assert_eq!(
        store.manifest(b).expect("manifest"),
        None,
        "manifests kept per key"
    );
    assert!(
        store.received_chunks(a).expect("received").is_empty(),
        "put_chunk marks nothing"
    );

    // A transfer: record, marks, completion.
    store
        .begin_transfer(b, b"manifest b")
        .expect("begin_transfer");
    assert_eq!(
        store.transfer(b).expect("transfer").as_deref(),
        Some(&b"manifest b"[..])
    );
    store
        .put_received_chunk(b, 3, b"b3")
        .expect("put_received_chunk");
    store
        .put_received_chunk(b, 1, b"b1")
        .expect("put_received_chunk");
    store
        .put_received_chunk(b, 3, b"b3")
        .expect("put_received_chunk is idempotent");
    let mut marks = store.received_chunks(b).expect("received");
    marks.sort_unstable();
    marks.dedup();
    assert_eq!(marks, vec![1, 3], "received_chunks lists the marked chunks");
    assert_eq!(
        read(store, b, 1).as_deref(),
        Some(&b"b1"[..]),
        "put_received_chunk stores the chunk"
    );
    assert!(
        store.received_chunks(a).expect("received").is_empty(),
        "marks kept per key"
    );
    store
        .complete_transfer(b, b"manifest b")
        .expect("complete_transfer");
    assert_eq!(
        store.transfer(b).expect("transfer"),
        None,
        "complete_transfer drops the record"
    );
    assert!(
        store.received_chunks(b).expect("received").is_empty(),
        "complete_transfer drops the marks"
    );
    assert_eq!(
        store.manifest(b).expect("manifest").as_deref(),
        Some(&b"manifest b"[..]),
        "and stores the manifest"
    );
    assert_eq!(
        read(store, b, 3).as_deref(),
        Some(&b"b3"[..]),
        "and keeps the chunks"
    );

    // Deleting one snapshot leaves the others.
    store
        .begin_transfer(a, b"manifest a")
        .expect("begin_transfer");
    store
        .put_received_chunk(a, 5, b"a5")
        .expect("put_received_chunk");
    store.delete_snapshot(a).expect("delete_snapshot");
    assert_eq!(
        store.manifest(a).expect("manifest"),
        None,
        "delete_snapshot drops the manifest"
    );
    assert_eq!(
        store.transfer(a).expect("transfer"),
        None,
        "delete_snapshot drops the transfer"
    );
    assert!(
        store.received_chunks(a).expect("received").is_empty(),
        "delete_snapshot drops the marks"
    );
    for chunk in [0, 1, 2, 5] {
        assert_eq!(
            read(store, a, chunk),
            None,
            "delete_snapshot drops chunk {chunk}"
        );
    }
    assert_eq!(
        read(store, b, 1).as_deref(),
        Some(&b"b1"[..]),
        "other index untouched"
    );
    assert_eq!(
        read(store, c, 0).as_deref(),
        Some(&b"c0"[..]),
        "other group untouched"
    );
    store.delete_snapshot(b).expect("delete_snapshot");
    store.delete_snapshot(c).expect("delete_snapshot");

    // End to end: a transfer through the planner, and a snapshot read back.
    let k = key(3, 99);
    let (m, chunks) = sample(k);
    let mut t = Transfer::start(store, m.clone(), TransferConfig::default(), 0).expect("start");
    t.add_peer(0u8, false);
    let asked = drive(&mut t, store, &chunks);
    let all: Vec<u32> = (0..m.chunk_count()).collect();
    assert_eq!(asked, all, "each chunk asked for once");
    t.finish(store)
        .expect("finish: digest verified through the store");
    assert_eq!(
        store.load_manifest(k).expect("load_manifest"),
        Some(m),
        "installable"
    );
    store.delete_snapshot(k).expect("delete_snapshot");
}

/// Serves every request from `chunks` until the transfer is complete; returns the chunks
/// asked for, in order.
fn drive(t: &mut Transfer<u8>, store: &mut dyn ChunkStore, chunks: &[Vec<u8>]) -> Vec<u32> {
    let mut asked = Vec::new();
    while !t.is_complete() {
        let reqs = t.poll(0);
        assert!(!reqs.is_empty(), "planner stalled");
        for req in reqs {
            for c in req.chunks {
                asked.push(c);
                t.on_chunk(store, &req.peer, c, &chunks[c as usize], 1)
                    .expect("on_chunk");
            }
        }
    }
    asked
}

/// The key [`write_partial_transfer`] uses.
pub fn partial_transfer_key() -> SnapshotKey {
    key(4, 1234)
}

/// Starts a transfer in `store` and stores every other chunk through the planner; returns
/// the chunk numbers received. Close and reopen the store, then call
/// [`check_partial_transfer`].
pub fn write_partial_transfer(store: &mut dyn ChunkStore) -> Vec<u32> {
    let k = partial_transfer_key();
    let (m, chunks) = sample(k);
    let mut t = Transfer::start(store, m, TransferConfig::default(), 0).expect("start");
    let received: Vec<u32> = (0..chunks.len() as u32).step_by(2).collect();
    for &c in &received {
        t.on_chunk(store, &0u8, c, &chunks[c as usize], 1)
            .expect("on_chunk");
    }
    received
}

/// After a reopen: the transfer written by [`write_partial_transfer`] resumes, asks only for
/// the chunks it lacked, and completes with a verified digest.
pub fn check_partial_transfer(store: &mut dyn ChunkStore, received: &[u32]) {
    let k = partial_transfer_key();
    let (m, chunks) = sample(k);
    let mut t = Transfer::resume(store, k, TransferConfig::default(), 0)
        .expect("resume")
        .expect("the transfer record survived");
    assert_eq!(t.manifest(), &m, "the manifest survived");
    let expected: Vec<u32> = (0..m.chunk_count())
        .filter(|c| !received.contains(c))
        .collect();
    assert_eq!(
        t.unverified_chunks().collect::<Vec<_>>(),
        expected,
        "the marks survived"
    );
    t.add_peer(0u8, false);
    let asked = drive(&mut t, store, &chunks);
    assert_eq!(asked, expected, "only the missing chunks were asked for");
    t.finish(store)
        .expect("finish: the received chunks survived intact");
    store.delete_snapshot(k).expect("delete_snapshot");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_store_conforms() {
        check_chunk_store(&mut MemChunkStore::new());
    }

    #[test]
    fn mem_store_partial_transfer_survives_a_restart() {
        let mut store = MemChunkStore::new();
        let received = write_partial_transfer(&mut store);
        let mut reopened = store.clone();
        drop(store);
        check_partial_transfer(&mut reopened, &received);
    }
}
