//! `RocksChunkStore`: `tessera_snapshots::ChunkStore` over `tessera_storage::SnapshotStore`.
//!
//! The two crates know nothing of each other (DESIGN.md); this adapter is where they meet.
//! Calls map 1:1: manifests to `snapshot_meta`, chunks to `snapshots`, transfer records and
//! received-chunk marks to `transfers` (see `tessera_storage::SnapshotStore` for keys and
//! durability). Every error keeps the storage error as its source and names the call, the
//! snapshot and the chunk.

use tessera_snapshots::{ChunkStore, SnapshotError, SnapshotKey, StoreOp};
use tessera_storage::{SnapshotStore, Store};

/// The chunk store of one node: serves every group's snapshots from its RocksDB.
#[derive(Clone)]
pub struct RocksChunkStore {
    store: Store,
}

impl RocksChunkStore {
    /// A chunk store over `store`.
    pub fn new(store: Store) -> Self {
        RocksChunkStore { store }
    }

    /// The database underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn group(&self, key: SnapshotKey) -> SnapshotStore {
        self.store.snapshot_store(key.group.0)
    }
}

fn fail(
    op: StoreOp,
    key: SnapshotKey,
    chunk: Option<u32>,
) -> impl FnOnce(tessera_storage::Error) -> SnapshotError {
    move |e| SnapshotError::store(op, key, chunk, e)
}

impl ChunkStore for RocksChunkStore {
    fn put_manifest(&mut self, key: SnapshotKey, record: &[u8]) -> Result<(), SnapshotError> {
        self.group(key)
            .put_manifest(key.index, record)
            .map_err(fail(StoreOp::PutManifest, key, None))
    }

    fn manifest(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>, SnapshotError> {
        self.group(key)
            .manifest(key.index)
            .map_err(fail(StoreOp::GetManifest, key, None))
    }

    fn put_chunk(
        &mut self,
        key: SnapshotKey,
        chunk: u32,
        bytes: &[u8],
    ) -> Result<(), SnapshotError> {
        self.group(key)
            .put_chunk(key.index, u64::from(chunk), bytes)
            .map_err(fail(StoreOp::PutChunk, key, Some(chunk)))
    }

    fn with_chunk(
        &self,
        key: SnapshotKey,
        chunk: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<(), SnapshotError>,
    ) -> Result<bool, SnapshotError> {
        match self
            .group(key)
            .with_chunk(key.index, u64::from(chunk), |bytes| take(bytes))
            .map_err(fail(StoreOp::ReadChunk, key, Some(chunk)))?
        {
            Some(taken) => taken.map(|()| true),
            None => Ok(false),
        }
    }

    fn begin_transfer(
        &mut self,
        key: SnapshotKey,
        manifest_record: &[u8],
    ) -> Result<(), SnapshotError> {
        self.group(key)
            .put_transfer(key.index, manifest_record)
            .map_err(fail(StoreOp::BeginTransfer, key, None))
    }

    fn transfer(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>, SnapshotError> {
        self.group(key)
            .transfer(key.index)
            .map_err(fail(StoreOp::GetTransfer, key, None))
    }

    fn put_received_chunk(
        &mut self,
        key: SnapshotKey,
        chunk: u32,
        bytes: &[u8],
    ) -> Result<(), SnapshotError> {
        self.group(key)
            .put_received_chunk(key.index, u64::from(chunk), bytes)
            .map_err(fail(StoreOp::PutReceivedChunk, key, Some(chunk)))
    }

    fn mark_received(&mut self, key: SnapshotKey, chunk: u32) -> Result<(), SnapshotError> {
        self.group(key)
            .mark_received(key.index, u64::from(chunk))
            .map_err(fail(StoreOp::PutReceivedChunk, key, Some(chunk)))
    }

    fn received_chunks(&self, key: SnapshotKey) -> Result<Vec<u32>, SnapshotError> {
        let numbers = self.group(key).received_chunks(key.index).map_err(fail(
            StoreOp::ReceivedChunks,
            key,
            None,
        ))?;
        // Marks are written only for u32 chunk numbers; anything larger is not ours.
        Ok(numbers
            .into_iter()
            .filter_map(|n| u32::try_from(n).ok())
            .collect())
    }

    fn complete_transfer(
        &mut self,
        key: SnapshotKey,
        manifest_record: &[u8],
    ) -> Result<(), SnapshotError> {
        self.group(key)
            .put_manifest(key.index, manifest_record)
            .map_err(fail(StoreOp::CompleteTransfer, key, None))
    }

    fn delete_snapshot(&mut self, key: SnapshotKey) -> Result<(), SnapshotError> {
        self.group(key)
            .delete(key.index)
            .map_err(fail(StoreOp::DeleteSnapshot, key, None))
    }
}
