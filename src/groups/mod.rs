//! Consensus groups: log positions, the typed log `Storage` trait and its in-memory and
//! durable implementations.

mod config;
mod log;
pub mod machine;
pub mod raft;
pub mod snapshot;
pub mod storage;

pub use config::{ConfigError, ConsensusConfig, ConsensusConfigBuilder};
pub use log::{Command, Cursor, Index, Term};
pub use storage::{
    DurableLogStore, HardState, InMemoryLogStore, Storage, StorageError, SyncReport,
};
