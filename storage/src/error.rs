//! Errors of the storage layer. Each names where it happened: column family, key, group,
//! index; callers never have to parse a message.

use std::path::PathBuf;

/// What is wrong with a stored record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// Fewer bytes than the smallest valid record.
    #[error("record is {len} bytes, shorter than the minimum {min}")]
    Short {
        /// Bytes found.
        len: usize,
        /// Smallest valid length.
        min: usize,
    },
    /// A format version this build does not know.
    #[error("unknown format version {found} (this build reads {expected})")]
    Version {
        /// Version byte found.
        found: u8,
        /// Version this build writes and reads.
        expected: u8,
    },
    /// The stored crc does not match the record (or the record sits under the wrong key).
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// crc32 stored in the record.
        stored: u32,
        /// crc32 computed over version, key and payload.
        computed: u32,
    },
    /// The payload has the wrong length for its kind.
    #[error("payload is {len} bytes, expected {expected}")]
    PayloadLength {
        /// Bytes found.
        len: usize,
        /// What the kind requires.
        expected: &'static str,
    },
    /// The log's recorded bounds disagree with the entries present.
    #[error("log bounds say last {recorded} but the log holds {found}")]
    Bounds {
        /// Last index according to the bounds record.
        recorded: u64,
        /// Last index found among the entries.
        found: u64,
    },
    /// An entry the log's bounds say exists is not there.
    #[error("entry {index} is missing inside the log's bounds")]
    Missing {
        /// The missing index.
        index: u64,
    },
    /// A log entry's payload bytes are not a payload the core knows (the crc matched: a
    /// bug, or a record written by another program).
    #[error("entry payload does not decode: {0}")]
    Payload(tessera_raft::PayloadBytesError),
    /// A read while the node ran found this entry damaged (recorded under the group's
    /// `LogDamage` meta key); the next open discards it and what follows, whether or not
    /// the record reads intact again (a disk that returned bad bytes once is not trusted).
    #[error("entry {index} was found damaged by a read while the node ran")]
    FoundWhileRunning {
        /// The index the read found damaged.
        index: u64,
    },
    /// A key whose length or layout does not fit its column family.
    #[error("malformed key of {len} bytes")]
    Key {
        /// Key length.
        len: usize,
    },
}

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB reported an error.
    #[error("rocksdb {op} on {cf}: {source}")]
    Db {
        /// What we were doing: "open", "get", "write", "iterate", ...
        op: &'static str,
        /// Column family (or "db" for the instance).
        cf: &'static str,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// A stored record is damaged; the key is printed in hex (and, for a log entry, its
    /// index in decimal, so an operator need not decode the key).
    #[error("corrupt record in {cf} at key {key}{}: {kind}", entry_note(.cf, .key))]
    Corruption {
        /// Column family holding the record.
        cf: &'static str,
        /// The key, in hex.
        key: String,
        /// What is wrong.
        kind: Corruption,
    },
    /// The path given as a data directory does not exist.
    #[error("{path}: no such directory")]
    NoSuchDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The path given as a data directory is a file (or anything else but a directory).
    #[error("{path} is a file, not a data directory")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The path is a directory, but not a tessera data directory.
    #[error("{path}: not a tessera data directory: {reason}")]
    NotADataDir {
        /// The path given.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A data directory written by another format generation.
    #[error("{path}: data directory format {found}, this build reads {expected}")]
    Format {
        /// The data directory.
        path: PathBuf,
        /// Format found.
        found: u32,
        /// Format this build reads.
        expected: u32,
    },
    /// An operation outside the log's bounds.
    #[error("group {group}: {op} at index {index} outside the log (anchor {anchor}, last {last})")]
    OutOfRange {
        /// The group, in hex.
        group: String,
        /// The operation.
        op: &'static str,
        /// Index asked.
        index: u64,
        /// Anchor (last removed) index.
        anchor: u64,
        /// Last index.
        last: u64,
    },
    /// Plain file-system I/O outside RocksDB.
    #[error("i/o on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether this error means the data on disk cannot be trusted.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// " (entry N)" for a `log` key (group ‖ index, in hex), else nothing.
fn entry_note(cf: &str, key: &str) -> String {
    let index = (cf == "log" && key.len() == 2 * crate::keys::LOG_KEY_LEN)
        .then(|| u64::from_str_radix(&key[64..], 16).ok())
        .flatten();
    index.map_or_else(String::new, |i| format!(" (entry {i})"))
}

/// Lower-case hex, for keys in error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}
