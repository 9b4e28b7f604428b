//! Leadership transfer asked through [`Group::transfer_leadership`](crate::groups::Group):
//! handed to the core, answered once a new leader is known, or with why it failed.
//!
//! The core decides (it catches the target up, sends it a timeout-now, refuses proposals
//! meanwhile, gives up after an election timeout) and tells the driver how it ended. The
//! worker answers the caller: with the new leader once one is heard from after this node
//! stepped down, or with the core's reason. It keeps its own deadline too (two election
//! timeouts and a second), because an outcome can be lost with the leader state (a crash
//! of the node, or a step-down whose successor is never heard from).

use super::{Worker, WorkerError};
use crate::groups::group::GroupError;
use crate::groups::machine::StateMachine;
use crate::groups::raft::TransferOutcome;
use crate::groups::Storage;
use crate::PeerId;
use tokio::sync::oneshot;

/// Where a transfer's answer goes.
pub(crate) type TransferReply = oneshot::Sender<Result<PeerId, GroupError>>;

/// A transfer the worker answers.
pub(super) struct PendingTransfer {
    to: PeerId,
    reply: TransferReply,
    /// The worker tick after which it fails.
    deadline: u64,
    /// The core reported that this node stepped down: waiting to hear the new leader.
    stepped_down: bool,
}

impl<M: StateMachine, S: Storage> Worker<M, S> {
    /// Hands a transfer to the core; the answer comes from [`Self::settle_transfer`].
    pub(super) fn start_transfer(
        &mut self,
        target: Option<PeerId>,
        reply: TransferReply,
    ) -> Result<(), WorkerError> {
        let to = match self.node.transfer_leadership(target, &self.store)? {
            Ok(to) => to,
            Err(refused) => {
                let _ = reply.send(Err(refused.into()));
                return Ok(());
            }
        };
        if to == self.me {
            // Already the leader: nothing to move.
            let _ = reply.send(Ok(to));
            return Ok(());
        }
        tracing::info!(to = %crate::primitives::Short(&to), "transferring leadership");
        let ticks_per_election = self.election_ticks.max(1);
        let deadline = self.ticks + 2 * ticks_per_election + self.ticks_per_second();
        if let Some(old) = self.transfer.replace(PendingTransfer {
            to,
            reply,
            deadline,
            stepped_down: false,
        }) {
            // The core refuses a second transfer while one runs; an answer still waiting
            // belongs to one that ended unseen.
            let _ = old.reply.send(Err(GroupError::TransferFailed {
                to: old.to,
                reason: "replaced by a newer transfer".into(),
            }));
        }
        Ok(())
    }

    /// The core says how the transfer ended.
    pub(super) fn transfer_ended(&mut self, outcome: TransferOutcome) {
        let Some(pending) = &mut self.transfer else {
            return;
        };
        let failure = match outcome {
            TransferOutcome::SteppedDown { .. } => {
                pending.stepped_down = true;
                return;
            }
            TransferOutcome::TimedOut { to } => format!(
                "{to} did not take over within an election timeout (unreachable, or behind); this node still leads"
            ),
            TransferOutcome::TargetRemoved { to } => {
                format!("{to} stopped being a voter; this node still leads")
            }
        };
        if let Some(pending) = self.transfer.take() {
            let _ = pending.reply.send(Err(GroupError::TransferFailed {
                to: pending.to,
                reason: failure,
            }));
        }
    }

    /// Answers the transfer once a new leader is known, or at its deadline. Called every
    /// turn.
    pub(super) fn settle_transfer(&mut self) {
        let Some(pending) = &self.transfer else {
            return;
        };
        let new_leader = self.node.leader().filter(|l| *l != self.me);
        let answer = match new_leader {
            Some(leader) if pending.stepped_down || !self.node.is_leader() => Ok(leader),
            _ if self.ticks > pending.deadline => Err(GroupError::TransferFailed {
                to: pending.to,
                reason: if self.node.is_leader() {
                    "no outcome within two election timeouts; this node still leads".into()
                } else {
                    "this node stepped down but no new leader was heard from within two election timeouts".into()
                },
            }),
            _ => return,
        };
        if let Some(pending) = self.transfer.take() {
            let _ = pending.reply.send(answer);
        }
    }

    fn ticks_per_second(&self) -> u64 {
        (1_000 / self.tick.as_millis().max(1)) as u64
    }
}
