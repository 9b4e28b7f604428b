//! The storage exerciser behind `tessera write-log`, the storage demo and the crash test:
//! appends entries with deterministic payloads in synced batches and reports each durable
//! position, so whoever kills the writer knows exactly what must have survived.

use std::io::Write;
use tessera::groups::raft::Payload;
use tessera::groups::{Cursor, Index, Storage, StorageError, Term};
use tessera::{Digest, GroupId};

/// The group id the exerciser writes to for a group name.
pub fn group_id(name: &str) -> GroupId {
    GroupId(Digest::of(name.as_bytes()))
}

/// The payload of entry `index`: deterministic, so a reader can check every byte.
pub fn payload(index: u64, len: usize) -> Vec<u8> {
    let seed = index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|i| (seed >> ((i % 8) * 8)) as u8 ^ i as u8)
        .collect()
}

/// The term of entry `index`: grows every 1000 entries so the log spans several terms.
pub fn term_of(index: u64) -> Term {
    Term(1 + index / 1000)
}

/// Appends `batch` entries per sync after the log's current end, printing
/// `durable INDEX TERM` to `out` after each sync returns, until `entries` are written
/// (forever when `None`).
pub fn run(
    log: &mut impl Storage,
    batch: u64,
    payload_bytes: usize,
    entries: Option<u64>,
    out: &mut impl Write,
) -> Result<(), WriteLogError> {
    let mut written = 0u64;
    loop {
        for _ in 0..batch {
            let next = log.last().index().next();
            log.append(
                Payload::Command(payload(next.0, payload_bytes)),
                term_of(next.0),
            )?;
            written += 1;
        }
        let report = log.sync()?;
        let Cursor(term, Index(index)) = report.last;
        writeln!(out, "durable {index} {term}")?;
        out.flush()?;
        if entries.is_some_and(|n| written >= n) {
            return Ok(());
        }
    }
}

/// The exerciser failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteLogError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reporting failed (the reader went away).
    #[error("writing the report: {0}")]
    Report(#[from] std::io::Error),
}
