//! The durable log store: the core's [`Storage`] trait (in `tessera-raft`, with its
//! in-memory implementation) on RocksDB through `tessera-storage`.

mod durable;

pub use durable::DurableLogStore;
pub use tessera_raft::{HardState, InMemoryLogStore, Storage, StorageError, SyncReport};
