//! Consensus groups: the builder and handle applications use, the worker that drives one
//! group, the consensus core, the state machine traits, log storage and log-replay sync.

mod bonds;
mod builder;
mod command;
mod config;
pub mod formation;
mod group;
mod key;
mod local_storage;
pub mod machine;
pub mod metrics;
/// The consensus core (the `tessera-raft` crate).
pub use tessera_raft as raft;
mod recovery;
pub mod replay;
pub mod restore;
pub mod roster;
pub mod snapshot;
mod stop;
mod sync_context;
pub mod wire;
mod worker;

pub use builder::{tick_for, AutoStorage, GroupBuilder, JoinError, MemoryStorage, StorageChoice};
pub use command::Command;
pub use config::{ConfigError, ConsensusConfig, ConsensusConfigBuilder};
pub use group::{Group, GroupError, GroupStatus, When, MAX_COMMAND_BYTES, REQUEST_QUEUE};
pub use key::{GroupIdInputs, GroupKey};
pub use local_storage::LocalStorage;
pub use machine::{Consistency, NoOp};
pub use metrics::GroupMetrics;
pub use recovery::RecoveryError;
pub use replay::LogReplaySync;
pub use restore::{RestoreError, StartFrom};
pub use roster::{MemberRole, Roster, RosterEntry};
pub use stop::StopCause;
pub use tessera_raft::{
    Cursor, HardState, InMemoryLogStore, Index, Storage, StorageError, SyncReport, Term,
};
/// The durable log store: one group's log in the node's RocksDB (`tessera-storage`),
/// implementing the core's [`Storage`].
pub use tessera_storage::GroupLog;
pub use worker::WorkerError;
