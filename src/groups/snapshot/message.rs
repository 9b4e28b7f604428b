//! What sessions and providers of `SnapshotSync` say to each other.
//!
//! A session first asks every bonded peer what it holds ([`SnapshotMessage::Query`]);
//! each provider answers with the manifests of its complete snapshots
//! ([`SnapshotMessage::Holding`]). The session picks one snapshot, then asks providers
//! for ranges of its chunks ([`SnapshotMessage::Fetch`]); each chunk comes back on its own
//! ([`SnapshotMessage::Chunk`]) as stored, compressed, never recompressed — or as
//! [`SnapshotMessage::Missing`] when the provider no longer has it.
//!
//! A member catching up also tells every bonded peer's provider what it needs kept
//! ([`SnapshotMessage::Keep`], refreshed about every second, [`SnapshotMessage::Release`]
//! once caught up) and, after an install, how long the transfer took
//! ([`SnapshotMessage::Shipped`]); see `retention.rs`. These three came last, so the
//! variants before them keep their encoding; a node that predates them drops them as
//! undecodable (it then keeps no log for others, as before).

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
    /// Catching-up member → every bonded provider: keep the log after `after`, and the
    /// snapshot anchored at `after` if you hold one, while I refresh this (replaces my
    /// earlier `Keep`).
    Keep {
        /// The index after which the member needs the log: the anchor of the snapshot
        /// it fetches, or its commit index while it streams the entries after it.
        after: u64,
    },
    /// Catching-up member → every bonded provider: caught up (or gave up); keep nothing
    /// for me.
    Release,
    /// Member that installed a snapshot → every bonded provider: how long it took, to
    /// size the log tail kept for the next one.
    Shipped {
        /// Anchor index of the installed snapshot.
        anchor: u64,
        /// Compressed bytes fetched for it.
        bytes: u64,
        /// Milliseconds from choosing it to its last chunk stored.
        ship_ms: u64,
        /// Milliseconds from the last chunk to the state swapped in.
        install_ms: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::codec;

    #[test]
    fn the_retention_messages_come_last_and_round_trip() {
        // The variants that existed before keep their index (the first byte).
        let missing = SnapshotMessage::Missing {
            anchor: 7,
            chunk: 1,
        };
        assert_eq!(codec::encode(&missing).unwrap()[0], 4);
        let keep = SnapshotMessage::Keep { after: 300 };
        let release = SnapshotMessage::Release;
        let shipped = SnapshotMessage::Shipped {
            anchor: 300,
            bytes: 1 << 20,
            ship_ms: 39_350,
            install_ms: 2,
        };
        for (message, index) in [(keep, 5u8), (release, 6), (shipped, 7)] {
            let bytes = codec::encode(&message).unwrap();
            assert_eq!(bytes[0], index);
            let back: SnapshotMessage = codec::decode(&bytes).unwrap();
            assert_eq!(back, message);
        }
    }
}
