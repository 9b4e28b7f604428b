//! [`DataDir`]: a node's data directory and what lives in it — the lock that keeps it to
//! one process ([`lock`]), the node's secret key ([`key`]), the RocksDB store every durable
//! group of the node shares, the peers file ([`peers_file`]), and the watch on the free
//! space of its disk ([`space`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera::data_dir::DataDir;
//! use tessera::network::{Network, NetworkId};
//! let dir = DataDir::open("/var/lib/tessera/a")?; // lock, key, store, peers file
//! let network = Network::builder(NetworkId::named("my network"))
//!     .data_dir(dir) // the node's id, its known peers, and the store of its groups
//!     .bind()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Opening takes the lock first: a second process on a live directory fails with
//! [`DataDirError::InUse`] before it creates, binds or dials anything. The network is built
//! from the data directory and keeps a handle to it, so groups and collections, which are
//! given the network (the seed API), take the store from there
//! ([`Network::data_dir`](crate::network::Network::data_dir)); a network without one keeps
//! its groups in memory. The directory stays locked while any handle lives (clones, the
//! network's): dropping every one of them, or ending the process, releases it.

pub mod key;
pub mod lock;
pub mod peers_file;
pub mod space;

pub use key::{IdentityError, KEY_FILE_NAME};
pub use lock::{DirLock, LOCK_FILE_NAME};

use crate::network::identity::peer_id;
use crate::network::PeerSpec;
use crate::primitives::PeerId;
use iroh::SecretKey;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Opening a data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process (or another opening in this one) holds the directory's lock.
    #[error("data directory {} in use by another tessera process ({})", .path.display(), owner(.pid))]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The owner's pid, as written in the lock file (`None` when not written yet).
        pid: Option<u32>,
    },
    /// Creating, reading or locking a file or directory failed.
    #[error("data directory: cannot {action} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The node key could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The RocksDB store could not be opened.
    #[error("data directory {}: cannot open the store: {source}", .path.display())]
    Store {
        /// The directory.
        path: PathBuf,
        /// The store's error.
        source: tessera_storage::Error,
    },
}

impl DataDirError {
    /// An [`Io`](Self::Io) error maker for `map_err`.
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| DataDirError::Io {
            action,
            path,
            source,
        }
    }
}

fn owner(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

/// A node's opened data directory. Cheap to clone; the clones share one lock and store.
#[derive(Clone)]
pub struct DataDir {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    key: SecretKey,
    /// Dropped before the lock (fields drop in order), though groups may hold clones.
    store: tessera_storage::Store,
    /// What the peers file holds (as read at open or written last), so an unchanged
    /// table is not rewritten.
    peers: Mutex<Vec<PeerSpec>>,
    /// The free space under the directory, and its alarm.
    space: space::DiskSpace,
    /// The locked lock file; closing it releases the lock.
    _lock: File,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.inner.path)
            .field("peer", &self.peer_id())
            .finish()
    }
}

impl DataDir {
    /// Opens (creating when missing) the data directory at `path`: takes its lock, loads
    /// or creates the node key, opens the RocksDB store, reads the peers file.
    pub fn open(path: impl Into<PathBuf>) -> Result<DataDir, DataDirError> {
        DirLock::acquire(path)?.open()
    }

    pub(crate) fn from_parts(
        path: PathBuf,
        key: SecretKey,
        store: tessera_storage::Store,
        peers: Vec<PeerSpec>,
        lock: File,
    ) -> DataDir {
        DataDir {
            inner: Arc::new(Inner {
                space: space::DiskSpace::new(&path),
                path,
                key,
                store,
                peers: Mutex::new(peers),
                _lock: lock,
            }),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The node's id: the public half of the key kept here.
    pub fn peer_id(&self) -> PeerId {
        peer_id(&self.inner.key.public())
    }

    /// The node's secret key, for its endpoint.
    pub(crate) fn secret_key(&self) -> &SecretKey {
        &self.inner.key
    }

    /// The node's RocksDB store, shared by every durable group of the node.
    pub fn store(&self) -> &tessera_storage::Store {
        &self.inner.store
    }

    /// The free space under the directory and its alarm (see [`space`]).
    pub fn space(&self) -> &space::DiskSpace {
        &self.inner.space
    }

    /// The peers in the peers file (as read at open or written last).
    pub fn peers(&self) -> Vec<PeerSpec> {
        guard(&self.inner.peers).clone()
    }

    /// Replaces the peers file with `peers` when they differ from what it holds, so a
    /// restarted node finds its group without `--peer`. A failed write is logged and
    /// tried again on the next call: the file is a hint.
    pub fn save_peers(&self, mut peers: Vec<PeerSpec>) {
        peers.sort();
        let mut saved = guard(&self.inner.peers);
        if *saved == peers {
            return;
        }
        match peers_file::save(&self.inner.path, &peers) {
            Ok(()) => *saved = peers,
            Err(err) => {
                tracing::warn!(dir = %self.inner.path.display(), %err, "cannot save the peers file")
            }
        }
    }
}

/// Locks a mutex; a poisoned one is still usable (the list is replaced whole).
fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opening_is_refused_with_the_owner_pid_until_the_first_is_dropped() {
        let root = tempfile::tempdir().unwrap();
        let first = DataDir::open(root.path()).unwrap();
        let clone = first.clone();
        let err = DataDir::open(root.path()).unwrap_err();
        assert!(
            matches!(&err, DataDirError::InUse { pid: Some(pid), .. } if *pid == std::process::id()),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "in use by another tessera process (pid {})",
                std::process::id()
            )),
            "{text}"
        );
        drop(first);
        // A clone keeps the lock.
        assert!(matches!(
            DataDir::open(root.path()),
            Err(DataDirError::InUse { .. })
        ));
        let id = clone.peer_id();
        drop(clone);
        let again = DataDir::open(root.path()).unwrap();
        assert_eq!(again.peer_id(), id, "same key after reopening");
    }

    #[test]
    fn a_lock_dropped_before_opening_removes_the_directory_it_created() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("fresh");
        drop(DirLock::acquire(&fresh).unwrap());
        assert!(!fresh.exists(), "created directory removed");
        let existing = root.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        drop(DirLock::acquire(&existing).unwrap());
        assert!(existing.exists(), "an existing directory is kept");
        let opened = DirLock::acquire(&fresh).unwrap().open().unwrap();
        drop(opened);
        assert!(
            fresh.join(KEY_FILE_NAME).exists(),
            "an opened directory is kept"
        );
    }
}
