//! Snapshots in the runtime: `SnapshotSync` (the seed's snapshot-based `StateSync`), the
//! `SnapshotStateMachine` and `Snapshot` traits a state machine implements for it, and the
//! stores the `tessera-snapshots` writer, reader and transfer planner work against.
//!
//! How the pieces meet:
//! - the leader's provider proposes a marker command every N entries or bytes; the worker
//!   applies each marker last in its batch ([`crate::groups::machine::StateSync::is_barrier`])
//!   and tells the provider, which cuts the snapshot from a frozen copy on a background
//!   thread ([`image::cut`]) into the node's RocksDB;
//! - the provider reports `safe_to_prune_prefix` (newest snapshot's anchor minus the tail
//!   kept, never past what a catching-up member pinned: `retention.rs`) and the worker
//!   prunes the log to it;
//! - a member the leader can no longer serve from its log runs a session that pulls the
//!   chunks from every peer holding the snapshot and installs it;
//! - at start, [`crate::groups::machine::StateSync::restore`] loads the newest local
//!   snapshot, so only the log after it is replayed.

pub mod backup;
mod chunk_store;
mod config;
pub mod image;
mod machine;
mod message;
mod provider;
mod retention;
mod session;
mod stats;
mod store;
mod sync;

pub use chunk_store::RocksChunkStore;
pub use config::SnapshotConfig;
pub use machine::{Snapshot, SnapshotRequest, SnapshotStateMachine};
pub use message::{Held, SnapshotMessage};
pub use provider::SnapshotProvider;
pub use retention::{RetentionFigures, Shipped};
pub use session::SnapshotSession;
pub use stats::{HeldSnapshot, SnapshotStats, TransferStatus};
pub use store::{key_group, SnapshotStore};
pub use sync::SnapshotSync;

/// Locks `m`, taking a poisoned lock as is: every critical section here is one assignment,
/// insert or remove, so a panic while holding the lock cannot leave a value half-written.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
