//! `Set`: a replicated ordered set.

use super::handle::Handle;
use super::machine::{bounds, Applied, Kind};
use super::{CollectionConfig, Error, Key, StoreId, Version, When, READER, WRITER};
use serde::{Deserialize, Serialize};
use std::any::type_name;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Range;

/// Mutable access to a replicated set; writers may lead the set's group.
pub type SetWriter<T> = Set<T, WRITER>;

/// Read-only access to a replicated set; readers are observers.
pub type SetReader<T> = Set<T, READER>;

/// A replicated set, iterated in order. Reads are local: `contains` is O(log n).
pub struct Set<T: Key, const IS_WRITER: bool = WRITER> {
    handle: Handle<SetKind<T>>,
}

// Reads, for readers and writers.
impl<T: Key, const IS_WRITER: bool> Set<T, IS_WRITER> {
    /// Whether `value` is in the set.
    pub fn contains(&self, value: &T) -> bool {
        self.handle.read(|s| s.contains(value))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.handle.read(|s| s.len())
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.handle.read(|s| s.is_empty())
    }

    /// The elements in order, as of now.
    pub fn iter(&self) -> impl Iterator<Item = T> + Send + 'static {
        self.handle.state().into_iter()
    }

    /// Whether every element of this set is in `other` (as each node holds them now;
    /// `other` may be a reader or a writer, of any set of the same element type).
    pub fn is_subset<const W: bool>(&self, other: &Set<T, W>) -> bool {
        let theirs = other.handle.state();
        self.handle.read(|mine| mine.is_subset(&theirs))
    }

    handle_accessors!("set");

    opener!(reader, SetReader<T>, "set", SetKind::new());

    fn from_handle(handle: Handle<SetKind<T>>) -> Self {
        Set { handle }
    }
}

impl<T: Key> SetWriter<T> {
    opener!(writer, "set", SetKind::new());

    /// Adds `value` (already present: changes nothing).
    pub fn insert(
        &self,
        value: T,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("insert", SetOp::Insert(value))
    }

    /// Removes `value` (absent: changes nothing).
    pub fn remove(
        &self,
        value: T,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("remove", SetOp::Remove(value))
    }

    /// Removes every value of `values` as one command: one log entry, applied at once on
    /// every node (all of them gone, or, if the write fails, none). Absent values are
    /// skipped.
    pub fn remove_many(
        &self,
        values: impl IntoIterator<Item = T>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute(
            "remove_many",
            SetOp::RemoveMany(values.into_iter().collect()),
        )
    }

    /// Adds every value, as one command (applied atomically).
    pub fn extend(
        &self,
        values: impl IntoIterator<Item = T>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle
            .execute("extend", SetOp::Extend(values.into_iter().collect()))
    }

    /// Removes every element.
    pub fn clear(&self) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("clear", SetOp::Clear)
    }
}

/// The set's operations.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "T: Key")]
pub(crate) enum SetOp<T> {
    Insert(T),
    Remove(T),
    Extend(Vec<T>),
    Clear,
    // New variants go last: the log holds operations by variant number.
    RemoveMany(Vec<T>),
}

/// The set kind.
pub(crate) struct SetKind<T>(PhantomData<fn() -> T>);

impl<T> SetKind<T> {
    pub(crate) fn new() -> Self {
        SetKind(PhantomData)
    }
}

impl<T: Key> Kind for SetKind<T> {
    const NAME: &'static str = "set";
    type State = imbl::OrdSet<T>;
    type Op = SetOp<T>;
    type Reply = ();
    type Item = T;

    fn type_names(&self) -> Vec<&'static str> {
        vec![type_name::<T>()]
    }

    fn apply(&self, set: &mut imbl::OrdSet<T>, op: SetOp<T>) -> Applied<()> {
        match op {
            SetOp::Insert(value) => Applied::changed(set.insert(value).is_none()),
            SetOp::Remove(value) => Applied::changed(set.remove(&value).is_some()),
            SetOp::Extend(values) => {
                let mut changed = false;
                for value in values {
                    changed |= set.insert(value).is_none();
                }
                Applied::changed(changed)
            }
            SetOp::Clear => Applied::changed(!std::mem::take(set).is_empty()),
            SetOp::RemoveMany(values) => {
                let mut changed = false;
                for value in &values {
                    changed |= set.remove(value).is_some();
                }
                Applied::changed(changed)
            }
        }
    }

    fn len(set: &imbl::OrdSet<T>) -> u64 {
        set.len() as u64
    }

    fn items(set: &imbl::OrdSet<T>, range: Range<u64>) -> Option<impl Iterator<Item = T>> {
        let (skip, take) = bounds(&range, Self::len(set))?;
        Some(set.iter().skip(skip).take(take).cloned())
    }

    fn append(
        set: &mut imbl::OrdSet<T>,
        _at: u64,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), String> {
        set.extend(items);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::testing::*;
    use super::*;

    type Op = SetOp<String>;

    fn ops() -> Vec<Op> {
        vec![
            Op::Insert("b".into()),
            Op::Insert("a".into()),
            Op::Insert("a".into()),
            Op::Extend(vec!["d".into(), "c".into()]),
            Op::Remove("d".into()),
            Op::Remove("zz".into()),
            Op::Extend(vec!["x".into(), "y".into()]),
            Op::RemoveMany(vec!["x".into(), "y".into(), "zz".into()]),
        ]
    }

    #[test]
    fn every_operation_applies_alike_on_two_machines() {
        let (mut one, _) = machine(SetKind::<String>::new());
        let (mut two, _) = machine(SetKind::<String>::new());
        let changes = one.subscribe_changes();
        for op in ops() {
            apply(&mut one, op);
        }
        marker(&mut one);
        apply_batch(&mut two, ops());
        let items: Vec<String> = one.state().iter().cloned().collect();
        assert_eq!(items, vec!["a", "b", "c"], "in order");
        assert_eq!(one.state(), two.state());
        assert_eq!(
            *changes.borrow(),
            6,
            "a second insert and a missing remove change nothing; remove_many changes once"
        );
        apply(&mut one, Op::Clear);
        assert!(one.state().is_empty());
    }

    #[test]
    fn snapshot_round_trip_in_chunks() {
        let (mut m, _) = machine(SetKind::<u64>::new());
        apply(&mut m, SetOp::Extend((0..300).rev().collect()));
        for chunk in [1, 10, 300] {
            assert_eq!(&round_trip(&m, chunk), m.state());
        }
    }
}
