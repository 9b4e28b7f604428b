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

use super::client::ClientError;
use super::quorum;
use crate::groups::Index;
use crate::PeerId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The outcome of one `read_index` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The caller's id.
    pub ctx: u64,
    /// The index to apply before serving the read, or why there is none.
    pub result: Result<Index, ClientError>,
}

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

    /// Every read still waiting (the leader steps down).
    pub(crate) fn drain(&mut self) -> Vec<(u64, Option<PeerId>)> {
        let mut out: Vec<(u64, Option<PeerId>)> =
            self.pending.drain(..).map(|r| (r.ctx, r.origin)).collect();
        out.append(&mut self.waiting);
        out
    }
}

/// A follower's reads waiting for the leader: ctx -> tick asked.
#[derive(Debug, Default)]
pub(crate) struct FollowerReads {
    pending: BTreeMap<u64, u64>,
}

impl FollowerReads {
    pub(crate) fn insert(&mut self, ctx: u64, now: u64) {
        self.pending.insert(ctx, now);
    }

    /// The leader answered; returns whether `ctx` was waiting.
    pub(crate) fn answered(&mut self, ctx: u64) -> bool {
        self.pending.remove(&ctx).is_some()
    }

    /// Fails reads older than `timeout` ticks.
    pub(crate) fn expire(&mut self, now: u64, timeout: u32, out: &mut Vec<ReadOutcome>) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, t)| now.saturating_sub(**t) >= u64::from(timeout))
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
    fn a_single_voter_confirms_alone() {
        let voters: BTreeSet<PeerId> = [p(1)].into();
        let mut r = LeaderReads::default();
        r.request(1, Some(p(7)), Index(2));
        assert_eq!(r.confirmed(&voters, p(1)).len(), 1);
    }
}
