//! `Map`: a replicated ordered map.

use super::handle::Handle;
use super::machine::{bounds, Applied, Kind};
use super::primitives::same_encoding;
use super::{
    CollectionConfig, Error, Exchange, Key, StoreId, Value, Version, When, READER, WRITER,
};
use serde::{Deserialize, Serialize};
use std::any::type_name;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Range;

/// Mutable access to a replicated map; writers may lead the map's group.
pub type MapWriter<K, V> = Map<K, V, WRITER>;

/// Read-only access to a replicated map; readers are observers.
pub type MapReader<K, V> = Map<K, V, READER>;

/// A replicated map ordered by key. Reads are local: `get` is O(log n), `iter` takes an
/// O(1) snapshot and walks it in key order.
pub struct Map<K: Key, V: Value, const IS_WRITER: bool = WRITER> {
    handle: Handle<MapKind<K, V>>,
}

// Reads, for readers and writers.
impl<K: Key, V: Value, const IS_WRITER: bool> Map<K, V, IS_WRITER> {
    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        self.handle.read(|m| m.get(key).cloned())
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.handle.read(|m| m.contains_key(key))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.handle.read(|m| m.len())
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.handle.read(|m| m.is_empty())
    }

    /// The entries in key order, as of now (later writes do not show up in it).
    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + Send + 'static {
        self.handle.state().into_iter()
    }

    /// The keys in order, as of now.
    pub fn keys(&self) -> impl Iterator<Item = K> + Send + 'static {
        self.iter().map(|(k, _)| k)
    }

    /// The values in key order, as of now.
    pub fn values(&self) -> impl Iterator<Item = V> + Send + 'static {
        self.iter().map(|(_, v)| v)
    }

    handle_accessors!("map");

    opener!(reader, MapReader<K, V>, "map", MapKind::new());

    fn from_handle(handle: Handle<MapKind<K, V>>) -> Self {
        Map { handle }
    }
}

impl<K: Key, V: Value> MapWriter<K, V> {
    opener!(writer, "map", MapKind::new());

    /// Sets `key` to `value`.
    pub fn insert(
        &self,
        key: K,
        value: V,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("insert", MapOp::Insert(key, value))
    }

    /// Removes `key` (a missing key changes nothing).
    pub fn remove(&self, key: K) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("remove", MapOp::Remove(key))
    }

    /// Removes every key of `keys` as one command: one log entry, applied at once on
    /// every node (all of them gone, or, if the write fails, none). Missing keys are
    /// skipped.
    pub fn remove_many(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle
            .execute("remove_many", MapOp::RemoveMany(keys.into_iter().collect()))
    }

    /// Sets `key` to `new` (`None` removes it) if its value is `current` (`None`: absent),
    /// compared by encoding; otherwise changes nothing. Resolves to what it did.
    pub fn compare_exchange(
        &self,
        key: K,
        current: Option<V>,
        new: Option<V>,
    ) -> impl Future<Output = Result<Exchange<V>, Error>> + Send + 'static {
        let done = self.handle.execute_for_reply(
            "compare_exchange",
            MapOp::CompareExchange { key, current, new },
        );
        async move { done.await.map(Exchange::from_reply) }
    }

    /// Inserts every entry, as one command (applied atomically).
    pub fn extend(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle
            .execute("extend", MapOp::Extend(entries.into_iter().collect()))
    }

    /// Removes every entry.
    pub fn clear(&self) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("clear", MapOp::Clear)
    }
}

/// The map's operations.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "K: Key, V: Value")]
pub(crate) enum MapOp<K, V> {
    Insert(K, V),
    Remove(K),
    CompareExchange {
        key: K,
        current: Option<V>,
        new: Option<V>,
    },
    Extend(Vec<(K, V)>),
    Clear,
    // New variants go last: the log holds operations by variant number.
    RemoveMany(Vec<K>),
}

/// The map kind.
pub(crate) struct MapKind<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> MapKind<K, V> {
    pub(crate) fn new() -> Self {
        MapKind(PhantomData)
    }
}

impl<K: Key, V: Value> Kind for MapKind<K, V> {
    const NAME: &'static str = "map";
    type State = imbl::OrdMap<K, V>;
    type Op = MapOp<K, V>;
    /// (exchanged, previous) of a compare-exchange.
    type Reply = (bool, Option<V>);
    type Item = (K, V);

    fn type_names(&self) -> Vec<&'static str> {
        vec![type_name::<K>(), type_name::<V>()]
    }

    fn apply(&self, map: &mut Self::State, op: MapOp<K, V>) -> Applied<Self::Reply> {
        match op {
            MapOp::Insert(key, value) => {
                map.insert(key, value);
                Applied::changed(true)
            }
            MapOp::Remove(key) => Applied::changed(map.remove(&key).is_some()),
            MapOp::CompareExchange { key, current, new } => {
                let previous = map.get(&key).cloned();
                if !same_encoding(previous.as_ref(), current.as_ref()) {
                    return Applied::reply(false, (false, previous));
                }
                let changed = !same_encoding(previous.as_ref(), new.as_ref());
                match new {
                    Some(value) => map.insert(key, value),
                    None => map.remove(&key),
                };
                Applied::reply(changed, (true, previous))
            }
            MapOp::Extend(entries) => {
                let changed = !entries.is_empty();
                for (key, value) in entries {
                    map.insert(key, value);
                }
                Applied::changed(changed)
            }
            MapOp::Clear => Applied::changed(!std::mem::take(map).is_empty()),
            MapOp::RemoveMany(keys) => {
                let mut changed = false;
                for key in &keys {
                    changed |= map.remove(key).is_some();
                }
                Applied::changed(changed)
            }
        }
    }

    fn len(map: &Self::State) -> u64 {
        map.len() as u64
    }

    fn items(map: &Self::State, range: Range<u64>) -> Option<impl Iterator<Item = (K, V)>> {
        let (skip, take) = bounds(&range, Self::len(map))?;
        Some(
            map.iter()
                .skip(skip)
                .take(take)
                .map(|(k, v)| (k.clone(), v.clone())),
        )
    }

    fn append(
        map: &mut Self::State,
        _at: u64,
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), String> {
        map.extend(items);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::testing::*;
    use super::*;

    type Op = MapOp<String, u32>;

    fn ops() -> Vec<Op> {
        vec![
            Op::Insert("b".into(), 2),
            Op::Insert("a".into(), 1),
            Op::Extend(vec![("c".into(), 3), ("d".into(), 4)]),
            Op::Remove("d".into()),
            Op::Remove("missing".into()),
            Op::CompareExchange {
                key: "a".into(),
                current: Some(9),
                new: Some(10),
            },
            Op::CompareExchange {
                key: "a".into(),
                current: Some(1),
                new: Some(11),
            },
            Op::CompareExchange {
                key: "e".into(),
                current: None,
                new: Some(5),
            },
            Op::CompareExchange {
                key: "b".into(),
                current: Some(2),
                new: None,
            },
            Op::Insert("f".into(), 6),
            Op::Insert("g".into(), 7),
            Op::RemoveMany(vec!["f".into(), "g".into(), "missing".into()]),
        ]
    }

    fn entries(m: &imbl::OrdMap<String, u32>) -> Vec<(String, u32)> {
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    #[test]
    fn every_operation_applies_alike_on_two_machines() {
        let (mut one, _) = machine(MapKind::<String, u32>::new());
        let (mut two, _) = machine(MapKind::<String, u32>::new());
        for op in ops() {
            apply(&mut one, op);
            marker(&mut one);
        }
        apply_batch(&mut two, ops());
        let want = vec![
            ("a".to_string(), 11),
            ("c".to_string(), 3),
            ("e".to_string(), 5),
        ];
        assert_eq!(entries(one.state()), want, "sorted by key");
        assert_eq!(one.state(), two.state());
        apply(&mut one, Op::Clear);
        assert!(one.state().is_empty());
    }

    #[test]
    fn remove_many_is_one_operation_that_removes_all_at_once() {
        let (mut m, _) = machine(MapKind::<String, u32>::new());
        apply(
            &mut m,
            Op::Extend((0..10).map(|i| (format!("k{i}"), i)).collect()),
        );
        let changes = m.subscribe_changes();
        let before = *changes.borrow();
        let states = m.subscribe();
        let doomed: Vec<String> = ["k1", "k3", "k5", "missing"].map(String::from).to_vec();
        apply(&mut m, Op::RemoveMany(doomed.clone()));
        assert_eq!(
            *changes.borrow(),
            before + 1,
            "one publication: no state holds only some removed"
        );
        let after = states.borrow().clone();
        assert!(doomed.iter().all(|k| !after.contains_key(k)));
        assert_eq!(after.len(), 7);
        // Nothing of it present: nothing changes, nothing is published.
        apply(&mut m, Op::RemoveMany(doomed));
        assert_eq!(*changes.borrow(), before + 1);
        // Encoded as one command, like any other operation.
        let bytes =
            crate::primitives::codec::encode(&Op::RemoveMany(vec!["a".into()])).expect("encode");
        assert!(matches!(
            crate::primitives::codec::decode::<Op>(&bytes).expect("decode"),
            Op::RemoveMany(keys) if keys == ["a"]
        ));
    }

    #[test]
    fn compare_exchange_reports_what_it_did() {
        let (mut m, replies) = machine(MapKind::<String, u32>::new());
        let cas = |current, new| Op::CompareExchange {
            key: "k".into(),
            current,
            new,
        };
        assert_eq!(
            ask(&mut m, &replies, cas(None, Some(1))),
            Some((true, None))
        );
        assert_eq!(
            ask(&mut m, &replies, cas(Some(2), Some(3))),
            Some((false, Some(1)))
        );
        assert_eq!(m.state().get("k"), Some(&1));
        assert_eq!(
            ask(&mut m, &replies, cas(Some(1), None)),
            Some((true, Some(1)))
        );
        assert!(m.state().is_empty());
    }

    #[test]
    fn snapshot_round_trip_in_chunks() {
        let (mut m, _) = machine(MapKind::<String, u32>::new());
        apply(
            &mut m,
            Op::Extend((0..100).map(|i| (format!("k{i:03}"), i)).collect()),
        );
        for chunk in [1, 7, 100, 1000] {
            assert_eq!(&round_trip(&m, chunk), m.state());
        }
    }
}
