//! Identity of a snapshot: the group it belongs to and its anchor in the Raft log, and the
//! byte keys a store uses for it.
//!
//! Keys are built so that a RocksDB column family sorts all chunks of one snapshot together
//! and in chunk order: group id (32 B) + anchor index (u64 big endian) [+ chunk number (u32
//! big endian)].

use std::fmt;

/// A consensus group's 32-byte id (the root crate derives it with blake3 from the group key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub [u8; 32]);

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({self})")
    }
}

impl fmt::Display for GroupId {
    /// The first 8 bytes in hex, enough to tell groups apart in logs and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0[..8])
    }
}

/// Writes `bytes` as lowercase hex (the crate's ids and digests display this way).
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// The log position a snapshot covers: every entry up to and including `index`, which was
/// written in `term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor {
    /// Term of the entry at `index`.
    pub term: u64,
    /// Index of the last log entry the snapshot includes.
    pub index: u64,
}

/// Which snapshot: a group and the anchor index. Two snapshots of one group at one index are
/// the same state (Raft's log matching), so the term is not part of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotKey {
    /// The group the snapshot belongs to.
    pub group: GroupId,
    /// The anchor index of the snapshot.
    pub index: u64,
}

/// Length of [`SnapshotKey::to_bytes`].
pub const SNAPSHOT_KEY_LEN: usize = 40;
/// Length of [`SnapshotKey::chunk_key`].
pub const CHUNK_KEY_LEN: usize = 44;

impl SnapshotKey {
    /// Creates a key.
    pub fn new(group: GroupId, index: u64) -> Self {
        SnapshotKey { group, index }
    }

    /// `group id (32 B) | anchor index (u64 BE)`: the key in `snapshot_meta` and `transfers`.
    pub fn to_bytes(&self) -> [u8; SNAPSHOT_KEY_LEN] {
        let mut out = [0u8; SNAPSHOT_KEY_LEN];
        out[..32].copy_from_slice(&self.group.0);
        out[32..].copy_from_slice(&self.index.to_be_bytes());
        out
    }

    /// `group id (32 B) | anchor index (u64 BE) | chunk number (u32 BE)`: the key of one chunk
    /// in `snapshots` (and of a received-chunk mark in `transfers`, if a store keeps them as
    /// one key per chunk). Sorted by chunk number within a snapshot.
    pub fn chunk_key(&self, chunk: u32) -> [u8; CHUNK_KEY_LEN] {
        let mut out = [0u8; CHUNK_KEY_LEN];
        out[..SNAPSHOT_KEY_LEN].copy_from_slice(&self.to_bytes());
        out[SNAPSHOT_KEY_LEN..].copy_from_slice(&chunk.to_be_bytes());
        out
    }

    /// Parses [`SnapshotKey::to_bytes`]; `None` if `bytes` is not exactly 40 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let group: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let index: [u8; 8] = bytes.get(32..SNAPSHOT_KEY_LEN)?.try_into().ok()?;
        (bytes.len() == SNAPSHOT_KEY_LEN)
            .then(|| SnapshotKey::new(GroupId(group), u64::from_be_bytes(index)))
    }

    /// Parses [`SnapshotKey::chunk_key`] into the key and chunk number; `None` if `bytes` is not
    /// exactly 44 bytes long.
    pub fn from_chunk_key(bytes: &[u8]) -> Option<(Self, u32)> {
        if bytes.len() != CHUNK_KEY_LEN {
            return None;
        }
        let key = Self::from_bytes(&bytes[..SNAPSHOT_KEY_LEN])?;
        let chunk: [u8; 4] = bytes[SNAPSHOT_KEY_LEN..].try_into().ok()?;
        Some((key, u32::from_be_bytes(chunk)))
    }
}

impl fmt::Display for SnapshotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {} at index {}", self.group, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_index_then_chunk() {
        let g = GroupId([7; 32]);
        let a = SnapshotKey::new(g, 5);
        let b = SnapshotKey::new(g, 256);
        assert_eq!(SnapshotKey::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(SnapshotKey::from_chunk_key(&b.chunk_key(9)), Some((b, 9)));
        assert!(a.to_bytes() < b.to_bytes());
        assert!(a.chunk_key(1) < a.chunk_key(256));
        assert!(a.chunk_key(u32::MAX) < b.chunk_key(0));
        assert_eq!(SnapshotKey::from_bytes(&a.chunk_key(0)), None);
        assert_eq!(SnapshotKey::from_chunk_key(&a.to_bytes()), None);
    }
}
