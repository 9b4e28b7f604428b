//! Group commit across groups: one fsync per node per round, whatever the number of
//! groups that staged something.
//!
//! Every group's worker ends its turn with one `WriteBatch` that must be durable before
//! the group acknowledges anything in it. With one fsync per batch, a thousand groups
//! written at once cost a thousand fsyncs. Here the callers queue their batches; the first
//! caller that finds no round running becomes the round's leader: it takes every batch
//! queued so far, writes them (without a sync each), syncs the write-ahead log once, and
//! wakes everyone whose batch was in the round. Callers that arrive meanwhile queue for the
//! next round, which the first of them leads. This is the scheme RocksDB's own write
//! thread uses, made explicit so that it is counted and does not depend on the callers
//! being inside RocksDB at the same instant.
//!
//! Durability is unchanged: a caller returns `Ok` only after a WAL sync that started
//! after its batch was written returned; when the write or the sync fails, every caller of
//! the round gets the error (none of their batches can be called durable).
//!
//! The queue is unbounded in batches but bounded in practice by the callers: each caller
//! blocks until its round is done, so there are at most as many queued batches as threads
//! calling `commit`.

use crate::error::Error;
use rocksdb::{WriteBatch, WriteOptions, DB};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// What the node's group commit did so far (for metrics and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// WAL syncs (rounds).
    pub syncs: u64,
    /// Batches made durable by them; `batches / syncs` is the batches shared per fsync.
    pub batches: u64,
}

#[derive(Default)]
struct Queue {
    /// Batches waiting for the next round, with their tickets.
    pending: Vec<(u64, WriteBatch)>,
    next_ticket: u64,
    /// Every ticket up to this one is done (durable, or failed with `failed`).
    done_through: u64,
    /// A round is being written and synced now.
    leading: bool,
    /// Errors of finished rounds (what failed, RocksDB's message), by ticket, until their
    /// callers collect them.
    failed: HashMap<u64, (&'static str, rocksdb::Error)>,
}

/// The node's group commit (one per `Store`).
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    done: Condvar,
    syncs: AtomicU64,
    batches: AtomicU64,
}

impl GroupCommit {
    /// Makes `batch` durable, sharing the fsync with every batch queued at the same time.
    pub(crate) fn commit(&self, db: &DB, batch: WriteBatch) -> Result<(), Error> {
        let mut queue = self.lock();
        queue.next_ticket += 1;
        let ticket = queue.next_ticket;
        queue.pending.push((ticket, batch));
        loop {
            if queue.done_through >= ticket {
                return match queue.failed.remove(&ticket) {
                    Some((op, source)) => Err(Error::Db {
                        op,
                        cf: "log",
                        source,
                    }),
                    None => Ok(()),
                };
            }
            if !queue.leading {
                queue.leading = true;
                let round = std::mem::take(&mut queue.pending);
                drop(queue);
                let last = round.last().map(|(t, _)| *t).unwrap_or(ticket);
                let count = round.len() as u64;
                let result = write_round(db, round);
                queue = self.lock();
                if let Err(err) = result {
                    for t in (queue.done_through + 1)..=last {
                        queue.failed.insert(t, err.clone());
                    }
                } else {
                    self.syncs.fetch_add(1, Ordering::Relaxed);
                    self.batches.fetch_add(count, Ordering::Relaxed);
                }
                queue.done_through = last;
                queue.leading = false;
                self.done.notify_all();
                continue;
            }
            queue = self
                .done
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// What was synced so far.
    pub(crate) fn counts(&self) -> SyncCounts {
        SyncCounts {
            syncs: self.syncs.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue half-updated in a way that
        // loses durability: the worst case is a waiter that waits for a round nobody leads,
        // and the next caller leads it.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes a round's batches without syncing each, then syncs the WAL once: the WAL is one
/// sequential file, so the one sync covers every write before it.
fn write_round(
    db: &DB,
    round: Vec<(u64, WriteBatch)>,
) -> Result<(), (&'static str, rocksdb::Error)> {
    // Alone: one synced write is the same fsync without a second call into RocksDB.
    let alone = round.len() == 1;
    let mut opts = WriteOptions::default();
    opts.set_sync(alone);
    for (_, batch) in round {
        db.write_opt(batch, &opts)
            .map_err(|source| ("write batch", source))?;
    }
    if alone {
        return Ok(());
    }
    db.flush_wal(true)
        .map_err(|source| ("sync write-ahead log", source))
}
