//! Errors of the typed log store. Each names the group and, where one applies, the index.

use crate::groups::Index;
use crate::GroupId;

/// A log store operation failed.
///
/// Every variant except [`StorageError::Codec`] on a read means the group must stop: the
/// disk failed or holds something it should not.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The byte-level store failed (I/O or corruption); its error names the key.
    #[error("group {group}: {source}")]
    Backend {
        /// The group whose store failed.
        group: GroupId,
        /// The byte-level cause.
        #[source]
        source: tessera_storage::Error,
    },
    /// A stored payload did not decode as the group's command type.
    #[error("group {group}: entry {index} does not decode: {reason}")]
    Codec {
        /// The group.
        group: GroupId,
        /// The entry that failed.
        index: Index,
        /// What the codec said.
        reason: String,
    },
    /// An operation asked for something the log's invariants forbid.
    #[error("group {group}: {what} (anchor {anchor}, last {last})")]
    OutOfRange {
        /// The group.
        group: GroupId,
        /// What was asked.
        what: String,
        /// The current anchor index.
        anchor: Index,
        /// The current last index.
        last: Index,
    },
}
