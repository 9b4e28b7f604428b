//! tessera: a replication engine whose state survives restarts.
//!
//! Consensus groups with pluggable state machines (the mosaik model), made durable: the Raft
//! log, hard state and snapshots live in RocksDB column families (`tessera-storage`),
//! snapshots travel as zstd-compressed checksummed chunks (`tessera-snapshots`).
//!
//! Module map:
//! - [`primitives`]: digests and ids, the one codec, short formatting.
//! - [`data_dir`]: a node's data directory: its lock, key, RocksDB store and peers file.
//! - [`network`]: the iroh endpoint, links, bonds, peer exchange.
//! - [`groups`]: log positions, the typed `Storage` trait and its two implementations.
//! - [`collections`]: durable replicated `Cell`, `Map`, `Vec`, `Set`, `Once`, `PriorityQueue`.
#![deny(missing_docs)]

pub mod collections;
pub mod data_dir;
pub mod groups;
pub mod inspect;
pub mod network;
pub mod primitives;
pub mod store;

pub use primitives::{Digest, GroupId, PeerId, UniqueId};
