//! What [`super::StateSync::restore`] reports at group start: the local state it put into
//! the machine (so only the log after it is replayed), or why it could not.

use crate::groups::raft::Membership;
use crate::groups::Cursor;
use crate::GroupId;

/// What [`super::StateSync::restore`] found in local storage at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restored {
    /// No local state: the log is replayed from its start.
    Nothing,
    /// The machine holds the state at `at`; the log after it is replayed.
    State {
        /// The position the machine's state is at.
        at: Cursor,
        /// The configuration in force there.
        membership: Membership,
    },
    /// The newest local state (at `at`) is damaged and the machine holds nothing. The
    /// worker starts a catch-up session at once ([`super::SyncSessionContext::repairing`]
    /// names `at`), applies nothing and prunes nothing until it installed that state.
    Damaged {
        /// The damaged state's position.
        at: Cursor,
        /// The configuration there, if it could be read.
        membership: Option<Membership>,
    },
}

/// Local storage failed while restoring: the group does not start, and nothing is
/// changed or deleted (a later start sees the same state).
#[derive(Debug, thiserror::Error)]
#[error("cannot restore the local state of group {group}: {source}")]
pub struct RestoreError {
    /// The group.
    pub group: GroupId,
    /// What failed (a storage, snapshot-format or decoding error).
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl RestoreError {
    /// A restore failure of `group` caused by `source`.
    pub fn new(
        group: GroupId,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        RestoreError {
            group,
            source: source.into(),
        }
    }
}
