//! `tessera inspect DATA_DIR`: a picture of a data directory, read-only and safe to run
//! beside a live node (RocksDB is opened read-only, the key and peers files are only
//! read). One view per thing:
//!
//! - `node`: the node's own id, from its key file (what other nodes give as `--peer
//!   ID@HOST:PORT`), and `peers`: the peers file (where a restart finds its group);
//! - per group: the log's range, the hard state, the complete `snapshots` as their
//!   manifests describe them, the `transfers` in progress, chunks that belong to neither
//!   (`leftover_chunks`, only when there are any), records that could not be read
//!   (`problems`, only when there are any), and `kv`: keys, revision, sizes and
//!   largest values of the key-value store (`kv.rs`);
//! - bytes and keys per column family.
//!
//! JSON by default (scripts read it); [`Report::to_text`] is the short human form.

mod kv;
mod node;
mod text;

pub use kv::{KvSummary, KvView, LargestValue};
pub use node::NodeView;

use crate::groups::snapshot::RocksChunkStore;
use serde::Serialize;
use std::path::Path;
use tessera_snapshots::{ChunkStore, GroupId, Manifest, SnapshotKey};
use tessera_storage::{
    ColumnFamilySummary, GroupSummary, HardStateSummary, LogSummary, StoredChunks,
};

/// What `tessera inspect` reports of one data directory.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The data directory.
    pub path: String,
    /// Data format generation.
    pub format: u32,
    /// The node's own identity.
    pub node: NodeView,
    /// The peers file: `ID@HOST:PORT` or `HOST:PORT`, as the node saved them.
    pub peers: Vec<String>,
    /// Every group found, in totals.
    pub summary: GroupsSummary,
    /// The groups shown: all of them when there are few ([`SHOW_ALL_UP_TO`]) or when
    /// asked, else those with problems and the largest logs (see [`Selection`]).
    pub groups: Vec<GroupView>,
    /// Keys and bytes (keys + values, as stored) per column family.
    pub column_families: Vec<ColumnFamilySummary>,
}

/// With more groups than this, a report lists only a selection of them by default: a node
/// hosting a thousand groups would otherwise print thousands of lines.
pub const SHOW_ALL_UP_TO: usize = 16;

/// Groups listed beside the summary when not all are shown (the largest logs).
pub const SHOWN_LARGEST: usize = 10;

/// Which groups a report lists in full.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Every group, however many.
    pub all: bool,
    /// Only groups whose hex id starts with this (lower case).
    pub group_prefix: Option<String>,
}

/// Totals over every group of the data directory.
#[derive(Debug, Default, Serialize)]
pub struct GroupsSummary {
    /// Groups found.
    pub groups: usize,
    /// Log entries present, over all groups.
    pub entries: u64,
    /// Complete snapshots, over all groups.
    pub snapshots: usize,
    /// Bytes of their compressed chunks.
    pub snapshot_stored_bytes: u64,
    /// Snapshot transfers in progress.
    pub transfers: usize,
    /// Groups with a damaged record or leftover chunks.
    pub groups_with_problems: usize,
    /// Groups listed in `groups`.
    pub shown: usize,
    /// Groups not listed (`--all` lists them, `--group PREFIX` picks some).
    pub omitted: usize,
}

/// One group.
#[derive(Debug, Serialize)]
pub struct GroupView {
    /// Group id, hex.
    pub group: String,
    /// Anchor and last position of the log.
    pub log: LogSummary,
    /// Entries present (`last - anchor`).
    pub entries: u64,
    /// Term, vote, commit.
    pub hard_state: HardStateSummary,
    /// Complete snapshots (a manifest stored), oldest first.
    pub snapshots: Vec<SnapshotView>,
    /// Snapshot transfers in progress (a transfer record stored), oldest first.
    pub transfers: Vec<TransferView>,
    /// Chunks stored under an anchor with neither a manifest nor a transfer record: left
    /// by an interrupted deletion; only listed when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftover_chunks: Vec<LeftoverView>,
    /// The key-value store's summary, or why there is none.
    pub kv: KvView,
    /// Snapshot records that could not be read (a damaged manifest or transfer record),
    /// each naming its anchor; only listed when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A complete snapshot, as its manifest describes it.
#[derive(Debug, Serialize)]
pub struct SnapshotView {
    /// Index of the entry the snapshot was cut after.
    pub anchor_index: u64,
    /// Term of that entry.
    pub anchor_term: u64,
    /// Items in it (the header included).
    pub items: u64,
    /// Bytes of the uncompressed item stream.
    pub raw_bytes: u64,
    /// Bytes of its compressed chunks, as stored.
    pub stored_bytes: u64,
    /// Chunks the manifest lists.
    pub chunks: u32,
    /// Raw bytes per chunk (the last one may be shorter).
    pub chunk_size: u32,
    /// Digest of the raw stream.
    pub digest: String,
    /// Chunks the manifest lists that are not stored: the snapshot is damaged (a node
    /// repairs it from its peers). Only present when some are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks_missing: Option<u64>,
}

/// A snapshot transfer in progress.
#[derive(Debug, Serialize)]
pub struct TransferView {
    /// Index of the entry the snapshot was cut after.
    pub anchor_index: u64,
    /// Term of that entry.
    pub anchor_term: u64,
    /// Chunks received and checked.
    pub chunks_received: usize,
    /// Chunks of the whole snapshot.
    pub chunks_total: u32,
    /// Bytes of the compressed chunks stored so far.
    pub stored_bytes_received: u64,
    /// Bytes of the compressed chunks of the whole snapshot.
    pub stored_bytes_total: u64,
}

/// Chunks under an anchor that is neither a snapshot nor a transfer.
#[derive(Debug, Serialize)]
pub struct LeftoverView {
    /// The anchor index they were stored under.
    pub anchor_index: u64,
    /// Chunks.
    pub chunks: u64,
    /// Bytes of those compressed chunks.
    pub stored_bytes: u64,
}

/// Renders the report of the data directory at `path` as pretty JSON.
pub fn inspect(path: &Path) -> Result<String, tessera_storage::Error> {
    Ok(report(path)?.to_json())
}

/// Reads the data directory at `path` (read-only) into a [`Report`]. Fails only when the
/// path is not a readable tessera data directory; a missing key file, or a group whose
/// key-level summary cannot be computed, is said in the report instead.
pub fn report(path: &Path) -> Result<Report, tessera_storage::Error> {
    report_with(path, &Selection::default())
}

/// [`report`], listing the groups `selection` asks for (every group is counted in the
/// summary either way).
pub fn report_with(path: &Path, selection: &Selection) -> Result<Report, tessera_storage::Error> {
    let store = tessera_storage::Store::open_read_only(path)?;
    let summary = store.summary()?;
    let chunks = RocksChunkStore::new(store.clone());
    let mut views = Vec::new();
    for group in summary.groups {
        views.push(group_view(&store, &chunks, group)?);
    }
    let (groups, totals) = select(views, selection);
    Ok(Report {
        path: summary.path,
        format: summary.format,
        node: NodeView::read(path),
        peers: node::peers(path),
        summary: totals,
        groups,
        column_families: summary.column_families,
    })
}

/// Counts every group, and keeps those `selection` asks for: by default all of them when
/// there are at most [`SHOW_ALL_UP_TO`], else the ones with problems and the
/// [`SHOWN_LARGEST`] largest logs.
fn select(views: Vec<GroupView>, selection: &Selection) -> (Vec<GroupView>, GroupsSummary) {
    let troubled = |g: &GroupView| !g.problems.is_empty() || !g.leftover_chunks.is_empty();
    let mut totals = GroupsSummary {
        groups: views.len(),
        ..GroupsSummary::default()
    };
    for g in &views {
        totals.entries += g.entries;
        totals.snapshots += g.snapshots.len();
        totals.snapshot_stored_bytes += g.snapshots.iter().map(|s| s.stored_bytes).sum::<u64>();
        totals.transfers += g.transfers.len();
        totals.groups_with_problems += usize::from(troubled(g));
    }
    let shown: Vec<GroupView> = if let Some(prefix) = &selection.group_prefix {
        let prefix = prefix.to_ascii_lowercase();
        views
            .into_iter()
            .filter(|g| g.group.starts_with(&prefix))
            .collect()
    } else if selection.all || views.len() <= SHOW_ALL_UP_TO {
        views
    } else {
        let (mut keep, mut rest): (Vec<_>, Vec<_>) = views.into_iter().partition(troubled);
        rest.sort_by(|a, b| b.entries.cmp(&a.entries).then(a.group.cmp(&b.group)));
        keep.extend(rest.into_iter().take(SHOWN_LARGEST));
        keep
    };
    totals.shown = shown.len();
    totals.omitted = totals.groups - totals.shown;
    (shown, totals)
}

impl Report {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the report: {e}\"}}"))
    }

    /// A short summary for people: the node, then one paragraph per group.
    pub fn to_text(&self) -> String {
        text::render(self)
    }
}

/// One group's view: snapshots, transfers and leftovers told apart by the records that
/// describe them, and the key-level summary.
fn group_view(
    store: &tessera_storage::Store,
    chunks: &RocksChunkStore,
    group: GroupSummary,
) -> Result<GroupView, tessera_storage::Error> {
    let snapshots = store.snapshot_store(group.id);
    let key = |index| SnapshotKey::new(GroupId(group.id), index);
    let stored = |anchor: u64| {
        group
            .stored_chunks
            .iter()
            .find(|c| c.anchor == anchor)
            .copied()
            .unwrap_or(StoredChunks {
                anchor,
                chunks: 0,
                bytes: 0,
            })
    };
    let mut described = Vec::new();
    let mut problems = Vec::new();
    let mut complete = Vec::new();
    for anchor in snapshots.anchors()? {
        described.push(anchor);
        match chunks.load_manifest(key(anchor)) {
            Ok(Some(m)) => complete.push(snapshot_view(&m, stored(anchor))),
            // Deleted by the live node since it was listed.
            Ok(None) => {}
            Err(e) => problems.push(format!("snapshot at {anchor}: {e}")),
        }
    }
    let mut transfers = Vec::new();
    for anchor in snapshots.transfers()? {
        described.push(anchor);
        let m = match chunks.load_transfer(key(anchor)) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                problems.push(format!("transfer at {anchor}: {e}"));
                continue;
            }
        };
        let received = match chunks.received_chunks(key(anchor)) {
            Ok(received) => received.len(),
            Err(e) => {
                problems.push(format!("transfer at {anchor}: {e}"));
                0
            }
        };
        transfers.push(TransferView {
            anchor_index: anchor,
            anchor_term: m.anchor().term,
            chunks_received: received,
            chunks_total: m.chunk_count(),
            stored_bytes_received: stored(anchor).bytes,
            stored_bytes_total: m.compressed_bytes(),
        });
    }
    let leftover_chunks = group
        .stored_chunks
        .iter()
        .filter(|c| !described.contains(&c.anchor))
        .map(|c| LeftoverView {
            anchor_index: c.anchor,
            chunks: c.chunks,
            stored_bytes: c.bytes,
        })
        .collect();
    let kv = kv::summarize(store, crate::GroupId(crate::Digest(group.id)));
    Ok(GroupView {
        group: group.group,
        log: group.log,
        entries: group.entries,
        hard_state: group.hard_state,
        snapshots: complete,
        transfers,
        leftover_chunks,
        kv,
        problems,
    })
}

fn snapshot_view(m: &Manifest, stored: StoredChunks) -> SnapshotView {
    let missing = u64::from(m.chunk_count()).saturating_sub(stored.chunks);
    SnapshotView {
        anchor_index: m.anchor().index,
        anchor_term: m.anchor().term,
        items: m.item_count(),
        raw_bytes: m.raw_bytes(),
        stored_bytes: m.compressed_bytes(),
        chunks: m.chunk_count(),
        chunk_size: m.chunk_size(),
        digest: m.digest().to_string(),
        chunks_missing: (missing > 0).then_some(missing),
    }
}
