//! `KvMachine`: the config store's replicated state — keys with per-key revisions, and
//! the recent history of changes that watches stream.
//!
//! Deterministic (ordered maps, revisions are log indices), so every member holds the
//! same state at the same index. The state is made of `im` structures whose clone is
//! O(1), which gives two things: a snapshot is a frozen clone, cut in the background
//! while apply goes on, and after every applied batch the machine publishes a clone on a
//! `watch` channel, so reads, blocking reads and watches are served from it without going
//! through the group's worker ([`KvMachine::subscribe`]).
//!
//! - [`model`]: keys, entries, the state and its reads (a key, a page of a prefix).
//! - [`command`]: the log's commands, transactions and their bounds.
//! - [`apply`]: the transition, and a transaction's outcome.
//! - [`history`]: the retained changes and their retention.
//! - [`snapshot`]: snapshot items and format.
//! - [`outcomes`]: outcomes handed back to the proposing node.

pub mod apply;
pub mod command;
pub mod history;
pub mod model;
pub mod outcomes;
pub mod snapshot;

pub use apply::{OpResult, TxnOutcome};
pub use command::{CmpOp, Compare, KvCommand, KvQuery, KvResult, Op, Target, Ticket, Txn};
pub use history::{Event, EventKind, History, Retention};
pub use model::{Key, KeyEntry, KeyRecord, KvState, Page, RangeRequest, Value};
pub use outcomes::Outcomes;
pub use snapshot::{KvItem, KvSnapshot};

use crate::groups::machine::{ApplyContext, StateMachine};
use crate::groups::snapshot::{SnapshotConfig, SnapshotStateMachine, SnapshotStats, SnapshotSync};
use crate::primitives::Digest;
use crate::UniqueId;
use std::sync::Arc;
use tokio::sync::watch;

/// Applies a batch of committed commands the way every member does: each at its log
/// index (`ctx.indices()`, or the batch's last index when the caller does not tell),
/// then prunes the history once. Outcomes go to `outcomes` when given (this node's
/// registrations). Public so that a machine with another state sync can keep the same
/// semantics.
pub fn apply_batch(
    state: &mut KvState,
    commands: impl IntoIterator<Item = KvCommand>,
    ctx: &dyn ApplyContext,
    retention: &Retention,
    outcomes: Option<&Outcomes>,
) {
    let indices = ctx.indices();
    let last = ctx.committed().index().0;
    let local = ctx.local_id();
    for (i, command) in commands.into_iter().enumerate() {
        let index = indices.get(i).map_or(last, |x| x.0);
        let reads = match (&command, outcomes) {
            (
                KvCommand::Txn {
                    ticket: Some(t), ..
                },
                Some(o),
            ) => o.is_waiting(t, local),
            _ => false,
        };
        if let Some((ticket, outcome)) = state.apply(command, index, reads) {
            if let Some(o) = outcomes.filter(|_| ticket.origin == local) {
                o.resolve(ticket, outcome);
            }
        }
    }
    state.history.prune(retention);
}

/// Answers a query from the state.
pub fn answer(state: &KvState, query: KvQuery) -> KvResult {
    match query {
        KvQuery::Get { key } => {
            KvResult::Value(state.get(&key).map(|e| e.value.as_bytes().to_vec()))
        }
        KvQuery::Len => KvResult::Len(state.keys.len() as u64),
        KvQuery::Revision => KvResult::Revision(state.revision),
    }
}

/// The replicated store.
pub struct KvMachine {
    state: KvState,
    retention: Retention,
    signature: UniqueId,
    latest: watch::Sender<Arc<KvState>>,
    outcomes: Outcomes,
    sync: SnapshotSync<KvMachine>,
}

impl Default for KvMachine {
    fn default() -> Self {
        KvMachine::new(SnapshotConfig::default())
    }
}

impl KvMachine {
    /// A machine whose snapshots follow `config`, with the default history retention.
    pub fn new(config: SnapshotConfig) -> Self {
        Self::with_retention(config, Retention::default())
    }

    /// A machine keeping `retention` of history (part of the signature: every member must
    /// use the same).
    pub fn with_retention(config: SnapshotConfig, retention: Retention) -> Self {
        let signature = Digest::from_parts(&[
            b"tessera/kv-machine/v3".as_slice(),
            &snapshot::FORMAT.to_le_bytes(),
            &retention.events.to_le_bytes(),
            &retention.bytes.to_le_bytes(),
        ]);
        KvMachine {
            state: KvState::default(),
            retention,
            signature,
            latest: watch::Sender::new(Arc::new(KvState::default())),
            outcomes: Outcomes::default(),
            sync: SnapshotSync::new(config, KvCommand::TakeSnapshot, |c| {
                matches!(c, KvCommand::TakeSnapshot(_))
            }),
        }
    }

    /// Receives the state after every applied batch (and after a snapshot is installed).
    /// The state published when a group call returns includes what that call applied:
    /// the machine publishes before the worker answers.
    pub fn subscribe(&self) -> watch::Receiver<Arc<KvState>> {
        self.latest.subscribe()
    }

    /// This node's registrations of transaction outcomes.
    pub fn outcomes(&self) -> Outcomes {
        self.outcomes.clone()
    }

    /// The history retention.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Snapshot counters and the transfer in progress on this node.
    pub fn snapshot_stats(&self) -> Arc<SnapshotStats> {
        self.sync.stats()
    }

    fn publish(&self) {
        self.latest.send_replace(Arc::new(self.state.clone()));
    }
}

impl StateMachine for KvMachine {
    type Command = KvCommand;
    type Query = KvQuery;
    type QueryResult = KvResult;
    type StateSync = SnapshotSync<KvMachine>;

    fn signature(&self) -> UniqueId {
        self.signature
    }

    /// One command at the context's committed index (the worker calls `apply_batch`).
    fn apply(&mut self, command: KvCommand, ctx: &dyn ApplyContext) {
        let index = ctx.committed().index().0;
        let local = ctx.local_id();
        let reads = matches!(&command, KvCommand::Txn { ticket: Some(t), .. }
            if self.outcomes.is_waiting(t, local));
        if let Some((ticket, outcome)) = self.state.apply(command, index, reads) {
            if ticket.origin == local {
                self.outcomes.resolve(ticket, outcome);
            }
        }
        self.state.history.prune(&self.retention);
        self.publish();
    }

    fn apply_batch(
        &mut self,
        commands: impl IntoIterator<Item = KvCommand>,
        ctx: &dyn ApplyContext,
    ) {
        apply_batch(
            &mut self.state,
            commands,
            ctx,
            &self.retention,
            Some(&self.outcomes),
        );
        self.publish();
    }

    fn query(&self, query: KvQuery) -> KvResult {
        answer(&self.state, query)
    }

    fn state_sync(&self) -> SnapshotSync<KvMachine> {
        self.sync.clone()
    }
}

impl SnapshotStateMachine for KvMachine {
    type Snapshot = KvSnapshot;

    fn create_snapshot(&self) -> KvSnapshot {
        KvSnapshot::new(self.state.clone())
    }

    fn install_snapshot(&mut self, snapshot: KvSnapshot) {
        self.state = snapshot.state;
        self.publish();
    }
}
