//! `Vec`: a replicated vector.

use super::handle::Handle;
use super::machine::{bounds, Applied, Kind};
use super::{CollectionConfig, Error, StoreId, Taken, Value, Version, When, READER, WRITER};
use serde::{Deserialize, Serialize};
use std::any::type_name;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Range;

/// Mutable access to a replicated vector; writers may lead the vector's group.
pub type VecWriter<T> = Vec<T, WRITER>;

/// Read-only access to a replicated vector; readers are observers.
pub type VecReader<T> = Vec<T, READER>;

/// A replicated vector. Reads are local: `get` is O(log n), `iter` takes an O(1) snapshot.
///
/// Indices are checked when the operation applies, against the vector as it is then (which
/// may differ from what the writer saw): an operation whose index is out of range —
/// `insert` beyond the length, `remove` or `swap` at or beyond it, `truncate` to a length
/// not below it, `pop` of an empty vector — changes nothing, on every node, and still
/// resolves to a version (`pop` and `remove` then report `None`).
pub struct Vec<T: Value, const IS_WRITER: bool = WRITER> {
    handle: Handle<VecKind<T>>,
}

// Reads, for readers and writers.
impl<T: Value, const IS_WRITER: bool> Vec<T, IS_WRITER> {
    /// The element at `index`.
    pub fn get(&self, index: usize) -> Option<T> {
        self.handle.read(|v| v.get(index).cloned())
    }

    /// The first element.
    pub fn first(&self) -> Option<T> {
        self.handle.read(|v| v.front().cloned())
    }

    /// The last element.
    pub fn last(&self) -> Option<T> {
        self.handle.read(|v| v.back().cloned())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.handle.read(|v| v.len())
    }

    /// Whether the vector is empty.
    pub fn is_empty(&self) -> bool {
        self.handle.read(|v| v.is_empty())
    }

    /// The first element (alias of [`Self::first`], mosaik's name).
    pub fn front(&self) -> Option<T> {
        self.first()
    }

    /// The last element (alias of [`Self::last`], mosaik's name).
    pub fn back(&self) -> Option<T> {
        self.last()
    }

    /// The elements in order, as of now.
    pub fn iter(&self) -> impl Iterator<Item = T> + Send + 'static {
        self.handle.state().into_iter()
    }

    handle_accessors!("vector");

    opener!(reader, VecReader<T>, "vector", VecKind::new());

    fn from_handle(handle: Handle<VecKind<T>>) -> Self {
        Vec { handle }
    }
}

// Searches, for element types that compare.
impl<T: Value + PartialEq, const IS_WRITER: bool> Vec<T, IS_WRITER> {
    /// Whether `value` is an element. O(n).
    pub fn contains(&self, value: &T) -> bool {
        self.handle.read(|v| v.contains(value))
    }

    /// The index of the first element equal to `value`. O(n).
    pub fn index_of(&self, value: &T) -> Option<usize> {
        self.handle.read(|v| v.index_of(value))
    }
}

fn index(i: usize) -> u64 {
    u64::try_from(i).unwrap_or(u64::MAX)
}

impl<T: Value> VecWriter<T> {
    opener!(writer, "vector", VecKind::new());

    /// Appends `value`.
    pub fn push(&self, value: T) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("push", VecOp::Push(value))
    }

    /// Appends `value` (alias of [`Self::push`], mosaik's name).
    pub fn push_back(
        &self,
        value: T,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.push(value)
    }

    /// Inserts `value` before the first element.
    pub fn push_front(
        &self,
        value: T,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("push_front", VecOp::PushFront(value))
    }

    /// Removes the last element and resolves to it.
    pub fn pop(&self) -> impl Future<Output = Result<Taken<T>, Error>> + Send + 'static {
        self.take("pop", VecOp::Pop)
    }

    /// Removes the last element and resolves to it (alias of [`Self::pop`], mosaik's
    /// name).
    pub fn pop_back(&self) -> impl Future<Output = Result<Taken<T>, Error>> + Send + 'static {
        self.pop()
    }

    /// Removes the first element and resolves to it (`None` when empty).
    pub fn pop_front(&self) -> impl Future<Output = Result<Taken<T>, Error>> + Send + 'static {
        self.take("pop_front", VecOp::PopFront)
    }

    /// Inserts `value` at `index`, shifting later elements; no-op if `index > len`.
    pub fn insert(
        &self,
        index: usize,
        value: T,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle
            .execute("insert", VecOp::Insert(self::index(index), value))
    }

    /// Removes the element at `index`, shifting later elements, and resolves to it; no-op
    /// if `index >= len`.
    pub fn remove(
        &self,
        index: usize,
    ) -> impl Future<Output = Result<Taken<T>, Error>> + Send + 'static {
        self.take("remove", VecOp::Remove(self::index(index)))
    }

    /// Swaps the elements at `a` and `b`; no-op if either is out of range.
    pub fn swap(
        &self,
        a: usize,
        b: usize,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("swap", VecOp::Swap(index(a), index(b)))
    }

    /// Keeps the first `len` elements; no-op if the vector is not longer.
    pub fn truncate(
        &self,
        len: usize,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("truncate", VecOp::Truncate(index(len)))
    }

    /// Appends every value, as one command (applied atomically).
    pub fn extend(
        &self,
        values: impl IntoIterator<Item = T>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle
            .execute("extend", VecOp::Extend(values.into_iter().collect()))
    }

    /// Removes every element.
    pub fn clear(&self) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("clear", VecOp::Clear)
    }

    fn take(
        &self,
        name: &'static str,
        op: VecOp<T>,
    ) -> impl Future<Output = Result<Taken<T>, Error>> + Send + 'static {
        let done = self.handle.execute_for_reply(name, op);
        async move { done.await.map(|(version, value)| Taken { version, value }) }
    }
}

/// The vector's operations. Indices are `u64` on the wire, whatever the node's `usize`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "T: Value")]
pub(crate) enum VecOp<T> {
    Push(T),
    Pop,
    Insert(u64, T),
    Remove(u64),
    Swap(u64, u64),
    Truncate(u64),
    Extend(std::vec::Vec<T>),
    Clear,
    // New variants go last: the log holds operations by variant number.
    PushFront(T),
    PopFront,
}

/// The vector kind.
pub(crate) struct VecKind<T>(PhantomData<fn() -> T>);

impl<T> VecKind<T> {
    pub(crate) fn new() -> Self {
        VecKind(PhantomData)
    }
}

/// `i` as an index into `v`, when in range.
fn within<T: Clone>(v: &imbl::Vector<T>, i: u64) -> Option<usize> {
    usize::try_from(i).ok().filter(|&i| i < v.len())
}

impl<T: Value> Kind for VecKind<T> {
    const NAME: &'static str = "vec";
    type State = imbl::Vector<T>;
    type Op = VecOp<T>;
    /// The element a `pop` or `remove` took.
    type Reply = Option<T>;
    type Item = T;

    fn type_names(&self) -> std::vec::Vec<&'static str> {
        vec![type_name::<T>()]
    }

    fn apply(&self, v: &mut imbl::Vector<T>, op: VecOp<T>) -> Applied<Option<T>> {
        match op {
            VecOp::Push(value) => {
                v.push_back(value);
                Applied::changed(true)
            }
            VecOp::Pop => {
                let taken = v.pop_back();
                Applied::reply(taken.is_some(), taken)
            }
            VecOp::Insert(i, value) => match usize::try_from(i).ok().filter(|&i| i <= v.len()) {
                Some(i) => {
                    v.insert(i, value);
                    Applied::changed(true)
                }
                None => Applied::changed(false),
            },
            VecOp::Remove(i) => match within(v, i) {
                Some(i) => Applied::reply(true, Some(v.remove(i))),
                None => Applied::reply(false, None),
            },
            VecOp::Swap(a, b) => match (within(v, a), within(v, b)) {
                (Some(a), Some(b)) => {
                    v.swap(a, b);
                    Applied::changed(a != b)
                }
                _ => Applied::changed(false),
            },
            VecOp::Truncate(len) => match within(v, len) {
                Some(len) => {
                    v.truncate(len);
                    Applied::changed(true)
                }
                None => Applied::changed(false),
            },
            VecOp::Extend(values) => {
                let changed = !values.is_empty();
                v.extend(values);
                Applied::changed(changed)
            }
            VecOp::Clear => Applied::changed(!std::mem::take(v).is_empty()),
            VecOp::PushFront(value) => {
                v.push_front(value);
                Applied::changed(true)
            }
            VecOp::PopFront => {
                let taken = v.pop_front();
                Applied::reply(taken.is_some(), taken)
            }
        }
    }

    fn len(v: &imbl::Vector<T>) -> u64 {
        v.len() as u64
    }

    fn items(v: &imbl::Vector<T>, range: Range<u64>) -> Option<impl Iterator<Item = T>> {
        let (skip, take) = bounds(&range, Self::len(v))?;
        // O(log n) to cut the range out of a clone that shares structure with `v`.
        let mut tail = v.clone().split_off(skip);
        tail.truncate(take);
        Some(tail.into_iter())
    }

    fn append(
        v: &mut imbl::Vector<T>,
        _at: u64,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), String> {
        v.extend(items);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::testing::*;
    use super::*;

    type Op = VecOp<u32>;

    fn ops() -> std::vec::Vec<Op> {
        vec![
            Op::Push(1),
            Op::Push(2),
            Op::Extend(vec![3, 4, 5]),
            Op::Insert(0, 0),  // 0 1 2 3 4 5
            Op::Insert(6, 6),  // 0 1 2 3 4 5 6 (insert at len appends)
            Op::Insert(99, 9), // out of range: no-op
            Op::Remove(1),     // 0 2 3 4 5 6
            Op::Remove(6),     // out of range: no-op
            Op::Swap(0, 5),    // 6 2 3 4 5 0
            Op::Swap(0, 6),    // out of range: no-op
            Op::Pop,           // 6 2 3 4 5
            Op::Truncate(4),   // 6 2 3 4
            Op::Truncate(10),  // no-op
            Op::PushFront(9),  // 9 6 2 3 4
            Op::PopFront,      // 6 2 3 4
            Op::PushFront(1),  // 1 6 2 3 4
        ]
    }

    fn items(v: &imbl::Vector<u32>) -> std::vec::Vec<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn every_operation_applies_alike_on_two_machines() {
        let (mut one, _) = machine(VecKind::<u32>::new());
        let (mut two, _) = machine(VecKind::<u32>::new());
        for op in ops() {
            apply(&mut one, op);
        }
        marker(&mut one);
        apply_batch(&mut two, ops());
        assert_eq!(items(one.state()), vec![1, 6, 2, 3, 4]);
        assert_eq!(one.state(), two.state());
        apply(&mut one, Op::Clear);
        assert!(one.state().is_empty());
    }

    #[test]
    fn out_of_range_operations_change_nothing_and_publish_nothing() {
        let (mut m, replies) = machine(VecKind::<u32>::new());
        let changes = m.subscribe_changes();
        assert_eq!(ask(&mut m, &replies, Op::Pop), Some(None));
        assert_eq!(ask(&mut m, &replies, Op::PopFront), Some(None));
        assert_eq!(ask(&mut m, &replies, Op::Remove(0)), Some(None));
        for op in [
            Op::Insert(1, 1),
            Op::Swap(0, 0),
            Op::Truncate(0),
            Op::Extend(vec![]),
        ] {
            apply(&mut m, op);
        }
        assert_eq!(*changes.borrow(), 0);
        apply(&mut m, Op::Push(5));
        assert_eq!(ask(&mut m, &replies, Op::Remove(0)), Some(Some(5)));
        assert_eq!(*changes.borrow(), 2);
        assert_eq!(replies.waiting(), 0);
    }

    #[test]
    fn snapshot_round_trip_in_chunks() {
        let (mut m, _) = machine(VecKind::<u32>::new());
        apply(&mut m, Op::Extend((0..500).collect()));
        for chunk in [1, 3, 64, 500, 10_000] {
            assert_eq!(&round_trip(&m, chunk), m.state());
        }
    }
}
