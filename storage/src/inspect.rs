//! A read-only summary of a data directory, for `tessera inspect`: groups, log ranges,
//! hard state, the snapshot chunks stored per anchor, and the bytes in each column
//! family. Manifests and transfer records are the snapshot format's (`tessera-snapshots`),
//! which this crate does not decode: the caller reads them and tells complete snapshots,
//! transfers and leftovers apart.

use crate::error::{hex, Error};
use crate::record::RECORD_OVERHEAD;
use crate::store::{ColumnFamily, Store};
use crate::GroupId;
use serde::Serialize;
use std::collections::BTreeMap;

/// Summary of one data directory.
#[derive(Debug, Serialize)]
pub struct StoreSummary {
    /// The data directory.
    pub path: String,
    /// Data format generation.
    pub format: u32,
    /// Every group found.
    pub groups: Vec<GroupSummary>,
    /// Keys and bytes (keys + values, as stored) per column family.
    pub column_families: Vec<ColumnFamilySummary>,
}

/// Summary of one group.
#[derive(Debug, Serialize)]
pub struct GroupSummary {
    /// Group id.
    #[serde(skip)]
    pub id: GroupId,
    /// Group id, hex.
    pub group: String,
    /// Anchor and last position of the log.
    pub log: LogSummary,
    /// Entries present (`last - anchor`).
    pub entries: u64,
    /// Term, vote, commit.
    pub hard_state: HardStateSummary,
    /// The chunks in `snapshots`, per anchor, whether a manifest completes them or not:
    /// the caller tells complete snapshots, transfers and leftovers apart (it reads the
    /// manifests, which this crate does not decode).
    pub stored_chunks: Vec<StoredChunks>,
}

/// A (term, index) position, in raw numbers for the report.
#[derive(Debug, Serialize)]
pub struct CursorSummary {
    /// Term of the entry.
    pub term: u64,
    /// Index of the entry.
    pub index: u64,
}

/// Where a group's log starts and ends.
#[derive(Debug, Serialize)]
pub struct LogSummary {
    /// Last removed entry (0@0 for a log never pruned).
    pub anchor: CursorSummary,
    /// Last entry.
    pub last: CursorSummary,
}

/// A group's hard state, the vote in hex.
#[derive(Debug, Serialize)]
pub struct HardStateSummary {
    /// Latest term seen.
    pub term: u64,
    /// Peer voted for in `term`, hex.
    pub vote: Option<String>,
    /// Highest index known committed.
    pub commit: u64,
}

impl From<tessera_raft::Cursor> for CursorSummary {
    fn from(c: tessera_raft::Cursor) -> Self {
        CursorSummary {
            term: c.term().0,
            index: c.index().0,
        }
    }
}

/// The chunks stored for one snapshot anchor of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoredChunks {
    /// Anchor index the snapshot was cut at.
    pub anchor: u64,
    /// Chunks stored.
    pub chunks: u64,
    /// Bytes of the stored (compressed) chunks, the record envelope excluded: the
    /// measure a manifest's stored size uses, so the two compare.
    pub bytes: u64,
}

/// Keys and bytes of one column family.
#[derive(Debug, Serialize)]
pub struct ColumnFamilySummary {
    /// Family name.
    pub name: &'static str,
    /// Live keys.
    pub keys: u64,
    /// Bytes of live keys plus values.
    pub bytes: u64,
}

impl Store {
    /// Summarizes the whole data directory. Walks every key once (exact, not estimated):
    /// cost is linear in the data size.
    pub fn summary(&self) -> Result<StoreSummary, Error> {
        let mut column_families = Vec::new();
        let mut chunks: BTreeMap<(GroupId, u64), (u64, u64)> = BTreeMap::new();
        for cf in ColumnFamily::ALL {
            let (mut keys, mut bytes) = (0u64, 0u64);
            for item in self
                .db()
                .iterator_cf(self.cf(cf), rocksdb::IteratorMode::Start)
            {
                let (key, value) = item.map_err(|source| Error::Db {
                    op: "iterate",
                    cf: cf.name(),
                    source,
                })?;
                keys += 1;
                bytes += (key.len() + value.len()) as u64;
                if cf == ColumnFamily::Snapshots {
                    // Chunk keys are group (32 bytes) ‖ anchor (8, big endian) ‖ chunk.
                    let group: Option<GroupId> = key.get(..32).and_then(|g| g.try_into().ok());
                    let anchor = key
                        .get(32..40)
                        .and_then(|a| a.try_into().ok())
                        .map(u64::from_be_bytes);
                    if let (Some(group), Some(anchor)) = (group, anchor) {
                        let e = chunks.entry((group, anchor)).or_default();
                        e.0 += 1;
                        e.1 += value.len().saturating_sub(RECORD_OVERHEAD) as u64;
                    }
                }
            }
            column_families.push(ColumnFamilySummary {
                name: cf.name(),
                keys,
                bytes,
            });
        }
        let mut groups = Vec::new();
        for group in self.groups()? {
            let log = self.group_log(group)?;
            let bounds = log.bounds();
            let stored_chunks = chunks
                .range((group, 0)..=(group, u64::MAX))
                .map(|((_, anchor), (n, b))| StoredChunks {
                    anchor: *anchor,
                    chunks: *n,
                    bytes: *b,
                })
                .collect();
            let hard_state = log.hard_state();
            groups.push(GroupSummary {
                id: group,
                group: hex(&group),
                log: LogSummary {
                    anchor: bounds.anchor.into(),
                    last: bounds.last.into(),
                },
                entries: bounds
                    .last
                    .index()
                    .0
                    .saturating_sub(bounds.anchor.index().0),
                hard_state: HardStateSummary {
                    term: hard_state.term.0,
                    vote: hard_state.vote.map(|v| hex(&v.0)),
                    commit: hard_state.commit.0,
                },
                stored_chunks,
            });
        }
        Ok(StoreSummary {
            path: self.path().display().to_string(),
            format: crate::store::DATA_FORMAT,
            groups,
            column_families,
        })
    }
}
