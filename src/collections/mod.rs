//! Durable replicated collections: [`Cell`], [`Map`], [`Vec`], [`Set`], [`Once`] and
//! [`PriorityQueue`], each opened as a writer or a reader (the seed's collections, made
//! durable).
//!
//! Each collection is one consensus group whose state machine holds an `im` collection.
//! - **Reads** are local and never wait: every node publishes its state on a `watch`
//!   channel after each applied batch (an O(1) clone), and reads borrow it.
//! - **Writes** are replicated commands: they resolve to the [`Version`] (the log index)
//!   that contains them, once applied on the writing node. Another node sees the write
//!   once [`When::reaches`] that version resolves there.
//! - **Determinism**: every operation applies the same way on every node; an operation
//!   that cannot apply (an index out of range, a compare-exchange that does not match, a
//!   second write to a [`Once`]) changes nothing anywhere. Iteration is in key order
//!   (maps, sets) or priority order (queues), never in hash order.
//! - **Durability**: on a network with a data directory the group's log and snapshots
//!   live in the node's RocksDB, so a restarted node reopens the collection with its
//!   state. Snapshots follow [`CollectionConfig::sync`]; a node that joins late, or falls
//!   behind the pruned log, installs a snapshot fetched from its peers.
//! - **Writers and readers**: writers (`LeadershipPreference::Normal`) found the group
//!   (`bootstrap_expect` of them), vote and may lead; readers are observers that follow
//!   the log and never vote, so adding readers never slows writes down.
//! - **Identity**: the group key derives from the kind, the [`StoreId`] and the value
//!   types (or [`CollectionConfig::with_type_tag`]), so different collections never share
//!   a group; the settings are part of the group id, so every member must use the same
//!   [`CollectionConfig`].
//!
//! Departures from the seed: constructors return `Result` (joining can fail: the same
//! collection already open on the node, a data directory that cannot be read), errors do
//! not carry the written value back, and writes whose outcome is decided when they apply
//! (compare-exchange, pop, remove by index, push into a bounded queue) resolve to that
//! outcome, not only to a version.

mod cell;
mod config;
mod error;
mod handle;
mod machine;
mod map;
mod once;
mod outcome;
mod primitives;
mod priority_queue;
mod replies;
mod set;
mod vec;
mod when;

pub use cell::{Cell, CellReader, CellWriter};
pub use config::CollectionConfig;
pub use error::Error;
pub use map::{Map, MapReader, MapWriter};
pub use once::{Once, OnceReader, OnceWriter};
pub use outcome::{Exchange, Taken};
pub use primitives::{Key, StoreId, Value, Version};
pub use priority_queue::{
    Element, ElementId, PriorityQueue, PriorityQueueReader, PriorityQueueWriter, Pushed,
};
pub use set::{Set, SetReader, SetWriter};
pub use vec::{Vec, VecReader, VecWriter};
pub use when::When;

/// The `IS_WRITER` parameter of a writer.
pub const WRITER: bool = true;

/// The `IS_WRITER` parameter of a reader.
pub const READER: bool = false;
