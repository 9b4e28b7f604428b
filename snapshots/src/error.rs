//! The crate's one error type. Every variant names what was wrong and where (snapshot key,
//! chunk number, expected vs found), so a caller can log it, and match on it, without parsing
//! text.
//!
//! Two kinds matter to a caller: [`SnapshotError::is_fatal`] tells a store failure (the group
//! must stop) apart from bad input (reject this manifest or chunk, ask someone else).

use crate::hash::StreamDigest;
use crate::key::SnapshotKey;

/// Where a store call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// `ChunkStore::put_manifest`
    PutManifest,
    /// `ChunkStore::manifest`
    GetManifest,
    /// `ChunkStore::put_chunk`
    PutChunk,
    /// `ChunkStore::read_chunk`
    ReadChunk,
    /// `ChunkStore::begin_transfer`
    BeginTransfer,
    /// `ChunkStore::transfer`
    GetTransfer,
    /// `ChunkStore::put_received_chunk`
    PutReceivedChunk,
    /// `ChunkStore::received_chunks`
    ReceivedChunks,
    /// `ChunkStore::complete_transfer`
    CompleteTransfer,
    /// `ChunkStore::delete_snapshot`
    DeleteSnapshot,
    /// A `ChunkSink` used by the writer.
    Sink,
}

/// Errors of the snapshot format, the writer, the reader, the store and the transfer planner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A manifest record is shorter than its fields need.
    #[error("manifest record truncated: {len} bytes, need at least {needed}")]
    ManifestTruncated {
        /// Bytes present.
        len: usize,
        /// Bytes the fields read so far require.
        needed: usize,
    },
    /// A manifest record has a format version this build does not read.
    #[error("manifest format version {found} unknown (this build reads {expected})")]
    ManifestVersion {
        /// Version in the record.
        found: u16,
        /// The version this build writes and reads.
        expected: u16,
    },
    /// A manifest record's trailing crc32 does not match its content.
    #[error(
        "manifest crc32 mismatch: record says {expected:#010x}, content hashes to {found:#010x}"
    )]
    ManifestCrc {
        /// crc32 stored in the record.
        expected: u32,
        /// crc32 computed over the record.
        found: u32,
    },
    /// A manifest field holds a value outside what the format allows or is inconsistent with
    /// the other fields.
    #[error("manifest field `{field}` = {value} invalid: {reason}")]
    ManifestField {
        /// Field name as in the layout table of `manifest.rs`.
        field: &'static str,
        /// The offending value.
        value: u64,
        /// What the value should have been.
        reason: &'static str,
    },
    /// A manifest record was read under one key but names another snapshot.
    #[error("manifest stored under {expected} describes {found}")]
    ManifestKey {
        /// The key the record was read under.
        expected: SnapshotKey,
        /// The key the record names.
        found: SnapshotKey,
    },
    /// A transfer was started with a manifest other than the one a previous, unfinished
    /// transfer of the same snapshot recorded.
    #[error(
        "transfer of {key}: offered manifest differs from the one recorded when the transfer began"
    )]
    ManifestConflict {
        /// The snapshot.
        key: SnapshotKey,
    },
    /// A writer setting is out of range.
    #[error("writer setting `{field}` = {value} invalid: {reason}")]
    Config {
        /// Setting name.
        field: &'static str,
        /// The offending value.
        value: i64,
        /// The allowed range.
        reason: &'static str,
    },
    /// A chunk number beyond the snapshot's chunk count.
    #[error("{key}: chunk {chunk} out of range (snapshot has {count} chunks)")]
    ChunkOutOfRange {
        /// The snapshot.
        key: SnapshotKey,
        /// The chunk number asked for or received.
        chunk: u32,
        /// The snapshot's chunk count.
        count: u32,
    },
    /// A chunk's compressed length differs from the manifest.
    #[error("{key}: chunk {chunk} is {found} bytes, manifest says {expected}")]
    ChunkLength {
        /// The snapshot.
        key: SnapshotKey,
        /// Chunk number.
        chunk: u32,
        /// Compressed length in the manifest.
        expected: u32,
        /// Length received or read.
        found: usize,
    },
    /// A chunk's crc32 (over its compressed bytes) differs from the manifest.
    #[error("{key}: chunk {chunk} crc32 {found:#010x}, manifest says {expected:#010x}")]
    ChunkCrc {
        /// The snapshot.
        key: SnapshotKey,
        /// Chunk number.
        chunk: u32,
        /// crc32 in the manifest.
        expected: u32,
        /// crc32 of the bytes received or read.
        found: u32,
    },
    /// A chunk did not decompress (not a zstd frame, or larger than the manifest's raw length).
    #[error("{key}: chunk {chunk} does not decompress to at most {raw_len} bytes: {source}")]
    ChunkDecompress {
        /// The snapshot.
        key: SnapshotKey,
        /// Chunk number.
        chunk: u32,
        /// Raw length in the manifest (the output capacity given to zstd).
        raw_len: u32,
        /// zstd's error.
        source: std::io::Error,
    },
    /// A chunk decompressed to a length other than the manifest's raw length.
    #[error("{key}: chunk {chunk} decompresses to {found} bytes, manifest says {expected}")]
    ChunkRawLength {
        /// The snapshot.
        key: SnapshotKey,
        /// Chunk number.
        chunk: u32,
        /// Raw length in the manifest.
        expected: u32,
        /// Decompressed length.
        found: usize,
    },
    /// A chunk the manifest lists is not in the store.
    #[error("{key}: chunk {chunk} missing from the store")]
    ChunkMissing {
        /// The snapshot.
        key: SnapshotKey,
        /// Chunk number.
        chunk: u32,
    },
    /// zstd failed to compress a chunk (the writer's only non-store failure).
    #[error("{key}: compressing chunk {chunk} failed: {source}")]
    Compress {
        /// The snapshot being written.
        key: SnapshotKey,
        /// Chunk number.
        chunk: u32,
        /// zstd's error.
        source: std::io::Error,
    },
    /// The raw stream's item framing is broken: an item length runs past the end of the
    /// snapshot, a length prefix is malformed, or bytes trail the last item.
    #[error("{key}: item {item} at raw offset {offset}: {reason}")]
    ItemFraming {
        /// The snapshot.
        key: SnapshotKey,
        /// Index of the item being read (0-based).
        item: u64,
        /// Offset of its length prefix in the raw stream.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// The raw stream holds a different number of items than the manifest says.
    #[error("{key}: raw stream holds {found} items, manifest says {expected}")]
    ItemCount {
        /// The snapshot.
        key: SnapshotKey,
        /// Item count in the manifest.
        expected: u64,
        /// Items found (at least this many, if more than expected).
        found: u64,
    },
    /// The XXH3-128 digest of the raw stream differs from the manifest.
    #[error("{key}: raw stream digest {found}, manifest says {expected}")]
    DigestMismatch {
        /// The snapshot.
        key: SnapshotKey,
        /// Digest in the manifest.
        expected: StreamDigest,
        /// Digest of the bytes read.
        found: StreamDigest,
    },
    /// [`Transfer::finish`](crate::Transfer::finish) was called before every chunk arrived.
    #[error("{key}: transfer incomplete, {missing} of {count} chunks still missing")]
    Incomplete {
        /// The snapshot.
        key: SnapshotKey,
        /// Chunks not yet verified.
        missing: u32,
        /// The snapshot's chunk count.
        count: u32,
    },
    /// A transfer setting is out of range.
    #[error("transfer setting `{field}` = {value} invalid: must be at least 1")]
    TransferConfig {
        /// Setting name.
        field: &'static str,
        /// The offending value.
        value: u64,
    },
    /// A store returned a received-chunk number beyond the snapshot's chunk count.
    #[error("{key}: transfer state lists chunk {chunk}, snapshot has {count} chunks")]
    TransferState {
        /// The snapshot.
        key: SnapshotKey,
        /// The bad chunk number.
        chunk: u32,
        /// The snapshot's chunk count.
        count: u32,
    },
    /// A writer or reader was used again after it returned an error.
    #[error("{key}: the snapshot {role} already failed; drop it")]
    Poisoned {
        /// The snapshot.
        key: SnapshotKey,
        /// `"writer"` or `"reader"`.
        role: &'static str,
    },
    /// The chunk store failed. The group should stop: its durable state is in doubt.
    #[error("chunk store {op:?} failed for {key}{}: {source}", chunk.map(|c| format!(" chunk {c}")).unwrap_or_default())]
    Store {
        /// Which call failed.
        op: StoreOp,
        /// The snapshot.
        key: SnapshotKey,
        /// The chunk, for chunk calls.
        chunk: Option<u32>,
        /// The store's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl SnapshotError {
    /// Wraps a store implementation's error.
    pub fn store(
        op: StoreOp,
        key: SnapshotKey,
        chunk: Option<u32>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SnapshotError::Store {
            op,
            key,
            chunk,
            source: source.into(),
        }
    }

    /// True for failures of the local store or compressor, after which the caller should
    /// stop; false for bad input (a manifest or chunk to reject), which leaves local state
    /// as it was.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SnapshotError::Store { .. } | SnapshotError::Compress { .. }
        )
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;
