//! A read-only summary of a data directory, for `tessera inspect`: groups, log ranges,
//! hard state, snapshots and transfers, and the bytes in each column family.

use crate::error::{hex, Error};
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
    /// Group id, hex.
    pub group: String,
    /// Anchor and last position of the log.
    pub log: LogSummary,
    /// Entries present (`last - anchor`).
    pub entries: u64,
    /// Term, vote, commit.
    pub hard_state: HardStateSummary,
    /// Stored snapshots: anchor index → chunk count and bytes.
    pub snapshots: Vec<SnapshotSummary>,
    /// Transfers in progress: anchor indices with resume state.
    pub transfers: Vec<u64>,
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

/// One stored snapshot's chunks.
#[derive(Debug, Serialize)]
pub struct SnapshotSummary {
    /// Anchor index the snapshot was cut at.
    pub anchor: u64,
    /// Whether its manifest is stored (complete snapshot) or only chunks (in transfer).
    pub manifest: bool,
    /// Chunks stored.
    pub chunks: u64,
    /// Bytes of stored (compressed) chunks.
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
        let mut manifests: BTreeMap<GroupId, Vec<u64>> = BTreeMap::new();
        let mut transfers: BTreeMap<GroupId, Vec<u64>> = BTreeMap::new();
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
                let group_anchor = || -> Option<(GroupId, u64)> {
                    let group: GroupId = key.get(..32)?.try_into().ok()?;
                    let anchor = u64::from_be_bytes(key.get(32..40)?.try_into().ok()?);
                    Some((group, anchor))
                };
                match cf {
                    ColumnFamily::Snapshots => {
                        if let Some(ga) = group_anchor() {
                            let e = chunks.entry(ga).or_default();
                            e.0 += 1;
                            e.1 += value.len() as u64;
                        }
                    }
                    ColumnFamily::SnapshotMeta => {
                        if let Some((g, a)) = group_anchor() {
                            manifests.entry(g).or_default().push(a);
                        }
                    }
                    ColumnFamily::Transfers if key.len() == 40 => {
                        if let Some((g, a)) = group_anchor() {
                            transfers.entry(g).or_default().push(a);
                        }
                    }
                    _ => {}
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
            let mut anchors: Vec<u64> = manifests.get(&group).cloned().unwrap_or_default();
            anchors.extend(
                chunks
                    .range((group, 0)..=(group, u64::MAX))
                    .map(|((_, a), _)| *a),
            );
            anchors.sort_unstable();
            anchors.dedup();
            let snapshots = anchors
                .into_iter()
                .map(|anchor| {
                    let (n, b) = chunks.get(&(group, anchor)).copied().unwrap_or_default();
                    SnapshotSummary {
                        anchor,
                        manifest: manifests.get(&group).is_some_and(|m| m.contains(&anchor)),
                        chunks: n,
                        bytes: b,
                    }
                })
                .collect();
            let hard_state = log.hard_state();
            groups.push(GroupSummary {
                group: hex(&group),
                log: LogSummary {
                    anchor: bounds.anchor.into(),
                    last: bounds.last.into(),
                },
                entries: bounds.last.index().0 - bounds.anchor.index().0,
                hard_state: HardStateSummary {
                    term: hard_state.term.0,
                    vote: hard_state.vote.map(|v| hex(&v.0)),
                    commit: hard_state.commit.0,
                },
                snapshots,
                transfers: transfers.remove(&group).unwrap_or_default(),
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
