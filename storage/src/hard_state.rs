//! The small fixed-layout records of a group's `meta`: hard state and log bounds. The
//! types are the core's ([`HardState`], [`Cursor`]); this file owns their bytes on disk.

use crate::error::{hex, Corruption, Error};
use tessera_raft::{Cursor, HardState, Index, PeerId, Term};

/// Payload layout of a hard state record (inside the record envelope):
///
/// | offset | size | field                         |
/// |--------|------|-------------------------------|
/// | 0      | 8    | term (LE)                     |
/// | 8      | 1    | 1 if a vote follows, else 0   |
/// | 9      | 32   | vote (zeros when none)        |
/// | 41     | 8    | commit (LE)                   |
pub(crate) mod hard_state_record {
    use super::*;

    /// Payload length.
    pub(crate) const LEN: usize = 49;

    /// Encodes the payload.
    pub(crate) fn encode(state: &HardState) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..8].copy_from_slice(&state.term.0.to_le_bytes());
        if let Some(vote) = &state.vote {
            out[8] = 1;
            out[9..41].copy_from_slice(&vote.0);
        }
        out[41..].copy_from_slice(&state.commit.0.to_le_bytes());
        out
    }

    /// Decodes the payload stored at `key` of `meta`.
    pub(crate) fn decode(key: &[u8], payload: &[u8]) -> Result<HardState, Error> {
        let bytes: &[u8; LEN] = payload.try_into().map_err(|_| Error::Corruption {
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
            _ => Some(PeerId(bytes[9..41].try_into().unwrap_or_default())),
        };
        let commit = u64::from_le_bytes(bytes[41..].try_into().unwrap_or_default());
        Ok(HardState {
            term: Term(term),
            vote,
            commit: Index(commit),
        })
    }
}

/// Where a group's log starts and ends.
///
/// `anchor` is the last entry removed (by pruning or a snapshot reset); entries exist at
/// `anchor.index + 1 ..= last.index`. When the log is empty, `last == anchor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
            self.anchor.term().0,
            self.anchor.index().0,
            self.last.term().0,
            self.last.index().0,
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
            anchor: Cursor(Term(word(0)), Index(word(1))),
            last: Cursor(Term(word(2)), Index(word(3))),
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
                term: Term(7),
                vote: Some(PeerId([9; 32])),
                commit: Index(42),
            },
        ] {
            let bytes = hard_state_record::encode(&hs);
            assert_eq!(hard_state_record::decode(b"k", &bytes).unwrap(), hs);
        }
        assert!(hard_state_record::decode(b"k", &[0; 3]).is_err());
    }

    #[test]
    fn bounds_round_trip() {
        let b = LogBounds {
            anchor: Cursor(Term(2), Index(10)),
            last: Cursor(Term(3), Index(99)),
        };
        assert_eq!(LogBounds::decode(b"k", &b.encode()).unwrap(), b);
        assert!(LogBounds::decode(b"k", &[0; 31]).is_err());
    }
}
