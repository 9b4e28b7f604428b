//! Quiescence: an idle group costs nothing (CockroachDB's quiesced ranges, TiKV's hibernate
//! regions).
//!
//! A leader whose group stayed idle for [`RaftConfig::quiesce_after_ticks`] ticks in a row
//! (every member matched its last index and answered since the leader last woke, all of
//! it committed and durable here, no client
//! call, read round, transfer, membership change or catch-up in flight) sends each member
//! a [`Quiesce`] notice (term, commit, last entry) and stops heartbeating and counting
//! check-quorum rounds. A follower that is told so by the leader it follows, in its own
//! term, with a log ending at the notice's last entry (so it holds the leader's whole log,
//! §5.3 log matching), takes the commit index and stops its election timer. Nothing else
//! changes: no term, vote or log entry, so quiescence can break no safety property; it
//! only bears on liveness, by silencing the timers that find a dead leader.
//!
//! **A member down.** The driver also says which peers it cannot reach
//! ([`Node::set_reachable`]: in tessera, every link to the peer closed). A leader
//! quiesces without waiting for those, provided the voters it can reach and that caught up
//! and answered since it woke make a majority with it: a group of three with one node
//! down goes idle too, instead of heartbeating for as long as the node stays down. A peer
//! reachable again wakes a quiesced leader, which then catches it up before it quiesces
//! again. A leader that can reach no majority never quiesces (check-quorum then makes it
//! step down, as without quiescence).
//!
//! That job moves to the driver: it calls [`Node::wake`] when it loses contact with the
//! leader (a follower) or with a voter (the leader); in tessera the network closes every
//! link to a node that died or stopped answering. The core itself wakes on any client call
//! (proposal, read, membership change, transfer), on a restarted peer, and on any message
//! but a matching notice or a leader's ack that tells it nothing new (the answers to its
//! last heartbeats, which may arrive after it quiesced). A woken leader heartbeats at
//! once and gives every follower a full check-quorum round; a woken follower restarts its
//! election timer from zero (nobody campaigns at once) and, unless its leader's own
//! message woke it, sends the leader a [`Wake`] so the heartbeats come back before it
//! times out. A quiesced follower stays silent while its leader is alive and silent.
//!
//! Reads: tessera's leader serves reads by read index only (`read_index.rs`: a round of
//! heartbeats confirmed by a majority after the read arrived), never from a lease, so a
//! quiesced leader's stale view cannot serve a read: the read wakes it and waits for the
//! round. The followers' stickiness (votes refused "within a lease", `Node::in_lease`)
//! counts from the wake: a woken node refuses votes for an election timeout, as if it had
//! just heard its leader, which is what a quiesced follower last did.

use super::message::{AppendEntriesResponse, Message, Quiesce, Vote, Wake};
use super::node::{Node, RoleState};
use super::progress::ProgressState;
use super::quorum;
use crate::PeerId;

impl Node {
    /// Whether this node is quiesced: as leader it sends no heartbeats and runs no
    /// check-quorum; as follower its election timer is stopped.
    pub fn is_quiesced(&self) -> bool {
        self.quiesced
    }

    /// The driver's wake-up call: it lost contact with the leader (or, on the leader, with
    /// a voter), or wants the group to run its timers again. Idempotent; a no-op unless
    /// quiesced.
    pub fn wake(&mut self) {
        self.unquiesce(None);
    }

    /// The driver's word on whether it can reach `peer` (every link to it closed, or one
    /// is up again). A quiesced leader wakes when an unreachable peer comes back, to catch
    /// it up; see the module doc.
    pub fn set_reachable(&mut self, peer: PeerId, reachable: bool) {
        if reachable {
            if self.unreachable.remove(&peer) && matches!(self.role, RoleState::Leader(_)) {
                self.unquiesce(None);
            }
        } else if peer != self.id {
            self.unreachable.insert(peer);
        }
    }

    /// Leaves quiescence. `by` is the peer whose message woke this node, if any.
    pub(crate) fn unquiesce(&mut self, by: Option<PeerId>) {
        self.idle_ticks = 0;
        if !self.quiesced {
            return;
        }
        self.quiesced = false;
        if let RoleState::Leader(state) = &mut self.role {
            // A full check-quorum round from now: followers answer the heartbeat below.
            for pr in state.progress.values_mut() {
                pr.recent_active = true;
                pr.heard_since_wake = false;
            }
            self.election_elapsed = 0;
            self.heartbeat_elapsed = 0;
            self.pending_heartbeat = true;
        } else {
            self.reset_election_timer();
            if let Some(leader) = self.leader.filter(|l| Some(*l) != by && *l != self.id) {
                let term = self.term;
                self.send(leader, Message::Wake(Wake { term }));
            }
        }
    }

    /// Whether `msg` from `from` leaves a quiesced node quiesced: a notice from its leader
    /// of its term (checked in full by `handle_quiesce`), or, on the leader, an ack of the
    /// current term that tells it nothing new.
    pub(crate) fn is_quiet(&self, from: PeerId, msg: &Message) -> bool {
        match msg {
            Message::Quiesce(q) => q.term == self.term && self.leader == Some(from),
            Message::AppendEntriesResponse(r) => self.is_idle_ack(from, r),
            _ => false,
        }
    }

    fn is_idle_ack(&self, from: PeerId, r: &AppendEntriesResponse) -> bool {
        let RoleState::Leader(state) = &self.role else {
            return false;
        };
        let last = self.log.last().index();
        r.term == self.term
            && r.vote == Vote::Granted
            && r.last_log_index == last
            && state.reads.is_idle()
            && state
                .progress
                .get(&from)
                .is_some_and(|pr| pr.matched == last)
    }

    /// Whether the leader's group is idle now: see the module doc.
    fn may_quiesce(&self) -> bool {
        let RoleState::Leader(state) = &self.role else {
            return false;
        };
        let last = self.log.last();
        let caught_up = |pr: &super::progress::Progress| {
            pr.matched == last.index()
                && pr.state == ProgressState::Replicate
                && pr.heard_since_wake
        };
        self.config.quiesce_after_ticks > 0
            && !self.pending_broadcast
            && !self.pending_heartbeat
            && !self.syncing
            && self.log.committed == last.index()
            && self.log.durable == last
            && self.members.current_index() <= self.log.committed
            && self.clients.pending() == 0
            && self.follower_reads.is_empty()
            && state.reads.is_idle()
            && state.transfer.is_none()
            && state
                .progress
                .iter()
                .all(|(p, pr)| self.unreachable.contains(p) || caught_up(pr))
            // Every reachable member caught up (above): they must be a majority with it.
            && quorum::has_quorum(self.members.current().voters(), |p| {
                *p == self.id || (state.progress.contains_key(p) && !self.unreachable.contains(p))
            })
    }

    /// Called at the end of each leader tick: counts idle ticks and quiesces once there
    /// were enough of them.
    pub(crate) fn maybe_quiesce(&mut self) {
        if !self.may_quiesce() {
            self.idle_ticks = 0;
            return;
        }
        self.idle_ticks += 1;
        if self.idle_ticks < self.config.quiesce_after_ticks {
            return;
        }
        let notice = Quiesce {
            term: self.term,
            commit: self.log.committed,
            last: self.log.last(),
        };
        let peers: Vec<PeerId> = match &self.role {
            RoleState::Leader(s) => s.progress.keys().copied().collect(),
            _ => return,
        };
        for p in peers {
            self.send(p, Message::Quiesce(notice.clone()));
        }
        self.quiesced = true;
        self.idle_ticks = 0;
    }

    /// A notice of this node's term (the term rules ran). Matching: a follower of `from`
    /// whose log ends at the notice's last entry, nothing of its own pending: it takes the
    /// commit index and quiesces. Otherwise it stays awake and tells the sender to wake.
    pub(crate) fn handle_quiesce(&mut self, from: PeerId, q: Quiesce) {
        let matches = matches!(self.role, RoleState::Follower)
            && self.leader == Some(from)
            && self.log.last() == q.last
            && q.commit <= q.last.index()
            && !self.syncing
            && self.clients.pending() == 0
            && self.follower_reads.is_empty();
        if !matches {
            self.unquiesce(Some(from));
            let term = self.term;
            self.send(from, Message::Wake(Wake { term }));
            return;
        }
        // The log ends at the leader's last entry, so it is the leader's log (§5.3): its
        // commit index holds here too.
        if self.log.commit_to(q.commit) {
            self.on_commit_advanced();
        }
        self.note_leader_commit(q.commit);
        self.election_elapsed = 0;
        self.quiesced = true;
    }

    /// A follower woke up and asks this node to heartbeat again: waking happened in
    /// `step` already (a `Wake` is never quiet).
    pub(crate) fn handle_wake(&mut self, _from: PeerId, _w: Wake) {}
}
