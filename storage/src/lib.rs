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
//! Many groups share the instance; every key starts with the 32-byte group id. This crate
//! stores bytes (a term and an opaque payload): the typed log lives in the root crate.
//!
//! Durability is explicit. A [`GroupLog`] *stages* appends, truncations, prunes and hard
//! state; [`GroupLog::sync`] writes everything staged as one `WriteBatch` with one fsync and
//! only then reports the durable position (group commit). Every value is a versioned record
//! with a crc32 over version, key and payload ([`record`]); a short record, an unknown
//! version or a bad crc is a [`Error::Corruption`] naming the column family and key.
//!
//! ```no_run
//! # fn main() -> Result<(), tessera_storage::Error> {
//! let store = tessera_storage::Store::open(std::path::Path::new("/tmp/node-1"))?;
//! let mut log = store.group_log([7u8; 32])?;
//! log.append(1, b"set x=1".to_vec())?;
//! let report = log.sync()?; // one WriteBatch, one fsync
//! assert_eq!(report.last.index, 1);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod error;
mod group_log;
mod hard_state;
mod inspect;
pub mod keys;
pub mod record;
mod snapshot_store;
mod store;

pub use error::{Corruption, Error};
pub use group_log::{Entry, GroupLog, SyncReport, TAIL_BYTES, TAIL_ENTRIES};
pub use hard_state::{Cursor, HardState, LogBounds};
pub use inspect::{ColumnFamilySummary, GroupSummary, StoreSummary};
pub use snapshot_store::SnapshotStore;
pub use store::{ColumnFamily, Store, DATA_FORMAT};

/// A group's id as storage sees it: 32 opaque bytes, the prefix of all its keys.
pub type GroupId = [u8; 32];
