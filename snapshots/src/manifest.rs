//! The manifest: everything a node needs to fetch, verify and read a snapshot's chunks.
//!
//! A manifest is built by [`SnapshotWriter::finish`](crate::SnapshotWriter::finish) and
//! otherwise only comes from [`Manifest::decode`], which checks every field, so a `Manifest`
//! value always satisfies the invariants listed on the type.

use crate::error::{Result, SnapshotError};
use crate::hash::StreamDigest;
use crate::key::{write_hex, Cursor, GroupId, SnapshotKey};
use std::fmt;

/// Manifest format version written by this build (the only one it reads). Version 1 carried
/// a 32-byte blake3 digest of the raw stream; version 2 carries XXH3-128 ([`StreamDigest`]).
pub const MANIFEST_VERSION: u16 = 2;
/// Smallest chunk raw size a manifest (and a writer) accepts.
pub const MIN_CHUNK_SIZE: u32 = 1024;
/// Largest chunk raw size a manifest (and a writer) accepts: bounds what a reader allocates.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Default chunk raw size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Default zstd level: 1, the fastest regular level (see `NOTES.md`: level 3 is half as
/// fast and compresses config-like records no better).
pub const DEFAULT_LEVEL: i32 = 1;

/// Fixed part of the encoding, before the chunk table.
const HEADER_LEN: usize = 95;
/// One chunk table entry.
const CHUNK_ENTRY_LEN: usize = 12;
/// Trailing crc32.
const CRC_LEN: usize = 4;

/// A blake3 digest: a manifest's [`fingerprint`](Manifest::fingerprint).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// How chunks are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Each chunk is one zstd frame (with its content size in the header, no zstd checksum:
    /// the manifest's crc32 covers it), compressed single-threaded without a dictionary.
    Zstd,
}

impl Codec {
    fn to_byte(self) -> u8 {
        match self {
            Codec::Zstd => 1,
        }
    }
}

/// One chunk's entry in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Bytes of the raw stream in this chunk: the manifest's chunk size, except for the last
    /// chunk, which holds 1..=chunk size.
    pub raw_len: u32,
    /// Bytes of the compressed chunk, as stored and as sent.
    pub compressed_len: u32,
    /// crc32 (IEEE, as `crc32fast`) of the compressed bytes, so a receiver checks a chunk
    /// before decompressing it.
    pub crc32: u32,
}

/// A snapshot's description.
///
/// Invariants (checked by [`Manifest::decode`], guaranteed by the writer):
/// - `chunk_size` is in `MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE`;
/// - there are `ceil(raw_bytes / chunk_size)` chunks, all of `chunk_size` raw bytes but the
///   last, which holds the remainder (1..=chunk_size);
/// - every compressed length is in `1..=zstd::compress_bound(raw_len)`;
/// - `item_count <= raw_bytes` (every item has at least a one-byte length prefix) and no
///   items means no raw bytes;
/// - `level` is a level the linked zstd accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    group: GroupId,
    anchor: Cursor,
    item_count: u64,
    raw_bytes: u64,
    chunk_size: u32,
    codec: Codec,
    level: i32,
    digest: StreamDigest,
    chunks: Vec<ChunkInfo>,
    /// Sum of the compressed lengths (derived).
    compressed_bytes: u64,
}

impl Manifest {
    /// Builds a manifest from the writer's totals. The writer upholds the invariants; debug
    /// builds check them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_writer(
        group: GroupId,
        anchor: Cursor,
        item_count: u64,
        raw_bytes: u64,
        chunk_size: u32,
        level: i32,
        digest: StreamDigest,
        chunks: Vec<ChunkInfo>,
    ) -> Self {
        let compressed_bytes = chunks.iter().map(|c| u64::from(c.compressed_len)).sum();
        let m = Manifest {
            group,
            anchor,
            item_count,
            raw_bytes,
            chunk_size,
            codec: Codec::Zstd,
            level,
            digest,
            chunks,
            compressed_bytes,
        };
        debug_assert!(
            m.check().is_ok(),
            "writer built an invalid manifest: {:?}",
            m.check()
        );
        m
    }

    /// The group the snapshot belongs to.
    pub fn group(&self) -> GroupId {
        self.group
    }
    /// The log position the snapshot covers.
    pub fn anchor(&self) -> Cursor {
        self.anchor
    }
    /// The key the snapshot is stored under.
    pub fn key(&self) -> SnapshotKey {
        SnapshotKey::new(self.group, self.anchor.index)
    }
    /// Number of items in the snapshot.
    pub fn item_count(&self) -> u64 {
        self.item_count
    }
    /// Length of the raw stream (items with their length prefixes).
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }
    /// Sum of the compressed chunk lengths: what a transfer moves.
    pub fn compressed_bytes(&self) -> u64 {
        self.compressed_bytes
    }
    /// Raw bytes per chunk (all chunks but the last).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Compression codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }
    /// zstd level the chunks were compressed at.
    pub fn level(&self) -> i32 {
        self.level
    }
    /// XXH3-128 of the raw stream.
    pub fn digest(&self) -> StreamDigest {
        self.digest
    }
    /// The chunk table, in chunk order.
    pub fn chunks(&self) -> &[ChunkInfo] {
        &self.chunks
    }
    /// Number of chunks.
    pub fn chunk_count(&self) -> u32 {
        // decode and the writer keep the count within u32
        self.chunks.len() as u32
    }
    /// One chunk's entry, or an error naming the chunk if it is out of range.
    pub fn chunk(&self, chunk: u32) -> Result<ChunkInfo> {
        self.chunks
            .get(chunk as usize)
            .copied()
            .ok_or(SnapshotError::ChunkOutOfRange {
                key: self.key(),
                chunk,
                count: self.chunk_count(),
            })
    }

    /// blake3 of the encoded manifest. Two nodes whose manifests have the same fingerprint
    /// hold byte-identical chunks, so a receiver should only ask peers that advertise the
    /// fingerprint of the manifest it is fetching (nodes linked against different zstd
    /// versions may compress the same raw stream differently).
    pub fn fingerprint(&self) -> Digest {
        Digest(*blake3::hash(&self.encode()).as_bytes())
    }

    /// Checks that `bytes` is the chunk `chunk` of this snapshot as stored or sent: length and
    /// crc32 of the compressed bytes. Does not decompress.
    pub fn verify_chunk(&self, chunk: u32, bytes: &[u8]) -> Result<ChunkInfo> {
        let info = self.verify_chunk_length(chunk, bytes)?;
        let found = crc32fast::hash(bytes);
        if found != info.crc32 {
            return Err(SnapshotError::ChunkCrc {
                key: self.key(),
                chunk,
                expected: info.crc32,
                found,
            });
        }
        Ok(info)
    }

    /// Checks `bytes` as chunk `chunk`: its number and compressed length only.
    pub(crate) fn verify_chunk_length(&self, chunk: u32, bytes: &[u8]) -> Result<ChunkInfo> {
        let info = self.chunk(chunk)?;
        if bytes.len() != info.compressed_len as usize {
            return Err(SnapshotError::ChunkLength {
                key: self.key(),
                chunk,
                expected: info.compressed_len,
                found: bytes.len(),
            });
        }
        Ok(info)
    }

    /// Encodes the manifest. Layout, all integers little endian:
    ///
    /// | offset | size | field |
    /// |---|---|---|
    /// | 0 | 2 | format version (`MANIFEST_VERSION` = 2) |
    /// | 2 | 32 | group id |
    /// | 34 | 8 | anchor term |
    /// | 42 | 8 | anchor index |
    /// | 50 | 8 | item count |
    /// | 58 | 8 | raw bytes |
    /// | 66 | 4 | chunk raw size |
    /// | 70 | 1 | codec (1 = zstd) |
    /// | 71 | 4 | zstd level (i32) |
    /// | 75 | 16 | XXH3-128 digest of the raw stream ([`StreamDigest`], little endian) |
    /// | 91 | 4 | chunk count `n` |
    /// | 95 | 12 × n | per chunk: raw length (u32), compressed length (u32), crc32 (u32) |
    /// | 95 + 12n | 4 | crc32 of bytes `0 .. 95 + 12n` |
    ///
    /// The trailing crc covers the version, the key context (group id and anchor index, the
    /// record's key in `snapshot_meta`) and the payload; [`Manifest::decode_for`] also checks
    /// that the record names the key it was read under, so a record under the wrong key fails.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_LEN + CHUNK_ENTRY_LEN * self.chunks.len() + CRC_LEN);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&self.group.0);
        out.extend_from_slice(&self.anchor.term.to_le_bytes());
        out.extend_from_slice(&self.anchor.index.to_le_bytes());
        out.extend_from_slice(&self.item_count.to_le_bytes());
        out.extend_from_slice(&self.raw_bytes.to_le_bytes());
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.push(self.codec.to_byte());
        out.extend_from_slice(&self.level.to_le_bytes());
        out.extend_from_slice(&self.digest.0);
        out.extend_from_slice(&self.chunk_count().to_le_bytes());
        debug_assert_eq!(out.len(), HEADER_LEN);
        for c in &self.chunks {
            out.extend_from_slice(&c.raw_len.to_le_bytes());
            out.extend_from_slice(&c.compressed_len.to_le_bytes());
            out.extend_from_slice(&c.crc32.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a record read under `key` (see [`Manifest::encode`] for the layout): as
    /// [`Manifest::decode`], and the record must name `key`.
    pub fn decode_for(key: SnapshotKey, bytes: &[u8]) -> Result<Self> {
        let m = Self::decode(bytes)?;
        if m.key() != key {
            return Err(SnapshotError::ManifestKey {
                expected: key,
                found: m.key(),
            });
        }
        Ok(m)
    }

    /// Decodes and validates a manifest record (see [`Manifest::encode`] for the layout).
    /// Rejects a short record, an unknown version, a bad crc, or any field that breaks the
    /// invariants on [`Manifest`], naming the field. The chunk table is allocated only after
    /// the record length is checked against the chunk count.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = ByteReader { bytes, pos: 0 };
        let version = r.u16()?;
        if version != MANIFEST_VERSION {
            return Err(SnapshotError::ManifestVersion {
                found: version,
                expected: MANIFEST_VERSION,
            });
        }
        if bytes.len() < HEADER_LEN + CRC_LEN {
            return Err(SnapshotError::ManifestTruncated {
                len: bytes.len(),
                needed: HEADER_LEN + CRC_LEN,
            });
        }
        let count_bytes: [u8; 4] = r.array_at(HEADER_LEN - 4)?;
        let count = u32::from_le_bytes(count_bytes);
        let needed = HEADER_LEN as u64 + CHUNK_ENTRY_LEN as u64 * u64::from(count) + CRC_LEN as u64;
        if (bytes.len() as u64) < needed {
            return Err(SnapshotError::ManifestTruncated {
                len: bytes.len(),
                needed: needed as usize,
            });
        }
        if bytes.len() as u64 > needed {
            return Err(SnapshotError::ManifestField {
                field: "chunk count",
                value: u64::from(count),
                reason: "record is longer than the chunk table it announces",
            });
        }
        let body_len = bytes.len() - CRC_LEN;
        let expected_crc = u32::from_le_bytes(r.array_at(body_len)?);
        let found_crc = crc32fast::hash(&bytes[..body_len]);
        if expected_crc != found_crc {
            return Err(SnapshotError::ManifestCrc {
                expected: expected_crc,
                found: found_crc,
            });
        }

        let group = GroupId(r.array()?);
        let term = r.u64()?;
        let index = r.u64()?;
        let item_count = r.u64()?;
        let raw_bytes = r.u64()?;
        let chunk_size = r.u32()?;
        let codec_byte = r.array::<1>()?[0];
        let level = r.u32()? as i32;
        let digest = StreamDigest(r.array()?);
        let _count = r.u32()?;
        if codec_byte != Codec::Zstd.to_byte() {
            return Err(field(
                "codec",
                u64::from(codec_byte),
                "unknown codec (1 = zstd)",
            ));
        }
        // `count` entries of 12 bytes fit in the record (checked above), so this allocation
        // is bounded by the record's own length.
        let mut chunks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            chunks.push(ChunkInfo {
                raw_len: r.u32()?,
                compressed_len: r.u32()?,
                crc32: r.u32()?,
            });
        }
        let compressed_bytes = chunks.iter().map(|c| u64::from(c.compressed_len)).sum();
        let m = Manifest {
            group,
            anchor: Cursor { term, index },
            item_count,
            raw_bytes,
            chunk_size,
            codec: Codec::Zstd,
            level,
            digest,
            chunks,
            compressed_bytes,
        };
        m.check()?;
        Ok(m)
    }

    /// Checks the invariants listed on the type.
    fn check(&self) -> Result<()> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(field(
                "chunk size",
                u64::from(self.chunk_size),
                "outside 1 KiB ..= 16 MiB",
            ));
        }
        if !zstd::compression_level_range().contains(&self.level) {
            return Err(field(
                "level",
                self.level as u64,
                "not a zstd compression level",
            ));
        }
        if self.item_count > self.raw_bytes {
            return Err(field(
                "item count",
                self.item_count,
                "exceeds raw bytes (each item takes at least one byte)",
            ));
        }
        if self.item_count == 0 && self.raw_bytes != 0 {
            return Err(field("raw bytes", self.raw_bytes, "non-zero with no items"));
        }
        let size = u64::from(self.chunk_size);
        let expected_count = self.raw_bytes.div_ceil(size);
        if self.chunks.len() as u64 != expected_count {
            return Err(field(
                "chunk count",
                self.chunks.len() as u64,
                "differs from ceil(raw bytes / chunk size)",
            ));
        }
        for (i, c) in self.chunks.iter().enumerate() {
            let expected_raw = if i + 1 == self.chunks.len() {
                self.raw_bytes - size * (expected_count - 1)
            } else {
                size
            };
            if u64::from(c.raw_len) != expected_raw {
                return Err(field(
                    "chunk raw length",
                    u64::from(c.raw_len),
                    "differs from the chunk size (or the remainder for the last chunk)",
                ));
            }
            let bound = zstd::zstd_safe::compress_bound(c.raw_len as usize) as u64;
            if c.compressed_len == 0 || u64::from(c.compressed_len) > bound {
                return Err(field(
                    "chunk compressed length",
                    u64::from(c.compressed_len),
                    "outside 1 ..= zstd compress bound of the raw length",
                ));
            }
        }
        Ok(())
    }
}

fn field(field: &'static str, value: u64, reason: &'static str) -> SnapshotError {
    SnapshotError::ManifestField {
        field,
        value,
        reason,
    }
}

/// Bounds-checked little-endian reads over a record.
struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl ByteReader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let a = self.array_at(self.pos)?;
        self.pos += N;
        Ok(a)
    }
    fn array_at<const N: usize>(&self, at: usize) -> Result<[u8; N]> {
        self.bytes
            .get(at..at + N)
            .and_then(|s| s.try_into().ok())
            .ok_or(SnapshotError::ManifestTruncated {
                len: self.bytes.len(),
                needed: at + N,
            })
    }
    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest::from_writer(
            GroupId([3; 32]),
            Cursor { term: 4, index: 99 },
            3,
            2500,
            1024,
            1,
            StreamDigest([9; 16]),
            vec![
                ChunkInfo {
                    raw_len: 1024,
                    compressed_len: 100,
                    crc32: 1,
                },
                ChunkInfo {
                    raw_len: 1024,
                    compressed_len: 200,
                    crc32: 2,
                },
                ChunkInfo {
                    raw_len: 452,
                    compressed_len: 300,
                    crc32: 3,
                },
            ],
        )
    }

    /// Re-seals a tampered record with a valid crc, so the field checks are what fails.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(bytes.len(), 95 + 36 + 4);
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        assert_eq!(Manifest::decode_for(m.key(), &bytes).unwrap(), m);
        assert_eq!(m.compressed_bytes(), 600);
    }

    #[test]
    fn wrong_key_is_named() {
        let m = sample();
        let other = SnapshotKey::new(m.group(), 100);
        match Manifest::decode_for(other, &m.encode()) {
            Err(SnapshotError::ManifestKey { expected, found }) => {
                assert_eq!(expected, other);
                assert_eq!(found, m.key());
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            let err = Manifest::decode(&bytes[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    SnapshotError::ManifestTruncated { .. } | SnapshotError::ManifestCrc { .. }
                ),
                "len {len}: {err}"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(Manifest::decode(&b).is_err(), "flip of bit {i} accepted");
        }
    }

    #[test]
    fn wrong_version_is_named() {
        // Version 1 (blake3 digests) and any later version are refused by number.
        for version in [1u8, 3] {
            let mut b = sample().encode();
            b[0] = version;
            match Manifest::decode(&reseal(b)) {
                Err(SnapshotError::ManifestVersion { found, expected: 2 }) => {
                    assert_eq!(found, u16::from(version))
                }
                r => panic!("{r:?}"),
            }
        }
    }

    #[test]
    fn huge_chunk_count_is_rejected_before_allocating() {
        let mut b = sample().encode();
        b[91..95].copy_from_slice(&u32::MAX.to_le_bytes());
        match Manifest::decode(&b) {
            Err(SnapshotError::ManifestTruncated { needed, .. }) => {
                assert_eq!(needed as u64, 95 + 12 * u64::from(u32::MAX) + 4)
            }
            r => panic!("{r:?}"),
        }
    }

    fn with_field(offset: usize, value: &[u8]) -> Result<Manifest> {
        let mut b = sample().encode();
        b[offset..offset + value.len()].copy_from_slice(value);
        Manifest::decode(&reseal(b))
    }

    fn assert_field(r: Result<Manifest>, name: &str) {
        match r {
            Err(SnapshotError::ManifestField { field, .. }) if field == name => {}
            r => panic!("expected field {name}: {r:?}"),
        }
    }

    #[test]
    fn absurd_fields_are_named() {
        assert_field(with_field(66, &0u32.to_le_bytes()), "chunk size");
        assert_field(with_field(66, &(1u32 << 30).to_le_bytes()), "chunk size");
        assert_field(with_field(70, &[7]), "codec");
        assert_field(with_field(71, &1000i32.to_le_bytes()), "level");
        assert_field(with_field(50, &u64::MAX.to_le_bytes()), "item count");
        assert_field(with_field(58, &(1u64 << 40).to_le_bytes()), "chunk count");
        assert_field(with_field(58, &2600u64.to_le_bytes()), "chunk raw length");
        assert_field(
            with_field(95 + 4, &u32::MAX.to_le_bytes()),
            "chunk compressed length",
        );
        assert_field(
            with_field(95 + 4, &0u32.to_le_bytes()),
            "chunk compressed length",
        );
        assert_field(with_field(95, &1000u32.to_le_bytes()), "chunk raw length");
    }

    #[test]
    fn chunk_verification_names_the_chunk() {
        let m = sample();
        let bytes = vec![0u8; 100];
        let crc = crc32fast::hash(&bytes);
        match m.verify_chunk(0, &bytes) {
            Err(SnapshotError::ChunkCrc {
                chunk: 0,
                expected: 1,
                found,
                ..
            }) => assert_eq!(found, crc),
            r => panic!("{r:?}"),
        }
        match m.verify_chunk(1, &bytes) {
            Err(SnapshotError::ChunkLength {
                chunk: 1,
                expected: 200,
                found: 100,
                ..
            }) => {}
            r => panic!("{r:?}"),
        }
        match m.verify_chunk(3, &bytes) {
            Err(SnapshotError::ChunkOutOfRange {
                chunk: 3, count: 3, ..
            }) => {}
            r => panic!("{r:?}"),
        }
    }
}
