//! The bytes of a log entry's [`Payload`] on disk, written and read by hand so a command
//! (already encoded by the typed layer above) goes to the disk as it is: a header of one
//! to ten bytes, then the command's bytes, with no serializer in between and no copy of the
//! command into a second buffer before the write batch.
//!
//! The layout is the one bincode 2's standard configuration gave the serde derive of
//! [`Payload`] (the layout tessera stored before this module), so existing logs read the
//! same; the tests check both directions against bincode.
//!
//! | payload   | bytes                                                                   |
//! |-----------|-------------------------------------------------------------------------|
//! | `Noop`    | `0`                                                                     |
//! | `Command` | `1`, varint length, the command's bytes                                 |
//! | `Config`  | `2`, varint voter count, voters (32 B each), varint learner count, learners (32 B + varint kind: 0 catching up, 1 observer), varint cluster id |
//!
//! Varint (bincode's): below 251 one byte; else a marker (251: u16, 252: u32, 253: u64)
//! and the value little-endian.

use crate::{ClusterId, LearnerKind, Membership, Payload, PeerId};
use std::collections::{BTreeMap, BTreeSet};

const NOOP: u8 = 0;
const COMMAND: u8 = 1;
const CONFIG: u8 = 2;

/// Longest header: the tag and a u64 varint.
const MAX_HEADER: usize = 10;

/// Why stored payload bytes are not a payload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadBytesError {
    /// The bytes end before the payload does.
    #[error("payload ends after {at} of {len} bytes")]
    Truncated {
        /// Where the next field would have started.
        at: usize,
        /// How many bytes there were.
        len: usize,
    },
    /// The first byte names no payload kind.
    #[error("unknown payload tag {0}")]
    Tag(u8),
    /// A varint has a marker bincode never writes (254, 255) or a value that does not
    /// fit where it is used.
    #[error("bad varint at byte {0}")]
    Varint(usize),
    /// A learner kind other than 0 or 1.
    #[error("unknown learner kind {0}")]
    LearnerKind(u64),
    /// Bytes left over after a whole payload.
    #[error("{0} bytes after the payload")]
    Trailing(usize),
    /// A peer listed twice, or as voter and learner.
    #[error("configuration lists a peer twice")]
    DuplicatePeer,
}

fn put_varint(out: &mut Vec<u8>, value: u64) {
    if value < 251 {
        out.push(value as u8);
    } else if value <= u16::MAX as u64 {
        out.push(251);
        out.extend_from_slice(&(value as u16).to_le_bytes());
    } else if value <= u32::MAX as u64 {
        out.push(252);
        out.extend_from_slice(&(value as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

impl Payload {
    /// The bytes that go before [`Payload::body`]: the whole encoding for `Noop` and
    /// `Config`, the tag and length for `Command`.
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_HEADER);
        self.write_header(&mut out);
        out
    }

    /// Appends [`Payload::header`] to `out` (a writer of many entries reuses one buffer).
    pub fn write_header(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Noop => out.push(NOOP),
            Payload::Command(bytes) => {
                out.push(COMMAND);
                put_varint(out, bytes.len() as u64);
            }
            Payload::Config(membership) => {
                out.push(CONFIG);
                put_varint(out, membership.voters().len() as u64);
                for voter in membership.voters() {
                    out.extend_from_slice(&voter.0);
                }
                put_varint(out, membership.learners().len() as u64);
                for (learner, kind) in membership.learners() {
                    out.extend_from_slice(&learner.0);
                    put_varint(
                        out,
                        match kind {
                            LearnerKind::CatchingUp => 0,
                            LearnerKind::Observer => 1,
                        },
                    );
                }
                put_varint(out, membership.cluster().0);
            }
        }
    }

    /// The bytes after the header: a command's own bytes, empty otherwise.
    pub fn body(&self) -> &[u8] {
        match self {
            Payload::Command(bytes) => bytes,
            Payload::Noop | Payload::Config(_) => &[],
        }
    }

    /// Header and body in one buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header();
        out.extend_from_slice(self.body());
        out
    }

    /// Reads a payload written by [`Payload::header`] and [`Payload::body`]; every byte
    /// must belong to it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Payload, PayloadBytesError> {
        let mut reader = Reader { bytes, at: 0 };
        let payload = match reader.byte()? {
            NOOP => Payload::Noop,
            COMMAND => {
                let len = reader.len()?;
                Payload::Command(reader.take(len)?.to_vec())
            }
            CONFIG => {
                let mut voters = BTreeSet::new();
                for _ in 0..reader.len()? {
                    if !voters.insert(reader.peer()?) {
                        return Err(PayloadBytesError::DuplicatePeer);
                    }
                }
                let mut learners = BTreeMap::new();
                for _ in 0..reader.len()? {
                    let peer = reader.peer()?;
                    let kind = match reader.varint()? {
                        0 => LearnerKind::CatchingUp,
                        1 => LearnerKind::Observer,
                        other => return Err(PayloadBytesError::LearnerKind(other)),
                    };
                    if voters.contains(&peer) || learners.insert(peer, kind).is_some() {
                        return Err(PayloadBytesError::DuplicatePeer);
                    }
                }
                let cluster = ClusterId(reader.varint()?);
                Payload::Config(Membership::from_parts(voters, learners, cluster))
            }
            tag => return Err(PayloadBytesError::Tag(tag)),
        };
        match bytes.len() - reader.at {
            0 => Ok(payload),
            left => Err(PayloadBytesError::Trailing(left)),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadBytesError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(PayloadBytesError::Truncated {
                at: self.at,
                len: self.bytes.len(),
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, PayloadBytesError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, PayloadBytesError> {
        let at = self.at;
        let value = match self.byte()? {
            small @ 0..=250 => small as u64,
            251 => u16::from_le_bytes(self.fixed()?) as u64,
            252 => u32::from_le_bytes(self.fixed()?) as u64,
            253 => u64::from_le_bytes(self.fixed()?),
            _ => return Err(PayloadBytesError::Varint(at)),
        };
        Ok(value)
    }

    /// A length or count: a varint no larger than the bytes left (each counted item takes
    /// at least one byte), so a corrupt count cannot make a reader loop or allocate.
    fn len(&mut self) -> Result<usize, PayloadBytesError> {
        let value = self.varint()?;
        usize::try_from(value)
            .ok()
            .filter(|n| *n <= self.bytes.len() - self.at)
            .ok_or(PayloadBytesError::Truncated {
                at: self.at,
                len: self.bytes.len(),
            })
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], PayloadBytesError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn peer(&mut self) -> Result<PeerId, PayloadBytesError> {
        Ok(PeerId(self.fixed()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bincode_bytes(payload: &Payload) -> Vec<u8> {
        bincode::serde::encode_to_vec(payload, bincode::config::standard()).unwrap()
    }

    fn membership(voters: Vec<u8>, learners: Vec<(u8, bool)>, cluster: u64) -> Membership {
        let voters: BTreeSet<PeerId> = voters.into_iter().map(|v| PeerId([v; 32])).collect();
        let learners = learners
            .into_iter()
            .map(|(l, observer)| (PeerId([l.wrapping_add(128) | 0x80; 32]), observer))
            .filter(|(p, _)| !voters.contains(p))
            .map(|(p, observer)| {
                let kind = if observer {
                    LearnerKind::Observer
                } else {
                    LearnerKind::CatchingUp
                };
                (p, kind)
            })
            .collect();
        Membership::from_parts(voters, learners, ClusterId(cluster))
    }

    fn payloads() -> impl Strategy<Value = Payload> {
        prop_oneof![
            Just(Payload::Noop),
            prop::collection::vec(any::<u8>(), 0..70_000).prop_map(Payload::Command),
            (
                prop::collection::vec(0u8..127, 0..9),
                prop::collection::vec((any::<u8>(), any::<bool>()), 0..4),
                any::<u64>()
            )
                .prop_map(|(v, l, c)| Payload::Config(membership(v, l, c))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The hand-written layout is bincode's, both ways: logs written before read the
        /// same, and a log written now reads with the old decoder.
        #[test]
        fn layout_is_bincodes(payload in payloads()) {
            let ours = payload.to_bytes();
            prop_assert_eq!(&ours, &bincode_bytes(&payload));
            prop_assert_eq!(Payload::from_bytes(&ours).unwrap(), payload.clone());
            let (theirs, _): (Payload, usize) =
                bincode::serde::decode_from_slice(&ours, bincode::config::standard()).unwrap();
            prop_assert_eq!(theirs, payload);
        }

        /// Any truncation is an error, never a panic or a shorter payload.
        #[test]
        fn truncated_bytes_are_refused(payload in payloads(), cut in any::<prop::sample::Index>()) {
            let bytes = payload.to_bytes();
            let keep = cut.index(bytes.len());
            prop_assert!(Payload::from_bytes(&bytes[..keep]).is_err());
        }
    }

    #[test]
    fn varint_boundaries_match_bincode() {
        for len in [0usize, 250, 251, 65_535, 65_536] {
            let payload = Payload::Command(vec![7; len]);
            assert_eq!(payload.to_bytes(), bincode_bytes(&payload), "length {len}");
        }
    }

    #[test]
    fn bad_input_names_what_is_wrong() {
        assert_eq!(Payload::from_bytes(&[9]), Err(PayloadBytesError::Tag(9)));
        assert_eq!(
            Payload::from_bytes(&[0, 0]),
            Err(PayloadBytesError::Trailing(1))
        );
        assert_eq!(
            Payload::from_bytes(&[1, 254]),
            Err(PayloadBytesError::Varint(1))
        );
        assert_eq!(
            Payload::from_bytes(&[1, 5, 1]),
            Err(PayloadBytesError::Truncated { at: 2, len: 3 })
        );
        let mut dup = vec![2, 2];
        dup.extend_from_slice(&[1; 32]);
        dup.extend_from_slice(&[1; 32]);
        dup.extend_from_slice(&[0, 0]);
        assert_eq!(
            Payload::from_bytes(&dup),
            Err(PayloadBytesError::DuplicatePeer)
        );
    }
}
