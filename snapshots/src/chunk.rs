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
use zstd::bulk::{Compressor, Decompressor};

/// Compresses chunks with one reusable zstd context and output buffer.
pub(crate) struct ChunkEncoder {
    compressor: Compressor<'static>,
    /// Output buffer with capacity `compress_bound(chunk_size)`, reused for every chunk.
    out: Vec<u8>,
}

impl ChunkEncoder {
    pub(crate) fn new(key: SnapshotKey, level: i32, chunk_size: u32) -> Result<Self> {
        let compressor = Compressor::new(level).map_err(|source| SnapshotError::Compress {
            key,
            chunk: 0,
            source,
        })?;
        let out = Vec::with_capacity(zstd::zstd_safe::compress_bound(chunk_size as usize));
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
        let n = self
            .compressor
            .compress_to_buffer(raw, &mut self.out)
            .map_err(|source| SnapshotError::Compress { key, chunk, source })?;
        let bytes = &self.out[..n];
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

    /// Verifies `compressed` as chunk `chunk` of `manifest` (length, crc32), then
    /// decompresses it into `raw[..raw_len]`, which must be at least the chunk's raw length
    /// long. zstd gets exactly the manifest's raw length as output capacity, and the result
    /// must fill it. Returns the raw length.
    pub(crate) fn decode(
        &mut self,
        manifest: &Manifest,
        chunk: u32,
        compressed: &[u8],
        raw: &mut [u8],
    ) -> Result<usize> {
        let info = manifest.verify_chunk(chunk, compressed)?;
        let key = manifest.key();
        let raw_len = info.raw_len as usize;
        let capacity = raw.len();
        let out = raw
            .get_mut(..raw_len)
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
        Ok(n)
    }
}
