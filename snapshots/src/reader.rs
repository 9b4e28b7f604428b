//! The streaming reader: chunks in, items out, the whole snapshot checked on the way.
//!
//! Each chunk's compressed length is checked, and it is decompressed with exactly its raw
//! length as capacity, before any of its items is returned; the item framing is checked
//! against the manifest's raw length and item count; and the XXH3-128 digest of the raw
//! stream is compared with the manifest before [`SnapshotReader::next_item`] reports the end.
//! A caller that applies items as it reads must therefore treat an error, even at the end,
//! as "discard what was applied".
//!
//! The crc32 of each chunk is what a transfer checks as chunks arrive. A reader checking the
//! digest does not compute it as well: the digest covers every raw byte, and the crc32 pass
//! would cost as much as the decompression of incompressible data (both are memory-speed).
//! The crc32 still names a damaged chunk: it is checked when a chunk fails to decompress or
//! decompresses to the wrong length, and when the digest mismatches the reader goes back
//! over the chunks' crc32s to report the damaged one ([`SnapshotError::ChunkCrc`]) rather
//! than only the mismatch. Without the digest check
//! ([`SnapshotReader::without_digest_check`]) every chunk's crc32 is checked before it is
//! decompressed.
//!
//! Memory: one raw chunk and one zstd context, plus the largest item that spans chunks
//! (items inside one chunk are returned as slices of the raw buffer). The compressed chunk
//! is borrowed from the source for the time it is checked and decompressed
//! ([`ChunkSource::with_chunk`]), so a source that can lend its bytes costs no copy. An item
//! buffer grows only as the item's bytes actually arrive, never from its claimed length.
//! Everything runs on the caller's thread: each chunk is checked, decompressed and hashed
//! while it is still in the CPU's cache.

use crate::chunk::{ChunkDecoder, CrcCheck, DECODE_SLACK};
use crate::error::{Result, SnapshotError};
use crate::frame::{LenDecoder, MAX_PREFIX_LEN};
use crate::hash::StreamHasher;
use crate::key::SnapshotKey;
use crate::manifest::Manifest;
use crate::store::{ChunkSource, ChunkStore, StoreSource};

/// Reads a snapshot's items back.
pub struct SnapshotReader<S: ChunkSource> {
    source: S,
    manifest: Manifest,
    decoder: ChunkDecoder,
    /// Decompressed current chunk in `raw[start..end]`; `raw.len()` is the largest raw chunk
    /// length (the first chunk's) plus [`DECODE_SLACK`], the room the decoder needs to
    /// place the chunk away from its source.
    raw: Vec<u8>,
    start: usize,
    end: usize,
    /// Read position in `raw`, in `start..=end`.
    pos: usize,
    /// Next chunk to load.
    next_chunk: u32,
    /// Raw-stream offset of `raw[0]`.
    chunk_offset: u64,
    /// Assembly buffer for items that span chunks.
    item: Vec<u8>,
    /// `None` when the digest check is off.
    hasher: Option<StreamHasher>,
    items_read: u64,
    done: bool,
    /// Set by any error: the reader refuses further use.
    failed: bool,
}

/// Where the item just read lies.
enum ItemAt {
    Raw(usize, usize),
    Assembled,
}

impl<'a, S: ChunkStore + ?Sized> SnapshotReader<StoreSource<'a, S>> {
    /// Opens the complete snapshot `key` in `store`; `Ok(None)` if it has no manifest.
    pub fn from_store(store: &'a S, key: SnapshotKey) -> Result<Option<Self>> {
        match store.load_manifest(key)? {
            Some(manifest) => Ok(Some(Self::new(manifest, StoreSource::new(store, key))?)),
            None => Ok(None),
        }
    }
}

impl<S: ChunkSource> SnapshotReader<S> {
    /// Reads the snapshot `manifest` describes, taking chunks from `source`.
    pub fn new(manifest: Manifest, source: S) -> Result<Self> {
        // Bounded by MAX_CHUNK_SIZE, checked when the manifest was decoded.
        let largest = manifest.chunks().first().map_or(0, |c| c.raw_len as usize);
        Ok(SnapshotReader {
            decoder: ChunkDecoder::new(manifest.key())?,
            source,
            raw: vec![0; largest + DECODE_SLACK],
            start: 0,
            end: 0,
            pos: 0,
            next_chunk: 0,
            chunk_offset: 0,
            item: Vec::new(),
            hasher: Some(StreamHasher::new()),
            items_read: 0,
            done: false,
            failed: false,
            manifest,
        })
    }

    /// Skips the digest check: each chunk's length and crc32 are checked before it is
    /// decompressed, and so are its decompressed length and the framing, but the raw stream
    /// is not hashed. For a snapshot whose digest was already verified (written locally, or
    /// installed by [`Transfer::finish`](crate::Transfer::finish)): the crc32 is then the
    /// only check of the bytes. Call before the first item.
    pub fn without_digest_check(mut self) -> Self {
        self.hasher = None;
        self
    }

    /// The snapshot's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Items returned so far.
    pub fn items_read(&self) -> u64 {
        self.items_read
    }

    /// Chunks loaded so far (for progress while restoring).
    pub fn chunks_read(&self) -> u32 {
        self.next_chunk
    }

    /// The next item, or `Ok(None)` once all items are read and the digest matched.
    pub fn next_item(&mut self) -> Result<Option<&[u8]>> {
        if self.failed {
            return Err(SnapshotError::Poisoned {
                key: self.key(),
                role: "reader",
            });
        }
        if self.done {
            return Ok(None);
        }
        if self.items_read == self.manifest.item_count() {
            if let Err(e) = self.finish() {
                self.failed = true;
                return Err(e);
            }
            self.done = true;
            return Ok(None);
        }
        let at = match self.read_item() {
            Ok(at) => at,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        self.items_read += 1;
        Ok(Some(match at {
            ItemAt::Raw(start, end) => &self.raw[start..end],
            ItemAt::Assembled => &self.item,
        }))
    }

    /// Reads every remaining item, discarding them: checks the whole snapshot (chunks,
    /// framing, count, digest).
    pub fn verify_all(mut self) -> Result<Manifest> {
        while self.next_item()?.is_some() {}
        Ok(self.manifest)
    }

    fn key(&self) -> SnapshotKey {
        self.manifest.key()
    }

    fn offset(&self) -> u64 {
        self.chunk_offset + (self.pos - self.start) as u64
    }

    fn framing(&self, offset: u64, reason: &'static str) -> SnapshotError {
        SnapshotError::ItemFraming {
            key: self.key(),
            item: self.items_read,
            offset,
            reason,
        }
    }

    /// Loads the next chunk; `Ok(false)` if there is none.
    fn load_chunk(&mut self) -> Result<bool> {
        let chunk = self.next_chunk;
        if chunk >= self.manifest.chunk_count() {
            return Ok(false);
        }
        self.chunk_offset += (self.end - self.start) as u64;
        (self.start, self.end, self.pos) = (0, 0, 0);
        let mut placed = 0..0;
        let SnapshotReader {
            source,
            manifest,
            decoder,
            raw,
            ..
        } = self;
        let crc = match self.hasher {
            Some(_) => CrcCheck::OnFailure,
            None => CrcCheck::Before,
        };
        let found = source.with_chunk(chunk, &mut |compressed| {
            placed = decoder.decode(manifest, chunk, compressed, raw, crc)?;
            Ok(())
        })?;
        if !found {
            return Err(SnapshotError::ChunkMissing {
                key: self.key(),
                chunk,
            });
        }
        (self.start, self.end, self.pos) = (placed.start, placed.end, placed.start);
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&self.raw[placed]);
        }
        self.next_chunk += 1;
        Ok(true)
    }

    /// Reads one length prefix and item.
    fn read_item(&mut self) -> Result<ItemAt> {
        let prefix_offset = self.offset();
        let mut dec = LenDecoder::default();
        // Fast path: the prefix lies inside the current chunk.
        let mut found = None;
        let mut consumed = 0;
        for &byte in self.raw[self.pos..self.end].iter().take(MAX_PREFIX_LEN) {
            consumed += 1;
            match dec.push(byte) {
                Ok(Some(len)) => {
                    found = Some(len);
                    break;
                }
                Ok(None) => {}
                Err(reason) => return Err(self.framing(prefix_offset, reason)),
            }
        }
        self.pos += consumed;
        // Slow path: the prefix continues in the next chunk(s).
        let len = match found {
            Some(len) => len,
            None => loop {
                if self.pos == self.end && !self.load_chunk()? {
                    return Err(SnapshotError::ItemCount {
                        key: self.key(),
                        expected: self.manifest.item_count(),
                        found: self.items_read,
                    });
                }
                let byte = self.raw[self.pos];
                self.pos += 1;
                match dec.push(byte) {
                    Ok(Some(len)) => break len,
                    Ok(None) => {}
                    Err(reason) => return Err(self.framing(prefix_offset, reason)),
                }
            },
        };
        let remaining = self.manifest.raw_bytes() - self.offset();
        if len > remaining {
            return Err(self.framing(
                prefix_offset,
                "item length runs past the end of the snapshot",
            ));
        }
        // len <= remaining raw bytes, so it fits in memory arithmetic from here on.
        let in_chunk = self.end - self.pos;
        if len <= in_chunk as u64 {
            let start = self.pos;
            self.pos += len as usize;
            return Ok(ItemAt::Raw(start, self.pos));
        }
        // The item spans chunks: assemble it, growing the buffer only with bytes read.
        self.item.clear();
        let mut left = len;
        while left > 0 {
            if self.pos == self.end && !self.load_chunk()? {
                // Unreachable with a valid manifest (len <= remaining), kept as a guard.
                return Err(self.framing(prefix_offset, "item runs past the last chunk"));
            }
            let take = ((self.end - self.pos) as u64).min(left) as usize;
            self.item
                .extend_from_slice(&self.raw[self.pos..self.pos + take]);
            self.pos += take;
            left -= take as u64;
        }
        Ok(ItemAt::Assembled)
    }

    /// After the last item: no trailing bytes, no unread chunk, and the digest matches (if
    /// checked).
    fn finish(&mut self) -> Result<()> {
        if self.pos != self.end || self.next_chunk != self.manifest.chunk_count() {
            return Err(self.framing(self.offset(), "bytes trail the last item"));
        }
        let Some(hasher) = &self.hasher else {
            return Ok(());
        };
        let found = hasher.finish();
        if found != self.manifest.digest() {
            return Err(self
                .damaged_chunk()
                .unwrap_or(SnapshotError::DigestMismatch {
                    key: self.key(),
                    expected: self.manifest.digest(),
                    found,
                }));
        }
        Ok(())
    }

    /// After a digest mismatch: the first chunk whose crc32 does not match (or that is now
    /// missing or unreadable), if any.
    fn damaged_chunk(&mut self) -> Option<SnapshotError> {
        let SnapshotReader {
            source, manifest, ..
        } = self;
        (0..manifest.chunk_count()).find_map(|chunk| {
            let checked = source.with_chunk(chunk, &mut |compressed| {
                manifest.verify_chunk(chunk, compressed).map(|_| ())
            });
            match checked {
                Ok(true) => None,
                Ok(false) => Some(SnapshotError::ChunkMissing {
                    key: manifest.key(),
                    chunk,
                }),
                Err(e) => Some(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkEncoder;
    use crate::hash::StreamDigest;
    use crate::key::{Cursor, GroupId};
    use crate::manifest::Manifest;
    use crate::store::{ChunkStore, MemChunkStore};

    const CHUNK: u32 = 1024;

    /// A snapshot over a hand-made raw stream, claiming `items` items and `digest` (the true
    /// one if `None`): lets tests break the framing, which the writer never does.
    fn snapshot(raw: &[u8], items: u64, digest: Option<StreamDigest>) -> (Manifest, MemChunkStore) {
        let group = GroupId([5; 32]);
        let anchor = Cursor { term: 1, index: 10 };
        let key = SnapshotKey::new(group, anchor.index);
        let mut enc = ChunkEncoder::new(key, 1, CHUNK).unwrap();
        let mut store = MemChunkStore::new();
        let mut chunks = Vec::new();
        for (i, piece) in raw.chunks(CHUNK as usize).enumerate() {
            let (info, bytes) = enc.encode(key, i as u32, piece).unwrap();
            store.put_chunk(key, i as u32, bytes).unwrap();
            chunks.push(info);
        }
        let digest = digest.unwrap_or(StreamDigest::of(raw));
        let m = Manifest::from_writer(
            group,
            anchor,
            items,
            raw.len() as u64,
            CHUNK,
            1,
            digest,
            chunks,
        );
        (m, store)
    }

    fn read_all(m: Manifest, store: &MemChunkStore) -> Result<Vec<Vec<u8>>> {
        let mut r = SnapshotReader::new(m.clone(), StoreSource::new(store, m.key()))?;
        let mut out = Vec::new();
        while let Some(item) = r.next_item()? {
            out.push(item.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn reads_a_hand_made_stream_with_an_item_spanning_chunks() {
        let mut raw = vec![3, b'a', b'b', b'c', 0];
        raw.extend_from_slice(&[0xd0, 0x0f]); // 2000
        raw.extend(std::iter::repeat_n(7u8, 2000));
        let (m, store) = snapshot(&raw, 3, None);
        let items = read_all(m, &store).unwrap();
        assert_eq!(items, vec![b"abc".to_vec(), vec![], vec![7; 2000]]);
    }

    #[test]
    fn item_length_past_the_end_is_named() {
        let raw = [3, b'a', b'b', b'c', 9, b'x'];
        let (m, store) = snapshot(&raw, 2, None);
        match read_all(m, &store) {
            Err(SnapshotError::ItemFraming {
                item: 1,
                offset: 4,
                reason,
                ..
            }) => {
                assert!(reason.contains("past the end"), "{reason}")
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn trailing_bytes_are_named() {
        let raw = [1, b'a', 1, b'b'];
        let (m, store) = snapshot(&raw, 1, None);
        match read_all(m, &store) {
            Err(SnapshotError::ItemFraming {
                item: 1,
                offset: 2,
                reason,
                ..
            }) => {
                assert!(reason.contains("trail"), "{reason}")
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn too_few_items_is_named() {
        let raw = [1, b'a', 1, b'b'];
        let (m, store) = snapshot(&raw, 3, None);
        match read_all(m, &store) {
            Err(SnapshotError::ItemCount {
                expected: 3,
                found: 2,
                ..
            }) => {}
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn malformed_prefix_is_named() {
        let raw = [0x80, 0x00];
        let (m, store) = snapshot(&raw, 1, None);
        match read_all(m, &store) {
            Err(SnapshotError::ItemFraming {
                item: 0, offset: 0, ..
            }) => {}
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn digest_mismatch_is_named() {
        let raw = [1, b'a'];
        let (m, store) = snapshot(&raw, 1, Some(StreamDigest([0; 16])));
        match read_all(m, &store) {
            Err(SnapshotError::DigestMismatch {
                expected, found, ..
            }) => {
                assert_eq!(expected, StreamDigest([0; 16]));
                assert_eq!(found, StreamDigest::of(&raw));
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn digest_check_can_be_skipped_but_framing_is_still_checked() {
        let raw = [1, b'a'];
        let (m, store) = snapshot(&raw, 1, Some(StreamDigest([0; 16])));
        let mut r = SnapshotReader::new(m.clone(), StoreSource::new(&store, m.key()))
            .unwrap()
            .without_digest_check();
        assert_eq!(r.next_item().unwrap(), Some(&b"a"[..]));
        assert_eq!(r.next_item().unwrap(), None);

        let (m, store) = snapshot(&[1, b'a', 1, b'b'], 1, None);
        let r = SnapshotReader::new(m.clone(), StoreSource::new(&store, m.key()))
            .unwrap()
            .without_digest_check();
        assert!(matches!(
            r.verify_all(),
            Err(SnapshotError::ItemFraming { .. })
        ));
    }

    #[test]
    fn huge_claimed_item_allocates_nothing_up_front() {
        // A prefix claiming u64::MAX bytes is rejected against the manifest's raw length.
        let mut raw = vec![0xff; 9];
        raw.push(0x01);
        let (m, store) = snapshot(&raw, 1, None);
        match read_all(m, &store) {
            Err(SnapshotError::ItemFraming {
                item: 0, reason, ..
            }) => assert!(reason.contains("past the end")),
            r => panic!("{r:?}"),
        }
    }
}
