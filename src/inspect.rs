//! `tessera inspect DATA_DIR`: a JSON picture of a data directory, read-only and safe to
//! run beside a live node: groups, log ranges, hard state, bytes per column family, and
//! for each group its snapshots (anchor, items, raw and stored sizes, whether complete)
//! and any transfer in progress (chunks received of the total).

use crate::groups::snapshot::RocksChunkStore;
use serde::Serialize;
use std::path::Path;
use tessera_snapshots::{ChunkStore, GroupId, Manifest, SnapshotKey};

/// A complete snapshot, as its manifest describes it.
#[derive(Debug, Serialize)]
struct SnapshotDetail {
    anchor_index: u64,
    anchor_term: u64,
    items: u64,
    raw_bytes: u64,
    stored_bytes: u64,
    chunks: u32,
    chunk_size: u32,
    digest: String,
}

/// A transfer in progress.
#[derive(Debug, Serialize)]
struct TransferDetail {
    anchor_index: u64,
    anchor_term: u64,
    chunks_received: usize,
    chunks_total: u32,
    raw_bytes: u64,
    stored_bytes: u64,
}

fn detail(m: &Manifest) -> SnapshotDetail {
    SnapshotDetail {
        anchor_index: m.anchor().index,
        anchor_term: m.anchor().term,
        items: m.item_count(),
        raw_bytes: m.raw_bytes(),
        stored_bytes: m.compressed_bytes(),
        chunks: m.chunk_count(),
        chunk_size: m.chunk_size(),
        digest: m.digest().to_string(),
    }
}

/// Renders the summary of the data directory at `path` as pretty JSON.
pub fn inspect(path: &Path) -> Result<String, tessera_storage::Error> {
    let store = tessera_storage::Store::open_read_only(path)?;
    let summary = store.summary()?;
    let mut json = serde_json::to_value(&summary).unwrap_or_default();
    let chunks = RocksChunkStore::new(store.clone());
    for group in store.groups()? {
        let snapshots = store.snapshot_store(group);
        let key = |index| SnapshotKey::new(GroupId(group), index);
        let complete: Vec<SnapshotDetail> = snapshots
            .anchors()?
            .into_iter()
            .filter_map(|a| chunks.load_manifest(key(a)).ok().flatten())
            .map(|m| detail(&m))
            .collect();
        let transfers: Vec<TransferDetail> = snapshots
            .transfers()?
            .into_iter()
            .filter_map(|a| {
                let m = chunks.load_transfer(key(a)).ok().flatten()?;
                let received = chunks.received_chunks(key(a)).ok()?.len();
                Some(TransferDetail {
                    anchor_index: a,
                    anchor_term: m.anchor().term,
                    chunks_received: received,
                    chunks_total: m.chunk_count(),
                    raw_bytes: m.raw_bytes(),
                    stored_bytes: m.compressed_bytes(),
                })
            })
            .collect();
        let hex = crate::Digest(group).to_hex();
        if let Some(groups) = json.get_mut("groups").and_then(|g| g.as_array_mut()) {
            for g in groups.iter_mut() {
                if g.get("group").and_then(|v| v.as_str()) == Some(hex.as_str()) {
                    g["complete_snapshots"] = serde_json::to_value(&complete).unwrap_or_default();
                    g["transfers_in_progress"] =
                        serde_json::to_value(&transfers).unwrap_or_default();
                }
            }
        }
    }
    Ok(serde_json::to_string_pretty(&json).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}
