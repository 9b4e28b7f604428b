//! `Cell`: one replicated value (the distributed `tokio::sync::watch`).

use super::handle::Handle;
use super::machine::{single, Applied, Kind};
use super::primitives::same_encoding;
use super::{CollectionConfig, Error, Exchange, StoreId, Value, Version, When, READER, WRITER};
use serde::{Deserialize, Serialize};
use std::any::type_name;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Range;

/// Mutable access to a replicated cell; writers may lead the cell's group.
pub type CellWriter<T> = Cell<T, WRITER>;

/// Read-only access to a replicated cell; readers are observers (they never vote or lead).
pub type CellReader<T> = Cell<T, READER>;

/// A replicated cell: at most one value, replaced by each write. Every node observes the
/// latest committed value; reads are local and O(1).
pub struct Cell<T: Value, const IS_WRITER: bool = WRITER> {
    handle: Handle<CellKind<T>>,
}

// Reads, for readers and writers.
impl<T: Value, const IS_WRITER: bool> Cell<T, IS_WRITER> {
    /// The current value; `None` before the first write or after `clear`.
    pub fn read(&self) -> Option<T> {
        self.handle.read(|v| v.clone())
    }

    /// The current value (alias of [`Self::read`]).
    pub fn get(&self) -> Option<T> {
        self.read()
    }

    /// Whether the cell holds no value.
    pub fn is_empty(&self) -> bool {
        self.handle.read(|v| v.is_none())
    }

    /// Whether the cell holds no value (alias of [`Self::is_empty`]).
    pub fn is_none(&self) -> bool {
        self.is_empty()
    }

    /// Whether the cell holds a value.
    pub fn is_some(&self) -> bool {
        !self.is_empty()
    }

    handle_accessors!("cell");

    opener!(reader, CellReader<T>, "cell", CellKind::new());

    fn from_handle(handle: Handle<CellKind<T>>) -> Self {
        Cell { handle }
    }
}

impl<T: Value> CellWriter<T> {
    opener!(writer, "cell", CellKind::new());

    /// Replaces the value; resolves to the version that contains the write.
    pub fn write(&self, value: T) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("write", CellOp::Write(value))
    }

    /// Replaces the value (alias of [`Self::write`]).
    pub fn set(&self, value: T) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.write(value)
    }

    /// Replaces the value with `new` if it is `current` (compared by encoding; `None`
    /// means empty); otherwise changes nothing. Resolves to what it did.
    pub fn compare_exchange(
        &self,
        current: Option<T>,
        new: Option<T>,
    ) -> impl Future<Output = Result<Exchange<T>, Error>> + Send + 'static {
        let done = self
            .handle
            .execute_for_reply("compare_exchange", CellOp::CompareExchange { current, new });
        async move { done.await.map(Exchange::from_reply) }
    }

    /// Empties the cell.
    pub fn clear(&self) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("clear", CellOp::Clear)
    }
}

/// The cell's operations.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "T: Value")]
pub(crate) enum CellOp<T> {
    Write(T),
    CompareExchange { current: Option<T>, new: Option<T> },
    Clear,
}

/// The cell kind.
pub(crate) struct CellKind<T>(PhantomData<fn() -> T>);

impl<T> CellKind<T> {
    pub(crate) fn new() -> Self {
        CellKind(PhantomData)
    }
}

impl<T: Value> Kind for CellKind<T> {
    const NAME: &'static str = "cell";
    type State = Option<T>;
    type Op = CellOp<T>;
    /// (exchanged, previous) of a compare-exchange.
    type Reply = (bool, Option<T>);
    type Item = T;

    fn type_names(&self) -> Vec<&'static str> {
        vec![type_name::<T>()]
    }

    fn apply(&self, state: &mut Option<T>, op: CellOp<T>) -> Applied<Self::Reply> {
        match op {
            CellOp::Write(value) => {
                *state = Some(value);
                Applied::changed(true)
            }
            CellOp::CompareExchange { current, new } => {
                let previous = state.clone();
                if same_encoding(state.as_ref(), current.as_ref()) {
                    let changed = !same_encoding(state.as_ref(), new.as_ref());
                    *state = new;
                    Applied::reply(changed, (true, previous))
                } else {
                    Applied::reply(false, (false, previous))
                }
            }
            CellOp::Clear => Applied::changed(state.take().is_some()),
        }
    }

    fn len(state: &Option<T>) -> u64 {
        single::len(state)
    }

    fn items(state: &Option<T>, range: Range<u64>) -> Option<impl Iterator<Item = T>> {
        single::items(state, range)
    }

    fn append(
        state: &mut Option<T>,
        _at: u64,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), String> {
        single::append(state, items)
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::testing::*;
    use super::*;

    fn ops() -> Vec<CellOp<String>> {
        vec![
            CellOp::Write("a".into()),
            CellOp::CompareExchange {
                current: Some("x".into()),
                new: Some("y".into()),
            },
            CellOp::CompareExchange {
                current: Some("a".into()),
                new: Some("b".into()),
            },
            CellOp::Clear,
            CellOp::CompareExchange {
                current: None,
                new: Some("c".into()),
            },
        ]
    }

    #[test]
    fn every_operation_applies_alike_on_two_machines() {
        let (mut one, _) = machine(CellKind::<String>::new());
        let (mut two, _) = machine(CellKind::<String>::new());
        for op in ops() {
            apply(&mut one, op);
        }
        marker(&mut one);
        apply_batch(&mut two, ops());
        assert_eq!(one.state(), &Some("c".to_string()));
        assert_eq!(one.state(), two.state());
    }

    #[test]
    fn compare_exchange_reports_what_it_did() {
        let (mut m, replies) = machine(CellKind::<u32>::new());
        let cas = |current, new| CellOp::CompareExchange { current, new };
        assert_eq!(
            ask(&mut m, &replies, cas(None, Some(1))),
            Some((true, None))
        );
        assert_eq!(
            ask(&mut m, &replies, cas(None, Some(2))),
            Some((false, Some(1)))
        );
        assert_eq!(
            ask(&mut m, &replies, cas(Some(1), None)),
            Some((true, Some(1)))
        );
        assert_eq!(m.state(), &None);
    }

    #[test]
    fn updates_are_published_only_on_change() {
        let (mut m, _) = machine(CellKind::<u32>::new());
        let changes = m.subscribe_changes();
        let state = m.subscribe();
        apply(&mut m, CellOp::Clear);
        assert_eq!(
            *changes.borrow(),
            0,
            "clearing an empty cell changes nothing"
        );
        apply(&mut m, CellOp::Write(4));
        assert_eq!(*changes.borrow(), 1);
        assert_eq!(*state.borrow(), Some(4));
    }

    #[test]
    fn snapshot_round_trip() {
        let (mut m, _) = machine(CellKind::<String>::new());
        assert_eq!(round_trip(&m, 1), None);
        apply(&mut m, CellOp::Write("v".into()));
        assert_eq!(round_trip(&m, 1), Some("v".to_string()));
    }
}
