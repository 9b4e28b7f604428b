//! Client proposals: which entry (index *and* term) each one became, forwarding from
//! followers with a timeout, and the outcome once that index is committed.
//!
//! An index alone does not identify an entry: a later leader may put another entry there
//! (§5.3). A proposal resolves `Ok` only when the committed entry at its index has its
//! term, and `Overwritten` when it has another.

use super::message::Entry;
use super::ready::ProposalOutcome;
use crate::groups::{Cursor, Index, Term};
use crate::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The caller's id for one proposal (unique per node; the worker assigns them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId(pub u64);

/// Why a proposal or read did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// This node cannot do that: it is not the leader.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<PeerId>,
    },
    /// No leader acknowledged the forwarded command in time. It may still commit.
    #[error("no leader acknowledged the command within {ticks} ticks (leader: {leader:?}); it may or may not be applied")]
    ForwardTimeout {
        /// How long it waited.
        ticks: u32,
        /// Where it was sent, if anywhere.
        leader: Option<PeerId>,
    },
    /// Another entry was committed at the proposal's index: it will never apply.
    #[error("entry {proposed} was overwritten: the committed entry at index {} has term {found}", proposed.index())]
    Overwritten {
        /// Where the proposal went.
        proposed: Cursor,
        /// The term of the entry committed there.
        found: Term,
    },
    /// A state sync installed state past the proposal; whether it is included is unknown.
    #[error(
        "state sync installed state up to {anchor}, past proposal {proposed}: outcome unknown"
    )]
    SyncedPast {
        /// Where the proposal went.
        proposed: Cursor,
        /// The installed position.
        anchor: Cursor,
    },
    /// The read index was not confirmed in time.
    #[error("read index not confirmed within {ticks} ticks")]
    ReadTimeout {
        /// How long it waited.
        ticks: u32,
    },
    /// A membership change is still uncommitted; one at a time.
    #[error("membership change at index {index} not yet committed")]
    ChangePending {
        /// The pending change's index.
        index: Index,
    },
    /// The leader has not yet committed an entry of its term.
    #[error("leader of term {term} has not committed an entry of its term yet")]
    LeaderNotReady {
        /// The leader's term.
        term: Term,
    },
    /// The change does not apply to the current membership.
    #[error(transparent)]
    Membership(#[from] super::membership::MembershipError),
}

#[derive(Debug)]
struct Forwarded {
    payload: Vec<u8>,
    started: u64,
    sent_to: Option<PeerId>,
}

/// Proposals awaiting an index (forwarded) or a commit (tracked).
#[derive(Debug, Default)]
pub(crate) struct Clients {
    forwarded: BTreeMap<u64, (ProposalId, Forwarded)>,
    tracked: BTreeMap<Index, Vec<(ProposalId, Term)>>,
}

impl Clients {
    /// Remembers that proposal `id` became entry `at`.
    pub(crate) fn track(&mut self, id: ProposalId, at: Cursor) {
        self.tracked
            .entry(at.index())
            .or_default()
            .push((id, at.term()));
    }

    /// Queues a forward; returns the request id.
    pub(crate) fn forward(&mut self, id: ProposalId, payload: Vec<u8>, now: u64) -> u64 {
        self.forwarded.insert(
            id.0,
            (
                id,
                Forwarded {
                    payload,
                    started: now,
                    sent_to: None,
                },
            ),
        );
        id.0
    }

    /// Forwards not yet sent (or sent to another leader): (request id, payload), marking
    /// them sent to `leader`.
    pub(crate) fn unsent(&mut self, leader: PeerId) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for (rid, (_, f)) in self.forwarded.iter_mut() {
            if f.sent_to.is_none() {
                f.sent_to = Some(leader);
                out.push((*rid, f.payload.clone()));
            }
        }
        out
    }

    /// The leader's acknowledgement: the forward became entry `at`.
    pub(crate) fn acked(&mut self, request_id: u64) -> Option<ProposalId> {
        self.forwarded.remove(&request_id).map(|(id, _)| id)
    }

    /// Fails forwards older than `timeout` ticks.
    pub(crate) fn expire(&mut self, now: u64, timeout: u32, out: &mut Vec<ProposalOutcome>) {
        let expired: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, (_, f))| now.saturating_sub(f.started) >= u64::from(timeout))
            .map(|(rid, _)| *rid)
            .collect();
        for rid in expired {
            if let Some((id, f)) = self.forwarded.remove(&rid) {
                out.push(ProposalOutcome {
                    id,
                    result: Err(ClientError::ForwardTimeout {
                        ticks: timeout,
                        leader: f.sent_to,
                    }),
                });
            }
        }
    }

    /// Resolves proposals at the indices of committed entries being handed out.
    pub(crate) fn committed(&mut self, entries: &[Entry], out: &mut Vec<ProposalOutcome>) {
        if self.tracked.is_empty() {
            return;
        }
        for e in entries {
            if let Some(waiting) = self.tracked.remove(&e.index) {
                for (id, term) in waiting {
                    out.push(resolve(id, Cursor(term, e.index), e.term));
                }
            }
        }
    }

    /// Resolves proposals at or below `index` whose entry was already handed out, using
    /// `term_at` (the committed term there).
    pub(crate) fn settle_below(
        &mut self,
        index: Index,
        mut term_at: impl FnMut(Index) -> Option<Term>,
        anchor: Cursor,
        out: &mut Vec<ProposalOutcome>,
    ) {
        let rest = self.tracked.split_off(&index.next());
        let done = std::mem::replace(&mut self.tracked, rest);
        for (i, waiting) in done {
            for (id, term) in waiting {
                let proposed = Cursor(term, i);
                match term_at(i) {
                    Some(found) => out.push(resolve(id, proposed, found)),
                    None => out.push(ProposalOutcome {
                        id,
                        result: Err(ClientError::SyncedPast { proposed, anchor }),
                    }),
                }
            }
        }
    }

    /// Fails proposals whose index now holds an entry of another term (a new leader
    /// overwrote them); `term_at` answers for the current log.
    pub(crate) fn overwritten_from(
        &mut self,
        from: Index,
        mut term_at: impl FnMut(Index) -> Option<Term>,
        out: &mut Vec<ProposalOutcome>,
    ) {
        let keys: Vec<Index> = self.tracked.range(from..).map(|(i, _)| *i).collect();
        for i in keys {
            let Some(found) = term_at(i) else { break };
            if let Some(waiting) = self.tracked.get_mut(&i) {
                let mut kept = Vec::new();
                for (id, term) in waiting.drain(..) {
                    if term == found {
                        kept.push((id, term));
                    } else {
                        out.push(resolve(id, Cursor(term, i), found));
                    }
                }
                if kept.is_empty() {
                    self.tracked.remove(&i);
                } else {
                    *self.tracked.get_mut(&i).expect("present") = kept;
                }
            }
        }
    }

    /// How many proposals wait.
    pub(crate) fn pending(&self) -> usize {
        self.forwarded.len() + self.tracked.values().map(Vec::len).sum::<usize>()
    }
}

fn resolve(id: ProposalId, proposed: Cursor, found: Term) -> ProposalOutcome {
    ProposalOutcome {
        id,
        result: if found == proposed.term() {
            Ok(proposed)
        } else {
            Err(ClientError::Overwritten { proposed, found })
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::raft::message::Payload;

    #[test]
    fn resolves_by_index_and_term() {
        let mut c = Clients::default();
        c.track(ProposalId(1), Cursor(Term(2), Index(5)));
        c.track(ProposalId(2), Cursor(Term(2), Index(6)));
        let mut out = Vec::new();
        let entries = vec![
            Entry {
                term: Term(2),
                index: Index(5),
                payload: Payload::Noop,
            },
            Entry {
                term: Term(3),
                index: Index(6),
                payload: Payload::Noop,
            },
        ];
        c.committed(&entries, &mut out);
        assert_eq!(out[0].result, Ok(Cursor(Term(2), Index(5))));
        assert!(matches!(
            out[1].result,
            Err(ClientError::Overwritten { found: Term(3), .. })
        ));
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn forwards_expire() {
        let mut c = Clients::default();
        c.forward(ProposalId(7), vec![1], 10);
        assert_eq!(c.unsent(PeerId([1; 32])).len(), 1);
        assert!(c.unsent(PeerId([1; 32])).is_empty());
        let mut out = Vec::new();
        c.expire(15, 10, &mut out);
        assert!(out.is_empty());
        c.expire(20, 10, &mut out);
        assert!(matches!(
            out[0].result,
            Err(ClientError::ForwardTimeout { .. })
        ));
    }
}
