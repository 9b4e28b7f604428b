//! Restart recovery: what a group holds when it starts. The state machine gets the newest
//! local state back ([`StateSync::restore`]; blocking, since decoding a snapshot is the one
//! restart cost proportional to the state), the log is made to agree with it, and the
//! positions the core and the worker restart from are worked out. Only the log after the
//! restored state is replayed.
//!
//! Before anything reads it, that part of the log is verified ([`Storage::repair_from`]):
//! a damaged record (bad crc, undecodable payload, missing inside the bounds, or one a read
//! found damaged while the node last ran) is repaired by truncating the log there and
//! withholding this node's vote until its log reaches the old last index again; the
//! discarded entries come back from the leader (or a snapshot, if it pruned them).

use super::machine::{RestoreError, Restored, StateMachine, StateSync};
use super::raft::{LogReader, LogRepair, Membership, RaftError};
use super::{Cursor, Index, Storage, StorageError};
use crate::primitives::Short;
use crate::GroupId;

/// Why a group's local state could not be recovered. Nothing is deleted: a later start
/// sees the same state.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The sync implementation could not restore the machine's state.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// The log starts after the restored state: the entries between them are gone, so
    /// replaying the log would skip commands.
    #[error(
        "group {group}: the log is pruned to {log_start} beyond the newest snapshot at {anchor}"
    )]
    LogPrunedPastState {
        /// The group.
        group: GroupId,
        /// The first index the log holds.
        log_start: Index,
        /// The restored state's position.
        anchor: Cursor,
    },
    /// Reading or writing the log failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The log could not be read through the core's reader.
    #[error(transparent)]
    Raft(#[from] RaftError),
}

/// Where a group restarts from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The last index the machine holds (the restored state's, else 0).
    pub(crate) applied: Index,
    /// The restored state's index and the configuration in force there, for the core.
    pub(crate) base: Option<(Index, Membership)>,
    /// Local state found damaged, to fetch again from peers before anything is applied.
    pub(crate) repairing: Option<Cursor>,
    /// A damaged log record found and repaired by truncation.
    pub(crate) log_repair: Option<LogRepair>,
}

/// Restores `machine` through `sync` (already attached to its storage) and settles the
/// log `store` with it.
pub(crate) fn recover<M: StateMachine, S: Storage>(
    machine: &mut M,
    sync: &M::StateSync,
    store: &mut S,
    group: GroupId,
) -> Result<Recovered, RecoveryError> {
    let restored = sync.restore(machine, group)?;
    Ok(match restored {
        Restored::Nothing => Recovered {
            applied: Index(0),
            base: None,
            repairing: None,
            log_repair: repair_log(store, group, Index(0))?,
        },
        Restored::State { at, membership } => {
            let log_repair = repair_log(store, group, at.index())?;
            settle_log(store, group, at)?;
            Recovered {
                applied: at.index(),
                base: Some((at.index(), membership)),
                repairing: None,
                log_repair,
            }
        }
        Restored::Damaged { at, membership } => {
            let log_repair = repair_log(store, group, at.index())?;
            settle_log(store, group, at)?;
            Recovered {
                applied: at.index(),
                base: membership.map(|m| (at.index(), m)),
                repairing: Some(at),
                log_repair,
            }
        }
    })
}

/// Verifies the log from `from` (the restored state's anchor, whose term `settle_log`
/// reads; 0 when the whole log is replayed) and repairs the first damaged record by
/// truncation (see the module docs). Logs the repair as a warning naming the record.
fn repair_log<S: Storage>(
    store: &mut S,
    group: GroupId,
    from: Index,
) -> Result<Option<LogRepair>, RecoveryError> {
    let repair = store.repair_from(from)?;
    if let Some(r) = &repair {
        tracing::warn!(
            group = %Short(&group),
            index = r.index.0,
            withheld_until = r.withheld_until.0,
            damage = %r.what,
            "damaged log record: log truncated at {}, repairing from peers; votes withheld until the log reaches {} again",
            r.index,
            r.withheld_until,
        );
    }
    Ok(repair)
}

/// Makes the log agree with restored state at `anchor`. A snapshot's manifest is stored
/// before the log is reset to it (a state-sync install), so a crash between the two leaves
/// a log that does not hold the anchor: the install is finished here. The commit index is
/// raised to the anchor (it is committed state). Syncs only when it changed something.
fn settle_log<S: Storage>(
    store: &mut S,
    group: GroupId,
    anchor: Cursor,
) -> Result<(), RecoveryError> {
    let log_start = *store.available().start();
    if anchor.index() < log_start {
        return Err(RecoveryError::LogPrunedPastState {
            group,
            log_start,
            anchor,
        });
    }
    let mut changed = false;
    if LogReader::term_at(store, anchor.index())? != Some(anchor.term()) {
        tracing::info!(%anchor, "finishing an interrupted snapshot install: log reset to the anchor");
        store.reset_to(anchor)?;
        changed = true;
    }
    let mut hs = store.hard_state();
    if hs.commit < anchor.index() {
        hs.commit = anchor.index();
        store.set_hard_state(hs)?;
        changed = true;
    }
    if changed {
        store.sync()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::machine::NoOp;
    use crate::groups::raft::Payload;
    use crate::groups::{InMemoryLogStore, Term};

    fn group() -> GroupId {
        GroupId(crate::Digest::of(b"recovery"))
    }

    /// A synced log of `n` no-ops at term 1, commit 0.
    fn log(n: u64) -> InMemoryLogStore {
        let mut store = InMemoryLogStore::default();
        for _ in 0..n {
            store.append(Payload::Noop, Term(1)).unwrap();
        }
        store.sync().unwrap();
        store
    }

    #[test]
    fn nothing_restored_starts_from_the_beginning_and_leaves_the_log_alone() {
        let mut store = log(3);
        let sync = NoOp.state_sync();
        let got = recover(&mut NoOp, &sync, &mut store, group()).unwrap();
        assert_eq!(
            got,
            Recovered {
                applied: Index(0),
                base: None,
                repairing: None,
                log_repair: None,
            }
        );
        assert_eq!(Storage::last(&store), Cursor(Term(1), Index(3)));
        assert_eq!(Storage::hard_state(&store).commit, Index(0));
    }

    #[test]
    fn a_log_holding_the_anchor_keeps_its_entries_and_commits_up_to_it() {
        let mut store = log(5);
        settle_log(&mut store, group(), Cursor(Term(1), Index(3))).unwrap();
        assert_eq!(Storage::last(&store), Cursor(Term(1), Index(5)));
        assert_eq!(Storage::hard_state(&store).commit, Index(3));
        assert_eq!(Storage::durable(&store), Cursor(Term(1), Index(5)));
    }

    #[test]
    fn an_interrupted_install_is_finished_by_resetting_the_log_to_the_anchor() {
        // The snapshot at (2, 9) was stored but the crash came before the log was reset.
        let mut store = log(5);
        settle_log(&mut store, group(), Cursor(Term(2), Index(9))).unwrap();
        assert_eq!(Storage::last(&store), Cursor(Term(2), Index(9)));
        assert_eq!(*Storage::available(&store).start(), Index(9));
        assert_eq!(Storage::hard_state(&store).commit, Index(9));
        assert_eq!(Storage::durable(&store), Cursor(Term(2), Index(9)));
    }

    #[test]
    fn a_term_mismatch_at_the_anchor_resets_the_log_too() {
        let mut store = log(5);
        settle_log(&mut store, group(), Cursor(Term(3), Index(4))).unwrap();
        assert_eq!(Storage::last(&store), Cursor(Term(3), Index(4)));
    }

    #[test]
    fn a_log_pruned_past_the_anchor_is_refused_and_left_as_it_is() {
        let mut store = log(8);
        store.prune_prefix(Index(6)).unwrap();
        let err = settle_log(&mut store, group(), Cursor(Term(1), Index(4))).unwrap_err();
        assert!(
            matches!(
                err,
                RecoveryError::LogPrunedPastState {
                    log_start: Index(6),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(Storage::last(&store), Cursor(Term(1), Index(8)));
        assert_eq!(Storage::hard_state(&store).commit, Index(0));
    }
}
