//! `PriorityQueue`: a replicated, bounded priority queue.

use super::handle::Handle;
use super::machine::{bounds, Applied, Kind};
use super::{CollectionConfig, Error, Key, StoreId, Taken, Value, Version, When, READER, WRITER};
use crate::network::Network;
use serde::{Deserialize, Serialize};
use std::any::type_name;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Bound, Range, RangeBounds};

/// Mutable access to a replicated priority queue; writers may lead its group.
pub type PriorityQueueWriter<P, T> = PriorityQueue<P, T, WRITER>;

/// Read-only access to a replicated priority queue; readers are observers.
pub type PriorityQueueReader<P, T> = PriorityQueue<P, T, READER>;

/// A replicated priority queue holding at most `capacity` elements.
///
/// **Order.** Elements are ordered by priority, then by id; ids are assigned by the queue
/// in push order, so among equal priorities the older element is the smaller. `iter`
/// walks that order from the minimum, `peek_min`/`pop_min` take its first element and
/// `peek_max`/`pop_max` its last. Changing an element's priority keeps its id.
///
/// **Bound.** A push into a full queue inserts the element and then drops the minimum
/// (which is the new element itself when its priority is below every other one): the queue
/// keeps the `capacity` greatest elements. The push reports the dropped element
/// ([`Pushed::evicted`]). Every node drops the same element.
///
/// The capacity is part of the group id: every member must open the queue with the same
/// capacity.
pub struct PriorityQueue<P: Key, T: Value, const IS_WRITER: bool = WRITER> {
    handle: Handle<QueueKind<P, T>>,
    capacity: u64,
}

/// Identifies one element of a [`PriorityQueue`] for its lifetime.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct ElementId(pub u64);

impl fmt::Display for ElementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One element of a [`PriorityQueue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element<P, T> {
    /// Its id.
    pub id: ElementId,
    /// Its priority.
    pub priority: P,
    /// Its value.
    pub value: T,
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed<P, T> {
    /// The version that contains the push.
    pub version: Version,
    /// The id the new element got.
    pub id: ElementId,
    /// The element dropped because the queue was full (`evicted.id == id` when the new
    /// element itself ranked lowest).
    pub evicted: Option<Element<P, T>>,
}

// Reads, for readers and writers.
impl<P: Key, T: Value, const IS_WRITER: bool> PriorityQueue<P, T, IS_WRITER> {
    /// The smallest element (lowest priority; the oldest among equals).
    pub fn peek_min(&self) -> Option<Element<P, T>> {
        self.handle.read(|q| q.by_rank.get_min().map(element))
    }

    /// The greatest element (highest priority; the newest among equals).
    pub fn peek_max(&self) -> Option<Element<P, T>> {
        self.handle.read(|q| q.by_rank.get_max().map(element))
    }

    /// The element `id`, if still queued.
    pub fn get(&self, id: ElementId) -> Option<Element<P, T>> {
        self.handle.read(|q| {
            let priority = q.by_id.get(&id.0)?.clone();
            let value = q.by_rank.get(&(priority.clone(), id.0))?.clone();
            Some(Element {
                id,
                priority,
                value,
            })
        })
    }

    /// Whether the element `id` is still queued.
    pub fn contains(&self, id: ElementId) -> bool {
        self.handle.read(|q| q.by_id.contains_key(&id.0))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.handle.read(|q| q.by_rank.len())
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.handle.read(|q| q.by_rank.is_empty())
    }

    /// The most elements the queue holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The elements from the minimum to the maximum, as of now.
    pub fn iter(&self) -> impl Iterator<Item = Element<P, T>> + Send + 'static {
        self.handle
            .state()
            .by_rank
            .into_iter()
            .map(|((priority, id), value)| Element {
                id: ElementId(id),
                priority,
                value,
            })
    }

    handle_accessors!("queue");
}

fn element<P: Clone, T: Clone>(((priority, id), value): &((P, u64), T)) -> Element<P, T> {
    Element {
        id: ElementId(*id),
        priority: priority.clone(),
        value: value.clone(),
    }
}

fn open<P: Key, T: Value, const W: bool>(
    network: &Network,
    store_id: StoreId,
    capacity: u64,
    config: CollectionConfig,
) -> Result<PriorityQueue<P, T, W>, Error> {
    if capacity == 0 {
        return Err(Error::Config {
            kind: QueueKind::<P, T>::NAME,
            reason: format!("the capacity of priority queue {store_id} must be at least 1"),
        });
    }
    let kind = QueueKind {
        capacity,
        types: PhantomData,
    };
    let handle = Handle::open(network, store_id, config, kind, W)?;
    Ok(PriorityQueue { handle, capacity })
}

impl<P: Key, T: Value> PriorityQueueWriter<P, T> {
    /// Opens the queue `store_id`, bounded to `capacity` elements, as a writer with the
    /// default settings.
    pub fn writer(
        network: &Network,
        store_id: impl Into<StoreId>,
        capacity: u64,
    ) -> Result<Self, Error> {
        Self::writer_with_config(network, store_id, capacity, CollectionConfig::default())
    }

    /// Opens the queue `store_id` as a writer; every member must use the same capacity
    /// and `config`.
    pub fn writer_with_config(
        network: &Network,
        store_id: impl Into<StoreId>,
        capacity: u64,
        config: impl Into<CollectionConfig>,
    ) -> Result<Self, Error> {
        open(network, store_id.into(), capacity, config.into())
    }

    /// Queues `value` with `priority`; resolves to its id and, when the queue was full,
    /// the element dropped (see the type's docs).
    pub fn push(
        &self,
        priority: P,
        value: T,
    ) -> impl Future<Output = Result<Pushed<P, T>, Error>> + Send + 'static {
        let done = self
            .handle
            .execute_for_reply("push", QueueOp::Push(priority, value));
        async move {
            match done.await? {
                (version, QueueReply::Pushed { id, evicted }) => Ok(Pushed {
                    version,
                    id: ElementId(id),
                    evicted,
                }),
                (version, QueueReply::IdsExhausted) => Err(Error::Refused {
                    kind: "priority_queue",
                    op: "push",
                    version,
                    reason: "every element id is used",
                }),
                (version, QueueReply::Taken(_)) => Err(mismatch("push", version)),
            }
        }
    }

    /// Removes and resolves to the smallest element (`None` when empty).
    pub fn pop_min(
        &self,
    ) -> impl Future<Output = Result<Taken<Element<P, T>>, Error>> + Send + 'static {
        self.take("pop_min", QueueOp::PopMin)
    }

    /// Removes and resolves to the greatest element (`None` when empty).
    pub fn pop_max(
        &self,
    ) -> impl Future<Output = Result<Taken<Element<P, T>>, Error>> + Send + 'static {
        self.take("pop_max", QueueOp::PopMax)
    }

    /// Removes and resolves to the element `id` (`None` when it is gone).
    pub fn remove(
        &self,
        id: ElementId,
    ) -> impl Future<Output = Result<Taken<Element<P, T>>, Error>> + Send + 'static {
        self.take("remove", QueueOp::Remove(id.0))
    }

    /// Gives the element `id` a new priority (it keeps its id, so its rank among equal
    /// priorities); no-op when it is gone.
    pub fn update_priority(
        &self,
        id: ElementId,
        priority: P,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle
            .execute("update_priority", QueueOp::Update(id.0, priority))
    }

    /// Removes every element whose priority is in `range`.
    pub fn remove_range(
        &self,
        range: impl RangeBounds<P>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        let op = QueueOp::RemoveRange(range.start_bound().cloned(), range.end_bound().cloned());
        self.handle.execute("remove_range", op)
    }

    /// Removes every element (ids keep growing: none is ever reused).
    pub fn clear(&self) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("clear", QueueOp::Clear)
    }

    fn take(
        &self,
        name: &'static str,
        op: QueueOp<P, T>,
    ) -> impl Future<Output = Result<Taken<Element<P, T>>, Error>> + Send + 'static {
        let done = self.handle.execute_for_reply(name, op);
        async move {
            match done.await? {
                (version, QueueReply::Taken(value)) => Ok(Taken { version, value }),
                (version, QueueReply::Pushed { .. } | QueueReply::IdsExhausted) => {
                    Err(mismatch(name, version))
                }
            }
        }
    }
}

fn mismatch(op: &'static str, version: Version) -> Error {
    Error::OutcomeUnknown {
        kind: "priority_queue",
        op,
        version,
    }
}

impl<P: Key, T: Value> PriorityQueueReader<P, T> {
    /// Opens the queue `store_id` as a reader with the default settings; `capacity` must
    /// match the writers'.
    pub fn reader(
        network: &Network,
        store_id: impl Into<StoreId>,
        capacity: u64,
    ) -> Result<Self, Error> {
        Self::reader_with_config(network, store_id, capacity, CollectionConfig::default())
    }

    /// Opens the queue `store_id` as a reader; `capacity` and `config` must match the
    /// writers'.
    pub fn reader_with_config(
        network: &Network,
        store_id: impl Into<StoreId>,
        capacity: u64,
        config: impl Into<CollectionConfig>,
    ) -> Result<Self, Error> {
        open(network, store_id.into(), capacity, config.into())
    }
}

/// The queue's operations.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "P: Key, T: Value")]
pub(crate) enum QueueOp<P, T> {
    Push(P, T),
    PopMin,
    PopMax,
    Remove(u64),
    Update(u64, P),
    RemoveRange(Bound<P>, Bound<P>),
    Clear,
}

/// What a queue operation reports to its issuer.
pub(crate) enum QueueReply<P, T> {
    Pushed {
        id: u64,
        evicted: Option<Element<P, T>>,
    },
    Taken(Option<Element<P, T>>),
    /// A push found every element id used (only a snapshot carrying the last id can
    /// bring that about): refused instead of wrapping to ids already given out.
    IdsExhausted,
}

/// The queue's state: elements by rank and by id, and the next id to assign.
#[derive(Clone)]
pub(crate) struct QueueState<P: Ord + Clone, T: Clone> {
    by_rank: im::OrdMap<(P, u64), T>,
    by_id: im::OrdMap<u64, P>,
    next_id: u64,
}

impl<P: Ord + Clone, T: Clone> Default for QueueState<P, T> {
    fn default() -> Self {
        QueueState {
            by_rank: im::OrdMap::new(),
            by_id: im::OrdMap::new(),
            next_id: 1,
        }
    }
}

impl<P: Ord + Clone, T: Clone> QueueState<P, T> {
    fn remove_key(&mut self, key: &(P, u64)) -> Option<Element<P, T>> {
        let value = self.by_rank.remove(key)?;
        self.by_id.remove(&key.1);
        Some(Element {
            id: ElementId(key.1),
            priority: key.0.clone(),
            value,
        })
    }

    fn pop_min(&mut self) -> Option<Element<P, T>> {
        let key = self.by_rank.get_min()?.0.clone();
        self.remove_key(&key)
    }

    fn pop_max(&mut self) -> Option<Element<P, T>> {
        let key = self.by_rank.get_max()?.0.clone();
        self.remove_key(&key)
    }

    fn remove_id(&mut self, id: u64) -> Option<Element<P, T>> {
        let priority = self.by_id.get(&id)?.clone();
        self.remove_key(&(priority, id))
    }

    fn insert(&mut self, id: u64, priority: P, value: T) {
        self.by_id.insert(id, priority.clone());
        self.by_rank.insert((priority, id), value);
    }
}

/// A pop or remove that took `taken` (changed the state if it took something).
fn taken<P, T>(taken: Option<Element<P, T>>) -> Applied<QueueReply<P, T>> {
    Applied::reply(taken.is_some(), QueueReply::Taken(taken))
}

/// One snapshot item: the id counter first, then the elements in order.
#[derive(Serialize, Deserialize)]
#[serde(bound = "P: Key, T: Value")]
pub(crate) enum QueueItem<P, T> {
    NextId(u64),
    Element(u64, P, T),
}

/// The queue kind.
pub(crate) struct QueueKind<P, T> {
    capacity: u64,
    types: PhantomData<fn() -> (P, T)>,
}

impl<P: Key, T: Value> Kind for QueueKind<P, T> {
    const NAME: &'static str = "priority_queue";
    type State = QueueState<P, T>;
    type Op = QueueOp<P, T>;
    type Reply = QueueReply<P, T>;
    type Item = QueueItem<P, T>;

    fn type_names(&self) -> Vec<&'static str> {
        vec![type_name::<P>(), type_name::<T>()]
    }

    fn settings(&self) -> Vec<u8> {
        self.capacity.to_le_bytes().to_vec()
    }

    fn apply(&self, q: &mut Self::State, op: Self::Op) -> Applied<Self::Reply> {
        match op {
            QueueOp::Push(priority, value) => {
                let id = q.next_id;
                let Some(next) = id.checked_add(1) else {
                    return Applied::reply(false, QueueReply::IdsExhausted);
                };
                q.next_id = next;
                q.insert(id, priority, value);
                let evicted = if q.by_rank.len() as u64 > self.capacity {
                    q.pop_min()
                } else {
                    None
                };
                // The id counter moved even when the new element was dropped at once.
                Applied::reply(true, QueueReply::Pushed { id, evicted })
            }
            QueueOp::PopMin => taken(q.pop_min()),
            QueueOp::PopMax => taken(q.pop_max()),
            QueueOp::Remove(id) => taken(q.remove_id(id)),
            QueueOp::Update(id, priority) => match q.by_id.get(&id) {
                Some(old) if *old != priority => {
                    let changed = q.remove_id(id).map(|e| q.insert(id, priority, e.value));
                    Applied::changed(changed.is_some())
                }
                _ => Applied::changed(false),
            },
            QueueOp::RemoveRange(lo, hi) => {
                // Keys are (priority, id) and ids are below u64::MAX, so these bounds on
                // keys select exactly the priorities within (lo, hi).
                let start = match lo {
                    Bound::Included(p) => Bound::Included((p, 0)),
                    Bound::Excluded(p) => Bound::Excluded((p, u64::MAX)),
                    Bound::Unbounded => Bound::Unbounded,
                };
                let below_hi = |p: &P| match &hi {
                    Bound::Included(h) => p <= h,
                    Bound::Excluded(h) => p < h,
                    Bound::Unbounded => true,
                };
                let doomed: Vec<(P, u64)> = q
                    .by_rank
                    .range((start, Bound::Unbounded))
                    .map(|(k, _)| k)
                    .take_while(|(p, _)| below_hi(p))
                    .cloned()
                    .collect();
                for key in &doomed {
                    q.remove_key(key);
                }
                Applied::changed(!doomed.is_empty())
            }
            QueueOp::Clear => {
                let changed = !q.by_rank.is_empty();
                q.by_rank.clear();
                q.by_id.clear();
                Applied::changed(changed)
            }
        }
    }

    fn len(q: &Self::State) -> u64 {
        1 + q.by_rank.len() as u64
    }

    fn items(q: &Self::State, range: Range<u64>) -> Option<impl Iterator<Item = Self::Item>> {
        let (skip, take) = bounds(&range, Self::len(q))?;
        let elements = q
            .by_rank
            .iter()
            .map(|((p, id), v)| QueueItem::Element(*id, p.clone(), v.clone()));
        Some(
            std::iter::once(QueueItem::NextId(q.next_id))
                .chain(elements)
                .skip(skip)
                .take(take),
        )
    }

    fn append(q: &mut Self::State, items: impl IntoIterator<Item = Self::Item>) {
        for item in items {
            match item {
                QueueItem::NextId(next) => q.next_id = next,
                QueueItem::Element(id, priority, value) => q.insert(id, priority, value),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::testing::*;
    use super::super::machine::Machine;
    use super::*;

    type Op = QueueOp<u32, String>;

    fn kind(capacity: u64) -> QueueKind<u32, String> {
        QueueKind {
            capacity,
            types: PhantomData,
        }
    }

    fn ranks(q: &QueueState<u32, String>) -> Vec<(u32, u64, String)> {
        q.by_rank
            .iter()
            .map(|((p, id), v)| (*p, *id, v.clone()))
            .collect()
    }

    fn ops() -> Vec<Op> {
        vec![
            Op::Push(5, "a".into()),                                 // id 1
            Op::Push(3, "b".into()),                                 // id 2
            Op::Push(5, "c".into()),                                 // id 3
            Op::Push(9, "d".into()),                                 // id 4
            Op::Push(1, "e".into()), // id 5: full (capacity 4): itself dropped
            Op::Push(7, "f".into()), // id 6: drops (3, 2)
            Op::Update(1, 8),        // a: 5 -> 8
            Op::Update(42, 1),       // gone: no-op
            Op::PopMax,              // takes (9, 4)
            Op::Push(6, "g".into()), // id 7 (queue had 3)
            Op::RemoveRange(Bound::Included(6), Bound::Excluded(8)), // drops g (6) and f (7)
            Op::Remove(3),           // c
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
        assert_eq!(ranks(one.state()), vec![(8, 1, "a".to_string())]);
        assert_eq!(ranks(one.state()), ranks(two.state()));
        assert_eq!(one.state().by_id, two.state().by_id);
        assert_eq!(one.state().next_id, 8);
        apply(&mut one, Op::Clear);
        assert!(one.state().by_rank.is_empty() && one.state().by_id.is_empty());
    }

    #[test]
    fn a_full_queue_drops_its_minimum_and_pops_follow_the_order() {
        let (mut m, replies) = machine(kind(3));
        let push = |m: &mut Machine<QueueKind<u32, String>>, p: u32, v: &str| match ask(
            m,
            &replies,
            Op::Push(p, v.into()),
        ) {
            Some(QueueReply::Pushed { id, evicted }) => (id, evicted.map(|e| e.id.0)),
            _ => panic!("push reports its id"),
        };
        assert_eq!(push(&mut m, 2, "x"), (1, None));
        assert_eq!(push(&mut m, 2, "y"), (2, None));
        assert_eq!(push(&mut m, 4, "z"), (3, None));
        // Full: equal priorities rank by id, so the older "x" is the minimum.
        assert_eq!(push(&mut m, 3, "w"), (4, Some(1)));
        // Below everything: the new element itself is dropped.
        assert_eq!(push(&mut m, 1, "v"), (5, Some(5)));
        let pop = |m: &mut Machine<QueueKind<u32, String>>, op| match ask(m, &replies, op) {
            Some(QueueReply::Taken(e)) => e.map(|e| (e.priority, e.value)),
            _ => panic!("pop reports what it took"),
        };
        assert_eq!(pop(&mut m, Op::PopMax), Some((4, "z".to_string())));
        assert_eq!(pop(&mut m, Op::PopMin), Some((2, "y".to_string())));
        assert_eq!(pop(&mut m, Op::PopMin), Some((3, "w".to_string())));
        assert_eq!(pop(&mut m, Op::PopMin), None);
        assert_eq!(replies.waiting(), 0);
    }

    #[test]
    fn remove_range_bounds() {
        let (mut m, _) = machine(kind(100));
        for p in 0..10 {
            apply(&mut m, Op::Push(p, p.to_string()));
        }
        apply(
            &mut m,
            Op::RemoveRange(Bound::Excluded(2), Bound::Included(4)),
        );
        apply(
            &mut m,
            Op::RemoveRange(Bound::Included(8), Bound::Unbounded),
        );
        apply(
            &mut m,
            Op::RemoveRange(Bound::Unbounded, Bound::Excluded(1)),
        );
        apply(
            &mut m,
            Op::RemoveRange(Bound::Included(6), Bound::Excluded(6)),
        );
        let left: Vec<u32> = ranks(m.state()).into_iter().map(|(p, _, _)| p).collect();
        assert_eq!(left, vec![1, 2, 5, 6, 7]);
    }

    #[test]
    fn a_push_with_every_id_used_is_refused_and_changes_nothing() {
        let k = kind(3);
        let mut q = QueueState::default();
        QueueKind::append(&mut q, [QueueItem::Element(7, 1, "a".to_string())]);
        QueueKind::append(&mut q, [QueueItem::NextId(u64::MAX)]);
        let applied = k.apply(&mut q, Op::Push(5, "b".into()));
        assert!(!applied.changed);
        assert!(matches!(applied.reply, Some(QueueReply::IdsExhausted)));
        assert_eq!(ranks(&q), vec![(1, 7, "a".to_string())]);
        assert_eq!(q.next_id, u64::MAX);
    }

    #[test]
    fn snapshot_round_trip_keeps_ids_and_the_counter() {
        let (mut m, _) = machine(kind(50));
        for i in 0..80u32 {
            apply(&mut m, Op::Push(i % 7, format!("v{i}")));
        }
        apply(&mut m, Op::PopMax);
        for chunk in [1, 9, 100] {
            let back = round_trip(&m, chunk);
            assert_eq!(ranks(&back), ranks(m.state()));
            assert_eq!(back.by_id, m.state().by_id);
            assert_eq!(back.next_id, m.state().next_id);
        }
    }
}
