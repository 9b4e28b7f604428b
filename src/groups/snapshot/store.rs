//! `SnapshotStore`: the one handle a group's snapshot code holds on where snapshots live —
//! the node's RocksDB when the network has a data directory, memory otherwise. Cloning is
//! cheap and clones share the same storage, so background threads (cutting, verifying,
//! decoding) take a clone.

use super::{lock, RocksChunkStore};
use crate::GroupId;
use std::sync::{Arc, Mutex};
use tessera_snapshots::{ChunkStore, MemChunkStore, Result, SnapshotError, SnapshotKey, StoreOp};

/// Where one node keeps its snapshots.
#[derive(Clone)]
pub enum SnapshotStore {
    /// The node's RocksDB (`snapshots`, `snapshot_meta`, `transfers`).
    Rocks(RocksChunkStore),
    /// Memory, for groups without a data directory: lost on restart.
    Memory(Arc<Mutex<MemChunkStore>>),
}

impl Default for SnapshotStore {
    fn default() -> Self {
        SnapshotStore::memory()
    }
}

impl SnapshotStore {
    /// An empty in-memory store.
    pub fn memory() -> Self {
        SnapshotStore::Memory(Arc::new(Mutex::new(MemChunkStore::new())))
    }

    /// Whether snapshots survive a restart.
    pub fn is_durable(&self) -> bool {
        matches!(self, SnapshotStore::Rocks(_))
    }

    /// Anchor indices of the complete snapshots of `group`, ascending.
    pub fn anchors(&self, group: GroupId) -> Result<Vec<u64>> {
        match self {
            SnapshotStore::Rocks(r) => r
                .store()
                .snapshot_store(*group.as_bytes())
                .anchors()
                .map_err(|e| list_error(group, e)),
            SnapshotStore::Memory(m) => Ok(lock(m).anchors(key_group(group))),
        }
    }

    /// Anchor indices of the unfinished transfers of `group`, ascending.
    pub fn transfers(&self, group: GroupId) -> Result<Vec<u64>> {
        match self {
            SnapshotStore::Rocks(r) => r
                .store()
                .snapshot_store(*group.as_bytes())
                .transfers()
                .map_err(|e| list_error(group, e)),
            SnapshotStore::Memory(m) => Ok(lock(m).transfer_anchors(key_group(group))),
        }
    }

    /// Removes only the manifest of a complete snapshot, so nobody installs or serves it
    /// any more (its chunks stay for a repairing transfer to reuse).
    pub fn remove_manifest(&mut self, key: SnapshotKey) -> Result<()> {
        match self {
            SnapshotStore::Rocks(r) => r
                .store()
                .snapshot_store(key.group.0)
                .delete_manifest(key.index)
                .map_err(|e| SnapshotError::store(StoreOp::DeleteSnapshot, key, None, e)),
            SnapshotStore::Memory(m) => {
                lock(m).remove_manifest(key);
                Ok(())
            }
        }
    }

    /// Test hook: overwrites one stored chunk with `bytes` (models disk corruption).
    pub fn corrupt_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()> {
        match self {
            SnapshotStore::Rocks(r) => r.put_chunk(key, chunk, bytes),
            SnapshotStore::Memory(m) => {
                lock(m).corrupt_chunk(key, chunk, bytes.to_vec());
                Ok(())
            }
        }
    }
}

/// The snapshots crate's group id for a group.
pub fn key_group(group: GroupId) -> tessera_snapshots::GroupId {
    tessera_snapshots::GroupId(*group.as_bytes())
}

fn list_error(group: GroupId, e: tessera_storage::Error) -> SnapshotError {
    SnapshotError::store(
        StoreOp::GetManifest,
        SnapshotKey::new(key_group(group), 0),
        None,
        e,
    )
}

/// Runs `$e` with `$s` bound to the store inside `$self`, for `&self` and `&mut self` alike
/// (the memory store is locked for the call).
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            SnapshotStore::Rocks($s) => $e,
            SnapshotStore::Memory(m) => {
                let $s = &mut *lock(m);
                $e
            }
        }
    };
}

impl ChunkStore for SnapshotStore {
    fn put_manifest(&mut self, key: SnapshotKey, record: &[u8]) -> Result<()> {
        each!(self, s => s.put_manifest(key, record))
    }
    fn manifest(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>> {
        each!(self, s => s.manifest(key))
    }
    fn put_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()> {
        each!(self, s => s.put_chunk(key, chunk, bytes))
    }
    fn with_chunk(
        &self,
        key: SnapshotKey,
        chunk: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        each!(self, s => s.with_chunk(key, chunk, take))
    }
    fn begin_transfer(&mut self, key: SnapshotKey, manifest_record: &[u8]) -> Result<()> {
        each!(self, s => s.begin_transfer(key, manifest_record))
    }
    fn transfer(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>> {
        each!(self, s => s.transfer(key))
    }
    fn put_received_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()> {
        each!(self, s => s.put_received_chunk(key, chunk, bytes))
    }
    fn mark_received(&mut self, key: SnapshotKey, chunk: u32) -> Result<()> {
        each!(self, s => s.mark_received(key, chunk))
    }
    fn received_chunks(&self, key: SnapshotKey) -> Result<Vec<u32>> {
        each!(self, s => s.received_chunks(key))
    }
    fn complete_transfer(&mut self, key: SnapshotKey, manifest_record: &[u8]) -> Result<()> {
        each!(self, s => s.complete_transfer(key, manifest_record))
    }
    fn delete_snapshot(&mut self, key: SnapshotKey) -> Result<()> {
        each!(self, s => s.delete_snapshot(key))
    }
}
