//! Elections: the pre-vote round (§9.6) and the vote round (§5.2).
//!
//! A follower whose election timer fires first asks the voters whether they *would* vote
//! for it in the next term, changing nothing. Only with a majority of pre-votes does it
//! raise its term, vote for itself (persisted before any request leaves) and ask for real
//! votes. A node partitioned away therefore never inflates the term of the group.

use super::log::LogReader;
use super::message::{Message, RequestVote, RequestVoteResponse, Vote};
use super::node::{Election, Node, RoleState};
use super::quorum::{self, VoteResult};
use super::RaftError;
use crate::PeerId;
use std::collections::BTreeSet;

impl Node {
    /// Starts a pre-vote round.
    pub(crate) fn pre_campaign(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let mut election = Election::default();
        election.granted.insert(self.id);
        self.role = RoleState::PreCandidate(election);
        self.leader = None;
        self.reset_election_timer();
        let request = RequestVote {
            term: self.term.next(),
            candidate: self.id,
            log_position: self.log.last(),
            transfer: false,
        };
        let voters: Vec<PeerId> = self.members.current().voters().iter().copied().collect();
        for v in voters {
            if v != self.id {
                self.send(v, Message::PreVote(request.clone()));
            }
        }
        self.tally(store)
    }

    /// Starts a real election in the next term; `transfer`: the leader asked for it (see
    /// `transfer.rs`), and voters answer despite hearing from a leader.
    pub(crate) fn campaign(
        &mut self,
        transfer: bool,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        self.term = self.term.next();
        self.vote = Some(self.id);
        let term = self.term;
        self.clients.strand(term, &mut self.outcomes);
        self.leader = None;
        let mut election = Election {
            transfer,
            ..Election::default()
        };
        election.granted.insert(self.id);
        self.role = RoleState::Candidate(election);
        self.reset_election_timer();
        let request = RequestVote {
            term: self.term,
            candidate: self.id,
            log_position: self.log.last(),
            transfer,
        };
        let voters: Vec<PeerId> = self.members.current().voters().iter().copied().collect();
        for v in voters {
            if v != self.id {
                self.send(v, Message::RequestVote(request.clone()));
            }
        }
        self.tally(store)
    }

    /// Re-sends the (pre-)vote request to voters that have not answered (a lost request
    /// would otherwise cost a whole election timeout). Called every heartbeat interval.
    pub(crate) fn resend_vote_requests(&mut self) {
        let (pre, election) = match &self.role {
            RoleState::PreCandidate(e) => (true, e),
            RoleState::Candidate(e) => (false, e),
            _ => return,
        };
        let answered: BTreeSet<PeerId> =
            election.granted.union(&election.denied).copied().collect();
        let request = RequestVote {
            term: if pre { self.term.next() } else { self.term },
            candidate: self.id,
            log_position: self.log.last(),
            transfer: election.transfer,
        };
        let voters: Vec<PeerId> = self.members.current().voters().iter().copied().collect();
        for v in voters {
            if v != self.id && !answered.contains(&v) {
                let msg = if pre {
                    Message::PreVote(request.clone())
                } else {
                    Message::RequestVote(request.clone())
                };
                self.send(v, msg);
            }
        }
    }

    pub(crate) fn handle_pre_vote_response(
        &mut self,
        from: PeerId,
        m: RequestVoteResponse,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let RoleState::PreCandidate(election) = &mut self.role else {
            return Ok(());
        };
        match m.vote {
            Vote::Granted if m.term == self.term.next() => {
                election.granted.insert(from);
            }
            Vote::Denied => {
                election.denied.insert(from);
            }
            _ => return Ok(()),
        }
        self.tally(store)
    }

    pub(crate) fn handle_vote_response(
        &mut self,
        from: PeerId,
        m: RequestVoteResponse,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let RoleState::Candidate(election) = &mut self.role else {
            return Ok(());
        };
        match m.vote {
            Vote::Granted => {
                election.granted.insert(from);
            }
            Vote::Denied => {
                election.denied.insert(from);
            }
            // Observers abstain: never counted, for or against (the quorum stays a
            // majority of the whole voter set).
            Vote::Abstained => return Ok(()),
        }
        self.tally(store)
    }

    /// Acts on the election's result: promote on a win, fall back on a loss.
    fn tally(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let voters = self.members.current().voters();
        let (result, pre) = match &self.role {
            RoleState::PreCandidate(e) => {
                (quorum::vote_result(voters, &e.granted, &e.denied), true)
            }
            RoleState::Candidate(e) => (quorum::vote_result(voters, &e.granted, &e.denied), false),
            _ => return Ok(()),
        };
        match (result, pre) {
            (VoteResult::Won, true) => self.campaign(false, store),
            (VoteResult::Won, false) => self.become_leader(store),
            (VoteResult::Lost, _) => {
                let term = self.term;
                self.become_follower(term, None);
                Ok(())
            }
            (VoteResult::Pending, _) => Ok(()),
        }
    }
}
