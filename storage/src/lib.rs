//! tessera-storage: the durable layer under every tessera node.
//!
//! One RocksDB instance per node data directory, with the column families of DESIGN.md:
//!
//! | family          | key                                       | value                         |
//! |-----------------|-------------------------------------------|-------------------------------|
//! | `log`           | group id (32 B) + index (u64 BE)          | entry record: term + payload  |
//! | `meta`          | group id + tag (1 B)                      | hard state, log bounds, ...   |
//! | `snapshots`     | group id + anchor (BE) + chunk no. (BE)   | compressed chunk              |
//! | `snapshot_meta` | group id + anchor (BE)                    | manifest                      |
//! | `transfers`     | group id + anchor (BE)                    | resume state of a transfer    |
//!
//! Many groups share the instance; every key starts with the 32-byte group id. The log's
//! types are the consensus core's (`tessera-raft`: [`Entry`](tessera_raft::Entry),
//! [`Cursor`](tessera_raft::Cursor), [`HardState`](tessera_raft::HardState)), and
//! [`GroupLog`] implements the core's `Storage` trait: a command goes to disk as the bytes
//! the typed layer encoded, behind a header of a few bytes, with no second serializer.
//!
//! Durability is explicit. A [`GroupLog`] *stages* appends, truncations, prunes and hard
//! state; [`GroupLog::sync`] writes everything staged as one `WriteBatch` with one fsync and
//! only then reports the durable position (group commit). Every value is a versioned record
//! with a crc32 over version, key and payload ([`record`]); a short record, an unknown
//! version or a bad crc is a [`Error::Corruption`] naming the column family and key.
//!
//! ```no_run
//! # use tessera_raft::{Index, Payload, Term};
//! # fn main() -> Result<(), tessera_storage::Error> {
//! let store = tessera_storage::Store::open(std::path::Path::new("/tmp/node-1"))?;
//! let mut log = store.group_log([7u8; 32])?;
//! log.append(Payload::Command(b"set x=1".to_vec()), Term(1))?;
//! let report = log.sync()?; // one WriteBatch, one fsync
//! assert_eq!(report.last.index(), Index(1));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod bulk_writes;
mod core_storage;
mod error;
#[cfg(feature = "fault-injection")]
pub mod faults;

/// The environment variable that makes a process built with the `fault-injection` feature
/// look for its data directories' fault files (value `1`; read once; see `faults`).
/// Defined without the feature, so a harness compiled into any build can set it.
pub const DISK_FAULTS_VAR: &str = "TESSERA_DISK_FAULTS";
mod group_commit;
mod group_log;
mod hard_state;
mod inspect;
pub mod keys;
pub mod record;
mod snapshot_store;
mod store;

pub use bulk_writes::WriteStalls;
pub use error::{Corruption, Error};
pub use group_commit::SyncCounts;
pub use group_log::{GroupLog, Repair, TAIL_BYTES, TAIL_ENTRIES};
pub use hard_state::LogBounds;
pub use inspect::{
    ColumnFamilySummary, CursorSummary, GroupSummary, HardStateSummary, LogSummary, StoreSummary,
    StoredChunks,
};
pub use snapshot_store::SnapshotStore;
pub use store::{ColumnFamily, Store, DATA_FORMAT};

/// A group's id as storage sees it: 32 opaque bytes, the prefix of all its keys.
pub type GroupId = [u8; 32];
