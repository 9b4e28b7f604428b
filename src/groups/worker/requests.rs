//! Client calls into the worker (execute, feed, query, membership change, roster, shutdown),
//! recorded in the ledger and handed to the core, and the status the worker publishes.

use super::ledger::ChangeReply;
use super::{Worker, WorkerError};
use crate::groups::group::Request;
use crate::groups::machine::{Consistency, StateMachine};
use crate::groups::raft::{ClientError, MembershipChange};
use crate::groups::Storage;

impl<M: StateMachine, S: Storage> Worker<M, S> {
    pub(super) fn on_request(&mut self, request: Request<M>) -> Result<(), WorkerError> {
        match request {
            Request::Execute {
                commands,
                at,
                reply,
            } => {
                let received = std::time::Instant::now();
                let ids = self.ledger.execute(commands.len(), reply);
                for (id, command) in ids.into_iter().zip(commands) {
                    self.node.propose(id, command, &self.store)?;
                }
                if self.node.is_leader() {
                    self.trace.proposed(self.node.last().index(), at, received);
                }
            }
            Request::Feed { commands } => {
                for command in commands {
                    let id = self.ledger.feed();
                    self.node.propose(id, command, &self.store)?;
                }
            }
            Request::Query {
                query,
                consistency,
                reply,
            } => match consistency {
                Consistency::Weak => {
                    let result = self.machine.query(query);
                    let _ = reply.send(Ok((result, self.applied)));
                }
                Consistency::Strong => {
                    let ctx = self.ledger.read(query, reply);
                    self.node.read_index(ctx, &self.store)?;
                }
            },
            Request::Change { change, reply } => self.propose_change(change, reply)?,
            Request::Transfer { target, reply } => self.start_transfer(target, reply)?,
            Request::Roster { reply } => {
                let _ = reply.send(Ok(self.roster()));
            }
            Request::Shutdown { done } => self.shutdown = Some(done),
        }
        Ok(())
    }

    fn propose_change(
        &mut self,
        change: MembershipChange,
        reply: ChangeReply,
    ) -> Result<(), WorkerError> {
        if !self.node.is_leader() {
            let _ = reply.send(Err(ClientError::NotLeader {
                leader: self.node.leader(),
            }
            .into()));
            return Ok(());
        }
        match self.node.propose_membership(change, &self.store)? {
            Ok(at) => {
                // Removal sticks (see `maybe_add_members`); an explicit add lifts it.
                match change {
                    MembershipChange::Remove(peer) => {
                        if let Some(hello) = self.bonds.get(&peer).and_then(|b| b.hello.as_ref()) {
                            self.removed.insert(peer, hello.nonce);
                        }
                    }
                    MembershipChange::AddLearner { peer, .. } => {
                        self.removed.remove(&peer);
                    }
                    MembershipChange::Promote(_) => {}
                }
                self.ledger.change(at, reply)
            }
            Err(err) => {
                let _ = reply.send(Err(err.into()));
            }
        }
        Ok(())
    }

    /// Publishes the group's status when it changed. Called every turn: the status is
    /// compared field by field in place, so a turn that changed only the commit and
    /// applied indices (most turns under load) allocates nothing; the membership, bonded
    /// peers and conflicts are copied only when they differ.
    pub(super) fn publish(&mut self) {
        self.metrics
            .proposals_pending
            .set(self.node.pending_proposals() as i64);
        let node = &self.node;
        let bonds = &self.bonds;
        let conflicts = &self.conflicts;
        let metrics = &self.metrics;
        let (me, group) = (self.me, self.group);
        let applied = self.applied;
        let log_start = self.store.available().start().next();
        let syncing = self.session.is_some();
        self.status.send_if_modified(|s| {
            let leader = node.leader();
            if s.leader != leader && leader.is_some() {
                metrics.leader_changes.inc();
            }
            if node.is_quiesced() && !s.quiesced {
                metrics.quiesces.inc();
            }
            let mut changed = false;
            set(&mut s.id, me, &mut changed);
            set(&mut s.group, group, &mut changed);
            set(&mut s.role, node.role(), &mut changed);
            set(&mut s.term, node.term(), &mut changed);
            set(&mut s.leader, leader, &mut changed);
            set(&mut s.commit, node.commit_index(), &mut changed);
            set(&mut s.applied, applied, &mut changed);
            set(&mut s.log_start, log_start, &mut changed);
            set(&mut s.last, node.last(), &mut changed);
            set(&mut s.durable, node.durable(), &mut changed);
            set(&mut s.online, leader.is_some() && !syncing, &mut changed);
            set(&mut s.syncing, syncing, &mut changed);
            set(&mut s.stopped, None, &mut changed);
            let cluster = Some(node.membership().cluster()).filter(|c| c.is_known());
            set(&mut s.cluster, cluster, &mut changed);
            set(&mut s.disk_low, node.low_space(), &mut changed);
            set(&mut s.quiesced, node.is_quiesced(), &mut changed);
            if s.members != *node.membership() {
                s.members = node.membership().clone();
                changed = true;
            }
            if !s.bonded.iter().eq(bonds.peer_ids()) {
                s.bonded = bonds.peers();
                changed = true;
            }
            if !s.conflicts.iter().map(|(p, c)| (p, c)).eq(conflicts.iter()) {
                s.conflicts = conflicts.iter().map(|(p, c)| (*p, *c)).collect();
                changed = true;
            }
            changed
        });
    }
}

/// Sets `field` to `value` when they differ, and says so in `changed`.
fn set<T: PartialEq>(field: &mut T, value: T, changed: &mut bool) {
    if *field != value {
        *field = value;
        *changed = true;
    }
}
