//! `tessera-snapshots`: how a snapshot is cut into chunks, stored, checked and moved between
//! nodes. It knows nothing of networking or RocksDB: a node's database implements
//! [`ChunkStore`], and the runtime moves the bytes the [`Transfer`] planner asks for.
//!
//! # Format
//!
//! A snapshot is a [`Manifest`] plus chunks. The items (serialized records of any size) are
//! framed as `LEB128 length | bytes` and concatenated into the *raw stream*; the raw stream
//! is cut into chunks of a fixed raw size (default 1 MiB); each chunk is compressed on its
//! own as one zstd frame (default level 1) and checksummed with crc32 over the compressed
//! bytes. The manifest lists every chunk's raw length, compressed length and crc32, and an
//! XXH3-128 digest of the raw stream (see [`StreamDigest`] for why not a cryptographic
//! hash). The same items with the same [`WriterConfig`] (and the same zstd build) give
//! byte-identical chunks on every node, so any node can serve any chunk, and chunks move
//! and are stored exactly as compressed.
//!
//! ```
//! use tessera_snapshots::*;
//!
//! let mut store = MemChunkStore::new();
//! let group = GroupId([1; 32]);
//! let anchor = Cursor { term: 3, index: 42 };
//! let key = SnapshotKey::new(group, anchor.index);
//!
//! // Write: items in, chunks into the store, manifest out.
//! let mut w = SnapshotWriter::new(group, anchor, WriterConfig::default(), StoreSink::new(&mut store, key))?;
//! for i in 0..1000u32 {
//!     w.push(format!("key-{i}=value-{i}").as_bytes())?;
//! }
//! let (manifest, _) = w.finish()?;
//! store.put_manifest(key, &manifest.encode())?;
//!
//! // Read: every chunk, the framing and the digest are checked.
//! let mut r = SnapshotReader::from_store(&store, key)?.expect("manifest stored");
//! let mut n = 0;
//! while let Some(item) = r.next_item()? {
//!     assert_eq!(item, format!("key-{n}=value-{n}").as_bytes());
//!     n += 1;
//! }
//! assert_eq!(n, 1000);
//! # Ok::<(), SnapshotError>(())
//! ```
//!
//! # Transfer
//!
//! [`Transfer`] is a sans-IO planner: given a manifest and the peers that hold the snapshot,
//! it says which chunk ranges to ask from whom ([`Transfer::poll`]), verifies and stores each
//! chunk that arrives ([`Transfer::on_chunk`]), reassigns the work of corrupt, slow or
//! vanished peers, resumes from the store after a restart, and checks the digest before
//! declaring the snapshot installable ([`Transfer::finish`]). Time comes in as a millisecond
//! count; the planner never reads a clock.
//!
//! # Storage
//!
//! [`ChunkStore`] is the storage a node provides (RocksDB column families in tessera; the
//! mapping is in the trait's module docs). [`MemChunkStore`] is an in-memory store for tests;
//! the checks every implementation must pass are in the `tessera-testkit` crate.
//!
//! # Threads
//!
//! The writer and reader do all their work on the caller's thread, each chunk compressed (or
//! checked and decompressed) and hashed while it is in the CPU's cache. zstd is always
//! single-threaded: multithreaded zstd cuts its input into jobs and compresses them
//! differently, so chunks would depend on a worker setting every node would have to share.

#![deny(missing_docs)]

mod chunk;
mod error;
mod frame;
mod hash;
mod key;
mod manifest;
mod planner;
mod progress;
mod reader;
mod store;
mod writer;

pub use error::{Result, SnapshotError, StoreOp};
pub use hash::StreamDigest;
pub use key::{Cursor, GroupId, SnapshotKey, CHUNK_KEY_LEN, SNAPSHOT_KEY_LEN};
pub use manifest::{
    ChunkInfo, Codec, Digest, Manifest, DEFAULT_CHUNK_SIZE, DEFAULT_LEVEL, MANIFEST_VERSION,
    MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
pub use planner::{ChunkOutcome, ChunkRequest, RequestId, Transfer, TransferConfig};
pub use progress::Progress;
pub use reader::SnapshotReader;
pub use store::{
    ChunkSink, ChunkSource, ChunkStore, CopyingSource, InjectedFailure, MemChunkStore, StoreSink,
    StoreSource,
};
pub use writer::{SnapshotWriter, WriterConfig};
