//! `Once`: a replicated write-once value.

use super::handle::Handle;
use super::machine::{single, Applied, Kind};
use super::{CollectionConfig, Error, StoreId, Value, Version, When, READER, WRITER};
use serde::{Deserialize, Serialize};
use std::any::type_name;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Range;

/// Write access to a replicated once-cell; writers may lead its group.
pub type OnceWriter<T> = Once<T, WRITER>;

/// Read-only access to a replicated once-cell; readers are observers.
pub type OnceReader<T> = Once<T, READER>;

/// A replicated value that is set once: the first write to commit wins, on every node;
/// later writes still commit (and resolve to their version) but change nothing. Useful
/// for electing a value: each writer writes its own and everyone reads the winner.
pub struct Once<T: Value, const IS_WRITER: bool = WRITER> {
    handle: Handle<OnceKind<T>>,
}

// Reads, for readers and writers.
impl<T: Value, const IS_WRITER: bool> Once<T, IS_WRITER> {
    /// The value, once written.
    pub fn get(&self) -> Option<T> {
        self.handle.read(|v| v.clone())
    }

    /// The value, once written (alias of [`Self::get`]).
    pub fn read(&self) -> Option<T> {
        self.get()
    }

    /// Whether the value was written.
    pub fn is_set(&self) -> bool {
        self.handle.read(|v| v.is_some())
    }

    /// Resolves to the value as soon as this node holds it (at once if it does).
    pub async fn await_value(&self) -> Result<T, Error> {
        let mut state = self.handle.subscribe();
        loop {
            if let Some(value) = state.borrow_and_update().as_ref() {
                return Ok(value.clone());
            }
            if state.changed().await.is_err() {
                return Err(self.when().ended("await value"));
            }
        }
    }

    handle_accessors!("once-cell");

    opener!(reader, OnceReader<T>, "once-cell", OnceKind::new());

    fn from_handle(handle: Handle<OnceKind<T>>) -> Self {
        Once { handle }
    }
}

impl<T: Value> OnceWriter<T> {
    opener!(writer, "once-cell", OnceKind::new());

    /// Writes `value` if no value was written before it; resolves to the version of this
    /// write either way (read the value to learn which write won).
    pub fn write(&self, value: T) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.handle.execute("write", OnceOp::Write(value))
    }

    /// Alias of [`Self::write`].
    pub fn set(&self, value: T) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.write(value)
    }
}

/// The once-cell's operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "T: Value")]
pub(crate) enum OnceOp<T> {
    Write(T),
}

/// The once-cell kind.
pub(crate) struct OnceKind<T>(PhantomData<fn() -> T>);

impl<T> OnceKind<T> {
    pub(crate) fn new() -> Self {
        OnceKind(PhantomData)
    }
}

impl<T: Value> Kind for OnceKind<T> {
    const NAME: &'static str = "once";
    type State = Option<T>;
    type Op = OnceOp<T>;
    type Reply = ();
    type Item = T;

    fn type_names(&self) -> Vec<&'static str> {
        vec![type_name::<T>()]
    }

    fn apply(&self, state: &mut Option<T>, op: OnceOp<T>) -> Applied<()> {
        let OnceOp::Write(value) = op;
        if state.is_some() {
            return Applied::changed(false);
        }
        *state = Some(value);
        Applied::changed(true)
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

    #[test]
    fn the_first_write_wins_on_every_machine() {
        let ops = || vec![OnceOp::Write(1u32), OnceOp::Write(2), OnceOp::Write(3)];
        let (mut one, _) = machine(OnceKind::<u32>::new());
        let (mut two, _) = machine(OnceKind::<u32>::new());
        let changes = one.subscribe_changes();
        for op in ops() {
            apply(&mut one, op);
        }
        marker(&mut one);
        apply_batch(&mut two, ops());
        assert_eq!(one.state(), &Some(1));
        assert_eq!(one.state(), two.state());
        assert_eq!(*changes.borrow(), 1, "later writes change nothing");
    }

    #[test]
    fn snapshot_round_trip() {
        let (mut m, _) = machine(OnceKind::<String>::new());
        assert_eq!(round_trip(&m, 1), None);
        apply(&mut m, OnceOp::Write("w".into()));
        assert_eq!(round_trip(&m, 1), Some("w".to_string()));
    }
}
