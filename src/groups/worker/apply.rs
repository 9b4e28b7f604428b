//! The core's output, through the one Ready driver (`raft::ReadyDriver`, the same the
//! simulator runs): the worker is its `Effects` — messages go out on the group's bonds,
//! the sync is the log store's one blocking batch write and fsync, committed entries are
//! applied to the state machine in batches (cut at sync barriers, so the provider sees the
//! state at exactly a barrier's index), and outcomes answer the callers in the ledger.

use super::batches::{self, ApplyStep};
use super::{Worker, WorkerError};
use crate::groups::machine::{ApplyContext, StateMachine, StateSync, StateSyncProvider};
use crate::groups::raft::{
    CatchUp, Effects, Entry, LogReader, Message, Node, ProposalOutcome, ReadOutcome, SyncReport,
    TransferOutcome,
};
use crate::groups::sync_context::Side;
use crate::groups::{Cursor, Index, Storage, StorageError, Term};
use crate::{GroupId, PeerId, UniqueId};

/// What the machine learns of the batch it applies.
struct Apply {
    committed: Cursor,
    indices: Vec<Index>,
    term: Term,
    group: GroupId,
    network: UniqueId,
    me: PeerId,
}

impl ApplyContext for Apply {
    fn committed(&self) -> Cursor {
        self.committed
    }
    fn current_term(&self) -> Term {
        self.term
    }
    fn group_id(&self) -> GroupId {
        self.group
    }
    fn network_id(&self) -> UniqueId {
        self.network
    }
    fn local_id(&self) -> PeerId {
        self.me
    }
    fn indices(&self) -> &[Index] {
        &self.indices
    }
}

impl<M: StateMachine, S: Storage> Effects for Worker<M, S> {
    type Store = S;
    type Error = WorkerError;

    fn core(&mut self) -> (&mut Node, &mut S) {
        (&mut self.node, &mut self.store)
    }

    fn send(&mut self, to: PeerId, message: Message, _after_sync: bool) {
        match &message {
            Message::AppendEntries(append) => self.trace.append_sent(append),
            Message::AppendEntriesResponse(response) => {
                self.trace.append_answered(response, &self.metrics)
            }
            _ => {}
        }
        self.bonds.send_raft(to, message);
    }

    fn sync(&mut self) -> Result<Option<SyncReport>, WorkerError> {
        let started = std::time::Instant::now();
        if !self.async_sync {
            let report = self.store.sync()?;
            self.metrics.synced(started.elapsed());
            return Ok(Some(report));
        }
        // The node's groups share one fsync per round on the store's syncer thread; this
        // worker goes on taking inputs meanwhile and drives the core again once its batch
        // is durable (`on_synced`).
        match self.store.begin_sync(self.sync_done_callback())? {
            Some(report) => {
                self.metrics.synced(started.elapsed());
                Ok(Some(report))
            }
            None => {
                self.sync_in_flight = Some(started);
                Ok(None)
            }
        }
    }

    fn apply(&mut self, committed: Vec<Entry>) -> Result<(), WorkerError> {
        self.apply_entries(committed)
    }

    fn resolve(
        &mut self,
        outcomes: Vec<ProposalOutcome>,
        reads: Vec<ReadOutcome>,
    ) -> Result<(), WorkerError> {
        if !outcomes.is_empty() {
            // A caller woken by its reply must see a status (commit, applied) that
            // includes its entry.
            self.publish();
        }
        for outcome in outcomes {
            match &outcome.result {
                Ok(_) => self.metrics.proposals_committed.inc(),
                Err(_) => self.metrics.proposals_failed.inc(),
            };
            self.ledger
                .resolve_proposal(outcome.id, outcome.result.map(|c| c.index()));
        }
        for read in reads {
            if let Some((query, reply)) =
                self.ledger
                    .resolve_read(read.ctx, read.result, self.applied)
            {
                let result = self.machine.query(query);
                let _ = reply.send(Ok((result, self.applied)));
            }
        }
        self.trace.answered(self.applied, &self.metrics);
        Ok(())
    }

    fn catch_up(&mut self, catch_up: CatchUp) -> Result<(), WorkerError> {
        // A catch-up writes a snapshot or entries: not while the disk is low (the leader
        // asks again; see `disk.rs`). One already running goes on.
        if self.node.low_space() && self.session.is_none() {
            tracing::debug!(group = %crate::primitives::Short(&self.group), "disk space low: catch-up deferred");
            return Ok(());
        }
        self.start_session(catch_up)
    }

    fn transfer_ended(&mut self, outcome: TransferOutcome) -> Result<(), WorkerError> {
        Worker::transfer_ended(self, outcome);
        Ok(())
    }
}

impl<M: StateMachine, S: Storage> Worker<M, S> {
    /// Drains the core's `Ready`s through the one driver, then answers the membership
    /// changes the commit passed.
    pub(super) fn drive(&mut self) -> Result<(), WorkerError> {
        if self.sync_in_flight.is_some() {
            // Everything the core produces meanwhile waits in it and goes into the next
            // batch once this one is durable (the driver's waiting messages must only be
            // released by a sync covering everything staged before).
            return Ok(());
        }
        let mut driver = std::mem::take(&mut self.driver);
        let driven = driver.drive(self);
        self.driver = driver;
        driven?;
        if self.node.is_leader() {
            self.trace.durable(self.node.durable().index());
        } else {
            self.trace.abandon();
        }
        let store = &self.store;
        self.ledger
            .resolve_changes(self.node.commit_index(), |index| {
                LogReader::term_at(store, index)
            })?;
        Ok(())
    }

    /// Tells this worker (through its sync channel) that a batch it handed over ended.
    fn sync_done_callback(&self) -> crate::groups::raft::SyncDone {
        let tx = self.sync_done_tx.clone();
        Box::new(move |generation, result| {
            // The worker may have stopped; then nobody waits for the answer.
            let _ = tx.send((generation, result));
        })
    }

    /// The batch `generation` ended: once durable, the driver sends what waited for it and
    /// the core hears it; anything staged after it goes out in a new batch first.
    pub(super) fn on_synced(
        &mut self,
        generation: u64,
        result: Result<(), StorageError>,
    ) -> Result<(), WorkerError> {
        result?;
        self.store.finish_sync(generation)?;
        if let Some(started) = self.sync_in_flight.take() {
            self.metrics.synced(started.elapsed());
        }
        let started = std::time::Instant::now();
        let synced = match self.store.begin_sync(self.sync_done_callback())? {
            Some(report) => {
                let mut driver = std::mem::take(&mut self.driver);
                let synced = driver.synced(&report, self);
                self.driver = driver;
                synced
            }
            None => {
                self.sync_in_flight = Some(started);
                Ok(())
            }
        };
        self.trace.durable(self.node.durable().index());
        synced
    }

    /// Applies committed entries: commands in batches cut at sync barriers, configurations
    /// recorded; then serves the strong queries the new applied index reached.
    pub(super) fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), WorkerError> {
        let Some(last) = entries.last().map(Entry::cursor) else {
            return Ok(());
        };
        self.trace.committed(last.index());
        if self.restoring.is_some() {
            // The machine is empty until the damaged snapshot is repaired.
            self.stash_to = Some(last.index());
            return Ok(());
        }
        let sync = &self.sync;
        let (steps, rest) = batches::plan::<M::Command>(entries, |c| sync.is_barrier(c));
        for step in steps {
            match step {
                ApplyStep::Config(membership) => self.applied_membership = membership,
                ApplyStep::Batch {
                    commands,
                    indices,
                    end,
                    barrier,
                    bytes,
                } => {
                    self.applied_bytes += bytes;
                    self.apply_commands(commands, indices, end);
                    if barrier {
                        // The machine holds the state at exactly the barrier's index.
                        self.with_sync(Side::Provider, None, |p, cx| {
                            p.provider.barrier_applied(end, cx)
                        })?;
                    }
                }
            }
        }
        self.applied_bytes += rest;
        self.applied = last.index();
        self.node.on_applied(last.index());
        for (query, reply) in self.ledger.reads_ready(self.applied) {
            let result = self.machine.query(query);
            let _ = reply.send(Ok((result, self.applied)));
        }
        self.with_sync(Side::Provider, None, |p, cx| p.provider.committed(last, cx))
    }

    /// Applies one batch of decoded commands (at `indices`) ending at `end`.
    fn apply_commands(&mut self, commands: Vec<M::Command>, indices: Vec<Index>, end: Cursor) {
        if commands.is_empty() {
            return;
        }
        let ctx = Apply {
            committed: end,
            indices,
            term: self.node.term(),
            group: self.group,
            network: self.network_id,
            me: self.me,
        };
        let started = std::time::Instant::now();
        self.machine.apply_batch(commands, &ctx);
        self.metrics
            .apply_seconds
            .observe(started.elapsed().as_secs_f64());
        self.applied = end.index();
    }
}
