//! Key layouts. All integers are big-endian so RocksDB's byte order is numeric order and a
//! group's keys are contiguous.
//!
//! | family          | layout                                         | length |
//! |-----------------|------------------------------------------------|--------|
//! | `log`           | group (32) ‖ index (8)                         | 40     |
//! | `meta`          | group (32) ‖ tag (1)                           | 33     |
//! | `meta` (store)  | `tessera/format`                               | 14     |
//! | `snapshots`     | group (32) ‖ anchor index (8) ‖ chunk no. (8)  | 48     |
//! | `snapshot_meta` | group (32) ‖ anchor index (8)                  | 40     |
//! | `transfers`     | group (32) ‖ anchor index (8)                  | 40     |

use crate::GroupId;

/// Length of a `log` key.
pub const LOG_KEY_LEN: usize = 40;
/// Length of a group's `meta` key.
pub const META_KEY_LEN: usize = 33;
/// The store-level key in `meta` holding the data directory's format generation.
pub const FORMAT_KEY: &[u8] = b"tessera/format";

/// Tags of a group's records in `meta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MetaTag {
    /// Term, vote, commit.
    HardState = 1,
    /// Anchor and last position of the log.
    LogBounds = 2,
    /// The durable voter set (written by the consensus layer).
    Membership = 3,
    /// The applied position (written by the consensus layer).
    Applied = 4,
    /// The vote-withheld marker: u64 LE, the last index the log had before a damaged
    /// record was repaired by truncation. Absent when no repair is pending. While present
    /// the node neither votes nor campaigns (see `GroupLog::repair_from`).
    VoteWithheld = 5,
    /// The lowest log index a read found damaged while the node ran: u64 LE. The next
    /// open repairs the log from there even if recovery would not read that far back
    /// (an entry before the restored snapshot). Absent when nothing was found.
    LogDamage = 6,
}

impl MetaTag {
    /// The tag for a byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(MetaTag::HardState),
            2 => Some(MetaTag::LogBounds),
            3 => Some(MetaTag::Membership),
            4 => Some(MetaTag::Applied),
            5 => Some(MetaTag::VoteWithheld),
            6 => Some(MetaTag::LogDamage),
            _ => None,
        }
    }
}

/// `log` key of entry `index` in `group`.
pub fn log_key(group: &GroupId, index: u64) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[..32].copy_from_slice(group);
    key[32..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Splits a `log` key into group and index.
pub fn parse_log_key(key: &[u8]) -> Option<(GroupId, u64)> {
    if key.len() != LOG_KEY_LEN {
        return None;
    }
    let group: GroupId = key[..32].try_into().ok()?;
    let index = u64::from_be_bytes(key[32..].try_into().ok()?);
    Some((group, index))
}

/// `meta` key of a group's record.
pub fn meta_key(group: &GroupId, tag: MetaTag) -> [u8; META_KEY_LEN] {
    let mut key = [0u8; META_KEY_LEN];
    key[..32].copy_from_slice(group);
    key[32] = tag as u8;
    key
}

/// `snapshot_meta` / `transfers` key of a snapshot anchored at `anchor`.
pub fn snapshot_key(group: &GroupId, anchor: u64) -> [u8; 40] {
    log_key(group, anchor)
}

/// `snapshots` key of one chunk.
pub fn chunk_key(group: &GroupId, anchor: u64, chunk: u64) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..32].copy_from_slice(group);
    key[32..40].copy_from_slice(&anchor.to_be_bytes());
    key[40..].copy_from_slice(&chunk.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_numerically_and_round_trip() {
        let g = [3u8; 32];
        assert!(log_key(&g, 255) < log_key(&g, 256));
        assert_eq!(parse_log_key(&log_key(&g, 99)), Some((g, 99)));
        assert_eq!(parse_log_key(&[0u8; 12]), None);
    }
}
