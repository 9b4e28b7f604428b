//! Errors of a log store. Each names the store (the driver says which: "group 3f9c…") and,
//! where one applies, the index. The backend's own error is kept as an opaque source, so
//! the core depends on no storage engine.

use crate::Index;

/// A log store operation failed.
///
/// Every variant except [`StorageError::Codec`] on a read means the group must stop: the
/// disk failed or holds something it should not.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The byte-level store failed (I/O or corruption); its error names the key.
    #[error("{store}: {source}")]
    Backend {
        /// Which log store (e.g. "group 3f9c…").
        store: String,
        /// The backend's error (`tessera_storage::Error` for the RocksDB store).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A stored payload did not decode as the store's command type.
    #[error("{store}: entry {index} does not decode: {reason}")]
    Codec {
        /// Which log store.
        store: String,
        /// The entry that failed.
        index: Index,
        /// What the codec said.
        reason: String,
    },
}
