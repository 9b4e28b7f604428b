//! Starting a group from something other than its own quorum: a survivor's data forced into
//! a one-member group (`tessera node --force-new-cluster`, etcd's flag of the same name),
//! or a backup imported into an empty data directory (`tessera snapshot restore`).
//!
//! Both end the same way: a configuration entry naming this node as the only voter,
//! appended after everything the node holds and committed with it. The cluster id stays
//! the one in force (as etcd's cluster id does): the snapshots the node holds and serves
//! name it in their headers, so a member that joins from one of them agrees with the new
//! configuration that follows. The old members must therefore never be started again
//! (the README's procedure says so): their data would still look like this cluster's. Everything in the node's log counts as committed then, as in etcd: an entry
//! beyond the old commit index was never acknowledged to a client as committed, so keeping
//! it breaks no promise, and dropping it would lose writes the old group may have
//! committed without this node hearing of it. The other members are then added as usual
//! (fresh nodes given `--peer`, or `tessera member add`), and take the state by catch-up.
//!
//! These run before the consensus core is built, on the log store directly: the core's
//! own code path (restart, membership scan, election of a lone voter) does the rest.

use super::raft::{ClusterId, HardState, Membership, Payload};
use super::snapshot::backup::{BackupError, BackupFile};
use super::snapshot::image::snapshot_key;
use super::snapshot::RocksChunkStore;
use super::{Cursor, Index, LocalStorage, Storage, StorageError, Term};
use crate::primitives::Short;
use crate::{GroupId, PeerId};
use std::path::{Path, PathBuf};
use tessera_snapshots::ChunkStore;

/// How a group starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// From its own log and snapshots (every start but the two below).
    #[default]
    Log,
    /// From its own data, as the only voter of a new cluster.
    ForceNewCluster,
    /// From the backup at this path, imported into an empty group, as the only voter of
    /// a new cluster.
    Backup(PathBuf),
}

/// Why a group could not start as asked.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// `--force-new-cluster` on a node that holds nothing of the group.
    #[error("group {group}: this node holds no state of the group to force into a new cluster (its log is empty)")]
    NothingToForce {
        /// The group.
        group: GroupId,
    },
    /// The backup was taken from another group than the one this node's settings make.
    #[error(
        "{path}: the backup is of group {backup}, but this node's settings make group {group}: \
         start it with the group key, timing and snapshot flags of the cluster the backup was taken from"
    )]
    OtherGroup {
        /// The backup file.
        path: PathBuf,
        /// The group the backup names (hex prefix).
        backup: String,
        /// The group this node joins.
        group: GroupId,
    },
    /// A backup restored into a group that already holds state.
    #[error("group {group}: {path} is a backup to restore, but the group already holds state here (log up to {last}); restore into an empty data directory")]
    NotEmpty {
        /// The backup file.
        path: PathBuf,
        /// The group.
        group: GroupId,
        /// What the log holds.
        last: Cursor,
    },
    /// A group without a data directory has nowhere to import a backup into.
    #[error("group {group}: a backup can only be restored into a node with a data directory")]
    NoDataDirectory {
        /// The group.
        group: GroupId,
    },
    /// The backup could not be read or failed its checks.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The log store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Makes `me` the only voter of `cluster` (the one in force: see the module docs) holding
/// everything in `store`; returns the index of the configuration entry written. Synced
/// before it returns. `start` says why, for the log line.
pub(crate) fn force_new_cluster<S: Storage>(
    store: &mut S,
    group: GroupId,
    me: PeerId,
    cluster: ClusterId,
    start: &StartFrom,
) -> Result<Index, RestoreError> {
    let last = store.last();
    if last.is_zero() {
        return Err(RestoreError::NothingToForce { group });
    }
    let hard = store.hard_state();
    let term = Term(hard.term.0.max(last.term().0) + 1);
    let membership = Membership::founding([me], cluster);
    let at = store.append(Payload::Config(membership), term)?;
    store.set_hard_state(HardState {
        term,
        vote: None,
        commit: at,
    })?;
    store.sync()?;
    if let StartFrom::Backup(_) = start {
        // A backup just imported: nothing of a live quorum is overruled here.
        tracing::info!(
            group = %Short(&group),
            config_index = at.0,
            "restored: this node is the only voter of the group holding the backup; add the other members"
        );
    } else {
        tracing::warn!(
            group = %Short(&group),
            previous_commit = hard.commit.0,
            log_end = last.index().0,
            config_index = at.0,
            %cluster,
            "FORCED A NEW CLUSTER: this node is the only voter; every entry it held is committed. Add the other members anew; never start the old members' data directories again"
        );
    }
    Ok(at)
}

/// Imports the backup at `path` into the empty `group`: its chunks stored as a complete
/// snapshot, the log reset to its anchor, committed up to it; synced. The caller then
/// forces the new cluster and deletes the file ([`remove`]). A start after a crash before
/// the deletion finds the snapshot imported (same manifest) and skips the import.
pub(crate) fn import_backup<S: Storage>(
    path: &Path,
    local: &LocalStorage,
    store: &mut S,
    group: GroupId,
) -> Result<(), RestoreError> {
    let backup = BackupFile::open(path)?;
    let anchor = backup.manifest.anchor();
    let key = snapshot_key(group, anchor.index);
    let Some(rocks) = local.store() else {
        return Err(RestoreError::NoDataDirectory { group });
    };
    let mut chunks = RocksChunkStore::new(rocks.clone());
    let last = store.last();
    if !last.is_zero() {
        let imported = chunks
            .load_manifest(key)
            .ok()
            .flatten()
            .is_some_and(|m| m.fingerprint() == backup.manifest.fingerprint());
        if imported && last.index().0 >= anchor.index {
            return Ok(());
        }
        return Err(RestoreError::NotEmpty {
            path: path.to_path_buf(),
            group,
            last,
        });
    }
    if backup.manifest.key() != key {
        let named = backup.manifest.group().0;
        return Err(RestoreError::OtherGroup {
            path: path.to_path_buf(),
            backup: named[..8].iter().map(|b| format!("{b:02x}")).collect(),
            group,
        });
    }
    backup.copy_into(&mut chunks, key)?;
    let at = Cursor(Term(anchor.term), Index(anchor.index));
    store.reset_to(at)?;
    store.set_hard_state(HardState {
        term: at.term(),
        vote: None,
        commit: at.index(),
    })?;
    store.sync()?;
    tracing::info!(
        group = %Short(&group),
        anchor = %at,
        chunks = backup.manifest.chunk_count(),
        bytes = backup.size,
        "imported the backup {}",
        path.display()
    );
    Ok(())
}

/// Deletes an imported backup (logged when it cannot be: the next start finds it imported).
pub(crate) fn remove(path: &Path) {
    if let Err(err) = std::fs::remove_file(path) {
        tracing::warn!(%err, "the restored backup {} could not be deleted; it is not imported again", path.display());
    }
}
