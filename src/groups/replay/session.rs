//! The replay session on a lagging follower: spreads batch requests over providers, puts
//! answers back in order, hands them to the core.

use super::message::ReplayMessage;
use super::stats::ReplayStats;
use super::{LogReplaySync, MAX_INFLIGHT_PER_PEER, REQUEST_TIMEOUT};
use crate::groups::machine::{StateMachine, StateSyncSession, SyncSessionContext};
use crate::groups::raft::Entry;
use crate::groups::{Cursor, Index, Term};
use crate::PeerId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// How often availability is asked again while batches wait to be asked for.
const ASK_AGAIN: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Clone, Copy, Debug)]
struct Available {
    first: Index,
    committed: Index,
}

struct Inflight {
    peer: PeerId,
    to: Index,
    sent: Instant,
}

/// One catch-up by log replay.
pub struct ReplaySession<M> {
    batch_size: u64,
    stats: Arc<ReplayStats>,
    /// The next index to hand to the core.
    next: Index,
    /// The last index to fetch (the leader's commit when the session started).
    target: Index,
    /// Term of the last entry handed over.
    last_term: Term,
    providers: BTreeMap<PeerId, Available>,
    /// Batch starts not yet asked (each covers `start ..= start + batch_size - 1`).
    todo: VecDeque<(Index, Index)>,
    inflight: BTreeMap<Index, Inflight>,
    /// Answers waiting for earlier batches.
    received: BTreeMap<Index, (Vec<Entry>, Index)>,
    asked: Option<Instant>,
    /// Peers asked for their availability; a peer that bonds later is asked at the next
    /// poll, so it shares the load from then on.
    asked_peers: BTreeSet<PeerId>,
    _machine: PhantomData<fn() -> M>,
}

impl<M: StateMachine<StateSync = LogReplaySync<M>>> ReplaySession<M> {
    pub(super) fn new(
        cx: &mut dyn SyncSessionContext<LogReplaySync<M>>,
        leader_commit: Index,
        batch_size: u64,
        stats: Arc<ReplayStats>,
    ) -> Self {
        stats.sessions.fetch_add(1, Ordering::Relaxed);
        let committed = cx.committed();
        let next = committed.index().next();
        let mut todo = VecDeque::new();
        let mut start = next;
        while start <= leader_commit {
            let end = Index(start.0.saturating_add(batch_size - 1)).min(leader_commit);
            todo.push_back((start, end));
            start = end.next();
        }
        let mut session = ReplaySession {
            batch_size,
            stats,
            next,
            target: leader_commit,
            last_term: committed.term(),
            providers: BTreeMap::new(),
            todo,
            inflight: BTreeMap::new(),
            received: BTreeMap::new(),
            asked: None,
            asked_peers: BTreeSet::new(),
            _machine: PhantomData,
        };
        session.ask_availability(cx);
        session
    }

    fn ask_availability(&mut self, cx: &mut dyn SyncSessionContext<LogReplaySync<M>>) {
        self.asked = Some(Instant::now());
        match cx.broadcast(ReplayMessage::Availability) {
            Ok(peers) => self.asked_peers.extend(peers),
            Err(err) => tracing::warn!(%err, "cannot encode the availability request"),
        }
    }

    /// Asks the bonded peers not asked yet.
    fn ask_new_peers(&mut self, cx: &mut dyn SyncSessionContext<LogReplaySync<M>>) {
        for peer in cx.peers() {
            if peer == cx.local_id() || self.asked_peers.contains(&peer) {
                continue;
            }
            match cx.send_to(peer, ReplayMessage::Availability) {
                Ok(()) => {
                    self.asked_peers.insert(peer);
                }
                Err(err) => tracing::warn!(%err, "cannot encode the availability request"),
            }
        }
    }

    /// Picks a provider for `start ..= end`: one that holds it, with room, the fewest
    /// batches in flight, the leader only when no other provider can take it.
    fn pick(&self, start: Index, end: Index, leader: PeerId) -> Option<PeerId> {
        let load = |p: &PeerId| self.inflight.values().filter(|f| f.peer == *p).count();
        self.providers
            .iter()
            .filter(|(_, a)| a.first <= start && a.committed >= end)
            .map(|(p, _)| *p)
            .filter(|p| load(p) < MAX_INFLIGHT_PER_PEER)
            .min_by_key(|p| (*p == leader, load(p)))
    }

    fn dispatch(&mut self, cx: &mut dyn SyncSessionContext<LogReplaySync<M>>) {
        let leader = cx.leader();
        while let Some(&(start, end)) = self.todo.front() {
            let Some(peer) = self.pick(start, end, leader) else {
                break;
            };
            self.todo.pop_front();
            if cx
                .send_to(
                    peer,
                    ReplayMessage::Fetch {
                        from: start,
                        to: end,
                    },
                )
                .is_err()
            {
                self.todo.push_front((start, end));
                break;
            }
            self.inflight.insert(
                start,
                Inflight {
                    peer,
                    to: end,
                    sent: Instant::now(),
                },
            );
        }
    }

    fn deliver(&mut self, cx: &mut dyn SyncSessionContext<LogReplaySync<M>>) {
        while let Some((&start, _)) = self.received.first_key_value() {
            if start > self.next {
                break;
            }
            let Some((mut entries, committed)) = self.received.remove(&start) else {
                break;
            };
            // The core may have moved past part of it.
            entries.retain(|e| e.index >= self.next);
            if let Some(last) = entries.last() {
                self.next = last.index.next();
                self.last_term = last.term;
            } else {
                continue;
            }
            self.stats
                .delivered
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            cx.append_committed(entries, committed);
        }
    }

    fn done(&self) -> bool {
        self.next > self.target
    }
}

impl<M: StateMachine<StateSync = LogReplaySync<M>>> StateSyncSession for ReplaySession<M> {
    type Owner = LogReplaySync<M>;

    fn poll(
        &mut self,
        _: &mut Context<'_>,
        cx: &mut dyn SyncSessionContext<LogReplaySync<M>>,
    ) -> Poll<Cursor> {
        // The core may have moved past some batches on its own (the leader resumed).
        let committed = cx.committed().index();
        if committed >= self.next {
            self.next = committed.next();
            self.last_term = cx.committed().term();
            self.todo.retain(|(_, end)| *end >= self.next);
        }
        if self.done() {
            return Poll::Ready(Cursor(self.last_term, self.target.min(self.next.prev())));
        }
        let now = Instant::now();
        let expired: Vec<Index> = self
            .inflight
            .iter()
            .filter(|(_, f)| now.duration_since(f.sent) > REQUEST_TIMEOUT)
            .map(|(s, _)| *s)
            .collect();
        for start in expired.into_iter().rev() {
            if let Some(f) = self.inflight.remove(&start) {
                tracing::debug!(peer = %crate::primitives::Short(&f.peer), from = start.0, "replay batch timed out");
                self.providers.remove(&f.peer);
                self.todo.push_front((start, f.to));
            }
        }
        if !self.todo.is_empty() {
            self.ask_new_peers(cx);
        }
        self.dispatch(cx);
        // Asked again while work remains, not only when nothing is in flight: a peer that
        // bonded after the first ask (or was dropped after a timeout) then shares the load
        // instead of one provider serving everything.
        if !self.todo.is_empty() && self.asked.is_none_or(|t| now.duration_since(t) > ASK_AGAIN) {
            self.ask_availability(cx);
        }
        Poll::Pending
    }

    fn receive(
        &mut self,
        message: ReplayMessage,
        sender: PeerId,
        cx: &mut dyn SyncSessionContext<LogReplaySync<M>>,
    ) {
        match message {
            ReplayMessage::Available { first, committed } => {
                tracing::debug!(
                    peer = %crate::primitives::Short(&sender),
                    first = first.0,
                    committed = committed.0,
                    "replay provider available"
                );
                self.providers
                    .insert(sender, Available { first, committed });
                self.dispatch(cx);
            }
            ReplayMessage::Entries {
                from,
                entries,
                committed,
            } => {
                let Some(flight) = self.inflight.get(&from) else {
                    return;
                };
                if flight.peer != sender {
                    return;
                }
                let to = flight.to;
                let valid = entries
                    .iter()
                    .enumerate()
                    .all(|(i, e)| e.index.0 == from.0 + i as u64)
                    && entries.len() as u64 <= to.0 - from.0 + 1;
                self.inflight.remove(&from);
                if entries.is_empty() || !valid {
                    // It cannot serve this (pruned, or a bad answer): ask someone else.
                    self.providers.remove(&sender);
                    self.todo.push_front((from, to));
                } else {
                    self.stats.fetched_from(sender, entries.len());
                    let got_to = Index(from.0 + entries.len() as u64 - 1);
                    if got_to < to {
                        self.todo.push_front((got_to.next(), to));
                    }
                    self.received.insert(from, (entries, committed));
                    self.deliver(cx);
                }
                self.dispatch(cx);
            }
            ReplayMessage::Availability | ReplayMessage::Fetch { .. } => {}
        }
        let _ = self.batch_size;
    }

    fn buffer(
        &mut self,
        _: Cursor,
        _: Vec<Entry>,
        _: &mut dyn SyncSessionContext<LogReplaySync<M>>,
    ) {
        // The leader resends everything after the replayed range once the session ends.
    }
}
