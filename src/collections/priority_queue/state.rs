//! The keyed priority queue's replicated state: entries indexed by key and by priority,
//! the operations, how they apply (with eviction when a bounded queue is full) and the
//! snapshot item format.
//!
//! **Order.** Entries are grouped in buckets by priority; inside a bucket, keys are in
//! key order. mosaik orders a bucket by a fixed-seed hash of the keys; tessera uses the
//! keys' own order instead, because the hash of `std`'s `DefaultHasher` is not
//! specified across Rust releases and every node must order alike. As in mosaik, the
//! bucket order is the same whichever end is read: the minimum is the first key of the
//! lowest bucket, the maximum the first key of the highest bucket, and descending
//! iteration walks the buckets from the highest with each bucket in key order.
//!
//! **Eviction.** After every insert, while the queue holds more than its capacity, the
//! minimum (first key of the lowest bucket) is removed: possibly the entry just
//! inserted. An insert that overwrites an existing key never evicts (the length does not
//! grow).
//!
//! **Snapshot format 2.** Item 0 is `Format(2)`, then one `Entry` per element in the
//! order above. Format 1 (the anonymous-id queue of earlier tessera versions) began with
//! its id counter; such a snapshot, or any other format, is refused with the version it
//! carries. Format 2 is also part of the machine signature, so a format-1 group and a
//! format-2 group never share an id and their logs never mix.

use super::super::machine::{bounds, Applied, Kind};
use super::super::primitives::same_encoding;
use super::super::{Key, Value};
use serde::{Deserialize, Serialize};
use std::any::type_name;
use std::borrow::Borrow;
use std::marker::PhantomData;
use std::ops::{Bound, Range};

/// The snapshot item format this version writes and reads.
pub(crate) const FORMAT: u32 = 2;

/// The queue's state.
///
/// Invariant: `by_key[k] == p` exactly when `by_priority[p]` holds `k`, and no bucket is
/// empty.
#[derive(Clone)]
pub(crate) struct QueueState<P: Ord + Clone, K: Ord + Clone, V: Clone> {
    by_key: imbl::OrdMap<K, P>,
    by_priority: imbl::OrdMap<P, imbl::OrdMap<K, V>>,
}

impl<P: Ord + Clone, K: Ord + Clone, V: Clone> Default for QueueState<P, K, V> {
    fn default() -> Self {
        QueueState {
            by_key: imbl::OrdMap::new(),
            by_priority: imbl::OrdMap::new(),
        }
    }
}

impl<P: Ord + Clone, K: Ord + Clone, V: Clone> QueueState<P, K, V> {
    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The priority and value under `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<(&P, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let p = self.by_key.get(key)?;
        Some((p, self.by_priority.get(p)?.get(key)?))
    }

    /// The priority under `key`.
    pub(crate) fn priority<Q>(&self, key: &Q) -> Option<&P>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.by_key.get(key)
    }

    /// The minimum: the first key of the lowest bucket.
    pub(crate) fn min(&self) -> Option<(P, K, V)> {
        let (p, bucket) = self.by_priority.get_min()?;
        let (k, v) = bucket.get_min()?;
        Some((p.clone(), k.clone(), v.clone()))
    }

    /// The maximum: the first key of the highest bucket.
    pub(crate) fn max(&self) -> Option<(P, K, V)> {
        let (p, bucket) = self.by_priority.get_max()?;
        let (k, v) = bucket.get_min()?;
        Some((p.clone(), k.clone(), v.clone()))
    }

    /// The lowest priority.
    pub(crate) fn min_priority(&self) -> Option<&P> {
        self.by_priority.get_min().map(|(p, _)| p)
    }

    /// The highest priority.
    pub(crate) fn max_priority(&self) -> Option<&P> {
        self.by_priority.get_max().map(|(p, _)| p)
    }

    /// Every entry, lowest bucket first.
    pub(crate) fn ascending(self) -> impl Iterator<Item = (P, K, V)> {
        self.by_priority
            .into_iter()
            .flat_map(|(p, bucket)| bucket.into_iter().map(move |(k, v)| (p.clone(), k, v)))
    }

    /// Every entry, highest bucket first (each bucket in key order).
    pub(crate) fn descending(&self) -> Vec<(P, K, V)> {
        let mut out = Vec::with_capacity(self.len());
        for (p, bucket) in self.by_priority.iter().rev() {
            out.extend(
                bucket
                    .iter()
                    .map(|(k, v)| (p.clone(), k.clone(), v.clone())),
            );
        }
        out
    }

    /// Removes `key`; its priority and value.
    fn take(&mut self, key: &K) -> Option<(P, V)> {
        let p = self.by_key.remove(key)?;
        let bucket = self.by_priority.get_mut(&p)?;
        let v = bucket.remove(key)?;
        if bucket.is_empty() {
            self.by_priority.remove(&p);
        }
        Some((p, v))
    }

    /// Puts `key` (absent) with `p` and `v`.
    fn put(&mut self, p: P, key: K, v: V) {
        self.by_key.insert(key.clone(), p.clone());
        self.by_priority.entry(p).or_default().insert(key, v);
    }

    /// Removes the minimum.
    fn pop_min(&mut self) -> Option<(P, K, V)> {
        let (_, k, _) = self.min()?;
        self.take(&k).map(|(p, v)| (p, k, v))
    }

    /// Removes the maximum.
    fn pop_max(&mut self) -> Option<(P, K, V)> {
        let (_, k, _) = self.max()?;
        self.take(&k).map(|(p, v)| (p, k, v))
    }

    /// Inserts or overwrites `key`, then evicts minimums while over `capacity`; whether
    /// the state changed, and what was evicted (in order).
    fn insert(&mut self, p: P, key: K, v: V, capacity: u64, evicted: &mut Vec<(P, K, V)>) -> bool {
        let existed = self.take(&key).is_some();
        let before = evicted.len();
        self.put(p, key.clone(), v);
        while self.len() as u64 > capacity {
            match self.pop_min() {
                Some(gone) => evicted.push(gone),
                None => break,
            }
        }
        // A new key that was evicted at once left the state as it was.
        let dropped_itself = !existed
            && evicted.len() == before + 1
            && evicted.last().is_some_and(|(_, k, _)| *k == key);
        !dropped_itself
    }
}

/// The queue's operations (format 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "P: Key, K: Key, V: Value")]
pub(crate) enum QueueOp<P, K, V> {
    Insert(P, K, V),
    Extend(Vec<(P, K, V)>),
    UpdatePriority(K, P),
    UpdateValue(K, V),
    CompareExchangeValue { key: K, expected: V, new: Option<V> },
    RemoveKeys(Vec<K>),
    RemoveRange(Bound<P>, Bound<P>),
    Clear,
    PopMin,
    PopMax,
}

/// What a queue operation reports to its issuer.
pub(crate) enum QueueReply<P, K, V> {
    /// An insert or extend: what its bound evicted.
    Evicted(Vec<(P, K, V)>),
    /// A compare-exchange: whether it matched, and the value before.
    Exchanged(bool, Option<V>),
    /// A pop: what it took.
    Taken(Option<(P, K, V)>),
}

/// One snapshot item.
#[derive(Serialize, Deserialize)]
#[serde(bound = "P: Key, K: Key, V: Value")]
pub(crate) enum QueueItem<P, K, V> {
    /// The first item of a format-1 snapshot (its element-id counter). Never written;
    /// recognised only to name format 1 when refusing it.
    Format1Counter(u64),
    /// The first item: the format of the items after it.
    Format(u32),
    /// One entry.
    Entry(P, K, V),
}

/// Marks the queue's types without owning values of them.
pub(crate) type Types<P, K, V> = PhantomData<fn() -> (P, K, V)>;

/// The queue kind: `capacity` is the type's `CAP`.
pub(crate) struct QueueKind<P, K, V> {
    pub(crate) capacity: u64,
    pub(crate) types: Types<P, K, V>,
}

/// Whether `(lo, hi)` selects anything (an inverted range selects nothing, and must not
/// reach `im`'s range, which would panic on every node).
fn nonempty<P: Ord>(lo: &Bound<P>, hi: &Bound<P>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a < b,
        _ => true,
    }
}

impl<P: Key, K: Key, V: Value> Kind for QueueKind<P, K, V> {
    const NAME: &'static str = "priority_queue";
    type State = QueueState<P, K, V>;
    type Op = QueueOp<P, K, V>;
    type Reply = QueueReply<P, K, V>;
    type Item = QueueItem<P, K, V>;

    fn type_names(&self) -> Vec<&'static str> {
        vec![type_name::<P>(), type_name::<K>(), type_name::<V>()]
    }

    /// The format and the capacity: members that differ in either form different groups.
    fn settings(&self) -> Vec<u8> {
        let mut settings = FORMAT.to_le_bytes().to_vec();
        settings.extend_from_slice(&self.capacity.to_le_bytes());
        settings
    }

    fn apply(&self, q: &mut Self::State, op: Self::Op) -> Applied<Self::Reply> {
        match op {
            QueueOp::Insert(p, k, v) => {
                let mut evicted = Vec::new();
                let changed = q.insert(p, k, v, self.capacity, &mut evicted);
                Applied::reply(changed, QueueReply::Evicted(evicted))
            }
            QueueOp::Extend(entries) => {
                let mut evicted = Vec::new();
                let mut changed = false;
                for (p, k, v) in entries {
                    changed |= q.insert(p, k, v, self.capacity, &mut evicted);
                }
                Applied::reply(changed, QueueReply::Evicted(evicted))
            }
            QueueOp::UpdatePriority(k, p) => match q.priority(&k) {
                Some(old) if *old != p => {
                    let moved = q.take(&k).map(|(_, v)| q.put(p, k, v));
                    Applied::changed(moved.is_some())
                }
                _ => Applied::changed(false),
            },
            QueueOp::UpdateValue(k, v) => match q.take(&k) {
                Some((p, _)) => {
                    q.put(p, k, v);
                    Applied::changed(true)
                }
                None => Applied::changed(false),
            },
            QueueOp::CompareExchangeValue { key, expected, new } => {
                let Some((_, current)) = q.get(&key) else {
                    return Applied::reply(false, QueueReply::Exchanged(false, None));
                };
                let previous = current.clone();
                if !same_encoding(Some(&previous), Some(&expected)) {
                    return Applied::reply(false, QueueReply::Exchanged(false, Some(previous)));
                }
                let changed = !same_encoding(Some(&previous), new.as_ref());
                if let Some((p, _)) = q.take(&key) {
                    if let Some(v) = new {
                        q.put(p, key, v);
                    }
                }
                Applied::reply(changed, QueueReply::Exchanged(true, Some(previous)))
            }
            QueueOp::RemoveKeys(keys) => {
                let mut changed = false;
                for k in &keys {
                    changed |= q.take(k).is_some();
                }
                Applied::changed(changed)
            }
            QueueOp::RemoveRange(lo, hi) => {
                if !nonempty(&lo, &hi) {
                    return Applied::changed(false);
                }
                let doomed: Vec<K> = q
                    .by_priority
                    .range((lo, hi))
                    .flat_map(|(_, bucket)| bucket.keys().cloned())
                    .collect();
                for k in &doomed {
                    q.take(k);
                }
                Applied::changed(!doomed.is_empty())
            }
            QueueOp::Clear => Applied::changed(std::mem::take(q).len() > 0),
            QueueOp::PopMin => {
                let taken = q.pop_min();
                Applied::reply(taken.is_some(), QueueReply::Taken(taken))
            }
            QueueOp::PopMax => {
                let taken = q.pop_max();
                Applied::reply(taken.is_some(), QueueReply::Taken(taken))
            }
        }
    }

    fn len(q: &Self::State) -> u64 {
        1 + q.len() as u64
    }

    fn items(q: &Self::State, range: Range<u64>) -> Option<impl Iterator<Item = Self::Item>> {
        let (skip, take) = bounds(&range, Self::len(q))?;
        let entries = q
            .clone()
            .ascending()
            .map(|(p, k, v)| QueueItem::Entry(p, k, v));
        Some(
            std::iter::once(QueueItem::Format(FORMAT))
                .chain(entries)
                .skip(skip)
                .take(take),
        )
    }

    fn append(
        q: &mut Self::State,
        at: u64,
        items: impl IntoIterator<Item = Self::Item>,
    ) -> Result<(), String> {
        for (n, item) in (at..).zip(items) {
            match item {
                QueueItem::Format(FORMAT) if n == 0 => {}
                QueueItem::Format(other) if n == 0 => {
                    return Err(format!(
                        "priority queue snapshot in format {other}; this version reads format {FORMAT}"
                    ))
                }
                QueueItem::Format1Counter(_) if n == 0 => {
                    return Err(format!(
                        "priority queue snapshot in format 1 (anonymous element ids, before keyed queues); \
                         this version reads format {FORMAT} and does not convert it"
                    ))
                }
                _ if n == 0 => {
                    return Err(format!(
                        "priority queue snapshot without a format item; this version reads format {FORMAT}"
                    ))
                }
                QueueItem::Entry(p, k, v) => {
                    q.take(&k);
                    q.put(p, k, v);
                }
                QueueItem::Format(_) | QueueItem::Format1Counter(_) => {
                    return Err(format!("priority queue snapshot: a format item at position {n}"))
                }
            }
        }
        Ok(())
    }

    fn finish(_q: &Self::State, items: u64) -> Result<(), String> {
        if items == 0 {
            return Err(format!(
                "priority queue snapshot without a format item; this version reads format {FORMAT}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::machine::testing::*;
    use super::super::super::machine::Machine;
    use super::*;

    type Op = QueueOp<u32, String, u32>;
    type State = QueueState<u32, String, u32>;

    fn kind(capacity: u64) -> QueueKind<u32, String, u32> {
        QueueKind {
            capacity,
            types: PhantomData,
        }
    }

    fn entries(q: &State) -> Vec<(u32, String, u32)> {
        q.clone().ascending().collect()
    }

    fn e(p: u32, k: &str, v: u32) -> (u32, String, u32) {
        (p, k.to_string(), v)
    }

    fn ins(p: u32, k: &str, v: u32) -> Op {
        Op::Insert(p, k.into(), v)
    }

    /// Applies `op` with a ticket; what the bound evicted.
    fn insert(
        m: &mut Machine<QueueKind<u32, String, u32>>,
        r: &Replies,
        op: Op,
    ) -> Vec<(u32, String, u32)> {
        match ask(m, r, op) {
            Some(QueueReply::Evicted(evicted)) => evicted,
            _ => panic!("an insert reports its evictions"),
        }
    }

    type Replies = crate::collections::replies::Replies<QueueReply<u32, String, u32>>;

    fn ops() -> Vec<Op> {
        vec![
            ins(5, "a", 1),
            ins(3, "b", 2),
            ins(5, "c", 3),
            ins(9, "d", 4),
            ins(1, "e", 5),  // capacity 4: itself evicted
            ins(7, "f", 6),  // evicts b (3)
            ins(4, "a", 10), // upsert of a: 5 -> 4, no eviction
            Op::UpdatePriority("a".into(), 8),
            Op::UpdatePriority("missing".into(), 1),
            Op::UpdateValue("c".into(), 30),
            Op::CompareExchangeValue {
                key: "d".into(),
                expected: 4,
                new: Some(40),
            },
            Op::CompareExchangeValue {
                key: "f".into(),
                expected: 999,
                new: None,
            },
            Op::PopMax,                                              // d (9)
            Op::Extend(vec![e(6, "g", 7), e(2, "h", 8)]),            // h evicted at once
            Op::RemoveRange(Bound::Included(6), Bound::Excluded(8)), // g (6), f (7)
            Op::RemoveRange(Bound::Included(9), Bound::Excluded(2)), // inverted: nothing
            Op::RemoveKeys(vec!["zz".into()]),
        ]
    }

    #[test]
    fn every_operation_applies_alike_on_two_machines() {
        let (mut one, _) = machine(kind(4));
        let (mut two, _) = machine(kind(4));
        for op in ops() {
            apply(&mut one, op);
        }
        marker(&mut one);
        apply_batch(&mut two, ops());
        assert_eq!(entries(one.state()), vec![e(5, "c", 30), e(8, "a", 10)]);
        assert_eq!(entries(one.state()), entries(two.state()));
        assert_eq!(one.state().by_key, two.state().by_key);
        apply(&mut one, Op::Clear);
        assert!(one.state().by_key.is_empty() && one.state().by_priority.is_empty());
    }

    #[test]
    fn a_full_queue_evicts_its_minimum_and_an_upsert_evicts_nothing() {
        let (mut m, r) = machine(kind(3));
        let changes = m.subscribe_changes();
        assert!(insert(&mut m, &r, ins(2, "x", 1)).is_empty());
        assert!(insert(&mut m, &r, ins(2, "w", 2)).is_empty());
        assert!(insert(&mut m, &r, ins(4, "z", 3)).is_empty());
        assert_eq!(*changes.borrow(), 3);
        // Full. Equal priorities rank by key: "w" is the minimum, and goes.
        assert_eq!(insert(&mut m, &r, ins(3, "v", 4)), vec![e(2, "w", 2)]);
        // Below everything: the new entry itself goes, and nothing changed.
        assert_eq!(insert(&mut m, &r, ins(1, "u", 5)), vec![e(1, "u", 5)]);
        assert_eq!(
            *changes.borrow(),
            4,
            "an insert evicted at once changes nothing"
        );
        // Upsert of a present key into the full queue: a new priority below every other
        // one, yet nothing is evicted (the length did not grow).
        assert!(insert(&mut m, &r, ins(0, "z", 33)).is_empty());
        assert_eq!(
            entries(m.state()),
            vec![e(0, "z", 33), e(2, "x", 1), e(3, "v", 4)]
        );
        // A new key now evicts the upserted minimum.
        assert_eq!(insert(&mut m, &r, ins(5, "t", 6)), vec![e(0, "z", 33)]);
        // An extend evicts as it goes, its own earlier entries included.
        assert_eq!(
            insert(
                &mut m,
                &r,
                Op::Extend(vec![e(6, "s", 7), e(7, "q", 8), e(8, "p", 9)])
            ),
            vec![e(2, "x", 1), e(3, "v", 4), e(5, "t", 6)]
        );
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn ties_order_by_key_at_both_ends() {
        let (mut m, _) = machine(kind(u64::MAX));
        for (p, k) in [(1, "b"), (1, "a"), (9, "d"), (9, "c"), (5, "m")] {
            apply(&mut m, ins(p, k, 0));
        }
        let q = m.state();
        assert_eq!(q.min(), Some(e(1, "a", 0)));
        assert_eq!(
            q.max(),
            Some(e(9, "c", 0)),
            "the first key of the highest bucket"
        );
        let keys =
            |v: Vec<(u32, String, u32)>| v.into_iter().map(|(_, k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(entries(q)), vec!["a", "b", "m", "c", "d"]);
        assert_eq!(keys(q.descending()), vec!["c", "d", "m", "a", "b"]);
        let (mut m2, r) = machine(kind(u64::MAX));
        for (p, k) in [(1, "b"), (1, "a"), (9, "d"), (9, "c")] {
            apply(&mut m2, ins(p, k, 0));
        }
        let pop = |m: &mut Machine<QueueKind<u32, String, u32>>, op| match ask(m, &r, op) {
            Some(QueueReply::Taken(t)) => t.map(|(_, k, _)| k),
            _ => panic!("a pop reports what it took"),
        };
        assert_eq!(pop(&mut m2, Op::PopMax).as_deref(), Some("c"));
        assert_eq!(pop(&mut m2, Op::PopMin).as_deref(), Some("a"));
        assert_eq!(pop(&mut m2, Op::PopMax).as_deref(), Some("d"));
        assert_eq!(pop(&mut m2, Op::PopMax).as_deref(), Some("b"));
        assert_eq!(pop(&mut m2, Op::PopMin), None);
    }

    #[test]
    fn compare_exchange_value_reports_what_it_did() {
        let (mut m, r) = machine(kind(10));
        apply(&mut m, ins(7, "k", 100));
        let cas = |m: &mut Machine<QueueKind<u32, String, u32>>, key: &str, expected, new| match ask(
            m,
            &r,
            Op::CompareExchangeValue {
                key: key.into(),
                expected,
                new,
            },
        ) {
            Some(QueueReply::Exchanged(x, previous)) => (x, previous),
            _ => panic!("a compare-exchange reports its outcome"),
        };
        assert_eq!(cas(&mut m, "k", 999, Some(1)), (false, Some(100)));
        assert_eq!(cas(&mut m, "missing", 100, Some(1)), (false, None));
        assert_eq!(cas(&mut m, "k", 100, Some(200)), (true, Some(100)));
        assert_eq!(m.state().get("k"), Some((&7, &200)), "the priority is kept");
        assert_eq!(cas(&mut m, "k", 200, None), (true, Some(200)));
        assert_eq!(m.state().len(), 0);
    }

    #[test]
    fn remove_range_bounds() {
        let (mut m, _) = machine(kind(100));
        for p in 0..10 {
            apply(&mut m, ins(p, &format!("k{p}"), p));
        }
        for (lo, hi) in [
            (Bound::Excluded(2), Bound::Included(4)),
            (Bound::Included(8), Bound::Unbounded),
            (Bound::Unbounded, Bound::Excluded(1)),
            (Bound::Included(6), Bound::Excluded(6)),
            (Bound::Excluded(6), Bound::Excluded(6)),
            (Bound::Included(7), Bound::Included(5)),
        ] {
            apply(&mut m, Op::RemoveRange(lo, hi));
        }
        let left: Vec<u32> = entries(m.state()).into_iter().map(|(p, _, _)| p).collect();
        assert_eq!(left, vec![1, 2, 5, 6, 7]);
        apply(&mut m, Op::RemoveRange(Bound::Unbounded, Bound::Unbounded));
        assert_eq!(m.state().len(), 0);
    }

    #[test]
    fn snapshot_round_trip_in_chunks() {
        let (mut m, _) = machine(kind(50));
        for i in 0..80u32 {
            apply(&mut m, ins(i % 7, &format!("k{i:02}"), i));
        }
        apply(&mut m, Op::PopMax);
        for chunk in [1, 9, 100] {
            let back = round_trip(&m, chunk);
            assert_eq!(entries(&back), entries(m.state()));
            assert_eq!(back.by_key, m.state().by_key);
        }
    }

    #[test]
    fn other_snapshot_formats_are_refused_with_their_version() {
        type K = QueueKind<u32, String, u32>;
        let entry = |k: &str| QueueItem::Entry(1, k.to_string(), 0);
        let good = vec![QueueItem::Format(FORMAT), entry("a"), entry("b")];
        let state = load::<K>(good, 1).expect("format 2 loads");
        assert_eq!(state.len(), 2);

        let format1 = vec![QueueItem::Format1Counter(7), entry("a")];
        let err = load::<K>(format1, 1).err().expect("format 1 is refused");
        assert!(
            err.contains("format 1") && err.contains("format 2"),
            "{err}"
        );
        let future = vec![QueueItem::Format(3), entry("a")];
        let err = load::<K>(future, 2).err().expect("format 3 is refused");
        assert!(
            err.contains("format 3") && err.contains("format 2"),
            "{err}"
        );
        let bare = vec![entry("a")];
        let err = load::<K>(bare, 1).err().expect("no format item");
        assert!(err.contains("without a format item"), "{err}");
        let err = load::<K>(Vec::new(), 1).err().expect("nothing at all");
        assert!(err.contains("without a format item"), "{err}");
        let twice = vec![QueueItem::Format(FORMAT), QueueItem::Format(FORMAT)];
        assert!(load::<K>(twice, 1).is_err());

        // Format 1's first item, as format 1 encoded it (variant 0, the counter), decodes
        // as the item that names format 1.
        #[derive(Serialize)]
        enum Format1Item {
            NextId(u64),
        }
        let bytes = crate::primitives::codec::encode(&Format1Item::NextId(301)).expect("encode");
        let item: QueueItem<u32, String, u32> =
            crate::primitives::codec::decode(&bytes).expect("decode");
        assert!(matches!(item, QueueItem::Format1Counter(301)));
    }

    /// A format-1 snapshot (as the anonymous-id queue cut them) read back through the
    /// real snapshot reader into a format-2 queue: refused, naming format 1, and not taken
    /// for damage (so no node fetches it again from peers).
    #[test]
    fn the_snapshot_reader_refuses_a_format_1_queue() {
        use crate::groups::raft::Membership;
        use crate::groups::snapshot::image;
        use crate::groups::snapshot::{Snapshot, SnapshotStore};
        use crate::groups::{Cursor, Index, Term};
        use std::sync::atomic::AtomicBool;

        #[derive(Serialize, Deserialize)]
        enum Format1Item {
            NextId(u64),
            Element(u64, u32, String),
        }
        #[derive(Default)]
        struct Format1(Vec<(u64, u32, String)>);
        impl Snapshot for Format1 {
            type Item = Format1Item;
            fn len(&self) -> u64 {
                1 + self.0.len() as u64
            }
            fn iter_range(&self, range: Range<u64>) -> Option<impl Iterator<Item = Format1Item>> {
                let (skip, take) = bounds(&range, self.len())?;
                let elements = self
                    .0
                    .iter()
                    .map(|(id, p, v)| Format1Item::Element(*id, *p, v.clone()));
                Some(
                    std::iter::once(Format1Item::NextId(9))
                        .chain(elements)
                        .skip(skip)
                        .take(take),
                )
            }
            fn append(&mut self, _: impl IntoIterator<Item = Format1Item>) {}
        }

        let store = SnapshotStore::memory();
        let group = crate::GroupId(crate::Digest::of(b"format 1 queue"));
        let anchor = Cursor(Term(2), Index(40));
        let old = Format1(vec![(3, 5, "a".into()), (8, 1, "b".into())]);
        image::cut(
            store.clone(),
            group,
            anchor,
            Membership::with_voters([crate::PeerId([1; 32])]),
            &old,
            tessera_snapshots::WriterConfig::default(),
            &AtomicBool::new(false),
        )
        .expect("cut");
        type Frozen = super::super::super::machine::Frozen<QueueKind<u32, String, u32>>;
        let failure = image::load::<Frozen>(&store, group, image::snapshot_key(group, 40))
            .err()
            .expect("a format-1 snapshot is refused");
        let message = failure.error.to_string();
        assert!(
            matches!(failure.error, image::ImageError::Refused { anchor: 40, .. }),
            "{message}"
        );
        assert!(!failure.error.is_damage());
        assert!(
            message.contains("format 1") && message.contains("format 2"),
            "{message}"
        );
    }

    #[test]
    fn the_format_and_capacity_are_in_the_signature() {
        assert_ne!(kind(3).settings(), kind(4).settings());
        assert_eq!(kind(3).settings()[..4], FORMAT.to_le_bytes());
    }
}
