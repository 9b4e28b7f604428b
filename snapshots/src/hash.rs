//! The blake3 digest of the raw stream, computed on the caller's thread or shared with a
//! helper thread.
//!
//! blake3 (AVX2, ~3.5–4 GB/s on these machines) costs about a third of zstd level-1
//! decompression on config-like data and more than zstd itself on incompressible data, so on
//! one thread the digest alone keeps the reader under 80% of plain decompression. The
//! digest must still be exactly `blake3(raw stream)`. blake3 is a tree hash, and a chunk
//! whose size is a power of two (at least blake3's 1 KiB leaf) is a whole subtree of that
//! tree: its chaining value can be computed on its own, on any thread, and the chaining
//! values merged in order at the end give the same digest as hashing the stream in one go
//! (`blake3::hazmat`; tests compare with `blake3::hash`).
//!
//! [`Hashing::Background`] (the default) uses that: each finished chunk goes to a helper
//! thread through a bounded queue, and when the queue is full (the helper is behind, or not
//! getting a core because the machine is busy) the caller hashes the chunk itself instead of
//! waiting. So the caller never waits for the helper before the end, a spare core takes the
//! hashing off the caller's path (reading takes max(decompression, hashing) instead of the
//! sum), and with no spare core the cost is about that of hashing inline. Chunk sizes that
//! are not a power of two, and processes allowed one CPU, hash inline.
//!
//! Buffers move by ownership: the caller hands over a filled chunk buffer and gets back one
//! to reuse, from a pool of at most [`POOL`] buffers, so memory stays a few chunks. The
//! helper thread starts with the second chunk: one-chunk snapshots never start it.

use crate::error::SnapshotError;
use crate::key::SnapshotKey;
use crate::manifest::Digest;
use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Where the raw stream is hashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hashing {
    /// On the thread that writes or reads, one chunk after the other.
    Inline,
    /// Shared with one helper thread per writer or reader: the helper hashes chunks while
    /// the caller compresses or decompresses the next ones, and the caller hashes a chunk
    /// itself whenever the helper is behind. The default. Falls back to inline if the chunk
    /// size is not a power of two, if the process may use only one CPU, or if the thread
    /// cannot be spawned.
    #[default]
    Background,
}

/// Chunk buffers in existence per hasher: the one the caller is filling, [`QUEUE`] queued
/// and one being hashed by the helper.
pub(crate) const POOL: usize = QUEUE + 2;

/// Chunks waiting for the helper; when full, the caller hashes the next chunk itself.
const QUEUE: usize = 2;

/// Why a digest could not be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashFailure {
    /// The helper thread died (it only runs blake3, so this means a panic or an abort).
    Thread,
    /// Chunks were submitted out of shape (empty, longer than the chunk size, or after a
    /// short one): a bug in the caller, reported instead of a wrong digest or a panic.
    Shape,
}

impl HashFailure {
    /// The error a writer or reader of `key` reports.
    pub(crate) fn error(self, key: SnapshotKey) -> SnapshotError {
        let reason = match self {
            HashFailure::Thread => "the hashing thread stopped",
            HashFailure::Shape => "chunks reached the hasher out of shape",
        };
        SnapshotError::DigestFailed { key, reason }
    }
}

/// Hashes a stream of chunks, handed over in stream order.
pub(crate) enum StreamHasher {
    /// One blake3 hasher fed every chunk in order.
    Sequential(Box<blake3::Hasher>),
    /// One chaining value per chunk, merged at the end.
    Tree(Box<Tree>),
}

pub(crate) struct Tree {
    /// Raw bytes per chunk: a power of two, at least `blake3::CHUNK_LEN`.
    chunk_size: u64,
    /// Raw bytes submitted so far; chunk `i` starts at `i * chunk_size`.
    total: u64,
    /// Chunk `i`'s chaining value (zeros while the helper still has it).
    cvs: Vec<ChainingValue>,
    /// Chunks handed to the helper and not yet back.
    pending: usize,
    /// blake3 of chunk 0 alone: the digest if the stream is one chunk.
    first_root: Option<Digest>,
    /// A chunk shorter than `chunk_size` was submitted: any further one is out of shape.
    ended: bool,
    failure: Option<HashFailure>,
    /// `None` until the second chunk, and for good if helpers are off or the spawn failed.
    helper: Option<Helper>,
    may_spawn: bool,
}

struct Helper {
    /// `None` once finished.
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
    /// Buffers back from the helper, ready for reuse.
    free: Vec<Vec<u8>>,
    /// Buffers in existence, the caller's included.
    allocated: usize,
}

/// Hash `buf[..len]` as chunk `index`, at `offset` in the stream.
struct Job {
    index: usize,
    offset: u64,
    buf: Vec<u8>,
    len: usize,
}

/// Chunk `index`'s chaining value, and its buffer back.
struct Done {
    index: usize,
    cv: ChainingValue,
    buf: Vec<u8>,
}

impl StreamHasher {
    /// A hasher for a stream cut into chunks of `chunk_size` raw bytes.
    pub(crate) fn new(mode: Hashing, chunk_size: u32) -> Self {
        let size = u64::from(chunk_size);
        let tree_shaped = size.is_power_of_two() && size >= blake3::CHUNK_LEN as u64;
        let may_spawn = mode == Hashing::Background
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        if !(tree_shaped && may_spawn) {
            return StreamHasher::Sequential(Box::default());
        }
        StreamHasher::Tree(Box::new(Tree {
            chunk_size: size,
            total: 0,
            cvs: Vec::new(),
            pending: 0,
            first_root: None,
            ended: false,
            failure: None,
            helper: None,
            may_spawn,
        }))
    }

    /// Hashes `buf[..len]`, the next chunk; returns a buffer to reuse, of unspecified length
    /// and content (the same one when hashed inline).
    pub(crate) fn submit(&mut self, buf: Vec<u8>, len: usize) -> Vec<u8> {
        match self {
            StreamHasher::Sequential(h) => {
                h.update(&buf[..len]);
                buf
            }
            StreamHasher::Tree(t) => t.submit(buf, len),
        }
    }

    /// Hashes the next chunk from a slice the caller does not own (copied into a pool
    /// buffer if the helper takes it).
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            StreamHasher::Sequential(h) => {
                h.update(data);
            }
            StreamHasher::Tree(t) => t.update(data),
        }
    }

    /// The digest of everything submitted.
    pub(crate) fn finish(&mut self) -> Result<Digest, HashFailure> {
        match self {
            StreamHasher::Sequential(h) => Ok(Digest(*h.finalize().as_bytes())),
            StreamHasher::Tree(t) => t.finish(),
        }
    }
}

impl Tree {
    /// Checks that a chunk of `len` bytes may come next; on success returns its index and
    /// offset, with a zero placeholder for its chaining value.
    fn admit(&mut self, len: usize) -> Option<(usize, u64)> {
        let len = len as u64;
        if self.failure.is_some() {
            return None;
        }
        if self.ended || len == 0 || len > self.chunk_size {
            self.failure = Some(HashFailure::Shape);
            return None;
        }
        self.ended = len < self.chunk_size;
        let offset = self.total;
        self.total += len;
        self.cvs.push([0; 32]);
        Some((self.cvs.len() - 1, offset))
    }

    fn submit(&mut self, buf: Vec<u8>, len: usize) -> Vec<u8> {
        let Some((index, offset)) = self.admit(len) else {
            return buf;
        };
        if index == 0 {
            self.hash_first(&buf[..len]);
            return buf;
        }
        match self.spare() {
            Some(spare) => {
                self.send(Job {
                    index,
                    offset,
                    buf,
                    len,
                });
                spare
            }
            None => {
                self.cvs[index] = subtree_cv(offset, &buf[..len]);
                buf
            }
        }
    }

    fn update(&mut self, data: &[u8]) {
        let Some((index, offset)) = self.admit(data.len()) else {
            return;
        };
        if index == 0 {
            self.hash_first(data);
            return;
        }
        match self.spare() {
            // Copying costs about a quarter of hashing: worth it when the helper has room.
            Some(mut buf) => {
                buf.clear();
                buf.extend_from_slice(data);
                let len = buf.len();
                self.send(Job {
                    index,
                    offset,
                    buf,
                    len,
                });
            }
            None => self.cvs[index] = subtree_cv(offset, data),
        }
    }

    /// Chunk 0 is hashed here, before any helper exists: its root hash is the digest of a
    /// one-chunk stream, and small snapshots never start a thread.
    fn hash_first(&mut self, data: &[u8]) {
        let mut h = blake3::Hasher::new();
        h.update(data);
        self.first_root = Some(Digest(*h.finalize().as_bytes()));
        self.cvs[0] = h.finalize_non_root();
    }

    /// A buffer for the caller to fill next while the helper hashes the one being handed
    /// over: one the helper gave back, or a new one while the pool is not full. `None` when
    /// there is no helper or every buffer is queued or being hashed: the caller then hashes
    /// the chunk itself rather than wait.
    fn spare(&mut self) -> Option<Vec<u8>> {
        if self.helper.is_none() && self.may_spawn {
            // Whatever happens, try once only.
            self.may_spawn = false;
            self.helper = Helper::spawn();
        }
        let helper = self.helper.as_mut()?;
        while let Ok(done) = helper.done.try_recv() {
            self.cvs[done.index] = done.cv;
            self.pending -= 1;
            helper.free.push(done.buf);
        }
        if let Some(buf) = helper.free.pop() {
            return Some(buf);
        }
        if helper.allocated < POOL {
            helper.allocated += 1;
            return Some(Vec::new());
        }
        None
    }

    /// Queues a job (its buffer's replacement came from [`Tree::spare`]); hashes it here if
    /// the queue is full or the helper is gone.
    fn send(&mut self, job: Job) {
        let result = match self.helper.as_ref().and_then(|h| h.jobs.as_ref()) {
            Some(jobs) => jobs.try_send(job),
            None => Err(TrySendError::Disconnected(job)),
        };
        match result {
            Ok(()) => self.pending += 1,
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                self.cvs[job.index] = subtree_cv(job.offset, &job.buf[..job.len]);
                if let Some(helper) = &mut self.helper {
                    helper.free.push(job.buf);
                }
            }
        }
    }

    fn finish(&mut self) -> Result<Digest, HashFailure> {
        if let Some(helper) = &mut self.helper {
            drop(helper.jobs.take());
            while self.pending > 0 {
                let Ok(done) = helper.done.recv() else {
                    return Err(HashFailure::Thread);
                };
                self.cvs[done.index] = done.cv;
                self.pending -= 1;
            }
            if let Some(thread) = helper.thread.take() {
                thread.join().map_err(|_| HashFailure::Thread)?;
            }
        }
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        match (self.cvs.len(), self.first_root) {
            (0, _) => Ok(Digest(*blake3::hash(&[]).as_bytes())),
            (1, Some(root)) => Ok(root),
            (1, None) => Err(HashFailure::Shape),
            _ => Ok(Digest(
                *merge_root(&self.cvs, self.total, self.chunk_size).as_bytes(),
            )),
        }
    }
}

impl Helper {
    fn spawn() -> Option<Helper> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let (give_back, done) = sync_channel::<Done>(POOL);
        let thread = std::thread::Builder::new()
            .name("snapshot-hash".into())
            .spawn(move || {
                for job in queue {
                    let cv = subtree_cv(job.offset, &job.buf[..job.len]);
                    let done = Done {
                        index: job.index,
                        cv,
                        buf: job.buf,
                    };
                    // The owner may be gone (dropped mid-stream); then we are done too.
                    if give_back.send(done).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Helper {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            free: Vec::new(),
            allocated: 1, // the caller's buffer
        })
    }
}

/// The chaining value of the subtree holding `data`, which starts at `offset` (a multiple
/// of the chunk size, which is a power of two; at most one chunk long).
fn subtree_cv(offset: u64, data: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(data);
    h.finalize_non_root()
}

/// blake3's root over `len` bytes whose chunks have the chaining values `cvs` (at least
/// two). blake3 splits an input at `left_subtree_len`, a power-of-two number of 1 KiB leaves,
/// hence a whole number of our (power-of-two) chunks.
fn merge_root(cvs: &[ChainingValue], len: u64, chunk_size: u64) -> blake3::Hash {
    let (left, right, left_len) = split(cvs, len, chunk_size);
    merge_subtrees_root(
        &merge(left, left_len, chunk_size),
        &merge(right, len - left_len, chunk_size),
        Mode::Hash,
    )
}

fn merge(cvs: &[ChainingValue], len: u64, chunk_size: u64) -> ChainingValue {
    match cvs {
        [cv] => return *cv,
        // Unreachable: `split` never gives an empty half of two or more.
        [] => return [0; 32],
        _ => {}
    }
    let (left, right, left_len) = split(cvs, len, chunk_size);
    merge_subtrees_non_root(
        &merge(left, left_len, chunk_size),
        &merge(right, len - left_len, chunk_size),
        Mode::Hash,
    )
}

/// Splits at blake3's left subtree. The shape checks in `Tree::admit` make the split point
/// a whole number of chunks in `1..cvs.len()`; the clamp only keeps a bug from panicking
/// (it would give a wrong digest, caught by the reader).
fn split(
    cvs: &[ChainingValue],
    len: u64,
    chunk_size: u64,
) -> (&[ChainingValue], &[ChainingValue], u64) {
    let left_len = left_subtree_len(len);
    let at = usize::try_from(left_len / chunk_size)
        .unwrap_or(usize::MAX)
        .clamp(1, cvs.len().saturating_sub(1).max(1));
    let (left, right) = cvs.split_at(at.min(cvs.len()));
    (left, right, left_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in chunks of `chunk_size`, alternating `submit` and `update`.
    fn digest(mode: Hashing, chunk_size: u32, data: &[u8]) -> Result<Digest, HashFailure> {
        let mut h = StreamHasher::new(mode, chunk_size);
        let mut buf = Vec::new();
        for (i, piece) in data.chunks(chunk_size as usize).enumerate() {
            if i % 3 == 2 {
                h.update(piece);
                continue;
            }
            buf.clear();
            buf.extend_from_slice(piece);
            buf.extend_from_slice(b"tail not hashed");
            buf = h.submit(buf, piece.len());
        }
        h.finish()
    }

    #[test]
    fn every_mode_gives_blake3_of_the_concatenation() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 1000) as u8).collect();
        for chunk_size in [1024u32, 2048, 3000, 4096, 1 << 15] {
            for len in [
                0,
                1,
                1023,
                1024,
                1025,
                2048,
                4096 * 3 + 5,
                65536,
                100_000,
                200_000,
            ] {
                let expected = Digest(*blake3::hash(&data[..len]).as_bytes());
                for mode in [Hashing::Inline, Hashing::Background] {
                    assert_eq!(
                        digest(mode, chunk_size, &data[..len]),
                        Ok(expected),
                        "{mode:?} chunk {chunk_size} len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_tree_matches_blake3_on_every_chunk_count_up_to_70() {
        // Every tree shape up to 70 chunks, with a full and a short last chunk.
        let data: Vec<u8> = (0..70 * 1024u32).map(|i| (i % 251) as u8).collect();
        for chunks in 1..=70usize {
            for len in [chunks * 1024, chunks * 1024 - 100] {
                let expected = Digest(*blake3::hash(&data[..len]).as_bytes());
                assert_eq!(
                    digest(Hashing::Background, 1024, &data[..len]),
                    Ok(expected)
                );
            }
        }
    }

    #[test]
    fn chunks_out_of_shape_are_reported_not_hashed() {
        let mut h = StreamHasher::new(Hashing::Background, 1024);
        if let StreamHasher::Sequential(_) = h {
            return; // one CPU: nothing to check
        }
        h.update(&[1; 1000]);
        h.update(&[2; 1024]); // after a short chunk
        assert_eq!(h.finish(), Err(HashFailure::Shape));
        let mut h = StreamHasher::new(Hashing::Background, 1024);
        h.update(&[1; 2000]); // longer than a chunk
        assert_eq!(h.finish(), Err(HashFailure::Shape));
    }
}
