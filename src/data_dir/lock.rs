//! The data directory lock: one tessera process per data directory.
//!
//! Two processes on one directory would be one node twice: the second would load the same
//! key, bind, and bond with the first's peers under the same id and a new incarnation,
//! which makes them drop the first's links; its RocksDB open would fail only after that.
//! So the lock is the first thing a node takes, before it binds a socket or writes any
//! file but the lock.
//!
//! The lock is an exclusive `flock(2)` on `DATA_DIR/tessera.lock`, held while the file is
//! open. The kernel drops it when the process ends however it ends (SIGKILL included), so
//! a stale lock never needs cleaning up. The file holds the owner's pid, for the error a
//! second process reports. `flock` locks belong to an open file, so a second opening in
//! the same process is refused too.
//!
//! A directory the lock had to create is removed again if the node does not get as far
//! as opening it ([`DirLock::open`]): a start that fails on a busy port leaves nothing.

use super::{key, peers_file, DataDir, DataDirError};
use rustix::fs::{flock, FlockOperation};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE_NAME: &str = "tessera.lock";

/// A data directory locked for this process and not opened yet: the first step of
/// [`DataDir::open`], for a caller that binds its ports in between (`tessera node`).
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    file: File,
    /// Set when the directory did not exist: it is removed again unless opened.
    created: Option<Created>,
}

impl DirLock {
    /// Locks the directory at `path`, creating it when missing. Fails with
    /// [`DataDirError::InUse`] when another process (or another opening in this one)
    /// holds it.
    pub fn acquire(path: impl Into<PathBuf>) -> Result<DirLock, DataDirError> {
        let path = path.into();
        let existed = path
            .try_exists()
            .map_err(DataDirError::io("look for", &path))?;
        fs::create_dir_all(&path).map_err(DataDirError::io("create", &path))?;
        let created = (!existed).then(|| Created {
            path: path.clone(),
            armed: true,
        });
        let lock_path = path.join(LOCK_FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(DataDirError::io("open", &lock_path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(err) if err == rustix::io::Errno::WOULDBLOCK => {
                // Not ours to remove, even if this call created the directory: the owner
                // created it an instant before us.
                if let Some(created) = created {
                    created.disarm();
                }
                return Err(DataDirError::InUse {
                    path,
                    pid: owner_pid(&mut file),
                });
            }
            Err(err) => return Err(DataDirError::io("lock", &lock_path)(err.into())),
        }
        write_pid(&mut file).map_err(DataDirError::io("write", &lock_path))?;
        Ok(DirLock {
            path,
            file,
            created,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the locked directory: loads or creates the node key, opens the RocksDB store
    /// and reads the peers file. On failure a directory the lock created is removed.
    pub fn open(self) -> Result<DataDir, DataDirError> {
        let DirLock {
            path,
            file,
            created,
        } = self;
        let key = key::load_or_create(&path)?;
        let store = tessera_storage::Store::open(&path).map_err(|source| DataDirError::Store {
            path: path.clone(),
            source,
        })?;
        let peers = peers_file::load(&path);
        if let Some(created) = created {
            created.disarm();
        }
        Ok(DataDir::from_parts(path, key, store, peers, file))
    }
}

/// A directory created by [`DirLock::acquire`]; removed when dropped while armed.
#[derive(Debug)]
struct Created {
    path: PathBuf,
    armed: bool,
}

impl Created {
    /// Keeps the directory.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match fs::remove_dir_all(&self.path) {
            Ok(()) => {
                tracing::debug!(path = %self.path.display(), "removed the data directory this failed start created")
            }
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err, "cannot remove the data directory this failed start created")
            }
        }
    }
}

/// Replaces the lock file's content with this process's pid.
fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()
}

/// The pid the lock's owner wrote, if it did yet (it writes right after locking).
fn owner_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    // A pid is a few digits; a larger file is not one of ours.
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
