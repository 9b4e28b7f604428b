//! Errors of a log store. Each names the store (the driver says which: "group 3f9c…") and,
//! where one applies, the index. The backend's own error is kept as an opaque source, so
//! the core depends on no storage engine.

/// A log store operation failed: the group must stop (the disk failed or holds something
/// it should not).
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
}
