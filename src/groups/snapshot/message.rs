//! What sessions and providers of `SnapshotSync` say to each other.
//!
//! A session first asks every bonded peer what it holds ([`SnapshotMessage::Query`]);
//! each provider answers with the manifests of its complete snapshots
//! ([`SnapshotMessage::Holding`]). The session picks one snapshot, then asks providers
//! for ranges of its chunks ([`SnapshotMessage::Fetch`]); each chunk comes back on its own
//! ([`SnapshotMessage::Chunk`]) as stored, compressed, never recompressed — or as
//! [`SnapshotMessage::Missing`] when the provider no longer has it.

use crate::groups::Cursor;
use crate::primitives::Bytes;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One snapshot a provider holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Its anchor: the marker entry it was cut after.
    pub anchor: Cursor,
    /// Its encoded manifest (`tessera_snapshots::Manifest::encode`).
    pub manifest: Bytes,
}

/// The wire message of [`super::SnapshotSync`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotMessage {
    /// Session → provider: which complete snapshots do you hold?
    Query,
    /// Provider → session: these, oldest first (possibly none).
    Holding(Vec<Held>),
    /// Session → provider: send chunks `chunks` of the snapshot anchored at `anchor`.
    Fetch {
        /// Anchor index of the snapshot.
        anchor: u64,
        /// Chunk numbers, consecutive.
        chunks: Range<u32>,
    },
    /// Provider → session: one chunk, compressed, as stored.
    Chunk {
        /// Anchor index of the snapshot.
        anchor: u64,
        /// Chunk number.
        chunk: u32,
        /// The compressed bytes.
        bytes: Bytes,
    },
    /// Provider → session: chunk `chunk` of `anchor` is not here (deleted, or damaged).
    Missing {
        /// Anchor index of the snapshot.
        anchor: u64,
        /// Chunk number.
        chunk: u32,
    },
}
