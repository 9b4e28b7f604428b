//! Log-replay catch-up sessions: a model of the worker's `LogReplaySync`.
//!
//! When a node's `Ready` carries a `CatchUp`, a session starts on it. Every tick it keeps a
//! few batch requests in flight to different peers (non-leaders first, the leader only when
//! no other peer is up or a request was already lost), each for the `batch` entries after
//! where its log holds committed entries (`Node::replay_position`) or after the requests
//! before it. A peer answers from its own log with entries up to its commit index. Requests
//! and answers cross the faulty network (delay, loss, partitions); answers are fed to
//! `Node::on_replayed` in log order. The session ends with `Node::finish_catch_up` when the
//! log reaches the leader's commit index of the `CatchUp`, or is abandoned (no progress for
//! a while, or at random); a crash of the node ends it without a word.

use super::{index_of, EventKind, World, TICK};
use crate::{CatchUp, Entry, Index, Storage};
use rand::Rng;
use std::collections::BTreeMap;

/// Requests in flight per session.
const PARALLEL: usize = 3;
/// A request unanswered for this many ticks is sent again (to another peer).
const REQUEST_TIMEOUT: u64 = 8;
/// A session without progress for this many ticks is abandoned.
const IDLE_TIMEOUT: u64 = 40;

/// One session on one node.
pub(super) struct Session {
    id: u64,
    leader: usize,
    /// The leader's commit index in the `CatchUp`: done once the log holds it.
    target: u64,
    /// Entries per request.
    batch: u64,
    /// Requests in flight: first index -> (peer, tick sent, tries).
    outstanding: BTreeMap<u64, (usize, u64, u32)>,
    /// Answers waiting for their turn: first index -> (entries, the peer's commit index).
    buffer: BTreeMap<u64, (Vec<Entry>, u64)>,
    last_progress: u64,
    /// Round-robin cursor over the peers.
    turn: usize,
}

impl World {
    /// A `Ready` of node `i` asked for a catch-up.
    pub(super) fn start_session(&mut self, i: usize, cu: CatchUp) -> Result<(), String> {
        if self.nodes[i].session.is_some() {
            return Err(self.fail(format!(
                "catch-up contract: node {i} reported a CatchUp while its session is open"
            )));
        }
        let id = self.next_session;
        self.next_session += 1;
        let batch = self.rng.random_range(2..=24);
        self.stats.replay_sessions += 1;
        self.note(format!(
            "node {i} starts replay session {id} (leader {}, position {}, leader commit {}, batch {batch})",
            index_of(&cu.leader),
            cu.position,
            cu.leader_commit
        ));
        self.nodes[i].session = Some(Session {
            id,
            leader: index_of(&cu.leader),
            target: cu.leader_commit.0,
            batch,
            outstanding: BTreeMap::new(),
            buffer: BTreeMap::new(),
            last_progress: self.tick,
            turn: self.rng.random_range(0..self.nodes.len()),
        });
        Ok(())
    }

    /// Ends node `i`'s session (caught up or abandoned) and tells its core.
    fn end_session(&mut self, i: usize, caught_up: bool) -> Result<(), String> {
        let Some(s) = self.nodes[i].session.take() else {
            return Ok(());
        };
        if caught_up {
            self.stats.replay_caught_up += 1;
        }
        self.note(format!(
            "node {i} ends replay session {} ({})",
            s.id,
            if caught_up { "caught up" } else { "abandoned" }
        ));
        let sn = &mut self.nodes[i];
        if let Some(node) = sn.node.as_mut() {
            node.finish_catch_up();
        }
        self.drive(i)
    }

    /// Every tick: end, abandon or advance each session.
    pub(super) fn tick_sessions(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            let Some(position) = self.nodes[i].node.as_ref().map(|n| n.replay_position().0) else {
                continue;
            };
            let Some(s) = self.nodes[i].session.as_ref() else {
                continue;
            };
            if position >= s.target {
                self.end_session(i, true)?;
                continue;
            }
            let abandon = self.tick - s.last_progress > IDLE_TIMEOUT
                || (self.faults_on && self.rng.random_bool(0.002));
            if abandon {
                self.end_session(i, false)?;
                continue;
            }
            self.request_batches(i, position);
        }
        Ok(())
    }

    /// Keeps `PARALLEL` requests in flight for the batches after `position`.
    fn request_batches(&mut self, i: usize, position: u64) {
        let n = self.nodes.len();
        let up: Vec<usize> = (0..n)
            .filter(|&j| j != i && self.nodes[j].node.is_some())
            .collect();
        let tick = self.tick;
        let Some(s) = self.nodes[i].session.as_mut() else {
            return;
        };
        // Forget what is behind the log now; resend what timed out.
        s.outstanding = s.outstanding.split_off(&(position + 1));
        s.buffer = s.buffer.split_off(&(position + 1));
        let mut sends = Vec::new();
        let mut from = position + 1;
        for _ in 0..PARALLEL {
            let covered = s.buffer.contains_key(&from);
            let due = match s.outstanding.get(&from) {
                None => !covered,
                Some(&(_, at, _)) => tick - at >= REQUEST_TIMEOUT,
            };
            if due && !up.is_empty() {
                let tries = s.outstanding.get(&from).map_or(0, |o| o.2);
                let others: Vec<usize> = up.iter().copied().filter(|&j| j != s.leader).collect();
                // The leader last: only when no other peer is up or a try was lost.
                let peer = if others.is_empty() || (tries > 0 && s.turn % 2 == 0) {
                    s.leader
                } else {
                    others[s.turn % others.len()]
                };
                s.turn += 1;
                s.outstanding.insert(from, (peer, tick, tries + 1));
                sends.push((peer, from));
            }
            from += s.batch;
        }
        let (id, batch) = (s.id, s.batch);
        for (peer, from) in sends {
            if let Some(delay) = self.link(i, peer) {
                self.schedule(
                    self.now + delay,
                    EventKind::ReplayRequest {
                        session: id,
                        follower: i,
                        provider: peer,
                        from,
                        max: batch,
                    },
                );
            }
        }
    }

    /// A peer answers a batch request from its own log, up to its commit index.
    pub(super) fn serve_replay(
        &mut self,
        session: u64,
        follower: usize,
        provider: usize,
        from: u64,
        max: u64,
    ) -> Result<(), String> {
        let sn = &self.nodes[provider];
        let Some(node) = sn.node.as_ref() else {
            return Ok(());
        };
        let committed = node.commit_index().0;
        let to = committed.min(from + max - 1);
        let entries = if to >= from {
            sn.store
                .get_range(&(Index(from)..=Index(to)))
                .map_err(|e| format!("node {provider} replay read: {e}"))
                .map_err(|e| self.fail(e))?
        } else {
            Vec::new()
        };
        if let Some(delay) = self.link(provider, follower) {
            self.schedule(
                self.now + delay,
                EventKind::ReplayResponse {
                    session,
                    follower,
                    from,
                    entries,
                    committed,
                },
            );
        }
        Ok(())
    }

    /// A batch arrived at node `i`: buffer it, feed what is next in log order.
    pub(super) fn on_replay_response(
        &mut self,
        i: usize,
        session: u64,
        from: u64,
        entries: Vec<Entry>,
        committed: u64,
    ) -> Result<(), String> {
        let tick = self.tick;
        let Some(s) = self.nodes[i].session.as_mut().filter(|s| s.id == session) else {
            return Ok(());
        };
        s.outstanding.remove(&from);
        if !entries.is_empty() {
            s.buffer.insert(from, (entries, committed));
        }
        loop {
            let sn = &mut self.nodes[i];
            let (Some(node), Some(s)) = (sn.node.as_mut(), sn.session.as_mut()) else {
                return Ok(());
            };
            let position = node.replay_position().0;
            let Some((&first, _)) = s.buffer.range(..=position + 1).next_back() else {
                break;
            };
            let (entries, committed) = s.buffer.remove(&first).expect("present");
            let count = entries.len() as u64;
            if first + count - 1 <= position {
                continue;
            }
            match node.on_replayed(entries, Index(committed), &sn.store) {
                Ok(()) => {}
                Err(e) if !e.is_fatal() => {
                    return Err(self.fail(format!("node {i}: a valid batch was refused: {e}")));
                }
                Err(e) => return Err(self.fail(format!("node {i} on_replayed: {e}"))),
            }
            let now_at = node.replay_position().0;
            if now_at > position {
                s.last_progress = tick;
                self.stats.replayed += now_at - position;
            }
            self.drive(i)?;
        }
        Ok(())
    }

    /// The delay of one message from `a` to `b`, or `None` when it is lost or blocked.
    fn link(&mut self, a: usize, b: usize) -> Option<u64> {
        if self.blocked.contains(&(a, b)) || self.rng.random_bool(self.loss) {
            return None;
        }
        Some(self.rng.random_range(0..=self.max_delay.max(TICK / 10)))
    }
}
