//! The simulator's side of the one Ready driver: every node is driven by the same
//! [`ReadyDriver`] the `tessera` worker runs, and the simulator's [`Effects`] are where the
//! checkers look (log matching as a `Ready` is staged; state machine, at-most-once,
//! durability and read checks as entries are applied and outcomes resolved; election
//! safety and leader completeness after each `Ready`). A slow disk answers a sync later
//! (a `SyncDone` event), which the driver supports as a deferred sync.

use super::{digest, EventKind, World};
use crate::{
    CatchUp, ClientError, Effects, Entry, InMemoryLogStore, Index, Message, Node, Payload, PeerId,
    ProposalOutcome, RaftError, ReadOutcome, Ready, Storage, StorageError, SyncReport,
    TransferOutcome, Vote,
};
use rand::Rng;

/// A failed step or check; `traced` once the world's trace was attached.
#[derive(Debug)]
pub(super) struct SimError {
    text: String,
    traced: bool,
}

impl From<RaftError> for SimError {
    fn from(e: RaftError) -> Self {
        Self {
            text: format!("core: {e}"),
            traced: false,
        }
    }
}

impl From<StorageError> for SimError {
    fn from(e: StorageError) -> Self {
        Self {
            text: format!("store: {e}"),
            traced: false,
        }
    }
}

/// One node's effects on the world, for one driving turn.
struct SimEffects<'w> {
    world: &'w mut World,
    i: usize,
    /// The node and its store, out of the world for the turn.
    node: Node,
    store: InMemoryLogStore,
    /// Catch-ups asked for, started once the node is back in the world.
    catch_ups: Vec<CatchUp>,
    /// A granted vote left after its sync (a targeted crash point).
    voted: bool,
}

impl SimEffects<'_> {
    fn check(&self, result: Result<(), String>) -> Result<(), SimError> {
        result.map_err(|what| SimError {
            text: self.world.fail(what),
            traced: true,
        })
    }
}

impl Effects for SimEffects<'_> {
    type Store = InMemoryLogStore;
    type Error = SimError;

    fn core(&mut self) -> (&mut Node, &mut InMemoryLogStore) {
        (&mut self.node, &mut self.store)
    }

    /// Log matching: every written entry with the term of the entry before it.
    fn staging(&mut self, ready: &Ready) -> Result<(), SimError> {
        let mut prev_term = match ready.entries().first() {
            Some(first) => self
                .store
                .term_at(first.index.prev())
                .ok()
                .flatten()
                .map_or(0, |t| t.0),
            None => 0,
        };
        for e in ready.entries() {
            let result = self.world.checks.matching.written(
                self.i,
                e.index.0,
                e.term.0,
                digest(&e.payload),
                prev_term,
            );
            self.check(result)?;
            prev_term = e.term.0;
        }
        Ok(())
    }

    fn send(&mut self, to: PeerId, message: Message, after_sync: bool) {
        if after_sync {
            if let Message::RequestVoteResponse(r) = &message {
                self.voted |= r.vote == Vote::Granted;
            }
        }
        self.world.send(self.i, to, message);
    }

    /// A slow disk answers later, with a `SyncDone` event; a crash in between loses what
    /// was staged.
    fn sync(&mut self) -> Result<Option<SyncReport>, SimError> {
        let slow = self.world.nodes[self.i].slow_disk;
        if slow == 0 {
            return Ok(Some(self.store.sync()?));
        }
        let epoch = self.world.nodes[self.i].epoch;
        let at = self.world.now + self.world.rng.random_range(1..=slow);
        self.world.schedule(
            at,
            EventKind::SyncDone {
                node: self.i,
                epoch,
            },
        );
        Ok(None)
    }

    fn apply(&mut self, committed: Vec<Entry>) -> Result<(), SimError> {
        let i = self.i;
        for e in committed {
            let previous = self.world.nodes[i].applied;
            let result = self.world.checks.machine.apply(
                i,
                previous,
                e.index.0,
                e.term.0,
                digest(&e.payload),
            );
            self.check(result)?;
            let committed_by = self
                .world
                .checks
                .election
                .max_term()
                .max(self.node.term().0);
            self.world
                .checks
                .completeness
                .applied(e.index.0, committed_by);
            if let Payload::Command(bytes) = &e.payload {
                if let Ok(id) = <[u8; 8]>::try_from(bytes.as_slice()) {
                    let result =
                        self.world
                            .checks
                            .once
                            .applied(i, e.index.0, u64::from_le_bytes(id));
                    self.check(result)?;
                }
            }
            self.world.nodes[i].applied = e.index.0;
            self.node.on_applied(e.index);
        }
        Ok(())
    }

    /// Outcomes and reads, then the checks that follow every `Ready`.
    fn resolve(
        &mut self,
        outcomes: Vec<ProposalOutcome>,
        reads: Vec<ReadOutcome>,
    ) -> Result<(), SimError> {
        let i = self.i;
        for o in outcomes {
            let world = &mut *self.world;
            let command = world.nodes[i].proposals.remove(&o.id.0);
            if let (Err(ClientError::TransferInProgress { .. }), Some(command)) =
                (&o.result, command)
            {
                let result = world.checks.once.refused(i, command);
                self.check(result)?;
                continue;
            }
            if let (Ok(at), Some(command)) = (o.result, command) {
                if world.markers.contains(&o.id.0) {
                    world.marker_ok = true;
                }
                let applied = &world.checks.machine.applied;
                let result = world.checks.durability.acknowledged(
                    i,
                    at.index().0,
                    at.term().0,
                    command,
                    applied,
                );
                self.check(result)?;
            }
        }
        let world = &mut *self.world;
        for r in reads {
            match r.result {
                Ok(index) => world.nodes[i].reads_waiting.push((r.ctx, index.0)),
                Err(_) => world.checks.reads.abandoned(i, r.ctx),
            }
        }
        let applied = world.nodes[i].applied;
        let mut served = Vec::new();
        world.nodes[i].reads_waiting.retain(|&(ctx, index)| {
            if index <= applied {
                served.push((ctx, index));
                false
            } else {
                true
            }
        });
        for (ctx, index) in served {
            let result = self.world.checks.reads.served(i, ctx, index, applied);
            self.check(result)?;
        }
        self.after_ready()
    }

    fn catch_up(&mut self, catch_up: CatchUp) -> Result<(), SimError> {
        self.catch_ups.push(catch_up);
        Ok(())
    }

    fn transfer_ended(&mut self, outcome: TransferOutcome) -> Result<(), SimError> {
        self.world.transfer_ended(self.i, outcome);
        Ok(())
    }
}

impl SimEffects<'_> {
    /// Election safety and leader completeness; a targeted crash after a commit.
    fn after_ready(&mut self) -> Result<(), SimError> {
        let i = self.i;
        let world = &mut *self.world;
        let node = &self.node;
        let (is_leader, term, commit) = (node.is_leader(), node.term().0, node.commit_index().0);
        world.max_commit_known = world.max_commit_known.max(commit);
        let advanced = commit > world.nodes[i].last_commit;
        world.nodes[i].last_commit = commit;
        if is_leader
            && advanced
            && world.faults_on
            && world.rng.random_bool(world.sc.crash_after_commit)
        {
            world.pending_crash.push(i);
        }
        if !is_leader {
            return Ok(());
        }
        let new = world.checks.election.leader(term, i);
        let new = match new {
            Ok(new) => new,
            Err(e) => return self.check(Err(e)),
        };
        if new {
            let world = &mut *self.world;
            let store = &self.store;
            world.note(format!("node {i} leads term {term}"));
            let result =
                world
                    .checks
                    .completeness
                    .new_leader(i, term, &world.checks.machine.applied, |x| {
                        store.term_at(Index(x)).ok().flatten().map(|t| t.0)
                    });
            self.check(result)?;
        }
        Ok(())
    }
}

/// What a driving turn does once its `ReadyDriver` call returned.
enum Turn {
    /// Drive the node's `Ready`s.
    Drive,
    /// The slow disk's sync came back: make it durable, report it, then drive.
    SyncDone,
}

impl World {
    /// Drives node `i` through the one Ready driver until it has nothing more.
    pub(super) fn drive(&mut self, i: usize) -> Result<(), String> {
        self.turn(i, Turn::Drive)
    }

    /// The slow disk of node `i` finished its sync.
    pub(super) fn sync_done(&mut self, i: usize) -> Result<(), String> {
        self.turn(i, Turn::SyncDone)
    }

    fn turn(&mut self, i: usize, turn: Turn) -> Result<(), String> {
        // Most deliveries leave nothing to drive: skip moving the node out and back.
        if let Turn::Drive = turn {
            if !self.nodes[i].node.as_ref().is_some_and(Node::has_ready) {
                return Ok(());
            }
        }
        // The node, its store and its driver leave the world for the turn, so the effects
        // may borrow the rest of it.
        let Some(node) = self.nodes[i].node.take() else {
            return Ok(());
        };
        let store = std::mem::take(&mut self.nodes[i].store);
        let mut driver = std::mem::take(&mut self.nodes[i].driver);
        let mut effects = SimEffects {
            world: self,
            i,
            node,
            store,
            catch_ups: Vec::new(),
            voted: false,
        };
        let result = (|| {
            if let Turn::SyncDone = turn {
                let report = effects.store.sync()?;
                driver.synced(&report, &mut effects)?;
            }
            driver.drive(&mut effects)
        })();
        let SimEffects {
            node,
            store,
            catch_ups,
            voted,
            ..
        } = effects;
        let sn = &mut self.nodes[i];
        sn.node = Some(node);
        sn.store = store;
        sn.driver = driver;
        if let Err(e) = result {
            return Err(if e.traced {
                e.text
            } else {
                self.fail(format!("node {i}: {}", e.text))
            });
        }
        if voted && self.faults_on && self.rng.random_bool(self.sc.crash_after_vote) {
            self.pending_crash.push(i);
        }
        for catch_up in catch_ups {
            self.start_session(i, catch_up)?;
        }
        // As the worker does: commit notices go a moment after the turn unless an append
        // carried the commit index meanwhile.
        let sn = &mut self.nodes[i];
        if !sn.notices_due && sn.node.as_ref().is_some_and(Node::commit_notices_pending) {
            sn.notices_due = true;
            let epoch = sn.epoch;
            self.schedule(self.now + 1, EventKind::CommitNotices { node: i, epoch });
        }
        Ok(())
    }
}
