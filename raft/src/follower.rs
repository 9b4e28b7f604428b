//! What every node does as a receiver: appending the leader's entries (§5.3), answering
//! votes (§5.2, §5.4.1) and pre-votes (§9.6), and the follower side of client traffic.

use super::client::ForwardDedup;
use super::log::LogReader;
use super::message::Message;
use super::message::{
    AppendEntries, AppendEntriesResponse, Forward, Payload, ReadIndexResponse, RequestVote,
    RequestVoteResponse, Vote,
};
use super::node::{Node, RoleState};
use super::RaftError;
use crate::output::CatchUp;
use crate::output::ReadOutcome;
use crate::PeerId;
use crate::{Cursor, Index};

impl Node {
    /// §5.3 receiver rules. Acknowledges only entries durable here (via `queue_ack`).
    ///
    /// An append flagged `catch_up` that does not follow this log (a gap, or a conflict at
    /// its previous entry) opens a catch-up session: one [`CatchUp`] in the next `Ready`
    /// (none while a session is open), answered `Abstained`.
    pub(crate) fn handle_append_entries(
        &mut self,
        from: PeerId,
        m: AppendEntries,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        if m.validate().is_err() || m.leader != from {
            return Ok(());
        }
        if !matches!(self.role, RoleState::Follower) {
            // A candidate (or a stale leader, impossible in one term) of this term defers.
            self.become_follower(m.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        if self.lost_state == Some(Cursor::zero()) {
            self.lost_state = Some(Cursor(m.term, m.leader_commit.max(Index(1))));
        }
        self.flush_to_leader();

        let mut prev = m.prev_log_position;
        let mut entries = m.entries;
        // Everything up to the commit index matches any leader's log of this term
        // (Leader Completeness; `replay.rs` keeps the commit index within what a leader of
        // this term or an earlier one announced).
        let committed = self.log.committed;
        if prev.index() < committed {
            let skip = (committed.0 - prev.index().0) as usize;
            let term = self.log.term_at(committed, store)?.unwrap_or_default();
            entries.drain(..skip.min(entries.len()));
            prev = Cursor(term, committed);
        }
        let configs = super::membership::config_entries(&entries);
        let catch_up_entries = if m.catch_up && !self.syncing {
            entries.clone()
        } else {
            Vec::new()
        };
        match self.log.maybe_append(prev, entries, store)? {
            Some((verified, written)) => {
                if let Some(from_index) = written {
                    self.on_log_rewritten(&configs, from_index, store);
                }
                if self.log.commit_to(m.leader_commit.min(verified)) {
                    self.on_commit_advanced();
                }
                self.note_leader_commit(m.leader_commit);
                self.queue_ack(from, verified, m.seq);
            }
            None => {
                self.note_leader_commit(m.leader_commit);
                let last = self.log.last().index();
                let (vote, hint) = if prev.index() > last {
                    (Vote::Abstained, last.next())
                } else if m.catch_up {
                    (
                        Vote::Abstained,
                        self.log.conflict_hint(prev.index(), store)?,
                    )
                } else {
                    (Vote::Denied, self.log.conflict_hint(prev.index(), store)?)
                };
                if m.catch_up && !self.syncing {
                    self.syncing = true;
                    self.catch_up = Some(CatchUp {
                        leader: from,
                        position: prev,
                        leader_commit: m.leader_commit,
                        entries: catch_up_entries,
                    });
                }
                self.send(
                    from,
                    Message::AppendEntriesResponse(AppendEntriesResponse {
                        term: self.term,
                        last_log_index: hint,
                        vote,
                        rejected: m.prev_log_position.index(),
                        seq: m.seq,
                    }),
                );
            }
        }
        Ok(())
    }

    fn log_up_to_date(&self, candidate_last: Cursor) -> bool {
        candidate_last >= self.log.last()
    }

    /// §5.2/§5.4.1: one vote per term, only for a log at least as up to date. The vote is
    /// persisted before the answer leaves (`send` routes it after the sync).
    ///
    /// Who answers what (pre-votes alike):
    /// - an observer (`CampaignPolicy::Never`, or an observer learner in its latest
    ///   configuration) answers `Abstained`, always;
    /// - a node that started with an empty log answers `Abstained` until it caught up with
    ///   the first leader it heard (it may have lost state it once acknowledged; see
    ///   `Node::lost_state`), except to a candidate whose log reaches that leader's term
    ///   and commit index (`abstains_from`);
    /// - a node whose log was repaired by truncation answers `Abstained` until its log
    ///   reaches the store's vote-withheld marker again (see `Node::vote_withheld`);
    /// - every other node, a catching-up learner in its own latest configuration included,
    ///   answers `Granted` or `Denied` by the rules above. A candidate asks only the voters
    ///   of *its* configuration, so a learner that is asked was promoted in an entry it has
    ///   not received yet; abstaining there can deadlock elections (the simulator found one:
    ///   a promoted node and a leader that removed itself both abstained, and 3 of 4 voters
    ///   were never reachable).
    ///
    /// This is safe because safety never rests on the voter's view of the configuration:
    /// the candidate counts only answers from the voters of its own configuration, each
    /// node grants at most one (durable) vote per term, and `Abstained` counts neither for
    /// nor against: the candidate still needs a majority of its whole voter set
    /// ([`quorum::vote_result`](super::quorum::vote_result)), so an abstention never
    /// shrinks a quorum.
    pub(crate) fn handle_request_vote(&mut self, from: PeerId, m: RequestVote) {
        if m.candidate != from {
            return;
        }
        let vote = if self.is_observer() || self.abstains_from(m.log_position) {
            Vote::Abstained
        } else {
            let can_vote =
                self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
            if can_vote && self.log_up_to_date(m.log_position) {
                self.vote = Some(from);
                self.reset_election_timer();
                Vote::Granted
            } else {
                Vote::Denied
            }
        };
        self.send(
            from,
            Message::RequestVoteResponse(RequestVoteResponse {
                term: self.term,
                vote,
            }),
        );
    }

    /// §9.6: would this node vote for `m` in `m.term`? Changes nothing here. Refused while
    /// a leader is heard from (so a rejoining node cannot disrupt a working leader).
    pub(crate) fn handle_pre_vote(&mut self, from: PeerId, m: RequestVote) {
        if m.candidate != from {
            return;
        }
        let (term, vote) = if self.is_observer() || self.abstains_from(m.log_position) {
            (self.term, Vote::Abstained)
        } else if m.term > self.term && !self.in_lease() && self.log_up_to_date(m.log_position) {
            (m.term, Vote::Granted)
        } else {
            (self.term, Vote::Denied)
        };
        self.send(
            from,
            Message::PreVoteResponse(RequestVoteResponse { term, vote }),
        );
    }

    /// Whether this node never votes: `CampaignPolicy::Never`, or an observer
    /// learner in its configuration.
    fn is_observer(&self) -> bool {
        self.config.campaign == crate::config::CampaignPolicy::Never
            || self.members.current().learners().get(&self.id)
                == Some(&super::membership::LearnerKind::Observer)
    }

    /// A leader's answer to a follower's read. "Not the leader" (`None`) leaves the read
    /// waiting: it goes to the next leader (or fails at its timeout).
    pub(crate) fn handle_read_index_response(&mut self, m: ReadIndexResponse) {
        let Some(index) = m.index else { return };
        if self.follower_reads.answered(m.ctx) {
            self.reads_out.push(ReadOutcome {
                ctx: m.ctx,
                result: Ok(index),
            });
        }
    }

    /// Client traffic: the leader appends forwarded commands (or refuses them during a
    /// leadership transfer); the follower learns where its forwarded command went.
    pub(crate) fn handle_forward(
        &mut self,
        from: PeerId,
        f: Forward,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        match f {
            Forward::Command {
                commands,
                request_id,
                resend_of,
            } => {
                if !self.is_leader() || commands.is_empty() {
                    return Ok(());
                }
                // A repeat (a retry after a lost acknowledgement, or a network duplicate)
                // gets the original answer; the commands are not appended twice. A re-send
                // this leader does not remember is appended only if it cannot have been
                // appended before (see `client.rs`); otherwise it is dropped and times out.
                let digest = ForwardDedup::digest(&commands);
                if let Some(request_id) = request_id {
                    let window = 2 * u64::from(self.config.forward_timeout_ticks)
                        + u64::from(self.config.election_ticks);
                    self.forward_dedup.expire(self.now, window);
                    if let Some(reply) = self.forward_dedup.lookup(from, request_id, digest) {
                        self.send(from, Message::Forward(reply));
                        return Ok(());
                    }
                    if let Some(first) = resend_of {
                        if self
                            .forward_dedup
                            .refuse_resend(from, request_id, first, self.term)
                        {
                            return Ok(());
                        }
                    }
                }
                // A leader handing leadership over takes no commands; it says so, so the
                // follower's client retries at the next leader without waiting.
                if let Some(transfer_to) = self.transfer_target() {
                    if let Some(request_id) = request_id {
                        let reply = Forward::Refused {
                            request_id,
                            transfer_to,
                        };
                        self.forward_dedup.record(
                            from,
                            request_id,
                            digest,
                            reply.clone(),
                            self.now,
                        );
                        self.send(from, Message::Forward(reply));
                    }
                    return Ok(());
                }
                // A leader low on disk space appends nothing; a definite refusal, so the
                // follower's client learns it at once.
                if self.low_space {
                    if let Some(request_id) = request_id {
                        let reply = Forward::NoSpace { request_id };
                        self.forward_dedup.record(
                            from,
                            request_id,
                            digest,
                            reply.clone(),
                            self.now,
                        );
                        self.send(from, Message::Forward(reply));
                    }
                    return Ok(());
                }
                let mut first = None;
                let mut last = Index(0);
                for c in commands {
                    let at = self.append_local(Payload::Command(c), store)?;
                    first.get_or_insert(at.index());
                    last = at.index();
                }
                if let Some(pr) = self
                    .leader_state()
                    .and_then(|state| state.progress.get_mut(&from))
                {
                    pr.forwarded_to = Some(last);
                }
                if let (Some(request_id), Some(start)) = (request_id, first) {
                    let term = self.term;
                    let assigned = super::message::IndexRange { start, end: last };
                    let reply = Forward::CommandAck {
                        request_id,
                        term,
                        assigned,
                    };
                    self.forward_dedup
                        .record(from, request_id, digest, reply.clone(), self.now);
                    self.send(from, Message::Forward(reply));
                }
            }
            Forward::CommandAck {
                request_id,
                term,
                assigned,
            } => {
                if let Some(id) = self.clients.acked(request_id) {
                    let at = Cursor(term, assigned.start);
                    self.clients.track(id, at);
                    // Already handed out for applying? Settle against the log now.
                    if at.index() <= self.log.handed {
                        let log = &self.log;
                        let mut outcomes = std::mem::take(&mut self.outcomes);
                        let handed = log.handed;
                        self.clients.settle_below(
                            handed,
                            |i| log.term_at(i, store).ok().flatten(),
                            Cursor(term, handed),
                            &mut outcomes,
                        );
                        self.outcomes = outcomes;
                    }
                }
            }
            Forward::Refused {
                request_id,
                transfer_to,
            } => {
                // Definite: the leader appended none of it (see `ForwardDedup`).
                if let Some(id) = self.clients.acked(request_id) {
                    self.outcomes.push(crate::ProposalOutcome {
                        id,
                        result: Err(crate::ClientError::TransferInProgress { to: transfer_to }),
                    });
                }
            }
            Forward::NoSpace { request_id } => {
                if let Some(id) = self.clients.acked(request_id) {
                    self.outcomes.push(crate::ProposalOutcome {
                        id,
                        result: Err(crate::ClientError::NoSpace { leader: from }),
                    });
                }
            }
        }
        Ok(())
    }
}
