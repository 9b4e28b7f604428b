//! One chunk's life: compressing a slice of the raw stream into a zstd frame with its crc32,
//! and checking and decompressing it back.
//!
//! A stored or sent chunk is exactly the bytes zstd produced: no header of its own. The
//! manifest (which has a format version and a crc) carries each chunk's raw length,
//! compressed length and crc32 of the compressed bytes, so a receiver checks a chunk before
//! decompressing it, and a chunk stored under the wrong number fails its length or crc check
//! (unless it is byte-identical to the right one, which is harmless).
//!
//! Determinism: a chunk is one zstd frame made by `ZSTD_compress2` from a context whose only
//! non-default parameter is the level, single-threaded, without a dictionary. The same raw
//! bytes, level and zstd version give the same frame on every node.

use crate::error::{Result, SnapshotError};
use crate::key::SnapshotKey;
use crate::manifest::{ChunkInfo, Manifest};
use std::ops::Range;
use zstd::bulk::{Compressor, Decompressor};

/// The page size whose aliasing [`apart`] avoids.
const PAGE: usize = 4096;

/// Extra bytes a decode buffer needs beyond the largest raw chunk (see [`apart`]).
pub(crate) const DECODE_SLACK: usize = PAGE;

/// Where in a buffer starting at `buffer` (with at least [`PAGE`] bytes of slack) to put the
/// output of a copy from `source`: the offset that makes the destination start half a page
/// away from the source, modulo the page size.
///
/// zstd copies incompressible data (raw blocks) with `memcpy`, which glibc does with
/// `rep movsb` on these AMD machines, and that runs two to three times slower when source
/// and destination are a multiple of 4 KiB apart (4K aliasing). Large buffers come from
/// `mmap` and all start at the same offset in a page, so without this every chunk of
/// incompressible data hit the slow case: 1 MiB chunks compressed at about half the speed of
/// one large frame, and at 105–160% with the destination moved half a page (measured on
/// 256 MiB of random bytes).
fn apart(source: *const u8, buffer: *const u8) -> usize {
    (source as usize)
        .wrapping_add(PAGE / 2)
        .wrapping_sub(buffer as usize)
        % PAGE
}

/// Compresses chunks with one reusable zstd context and output buffer.
pub(crate) struct ChunkEncoder {
    compressor: Compressor<'static>,
    /// Output buffer, `compress_bound(chunk_size)` plus a page of slack (see [`apart`]),
    /// reused for every chunk.
    out: Vec<u8>,
}

impl ChunkEncoder {
    pub(crate) fn new(key: SnapshotKey, level: i32, chunk_size: u32) -> Result<Self> {
        let compressor = Compressor::new(level).map_err(|source| SnapshotError::Compress {
            key,
            chunk: 0,
            source,
        })?;
        let out = vec![0; zstd::zstd_safe::compress_bound(chunk_size as usize) + PAGE];
        Ok(ChunkEncoder { compressor, out })
    }

    /// Compresses `raw` (at most the chunk size) as chunk `chunk`; returns its table entry and
    /// the compressed bytes, valid until the next call.
    pub(crate) fn encode(
        &mut self,
        key: SnapshotKey,
        chunk: u32,
        raw: &[u8],
    ) -> Result<(ChunkInfo, &[u8])> {
        let at = apart(raw.as_ptr(), self.out.as_ptr());
        let n = self
            .compressor
            .compress_to_buffer(raw, &mut self.out[at..])
            .map_err(|source| SnapshotError::Compress { key, chunk, source })?;
        let bytes = &self.out[at..at + n];
        let info = ChunkInfo {
            // raw is at most the chunk size (<= 16 MiB), and the output at most its bound
            raw_len: raw.len() as u32,
            compressed_len: n as u32,
            crc32: crc32fast::hash(bytes),
        };
        Ok((info, bytes))
    }
}

/// Checks and decompresses chunks with one reusable zstd context.
pub(crate) struct ChunkDecoder {
    decompressor: Decompressor<'static>,
}

impl ChunkDecoder {
    pub(crate) fn new(key: SnapshotKey) -> Result<Self> {
        let decompressor =
            Decompressor::new().map_err(|source| SnapshotError::ChunkDecompress {
                key,
                chunk: 0,
                raw_len: 0,
                source,
            })?;
        Ok(ChunkDecoder { decompressor })
    }

    /// Decompresses `compressed`, chunk `chunk` of `manifest`, into `raw`, which must be at
    /// least the chunk's raw length plus [`DECODE_SLACK`] long; returns where in `raw` the
    /// chunk was put (see [`apart`]). zstd gets exactly the manifest's raw length as output
    /// capacity, and the result must fill it.
    ///
    /// The compressed length is always checked first. [`CrcCheck::Before`] also checks the
    /// crc32 before decompressing; [`CrcCheck::OnFailure`] checks it only if decompression
    /// fails or gives the wrong length, so that a damaged chunk is still reported as a crc
    /// mismatch (zstd is safe on any input, and writes at most the capacity it is given).
    pub(crate) fn decode(
        &mut self,
        manifest: &Manifest,
        chunk: u32,
        compressed: &[u8],
        raw: &mut [u8],
        crc: CrcCheck,
    ) -> Result<Range<usize>> {
        let info = match crc {
            CrcCheck::Before => manifest.verify_chunk(chunk, compressed)?,
            CrcCheck::OnFailure => manifest.verify_chunk_length(chunk, compressed)?,
        };
        let decoded = self.decompress(manifest.key(), chunk, info, compressed, raw);
        if decoded.is_err() && crc == CrcCheck::OnFailure {
            manifest.verify_chunk(chunk, compressed)?;
        }
        decoded
    }

    fn decompress(
        &mut self,
        key: SnapshotKey,
        chunk: u32,
        info: ChunkInfo,
        compressed: &[u8],
        raw: &mut [u8],
    ) -> Result<Range<usize>> {
        let raw_len = info.raw_len as usize;
        let capacity = raw.len().saturating_sub(DECODE_SLACK);
        let at = apart(compressed.as_ptr(), raw.as_ptr());
        let out = raw
            .get_mut(at..at + raw_len)
            .filter(|_| raw_len <= capacity)
            .ok_or(SnapshotError::ChunkRawLength {
                key,
                chunk,
                expected: info.raw_len,
                found: capacity,
            })?;
        let n = self
            .decompressor
            .decompress_to_buffer(compressed, out)
            .map_err(|source| SnapshotError::ChunkDecompress {
                key,
                chunk,
                raw_len: info.raw_len,
                source,
            })?;
        if n != raw_len {
            return Err(SnapshotError::ChunkRawLength {
                key,
                chunk,
                expected: info.raw_len,
                found: n,
            });
        }
        Ok(at..at + n)
    }
}

/// When [`ChunkDecoder::decode`] checks a chunk's crc32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrcCheck {
    /// Before decompressing: nothing of a damaged chunk is ever decompressed.
    Before,
    /// Only if decompression fails or gives the wrong length: for readers that check the
    /// digest of the whole raw stream, which covers every byte the crc32 would.
    OnFailure,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_lands_half_a_page_from_the_source() {
        for source in [0usize, 16, 2048, 4095, 4096, 1 << 20, (1 << 20) + 17] {
            for buffer in [0usize, 16, 100, 4096 + 16, 3 << 20] {
                let at = apart(source as *const u8, buffer as *const u8);
                assert!(at < PAGE);
                let distance = (buffer + at).wrapping_sub(source) % PAGE;
                assert_eq!(distance, PAGE / 2, "source {source}, buffer {buffer}");
            }
        }
    }
}
