//! `Store`: the one RocksDB instance of a node data directory and its column families.

use crate::error::Error;
use crate::group_commit::{GroupCommit, SyncCounts};
use crate::group_log::GroupLog;
use crate::keys::{self, FORMAT_KEY, META_KEY_LEN};
use crate::{record, GroupId};
use rocksdb::{ColumnFamilyDescriptor, DBCompressionType, Options, DB};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// The data directory format generation this build writes and reads. Bumped when a key
/// layout or record payload changes incompatibly. 2: configuration entries and snapshot
/// headers carry the group's cluster id.
pub const DATA_FORMAT: u32 = 2;

/// The column families of a tessera data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnFamily {
    /// Raft log entries.
    Log,
    /// Hard state, log bounds, membership, applied position; the store's format record.
    Meta,
    /// Compressed snapshot chunks.
    Snapshots,
    /// Snapshot manifests.
    SnapshotMeta,
    /// Resume state of snapshot transfers in progress.
    Transfers,
}

impl ColumnFamily {
    /// Every family, in creation order.
    pub const ALL: [ColumnFamily; 5] = [
        ColumnFamily::Log,
        ColumnFamily::Meta,
        ColumnFamily::Snapshots,
        ColumnFamily::SnapshotMeta,
        ColumnFamily::Transfers,
    ];

    /// The family's name in RocksDB.
    pub const fn name(self) -> &'static str {
        match self {
            ColumnFamily::Log => "log",
            ColumnFamily::Meta => "meta",
            ColumnFamily::Snapshots => "snapshots",
            ColumnFamily::SnapshotMeta => "snapshot_meta",
            ColumnFamily::Transfers => "transfers",
        }
    }
}

/// One node's RocksDB instance. Cheap to clone; many groups share it.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    path: PathBuf,
    read_only: bool,
    /// Shared by every group of the node: one fsync per round for all of them (`None`
    /// for a read-only store).
    commits: Option<Arc<GroupCommit>>,
    /// Microseconds bulk writes waited for room so far (`bulk_writes`).
    pub(crate) bulk_waited_us: Arc<AtomicU64>,
}

/// Bound on the write-ahead log files kept (256 MiB).
const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;

/// Write-ahead log files RocksDB keeps for reuse once obsolete, instead of deleting them
/// and creating new ones. An fdatasync of an appended file must also write the inode
/// (its size changed): a second synchronous disk write per sync. A reused file is
/// overwritten in place, its size does not change, and the sync writes the data alone.
/// Measured at 64 connections once the logs were reused (three nodes on one disk, two
/// alternating pairs after 60 s of load): disk writes per sync 2.92-2.98 -> 2.23-2.77,
/// syncer CPU per sync 108-132 -> 89-104 µs, writes/s 149k-204k -> 205k-218k per 10 s.
/// Two files did less in one run (2.66, then 2.94 in its second round).
/// Records in a reused file carry their log number, so recovery stops where this use of
/// the file ends (RocksDB turns reuse off for the recovery modes that cannot tell that
/// from damage; ours, point-in-time, can). Costs the disk space of these files, each up
/// to a memtable's worth of log (64 MiB by default): up to 256 MiB more per node.
const RECYCLED_WAL_FILES: usize = 4;

/// Memtable size of the `snapshots` family (16 MiB instead of RocksDB's 64 MiB): chunks
/// are written once in bulk and rarely read back soon, so big memtables only add to the
/// memory of a node receiving or cutting a snapshot.
const SNAPSHOT_WRITE_BUFFER: usize = 16 << 20;

fn family_options(cf: ColumnFamily) -> Options {
    let mut opts = Options::default();
    // Log payloads are small and carry their own crc; snapshot chunks are zstd already.
    opts.set_compression_type(DBCompressionType::None);
    if cf == ColumnFamily::Snapshots {
        opts.set_write_buffer_size(SNAPSHOT_WRITE_BUFFER);
    }
    opts
}

impl Store {
    /// Opens the data directory at `path` for reading and writing, creating it when it
    /// does not exist. A directory holding another format generation is refused.
    pub fn open(path: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A WAL file is kept until every column family's memtable covering it is flushed;
        // a family written rarely (meta) would pin gigabytes of WAL behind snapshot and
        // log traffic. Past this total RocksDB flushes the families holding the oldest WAL.
        opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        opts.set_recycle_log_file_num(RECYCLED_WAL_FILES);
        let families = ColumnFamily::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), family_options(*cf)));
        let db = DB::open_cf_descriptors(&opts, path, families).map_err(|source| Error::Db {
            op: "open",
            cf: "db",
            source,
        })?;
        let db = Arc::new(db);
        let commits = GroupCommit::start(db.clone()).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store {
            db,
            path: path.to_path_buf(),
            read_only: false,
            commits: Some(Arc::new(commits)),
            bulk_waited_us: Arc::default(),
        };
        match store.format()? {
            Some(DATA_FORMAT) => {}
            Some(found) => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    found,
                    expected: DATA_FORMAT,
                })
            }
            None => store.put_raw(
                ColumnFamily::Meta,
                FORMAT_KEY,
                &record::encode(FORMAT_KEY, &DATA_FORMAT.to_le_bytes()),
                true,
            )?,
        }
        Ok(store)
    }

    /// Opens an existing data directory read-only, for inspection. Works while a node holds
    /// the directory open (RocksDB takes no lock in this mode) and replays the write-ahead
    /// log, so it sees every synced write. A missing path, a file, or a directory that is
    /// not a tessera data directory is refused, each with its own error.
    pub fn open_read_only(path: &Path) -> Result<Store, Error> {
        let refuse = |reason: String| Error::NotADataDir {
            path: path.to_path_buf(),
            reason,
        };
        // Said apart, so a typo, a file given by mistake and a wrong directory each read
        // as what they are.
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::NotADirectory {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoSuchDirectory {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(refuse(format!("cannot read it: {e}"))),
        }
        if !path.join("CURRENT").is_file() {
            return Err(refuse("no RocksDB database in it (no CURRENT file)".into()));
        }
        let names = DB::list_cf(&Options::default(), path)
            .map_err(|e| refuse(format!("cannot list column families: {e}")))?;
        for cf in ColumnFamily::ALL {
            if !names.iter().any(|n| n == cf.name()) {
                return Err(refuse(format!("column family `{}` is missing", cf.name())));
            }
        }
        let families = ColumnFamily::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), family_options(*cf)));
        let db = DB::open_cf_descriptors_read_only(&Options::default(), path, families, false)
            .map_err(|source| Error::Db {
                op: "open read-only",
                cf: "db",
                source,
            })?;
        let store = Store {
            db: Arc::new(db),
            path: path.to_path_buf(),
            read_only: true,
            commits: None,
            bulk_waited_us: Arc::default(),
        };
        match store.format()? {
            Some(DATA_FORMAT) => Ok(store),
            Some(found) => Err(Error::Format {
                path: path.to_path_buf(),
                found,
                expected: DATA_FORMAT,
            }),
            None => Err(refuse("no tessera format record".into())),
        }
    }

    fn format(&self) -> Result<Option<u32>, Error> {
        let Some(value) = self.get_raw(ColumnFamily::Meta, FORMAT_KEY)? else {
            return Ok(None);
        };
        let payload = record::decode("meta", FORMAT_KEY, &value)?;
        let bytes: [u8; 4] = payload.try_into().map_err(|_| Error::Corruption {
            cf: "meta",
            key: crate::error::hex(FORMAT_KEY),
            kind: crate::Corruption::PayloadLength {
                len: payload.len(),
                expected: "4 (format)",
            },
        })?;
        Ok(Some(u32::from_le_bytes(bytes)))
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Opens (loading bounds and hard state) the log of `group`. Open each group's log
    /// once: two live `GroupLog`s of one group would overwrite each other's bounds.
    pub fn group_log(&self, group: GroupId) -> Result<GroupLog, Error> {
        GroupLog::open(self.clone(), group)
    }

    /// Every group with records in `meta`, in byte order.
    pub fn groups(&self) -> Result<Vec<GroupId>, Error> {
        let mut groups = BTreeSet::new();
        for item in self
            .db
            .iterator_cf(self.cf(ColumnFamily::Meta), rocksdb::IteratorMode::Start)
        {
            let (key, _) = item.map_err(|source| Error::Db {
                op: "iterate",
                cf: "meta",
                source,
            })?;
            if key.len() == META_KEY_LEN {
                let mut group = [0u8; 32];
                group.copy_from_slice(&key[..32]);
                groups.insert(group);
            }
        }
        Ok(groups.into_iter().collect())
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn cf(&self, cf: ColumnFamily) -> &rocksdb::ColumnFamily {
        // Every family in ALL is created or verified at open, so the handle exists.
        self.db
            .cf_handle(cf.name())
            .unwrap_or_else(|| unreachable!("column family {} opened with the store", cf.name()))
    }

    /// Reads one raw value (a record envelope, not yet checked).
    pub fn get_raw(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.with_raw(cf, key, <[u8]>::to_vec)
    }

    /// Calls `f` with one raw value (a record envelope, not yet checked) pinned in RocksDB's
    /// memory, without copying it; `Ok(None)` if absent.
    pub fn with_raw<R>(
        &self,
        cf: ColumnFamily,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, Error> {
        let pinned = self
            .db
            .get_pinned_cf(self.cf(cf), key)
            .map_err(|source| Error::Db {
                op: "get",
                cf: cf.name(),
                source,
            })?;
        Ok(pinned.map(|value| f(&value)))
    }

    /// Writes one raw value, synced or not. For tests and tools; groups write through
    /// `GroupLog::sync`.
    pub fn put_raw(
        &self,
        cf: ColumnFamily,
        key: &[u8],
        value: &[u8],
        sync: bool,
    ) -> Result<(), Error> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(sync);
        self.db
            .put_cf_opt(self.cf(cf), key, value, &opts)
            .map_err(|source| Error::Db {
                op: "put",
                cf: cf.name(),
                source,
            })
    }

    /// Writes every column family's memtable to SST files and waits for it. The
    /// write-ahead log files they covered become obsolete, and reusable (see
    /// [`RECYCLED_WAL_FILES`]). For tools and tests (the crash test reuses log files this
    /// way): RocksDB flushes on its own as memtables fill.
    pub fn flush_memtables(&self) -> Result<(), Error> {
        for cf in ColumnFamily::ALL {
            self.db.flush_cf(self.cf(cf)).map_err(|source| Error::Db {
                op: "flush",
                cf: cf.name(),
                source,
            })?;
        }
        Ok(())
    }

    /// Makes `batch` durable with one WAL sync shared with every other group's batch
    /// queued at the same time (see `group_commit`). Blocks until that sync returned.
    pub fn write_durable(&self, batch: rocksdb::WriteBatch) -> Result<(), Error> {
        self.commits()?
            .commit(batch)
            .map_err(|e| e.into_error(&self.path))
    }

    /// Queues `batch` for the next shared sync without waiting; `done` hears (on the
    /// syncer thread: it must not block) whether it became durable.
    pub fn submit_durable(
        &self,
        batch: rocksdb::WriteBatch,
        done: Box<dyn FnOnce(Result<(), Error>) + Send>,
    ) -> Result<(), Error> {
        let path = self.path.clone();
        self.commits()?.submit(
            batch,
            Box::new(move |result| done(result.map_err(|e| e.into_error(&path)))),
        );
        Ok(())
    }

    fn commits(&self) -> Result<&GroupCommit, Error> {
        self.commits.as_deref().ok_or_else(|| Error::Io {
            path: self.path.clone(),
            source: std::io::Error::other("the store is open read-only"),
        })
    }

    /// How many WAL syncs the node's groups made and how many batches they carried.
    pub fn sync_counts(&self) -> SyncCounts {
        self.commits
            .as_deref()
            .map(GroupCommit::counts)
            .unwrap_or_default()
    }

    /// The `log` key of `index` in `group` (re-exported for tools and tests).
    pub fn log_key(group: &GroupId, index: u64) -> [u8; keys::LOG_KEY_LEN] {
        keys::log_key(group, index)
    }
}
