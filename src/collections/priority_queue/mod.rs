//! `PriorityQueue`: a replicated double-ended priority queue of keyed entries (mosaik's
//! DEPQ), optionally bounded.

mod state;

use super::handle::Handle;
use super::{
    CollectionConfig, Error, Exchange, Inserted, Key, StoreId, Taken, Value, Version, When, READER,
    WRITER,
};
use crate::network::Network;
use state::{QueueKind, QueueOp, QueueReply};
use std::borrow::Borrow;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::RangeBounds;

/// Mutable access to a replicated priority queue; writers may lead its group.
pub type PriorityQueueWriter<P, K, V, const CAP: u64 = { u64::MAX }> =
    PriorityQueue<P, K, V, CAP, WRITER>;

/// Read-only access to a replicated priority queue; readers are observers.
pub type PriorityQueueReader<P, K, V, const CAP: u64 = { u64::MAX }> =
    PriorityQueue<P, K, V, CAP, READER>;

/// A priority queue with no bound on its length.
pub type UnboundedPriorityQueue<P, K, V, const IS_WRITER: bool = WRITER> =
    PriorityQueue<P, K, V, { u64::MAX }, IS_WRITER>;

/// A priority queue of at most `CAP` entries: when an insert makes it longer, the entry
/// with the lowest priority is evicted (see [`PriorityQueue`]).
pub type BoundedPriorityQueue<P, K, V, const CAP: u64, const IS_WRITER: bool = WRITER> =
    PriorityQueue<P, K, V, CAP, IS_WRITER>;

/// A replicated double-ended priority queue: entries of a unique key (`K`), a priority
/// (`P`) and a value (`V`), read by key or from either end.
///
/// **Keys are unique.** Inserting a key that is present replaces its priority and value
/// (an upsert). Reads are local: lookups by key and the ends are O(log n).
///
/// **Order.** Ascending priority; among equal priorities, key order. As in mosaik, that
/// in-bucket order does not flip at the other end: [`get_min`](Self::get_min) is the
/// smallest key of the lowest priority, [`get_max`](Self::get_max) the smallest key of
/// the highest, and [`iter_desc`](Self::iter_desc) walks priorities downwards with each
/// priority's keys in ascending order. (mosaik orders equal priorities by a fixed-seed
/// hash of the keys; tessera by the keys themselves, which every node and every Rust
/// release orders alike.)
///
/// **Bound.** `CAP` (the default `u64::MAX` is unbounded) is the most entries the queue
/// holds. After an insert that makes it longer, the minimum is evicted — the entry just
/// inserted if it ranks lowest — and the insert reports what went
/// ([`Inserted::evicted`]). Every node evicts the same entries. `CAP` is part of the
/// group id: every member must use the same one.
pub struct PriorityQueue<
    P: Key,
    K: Key,
    V: Value,
    const CAP: u64 = { u64::MAX },
    const IS_WRITER: bool = WRITER,
> {
    handle: Handle<QueueKind<P, K, V>>,
}

// Reads, for readers and writers.
impl<P: Key, K: Key, V: Value, const CAP: u64, const IS_WRITER: bool>
    PriorityQueue<P, K, V, CAP, IS_WRITER>
{
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.handle.read(|q| q.len())
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the queue holds (`CAP`; `u64::MAX` when unbounded).
    pub const fn capacity(&self) -> u64 {
        CAP
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.handle.read(|q| q.priority(key).is_some())
    }

    /// The value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.handle.read(|q| q.get(key).map(|(_, v)| v.clone()))
    }

    /// The priority of `key`.
    pub fn get_priority<Q>(&self, key: &Q) -> Option<P>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.handle.read(|q| q.priority(key).cloned())
    }

    /// The entry with the lowest priority (the smallest key among equals).
    pub fn get_min(&self) -> Option<(P, K, V)> {
        self.handle.read(|q| q.min())
    }

    /// The entry with the highest priority (the smallest key among equals).
    pub fn get_max(&self) -> Option<(P, K, V)> {
        self.handle.read(|q| q.max())
    }

    /// The lowest priority.
    pub fn min_priority(&self) -> Option<P> {
        self.handle.read(|q| q.min_priority().cloned())
    }

    /// The highest priority.
    pub fn max_priority(&self) -> Option<P> {
        self.handle.read(|q| q.max_priority().cloned())
    }

    /// The entries in ascending order, as of now (alias of [`Self::iter_asc`]).
    pub fn iter(&self) -> impl Iterator<Item = (P, K, V)> + Send + 'static {
        self.iter_asc()
    }

    /// The entries in ascending order, as of now.
    pub fn iter_asc(&self) -> impl Iterator<Item = (P, K, V)> + Send + 'static {
        self.handle.state().ascending()
    }

    /// The entries by descending priority (keys ascending within a priority), as of now.
    pub fn iter_desc(&self) -> impl Iterator<Item = (P, K, V)> + Send + 'static {
        self.handle.read(|q| q.descending()).into_iter()
    }

    handle_accessors!("queue");

    /// Opens the queue `store_id` as a reader with the default settings.
    pub fn reader(
        network: &Network,
        store_id: impl Into<StoreId>,
    ) -> Result<PriorityQueueReader<P, K, V, CAP>, Error> {
        Self::reader_with_config(network, store_id, CollectionConfig::default())
    }

    /// Opens the queue `store_id` as a reader; every member must use the same `CAP` and
    /// `config`.
    pub fn reader_with_config(
        network: &Network,
        store_id: impl Into<StoreId>,
        config: impl Into<CollectionConfig>,
    ) -> Result<PriorityQueueReader<P, K, V, CAP>, Error> {
        open(network, store_id.into(), config.into())
    }
}

fn open<P: Key, K: Key, V: Value, const CAP: u64, const W: bool>(
    network: &Network,
    store_id: StoreId,
    config: CollectionConfig,
) -> Result<PriorityQueue<P, K, V, CAP, W>, Error> {
    if CAP == 0 {
        return Err(Error::Config {
            kind: "priority_queue",
            reason: format!("the capacity of priority queue {store_id} must be at least 1"),
        });
    }
    let kind = QueueKind {
        capacity: CAP,
        types: PhantomData,
    };
    let handle = Handle::open(network, store_id, config, kind, W)?;
    Ok(PriorityQueue { handle })
}

impl<P: Key, K: Key, V: Value, const CAP: u64> PriorityQueueWriter<P, K, V, CAP> {
    /// Opens the queue `store_id` as a writer with the default settings.
    pub fn writer(network: &Network, store_id: impl Into<StoreId>) -> Result<Self, Error> {
        Self::writer_with_config(network, store_id, CollectionConfig::default())
    }

    /// Opens the queue `store_id` as a writer; every member must use the same `CAP` and
    /// `config`.
    pub fn writer_with_config(
        network: &Network,
        store_id: impl Into<StoreId>,
        config: impl Into<CollectionConfig>,
    ) -> Result<Self, Error> {
        open(network, store_id.into(), config.into())
    }

    /// Alias of [`Self::writer`].
    pub fn new(network: &Network, store_id: impl Into<StoreId>) -> Result<Self, Error> {
        Self::writer(network, store_id)
    }

    /// Alias of [`Self::writer_with_config`].
    pub fn new_with_config(
        network: &Network,
        store_id: impl Into<StoreId>,
        config: impl Into<CollectionConfig>,
    ) -> Result<Self, Error> {
        Self::writer_with_config(network, store_id, config)
    }

    /// Inserts `key` with `priority` and `value`, replacing the priority and value of a
    /// present key; resolves to what the bound evicted (see the type's docs).
    pub fn insert(
        &self,
        priority: P,
        key: K,
        value: V,
    ) -> impl Future<Output = Result<Inserted<P, K, V>, Error>> + Send + 'static {
        self.inserting("insert", QueueOp::Insert(priority, key, value))
    }

    /// Inserts every `(priority, key, value)` in order, as one command (applied
    /// atomically, each entry as by [`Self::insert`]); resolves to everything the bound
    /// evicted, entries of this batch included.
    pub fn extend(
        &self,
        entries: impl IntoIterator<Item = (P, K, V)>,
    ) -> impl Future<Output = Result<Inserted<P, K, V>, Error>> + Send + 'static {
        self.inserting("extend", QueueOp::Extend(entries.into_iter().collect()))
    }

    /// Gives `key` a new priority, keeping its value; no-op (still a version) when the
    /// key is absent.
    pub fn update_priority(
        &self,
        key: &K,
        priority: P,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute(
            "update_priority",
            QueueOp::UpdatePriority(key.clone(), priority),
        )
    }

    /// Gives `key` a new value, keeping its priority; no-op (still a version) when the key
    /// is absent.
    pub fn update_value(
        &self,
        key: &K,
        value: V,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle
            .execute("update_value", QueueOp::UpdateValue(key.clone(), value))
    }

    /// If `key` is present with the value `expected` (compared by encoding), replaces its
    /// value with `new` keeping its priority, or removes it when `new` is `None`;
    /// otherwise (absent key, other value) changes nothing. Resolves to what it did:
    /// `previous` is the value found (`None`: the key was absent).
    pub fn compare_exchange_value(
        &self,
        key: &K,
        expected: V,
        new: Option<V>,
    ) -> impl Future<Output = Result<Exchange<V>, Error>> + Send + 'static {
        let op = QueueOp::CompareExchangeValue {
            key: key.clone(),
            expected,
            new,
        };
        let done = self.handle.execute_for_reply("compare_exchange_value", op);
        async move {
            match done.await? {
                (version, QueueReply::Exchanged(exchanged, previous)) => Ok(Exchange {
                    version,
                    exchanged,
                    previous,
                }),
                (version, _) => Err(mismatch("compare_exchange_value", version)),
            }
        }
    }

    /// Removes `key` (absent: changes nothing).
    pub fn remove(&self, key: &K) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle
            .execute("remove", QueueOp::RemoveKeys(vec![key.clone()]))
    }

    /// Removes every key of `keys`, as one command (applied atomically; absent keys are
    /// skipped).
    pub fn remove_keys(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute(
            "remove_keys",
            QueueOp::RemoveKeys(keys.into_iter().collect()),
        )
    }

    /// Removes every entry whose priority is in `range` (`..` removes everything; an
    /// inverted range removes nothing).
    pub fn remove_range(
        &self,
        range: impl RangeBounds<P>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        let op = QueueOp::RemoveRange(range.start_bound().cloned(), range.end_bound().cloned());
        self.handle.execute("remove_range", op)
    }

    /// Removes every entry.
    pub fn clear(&self) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("clear", QueueOp::Clear)
    }

    /// Removes the minimum ([`Self::get_min`]) and resolves to it (`None` when empty).
    /// Not in mosaik: taking the minimum there is a read then a remove, which two
    /// writers can interleave.
    pub fn pop_min(
        &self,
    ) -> impl Future<Output = Result<Taken<(P, K, V)>, Error>> + Send + 'static {
        self.take("pop_min", QueueOp::PopMin)
    }

    /// Removes the maximum ([`Self::get_max`]) and resolves to it (`None` when empty).
    pub fn pop_max(
        &self,
    ) -> impl Future<Output = Result<Taken<(P, K, V)>, Error>> + Send + 'static {
        self.take("pop_max", QueueOp::PopMax)
    }

    fn inserting(
        &self,
        name: &'static str,
        op: QueueOp<P, K, V>,
    ) -> impl Future<Output = Result<Inserted<P, K, V>, Error>> + Send + 'static {
        let done = self.handle.execute_for_reply(name, op);
        async move {
            match done.await? {
                (version, QueueReply::Evicted(evicted)) => Ok(Inserted { version, evicted }),
                (version, _) => Err(mismatch(name, version)),
            }
        }
    }

    fn take(
        &self,
        name: &'static str,
        op: QueueOp<P, K, V>,
    ) -> impl Future<Output = Result<Taken<(P, K, V)>, Error>> + Send + 'static {
        let done = self.handle.execute_for_reply(name, op);
        async move {
            match done.await? {
                (version, QueueReply::Taken(value)) => Ok(Taken { version, value }),
                (version, _) => Err(mismatch(name, version)),
            }
        }
    }
}

/// A reply of another operation's shape: cannot happen (each operation has one reply
/// shape); reported as an unknown outcome rather than a panic.
fn mismatch(op: &'static str, version: Version) -> Error {
    Error::OutcomeUnknown {
        kind: "priority_queue",
        op,
        version,
    }
}
