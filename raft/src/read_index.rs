//! Linearizable reads without writing to the log (dissertation §6.4, ReadIndex).
//!
//! The leader records its commit index as the read index, then confirms it still leads:
//! each read gets the next round number (`seq`); every `AppendEntries` carries the current
//! round and every response echoes it; once a majority of voters (the leader counts
//! itself) answered a round at or above the read's, no other leader can have committed
//! anything newer, and the read may be served once the caller has applied the read index.
//! The leader first needs an entry of its own term committed (its no-op), so its commit
//! index is at least that of any earlier leader.
//!
//! Followers ask the leader (`ReadIndex` message) and wait for the index with a timeout.
//! A read has no effect, so a follower's pending read is sent again to every new leader
//! (another leader, or the same one in a new term) until one answers with an index: a
//! leader that dies or steps down costs the read one election, not its whole timeout. A
//! read asked while no leader is known waits for one. Any answer with an index is a valid
//! linearization point (the leader confirmed its leadership after the read was asked), so
//! the first one wins.

use super::quorum;
use crate::output::{ClientError, ReadOutcome};
use crate::PeerId;
use crate::{Index, Term};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A read waiting at the leader. `origin` is `None` for a local read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingRead {
    pub(crate) ctx: u64,
    pub(crate) origin: Option<PeerId>,
    pub(crate) index: Index,
    pub(crate) seq: u64,
}

/// The leader's read rounds.
#[derive(Debug, Default)]
pub(crate) struct LeaderReads {
    /// The latest round issued.
    pub(crate) seq: u64,
    /// The highest round each peer answered in this term.
    acked: BTreeMap<PeerId, u64>,
    /// Reads whose round is not yet confirmed, oldest first.
    pending: VecDeque<PendingRead>,
    /// Reads waiting for the leader's first commit in its term.
    pub(crate) waiting: Vec<(u64, Option<PeerId>)>,
}

impl LeaderReads {
    /// Registers a read at `index` in a new round; returns the round.
    pub(crate) fn request(&mut self, ctx: u64, origin: Option<PeerId>, index: Index) -> u64 {
        self.seq += 1;
        self.pending.push_back(PendingRead {
            ctx,
            origin,
            index,
            seq: self.seq,
        });
        self.seq
    }

    /// A peer answered round `seq`.
    pub(crate) fn ack(&mut self, peer: PeerId, seq: u64) {
        let e = self.acked.entry(peer).or_insert(0);
        *e = (*e).max(seq);
    }

    /// Reads whose round a majority of `voters` confirmed (`me` counts as answering all).
    pub(crate) fn confirmed(&mut self, voters: &BTreeSet<PeerId>, me: PeerId) -> Vec<PendingRead> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let seq = self.seq;
        let round = quorum::committed_index(voters, |p| {
            Index(if *p == me {
                seq
            } else {
                self.acked.get(p).copied().unwrap_or(0)
            })
        })
        .0;
        let mut out = Vec::new();
        while self.pending.front().is_some_and(|r| r.seq <= round) {
            out.extend(self.pending.pop_front());
        }
        out
    }

    /// No read waits for a round or for the leader's first commit (quiescence).
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.waiting.is_empty()
    }

    /// Every read still waiting (the leader steps down).
    pub(crate) fn drain(&mut self) -> Vec<(u64, Option<PeerId>)> {
        let mut out: Vec<(u64, Option<PeerId>)> =
            self.pending.drain(..).map(|r| (r.ctx, r.origin)).collect();
        out.append(&mut self.waiting);
        out
    }
}

/// One read a follower waits on.
#[derive(Debug)]
struct FollowerRead {
    /// The tick it was asked at.
    asked: u64,
    /// The leader and term it was last sent to, and the tick it was sent at.
    sent_to: Option<(PeerId, Term, u64)>,
}

/// A follower's reads waiting for a leader's read index.
#[derive(Debug, Default)]
pub(crate) struct FollowerReads {
    pending: BTreeMap<u64, FollowerRead>,
}

impl FollowerReads {
    pub(crate) fn insert(&mut self, ctx: u64, now: u64) {
        self.pending.insert(
            ctx,
            FollowerRead {
                asked: now,
                sent_to: None,
            },
        );
    }

    /// Reads to send to `leader` of `term` now: those not yet sent to it in this term, and
    /// those sent to it at least `retry` ticks ago and not answered (the request or the
    /// answer may have been dropped by a full link).
    pub(crate) fn unsent(&mut self, leader: PeerId, term: Term, now: u64, retry: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for (ctx, read) in self.pending.iter_mut() {
            let due = match read.sent_to {
                Some((l, t, at)) if l == leader && t == term => now.saturating_sub(at) >= retry,
                _ => true,
            };
            if due {
                read.sent_to = Some((leader, term, now));
                out.push(*ctx);
            }
        }
        out
    }

    /// No read waits (quiescence).
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The leader answered; returns whether `ctx` was waiting.
    pub(crate) fn answered(&mut self, ctx: u64) -> bool {
        self.pending.remove(&ctx).is_some()
    }

    /// Every waiting read, removed (this node became the leader and serves them itself).
    pub(crate) fn take_all(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.pending).into_keys().collect()
    }

    /// Fails reads older than `timeout` ticks.
    pub(crate) fn expire(&mut self, now: u64, timeout: u32, out: &mut Vec<ReadOutcome>) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, r)| now.saturating_sub(r.asked) >= u64::from(timeout))
            .map(|(c, _)| *c)
            .collect();
        for ctx in expired {
            self.pending.remove(&ctx);
            out.push(ReadOutcome {
                ctx,
                result: Err(ClientError::ReadTimeout { ticks: timeout }),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    #[test]
    fn a_read_is_confirmed_by_a_majority_of_its_round() {
        let voters: BTreeSet<PeerId> = [p(1), p(2), p(3)].into();
        let mut r = LeaderReads::default();
        // An old round answered before the read was registered confirms nothing.
        r.ack(p(2), 0);
        let seq = r.request(9, None, Index(4));
        assert!(r.confirmed(&voters, p(1)).is_empty());
        r.ack(p(3), seq);
        let done = r.confirmed(&voters, p(1));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].index, Index(4));
    }

    #[test]
    fn a_follower_read_goes_to_every_new_leader_until_answered() {
        let mut f = FollowerReads::default();
        f.insert(1, 0);
        assert_eq!(f.unsent(p(1), Term(2), 0, 4), [1]);
        assert!(
            f.unsent(p(1), Term(2), 3, 4).is_empty(),
            "sent once per leader and term until the retry interval"
        );
        assert_eq!(f.unsent(p(1), Term(2), 4, 4), [1], "then again");
        assert_eq!(
            f.unsent(p(2), Term(3), 5, 4),
            [1],
            "a new leader is asked at once"
        );
        assert_eq!(
            f.unsent(p(2), Term(4), 5, 4),
            [1],
            "the same node in a new term too"
        );
        let mut out = Vec::new();
        f.expire(5, 10, &mut out);
        assert!(out.is_empty());
        assert!(f.answered(1));
        assert!(!f.answered(1), "the first answer wins");
        f.insert(2, 0);
        f.expire(10, 10, &mut out);
        assert_eq!(out.len(), 1, "still bounded by the query timeout");
    }

    #[test]
    fn a_single_voter_confirms_alone() {
        let voters: BTreeSet<PeerId> = [p(1)].into();
        let mut r = LeaderReads::default();
        r.request(1, Some(p(7)), Index(2));
        assert_eq!(r.confirmed(&voters, p(1)).len(), 1);
    }
}
