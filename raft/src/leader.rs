//! The leader: replication with per-follower progress and bounded pipelining (§5.3), the
//! commit rule (§5.4.2: only entries of the leader's own term are committed by counting),
//! check-quorum (§6.2), read-index confirmation (§6.4), learner promotion and membership
//! changes (dissertation §4), and asking far-behind followers to catch up by log replay.

use super::log::LogReader;
use super::membership::{LearnerKind, MembershipChange};
use super::message::Entry;
use super::message::{
    AppendEntries, AppendEntriesResponse, Message, Payload, ReadIndex, ReadIndexResponse, Vote,
};
use super::node::{Node, RoleState};
use super::progress::{Progress, ProgressState};
use super::quorum;
use super::read_index::LeaderReads;
use super::transfer::Transfer;
use super::RaftError;
use crate::output::ClientError;
use crate::output::ReadOutcome;
use crate::PeerId;
use crate::{Cursor, Index};
use std::collections::BTreeMap;

/// Catch-ups that may stall in a row before the leader streams to that follower instead.
const MAX_REPLAY_FAILURES: u32 = 3;

/// A follower in `Sync` whose matched index does not move for this many election
/// timeouts goes back to `Probe`.
const SYNC_STALL_ELECTIONS: u32 = 4;

/// What only a leader keeps.
#[derive(Debug)]
pub(crate) struct LeaderState {
    /// Every other member's progress.
    pub(crate) progress: BTreeMap<PeerId, Progress>,
    /// Read-index rounds.
    pub(crate) reads: LeaderReads,
    /// The leadership transfer in progress (see `transfer.rs`).
    pub(crate) transfer: Option<Transfer>,
}

impl Node {
    /// Wins the election: progress for every member, a no-op of the new term (§8).
    pub(crate) fn become_leader(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let next = self.log.last().index().next();
        let max_inflight = self.config.max_inflight;
        let progress = self
            .members
            .current()
            .members()
            .filter(|p| **p != self.id)
            .map(|p| {
                let mut pr = Progress::new(next, max_inflight);
                pr.recent_active = true;
                (*p, pr)
            })
            .collect();
        self.role = RoleState::Leader(Box::new(LeaderState {
            progress,
            reads: LeaderReads::default(),
            transfer: None,
        }));
        self.leader = Some(self.id);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.quiesced = false;
        self.idle_ticks = 0;
        if !self.config.knobs().skip_noop {
            self.append_local(Payload::Noop, store)?;
        }
        // Client calls that waited here for a leader: forwards never sent anywhere are
        // proposed by this node itself, and reads are served by it.
        for (id, payload) in self.clients.take_unsent() {
            let at = self.append_local(Payload::Command(payload), store)?;
            self.clients.track(id, at);
        }
        for ctx in self.follower_reads.take_all() {
            self.leader_read(ctx, None, store)?;
        }
        self.broadcast_append(store)?;
        self.maybe_commit(store)
    }

    pub(crate) fn leader_state(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            RoleState::Leader(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn tick_leader(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            if !self.check_quorum() {
                let term = self.term;
                self.become_follower(term, None);
                return Ok(());
            }
        }
        self.tick_transfer();
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(store)?;
        }
        self.send_commit_notices(store)?;
        self.tick_syncing(store)?;
        self.maybe_promote(store)
    }

    /// Followers in `Sync` whose catch-up made no progress for a while go back to `Probe`
    /// (the session was lost: a crash, a partition), and are probed at once.
    fn tick_syncing(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let limit = self.config.election_ticks.max(1) * SYNC_STALL_ELECTIONS;
        let stalled: Vec<PeerId> = match &mut self.role {
            RoleState::Leader(s) => s
                .progress
                .iter_mut()
                .filter_map(|(p, pr)| pr.tick_sync(limit).then_some(*p))
                .collect(),
            _ => return Ok(()),
        };
        for p in stalled {
            self.send_append(p, false, store)?;
        }
        Ok(())
    }

    /// Whether a follower that matches at `matched`, after `failures` stalled catch-ups,
    /// should catch up by log replay rather than be streamed to: it is more than
    /// `replay_threshold` entries behind the leader's *commit* index. Replay moves only
    /// committed entries; measured against the last index, a leader whose commit lags its
    /// log (a new leader before its no-op commits) would send followers to replay what they
    /// already have, and never stream them the entries it needs to commit.
    fn wants_replay(&self, matched: Index, failures: u32) -> bool {
        let threshold = self.config.replay_threshold;
        threshold > 0
            && self.log.committed.0.saturating_sub(matched.0) > threshold
            && failures < MAX_REPLAY_FAILURES
    }

    /// Asks `to` (in `Sync`) to catch up by itself: an append flagged `catch_up`, carrying
    /// the newest entries when `with_entries` (its previous entry above the follower's
    /// matched index, so it does not follow a log that ends there), else none.
    fn send_catch_up(
        &mut self,
        to: PeerId,
        with_entries: bool,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let last = self.log.last();
        let matched = match &self.role {
            RoleState::Leader(s) => match s.progress.get(&to) {
                Some(pr) => pr.matched,
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        let max = self.config.max_entries_per_append.max(1) as u64;
        let mut from = last.index().next();
        if with_entries {
            let newest = Index(last.index().0.saturating_sub(max - 1).max(1));
            from = newest.max(matched.next().next()).min(from);
        }
        let (prev, entries) = match self.log.term_at(from.prev(), store)? {
            Some(t) if from <= last.index() => (
                Cursor(t, from.prev()),
                self.capped(self.log.entries(from, last.index(), max as usize, store)?),
            ),
            _ => (last, Vec::new()),
        };
        self.send_append_message(to, prev, entries, true);
        Ok(())
    }

    /// Cuts a batch to `max_bytes_per_append` payload bytes, keeping at least one entry.
    fn capped(&self, mut entries: Vec<Entry>) -> Vec<Entry> {
        let mut bytes = 0usize;
        let keep = entries
            .iter()
            .position(|e| {
                bytes += e.payload_len();
                bytes > self.config.max_bytes_per_append
            })
            .unwrap_or(entries.len())
            .max(1);
        entries.truncate(keep);
        entries
    }

    /// Sends one AppendEntries of this term carrying the current read round (the one
    /// place the message is assembled). Does nothing when not leading.
    fn send_append_message(
        &mut self,
        to: PeerId,
        prev: Cursor,
        entries: Vec<Entry>,
        catch_up: bool,
    ) {
        let seq = match &mut self.role {
            RoleState::Leader(s) => {
                // What this append tells the follower of the commit index: no more than
                // the entries it vouches for.
                if let Some(pr) = s.progress.get_mut(&to) {
                    let covers = entries.last().map_or(prev.index(), |e| e.index);
                    pr.told_commit = pr.told_commit.max(self.log.committed.min(covers));
                }
                s.reads.seq
            }
            _ => return,
        };
        let msg = AppendEntries {
            term: self.term,
            leader: self.id,
            prev_log_position: prev,
            entries,
            leader_commit: self.log.committed,
            seq,
            catch_up,
        };
        self.send(to, Message::AppendEntries(msg));
    }

    /// §6.2: a leader that has not heard from a majority of voters in an election timeout
    /// steps down. Resets the activity marks for the next round.
    fn check_quorum(&mut self) -> bool {
        let me = self.id;
        let voters = self.members.current().voters().clone();
        let Some(state) = self.leader_state() else {
            return false;
        };
        let ok = quorum::has_quorum(&voters, |p| {
            *p == me || state.progress.get(p).is_some_and(|pr| pr.recent_active)
        });
        for pr in state.progress.values_mut() {
            pr.recent_active = false;
        }
        ok
    }

    /// Appends one entry of the current term to the leader's log; replication follows at
    /// the next `ready()` (so a burst of proposals goes out as one append).
    pub(crate) fn append_local(
        &mut self,
        payload: Payload,
        store: &dyn LogReader,
    ) -> Result<Cursor, RaftError> {
        let at = Cursor(self.term, self.log.last().index().next());
        let config = match &payload {
            Payload::Config(m) => Some(m.clone()),
            _ => None,
        };
        self.log.append(
            vec![Entry {
                term: at.term(),
                index: at.index(),
                payload,
            }],
            store,
        )?;
        if let Some(m) = config {
            self.members.push(at.index(), m);
            self.sync_progress();
        }
        self.pending_broadcast = true;
        Ok(at)
    }

    /// Keeps one progress per member after a configuration change.
    fn sync_progress(&mut self) {
        let members: Vec<PeerId> = self.members.current().members().copied().collect();
        let me = self.id;
        let next = self.log.last().index();
        let max_inflight = self.config.max_inflight;
        let Some(state) = self.leader_state() else {
            return;
        };
        state.progress.retain(|p, _| members.contains(p));
        for p in members {
            if p != me {
                state.progress.entry(p).or_insert_with(|| {
                    let mut pr = Progress::new(next, max_inflight);
                    pr.recent_active = true;
                    pr
                });
            }
        }
        self.check_transfer_target();
    }

    /// Sends entries to every follower whose flow control allows it.
    pub(crate) fn broadcast_append(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let peers: Vec<PeerId> = match &self.role {
            RoleState::Leader(s) => s.progress.keys().copied().collect(),
            _ => return Ok(()),
        };
        for p in peers {
            self.send_append(p, false, store)?;
        }
        Ok(())
    }

    /// Sends the next append to `to` if flow control allows. `probe_empty` also sends an
    /// empty append at `next - 1` when nothing new is left (to find lost appends).
    pub(crate) fn send_append(
        &mut self,
        to: PeerId,
        probe_empty: bool,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let last = self.log.last().index();
        let (next, state, can_send) = match &self.role {
            RoleState::Leader(s) => match s.progress.get(&to) {
                Some(pr) => (pr.next, pr.state, pr.can_send_entries(last)),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        let has_new = next <= last;
        if state == ProgressState::Sync
            || !(can_send || (probe_empty && state == ProgressState::Replicate))
        {
            return Ok(());
        }
        if state == ProgressState::Replicate && !has_new && !probe_empty {
            return Ok(());
        }
        let prev_index = next.prev();
        let Some(prev_term) = self.log.term_at(prev_index, store)? else {
            // The entries this follower needs are pruned here: it catches up by state sync.
            if let Some(pr) = self.leader_state().and_then(|s| s.progress.get_mut(&to)) {
                pr.become_sync();
            }
            return self.send_catch_up(to, true, store);
        };
        let entries = if has_new && can_send {
            self.capped(
                self.log
                    .entries(next, last, self.config.max_entries_per_append, store)?,
            )
        } else {
            Vec::new()
        };
        let last_sent = entries.last().map(|e| e.index).unwrap_or(prev_index);
        match self.leader_state().map(|s| s.progress.get_mut(&to)) {
            Some(Some(pr)) => pr.sent(last_sent),
            Some(None) => {}
            None => return Ok(()),
        }
        self.send_append_message(to, Cursor(prev_term, prev_index), entries, false);
        Ok(())
    }

    /// An empty append at each follower's matched index: asserts leadership, carries the
    /// commit index and the read round, and unsticks stalled flows via its answers.
    pub(crate) fn broadcast_heartbeat(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let targets: Vec<(PeerId, Index)> = match &mut self.role {
            RoleState::Leader(s) => s
                .progress
                .iter_mut()
                .map(|(p, pr)| {
                    pr.unstick_sent = false;
                    (*p, pr.matched)
                })
                .collect(),
            _ => return Ok(()),
        };
        for (p, matched) in targets {
            self.send_heartbeat(p, matched, store)?;
        }
        Ok(())
    }

    fn send_heartbeat(
        &mut self,
        to: PeerId,
        matched: Index,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let prev = match self.log.term_at(matched, store)? {
            Some(t) => Cursor(t, matched),
            None => Cursor::zero(),
        };
        self.send_append_message(to, prev, Vec::new(), false);
        Ok(())
    }

    pub(crate) fn handle_append_response(
        &mut self,
        from: PeerId,
        r: AppendEntriesResponse,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let last = self.log.last().index();
        let Some(state) = self.leader_state() else {
            return Ok(());
        };
        state.reads.ack(from, r.seq);
        let Some(pr) = state.progress.get_mut(&from) else {
            return Ok(());
        };
        pr.recent_active = true;
        pr.heard_since_wake = true;
        match r.vote {
            Vote::Granted => {
                // A follower cannot hold more than the leader sent; ignore a lie.
                let index = r.last_log_index.min(last);
                if pr.maybe_update(index) {
                    // Where the follower stands is known now: stream to it, or (far behind)
                    // let it catch up by log replay, asking again after each report while
                    // it is still far behind (a finished session reports its position).
                    let state = pr.state;
                    let (matched, failures) = (pr.matched, pr.replay_failures);
                    let replay =
                        state != ProgressState::Replicate && self.wants_replay(matched, failures);
                    if let Some(pr) = self.leader_state().and_then(|s| s.progress.get_mut(&from)) {
                        if replay && state == ProgressState::Probe {
                            pr.become_sync();
                        } else if !replay && state != ProgressState::Replicate {
                            pr.become_replicate();
                        }
                    }
                    self.maybe_commit(store)?;
                    // A forwarder whose commands are committed learns it as soon as it
                    // holds them (the others were seen to when the commit moved).
                    self.send_forwarder_notice_where(store, |p| *p == from)?;
                    if replay {
                        self.send_catch_up(from, state == ProgressState::Probe, store)?;
                    } else {
                        self.send_append(from, false, store)?;
                    }
                } else if !pr.unstick_sent && pr.matched < last {
                    // A heartbeat answer (or a stale ack) while the follower is behind:
                    // unstick a paused flow, at most once per heartbeat interval (acks
                    // must not feed a chain of these; a lost append would otherwise stall
                    // a pipelined follower for good).
                    pr.unstick_sent = true;
                    match pr.state {
                        ProgressState::Probe => pr.probe_sent = false,
                        ProgressState::Replicate if pr.inflights.full() => {
                            pr.inflights.free_first()
                        }
                        _ => {}
                    }
                    self.send_append(from, true, store)?;
                }
                self.maybe_send_timeout_now(from);
            }
            Vote::Denied | Vote::Abstained => {
                if pr.state == ProgressState::Sync && r.vote == Vote::Abstained {
                    // Still syncing; nothing to send until it reports a match.
                } else if pr.maybe_decrease(r.rejected, r.last_log_index) {
                    self.send_append(from, false, store)?;
                }
            }
        }
        self.confirm_reads(store)?;
        Ok(())
    }

    /// §5.3/§5.4.2: the highest index durable on a majority of voters (the leader counts
    /// its own copy only once synced) is committed if its entry is of the current term.
    pub(crate) fn maybe_commit(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let me = self.id;
        let own = self.log.durable.index();
        let candidate = {
            let RoleState::Leader(state) = &self.role else {
                return Ok(());
            };
            quorum::committed_index(self.members.current().voters(), |p| {
                if *p == me {
                    own
                } else {
                    state.progress.get(p).map_or(Index(0), |pr| pr.matched)
                }
            })
        };
        if candidate <= self.log.committed {
            return Ok(());
        }
        let current_term = self.log.term_at(candidate, store)? == Some(self.term);
        if !current_term && !self.config.knobs().commit_any_term {
            return Ok(());
        }
        self.log.commit_to(candidate);
        self.on_commit_advanced();
        self.on_leader_commit(store)
    }

    /// After the leader's commit index rose: step down if no longer a voter, release reads
    /// that waited for the first commit of the term, tell idle followers.
    fn on_leader_commit(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        if !self.members.current().is_voter(&self.id)
            && self.members.current_index() <= self.log.committed
        {
            let term = self.term;
            self.become_follower(term, None);
            return Ok(());
        }
        if self.log.term_at(self.log.committed, store)? == Some(self.term) {
            let committed = self.log.committed;
            if let RoleState::Leader(state) = &mut self.role {
                let waiting = std::mem::take(&mut state.reads.waiting);
                let any = !waiting.is_empty();
                for (ctx, origin) in waiting {
                    state.reads.request(ctx, origin, committed);
                }
                if any {
                    self.broadcast_heartbeat(store)?;
                }
            }
            self.confirm_reads(store)?;
        }
        // Followers learn the commit index from the next append, or from a notice a moment
        // later (see `send_commit_notices`): under a steady load the next append carries
        // it, and the notice and its answer (two messages per follower and write) are
        // never sent. A follower waiting for commands it forwarded is told at once: its
        // clients wait for it.
        self.send_forwarder_notices(store)
    }

    /// Whether a follower has yet to learn a commit index the leader could tell it: the
    /// driver then calls [`Node::send_commit_notices`] a moment later, unless an append
    /// told it meanwhile.
    pub fn commit_notices_pending(&self) -> bool {
        match &self.role {
            RoleState::Leader(s) => s
                .progress
                .values()
                .any(|pr| pr.commit_notice_due(self.log.committed)),
            _ => false,
        }
    }

    /// Tells every follower what it has yet to learn of the commit index (an empty append
    /// at its matched index). Called by the driver a moment after a commit, and on every
    /// tick.
    pub fn send_commit_notices(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        self.send_notices_where(store, |_, _| true)
    }

    /// Tells, now, the followers whose forwarded commands are committed and who are not
    /// told yet.
    fn send_forwarder_notices(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        self.send_forwarder_notice_where(store, |_| true)
    }

    /// As `send_forwarder_notices`, for the followers that pass `pick` only.
    fn send_forwarder_notice_where(
        &mut self,
        store: &dyn LogReader,
        pick: impl Fn(&PeerId) -> bool,
    ) -> Result<(), RaftError> {
        let committed = self.log.committed;
        self.send_notices_where(store, |p, pr| {
            pick(p)
                && pr
                    .forwarded_to
                    .is_some_and(|to| to <= committed.min(pr.matched))
        })
    }

    /// Sends a commit notice to every follower that has one due and passes `pick`.
    fn send_notices_where(
        &mut self,
        store: &dyn LogReader,
        pick: impl Fn(&PeerId, &super::progress::Progress) -> bool,
    ) -> Result<(), RaftError> {
        let committed = self.log.committed;
        let due: Vec<(PeerId, Index)> = match &self.role {
            RoleState::Leader(s) => s
                .progress
                .iter()
                .filter(|(p, pr)| pr.commit_notice_due(committed) && pick(p, pr))
                .map(|(p, pr)| (*p, pr.matched))
                .collect(),
            _ => return Ok(()),
        };
        for (p, matched) in due {
            self.send_heartbeat(p, matched, store)?;
        }
        Ok(())
    }

    /// Sends `peer` its commit notice now if it has one due.
    fn send_commit_notice_to(
        &mut self,
        peer: PeerId,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        self.send_notices_where(store, |p, _| *p == peer)
    }

    /// A read index request on the leader (`origin` is the asking follower, if any).
    pub(crate) fn leader_read(
        &mut self,
        ctx: u64,
        origin: Option<PeerId>,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        let ready = self.log.term_at(self.log.committed, store)? == Some(self.term);
        let committed = self.log.committed;
        let RoleState::Leader(state) = &mut self.role else {
            return Ok(());
        };
        if ready {
            state.reads.request(ctx, origin, committed);
            self.confirm_reads(store)?;
            self.broadcast_heartbeat(store)?;
        } else {
            state.reads.waiting.push((ctx, origin));
        }
        Ok(())
    }

    pub(crate) fn handle_read_index(
        &mut self,
        from: PeerId,
        m: ReadIndex,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        if self.is_leader() {
            self.leader_read(m.ctx, Some(from), store)
        } else {
            let term = self.term;
            self.send(
                from,
                Message::ReadIndexResponse(ReadIndexResponse {
                    term,
                    ctx: m.ctx,
                    index: None,
                }),
            );
            Ok(())
        }
    }

    /// Serves reads whose round a majority confirmed.
    fn confirm_reads(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let me = self.id;
        let term = self.term;
        let voters = self.members.current().voters().clone();
        let done = match &mut self.role {
            RoleState::Leader(s) => s.reads.confirmed(&voters, me),
            _ => return Ok(()),
        };
        for r in done {
            match r.origin {
                None => self.reads_out.push(ReadOutcome {
                    ctx: r.ctx,
                    result: Ok(r.index),
                }),
                Some(peer) => {
                    // The follower serves the read once it applied `r.index`: it must know
                    // that index committed (the round's heartbeats told it, unless a
                    // commit came after them).
                    self.send_commit_notice_to(peer, store)?;
                    self.send(
                        peer,
                        Message::ReadIndexResponse(ReadIndexResponse {
                            term,
                            ctx: r.ctx,
                            index: Some(r.index),
                        }),
                    )
                }
            }
        }
        Ok(())
    }

    /// Whether the leader may propose a membership change now: its previous change and an
    /// entry of its term are committed (dissertation §4.1 and its single-server fix), and
    /// it is not handing leadership over.
    fn change_allowed(&self, store: &dyn LogReader) -> Result<Result<(), ClientError>, RaftError> {
        if !self.is_leader() {
            return Ok(Err(ClientError::NotLeader {
                leader: self.leader,
            }));
        }
        if let Some(to) = self.transfer_target() {
            return Ok(Err(ClientError::TransferInProgress { to }));
        }
        if self.members.current_index() > self.log.committed {
            return Ok(Err(ClientError::ChangePending {
                index: self.members.current_index(),
            }));
        }
        if self.log.term_at(self.log.committed, store)? != Some(self.term) {
            return Ok(Err(ClientError::LeaderNotReady { term: self.term }));
        }
        Ok(Ok(()))
    }

    /// Proposes one membership change (leader only). Returns where the configuration
    /// entry went; it takes effect at once, and the next change waits for its commit.
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
        store: &dyn LogReader,
    ) -> Result<Result<Cursor, ClientError>, RaftError> {
        self.unquiesce(None);
        if let Err(e) = self.change_allowed(store)? {
            // A change that is wrong whatever the leader's state (adding a member, promoting
            // a voter) says so rather than "not now": retrying it would never help.
            if self.is_leader() {
                if let Err(wrong) = self.members.current().apply(change) {
                    return Ok(Err(wrong.into()));
                }
            }
            return Ok(Err(e));
        }
        let next = match self.members.current().apply(change) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(Ok(self.append_local(Payload::Config(next), store)?))
    }

    /// Promotes a caught-up learner while voters are fewer than `max_voters`, so that the
    /// voter count never *rests* on an even number: a promotion that makes it even happens
    /// only when a second caught-up learner is there to be promoted right after.
    ///
    /// Why: an even voter set tolerates no more failures than the odd one below it, and
    /// growing 1 → 2 voters leaves a window in which losing *either* node stops the group
    /// for good (no quorum left to remove the dead one). So a group founded alone stays at
    /// one voter with its first learner, and goes 1 → 2 → 3 only once two learners are
    /// caught up, the 2-voter step lasting one configuration commit.
    fn maybe_promote(&mut self, store: &dyn LogReader) -> Result<(), RaftError> {
        let voters = self.members.current().voters().len();
        if voters >= self.config.max_voters || self.change_allowed(store)?.is_err() {
            return Ok(());
        }
        let committed = self.log.committed;
        let ready: Vec<PeerId> = match &self.role {
            RoleState::Leader(s) => self
                .members
                .current()
                .learners()
                .iter()
                .filter(|(_, k)| **k == LearnerKind::CatchingUp)
                .map(|(p, _)| *p)
                .filter(|p| {
                    s.progress
                        .get(p)
                        .is_some_and(|pr| pr.matched >= committed && pr.recent_active)
                })
                .collect(),
            _ => Vec::new(),
        };
        let odd_after = (voters + 1) % 2 == 1;
        let pair_ready = ready.len() >= 2 && voters + 2 <= self.config.max_voters;
        if let Some(peer) = ready.first() {
            if odd_after || pair_ready {
                let _ = self.propose_membership(MembershipChange::Promote(*peer), store)?;
            }
        }
        Ok(())
    }

    /// A peer announced a new state incarnation (it restarted, and may have lost what it
    /// held: an in-memory store reopened under the same peer id), with `durable`, the last
    /// entry it now holds durably. What this leader knew of its log no longer holds: its
    /// matched index drops to what it says it has, so it counts toward no commit until it
    /// acknowledges again, and it is probed from there (and caught up by log or snapshot).
    pub fn on_peer_restarted(
        &mut self,
        peer: PeerId,
        durable: Index,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        self.unquiesce(None);
        let Some(pr) = self.leader_state().and_then(|s| s.progress.get_mut(&peer)) else {
            return Ok(());
        };
        pr.matched = pr.matched.min(durable);
        // It forgot what it was told of the commit index.
        pr.told_commit = Index(0);
        pr.replay_failures = 0;
        pr.become_probe();
        self.send_append(peer, false, store)
    }

    /// Test view: how the leader talks to a follower.
    #[cfg(test)]
    pub(crate) fn progress_state(&self, peer: &PeerId) -> Option<ProgressState> {
        match &self.role {
            RoleState::Leader(s) => s.progress.get(peer).map(|p| p.state),
            _ => None,
        }
    }

    /// Test and diagnostics view: (matched, next) of a follower.
    pub fn progress_of(&self, peer: &PeerId) -> Option<(Index, Index)> {
        match &self.role {
            RoleState::Leader(s) => s.progress.get(peer).map(|p| (p.matched, p.next)),
            _ => None,
        }
    }
}
