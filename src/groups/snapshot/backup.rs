//! A backup file: one group snapshot (the format of `tessera-snapshots`: zstd chunks, each
//! with its crc32, and a manifest with the raw stream's digest) written as a sequence of
//! frames, so it can be streamed from a node over HTTP and written to disk as it arrives.
//!
//! ```text
//! magic "TSBACKUP" (8 bytes), version u32 LE
//! frames: kind u8 | length u32 LE | payload
//!   INFO      JSON (BackupInfo): first, what the backup holds (for progress and status)
//!   CHUNK     chunk number u32 LE | crc32 u32 LE | the compressed chunk, as stored
//!   MANIFEST  the encoded manifest: last; a file without it is incomplete
//!   ERROR     UTF-8: the node failed while writing; the backup is unusable
//! ```
//!
//! The manifest comes last because it is only known once the last chunk is compressed: a
//! node streams the backup while it encodes it and never holds it whole. Each chunk is
//! checked against its frame's crc32 as it arrives, and the whole file against the
//! manifest (every chunk's length and crc32, the digest of the decompressed stream) before
//! it is kept.

use super::image::{self, LoadError, Loaded};
use super::machine::Snapshot;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tessera_snapshots::{ChunkStore, CopyingSource, Manifest, SnapshotKey, MAX_CHUNK_SIZE};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"TSBACKUP";

/// The version of the framing this build writes and reads.
pub const VERSION: u32 = 1;

/// Bytes before the first frame.
pub const PREAMBLE_LEN: usize = 12;

/// Bytes of a frame's kind and length.
const FRAME_HEAD: usize = 5;

/// Largest frame accepted: a chunk of the largest raw size that zstd could not shrink,
/// with room for zstd's own framing.
pub const MAX_FRAME: usize = MAX_CHUNK_SIZE as usize + (1 << 16);

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// [`BackupInfo`] in JSON.
    Info = 1,
    /// A chunk: number, crc32, bytes.
    Chunk = 2,
    /// The manifest.
    Manifest = 3,
    /// The node's error.
    Error = 4,
}

impl FrameKind {
    fn of(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Info),
            2 => Some(FrameKind::Chunk),
            3 => Some(FrameKind::Manifest),
            4 => Some(FrameKind::Error),
            _ => None,
        }
    }
}

/// What the node said the backup holds, before sending it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The group's id (hex).
    pub group: String,
    /// The node that wrote it (hex id).
    pub node: String,
    /// The snapshot's anchor: the index of the last command in it.
    pub anchor_index: u64,
    /// The anchor's term (the term the backup was taken in).
    pub anchor_term: u64,
    /// Items in the snapshot, its header included.
    pub items: u64,
    /// When it was taken, seconds since the Unix epoch.
    pub taken_at_unix: u64,
}

/// Why a backup could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a backup, or not a whole one.
    #[error("{what}: {reason}")]
    Malformed {
        /// The file or stream.
        what: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// The node failed while writing the backup.
    #[error("the node failed while writing the backup: {0}")]
    Node(String),
    /// The snapshot inside failed its checks (a chunk's crc32, the digest, an item).
    #[error("{what}: {reason}")]
    Damaged {
        /// The file.
        what: String,
        /// The check that failed.
        reason: String,
    },
}

/// The preamble every backup starts with.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..].copy_from_slice(&VERSION.to_le_bytes());
    out
}

/// One frame's bytes.
pub fn frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEAD + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A chunk's frame.
pub fn chunk_frame(chunk: u32, bytes: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + bytes.len());
    payload.extend_from_slice(&chunk.to_le_bytes());
    payload.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
    payload.extend_from_slice(bytes);
    frame(FrameKind::Chunk, &payload)
}

/// A frame taken apart.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// What the backup holds.
    Info(BackupInfo),
    /// Chunk `number`, its crc32 checked; `bytes` bytes long.
    Chunk {
        /// Its number.
        number: u32,
        /// Its compressed length.
        bytes: usize,
        /// Where its bytes start in the stream.
        offset: u64,
    },
    /// The manifest.
    Manifest(Box<Manifest>),
}

/// Checks a backup as its bytes arrive (a stream from a node, or a file read in order):
/// the preamble, every frame's length bound, every chunk's crc32 and number (in order from
/// 0), and that the manifest comes last and lists the chunks that came. Bounded: it holds
/// at most one frame.
#[derive(Debug)]
pub struct FrameChecker {
    what: String,
    buf: Vec<u8>,
    preamble_seen: bool,
    next_chunk: u32,
    chunks: Vec<(u32, u32)>,
    info: Option<BackupInfo>,
    manifest: Option<Manifest>,
    offset: u64,
}

impl FrameChecker {
    /// A checker for `what` (a file name or an endpoint, for errors).
    pub fn new(what: impl Into<String>) -> Self {
        FrameChecker {
            what: what.into(),
            buf: Vec::new(),
            preamble_seen: false,
            next_chunk: 0,
            chunks: Vec::new(),
            info: None,
            manifest: None,
            offset: 0,
        }
    }

    fn malformed(&self, reason: String) -> BackupError {
        BackupError::Malformed {
            what: self.what.clone(),
            reason,
        }
    }

    /// Takes the next bytes; returns the frames they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, BackupError> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        if !self.preamble_seen {
            if self.buf.len() < PREAMBLE_LEN {
                return Ok(frames);
            }
            if &self.buf[..8] != MAGIC {
                return Err(self.malformed("not a tessera backup (bad magic)".into()));
            }
            let version =
                u32::from_le_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
            if version != VERSION {
                return Err(self.malformed(format!(
                    "backup format version {version}; this build reads version {VERSION}"
                )));
            }
            self.buf.drain(..PREAMBLE_LEN);
            self.offset = PREAMBLE_LEN as u64;
            self.preamble_seen = true;
        }
        while self.buf.len() >= FRAME_HEAD {
            let kind = self.buf[0];
            let len =
                u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if len > MAX_FRAME {
                return Err(self.malformed(format!(
                    "frame at byte {} is {len} bytes long, more than the {MAX_FRAME} a chunk can take",
                    self.offset
                )));
            }
            if self.buf.len() < FRAME_HEAD + len {
                break;
            }
            let payload: Vec<u8> = self
                .buf
                .drain(..FRAME_HEAD + len)
                .skip(FRAME_HEAD)
                .collect();
            let at = self.offset;
            self.offset += (FRAME_HEAD + len) as u64;
            frames.push(self.take(kind, &payload, at)?);
        }
        Ok(frames)
    }

    fn take(&mut self, kind: u8, payload: &[u8], at: u64) -> Result<Frame, BackupError> {
        if self.manifest.is_some() {
            return Err(self.malformed(format!("a frame at byte {at} after the manifest")));
        }
        match FrameKind::of(kind) {
            Some(FrameKind::Info) => {
                let info: BackupInfo = serde_json::from_slice(payload)
                    .map_err(|e| self.malformed(format!("info frame at byte {at}: {e}")))?;
                self.info = Some(info.clone());
                Ok(Frame::Info(info))
            }
            Some(FrameKind::Chunk) => {
                if payload.len() < 8 {
                    return Err(self.malformed(format!("chunk frame at byte {at} is too short")));
                }
                let number = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let crc = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
                let bytes = &payload[8..];
                if number != self.next_chunk {
                    return Err(self.malformed(format!(
                        "chunk {number} at byte {at}; expected chunk {}",
                        self.next_chunk
                    )));
                }
                let found = crc32fast::hash(bytes);
                if found != crc {
                    return Err(BackupError::Damaged {
                        what: self.what.clone(),
                        reason: format!(
                            "chunk {number} at byte {at}: crc32 {found:08x}, the frame says {crc:08x}"
                        ),
                    });
                }
                self.next_chunk += 1;
                self.chunks.push((bytes.len() as u32, crc));
                Ok(Frame::Chunk {
                    number,
                    bytes: bytes.len(),
                    offset: at + FRAME_HEAD as u64 + 8,
                })
            }
            Some(FrameKind::Manifest) => {
                let manifest = Manifest::decode(payload)
                    .map_err(|e| self.malformed(format!("manifest at byte {at}: {e}")))?;
                if manifest.chunk_count() != self.next_chunk {
                    return Err(self.malformed(format!(
                        "the manifest lists {} chunks but {} came",
                        manifest.chunk_count(),
                        self.next_chunk
                    )));
                }
                for (n, (len, crc)) in self.chunks.iter().enumerate() {
                    let info = manifest
                        .chunk(n as u32)
                        .map_err(|e| self.malformed(e.to_string()))?;
                    if info.compressed_len != *len || info.crc32 != *crc {
                        return Err(BackupError::Damaged {
                            what: self.what.clone(),
                            reason: format!(
                                "chunk {n}: {len} bytes with crc32 {crc:08x}, the manifest says {} bytes with crc32 {:08x}",
                                info.compressed_len, info.crc32
                            ),
                        });
                    }
                }
                self.manifest = Some(manifest.clone());
                Ok(Frame::Manifest(Box::new(manifest)))
            }
            Some(FrameKind::Error) => Err(BackupError::Node(
                String::from_utf8_lossy(payload).into_owned(),
            )),
            None => Err(self.malformed(format!("unknown frame kind {kind} at byte {at}"))),
        }
    }

    /// Checks that the stream ended where a backup ends: after the manifest, with no
    /// partial frame left.
    pub fn finish(&self) -> Result<(), BackupError> {
        if !self.buf.is_empty() || !self.preamble_seen {
            return Err(self.malformed(format!(
                "cut short: {} bytes of an unfinished frame at the end",
                self.buf.len()
            )));
        }
        if self.manifest.is_none() {
            return Err(self.malformed(format!(
                "incomplete: it ends after {} chunks, before the manifest",
                self.next_chunk
            )));
        }
        Ok(())
    }

    /// The info frame, if one came.
    pub fn info(&self) -> Option<&BackupInfo> {
        self.info.as_ref()
    }

    /// The manifest, once it came.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Chunks checked so far.
    pub fn chunks(&self) -> u32 {
        self.next_chunk
    }

    /// Bytes taken so far (frames completed).
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// A backup file on disk, its frames checked and its chunks located.
#[derive(Debug)]
pub struct BackupFile {
    path: PathBuf,
    /// The info frame (absent in a file written by another tool).
    pub info: Option<BackupInfo>,
    /// The manifest.
    pub manifest: Manifest,
    /// Each chunk's payload offset and length in the file.
    chunks: Vec<(u64, u32)>,
    /// The file's size.
    pub size: u64,
}

impl BackupFile {
    /// Reads `path` through (every frame and chunk crc32 checked, the manifest against
    /// the chunks) without decompressing anything.
    pub fn open(path: &Path) -> Result<BackupFile, BackupError> {
        let io = |source| BackupError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut checker = FrameChecker::new(path.display().to_string());
        let mut chunks = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            for frame in checker.push(&buf[..n])? {
                if let Frame::Chunk { bytes, offset, .. } = frame {
                    chunks.push((offset, bytes as u32));
                }
            }
        }
        checker.finish()?;
        let manifest = checker
            .manifest()
            .cloned()
            .ok_or_else(|| checker.malformed("no manifest".into()))?;
        Ok(BackupFile {
            path: path.to_path_buf(),
            info: checker.info().cloned(),
            manifest,
            chunks,
            size,
        })
    }

    /// Decompresses and decodes the snapshot: the digest of the raw stream checked, the
    /// header checked against the manifest, every item decoded into `S`.
    pub fn load<S: Snapshot>(&self) -> Result<Loaded<S>, BackupError> {
        let mut file = File::open(&self.path).map_err(|source| BackupError::Io {
            path: self.path.clone(),
            source,
        })?;
        let chunks = &self.chunks;
        let path = self.path.clone();
        let key = self.manifest.key();
        let source = CopyingSource::new(move |n: u32, buf: &mut Vec<u8>| {
            let Some(&(offset, len)) = chunks.get(n as usize) else {
                return Ok(false);
            };
            buf.clear();
            buf.resize(len as usize, 0);
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(buf))
                .map_err(|e| {
                    tessera_snapshots::SnapshotError::store(
                        tessera_snapshots::StoreOp::ReadChunk,
                        key,
                        Some(n),
                        format!("{}: {e}", path.display()),
                    )
                })?;
            Ok(true)
        });
        image::read_from::<S, _>(self.manifest.clone(), source).map_err(|e: Box<LoadError>| {
            BackupError::Damaged {
                what: self.path.display().to_string(),
                reason: e.error.to_string(),
            }
        })
    }

    /// Stores the chunks and the manifest in `store` under `key` (which must be the
    /// manifest's), as a complete snapshot.
    pub fn copy_into(
        &self,
        store: &mut impl ChunkStore,
        key: SnapshotKey,
    ) -> Result<(), BackupError> {
        let io = |source| BackupError::Io {
            path: self.path.clone(),
            source,
        };
        let stored = |e: tessera_snapshots::SnapshotError| BackupError::Damaged {
            what: self.path.display().to_string(),
            reason: format!("storing it: {e}"),
        };
        let mut file = File::open(&self.path).map_err(io)?;
        let mut buf = Vec::new();
        for (n, &(offset, len)) in self.chunks.iter().enumerate() {
            buf.clear();
            buf.resize(len as usize, 0);
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            file.read_exact(&mut buf).map_err(io)?;
            self.manifest.verify_chunk(n as u32, &buf).map_err(stored)?;
            store.put_chunk(key, n as u32, &buf).map_err(stored)?;
        }
        store
            .put_manifest(key, &self.manifest.encode())
            .map_err(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: &[&[u8]]) -> (Vec<u8>, Manifest) {
        use tessera_snapshots::{Cursor, GroupId, SnapshotWriter, WriterConfig};
        let mut out = preamble().to_vec();
        out.extend(frame(
            FrameKind::Info,
            &serde_json::to_vec(&BackupInfo::default()).unwrap(),
        ));
        let mut frames = Vec::new();
        let config = WriterConfig {
            chunk_size: tessera_snapshots::MIN_CHUNK_SIZE,
            ..WriterConfig::default()
        };
        let mut w = SnapshotWriter::new(
            GroupId([7; 32]),
            Cursor { term: 1, index: 5 },
            config,
            |n: u32, b: &[u8]| {
                frames.push(chunk_frame(n, b));
                Ok(())
            },
        )
        .unwrap();
        for c in chunks {
            w.push(c).unwrap();
        }
        let (manifest, _) = w.finish().unwrap();
        for f in frames {
            out.extend(f);
        }
        out.extend(frame(FrameKind::Manifest, &manifest.encode()));
        (out, manifest)
    }

    #[test]
    fn a_stream_fed_in_any_pieces_checks_out() {
        let big = vec![3u8; 5000];
        let (bytes, manifest) = stream(&[b"a", &big, b"c"]);
        for piece in [1, 7, 4096, bytes.len()] {
            let mut c = FrameChecker::new("test");
            for part in bytes.chunks(piece) {
                c.push(part).unwrap();
            }
            c.finish().unwrap();
            assert_eq!(c.manifest(), Some(&manifest));
            assert!(c.chunks() > 1);
        }
    }

    #[test]
    fn a_flipped_byte_a_cut_and_a_wrong_magic_are_refused() {
        let (bytes, _) = stream(&[&[9u8; 3000]]);
        let mut flipped = bytes.clone();
        let at = flipped.len() - 200;
        flipped[at] ^= 1;
        let mut c = FrameChecker::new("test");
        assert!(c.push(&flipped).is_err() || c.finish().is_err());

        let mut c = FrameChecker::new("test");
        c.push(&bytes[..bytes.len() - 3]).unwrap();
        let err = c.finish().unwrap_err().to_string();
        assert!(
            err.contains("cut short") || err.contains("incomplete"),
            "{err}"
        );

        let mut c = FrameChecker::new("test");
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(c
            .push(&wrong)
            .unwrap_err()
            .to_string()
            .contains("not a tessera backup"));
    }

    #[test]
    fn a_node_error_frame_is_reported_as_the_nodes() {
        let mut bytes = preamble().to_vec();
        bytes.extend(frame(FrameKind::Error, b"disk on fire"));
        let err = FrameChecker::new("t").push(&bytes).unwrap_err();
        assert!(
            matches!(err, BackupError::Node(ref m) if m == "disk on fire"),
            "{err}"
        );
    }
}
