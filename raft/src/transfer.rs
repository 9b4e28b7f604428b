//! Leadership transfer (Raft dissertation §3.10; etcd's `MsgTransferLeader`): the leader
//! hands its role to a chosen voter, for maintenance or balance, without waiting out an
//! election timeout.
//!
//! 1. [`Node::transfer_leadership`] on the leader picks the target and stops taking new
//!    work: proposals, forwarded commands, membership changes (learner promotion too) and
//!    other transfers are refused with [`ClientError::TransferInProgress`], so the log
//!    stops growing and the target can reach its end. Read-index requests go on.
//! 2. The leader streams the target what it lacks; once the target's matched index is the
//!    leader's last index (checked at the call and on each of the target's answers), it
//!    sends [`Message::TimeoutNow`]. It sends it again on every later answer of the
//!    target, which covers a lost one.
//! 3. The target, a voter hearing it from the leader of its own term, campaigns at once in
//!    the next term, without a pre-vote; its vote requests carry `transfer`, so voters
//!    answer despite the leader-stickiness rule (they still grant only an up-to-date log,
//!    once per term). Its log is the leader's, so it wins unless it is cut off.
//! 4. The leader steps down on hearing the new term (its state goes with its role), or
//!    gives up after an election timeout, or when the target stops being a voter, and takes
//!    work again. Each end is reported once as a [`TransferOutcome`] in a `Ready`.
//!
//! Safety never rests on the transfer: the target wins only by an ordinary majority of
//! votes in a new term. The `transfer` flag only lifts leader stickiness, a liveness rule.

use super::log::LogReader;
use super::message::{Message, TimeoutNow};
use super::node::{Node, RoleState};
use super::RaftError;
use crate::config::CampaignPolicy;
use crate::output::{ClientError, TransferOutcome};
use crate::PeerId;

/// A transfer in progress, kept in the leader's state (so stepping down ends it).
#[derive(Debug)]
pub(crate) struct Transfer {
    /// The target.
    pub(crate) to: PeerId,
    /// Ticks since it started; at the election timeout the leader gives up.
    pub(crate) elapsed: u32,
}

impl Node {
    /// Hands leadership to `target`, or with `None` to the most caught-up voter heard from
    /// in the last election timeout (the highest matched index; the lowest id among
    /// equals). Returns the target; the transfer then runs as described in `transfer.rs`,
    /// and its end is reported as a [`TransferOutcome`] in a later `Ready` (or seen as this
    /// node no longer leading).
    ///
    /// Refused (nothing changes): on a non-leader ([`ClientError::NotLeader`]), while a
    /// transfer runs ([`ClientError::TransferInProgress`], whatever the target), to a
    /// learner ([`ClientError::TransferToLearner`]), to a peer outside the configuration
    /// ([`ClientError::TransferToUnknown`]), and with `None` when no other voter is active
    /// ([`ClientError::NoTransferTarget`]). A transfer to this very node is a no-op that
    /// succeeds: it leads already.
    pub fn transfer_leadership(
        &mut self,
        target: Option<PeerId>,
        store: &dyn LogReader,
    ) -> Result<Result<PeerId, ClientError>, RaftError> {
        self.unquiesce(None);
        let RoleState::Leader(state) = &self.role else {
            return Ok(Err(ClientError::NotLeader {
                leader: self.leader,
            }));
        };
        if let Some(t) = &state.transfer {
            return Ok(Err(ClientError::TransferInProgress { to: t.to }));
        }
        let members = self.members.current();
        let to = match target {
            Some(peer) if peer == self.id => return Ok(Ok(peer)),
            Some(peer) if members.learners().contains_key(&peer) => {
                return Ok(Err(ClientError::TransferToLearner { peer }));
            }
            Some(peer) if !members.is_voter(&peer) => {
                return Ok(Err(ClientError::TransferToUnknown { peer }));
            }
            Some(peer) => peer,
            None => match self.most_caught_up_voter() {
                Some(peer) => peer,
                None => return Ok(Err(ClientError::NoTransferTarget)),
            },
        };
        if let Some(state) = self.leader_state() {
            state.transfer = Some(Transfer { to, elapsed: 0 });
        }
        if !self.maybe_send_timeout_now(to) {
            self.send_append(to, false, store)?;
        }
        Ok(Ok(to))
    }

    /// The target of the leadership transfer this node runs as leader, if any.
    pub fn transfer_target(&self) -> Option<PeerId> {
        match &self.role {
            RoleState::Leader(s) => s.transfer.as_ref().map(|t| t.to),
            _ => None,
        }
    }

    /// The voter other than this node with the highest matched index among those heard
    /// from since the last check-quorum round; the lowest id among equals.
    fn most_caught_up_voter(&self) -> Option<PeerId> {
        let RoleState::Leader(state) = &self.role else {
            return None;
        };
        let mut best: Option<(crate::Index, PeerId)> = None;
        // Voters iterate in id order: a later one replaces the best only when ahead.
        for peer in self.members.current().voters() {
            let Some(pr) = state.progress.get(peer).filter(|pr| pr.recent_active) else {
                continue;
            };
            if *peer != self.id && best.is_none_or(|(m, _)| pr.matched > m) {
                best = Some((pr.matched, *peer));
            }
        }
        best.map(|(_, peer)| peer)
    }

    /// Sends `TimeoutNow` to `peer` if it is the transfer's target and holds the whole log;
    /// returns whether it did.
    pub(crate) fn maybe_send_timeout_now(&mut self, peer: PeerId) -> bool {
        let last = self.log.last().index();
        let caught_up = match &self.role {
            RoleState::Leader(s) => {
                s.transfer.as_ref().is_some_and(|t| t.to == peer)
                    && s.progress.get(&peer).is_some_and(|pr| pr.matched >= last)
            }
            _ => false,
        };
        if caught_up {
            let term = self.term;
            self.send(peer, Message::TimeoutNow(TimeoutNow { term }));
        }
        caught_up
    }

    /// One leader tick of a transfer: gives up after an election timeout.
    pub(crate) fn tick_transfer(&mut self) {
        let limit = self.config.election_ticks.max(1);
        let Some(state) = self.leader_state() else {
            return;
        };
        let Some(t) = state.transfer.as_mut() else {
            return;
        };
        t.elapsed += 1;
        if t.elapsed >= limit {
            let to = t.to;
            state.transfer = None;
            self.transfer_outcomes
                .push(TransferOutcome::TimedOut { to });
        }
    }

    /// The configuration changed on the leader: a target that is no longer a voter ends
    /// the transfer.
    pub(crate) fn check_transfer_target(&mut self) {
        let Some(to) = self.transfer_target() else {
            return;
        };
        if self.members.current().is_voter(&to) {
            return;
        }
        if let Some(state) = self.leader_state() {
            state.transfer = None;
        }
        self.transfer_outcomes
            .push(TransferOutcome::TargetRemoved { to });
    }

    /// The target's side: the leader of this node's term says "campaign now". A follower
    /// that may lead (a voter of its latest configuration, not an observer, not abstaining
    /// after a state loss) starts an election at once, without a pre-vote. Anything else
    /// (another term, a sender that is not its leader) is ignored.
    pub(crate) fn handle_timeout_now(
        &mut self,
        from: PeerId,
        m: TimeoutNow,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let from_leader = m.term == self.term
            && self.leader == Some(from)
            && matches!(self.role, RoleState::Follower);
        let may_lead = self.members.current().is_voter(&self.id)
            && self.config.campaign != CampaignPolicy::Never
            && !self.may_have_lost_state();
        if from_leader && may_lead {
            self.campaign(true, store)?;
        }
        Ok(())
    }
}
