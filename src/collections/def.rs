//! Collection definitions: a collection's type and store id named once, as a constant
//! ([`CollectionDef`], [`ReaderDef`], [`WriterDef`]) or as a type declared by
//! [`collection!`](crate::collection) (with [`CollectionReader`], [`CollectionWriter`],
//! [`ReaderOf`], [`WriterOf`]), so every node opens the same collection the same way.
//!
//! As in mosaik, with tessera's departures: opening returns `Result` (joining can fail),
//! a definition holds a name that is hashed when used (blake3 is not `const`, so
//! [`CollectionDef::named`] stores the name and [`CollectionDef::store_id`] derives the
//! id, equal to [`StoreId::named`]), and the declared types also open with a
//! [`CollectionConfig`] (consensus timing, snapshots, this node's ticket), to which the
//! declaration's `require_ticket:` validators are added.

use super::{
    Cell, CollectionConfig, Error, Key, Map, Once, PriorityQueue, Set, StoreId, Value, Vec, When,
    READER, WRITER,
};
use crate::network::Network;
use crate::GroupId;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// What every collection handle offers, so generic code (the `online_*` helpers) can wait
/// for any of them.
pub trait Collection: Send + Sync + 'static {
    /// Waits for the collection's state.
    fn when(&self) -> &When;
    /// The collection's consensus group.
    fn group_id(&self) -> GroupId;
}

/// A collection type that a definition can open: its reader and writer types. Implemented
/// by every collection (either role names the same pair).
pub trait CollectionFromDef {
    /// The reader type.
    type Reader: Collection;
    /// The writer type.
    type Writer: Collection;

    /// Opens a reader of `store_id` with the default settings.
    fn reader(network: &Network, store_id: StoreId) -> Result<Self::Reader, Error> {
        Self::reader_with_config(network, store_id, CollectionConfig::default())
    }

    /// Opens a writer of `store_id` with the default settings.
    fn writer(network: &Network, store_id: StoreId) -> Result<Self::Writer, Error> {
        Self::writer_with_config(network, store_id, CollectionConfig::default())
    }

    /// Opens a reader of `store_id` with `config`.
    fn reader_with_config(
        network: &Network,
        store_id: StoreId,
        config: CollectionConfig,
    ) -> Result<Self::Reader, Error>;

    /// Opens a writer of `store_id` with `config`.
    fn writer_with_config(
        network: &Network,
        store_id: StoreId,
        config: CollectionConfig,
    ) -> Result<Self::Writer, Error>;
}

/// The collection just opened, once it is online.
async fn online<C: Collection>(opened: Result<C, Error>) -> Result<C, Error> {
    let c = opened?;
    c.when().online().await?;
    Ok(c)
}

/// A declared collection that opens readers; implemented by [`collection!`](crate::collection).
pub trait CollectionReader {
    /// The reader type.
    type Reader: Collection;

    /// Opens a reader with `config` (the declaration's ticket validators are added to it).
    fn reader_with_config(
        network: &Network,
        config: CollectionConfig,
    ) -> Result<Self::Reader, Error>;

    /// Opens a reader with the default settings.
    fn reader(network: &Network) -> Result<Self::Reader, Error> {
        Self::reader_with_config(network, CollectionConfig::default())
    }

    /// Opens a reader and waits until it is online.
    fn online_reader(
        network: &Network,
    ) -> impl Future<Output = Result<Self::Reader, Error>> + Send + 'static {
        online(Self::reader(network))
    }

    /// Opens a reader with `config` and waits until it is online.
    fn online_reader_with_config(
        network: &Network,
        config: CollectionConfig,
    ) -> impl Future<Output = Result<Self::Reader, Error>> + Send + 'static {
        online(Self::reader_with_config(network, config))
    }
}

/// A declared collection that opens writers; implemented by [`collection!`](crate::collection).
pub trait CollectionWriter {
    /// The writer type.
    type Writer: Collection;

    /// Opens a writer with `config` (the declaration's ticket validators are added to it).
    fn writer_with_config(
        network: &Network,
        config: CollectionConfig,
    ) -> Result<Self::Writer, Error>;

    /// Opens a writer with the default settings.
    fn writer(network: &Network) -> Result<Self::Writer, Error> {
        Self::writer_with_config(network, CollectionConfig::default())
    }

    /// Opens a writer and waits until it is online.
    fn online_writer(
        network: &Network,
    ) -> impl Future<Output = Result<Self::Writer, Error>> + Send + 'static {
        online(Self::writer(network))
    }

    /// Opens a writer with `config` and waits until it is online.
    fn online_writer_with_config(
        network: &Network,
        config: CollectionConfig,
    ) -> impl Future<Output = Result<Self::Writer, Error>> + Send + 'static {
        online(Self::writer_with_config(network, config))
    }
}

/// The reader type of a declared collection.
pub type ReaderOf<C> = <C as CollectionReader>::Reader;

/// The writer type of a declared collection.
pub type WriterOf<C> = <C as CollectionWriter>::Writer;

/// Where a definition's store id comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Id {
    /// A name, hashed when used (`StoreId::named`).
    Named(&'static str),
    /// An id.
    Id(StoreId),
}

impl Id {
    fn store_id(self) -> StoreId {
        match self {
            Id::Named(name) => StoreId::named(name),
            Id::Id(id) => id,
        }
    }
}

/// Defines the traits every definition type shares (none bound on `C`, which is only a
/// marker) and its `new`/`named`/`store_id`.
macro_rules! definition {
    ($name:ident, $what:literal) => {
        impl<C> $name<C> {
            #[doc = concat!("A ", $what, " of the collection `store_id`.")]
            pub const fn new(store_id: StoreId) -> Self {
                $name {
                    id: Id::Id(store_id),
                    types: PhantomData,
                }
            }

            #[doc = concat!("A ", $what, " of the collection named `name` (the id is [`StoreId::named`]`(name)`).")]
            pub const fn named(name: &'static str) -> Self {
                $name {
                    id: Id::Named(name),
                    types: PhantomData,
                }
            }

            /// The collection's store id.
            pub fn store_id(&self) -> StoreId {
                self.id.store_id()
            }
        }

        impl<C> Clone for $name<C> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<C> Copy for $name<C> {}

        impl<C> PartialEq for $name<C> {
            fn eq(&self, other: &Self) -> bool {
                self.store_id() == other.store_id()
            }
        }

        impl<C> Eq for $name<C> {}

        impl<C> Hash for $name<C> {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.store_id().hash(state)
            }
        }

        impl<C> fmt::Debug for $name<C> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("store_id", &self.store_id())
                    .field("type", &std::any::type_name::<C>())
                    .finish()
            }
        }
    };
}

/// A compile-time definition of a collection: its type `C` and store id. Libraries that
/// own a collection export one so users open it without knowing its id.
pub struct CollectionDef<C> {
    id: Id,
    types: PhantomData<fn(&C)>,
}

definition!(CollectionDef, "definition");

impl<C: CollectionFromDef> CollectionDef<C> {
    /// The definition of the same collection as `reader`.
    pub const fn from_reader(reader: &ReaderDef<C>) -> Self {
        CollectionDef {
            id: reader.id,
            types: PhantomData,
        }
    }

    /// The definition of the same collection as `writer`.
    pub const fn from_writer(writer: &WriterDef<C>) -> Self {
        CollectionDef {
            id: writer.id,
            types: PhantomData,
        }
    }

    /// Its reader side only.
    pub const fn as_reader(&self) -> ReaderDef<C> {
        ReaderDef {
            id: self.id,
            types: PhantomData,
        }
    }

    /// Its writer side only.
    pub const fn as_writer(&self) -> WriterDef<C> {
        WriterDef {
            id: self.id,
            types: PhantomData,
        }
    }

    /// Opens a reader with the default settings.
    pub fn reader(&self, network: &Network) -> Result<C::Reader, Error> {
        C::reader(network, self.store_id())
    }

    /// Opens a reader with `config`.
    pub fn reader_with_config(
        &self,
        network: &Network,
        config: impl Into<CollectionConfig>,
    ) -> Result<C::Reader, Error> {
        C::reader_with_config(network, self.store_id(), config.into())
    }

    /// Opens a writer with the default settings.
    pub fn writer(&self, network: &Network) -> Result<C::Writer, Error> {
        C::writer(network, self.store_id())
    }

    /// Opens a writer with `config`.
    pub fn writer_with_config(
        &self,
        network: &Network,
        config: impl Into<CollectionConfig>,
    ) -> Result<C::Writer, Error> {
        C::writer_with_config(network, self.store_id(), config.into())
    }

    /// Opens a reader with `config` and waits until it is online.
    pub fn online_reader(
        &self,
        network: &Network,
        config: impl Into<CollectionConfig>,
    ) -> impl Future<Output = Result<C::Reader, Error>> + Send + 'static {
        online(self.reader_with_config(network, config))
    }

    /// Opens a writer with `config` and waits until it is online.
    pub fn online_writer(
        &self,
        network: &Network,
        config: impl Into<CollectionConfig>,
    ) -> impl Future<Output = Result<C::Writer, Error>> + Send + 'static {
        online(self.writer_with_config(network, config))
    }
}

/// The reader side of a collection definition: what a library exports when others may
/// only read its collection.
pub struct ReaderDef<C> {
    id: Id,
    types: PhantomData<fn(&C)>,
}

definition!(ReaderDef, "reader definition");

impl<C: CollectionFromDef> ReaderDef<C> {
    /// Opens a reader with the default settings.
    pub fn open(&self, network: &Network) -> Result<C::Reader, Error> {
        C::reader(network, self.store_id())
    }

    /// Opens a reader with `config`.
    pub fn open_with_config(
        &self,
        network: &Network,
        config: impl Into<CollectionConfig>,
    ) -> Result<C::Reader, Error> {
        C::reader_with_config(network, self.store_id(), config.into())
    }
}

/// The writer side of a collection definition.
pub struct WriterDef<C> {
    id: Id,
    types: PhantomData<fn(&C)>,
}

definition!(WriterDef, "writer definition");

impl<C: CollectionFromDef> WriterDef<C> {
    /// Opens a writer with the default settings.
    pub fn open(&self, network: &Network) -> Result<C::Writer, Error> {
        C::writer(network, self.store_id())
    }

    /// Opens a writer with `config`.
    pub fn open_with_config(
        &self,
        network: &Network,
        config: impl Into<CollectionConfig>,
    ) -> Result<C::Writer, Error> {
        C::writer_with_config(network, self.store_id(), config.into())
    }
}

/// `Collection` and `CollectionFromDef` for one collection type (either role).
macro_rules! from_def {
    ([$($params:tt)*] $ty:ident <$($args:tt),*>) => {
        impl<$($params)*, const IS_WRITER: bool> Collection for $ty<$($args),*, IS_WRITER> {
            fn when(&self) -> &When {
                self.when()
            }

            fn group_id(&self) -> GroupId {
                self.group_id()
            }
        }

        impl<$($params)*, const IS_WRITER: bool> CollectionFromDef for $ty<$($args),*, IS_WRITER> {
            type Reader = $ty<$($args),*, READER>;
            type Writer = $ty<$($args),*, WRITER>;

            fn reader_with_config(
                network: &Network,
                store_id: StoreId,
                config: CollectionConfig,
            ) -> Result<Self::Reader, Error> {
                <$ty<$($args),*, READER>>::reader_with_config(network, store_id, config)
            }

            fn writer_with_config(
                network: &Network,
                store_id: StoreId,
                config: CollectionConfig,
            ) -> Result<Self::Writer, Error> {
                <$ty<$($args),*, WRITER>>::writer_with_config(network, store_id, config)
            }
        }
    };
}

from_def!([T: Value] Cell<T>);
from_def!([T: Value] Once<T>);
from_def!([K: Key, V: Value] Map<K, V>);
from_def!([T: Key] Set<T>);
from_def!([T: Value] Vec<T>);
from_def!([P: Key, K: Key, V: Value, const CAP: u64] PriorityQueue<P, K, V, CAP>);

/// What [`collection!`](crate::collection) expands to calls; not for direct use.
#[doc(hidden)]
pub mod __macro {
    use super::super::CollectionConfig;
    use crate::network::TicketValidator;
    use std::sync::Arc;

    /// `config` with the declaration's `validators` first, then the caller's.
    pub fn config(
        mut config: CollectionConfig,
        validators: Vec<Arc<dyn TicketValidator>>,
    ) -> CollectionConfig {
        let callers = std::mem::take(&mut config.auth);
        config.auth = validators;
        config.auth.extend(callers);
        config
    }
}

/// Declares a collection: a unit type naming its collection type and store id, which
/// implements [`CollectionReader`] and [`CollectionWriter`] (so [`ReaderOf`] and
/// [`WriterOf`] name its handles).
///
/// ```ignore
/// collection!(pub Prices = tessera::collections::Map<String, u64>, "prices");
/// // Reader only (the writer side is `pub(crate)` inherent functions):
/// collection!(pub reader Feed = tessera::collections::Vec<String>, "feed");
/// // Writer only:
/// collection!(pub writer Jobs = tessera::collections::Set<u64>, "jobs");
/// // Doc comments and attributes; a store id given as an expression (`impl Into<StoreId>`);
/// // ticket validators (part of the group id; every peer must satisfy all of them):
/// collection!(
///     /// Accounts, for members only.
///     pub Accounts = tessera::collections::Map<String, u64>, ACCOUNTS_ID,
///     require_ticket: MemberTickets::new(),
/// );
///
/// let prices: WriterOf<Prices> = Prices::online_writer(&network).await?;
/// let feed = Feed::reader_with_config(&network, config)?;
/// ```
///
/// A string literal is the collection's name: the store id is `StoreId::named(name)`,
/// the same id `Map::writer(&network, "prices")` opens. Unlike mosaik's, the declared type
/// takes no generic parameters.
#[macro_export]
macro_rules! collection {
    (@declare [$($meta:tt)*] $vis:vis $name:ident = $ty:ty, $id:expr, [$($validator:expr),*]) => {
        $($meta)*
        #[derive(Clone, Copy, Debug, Default)]
        $vis struct $name;

        impl $name {
            /// The collection's store id.
            #[allow(dead_code)]
            $vis fn store_id() -> $crate::collections::StoreId {
                $crate::collections::StoreId::from($id)
            }

            /// `config` with the declaration's ticket validators added (first).
            #[allow(dead_code)]
            fn __config(
                config: $crate::collections::CollectionConfig,
            ) -> $crate::collections::CollectionConfig {
                $crate::collections::__macro::config(
                    config,
                    ::std::vec![$(
                        ::std::sync::Arc::new($validator)
                            as ::std::sync::Arc<dyn $crate::network::TicketValidator>
                    ),*],
                )
            }
        }
    };
    (@reader $name:ident = $ty:ty) => {
        impl $crate::collections::CollectionReader for $name {
            type Reader = <$ty as $crate::collections::CollectionFromDef>::Reader;

            fn reader_with_config(
                network: &$crate::network::Network,
                config: $crate::collections::CollectionConfig,
            ) -> ::std::result::Result<Self::Reader, $crate::collections::Error> {
                <$ty as $crate::collections::CollectionFromDef>::reader_with_config(
                    network,
                    $name::store_id(),
                    $name::__config(config),
                )
            }
        }
    };
    (@writer $name:ident = $ty:ty) => {
        impl $crate::collections::CollectionWriter for $name {
            type Writer = <$ty as $crate::collections::CollectionFromDef>::Writer;

            fn writer_with_config(
                network: &$crate::network::Network,
                config: $crate::collections::CollectionConfig,
            ) -> ::std::result::Result<Self::Writer, $crate::collections::Error> {
                <$ty as $crate::collections::CollectionFromDef>::writer_with_config(
                    network,
                    $name::store_id(),
                    $name::__config(config),
                )
            }
        }
    };
    // The side a one-sided declaration does not export, for the declaring crate itself.
    (@reader_inherent $name:ident = $ty:ty) => {
        #[allow(dead_code)]
        impl $name {
            /// Opens a reader (this crate only: the declaration exports the writer side).
            pub(crate) fn reader(
                network: &$crate::network::Network,
            ) -> ::std::result::Result<
                <$ty as $crate::collections::CollectionFromDef>::Reader,
                $crate::collections::Error,
            > {
                $name::reader_with_config(network, $crate::collections::CollectionConfig::default())
            }

            /// Opens a reader with `config` (this crate only).
            pub(crate) fn reader_with_config(
                network: &$crate::network::Network,
                config: $crate::collections::CollectionConfig,
            ) -> ::std::result::Result<
                <$ty as $crate::collections::CollectionFromDef>::Reader,
                $crate::collections::Error,
            > {
                <$ty as $crate::collections::CollectionFromDef>::reader_with_config(
                    network,
                    $name::store_id(),
                    $name::__config(config),
                )
            }
        }
    };
    (@writer_inherent $name:ident = $ty:ty) => {
        #[allow(dead_code)]
        impl $name {
            /// Opens a writer (this crate only: the declaration exports the reader side).
            pub(crate) fn writer(
                network: &$crate::network::Network,
            ) -> ::std::result::Result<
                <$ty as $crate::collections::CollectionFromDef>::Writer,
                $crate::collections::Error,
            > {
                $name::writer_with_config(network, $crate::collections::CollectionConfig::default())
            }

            /// Opens a writer with `config` (this crate only).
            pub(crate) fn writer_with_config(
                network: &$crate::network::Network,
                config: $crate::collections::CollectionConfig,
            ) -> ::std::result::Result<
                <$ty as $crate::collections::CollectionFromDef>::Writer,
                $crate::collections::Error,
            > {
                <$ty as $crate::collections::CollectionFromDef>::writer_with_config(
                    network,
                    $name::store_id(),
                    $name::__config(config),
                )
            }
        }
    };
    // Reader only.
    ($(#[$meta:meta])* $vis:vis reader $name:ident = $ty:ty, $id:expr $(, require_ticket: $validator:expr)* $(,)?) => {
        $crate::collection!(@declare [$(#[$meta])*] $vis $name = $ty, $id, [$($validator),*]);
        $crate::collection!(@reader $name = $ty);
        $crate::collection!(@writer_inherent $name = $ty);
    };
    // Writer only.
    ($(#[$meta:meta])* $vis:vis writer $name:ident = $ty:ty, $id:expr $(, require_ticket: $validator:expr)* $(,)?) => {
        $crate::collection!(@declare [$(#[$meta])*] $vis $name = $ty, $id, [$($validator),*]);
        $crate::collection!(@writer $name = $ty);
        $crate::collection!(@reader_inherent $name = $ty);
    };
    // Both sides.
    ($(#[$meta:meta])* $vis:vis $name:ident = $ty:ty, $id:expr $(, require_ticket: $validator:expr)* $(,)?) => {
        $crate::collection!(@declare [$(#[$meta])*] $vis $name = $ty, $id, [$($validator),*]);
        $crate::collection!(@reader $name = $ty);
        $crate::collection!(@writer $name = $ty);
    };
}
