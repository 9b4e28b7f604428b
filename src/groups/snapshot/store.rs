//! `SnapshotStore`: the one handle a group's snapshot code holds on where snapshots live —
//! the node's RocksDB when the network has a data directory, memory otherwise. Cloning is
//! cheap and clones share the same storage, so background threads (cutting, verifying,
//! decoding) take a clone.

use super::RocksChunkStore;
use crate::GroupId;
use std::sync::{Arc, Mutex, MutexGuard};
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

    fn mem(m: &Mutex<MemChunkStore>) -> MutexGuard<'_, MemChunkStore> {
        // A panic while holding the lock cannot leave the map half-written (every method
        // is one insert or remove), so a poisoned lock is still consistent.
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Anchor indices of the complete snapshots of `group`, ascending.
    pub fn anchors(&self, group: GroupId) -> Result<Vec<u64>> {
        match self {
            SnapshotStore::Rocks(r) => r
                .store()
                .snapshot_store(*group.as_bytes())
                .anchors()
                .map_err(|e| list_error(group, e)),
            SnapshotStore::Memory(m) => Ok(Self::mem(m).anchors(key_group(group))),
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
            SnapshotStore::Memory(m) => Ok(Self::mem(m).transfer_anchors(key_group(group))),
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
                Self::mem(m).remove_manifest(key);
                Ok(())
            }
        }
    }

    /// Test hook: overwrites one stored chunk with `bytes` (models disk corruption).
    pub fn corrupt_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()> {
        match self {
            SnapshotStore::Rocks(r) => r.put_chunk(key, chunk, bytes),
            SnapshotStore::Memory(m) => {
                Self::mem(m).corrupt_chunk(key, chunk, bytes.to_vec());
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

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            SnapshotStore::Rocks($s) => $e,
            SnapshotStore::Memory(m) => {
                let mut guard = SnapshotStore::mem(m);
                let $s = &mut *guard;
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
        match self {
            SnapshotStore::Rocks(s) => s.manifest(key),
            SnapshotStore::Memory(m) => Self::mem(m).manifest(key),
        }
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
        match self {
            SnapshotStore::Rocks(s) => s.with_chunk(key, chunk, take),
            SnapshotStore::Memory(m) => Self::mem(m).with_chunk(key, chunk, take),
        }
    }
    fn begin_transfer(&mut self, key: SnapshotKey, manifest_record: &[u8]) -> Result<()> {
        each!(self, s => s.begin_transfer(key, manifest_record))
    }
    fn transfer(&self, key: SnapshotKey) -> Result<Option<Vec<u8>>> {
        match self {
            SnapshotStore::Rocks(s) => s.transfer(key),
            SnapshotStore::Memory(m) => Self::mem(m).transfer(key),
        }
    }
    fn put_received_chunk(&mut self, key: SnapshotKey, chunk: u32, bytes: &[u8]) -> Result<()> {
        each!(self, s => s.put_received_chunk(key, chunk, bytes))
    }
    fn mark_received(&mut self, key: SnapshotKey, chunk: u32) -> Result<()> {
        each!(self, s => s.mark_received(key, chunk))
    }
    fn received_chunks(&self, key: SnapshotKey) -> Result<Vec<u32>> {
        match self {
            SnapshotStore::Rocks(s) => s.received_chunks(key),
            SnapshotStore::Memory(m) => Self::mem(m).received_chunks(key),
        }
    }
    fn complete_transfer(&mut self, key: SnapshotKey, manifest_record: &[u8]) -> Result<()> {
        each!(self, s => s.complete_transfer(key, manifest_record))
    }
    fn delete_snapshot(&mut self, key: SnapshotKey) -> Result<()> {
        each!(self, s => s.delete_snapshot(key))
    }
}
