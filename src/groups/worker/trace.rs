//! Where one write's time goes, stage by stage, for `/metrics`
//! (`write_stage_duration_seconds{stage}`) and `make compare`'s breakdown.
//!
//! One write at a time is traced: the first proposal made while no trace runs, so the
//! cost is a few clock reads per traced write whatever the load, and with one client every
//! write is traced. The leader times its stages from the instant the caller handed the
//! write over; a follower times its own part (an append with entries received, to the
//! acknowledgement sent after its sync). Each instant is when the worker *noticed*, which
//! is the point: a stage that waits for the next turn shows here.
//!
//! Leader stages: `queue` (caller to worker), `propose` (to the append handed to the
//! links), `leader_sync` (append sent to the entry durable here), `follower_ack` (append
//! sent to the first follower acknowledgement covering it: network both ways and the
//! follower's own work), `commit` (from the later of those two to the commit acted on),
//! `apply` (commit to applied and answered), `total` (caller to answer). Follower stage:
//! `follower_append`.

use super::super::metrics::GroupMetrics;
use crate::groups::raft::{AppendEntries, AppendEntriesResponse, Vote};
use crate::groups::Index;
use std::time::Instant;

/// The stages, in the order a write passes them.
#[cfg(test)]
pub(crate) const LEADER_STAGES: [&str; 7] = [
    "queue",
    "propose",
    "leader_sync",
    "follower_ack",
    "commit",
    "apply",
    "total",
];

/// The write being traced on the leader.
#[derive(Clone, Copy, Debug)]
struct Traced {
    index: Index,
    called: Instant,
    received: Instant,
    sent: Option<Instant>,
    durable: Option<Instant>,
    acked: Option<Instant>,
    committed: Option<Instant>,
}

/// The traces of one worker.
#[derive(Debug, Default)]
pub(crate) struct WriteTrace {
    leader: Option<Traced>,
    /// On a follower: the last index of the append being timed, and when it came in.
    follower: Option<(Index, Instant)>,
}

impl WriteTrace {
    /// A write proposed on the leader, ending at `index`, handed over at `called` and
    /// taken by the worker at `received`; traced unless another trace runs.
    pub(crate) fn proposed(&mut self, index: Index, called: Instant, received: Instant) {
        if self.leader.is_none() {
            self.leader = Some(Traced {
                index,
                called,
                received,
                sent: None,
                durable: None,
                acked: None,
                committed: None,
            });
        }
    }

    /// The leader lost its leadership: its trace cannot finish.
    pub(crate) fn abandon(&mut self) {
        self.leader = None;
    }

    /// An append handed to a link (leader).
    pub(crate) fn append_sent(&mut self, append: &AppendEntries) {
        if let Some(t) = &mut self.leader {
            if t.sent.is_none() && append.entries.last().is_some_and(|e| e.index >= t.index) {
                t.sent = Some(Instant::now());
            }
        }
    }

    /// The leader's log is durable up to `durable`.
    pub(crate) fn durable(&mut self, durable: Index) {
        if let Some(t) = &mut self.leader {
            if t.durable.is_none() && durable >= t.index {
                t.durable = Some(Instant::now());
            }
        }
    }

    /// A follower's answer reached the leader.
    pub(crate) fn acknowledged(&mut self, response: &AppendEntriesResponse) {
        if let Some(t) = &mut self.leader {
            if t.acked.is_none()
                && response.vote == Vote::Granted
                && response.last_log_index >= t.index
            {
                t.acked = Some(Instant::now());
            }
        }
    }

    /// Entries up to `last` are committed and about to be applied.
    pub(crate) fn committed(&mut self, last: Index) {
        if let Some(t) = &mut self.leader {
            if t.committed.is_none() && last >= t.index {
                t.committed = Some(Instant::now());
            }
        }
    }

    /// Everything up to `applied` is applied and answered: a finished trace goes into
    /// `metrics`. A trace missing a stage (a one-voter group has no follower) records
    /// the stages it has.
    pub(crate) fn answered(&mut self, applied: Index, metrics: &GroupMetrics) {
        let Some(t) = self.leader else { return };
        if applied < t.index {
            return;
        }
        self.leader = None;
        let done = Instant::now();
        let since = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64();
        metrics.write_stage("queue", since(t.called, t.received));
        metrics.write_stage("total", since(t.called, done));
        let Some(sent) = t.sent else { return };
        metrics.write_stage("propose", since(t.received, sent));
        if let Some(durable) = t.durable {
            metrics.write_stage("leader_sync", since(sent, durable));
        }
        if let Some(acked) = t.acked {
            metrics.write_stage("follower_ack", since(sent, acked));
        }
        if let Some(committed) = t.committed {
            let quorum = t.durable.into_iter().chain(t.acked).max().unwrap_or(sent);
            metrics.write_stage("commit", since(quorum, committed));
            metrics.write_stage("apply", since(committed, done));
        }
    }

    /// An append came in (follower); the first one with entries while none is timed.
    pub(crate) fn append_received(&mut self, append: &AppendEntries) {
        if self.follower.is_none() {
            if let Some(last) = append.entries.last() {
                self.follower = Some((last.index, Instant::now()));
            }
        }
    }

    /// This follower answered an append.
    pub(crate) fn append_answered(
        &mut self,
        response: &AppendEntriesResponse,
        metrics: &GroupMetrics,
    ) {
        if let Some((last, at)) = self.follower {
            if response.vote != Vote::Granted {
                self.follower = None;
            } else if response.last_log_index >= last {
                self.follower = None;
                metrics.write_stage("follower_append", at.elapsed().as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::raft::{Entry, Payload};
    use crate::groups::{Cursor, Term};
    use crate::PeerId;

    fn append(last: u64) -> AppendEntries {
        AppendEntries {
            term: Term(1),
            leader: PeerId([1; 32]),
            prev_log_position: Cursor(Term(1), Index(last - 1)),
            entries: vec![Entry {
                term: Term(1),
                index: Index(last),
                payload: Payload::Noop,
            }],
            leader_commit: Index(0),
            seq: 1,
            catch_up: false,
        }
    }

    fn granted(last: u64) -> AppendEntriesResponse {
        AppendEntriesResponse {
            term: Term(1),
            last_log_index: Index(last),
            vote: Vote::Granted,
            rejected: Index(0),
            seq: 1,
        }
    }

    fn count(metrics: &GroupMetrics, stage: &'static str) -> u64 {
        metrics.write_stage_count(stage)
    }

    #[test]
    fn a_write_is_timed_through_every_stage_once_and_the_next_one_then_starts() {
        let metrics = GroupMetrics::default();
        let mut trace = WriteTrace::default();
        let now = Instant::now();
        trace.proposed(Index(5), now, now);
        trace.proposed(Index(6), now, now); // Not traced: one at a time.
        trace.append_sent(&append(4));
        trace.append_sent(&append(6));
        trace.durable(Index(6));
        trace.acknowledged(&granted(4)); // Short of the write: not its acknowledgement.
        trace.acknowledged(&granted(6));
        trace.committed(Index(6));
        trace.answered(Index(4), &metrics);
        assert_eq!(count(&metrics, "total"), 0, "not applied yet");
        trace.answered(Index(6), &metrics);
        for stage in LEADER_STAGES {
            assert_eq!(count(&metrics, stage), 1, "{stage}");
        }
        trace.proposed(Index(7), now, now);
        trace.abandon();
        trace.answered(Index(9), &metrics);
        assert_eq!(
            count(&metrics, "total"),
            1,
            "an abandoned trace records nothing"
        );
    }

    #[test]
    fn a_follower_times_an_append_until_the_answer_that_covers_it() {
        let metrics = GroupMetrics::default();
        let mut trace = WriteTrace::default();
        trace.append_received(&append(3));
        trace.append_answered(&granted(2), &metrics);
        assert_eq!(count(&metrics, "follower_append"), 0);
        trace.append_answered(&granted(3), &metrics);
        assert_eq!(count(&metrics, "follower_append"), 1);
    }
}
