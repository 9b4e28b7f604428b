//! What a leader knows of one follower's log (§5.3 nextIndex/matchIndex), and the flow
//! control state that decides what to send next. Pure data: no messages, no logging.
//!
//! States (as in etcd's tracker): `Probe` sends one append per heartbeat until one matches;
//! `Replicate` pipelines appends optimistically, bounded by [`Inflights`]; `Sync` sends no
//! entries while the follower catches up by itself: by log replay from its peers when it is
//! more than `replay_threshold` entries behind, or by state sync when the leader no longer
//! has the entries it needs.
//!
//! ```text
//! Probe     ── match, close ───────────▶ Replicate ── rejection ──▶ Probe
//! Probe     ── match, far behind ──────▶ Sync (log replay)
//! any       ── needed entries pruned ──▶ Sync (state sync)
//! Sync      ── reports a close match ──▶ Replicate
//! Sync      ── no progress for a while ▶ Probe (after a few failures: stream instead)
//! ```

use super::inflights::Inflights;
use crate::Index;

/// How the leader talks to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Finding the point where the logs match; one append at a time.
    Probe,
    /// Logs match at `matched`; appends are pipelined.
    Replicate,
    /// The follower catches up by itself (log replay or state sync); the leader sends it
    /// heartbeats only, until it reports a matching position.
    Sync,
}

/// One follower's replication progress.
///
/// Invariant: `matched < next`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to match the leader's log and be durable on the follower.
    pub matched: Index,
    /// The next index to send.
    pub next: Index,
    /// The flow-control state.
    pub state: ProgressState,
    /// In `Probe`: an append is out and unanswered; wait for an answer or a heartbeat.
    pub probe_sent: bool,
    /// Appends in flight (used in `Replicate`).
    pub inflights: Inflights,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Answered an append or heartbeat since the leader last woke from quiescence (or
    /// took office): a leader quiesces only once every member did, so a leader cut off
    /// while quiesced, woken by a closed link, cannot go back to sleep on what it knew
    /// before and skip the check-quorum round that makes it step down.
    pub heard_since_wake: bool,
    /// An unsticking append went out since the last heartbeat: at most one per heartbeat
    /// interval, so acks never feed a chain of them.
    pub unstick_sent: bool,
    /// In `Sync`: ticks since `matched` last advanced (a lost session must not stall the
    /// follower for good).
    pub sync_idle_ticks: u32,
    /// Catch-ups that stalled in a row; at a bound the leader streams instead.
    pub replay_failures: u32,
    /// The highest commit index an append to this follower told it (capped by the
    /// entries that append vouched for). Below `min(committed, matched)`, a commit notice
    /// is due: it learns the rest from the next append, or from a notice (an empty append)
    /// sent at the driver's call ([`Node::send_commit_notices`](crate::Node::send_commit_notices))
    /// or at the next tick, whichever comes first.
    pub told_commit: Index,
    /// The last index of commands this follower forwarded and the leader appended: it
    /// waits to learn that index committed to answer its clients, so its notice goes out
    /// at once when the commit reaches it.
    pub forwarded_to: Option<Index>,
}

impl Progress {
    /// A follower the leader knows nothing about: probe from `next`.
    pub fn new(next: Index, max_inflight: usize) -> Self {
        Progress {
            matched: Index(0),
            next: Index(next.0.max(1)),
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            recent_active: false,
            heard_since_wake: false,
            unstick_sent: false,
            sync_idle_ticks: 0,
            replay_failures: 0,
            told_commit: Index(0),
            forwarded_to: None,
        }
    }

    /// Whether this follower holds entries committed at `committed` that no append told it
    /// were committed (only a streaming follower: the others get appends anyway).
    pub fn commit_notice_due(&self, committed: Index) -> bool {
        self.state == ProgressState::Replicate && committed.min(self.matched) > self.told_commit
    }

    /// Enters `Probe`, retrying from `matched + 1`.
    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.reset();
        self.next = self.matched.next();
    }

    /// Enters `Replicate` from `matched + 1`.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.probe_sent = false;
        self.inflights.reset();
        self.next = self.matched.next();
    }

    /// Enters `Sync`: no appends until the follower reports a matching log.
    pub fn become_sync(&mut self) {
        self.state = ProgressState::Sync;
        self.probe_sent = false;
        self.sync_idle_ticks = 0;
        self.inflights.reset();
    }

    /// One tick in `Sync`; returns whether the catch-up stalled (`matched` did not move
    /// for `limit` ticks): the follower then goes back to `Probe` and the stall counts as
    /// a failed catch-up.
    pub fn tick_sync(&mut self, limit: u32) -> bool {
        if self.state != ProgressState::Sync {
            return false;
        }
        self.sync_idle_ticks += 1;
        if self.sync_idle_ticks < limit {
            return false;
        }
        self.replay_failures += 1;
        self.become_probe();
        true
    }

    /// Whether the leader may send entries now (given its last index).
    pub fn can_send_entries(&self, last: Index) -> bool {
        match self.state {
            ProgressState::Probe => !self.probe_sent,
            ProgressState::Replicate => self.next <= last && !self.inflights.full(),
            ProgressState::Sync => false,
        }
    }

    /// Records an append of entries `next ..= last_sent` (none when `last_sent < next`).
    pub fn sent(&mut self, last_sent: Index) {
        match self.state {
            ProgressState::Replicate => {
                if last_sent >= self.next {
                    self.next = last_sent.next();
                    self.inflights.add(last_sent);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Sync => {}
        }
    }

    /// A success acknowledged `index`. Returns whether it told the leader anything new.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        if index <= self.matched {
            return false;
        }
        self.matched = index;
        if self.next <= index {
            self.next = index.next();
        }
        if self.state == ProgressState::Sync {
            self.sync_idle_ticks = 0;
            self.replay_failures = 0;
        }
        self.probe_sent = false;
        self.inflights.free_le(index);
        true
    }

    /// A rejection of the append sent after `rejected`, hinting `hint` as the next index
    /// to try. Returns whether it was genuine (not stale) and `next` moved: only then send
    /// again at once.
    pub fn maybe_decrease(&mut self, rejected: Index, hint: Index) -> bool {
        match self.state {
            ProgressState::Replicate => {
                if rejected <= self.matched {
                    return false;
                }
                self.become_probe();
                self.next = Index(hint.0.min(rejected.0).max(self.matched.0 + 1));
                true
            }
            ProgressState::Probe => {
                if self.next.prev() != rejected {
                    return false;
                }
                let next = Index(hint.0.min(rejected.0).max(self.matched.0 + 1));
                self.probe_sent = false;
                if next == self.next {
                    // The follower lacks what it acknowledged (`matched` is not below the
                    // rejection): resending at once would ping-pong the same probe without
                    // end. Retry at the next heartbeat.
                    return false;
                }
                self.next = next;
                true
            }
            ProgressState::Sync => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_then_replicate() {
        let mut p = Progress::new(Index(11), 4);
        assert!(p.can_send_entries(Index(10)));
        p.sent(Index(10));
        assert!(!p.can_send_entries(Index(10)), "one probe at a time");
        // Rejected at prev 10, follower hints 4.
        assert!(p.maybe_decrease(Index(10), Index(4)));
        assert_eq!(p.next, Index(4));
        assert!(p.can_send_entries(Index(10)));
        p.sent(Index(10));
        assert!(p.maybe_update(Index(10)));
        p.become_replicate();
        assert_eq!(p.next, Index(11));
    }

    #[test]
    fn replicate_pipelines_within_the_window() {
        let mut p = Progress::new(Index(1), 2);
        p.maybe_update(Index(3));
        p.become_replicate();
        p.sent(Index(5));
        p.sent(Index(7));
        assert_eq!(p.next, Index(8));
        assert!(!p.can_send_entries(Index(9)), "window full");
        assert!(p.maybe_update(Index(5)));
        assert!(p.can_send_entries(Index(9)));
        assert!(!p.maybe_update(Index(4)), "stale ack");
    }

    #[test]
    fn a_stalled_sync_falls_back_to_probe_and_progress_resets_the_clock() {
        let mut p = Progress::new(Index(1), 2);
        p.maybe_update(Index(3));
        p.become_sync();
        assert!(!p.can_send_entries(Index(100)), "no entries while syncing");
        assert!(!p.tick_sync(3));
        assert!(!p.tick_sync(3));
        assert!(p.maybe_update(Index(50)), "the follower reports progress");
        assert_eq!(p.state, ProgressState::Sync);
        assert!(!p.tick_sync(3));
        assert!(!p.tick_sync(3));
        assert!(p.tick_sync(3), "three idle ticks");
        assert_eq!(p.state, ProgressState::Probe);
        assert_eq!(p.next, Index(51));
        assert_eq!(p.replay_failures, 1);
        assert!(!p.tick_sync(3), "only Sync stalls");
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(Index(1), 2);
        p.maybe_update(Index(6));
        p.become_replicate();
        p.sent(Index(9));
        assert!(!p.maybe_decrease(Index(5), Index(2)), "below matched");
        assert!(p.maybe_decrease(Index(8), Index(3)));
        assert_eq!(p.next, Index(7), "never below matched + 1");
        assert_eq!(p.state, ProgressState::Probe);
        assert!(
            !p.maybe_decrease(Index(4), Index(1)),
            "probe: only next - 1 counts"
        );
    }

    #[test]
    fn a_rejection_that_cannot_move_the_probe_waits_for_the_heartbeat() {
        // The follower acknowledged 6 but lost it (its disk lied): it rejects at 6.
        let mut p = Progress::new(Index(1), 2);
        p.maybe_update(Index(6));
        p.become_probe();
        p.sent(Index(9));
        assert!(!p.maybe_decrease(Index(6), Index(6)), "no ping-pong");
        assert_eq!(p.next, Index(7));
        assert!(
            p.can_send_entries(Index(9)),
            "sent again with the next heartbeat"
        );
    }
}
