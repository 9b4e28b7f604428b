//! The small fixed-layout records of a group's `meta`: hard state and log bounds.

use crate::error::{hex, Corruption, Error};
use serde::Serialize;

/// A (term, index) position in a log: the same name as the core's `Cursor`, in raw numbers
/// (this crate knows nothing of the core).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Cursor {
    /// Term of the entry.
    pub term: u64,
    /// Index of the entry (0: before the first).
    pub index: u64,
}

impl Cursor {
    /// A position.
    pub const fn new(term: u64, index: u64) -> Self {
        Cursor { term, index }
    }
}

/// Raft's persistent state (Figure 2) plus the commit index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HardState {
    /// Latest term seen.
    pub term: u64,
    /// Peer voted for in `term`.
    #[serde(serialize_with = "serialize_vote")]
    pub vote: Option<[u8; 32]>,
    /// Highest index known committed.
    pub commit: u64,
}

fn serialize_vote<S: serde::Serializer>(vote: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
    match vote {
        Some(v) => s.serialize_some(&hex(v)),
        None => s.serialize_none(),
    }
}

/// Payload layout of a hard state record (inside the record envelope):
///
/// | offset | size | field                         |
/// |--------|------|-------------------------------|
/// | 0      | 8    | term (LE)                     |
/// | 8      | 1    | 1 if a vote follows, else 0   |
/// | 9      | 32   | vote (zeros when none)        |
/// | 41     | 8    | commit (LE)                   |
impl HardState {
    /// Payload length.
    pub const LEN: usize = 49;

    /// Encodes the payload.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.term.to_le_bytes());
        if let Some(vote) = &self.vote {
            out[8] = 1;
            out[9..41].copy_from_slice(vote);
        }
        out[41..].copy_from_slice(&self.commit.to_le_bytes());
        out
    }

    /// Decodes the payload stored at `key` of `meta`.
    pub fn decode(key: &[u8], payload: &[u8]) -> Result<Self, Error> {
        let bytes: &[u8; Self::LEN] = payload.try_into().map_err(|_| Error::Corruption {
            cf: "meta",
            key: hex(key),
            kind: Corruption::PayloadLength {
                len: payload.len(),
                expected: "49 (hard state)",
            },
        })?;
        let term = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
        let vote = match bytes[8] {
            0 => None,
            _ => Some(bytes[9..41].try_into().unwrap_or_default()),
        };
        let commit = u64::from_le_bytes(bytes[41..].try_into().unwrap_or_default());
        Ok(HardState { term, vote, commit })
    }
}

/// Where a group's log starts and ends.
///
/// `anchor` is the last entry removed (by pruning or a snapshot reset); entries exist at
/// `anchor.index + 1 ..= last.index`. When the log is empty, `last == anchor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogBounds {
    /// Last removed entry (0@0 for a log never pruned).
    pub anchor: Cursor,
    /// Last entry.
    pub last: Cursor,
}

/// Payload layout of a log bounds record: anchor term, anchor index, last term, last
/// index, each u64 LE (32 bytes).
impl LogBounds {
    /// Payload length.
    pub const LEN: usize = 32;

    /// Encodes the payload.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        for (i, v) in [
            self.anchor.term,
            self.anchor.index,
            self.last.term,
            self.last.index,
        ]
        .iter()
        .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes the payload stored at `key` of `meta`.
    pub fn decode(key: &[u8], payload: &[u8]) -> Result<Self, Error> {
        if payload.len() != Self::LEN {
            return Err(Error::Corruption {
                cf: "meta",
                key: hex(key),
                kind: Corruption::PayloadLength {
                    len: payload.len(),
                    expected: "32 (log bounds)",
                },
            });
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        Ok(LogBounds {
            anchor: Cursor::new(word(0), word(1)),
            last: Cursor::new(word(2), word(3)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_state_round_trip() {
        for hs in [
            HardState::default(),
            HardState {
                term: 7,
                vote: Some([9; 32]),
                commit: 42,
            },
        ] {
            assert_eq!(HardState::decode(b"k", &hs.encode()).unwrap(), hs);
        }
        assert!(HardState::decode(b"k", &[0; 3]).is_err());
    }

    #[test]
    fn bounds_round_trip() {
        let b = LogBounds {
            anchor: Cursor::new(2, 10),
            last: Cursor::new(3, 99),
        };
        assert_eq!(LogBounds::decode(b"k", &b.encode()).unwrap(), b);
        assert!(LogBounds::decode(b"k", &[0; 31]).is_err());
    }
}
