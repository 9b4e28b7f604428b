//! A group's snapshot as stored: a header item, then the state machine's items, cut into
//! chunks by `tessera-snapshots`. These functions do the slow work (encode and write,
//! read and decode, check every chunk) and run off the worker, on background threads.
//!
//! The header is the first item of every snapshot: it carries what the consensus core
//! needs besides the state — the anchor and the configuration in force there — so a log
//! pruned past every configuration entry loses nothing.

use super::machine::Snapshot;
use super::store::{key_group, SnapshotStore};
use crate::groups::raft::Membership;
use crate::groups::Cursor;
use crate::primitives::codec;
use crate::GroupId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use tessera_snapshots::{
    ChunkSink, ChunkSource, ChunkStore, Manifest, SnapshotError, SnapshotKey, SnapshotReader,
    SnapshotWriter, StoreSink, StoreSource, WriterConfig,
};

/// Version of [`Header`]'s encoding.
pub const HEADER_VERSION: u32 = 1;

/// Items decoded per `Snapshot::append` call while loading.
const APPEND_BATCH: usize = 4096;

/// The first item of every group snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`HEADER_VERSION`].
    pub version: u32,
    /// The marker entry the snapshot was cut after.
    pub anchor: Cursor,
    /// The configuration in force at the anchor.
    pub membership: Membership,
    /// Number of state-machine items after the header.
    pub items: u64,
}

/// Cutting or loading a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The chunk layer failed (storage, corrupt chunk, digest).
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The snapshot has no manifest.
    #[error("snapshot {index} of group {group} is not stored")]
    Missing {
        /// The group.
        group: GroupId,
        /// Anchor index.
        index: u64,
    },
    /// An item did not encode or decode.
    #[error("snapshot at {anchor}: item {item}: {reason}")]
    Item {
        /// The snapshot's anchor index.
        anchor: u64,
        /// Item number (0 is the header).
        item: u64,
        /// What was wrong.
        reason: String,
    },
    /// The node is shutting down: the cut was abandoned (and what it wrote deleted).
    #[error("snapshot at {anchor}: cancelled")]
    Cancelled {
        /// The snapshot's anchor index.
        anchor: u64,
    },
    /// The header is missing, of another version, or disagrees with the manifest.
    #[error("snapshot at {anchor}: bad header: {reason}")]
    Header {
        /// The snapshot's anchor index.
        anchor: u64,
        /// What was wrong.
        reason: String,
    },
    /// The state machine refused the items as a whole ([`Snapshot::finish`], also asked
    /// when an item does not decode): a format version this program does not read. Not
    /// damage: every copy of the snapshot holds the same bytes.
    #[error("snapshot at {anchor}: refused by the state machine: {reason}")]
    Refused {
        /// The snapshot's anchor index.
        anchor: u64,
        /// Why, from the state machine.
        reason: String,
    },
    /// The snapshot is damaged and its intact chunks could not be kept for a repair.
    #[error("snapshot at {anchor} is damaged ({damage}) and could not be reopened: {reopen}")]
    Unrepairable {
        /// The snapshot's anchor index.
        anchor: u64,
        /// The damage found.
        damage: Box<ImageError>,
        /// Why reopening it as an unfinished transfer failed.
        #[source]
        reopen: Box<ImageError>,
    },
}

impl ImageError {
    /// Whether the stored bytes are damaged (as opposed to a storage failure): the
    /// snapshot should be repaired from peers.
    pub fn is_damage(&self) -> bool {
        match self {
            ImageError::Snapshot(e) => !matches!(e, SnapshotError::Store { .. }),
            ImageError::Missing { .. }
            | ImageError::Cancelled { .. }
            | ImageError::Refused { .. }
            | ImageError::Unrepairable { .. } => false,
            ImageError::Item { .. } | ImageError::Header { .. } => true,
        }
    }
}

/// The key of `group`'s snapshot anchored at `index`.
pub fn snapshot_key(group: GroupId, index: u64) -> SnapshotKey {
    SnapshotKey::new(key_group(group), index)
}

/// Writes `snapshot` as the snapshot of `group` at `anchor` and stores its manifest (the
/// snapshot is complete once this returns). A failure deletes what was written.
pub fn cut<S: Snapshot>(
    mut store: SnapshotStore,
    group: GroupId,
    anchor: Cursor,
    membership: Membership,
    snapshot: &S,
    config: WriterConfig,
    cancel: &AtomicBool,
) -> Result<Manifest, ImageError> {
    let key = snapshot_key(group, anchor.index().0);
    let result = write(
        &mut store, key, anchor, membership, snapshot, config, cancel,
    );
    if result.is_err() {
        let _ = store.delete_snapshot(key);
    }
    result
}

fn write<S: Snapshot>(
    store: &mut SnapshotStore,
    key: SnapshotKey,
    anchor: Cursor,
    membership: Membership,
    snapshot: &S,
    config: WriterConfig,
    cancel: &AtomicBool,
) -> Result<Manifest, ImageError> {
    let manifest = encode(
        key.group,
        anchor,
        membership,
        snapshot,
        config,
        StoreSink::new(&mut *store, key),
        cancel,
    )?;
    store.put_manifest(key, &manifest.encode())?;
    Ok(manifest)
}

/// Encodes `snapshot` behind its header as the snapshot of `group` at `anchor`, handing
/// each compressed chunk to `sink` in order, and returns the manifest (stored nowhere: a
/// store keeps it, a backup streams it after the chunks).
pub fn encode<S: Snapshot, K: ChunkSink>(
    group: tessera_snapshots::GroupId,
    anchor: Cursor,
    membership: Membership,
    snapshot: &S,
    config: WriterConfig,
    sink: K,
    cancel: &AtomicBool,
) -> Result<Manifest, ImageError> {
    let items = snapshot.len();
    let header = Header {
        version: HEADER_VERSION,
        anchor,
        membership,
        items,
    };
    let index = anchor.index().0;
    let item_error = |item: u64, e: codec::EncodeError| ImageError::Item {
        anchor: index,
        item,
        reason: e.to_string(),
    };
    let mut writer = SnapshotWriter::new(
        group,
        tessera_snapshots::Cursor {
            term: anchor.term().0,
            index,
        },
        config,
        sink,
    )?;
    writer.push(&codec::encode(&header).map_err(|e| item_error(0, e))?)?;
    if let Some(iter) = snapshot.iter_range(0..items) {
        let mut bytes = Vec::new();
        for (n, item) in iter.enumerate() {
            if n % 1024 == 0 && cancel.load(Ordering::Relaxed) {
                return Err(ImageError::Cancelled { anchor: index });
            }
            codec::encode_into(&item, &mut bytes).map_err(|e| item_error(n as u64 + 1, e))?;
            writer.push(&bytes)?;
        }
    }
    if writer.item_count() != items + 1 {
        return Err(ImageError::Header {
            anchor: index,
            reason: format!(
                "the snapshot claims {items} items but iterated {}",
                writer.item_count().saturating_sub(1)
            ),
        });
    }
    Ok(writer.finish()?.0)
}

/// Why [`load`] or [`read`] failed, with the header if it was read before the failure.
#[derive(Debug)]
pub struct LoadError {
    /// The header, when the failure came after it.
    pub header: Option<Header>,
    /// What went wrong.
    pub error: ImageError,
}

fn fail(header: Option<Header>, error: impl Into<ImageError>) -> Box<LoadError> {
    Box::new(LoadError {
        header,
        error: error.into(),
    })
}

/// What [`load`] found.
pub struct Loaded<S> {
    /// The header.
    pub header: Header,
    /// The rebuilt state.
    pub snapshot: S,
    /// The manifest.
    pub manifest: Manifest,
}

/// Reads the complete snapshot `key` back: every chunk checked, the digest checked, the
/// items decoded and appended. On failure, also returns the header if it was read.
pub fn load<S: Snapshot>(
    store: &SnapshotStore,
    group: GroupId,
    key: SnapshotKey,
) -> Result<Loaded<S>, Box<LoadError>> {
    match store.load_manifest(key) {
        Ok(Some(manifest)) => read(store, manifest),
        Ok(None) => Err(fail(
            None,
            ImageError::Missing {
                group,
                index: key.index,
            },
        )),
        Err(e) => Err(fail(None, e)),
    }
}

/// Reads the snapshot `manifest` describes from the chunks in `store` (complete or still a
/// transfer): every chunk checked, the digest checked, the items decoded and appended.
pub fn read<S: Snapshot>(
    store: &SnapshotStore,
    manifest: Manifest,
) -> Result<Loaded<S>, Box<LoadError>> {
    let key = manifest.key();
    read_from(manifest, StoreSource::new(store, key))
}

/// [`read`] with chunks from any source (a session reads them as they arrive).
pub fn read_from<S: Snapshot, C: ChunkSource>(
    manifest: Manifest,
    source: C,
) -> Result<Loaded<S>, Box<LoadError>> {
    let index = manifest.key().index;
    let mut reader = SnapshotReader::new(manifest, source).map_err(|e| fail(None, e))?;
    let manifest = reader.manifest().clone();
    let header: Header = match reader.next_item() {
        Ok(Some(bytes)) => codec::decode(bytes).map_err(|e| {
            fail(
                None,
                ImageError::Header {
                    anchor: index,
                    reason: e.to_string(),
                },
            )
        })?,
        Ok(None) => {
            return Err(fail(
                None,
                ImageError::Header {
                    anchor: index,
                    reason: "no items".into(),
                },
            ))
        }
        Err(e) => return Err(fail(None, e)),
    };
    let bad_header = |reason: String| {
        Err(fail(
            Some(header.clone()),
            ImageError::Header {
                anchor: index,
                reason,
            },
        ))
    };
    if header.version != HEADER_VERSION {
        return bad_header(format!(
            "version {} (expected {HEADER_VERSION})",
            header.version
        ));
    }
    if header.anchor.index().0 != index || header.anchor.term().0 != manifest.anchor().term {
        return bad_header(format!(
            "anchor {} but the manifest says {}@{}",
            header.anchor,
            index,
            manifest.anchor().term
        ));
    }
    if header.items.checked_add(1) != Some(manifest.item_count()) {
        return bad_header(format!(
            "{} items but the manifest holds {}",
            header.items,
            manifest.item_count()
        ));
    }
    let mut snapshot = S::default();
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    let mut n = 0u64;
    loop {
        let item = match reader.next_item() {
            Ok(Some(bytes)) => match codec::decode::<S::Item>(bytes) {
                Ok(item) => item,
                Err(e) => {
                    // The chunks passed their checks, so these are the bytes some node
                    // wrote: if the machine refuses the snapshot's format (known from the
                    // items before), that explains the item better than damage does.
                    snapshot.append(std::mem::take(&mut batch));
                    let error = match snapshot.finish() {
                        Err(reason) => ImageError::Refused {
                            anchor: index,
                            reason,
                        },
                        Ok(()) => ImageError::Item {
                            anchor: index,
                            item: n + 1,
                            reason: e.to_string(),
                        },
                    };
                    return Err(fail(Some(header.clone()), error));
                }
            },
            Ok(None) => break,
            Err(e) => return Err(fail(Some(header.clone()), e)),
        };
        n += 1;
        batch.push(item);
        if batch.len() == APPEND_BATCH {
            snapshot.append(std::mem::take(&mut batch));
            batch.reserve(APPEND_BATCH);
        }
    }
    snapshot.append(batch);
    if let Err(reason) = snapshot.finish() {
        return Err(fail(
            Some(header),
            ImageError::Refused {
                anchor: index,
                reason,
            },
        ));
    }
    Ok(Loaded {
        header,
        snapshot,
        manifest,
    })
}

/// Turns the damaged complete snapshot `manifest` into an unfinished transfer of itself:
/// intact chunks are marked received, damaged or absent ones stay missing, and the
/// manifest is removed so nobody installs or serves it. A transfer then fetches only what
/// is damaged. Returns the damaged chunk numbers.
pub fn reopen_damaged(
    store: &mut SnapshotStore,
    manifest: &Manifest,
) -> Result<Vec<u32>, ImageError> {
    let key = manifest.key();
    store.begin_transfer(key, &manifest.encode())?;
    let mut damaged = Vec::new();
    for chunk in 0..manifest.chunk_count() {
        // Checked where it lies: an absent, unreadable or bad chunk counts as damaged.
        let intact = store
            .with_chunk(key, chunk, &mut |bytes| {
                manifest.verify_chunk(chunk, bytes).map(drop)
            })
            .unwrap_or(false);
        if intact {
            store.mark_received(key, chunk)?;
        } else {
            damaged.push(chunk);
        }
    }
    store.remove_manifest(key)?;
    Ok(damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::{Index, Term};
    use crate::store::KvSnapshot;
    use crate::PeerId;

    fn group() -> GroupId {
        GroupId(crate::Digest::of(b"image tests"))
    }

    fn state(n: usize, value: usize) -> KvSnapshot {
        KvSnapshot::of_pairs((0..n).map(|i| (format!("key-{i:06}"), vec![(i % 251) as u8; value])))
    }

    fn config() -> WriterConfig {
        WriterConfig {
            chunk_size: 4096,
            ..WriterConfig::default()
        }
    }

    fn membership() -> Membership {
        Membership::with_voters([PeerId([1; 32]), PeerId([2; 32])])
    }

    /// Cuts `state` into `store` at `anchor` with the test group, membership and config;
    /// `cancelled` sets the cancel flag first.
    fn cut_into(
        store: &SnapshotStore,
        anchor: Cursor,
        state: &KvSnapshot,
        cancelled: bool,
    ) -> Result<Manifest, ImageError> {
        let cancel = AtomicBool::new(cancelled);
        cut(
            store.clone(),
            group(),
            anchor,
            membership(),
            state,
            config(),
            &cancel,
        )
    }

    #[test]
    fn a_cut_snapshot_loads_back_with_its_header() {
        let store = SnapshotStore::memory();
        let anchor = Cursor(Term(3), Index(500));
        let original = state(300, 100);
        let manifest = cut_into(&store, anchor, &original, false).expect("cut");
        assert!(
            manifest.chunk_count() > 5,
            "several chunks: {}",
            manifest.chunk_count()
        );
        let loaded = load::<KvSnapshot>(&store, group(), snapshot_key(group(), 500)).expect("load");
        assert_eq!(loaded.snapshot, original);
        assert_eq!(loaded.header.anchor, anchor);
        assert_eq!(loaded.header.membership, membership());
        assert_eq!(loaded.header.items, original.len());
    }

    #[test]
    fn the_same_state_cuts_byte_identical_chunks() {
        let (a, b) = (SnapshotStore::memory(), SnapshotStore::memory());
        let anchor = Cursor(Term(1), Index(9));
        let ma = cut_into(&a, anchor, &state(200, 64), false).unwrap();
        let mb = cut_into(&b, anchor, &state(200, 64), false).unwrap();
        assert_eq!(ma.fingerprint(), mb.fingerprint());
    }

    #[test]
    fn a_cancelled_cut_leaves_nothing() {
        let store = SnapshotStore::memory();
        let err = cut_into(&store, Cursor(Term(1), Index(7)), &state(50, 8), true)
            .expect_err("cancelled");
        assert!(matches!(err, ImageError::Cancelled { anchor: 7 }));
        assert!(store.anchors(group()).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_chunk_is_reported_and_reopened_as_a_transfer_of_the_rest() {
        let mut store = SnapshotStore::memory();
        let manifest =
            cut_into(&store, Cursor(Term(2), Index(40)), &state(300, 100), false).unwrap();
        let key = snapshot_key(group(), 40);
        store.corrupt_chunk(key, 2, b"garbage").unwrap();
        let failure = load::<KvSnapshot>(&store, group(), key)
            .err()
            .expect("damage found");
        assert!(failure.error.is_damage(), "{}", failure.error);
        assert_eq!(failure.header.map(|h| h.anchor.index()), Some(Index(40)));

        let damaged = reopen_damaged(&mut store, &manifest).unwrap();
        assert_eq!(damaged, vec![2]);
        assert!(
            store.anchors(group()).unwrap().is_empty(),
            "no longer complete"
        );
        let mut received = store.received_chunks(key).unwrap();
        received.sort_unstable();
        let expected: Vec<u32> = (0..manifest.chunk_count()).filter(|&c| c != 2).collect();
        assert_eq!(received, expected);
    }

    #[test]
    fn a_header_that_disagrees_with_the_manifest_is_refused() {
        // A snapshot whose header names another anchor than its key.
        let store = SnapshotStore::memory();
        let mut sink_store = store.clone();
        let key = snapshot_key(group(), 12);
        let mut writer = SnapshotWriter::new(
            key.group,
            tessera_snapshots::Cursor { term: 1, index: 12 },
            config(),
            StoreSink::new(&mut sink_store, key),
        )
        .unwrap();
        let header = Header {
            version: HEADER_VERSION,
            anchor: Cursor(Term(1), Index(13)),
            membership: membership(),
            items: 0,
        };
        writer.push(&codec::encode(&header).unwrap()).unwrap();
        let manifest = writer.finish().unwrap().0;
        sink_store.put_manifest(key, &manifest.encode()).unwrap();
        let failure = load::<KvSnapshot>(&store, group(), key)
            .err()
            .expect("refused");
        assert!(
            matches!(failure.error, ImageError::Header { anchor: 12, .. }),
            "{}",
            failure.error
        );
    }
}
