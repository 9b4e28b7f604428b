//! Where chunks live: the [`ChunkStore`] trait a node's database implements, the small
//! [`ChunkSink`] / [`ChunkSource`] traits the writer and reader use, and [`MemChunkStore`],
//! an in-memory store for tests.
//!
//! The store deals in opaque bytes; this crate encodes and checks every record (manifests
//! with [`Manifest::encode`]/[`Manifest::decode_for`], chunks against the manifest's length
//! and crc32), so a store implementation is a thin layer of puts and gets.
//!
//! # Over RocksDB
//!
//! The design maps the calls onto three column families (keys from [`SnapshotKey`]):
//!
//! | call | column family | key | value |
//! |---|---|---|---|
//! | `put_manifest`, `manifest` | `snapshot_meta` | `key.to_bytes()` (40 B) | manifest record |
//! | `put_chunk`, `with_chunk` | `snapshots` | `key.chunk_key(n)` (44 B) | compressed chunk, as is |
//! | `begin_transfer`, `transfer` | `transfers` | `key.to_bytes()` (40 B) | manifest record |
//! | `put_received_chunk` | `snapshots` + `transfers` | `key.chunk_key(n)` in both | chunk; empty mark |
//! | `mark_received` | `transfers` | `key.chunk_key(n)` | empty mark (the chunk is already stored) |
//! | `received_chunks` | `transfers` | prefix scan of `key.to_bytes()`, 44-byte keys | chunk numbers |
//!
//! `put_received_chunk` and `complete_transfer` must each be one atomic `WriteBatch`. The
//! chunk store need not sync each call: a chunk whose put was lost in a crash is simply
//! fetched again, because chunk and mark are lost together. Chunks are already compressed:
//! turn RocksDB compression off for `snapshots`.

use crate::error::{Result, SnapshotError, StoreOp};
use crate::key::SnapshotKey;
use crate::manifest::Manifest;
use std::collections::{BTreeMap, BTreeSet};

/// Durable storage of snapshots and of in-progress transfers.
///
/// Every method returns [`SnapshotError::Store`] (build it with [`SnapshotError::store`]) when
/// the underlying storage fails; "not found" is `Ok(None)` / `Ok(false)`, never an error.
pub trait ChunkStore {
    /// Stores a complete snapshot's manifest record (`snapshot_meta`). Called by whoever wrote
    /// the snapshot, after all its chunks are stored.
    fn put_manifest(&mut self, key: SnapshotKey, record: &[u8]) -> Result<()>;

    /// The manifest record of a complete snapshot, if any.
    fn manifest(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>>;

    /// Stores one compressed chunk (`snapshots`), overwriting any previous value.
    fn put_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()>;

    /// Calls `take` once with the compressed chunk, lent for the call (a store that can lend
    /// its bytes, such as RocksDB's pinned reads, copies nothing); `Ok(false)` if absent.
    /// An error from `take` is returned as is.
    fn with_chunk(
        &self,
        key: SnapshotKey,
        chunk: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool>;

    /// Reads one compressed chunk into `buf` (cleared first); `Ok(false)` if absent.
    fn read_chunk(&self, key: SnapshotKey, chunk: u32, buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        self.with_chunk(key, chunk, &mut |bytes| {
            buf.extend_from_slice(bytes);
            Ok(())
        })
    }

    /// Records that a transfer of the snapshot described by `manifest_record` has begun
    /// (`transfers`), so it can resume after a restart.
    fn begin_transfer(&mut self, key: SnapshotKey, manifest_record: &[u8]) -> Result<()>;

    /// The manifest record of an unfinished transfer, if any.
    fn transfer(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>>;

    /// Stores a received, verified chunk and marks it received, atomically: after a crash
    /// either both are there or neither.
    fn put_received_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()>;

    /// Marks chunk `chunk`, already stored and checked by the caller against the
    /// transfer's manifest, as received without writing its bytes again (a damaged local
    /// snapshot reopened as a transfer keeps its intact chunks this way).
    fn mark_received(&mut self, key: SnapshotKey, chunk: u32) -> Result<()>;

    /// The chunk numbers marked received for an unfinished transfer, in any order.
    fn received_chunks(&self, key: SnapshotKey) -> Result<Vec<u32>>;

    /// Ends a verified transfer, atomically: stores the manifest record as for
    /// [`ChunkStore::put_manifest`] and drops the transfer record and its marks (the chunks
    /// stay: they are the snapshot).
    fn complete_transfer(&mut self, key: SnapshotKey, manifest_record: &[u8]) -> Result<()>;

    /// Deletes everything about a snapshot: manifest, chunks, transfer record and marks.
    fn delete_snapshot(&mut self, key: SnapshotKey) -> Result<()>;

    /// Loads and decodes the manifest of a complete snapshot.
    fn load_manifest(&self, key: SnapshotKey) -> Result<Option<Manifest>> {
        self.manifest(key)?
            .map(|record| Manifest::decode_for(key, &record))
            .transpose()
    }

    /// Loads and decodes the manifest of an unfinished transfer.
    fn load_transfer(&self, key: SnapshotKey) -> Result<Option<Manifest>> {
        self.transfer(key)?
            .map(|record| Manifest::decode_for(key, &record))
            .transpose()
    }
}

/// Where a [`SnapshotWriter`](crate::SnapshotWriter) puts each chunk as it is compressed.
pub trait ChunkSink {
    /// Takes the compressed chunk number `chunk` (numbers arrive in order from 0).
    fn put_chunk(&mut self, chunk: u32, bytes: &[u8]) -> Result<()>;
}

impl<F: FnMut(u32, &[u8]) -> Result<()>> ChunkSink for F {
    fn put_chunk(&mut self, chunk: u32, bytes: &[u8]) -> Result<()> {
        self(chunk, bytes)
    }
}

/// Where a [`SnapshotReader`](crate::SnapshotReader) gets each chunk.
pub trait ChunkSource {
    /// Calls `take` once with the compressed chunk number `chunk`, lent for the call;
    /// `Ok(false)` if absent. An error from `take` is returned as is. The reader checks
    /// length and crc32 itself, inside `take`, so a source that can lend its bytes (memory,
    /// a pinned database read) costs no copy.
    fn with_chunk(&mut self, chunk: u32, take: &mut dyn FnMut(&[u8]) -> Result<()>)
        -> Result<bool>;
}

/// Chunks held in memory, indexed by chunk number.
impl<T: AsRef<[u8]>> ChunkSource for &[T] {
    fn with_chunk(
        &mut self,
        chunk: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        match self.get(chunk as usize) {
            Some(bytes) => take(bytes.as_ref()).map(|()| true),
            None => Ok(false),
        }
    }
}

/// A [`ChunkSource`] made of a function that copies chunk `n` into a buffer (cleared by the
/// function) and says whether it exists: for sources that cannot lend their bytes, such as
/// a file. The buffer is reused for every chunk.
pub struct CopyingSource<F> {
    read: F,
    buf: Vec<u8>,
}

impl<F: FnMut(u32, &mut Vec<u8>) -> Result<bool>> CopyingSource<F> {
    /// Wraps `read`.
    pub fn new(read: F) -> Self {
        CopyingSource {
            read,
            buf: Vec::new(),
        }
    }
}

impl<F: FnMut(u32, &mut Vec<u8>) -> Result<bool>> ChunkSource for CopyingSource<F> {
    fn with_chunk(
        &mut self,
        chunk: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        if !(self.read)(chunk, &mut self.buf)? {
            return Ok(false);
        }
        take(&self.buf).map(|()| true)
    }
}

/// A [`ChunkSink`] writing one snapshot's chunks into a [`ChunkStore`].
pub struct StoreSink<'a, S: ChunkStore + ?Sized> {
    store: &'a mut S,
    key: SnapshotKey,
}

impl<'a, S: ChunkStore + ?Sized> StoreSink<'a, S> {
    /// A sink for the snapshot `key`.
    pub fn new(store: &'a mut S, key: SnapshotKey) -> Self {
        StoreSink { store, key }
    }
}

impl<S: ChunkStore + ?Sized> ChunkSink for StoreSink<'_, S> {
    fn put_chunk(&mut self, chunk: u32, bytes: &[u8]) -> Result<()> {
        self.store.put_chunk(self.key, chunk, bytes)
    }
}

/// A [`ChunkSource`] reading one snapshot's chunks from a [`ChunkStore`].
pub struct StoreSource<'a, S: ChunkStore + ?Sized> {
    store: &'a S,
    key: SnapshotKey,
}

impl<'a, S: ChunkStore + ?Sized> StoreSource<'a, S> {
    /// A source for the snapshot `key`.
    pub fn new(store: &'a S, key: SnapshotKey) -> Self {
        StoreSource { store, key }
    }
}

impl<S: ChunkStore + ?Sized> ChunkSource for StoreSource<'_, S> {
    fn with_chunk(
        &mut self,
        chunk: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        self.store.with_chunk(self.key, chunk, take)
    }
}

/// An in-memory [`ChunkStore`], for tests. Cloning it is a cheap way to model "what survived
/// a restart". It can be told to fail writes, to test how callers handle store errors.
#[derive(Clone, Debug, Default)]
pub struct MemChunkStore {
    manifests: BTreeMap<SnapshotKey, Vec<u8>>,
    chunks: BTreeMap<(SnapshotKey, u32), Vec<u8>>,
    transfers: BTreeMap<SnapshotKey, Vec<u8>>,
    received: BTreeMap<SnapshotKey, BTreeSet<u32>>,
    fail_writes: bool,
}

/// The error [`MemChunkStore`] reports when told to fail.
#[derive(Debug, thiserror::Error)]
#[error("injected write failure")]
pub struct InjectedFailure;

impl MemChunkStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later write fail (or succeed again) with [`InjectedFailure`].
    pub fn set_fail_writes(&mut self, fail: bool) {
        self.fail_writes = fail;
    }

    /// Number of chunks stored, over all snapshots.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Anchor indices of the complete snapshots of `group`, ascending.
    pub fn anchors(&self, group: crate::key::GroupId) -> Vec<u64> {
        anchors_of(&self.manifests, group)
    }

    /// Anchor indices of the unfinished transfers of `group`, ascending.
    pub fn transfer_anchors(&self, group: crate::key::GroupId) -> Vec<u64> {
        anchors_of(&self.transfers, group)
    }

    /// Removes only the manifest of a complete snapshot (its chunks stay).
    pub fn remove_manifest(&mut self, key: SnapshotKey) {
        self.manifests.remove(&key);
    }

    /// Overwrites a stored chunk with arbitrary bytes (to model disk corruption in tests).
    pub fn corrupt_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: Vec<u8>) {
        self.chunks.insert((key, chunk), bytes);
    }

    fn check_write(&self, op: StoreOp, key: SnapshotKey, chunk: Option<u32>) -> Result<()> {
        if self.fail_writes {
            return Err(SnapshotError::store(op, key, chunk, InjectedFailure));
        }
        Ok(())
    }
}

/// The anchor indices of `group`'s records in `records`, ascending.
fn anchors_of(records: &BTreeMap<SnapshotKey, Vec<u8>>, group: crate::key::GroupId) -> Vec<u64> {
    records
        .keys()
        .filter(|k| k.group == group)
        .map(|k| k.index)
        .collect()
}

impl ChunkStore for MemChunkStore {
    fn put_manifest(&mut self, key: SnapshotKey, record: &[u8]) -> Result<()> {
        self.check_write(StoreOp::PutManifest, key, None)?;
        self.manifests.insert(key, record.to_vec());
        Ok(())
    }

    fn manifest(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>> {
        Ok(self.manifests.get(&key).cloned())
    }

    fn put_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()> {
        self.check_write(StoreOp::PutChunk, key, Some(chunk))?;
        self.chunks.insert((key, chunk), bytes.to_vec());
        Ok(())
    }

    fn with_chunk(
        &self,
        key: SnapshotKey,
        chunk: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        match self.chunks.get(&(key, chunk)) {
            Some(bytes) => take(bytes).map(|()| true),
            None => Ok(false),
        }
    }

    fn begin_transfer(&mut self, key: SnapshotKey, manifest_record: &[u8]) -> Result<()> {
        self.check_write(StoreOp::BeginTransfer, key, None)?;
        self.transfers.insert(key, manifest_record.to_vec());
        Ok(())
    }

    fn transfer(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>> {
        Ok(self.transfers.get(&key).cloned())
    }

    fn put_received_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()> {
        self.check_write(StoreOp::PutReceivedChunk, key, Some(chunk))?;
        self.chunks.insert((key, chunk), bytes.to_vec());
        self.received.entry(key).or_default().insert(chunk);
        Ok(())
    }

    fn mark_received(&mut self, key: SnapshotKey, chunk: u32) -> Result<()> {
        self.check_write(StoreOp::PutReceivedChunk, key, Some(chunk))?;
        self.received.entry(key).or_default().insert(chunk);
        Ok(())
    }

    fn received_chunks(&self, key: SnapshotKey) -> Result<Vec<u32>> {
        Ok(self
            .received
            .get(&key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default())
    }

    fn complete_transfer(&mut self, key: SnapshotKey, manifest_record: &[u8]) -> Result<()> {
        self.check_write(StoreOp::CompleteTransfer, key, None)?;
        self.manifests.insert(key, manifest_record.to_vec());
        self.transfers.remove(&key);
        self.received.remove(&key);
        Ok(())
    }

    fn delete_snapshot(&mut self, key: SnapshotKey) -> Result<()> {
        self.check_write(StoreOp::DeleteSnapshot, key, None)?;
        self.manifests.remove(&key);
        self.transfers.remove(&key);
        self.received.remove(&key);
        self.chunks.retain(|(k, _), _| *k != key);
        Ok(())
    }
}
