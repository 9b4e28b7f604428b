//! `SnapshotStore`: one group's snapshots at the byte level: manifests in `snapshot_meta`,
//! compressed chunks in `snapshots`, resume state of transfers in `transfers`.
//!
//! This crate does not know the snapshot format (that is `tessera-snapshots`); it stores
//! opaque manifest, chunk and resume-state bytes under the keys of DESIGN.md, each wrapped
//! in a [`crate::record`] envelope whose crc covers the key.
//!
//! Durability: a received chunk is written without fsync. RocksDB's write-ahead log is in
//! the OS page cache once `put_chunk` returns, so the chunk survives the process being
//! killed; after a power loss the last chunks may be missing, and the transfer simply asks
//! for them again (the set of present chunks is read back from the store, never assumed).
//! Manifests (the "snapshot is complete" record) are written with fsync.
//!
//! Chunk writes pace themselves (`bulk_writes`): a cut or a transfer never makes RocksDB
//! stop the node's log writes.
//!
//! A transfer in progress is a record in `transfers` under group ‖ anchor (40 bytes) plus
//! one empty *mark* per verified chunk under group ‖ anchor ‖ chunk (48 bytes), written in
//! the same batch as the chunk, so after a crash a chunk and its mark exist together or not
//! at all. Chunks written with [`SnapshotStore::put_chunk`] (a snapshot cut locally) carry no
//! mark.

use crate::error::{hex, Corruption, Error};
use crate::keys::{chunk_key, snapshot_key};
use crate::store::{ColumnFamily, Store};
use crate::{record, GroupId};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

/// The snapshots of one group. Cheap to create; clone the `Store` freely.
#[derive(Clone)]
pub struct SnapshotStore {
    store: Store,
    group: GroupId,
}

impl Store {
    /// The snapshot store of `group`.
    pub fn snapshot_store(&self, group: GroupId) -> SnapshotStore {
        SnapshotStore {
            store: self.clone(),
            group,
        }
    }
}

impl SnapshotStore {
    /// The group.
    pub fn group(&self) -> &GroupId {
        &self.group
    }

    fn write(&self, batch: WriteBatch, sync: bool, cf: &'static str) -> Result<(), Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.store
            .db()
            .write_opt(batch, &opts)
            .map_err(|source| Error::Db {
                op: "write batch",
                cf,
                source,
            })
    }

    fn read(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.with_record(cf, key, <[u8]>::to_vec)
    }

    /// Calls `f` with the payload of the record at `key`, checked against its crc and lent
    /// from RocksDB's memory without a copy; `Ok(None)` if absent.
    fn with_record<R>(
        &self,
        cf: ColumnFamily,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, Error> {
        self.store
            .with_raw(cf, key, |raw| record::decode(cf.name(), key, raw).map(f))?
            .transpose()
    }

    /// Anchors (in `family`, keyed group ‖ anchor) in ascending order.
    fn anchors_in(&self, family: ColumnFamily) -> Result<Vec<u64>, Error> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(snapshot_key(&self.group, u64::MAX).to_vec());
        let start = snapshot_key(&self.group, 0);
        let iter = self.store.db().iterator_cf_opt(
            self.store.cf(family),
            opts,
            IteratorMode::From(&start[..], Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, _) = item.map_err(|source| Error::Db {
                op: "iterate",
                cf: family.name(),
                source,
            })?;
            if family == ColumnFamily::Transfers && key.len() == 48 {
                continue; // a received-chunk mark, not a transfer record
            }
            let anchor = key
                .get(32..40)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .filter(|_| key.len() == 40)
                .ok_or_else(|| Error::Corruption {
                    cf: family.name(),
                    key: hex(&key),
                    kind: Corruption::Key { len: key.len() },
                })?;
            out.push(u64::from_be_bytes(anchor));
        }
        Ok(out)
    }

    /// Stores the manifest of a complete snapshot (synced) and drops any transfer record
    /// for the same anchor, in one batch.
    pub fn put_manifest(&self, anchor: u64, manifest: &[u8]) -> Result<(), Error> {
        let key = snapshot_key(&self.group, anchor);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.store.cf(ColumnFamily::SnapshotMeta),
            key,
            record::encode(&key, manifest),
        );
        self.drop_transfer(&mut batch, anchor);
        self.write(batch, true, "snapshot_meta")
    }

    /// Adds to `batch` the removal of the transfer record and marks of `anchor`.
    fn drop_transfer(&self, batch: &mut WriteBatch, anchor: u64) {
        let transfers = self.store.cf(ColumnFamily::Transfers);
        batch.delete_cf(transfers, snapshot_key(&self.group, anchor));
        batch.delete_range_cf(
            transfers,
            chunk_key(&self.group, anchor, 0),
            chunk_key(&self.group, anchor, u64::MAX),
        );
    }

    /// Stores a received, verified chunk and its mark in one batch (no fsync). Waits first
    /// while RocksDB has no room for bulk bytes (see `bulk_writes`): call it from a
    /// background thread.
    pub fn put_received_chunk(&self, anchor: u64, chunk: u64, bytes: &[u8]) -> Result<(), Error> {
        self.store.make_room(ColumnFamily::Snapshots);
        let key = chunk_key(&self.group, anchor, chunk);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.store.cf(ColumnFamily::Snapshots),
            key,
            record::encode(&key, bytes),
        );
        batch.put_cf(
            self.store.cf(ColumnFamily::Transfers),
            key,
            record::encode(&key, &[]),
        );
        self.write(batch, false, "snapshots")
    }

    /// Marks a chunk already stored for `anchor` as received, without writing it again
    /// (no fsync, like [`SnapshotStore::put_received_chunk`]).
    pub fn mark_received(&self, anchor: u64, chunk: u64) -> Result<(), Error> {
        let key = chunk_key(&self.group, anchor, chunk);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.store.cf(ColumnFamily::Transfers),
            key,
            record::encode(&key, &[]),
        );
        self.write(batch, false, "transfers")
    }

    /// Numbers of the chunks marked received for the transfer at `anchor`, ascending.
    pub fn received_chunks(&self, anchor: u64) -> Result<Vec<u64>, Error> {
        self.chunk_numbers(ColumnFamily::Transfers, anchor)
    }

    /// The manifest of the snapshot at `anchor`, if complete.
    pub fn manifest(&self, anchor: u64) -> Result<Option<Vec<u8>>, Error> {
        self.read(
            ColumnFamily::SnapshotMeta,
            &snapshot_key(&self.group, anchor),
        )
    }

    /// Removes (synced) only the manifest of the snapshot at `anchor`: it is no longer
    /// complete (its chunks stay, e.g. to be marked received by a repairing transfer).
    pub fn delete_manifest(&self, anchor: u64) -> Result<(), Error> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(
            self.store.cf(ColumnFamily::SnapshotMeta),
            snapshot_key(&self.group, anchor),
        );
        self.write(batch, true, "snapshot_meta")
    }

    /// Anchors of complete snapshots (with a manifest), ascending.
    pub fn anchors(&self) -> Result<Vec<u64>, Error> {
        self.anchors_in(ColumnFamily::SnapshotMeta)
    }

    /// Stores one compressed chunk (no fsync; see the module docs). Paced like
    /// [`SnapshotStore::put_received_chunk`].
    pub fn put_chunk(&self, anchor: u64, chunk: u64, bytes: &[u8]) -> Result<(), Error> {
        self.store.make_room(ColumnFamily::Snapshots);
        let key = chunk_key(&self.group, anchor, chunk);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.store.cf(ColumnFamily::Snapshots),
            key,
            record::encode(&key, bytes),
        );
        self.write(batch, false, "snapshots")
    }

    /// One stored chunk, checked against its record crc.
    pub fn chunk(&self, anchor: u64, chunk: u64) -> Result<Option<Vec<u8>>, Error> {
        self.with_chunk(anchor, chunk, <[u8]>::to_vec)
    }

    /// Calls `f` with one stored chunk, checked against its record crc and lent from
    /// RocksDB's memory without a copy; `Ok(None)` if absent.
    pub fn with_chunk<R>(
        &self,
        anchor: u64,
        chunk: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, Error> {
        self.with_record(
            ColumnFamily::Snapshots,
            &chunk_key(&self.group, anchor, chunk),
            f,
        )
    }

    /// Numbers of the chunks stored for `anchor`, ascending. Reads keys only; a chunk
    /// whose value is damaged is listed and fails when read.
    pub fn chunks_present(&self, anchor: u64) -> Result<Vec<u64>, Error> {
        self.chunk_numbers(ColumnFamily::Snapshots, anchor)
    }

    /// Chunk numbers under group ‖ anchor in a family with 48-byte chunk keys.
    fn chunk_numbers(&self, family: ColumnFamily, anchor: u64) -> Result<Vec<u64>, Error> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(chunk_key(&self.group, anchor, u64::MAX).to_vec());
        let start = chunk_key(&self.group, anchor, 0);
        let iter = self.store.db().iterator_cf_opt(
            self.store.cf(family),
            opts,
            IteratorMode::From(&start[..], Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, _) = item.map_err(|source| Error::Db {
                op: "iterate",
                cf: family.name(),
                source,
            })?;
            let number = key
                .get(40..48)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .filter(|_| key.len() == 48)
                .ok_or_else(|| Error::Corruption {
                    cf: family.name(),
                    key: hex(&key),
                    kind: Corruption::Key { len: key.len() },
                })?;
            out.push(u64::from_be_bytes(number));
        }
        Ok(out)
    }

    /// Records (synced) that a transfer of the snapshot at `anchor` is in progress, with
    /// its resume state (typically the manifest being fetched).
    pub fn put_transfer(&self, anchor: u64, state: &[u8]) -> Result<(), Error> {
        let key = snapshot_key(&self.group, anchor);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.store.cf(ColumnFamily::Transfers),
            key,
            record::encode(&key, state),
        );
        self.write(batch, true, "transfers")
    }

    /// The resume state of the transfer at `anchor`, if one is in progress.
    pub fn transfer(&self, anchor: u64) -> Result<Option<Vec<u8>>, Error> {
        self.read(ColumnFamily::Transfers, &snapshot_key(&self.group, anchor))
    }

    /// Anchors of transfers in progress, ascending.
    pub fn transfers(&self) -> Result<Vec<u64>, Error> {
        self.anchors_in(ColumnFamily::Transfers)
    }

    /// Deletes (synced) the snapshot at `anchor`: chunks, manifest and transfer record.
    pub fn delete(&self, anchor: u64) -> Result<(), Error> {
        let key = snapshot_key(&self.group, anchor);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.store.cf(ColumnFamily::Snapshots),
            chunk_key(&self.group, anchor, 0),
            chunk_key(&self.group, anchor, u64::MAX),
        );
        batch.delete_cf(self.store.cf(ColumnFamily::SnapshotMeta), key);
        self.drop_transfer(&mut batch, anchor);
        self.write(batch, true, "snapshots")
    }
}
