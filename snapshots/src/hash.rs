//! The blake3 digest of the raw stream, computed on the caller's thread or on a helper
//! thread.
//!
//! blake3 (AVX2, ~2.5–3 GB/s on these machines) costs about a sixth of zstd level-1
//! compression and a third of its decompression on config-like data, and more than zstd
//! itself on incompressible data. [`Hashing::Background`] moves it to a helper thread that
//! hashes each finished chunk while the caller compresses or decompresses the next. That only
//! pays when a core is idle: measured with both cores busy (load 5 on 2 cores), it was slower
//! than hashing inline, since it adds a hand-off and hashes bytes that are cold in the other
//! core's cache. So [`Hashing::Inline`] is the default. The digest is the same either way:
//! chunks are hashed in order, and only the result is shared.
//!
//! Buffers move by ownership: the caller hands over a filled chunk buffer and gets back one
//! to reuse, from a pool of at most [`POOL`] buffers, so memory stays a few chunks.

use crate::manifest::Digest;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// Where the raw stream is hashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hashing {
    /// On the thread that writes or reads. The default.
    #[default]
    Inline,
    /// On one helper thread per writer or reader (falls back to inline if it cannot be
    /// spawned), for machines with a core to spare.
    Background,
}

/// Chunk buffers in existence per hasher, including the one the caller is filling.
pub(crate) const POOL: usize = 4;

/// Hashes a stream of chunk buffers.
pub(crate) enum StreamHasher {
    Inline(Box<blake3::Hasher>),
    Background(Background),
}

pub(crate) struct Background {
    /// `None` once finished.
    to_hasher: Option<SyncSender<(Vec<u8>, usize)>>,
    returned: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<blake3::Hasher>>,
    allocated: usize,
}

impl StreamHasher {
    pub(crate) fn new(mode: Hashing) -> Self {
        match mode {
            Hashing::Inline => StreamHasher::Inline(Box::default()),
            Hashing::Background => {
                Self::spawn().unwrap_or_else(|| StreamHasher::Inline(Box::default()))
            }
        }
    }

    fn spawn() -> Option<Self> {
        let (to_hasher, chunks) = sync_channel::<(Vec<u8>, usize)>(POOL);
        let (give_back, returned) = sync_channel::<Vec<u8>>(POOL);
        let thread = std::thread::Builder::new()
            .name("snapshot-hash".into())
            .spawn(move || {
                let mut hasher = blake3::Hasher::new();
                for (buf, len) in chunks {
                    hasher.update(&buf[..len]);
                    // The owner may be gone (dropped mid-stream); then the buffer is freed.
                    let _ = give_back.try_send(buf);
                }
                hasher
            })
            .ok()?;
        Some(StreamHasher::Background(Background {
            to_hasher: Some(to_hasher),
            returned,
            thread: Some(thread),
            allocated: 1, // the caller's first buffer
        }))
    }

    /// Hashes `buf[..len]` after everything submitted before; returns a buffer to reuse, of
    /// unspecified length and content (the same one when inline).
    pub(crate) fn submit(&mut self, buf: Vec<u8>, len: usize) -> Vec<u8> {
        match self {
            StreamHasher::Inline(h) => {
                h.update(&buf[..len]);
                buf
            }
            StreamHasher::Background(b) => {
                if let Some(tx) = &b.to_hasher {
                    // A send fails only if the thread is gone; finish() then reports it.
                    let _ = tx.send((buf, len));
                }
                b.take_buffer()
            }
        }
    }

    /// Hashes a slice the caller does not own (copied into a pool buffer when in the
    /// background).
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            StreamHasher::Inline(h) => {
                h.update(data);
            }
            StreamHasher::Background(b) => {
                let mut buf = b.take_buffer();
                buf.clear();
                buf.extend_from_slice(data);
                let spare = self.submit(buf, data.len());
                if let StreamHasher::Background(b) = self {
                    // Keep the pool's count right: this buffer is parked, not in use.
                    b.park(spare);
                }
            }
        }
    }

    /// The digest of everything submitted; `None` if the helper thread died.
    pub(crate) fn finish(&mut self) -> Option<Digest> {
        let hasher = match self {
            StreamHasher::Inline(h) => (**h).clone(),
            StreamHasher::Background(b) => {
                drop(b.to_hasher.take());
                b.thread.take()?.join().ok()?
            }
        };
        Some(Digest(*hasher.finalize().as_bytes()))
    }
}

impl Background {
    /// A returned buffer, or a new one while the pool is not full, or waits for one.
    fn take_buffer(&mut self) -> Vec<u8> {
        match self.returned.try_recv() {
            Ok(buf) => return buf,
            Err(TryRecvError::Disconnected) => return Vec::new(),
            Err(TryRecvError::Empty) => {}
        }
        if self.allocated < POOL {
            self.allocated += 1;
            return Vec::new();
        }
        // Every buffer is queued for hashing: wait for the first one back.
        self.returned.recv().unwrap_or_default()
    }

    /// Gives back a buffer the caller took but does not need now.
    fn park(&mut self, buf: Vec<u8>) {
        drop(buf);
        self.allocated -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_give_blake3_of_the_concatenation() {
        let pieces: Vec<Vec<u8>> = (0..20u8)
            .map(|i| vec![i; 1000 + usize::from(i) * 37])
            .collect();
        let all: Vec<u8> = pieces.concat();
        for mode in [Hashing::Inline, Hashing::Background] {
            let mut h = StreamHasher::new(mode);
            let mut buf = Vec::new();
            for (i, p) in pieces.iter().enumerate() {
                if i % 3 == 0 {
                    h.update(p);
                    continue;
                }
                buf.clear();
                buf.extend_from_slice(p);
                buf.extend_from_slice(b"tail not hashed");
                buf = h.submit(buf, p.len());
            }
            assert_eq!(
                h.finish(),
                Some(Digest(*blake3::hash(&all).as_bytes())),
                "{mode:?}"
            );
        }
    }
}
