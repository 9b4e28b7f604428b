//! The store's backups: what `tessera snapshot status` reports of a backup file, and
//! `tessera snapshot restore`, which puts one into a new node's data directory.
//!
//! A backup is taken by `GET /v1/snapshot` ([`super::http::backup`]) and saved by
//! [`Client::save_backup`](super::client::Client::save_backup). Restoring is done by the
//! node itself at its first start ([`crate::groups::restore`]): `restore` only checks the
//! backup whole and places it in the new directory as [`RESTORE_FILE_NAME`], because the
//! group it belongs to is only known from the node's settings (key, timings, snapshot
//! flags).

use super::kv::KvSnapshot;
use crate::groups::snapshot::backup::{BackupError, BackupFile};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The backup a node imports at its first start, in its data directory.
pub const RESTORE_FILE_NAME: &str = "restore.tsbackup";

/// How many of the largest values a summary lists.
pub const LARGEST: usize = 5;

/// What a backup holds, every check passed.
#[derive(Clone, Debug, Serialize)]
pub struct BackupSummary {
    /// The file.
    pub file: PathBuf,
    /// Its size in bytes.
    pub file_bytes: u64,
    /// The group it was taken from (hex prefix, as the node's status shows it).
    pub group: String,
    /// The node that wrote it.
    pub node: String,
    /// When (seconds since the Unix epoch; 0 when unknown).
    pub taken_at_unix: u64,
    /// The store's revision in it: every write up to it, none after.
    pub revision: u64,
    /// The term it was taken in.
    pub term: u64,
    /// Live keys.
    pub keys: u64,
    /// Changes kept for watches and blocking reads.
    pub history_events: u64,
    /// Bytes of keys and values.
    pub data_bytes: u64,
    /// The largest values: key and bytes.
    pub largest_values: Vec<(String, u64)>,
    /// Bytes of the raw snapshot stream.
    pub raw_bytes: u64,
    /// Bytes of its compressed chunks.
    pub stored_bytes: u64,
    /// Chunks.
    pub chunks: u32,
    /// The raw stream's digest (XXH3-128).
    pub digest: String,
    /// Every chunk's crc32, the digest and every item were checked.
    pub checked: bool,
}

/// Reads the backup at `path` through, checking everything (every chunk's crc32 against
/// the manifest, the digest of the decompressed stream, every item decoded into a store),
/// and says what it holds.
pub fn summarize(path: &Path) -> Result<BackupSummary, BackupError> {
    let file = BackupFile::open(path)?;
    let loaded = file.load::<KvSnapshot>()?;
    let state = &loaded.snapshot.state;
    let manifest = &file.manifest;
    let info = file.info.clone().unwrap_or_default();
    let group: String = manifest.group().0[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(BackupSummary {
        file: path.to_path_buf(),
        file_bytes: file.size,
        group,
        node: info.node,
        taken_at_unix: info.taken_at_unix,
        revision: state.revision,
        term: manifest.anchor().term,
        keys: state.keys.len() as u64,
        history_events: state.history.len() as u64,
        data_bytes: state.data_bytes(),
        largest_values: state.largest_values(LARGEST),
        raw_bytes: manifest.raw_bytes(),
        stored_bytes: manifest.compressed_bytes(),
        chunks: manifest.chunk_count(),
        digest: manifest.digest().to_string(),
        checked: true,
    })
}

/// Checks the backup at `backup` whole and places it in the new data directory `dir`
/// (created; it must not exist or be empty), where the node started on `dir` imports it
/// at its first start. Written to a temporary name, synced and renamed, so a crash leaves
/// either no backup or the whole one.
pub fn restore(backup: &Path, dir: &Path) -> Result<BackupSummary, String> {
    let summary = summarize(backup).map_err(|e| e.to_string())?;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty: restore into a new data directory (a node's existing state is never overwritten)",
                dir.display()
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let target = dir.join(RESTORE_FILE_NAME);
    let partial = dir.join(format!("{RESTORE_FILE_NAME}.partial"));
    let copy = || -> std::io::Result<()> {
        std::fs::copy(backup, &partial)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, &target)?;
        std::fs::File::open(dir)?.sync_all()
    };
    copy().map_err(|e| format!("copying {} into {}: {e}", backup.display(), dir.display()))?;
    Ok(summary)
}
