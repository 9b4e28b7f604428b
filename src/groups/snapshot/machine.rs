//! What a state machine implements to be synced by snapshots: the seed's `Snapshot` (a
//! frozen copy of the state, readable as a sequence of items and rebuilt by appending
//! them) and `SnapshotStateMachine` (create and install one).
//!
//! `create_snapshot` runs on the worker while apply waits, so it must be cheap: return a
//! frozen copy that shares structure with the live state (e.g. `im` collections, whose
//! clone is O(1)). Everything slow — reading the items, encoding, compressing, writing
//! chunks, and on the other side decoding and appending — happens on a background thread.

use super::SnapshotSync;
use crate::groups::machine::StateMachine;
use crate::PeerId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::ops::Range;

/// A frozen copy of a state machine's state, as a sequence of items.
pub trait Snapshot: Default + Send + Sync + 'static {
    /// One element of the state (an entry of a map, an element of a vector, ...).
    type Item: Serialize + DeserializeOwned + Send + 'static;

    /// Number of items.
    fn len(&self) -> u64;

    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items at positions `range`, in the order `append` rebuilds them from; `None` if
    /// the range is out of bounds.
    fn iter_range(&self, range: Range<u64>) -> Option<impl Iterator<Item = Self::Item>>;

    /// Appends items, in order (rebuilding a snapshot read back from its chunks).
    fn append(&mut self, items: impl IntoIterator<Item = Self::Item>);

    /// Called once every item was appended: refuses a snapshot whose items each decoded
    /// but which this program cannot use as a whole (written in a format version it does
    /// not read). The reason names what was found and what was expected. The default
    /// accepts every snapshot.
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// A state machine whose state can be captured and installed as a [`Snapshot`].
pub trait SnapshotStateMachine: StateMachine<StateSync = SnapshotSync<Self>> {
    /// The frozen state.
    type Snapshot: Snapshot;

    /// A frozen copy of the current state. Called on the worker: keep it O(1).
    fn create_snapshot(&self) -> Self::Snapshot;

    /// Replaces the whole state with `snapshot`.
    fn install_snapshot(&mut self, snapshot: Self::Snapshot);
}

/// The payload of a snapshot marker command: the leader proposes one every
/// [`super::SnapshotConfig::every_entries`] entries or `every_bytes` bytes, and every node
/// cuts its snapshot right after applying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotRequest {
    /// The leader that proposed it.
    pub requested_by: PeerId,
    /// The leader's marker counter (makes each marker's command unique).
    pub seq: u64,
}
