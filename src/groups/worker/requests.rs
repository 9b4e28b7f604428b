//! Client calls into the worker (execute, feed, query, membership change, roster, shutdown),
//! recorded in the ledger and handed to the core, and the status the worker publishes.

use super::ledger::ChangeReply;
use super::{Worker, WorkerError};
use crate::groups::group::{GroupStatus, Request};
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

    /// Publishes the group's status when it changed.
    pub(super) fn publish(&mut self) {
        let node = &self.node;
        let status = GroupStatus {
            id: self.me,
            group: self.group,
            role: node.role(),
            term: node.term(),
            leader: node.leader(),
            commit: node.commit_index(),
            applied: self.applied,
            log_start: self.store.available().start().next(),
            last: node.last(),
            durable: node.durable(),
            members: node.membership().clone(),
            bonded: self.bonds.peers(),
            online: node.leader().is_some() && self.session.is_none(),
            syncing: self.session.is_some(),
            stopped: None,
            cluster: Some(node.membership().cluster()).filter(|c| c.is_known()),
            conflicts: self.conflicts.iter().map(|(p, c)| (*p, *c)).collect(),
            disk_low: node.low_space(),
            quiesced: node.is_quiesced(),
        };
        self.metrics
            .proposals_pending
            .set(self.node.pending_proposals() as i64);
        let metrics = &self.metrics;
        self.status.send_if_modified(|s| {
            if s.leader != status.leader && status.leader.is_some() {
                metrics.leader_changes.inc();
            }
            if status.quiesced && !s.quiesced {
                metrics.quiesces.inc();
            }
            if *s != status {
                *s = status;
                true
            } else {
                false
            }
        });
    }
}
