//! Group commit across groups: one fsync per node per round, whatever the number of
//! groups that staged something.
//!
//! Every group's worker ends its turn with one `WriteBatch` that must be durable before
//! the group acknowledges anything in it. With one fsync per batch, a thousand groups
//! written at once cost a thousand fsyncs. Here the batches go to the node's one syncer
//! thread: it takes every batch queued so far, writes them in the order they were
//! submitted (without a sync each), syncs the write-ahead log once, and tells each
//! submitter. Batches submitted meanwhile wait for the next round. A worker does not
//! block a runtime thread while its round runs: it hands its batch over
//! ([`GroupCommit::submit`]) and hears the result through its callback.
//!
//! Durability is unchanged: a submitter hears `Ok` only after a WAL sync that started
//! after its batch was written returned; when a write or the sync fails, every batch of
//! the round gets the error (none of them can be called durable). Order is kept: batches
//! are written in submission order, so one group's later batch never lands before its
//! earlier one.
//!
//! The queue holds at most one batch per submitter waiting for it (each group submits
//! its next batch only after hearing about the previous one, and blocking callers wait),
//! so it is bounded by the number of groups and threads.

use rocksdb::{WriteBatch, WriteOptions, DB};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What the node's group commit did so far (for metrics and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// WAL syncs (rounds).
    pub syncs: u64,
    /// Batches made durable by them; `batches / syncs` is the batches shared per fsync.
    pub batches: u64,
}

/// Why a batch is not durable.
#[derive(Clone, Debug)]
pub(crate) enum RoundError {
    /// What RocksDB call failed, and its message.
    Db(&'static str, rocksdb::Error),
    /// The store is closing (its syncer thread stopped).
    Closed,
}

impl RoundError {
    /// The storage error naming the data directory at `path`.
    pub(crate) fn into_error(self, path: &std::path::Path) -> crate::Error {
        match self {
            RoundError::Db(op, source) => crate::Error::Db {
                op,
                cf: "log",
                source,
            },
            RoundError::Closed => crate::Error::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("the store is closing: its syncer thread stopped"),
            },
        }
    }
}

/// Told the outcome of a submitted batch, on the syncer thread: must not block.
pub(crate) type Done = Box<dyn FnOnce(Result<(), RoundError>) + Send>;

#[derive(Default)]
struct Queue {
    pending: Vec<(WriteBatch, Done)>,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    syncs: AtomicU64,
    batches: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the lock is held (no user code runs under it).
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The node's group commit (one per writable `Store`): the syncer thread and its queue.
/// Dropping it (with the last `Store` clone) stops the thread after the batches already
/// queued, and waits for it, so the database closes with nothing left unwritten.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the syncer thread of `db`.
    pub(crate) fn start(db: Arc<DB>) -> std::io::Result<GroupCommit> {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("tessera-sync".into())
                .spawn(move || run(&shared, &db))?
        };
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `batch` for the next round; `done` hears whether it is durable.
    pub(crate) fn submit(&self, batch: WriteBatch, done: Done) {
        let mut queue = self.shared.lock();
        if queue.stop {
            drop(queue);
            done(Err(RoundError::Closed));
            return;
        }
        queue.pending.push((batch, done));
        drop(queue);
        self.shared.wake.notify_one();
    }

    /// Makes `batch` durable, sharing the fsync with every batch queued at the same time;
    /// blocks until its round is done.
    pub(crate) fn commit(&self, batch: WriteBatch) -> Result<(), RoundError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(
            batch,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv().unwrap_or(Err(RoundError::Closed))
    }

    /// What was synced so far.
    pub(crate) fn counts(&self) -> SyncCounts {
        SyncCounts {
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The syncer thread: rounds until stopped and drained.
fn run(shared: &Shared, db: &DB) {
    loop {
        let round = {
            let mut queue = shared.lock();
            while queue.pending.is_empty() && !queue.stop {
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if queue.pending.is_empty() {
                return;
            }
            std::mem::take(&mut queue.pending)
        };
        let count = round.len() as u64;
        let (batches, dones): (Vec<WriteBatch>, Vec<Done>) = round.into_iter().unzip();
        let result = write_round(db, batches);
        if result.is_ok() {
            shared.syncs.fetch_add(1, Ordering::Relaxed);
            shared.batches.fetch_add(count, Ordering::Relaxed);
        }
        for done in dones {
            done(result.clone());
        }
    }
}

/// Writes a round's batches without syncing each, then syncs the WAL once: the WAL is one
/// sequential file, so the one sync covers every write before it.
fn write_round(db: &DB, round: Vec<WriteBatch>) -> Result<(), RoundError> {
    // Alone: one synced write is the same fsync without a second call into RocksDB.
    let alone = round.len() == 1;
    let mut opts = WriteOptions::default();
    opts.set_sync(alone);
    for batch in round {
        db.write_opt(batch, &opts)
            .map_err(|source| RoundError::Db("write batch", source))?;
    }
    if alone {
        return Ok(());
    }
    db.flush_wal(true)
        .map_err(|source| RoundError::Db("sync write-ahead log", source))
}
