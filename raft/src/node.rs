//! `Node`: one member of one consensus group, sans-IO.
//!
//! Inputs: [`Node::tick`] (time), [`Node::step`] (a peer's message), [`Node::propose`] and
//! [`Node::read_index`] (clients), [`Node::on_persisted`] and [`Node::on_applied`]
//! (completions). Output: one [`Ready`] at a time from [`Node::ready`]. Randomness comes
//! from a seeded RNG given at construction; there is no clock, thread or socket here.
//!
//! The role is an enum whose variants own their state; only the leader holds progress.
//! Per-role rules live in `follower.rs`, `candidate.rs` and `leader.rs`; this file holds
//! what all roles share: term rules (§5.1), timers, the outbox and the `Ready` hand-off.

use super::client::{Clients, ForwardDedup};
use super::config::RaftConfig;
use super::leader::LeaderState;
use super::log::{LogReader, RaftLog};
use super::membership::{ClusterId, Membership, MembershipLog};
use super::message::{Entry, Message, Payload, Vote};
use super::read_index::FollowerReads;
use super::ready::Ready;
use super::RaftError;
use crate::config::CampaignPolicy;
use crate::output::TransferOutcome;
use crate::output::{CatchUp, ClientError, ProposalId, ProposalOutcome, ReadOutcome};
use crate::PeerId;
use crate::{Cursor, HardState, Index, SyncReport, Term};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;

/// The role a node plays now (public view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes (§9.6); its term is unchanged.
    PreCandidate,
    /// Asking for votes in a new term (§5.2).
    Candidate,
    /// Leads its term.
    Leader,
}

/// Votes collected in one (pre-)election.
#[derive(Debug, Default)]
pub(crate) struct Election {
    pub(crate) granted: BTreeSet<PeerId>,
    pub(crate) denied: BTreeSet<PeerId>,
    /// A leadership transfer's election: its vote requests carry `transfer`.
    pub(crate) transfer: bool,
}

/// The role with the state only it owns.
#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    PreCandidate(Election),
    Candidate(Election),
    Leader(Box<LeaderState>),
}

/// An acknowledgement waiting for the entries it covers to be durable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingAck {
    pub(crate) to: PeerId,
    pub(crate) term: Term,
    pub(crate) index: Index,
    pub(crate) seq: u64,
}

/// One member of one consensus group.
#[derive(Debug)]
pub struct Node {
    pub(crate) id: PeerId,
    pub(crate) config: RaftConfig,
    rng: SmallRng,
    /// Current term (§5.1); persisted before anything of it leaves.
    pub(crate) term: Term,
    /// Who this node voted for in `term`; persisted before the vote leaves.
    pub(crate) vote: Option<PeerId>,
    /// The leader of `term`, when known.
    pub(crate) leader: Option<PeerId>,
    pub(crate) role: RoleState,
    pub(crate) log: RaftLog,
    pub(crate) members: MembershipLog,
    /// Ticks since the last valid word from a leader (or, on a leader, since the last
    /// check-quorum round).
    pub(crate) election_elapsed: u32,
    randomized_timeout: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Ticks since start.
    pub(crate) now: u64,
    messages: Vec<(PeerId, Message)>,
    after_sync: Vec<(PeerId, Message)>,
    pub(crate) outcomes: Vec<ProposalOutcome>,
    pub(crate) reads_out: Vec<ReadOutcome>,
    pub(crate) catch_up: Option<CatchUp>,
    /// How leadership transfers ended, for the next `Ready`.
    pub(crate) transfer_outcomes: Vec<TransferOutcome>,
    /// A catch-up was reported and not yet resolved.
    pub(crate) syncing: bool,
    /// The highest commit index a leader of this node's term or an earlier one announced:
    /// entries up to it are committed in terms no later than this node's (see `replay.rs`).
    pub(crate) known_commit: Index,
    /// Log replay: entries in `committed+1 ..= replayed_to` are known committed (a peer
    /// reported them) but not yet committed here.
    pub(crate) replayed_to: Index,
    /// The hard state last handed out in a `Ready`.
    emitted: HardState,
    /// The term known durable (from the last sync report).
    durable_term: Term,
    pub(crate) pending_ack: Option<PendingAck>,
    /// Leader: entries were appended; broadcast at the next `ready()`.
    pub(crate) pending_broadcast: bool,
    ready_number: u64,
    pub(crate) clients: Clients,
    /// Leader: forwarded requests already appended (kept across terms, lost on restart).
    pub(crate) forward_dedup: ForwardDedup,
    pub(crate) follower_reads: FollowerReads,
    /// Set while this node started with an empty log and has not caught up since: a
    /// fresh node, or one whose state was lost (an in-memory store reopened under the same
    /// peer id) and that may have acknowledged, in an earlier life, entries it no longer
    /// holds. It abstains from votes until its log is committed up to the commit index
    /// of the first leader it hears from, held here with that leader's term (zero until
    /// it hears one), so it never helps elect a candidate that lacks what it once counted
    /// toward; meanwhile it votes only for a candidate whose log reaches that position
    /// (see `abstains_from`). Founding clears it.
    pub(crate) lost_state: Option<Cursor>,
    /// The driver says the disk is low on space ([`Node::set_low_space`]): as leader this
    /// node appends no client command (its own or forwarded) and says so at once.
    pub(crate) low_space: bool,
    /// The store's vote-withheld marker (see [`crate::Storage::vote_withheld`]): this
    /// node's log was truncated at a damaged record, so it may have acknowledged entries
    /// it no longer holds. Until its log reaches this index again it grants no vote or
    /// pre-vote (it abstains) and neither campaigns nor takes a leadership transfer: a
    /// candidate lacking an entry this node once counted toward could otherwise win with
    /// its help. The log only grows through a leader's appends, log replay of committed
    /// entries or a snapshot of committed state, so once it reaches the marker it holds
    /// every entry committed up to it (log matching, §5.3) and may vote again.
    pub(crate) vote_withheld: Option<Index>,
    /// The marker was lifted here and the store has not been told yet (next `Ready`).
    pub(crate) clear_vote_withheld: bool,
    /// Quiesced (see `quiesce.rs`): no heartbeats, check-quorum or election timer.
    pub(crate) quiesced: bool,
    /// Leader: ticks in a row the group was idle (quiesces at `quiesce_after_ticks`).
    pub(crate) idle_ticks: u32,
    /// Leader: woken from quiescence; heartbeat at the next `ready()`.
    pub(crate) pending_heartbeat: bool,
    /// Peers the driver says it cannot reach ([`Node::set_reachable`]): a leader quiesces
    /// without waiting for them.
    pub(crate) unreachable: BTreeSet<PeerId>,
}

impl Node {
    /// Builds a node from what its storage holds: hard state, log, and `applied` (what the
    /// state machine already contains, e.g. a snapshot's index; 0 for a state machine
    /// rebuilt from the log). A fresh store gives a fresh node, which then needs
    /// [`Node::bootstrap`] (a founding member) or entries from a leader (a joining learner).
    ///
    /// The membership is found by scanning the log back from its end to the latest
    /// configuration entry at or below the commit index. That costs time proportional to
    /// the distance to that entry; the worker may keep membership in its metadata instead.
    pub fn restart(
        id: PeerId,
        config: RaftConfig,
        seed: u64,
        store: &dyn LogReader,
        applied: Index,
    ) -> Result<Node, RaftError> {
        Self::restart_from(id, config, seed, store, applied, None)
    }

    /// [`Node::restart`] for a node whose state machine was restored from a snapshot:
    /// `base` is the snapshot's anchor index and the configuration in force there, so the
    /// membership scan stops at the anchor (the log before it may be pruned) and starts
    /// from that configuration.
    pub fn restart_from(
        id: PeerId,
        config: RaftConfig,
        seed: u64,
        store: &dyn LogReader,
        applied: Index,
        base: Option<(Index, Membership)>,
    ) -> Result<Node, RaftError> {
        let hs = store.hard_state();
        let last = store.last();
        let log = RaftLog::restore(last, hs.commit, applied);
        let members = MembershipLog::scan(store, last.index(), log.committed, base)?;
        let known_commit = log.committed;
        let mut node = Node {
            id,
            config,
            rng: SmallRng::seed_from_u64(seed),
            term: hs.term,
            vote: hs.vote,
            leader: None,
            role: RoleState::Follower,
            log,
            members,
            election_elapsed: 0,
            randomized_timeout: 0,
            heartbeat_elapsed: 0,
            now: 0,
            messages: Vec::new(),
            after_sync: Vec::new(),
            outcomes: Vec::new(),
            reads_out: Vec::new(),
            catch_up: None,
            transfer_outcomes: Vec::new(),
            syncing: false,
            known_commit,
            replayed_to: Index(0),
            emitted: hs,
            durable_term: hs.term,
            pending_ack: None,
            pending_broadcast: false,
            ready_number: 0,
            clients: Clients::default(),
            forward_dedup: ForwardDedup::default(),
            follower_reads: FollowerReads::default(),
            lost_state: last.is_zero().then_some(Cursor::zero()),
            low_space: false,
            vote_withheld: store.vote_withheld(),
            clear_vote_withheld: false,
            quiesced: false,
            idle_ticks: 0,
            pending_heartbeat: false,
            unreachable: BTreeSet::new(),
        };
        node.settle_vote_withheld();
        node.reset_election_timer();
        Ok(node)
    }

    /// Founds a new group: writes the configuration of `voters` in cluster `cluster` as
    /// entry 1 (term 1). All founding peers compute the same entry from the same voter set
    /// and cluster id (the worker's `bootstrap_expect` discovery gives both), so their logs
    /// match from the start, and the entry counts as committed.
    pub fn bootstrap(
        &mut self,
        voters: BTreeSet<PeerId>,
        cluster: ClusterId,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        if !self.log.last().is_zero() || !self.term.is_zero() {
            return Err(RaftError::AlreadyInitialized {
                term: self.term,
                last: self.log.last(),
            });
        }
        let membership = Membership::founding(voters, cluster);
        self.lost_state = None;
        self.term = Term(1);
        let entry = Entry {
            term: Term(1),
            index: Index(1),
            payload: Payload::Config(membership.clone()),
        };
        self.log.append(vec![entry], store)?;
        self.members.push(Index(1), membership);
        self.log.commit_to(Index(1));
        Ok(())
    }

    // ---- read-only views -------------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The role now.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// Whether this node leads its term.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<PeerId> {
        self.leader
    }

    /// The last log entry.
    pub fn last(&self) -> Cursor {
        self.log.last()
    }

    /// The commit index.
    pub fn commit_index(&self) -> Index {
        self.log.committed
    }

    /// Whether a catch-up session is open (a `CatchUp` was handed out and neither
    /// `finish_catch_up` nor `on_state_synced` was called since).
    pub fn is_catching_up(&self) -> bool {
        self.syncing
    }

    /// The highest commit index a leader announced to this node, or its own commit index
    /// if higher (a leader's): how far a follower still has to go.
    pub fn leader_commit(&self) -> Index {
        self.known_commit.max(self.log.committed)
    }

    /// The applied index the driver reported.
    pub fn applied_index(&self) -> Index {
        self.log.applied
    }

    /// The last entry known durable.
    pub fn durable(&self) -> Cursor {
        self.log.durable
    }

    /// The configuration in force (the latest in the log).
    pub fn membership(&self) -> &Membership {
        self.members.current()
    }

    /// Proposals and reads still waiting for an outcome.
    pub fn pending_proposals(&self) -> usize {
        self.clients.pending()
    }

    // ---- inputs ------------------------------------------------------------------------

    /// One tick of time: election timeouts, heartbeats, check-quorum, client timeouts.
    pub fn tick(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        self.now += 1;
        let now = self.now;
        self.clients
            .expire(now, self.config.forward_timeout_ticks, &mut self.outcomes);
        self.follower_reads
            .expire(now, self.config.query_timeout_ticks, &mut self.reads_out);
        if self.quiesced {
            // Timers stand still until something wakes this node (`quiesce.rs`).
        } else if self.is_leader() {
            self.tick_leader(store)?;
            self.maybe_quiesce();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.randomized_timeout && self.may_campaign() {
                self.pre_campaign(store)?;
            } else if self
                .election_elapsed
                .is_multiple_of(self.config.heartbeat_ticks.max(1))
            {
                self.resend_vote_requests();
            }
            self.flush_to_leader();
        }
        // Also after a catch-up by log replay, which commits outside `step`.
        self.settle_lost_state();
        self.settle_vote_withheld();
        self.check_invariants();
        Ok(())
    }

    /// A message from `from`. Messages are untrusted: malformed ones are dropped.
    pub fn step(
        &mut self,
        from: PeerId,
        msg: Message,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        if from == self.id {
            return Ok(());
        }
        // Validate at the edge, before the message may change any state.
        if let Message::AppendEntries(m) = &msg {
            if m.leader != from || m.validate().is_err() {
                return Ok(());
            }
        }
        if self.quiesced && !self.is_quiet(from, &msg) {
            self.unquiesce(Some(from));
        }
        if let Some(t) = msg.term() {
            if t > self.term {
                match &msg {
                    Message::PreVote(_) => {}
                    Message::PreVoteResponse(r) if r.vote == Vote::Granted => {}
                    // Leader stickiness (§4.2.3): while a leader is heard from, a vote
                    // request cannot depose it, unless the leader itself asked for the
                    // election (a leadership transfer, see `transfer.rs`).
                    Message::RequestVote(m) if !m.transfer && self.in_lease() => return Ok(()),
                    _ => {
                        let leader = matches!(msg, Message::AppendEntries(_) | Message::Quiesce(_))
                            .then_some(from);
                        self.become_follower(t, leader);
                    }
                }
            } else if t < self.term {
                self.answer_stale(from, &msg);
                return Ok(());
            }
        }
        match msg {
            Message::AppendEntries(m) => self.handle_append_entries(from, m, store)?,
            Message::AppendEntriesResponse(m) => self.handle_append_response(from, m, store)?,
            Message::RequestVote(m) => self.handle_request_vote(from, m),
            Message::RequestVoteResponse(m) => self.handle_vote_response(from, m, store)?,
            Message::PreVote(m) => self.handle_pre_vote(from, m),
            Message::PreVoteResponse(m) => self.handle_pre_vote_response(from, m, store)?,
            Message::ReadIndex(m) => self.handle_read_index(from, m, store)?,
            Message::ReadIndexResponse(m) => self.handle_read_index_response(m),
            Message::Forward(f) => self.handle_forward(from, f, store)?,
            Message::TimeoutNow(m) => self.handle_timeout_now(from, m, store)?,
            Message::Quiesce(m) => self.handle_quiesce(from, m),
            Message::Wake(m) => self.handle_wake(from, m),
        }
        self.settle_lost_state();
        self.settle_vote_withheld();
        self.check_invariants();
        Ok(())
    }

    /// Proposes a command. On the leader it is appended at once (or refused while it hands
    /// leadership over); elsewhere it is forwarded to the leader (queued until one is
    /// known, failing after `forward_timeout_ticks`). The outcome arrives in a later
    /// `Ready` under `id`.
    pub fn propose(
        &mut self,
        id: ProposalId,
        payload: Vec<u8>,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        self.unquiesce(None);
        if let Some(to) = self.transfer_target() {
            let result = Err(ClientError::TransferInProgress { to });
            self.outcomes.push(ProposalOutcome { id, result });
        } else if self.is_leader() && self.low_space {
            let result = Err(ClientError::NoSpace { leader: self.id });
            self.outcomes.push(ProposalOutcome { id, result });
        } else if self.is_leader() {
            let at = self.append_local(Payload::Command(payload), store)?;
            self.clients.track(id, at);
        } else {
            self.clients.forward(id, payload, self.now);
            self.flush_to_leader();
        }
        Ok(())
    }

    /// The driver's disk is low on space (or no longer is). While it is, this node as
    /// leader refuses client commands, its own and forwarded ones, with
    /// [`ClientError::NoSpace`] (nothing appended: a definite failure). Membership changes
    /// and leadership transfers still go through, so an operator can move the group off
    /// the node. Entries from a leader are the driver's to hold back (it drops appends
    /// that carry entries; heartbeats keep the node following).
    pub fn set_low_space(&mut self, low: bool) {
        self.low_space = low;
    }

    /// Whether the driver said the disk is low on space.
    pub fn low_space(&self) -> bool {
        self.low_space
    }

    /// Asks for a read index (§6.4) under `ctx`; the outcome (the index, or why not)
    /// arrives in a later `Ready`. Serve the read once the driver has applied that index.
    /// A follower asks the leader, and every later leader until one answers (see
    /// `read_index.rs`); without a known leader it waits for one, up to the query timeout.
    pub fn read_index(&mut self, ctx: u64, store: &dyn LogReader) -> Result<(), RaftError> {
        self.unquiesce(None);
        if self.is_leader() {
            self.leader_read(ctx, None, store)?;
        } else {
            self.follower_reads.insert(ctx, self.now);
            self.flush_to_leader();
        }
        Ok(())
    }

    /// The driver synced: `report` is what its storage now holds durably. Acknowledgements
    /// waiting for durability go out; the leader counts its own copy from here on.
    pub fn on_persisted(
        &mut self,
        report: &SyncReport,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        if report.hard_state.term >= self.durable_term {
            self.durable_term = report.hard_state.term;
        }
        let moved = self.log.on_persisted(report.last, store)?;
        if moved && self.is_leader() {
            self.maybe_commit(store)?;
        }
        self.flush_pending_ack();
        self.check_invariants();
        Ok(())
    }

    /// The driver applied every committed entry up to `index`.
    pub fn on_applied(&mut self, index: Index) {
        let index = index.min(self.log.handed);
        if index > self.log.applied {
            self.log.applied = index;
        }
    }

    /// A `StateSync` session installed the state up to `position` (committed at its
    /// provider) into the state machine: the log becomes an empty one anchored there, and
    /// commit and applied fast-forward to it. `membership` is the configuration at
    /// `position` when the session knows it; otherwise the current one is kept.
    pub fn on_state_synced(
        &mut self,
        position: Cursor,
        membership: Option<Membership>,
    ) -> Result<(), RaftError> {
        if position.index() <= self.log.applied {
            return Ok(());
        }
        self.log.reset_to(position);
        let m = membership.unwrap_or_else(|| self.members.current().clone());
        self.members.reset(position.index(), m);
        self.syncing = false;
        self.replayed_to = Index(0);
        self.pending_ack = None;
        self.settle_lost_state();
        self.settle_vote_withheld();
        self.clients.settle_below(
            position.index(),
            |i| (i == position.index()).then_some(position.term()),
            position,
            &mut self.outcomes,
        );
        Ok(())
    }

    // ---- output ------------------------------------------------------------------------

    /// Whether a `Ready` holds anything.
    pub fn has_ready(&self) -> bool {
        self.log.has_unstable()
            || self.log.has_committed()
            || !self.messages.is_empty()
            || !self.after_sync.is_empty()
            || !self.outcomes.is_empty()
            || !self.reads_out.is_empty()
            || self.catch_up.is_some()
            || !self.transfer_outcomes.is_empty()
            || self.pending_broadcast
            || self.pending_heartbeat
            || self.clear_vote_withheld
            || self.current_hard_state() != self.emitted
    }

    fn current_hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: if self.config.knobs().forget_vote {
                None
            } else {
                self.vote
            },
            commit: self.log.committed,
        }
    }

    /// Everything to do now, moved out of the node. See [`Ready`] for the driver's order.
    pub fn ready(&mut self, store: &dyn LogReader) -> Result<Ready, RaftError> {
        if self.pending_broadcast {
            self.pending_broadcast = false;
            if self.is_leader() {
                self.broadcast_append(store)?;
            }
        }
        if std::mem::take(&mut self.pending_heartbeat) && self.is_leader() {
            self.broadcast_heartbeat(store)?;
        }
        self.ready_number += 1;
        let hs = self.current_hard_state();
        let hard_state = (hs != self.emitted).then_some(hs);
        let term_or_vote_changed = hs.term != self.emitted.term || hs.vote != self.emitted.vote;
        self.emitted = hs;
        // Committed entries first: some may still be in `unstable`, which the next line
        // hands out (after which they are read from the store).
        let committed = self
            .log
            .take_committed(self.config.max_apply_batch, store)?;
        let reset_to = self.log.take_reset();
        let entries = self.log.take_unstable();
        self.clients.committed(&committed, &mut self.outcomes);
        let must_sync = term_or_vote_changed || !entries.is_empty() || reset_to.is_some();
        let ready = Ready::new(
            self.ready_number,
            hard_state,
            reset_to,
            entries,
            std::mem::take(&mut self.messages),
            std::mem::take(&mut self.after_sync),
            committed,
            std::mem::take(&mut self.outcomes),
            std::mem::take(&mut self.reads_out),
            self.catch_up.take(),
            std::mem::take(&mut self.transfer_outcomes),
            must_sync,
        );
        Ok(if std::mem::take(&mut self.clear_vote_withheld) {
            ready.clearing_vote_withheld()
        } else {
            ready
        })
    }

    // ---- shared machinery --------------------------------------------------------------

    /// Queues a message. Vote requests and votes, and anything of a term not yet durable,
    /// wait for the sync (DESIGN.md durability order); pre-votes change no state.
    pub(crate) fn send(&mut self, to: PeerId, msg: Message) {
        let after_sync = match &msg {
            Message::PreVote(_) | Message::PreVoteResponse(_) => false,
            Message::RequestVote(_) | Message::RequestVoteResponse(_) => true,
            m => m.term().is_some_and(|t| t > self.durable_term),
        };
        if after_sync {
            self.after_sync.push((to, msg));
        } else {
            self.messages.push((to, msg));
        }
    }

    /// Acknowledges entries up to `index` to the leader once they are durable here.
    pub(crate) fn queue_ack(&mut self, to: PeerId, index: Index, seq: u64) {
        let ack = match self.pending_ack {
            Some(p) if p.to == to && p.term == self.term => PendingAck {
                to,
                term: self.term,
                index: p.index.max(index),
                seq: p.seq.max(seq),
            },
            _ => PendingAck {
                to,
                term: self.term,
                index,
                seq,
            },
        };
        self.pending_ack = Some(ack);
        self.flush_pending_ack();
    }

    fn flush_pending_ack(&mut self) {
        let Some(ack) = self.pending_ack else { return };
        if ack.term != self.term {
            self.pending_ack = None;
            return;
        }
        if self.config.knobs().ack_before_sync || self.log.durable.index() >= ack.index {
            self.pending_ack = None;
            self.send(
                ack.to,
                Message::AppendEntriesResponse(super::message::AppendEntriesResponse {
                    term: ack.term,
                    last_log_index: ack.index,
                    vote: Vote::Granted,
                    rejected: Index(0),
                    seq: ack.seq,
                }),
            );
        }
    }

    /// Answers a message of an older term so its sender learns the newer one.
    fn answer_stale(&mut self, from: PeerId, msg: &Message) {
        let term = self.term;
        let reply = match msg {
            Message::AppendEntries(m) => {
                Message::AppendEntriesResponse(super::message::AppendEntriesResponse {
                    term,
                    last_log_index: Index(0),
                    vote: Vote::Denied,
                    rejected: m.prev_log_position.index(),
                    seq: m.seq,
                })
            }
            Message::PreVote(_) => Message::PreVoteResponse(super::message::RequestVoteResponse {
                term,
                vote: Vote::Denied,
            }),
            // A quiesced leader of an older term would otherwise stay silent for good.
            Message::Quiesce(_) => Message::Wake(super::message::Wake { term }),
            _ => return,
        };
        self.send(from, reply);
    }

    /// Within the leader lease: a leader was heard from less than an election timeout ago.
    pub(crate) fn in_lease(&self) -> bool {
        self.leader.is_some() && self.election_elapsed < self.config.election_ticks
    }

    /// A voter of its latest configuration campaigns; so does a node that an uncommitted
    /// configuration entry removes (Raft dissertation §4.2.2: it may still be needed
    /// until that entry commits). Without it, a leader that proposed its own removal and
    /// then lost its quorum could be the only node holding the newest entries: the others
    /// cannot win without its vote, which it refuses them (its log is longer), and it
    /// could not stand: the group never elected again (found by the simulator, seeds
    /// 10095 and 18801). It counts votes by its latest configuration (its own is not
    /// among them) and, once the entry commits, steps down like any removed leader.
    fn may_campaign(&self) -> bool {
        let removed_by_uncommitted = self.members.current_index() > self.log.committed
            && self
                .members
                .previous()
                .is_some_and(|m| m.is_voter(&self.id));
        self.vote_withheld.is_none()
            && (self.members.current().is_voter(&self.id) || removed_by_uncommitted)
            && self.config.campaign != CampaignPolicy::Never
            && (!self.term.is_zero() || self.now >= u64::from(self.config.bootstrap_ticks))
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.config.election_ticks;
        let jitter = self.rng.random_range(0..=self.config.election_jitter_ticks);
        let factor = if self.config.campaign == CampaignPolicy::Reluctant {
            3
        } else {
            1
        };
        self.randomized_timeout = (base + jitter) * factor;
    }

    /// Becomes a follower of `term` (a higher term forgets the vote).
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<PeerId>) {
        if let RoleState::Leader(state) = &mut self.role {
            if let Some(t) = state.transfer.take() {
                let outcome = TransferOutcome::SteppedDown { to: t.to, term };
                self.transfer_outcomes.push(outcome);
            }
            let waiting = state.reads.drain();
            self.fail_leader_reads(waiting);
        }
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.clients.strand(term, &mut self.outcomes);
            // Messages queued for after the sync in an older term promise nothing now.
            self.after_sync
                .retain(|(_, m)| m.term().is_none_or(|t| t >= term));
            if self.pending_ack.is_some_and(|a| a.term < term) {
                self.pending_ack = None;
            }
        }
        self.role = RoleState::Follower;
        self.leader = leader;
        self.pending_broadcast = false;
        self.pending_heartbeat = false;
        self.quiesced = false;
        self.idle_ticks = 0;
        self.reset_election_timer();
    }

    /// Records configuration entries among `entries` written from `from` on.
    pub(crate) fn note_configs(&mut self, entries: &[(Index, Membership)], from: Index) {
        self.members.truncate_from(from);
        for (i, m) in entries {
            if *i >= from {
                self.members.push(*i, m.clone());
            }
        }
    }

    /// The commit index rose: settle configuration history.
    pub(crate) fn on_commit_advanced(&mut self) {
        self.members.compact(self.log.committed);
    }

    /// Debug-only: the ordering invariants (STYLE.md).
    pub(crate) fn check_invariants(&self) {
        self.log.check_invariants();
        debug_assert!(
            self.log.last().term() <= self.term,
            "last entry {} is of a term above the current {}",
            self.log.last(),
            self.term
        );
        if let RoleState::Leader(_) = self.role {
            debug_assert_eq!(self.leader, Some(self.id));
        }
    }

    /// Test hook: overrides the RNG-drawn election timeout.
    #[doc(hidden)]
    pub fn force_election_timeout(&mut self, ticks: u32) {
        self.randomized_timeout = ticks;
    }
}
