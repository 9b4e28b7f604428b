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
//! - **Definitions**: [`CollectionDef`], [`ReaderDef`], [`WriterDef`] and the
//!   [`collection!`](crate::collection) macro name a collection once, for every node.
//! - **Reopening**: dropping a handle stops the collection's group on this node once its
//!   worker notices; opening the same collection again before that succeeds and joins in
//!   the background when the previous instance has stopped (see `reopen.rs`).
//!
//! Departures from the seed (mosaik 0.3): constructors return `Result` (joining can fail:
//! the same collection already open on the node, a data directory that cannot be read);
//! errors do not carry the written value back; writes resolve once applied on the writing
//! node, and writes whose outcome is decided when they apply (compare-exchange, pop,
//! remove by index, insert into a bounded queue) resolve to that outcome ([`Exchange`],
//! [`Taken`], [`Inserted`]), each convertible into its [`Version`]. README.md, "Coming from
//! mosaik", maps the whole API.

/// The methods every collection delegates to its [`handle::Handle`] (`when`, `version`,
/// `group_id`, `status`, `snapshot_stats`, `shutdown`), written once; `$noun` names the
/// collection in their docs. Used inside each collection's `impl` block.
macro_rules! handle_accessors {
    ($noun:literal) => {
        #[doc = concat!("Waits for the ", $noun, "'s state: online, offline, updated, at a version.")]
        pub fn when(&self) -> &When {
            self.handle.when()
        }

        #[doc = concat!("The applied index this node's ", $noun, " reflects.")]
        pub fn version(&self) -> Version {
            self.handle.version()
        }

        #[doc = concat!("The ", $noun, "'s consensus group.")]
        pub fn group_id(&self) -> crate::GroupId {
            self.handle.group_id()
        }

        /// The group's status on this node: role, leader, commit and applied indices, log
        /// bounds, members.
        pub fn status(&self) -> crate::groups::GroupStatus {
            self.handle.status()
        }

        #[doc = concat!("This node's snapshot counters for the ", $noun, " (cuts, installs, restores, chunks).")]
        pub fn snapshot_stats(&self) -> std::sync::Arc<crate::groups::snapshot::SnapshotStats> {
            self.handle.snapshot_stats()
        }

        #[doc = concat!("Stops the ", $noun, "'s group on this node (for every clone of its handle) and waits.")]
        pub fn shutdown(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
            self.handle.shutdown()
        }
    };
}

/// A collection's constructors (written once): `$writer_ty` gets `writer`,
/// `writer_with_config` and mosaik's aliases `new`, `new_with_config`; the generic type
/// (any role) gets `reader` and `reader_with_config`, which open a reader. `$kind`
/// builds the collection's kind. Used inside an `impl` block of the generic type
/// (`reader`) and of the writer type (`writer`).
macro_rules! opener {
    (reader, $reader_ty:ty, $noun:literal, $kind:expr) => {
        #[doc = concat!("Opens the ", $noun, " `store_id` as a reader (an observer) with the default settings.")]
        pub fn reader(
            network: &crate::network::Network,
            store_id: impl Into<StoreId>,
        ) -> Result<$reader_ty, Error> {
            Self::reader_with_config(network, store_id, CollectionConfig::default())
        }

        #[doc = concat!("Opens the ", $noun, " `store_id` as a reader; every member must use the same `config`.")]
        pub fn reader_with_config(
            network: &crate::network::Network,
            store_id: impl Into<StoreId>,
            config: impl Into<CollectionConfig>,
        ) -> Result<$reader_ty, Error> {
            let handle = Handle::open(network, store_id.into(), config.into(), $kind, false)?;
            Ok(<$reader_ty>::from_handle(handle))
        }
    };
    (writer, $noun:literal, $kind:expr) => {
        #[doc = concat!("Opens the ", $noun, " `store_id` as a writer with the default settings.")]
        pub fn writer(
            network: &crate::network::Network,
            store_id: impl Into<StoreId>,
        ) -> Result<Self, Error> {
            Self::writer_with_config(network, store_id, CollectionConfig::default())
        }

        #[doc = concat!("Opens the ", $noun, " `store_id` as a writer; every member must use the same `config`.")]
        pub fn writer_with_config(
            network: &crate::network::Network,
            store_id: impl Into<StoreId>,
            config: impl Into<CollectionConfig>,
        ) -> Result<Self, Error> {
            let handle = Handle::open(network, store_id.into(), config.into(), $kind, true)?;
            Ok(Self::from_handle(handle))
        }

        /// Alias of `writer` (mosaik's name).
        pub fn new(
            network: &crate::network::Network,
            store_id: impl Into<StoreId>,
        ) -> Result<Self, Error> {
            Self::writer(network, store_id)
        }

        /// Alias of `writer_with_config` (mosaik's name).
        pub fn new_with_config(
            network: &crate::network::Network,
            store_id: impl Into<StoreId>,
            config: impl Into<CollectionConfig>,
        ) -> Result<Self, Error> {
            Self::writer_with_config(network, store_id, config)
        }
    };
}

mod cell;
mod config;
mod def;
mod error;
mod handle;
mod machine;
mod map;
mod once;
mod outcome;
mod primitives;
mod priority_queue;
mod reopen;
mod replies;
mod set;
mod vec;
mod when;

pub use cell::{Cell, CellReader, CellWriter};
pub use config::CollectionConfig;
pub use def::{
    Collection, CollectionDef, CollectionFromDef, CollectionReader, CollectionWriter, ReaderDef,
    ReaderOf, WriterDef, WriterOf,
};
pub use error::Error;
pub use map::{Map, MapReader, MapWriter};
pub use once::{Once, OnceReader, OnceWriter};
pub use outcome::{Exchange, Inserted, Taken};
pub use primitives::{Key, StoreId, Value, Version};
pub use priority_queue::{
    BoundedPriorityQueue, PriorityQueue, PriorityQueueReader, PriorityQueueWriter,
    UnboundedPriorityQueue,
};
pub use set::{Set, SetReader, SetWriter};
pub use vec::{Vec, VecReader, VecWriter};
pub use when::When;

#[doc(hidden)]
pub use def::__macro;

/// The `IS_WRITER` parameter of a writer.
pub const WRITER: bool = true;

/// The `IS_WRITER` parameter of a reader.
pub const READER: bool = false;
