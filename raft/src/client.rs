//! Client proposals: which entry (index *and* term) each one became, forwarding from
//! followers with a timeout, and the outcome once that index is committed.
//!
//! An index alone does not identify an entry: a later leader may put another entry there
//! (§5.3). A proposal resolves `Ok` only when the committed entry at its index has its
//! term, and `Overwritten` when it has another.
//!
//! **Forwarding, at most once per leader.** A follower re-sends an unacknowledged forward
//! to the same leader in the same term (its acknowledgement may have been lost); the leader
//! remembers what it appended for each (origin, request id) for a while ([`ForwardDedup`])
//! and answers a repeat, or a duplicate the network made, with the original assignment
//! instead of appending the commands again. A forward is never re-sent to another leader
//! or in another term: the leader that may have appended it is the only one that knows, and
//! a restarted leader forgets (it cannot lead the same term again).
//!
//! **Failing over without waiting.** A forward sent to the leader of a term that has since
//! ended (this node saw a newer term) can never be acknowledged: the old leader's answer
//! would be of an old term. It fails at once with `LeaderLost` ("it may or may not be
//! applied"), so the client retries with the new leader instead of waiting out the
//! forward timeout. A forward never sent (no leader was known) is not stranded: it goes to
//! the next leader, or is proposed here if this node wins the election. Only a forward that
//! gets no answer while its leader's term lasts fails with `ForwardTimeout`.

use super::message::{Entry, Forward};
use crate::output::{ClientError, ProposalId, ProposalOutcome};
use crate::PeerId;
use crate::{Cursor, Index, Term};

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};

#[derive(Debug)]
struct Forwarded {
    payload: Vec<u8>,
    started: u64,
    /// The leader and term it went to, and when it was last sent.
    sent_to: Option<(PeerId, Term, u64)>,
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

    /// Forwards to send to `leader` of `term` now: (request id, payload, the term of the
    /// first send for a re-send). Those never sent, and those sent to this very leader in
    /// this term at least `retry` ticks ago and not acknowledged (the leader deduplicates).
    /// Those sent elsewhere wait for their answer or their timeout.
    pub(crate) fn unsent(
        &mut self,
        leader: PeerId,
        term: Term,
        now: u64,
        retry: u64,
    ) -> Vec<(u64, Vec<u8>, Option<Term>)> {
        let mut out = Vec::new();
        for (rid, (_, f)) in self.forwarded.iter_mut() {
            let resend_of = match f.sent_to {
                None => None,
                Some((l, t, at)) if l == leader && t == term && now.saturating_sub(at) >= retry => {
                    Some(t)
                }
                Some(_) => continue,
            };
            f.sent_to = Some((leader, term, now));
            out.push((*rid, f.payload.clone(), resend_of));
        }
        out
    }

    /// Term `term` began: fails every forward sent to a leader of an earlier term (its
    /// acknowledgement can no longer come) with `LeaderLost`.
    pub(crate) fn strand(&mut self, term: Term, out: &mut Vec<ProposalOutcome>) {
        let stranded: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, (_, f))| f.sent_to.is_some_and(|(_, t, _)| t < term))
            .map(|(rid, _)| *rid)
            .collect();
        for rid in stranded {
            if let Some((
                id,
                Forwarded {
                    sent_to: Some((leader, term, _)),
                    ..
                },
            )) = self.forwarded.remove(&rid)
            {
                out.push(ProposalOutcome {
                    id,
                    result: Err(ClientError::LeaderLost { leader, term }),
                });
            }
        }
    }

    /// Forwards never sent anywhere, removed: this node became the leader and proposes
    /// them itself.
    pub(crate) fn take_unsent(&mut self) -> Vec<(ProposalId, Vec<u8>)> {
        let unsent: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, (_, f))| f.sent_to.is_none())
            .map(|(rid, _)| *rid)
            .collect();
        unsent
            .into_iter()
            .filter_map(|rid| self.forwarded.remove(&rid))
            .map(|(id, f)| (id, f.payload))
            .collect()
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
                        leader: f.sent_to.map(|(l, _, _)| l),
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

/// What a leader answered one forwarded request: where it appended the commands
/// (`Forward::CommandAck`), or that it refused them during a leadership transfer
/// (`Forward::Refused`). A copy of the request (a re-send, a network duplicate) gets the
/// same answer, so a refused request is never appended later by a delayed copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answered {
    reply: Forward,
    /// A hash of the commands: a reused request id with other commands is a new request.
    digest: u64,
    /// When it was recorded.
    at: u64,
}

/// The leader's memory of forwarded requests it answered, by (origin, request id), for
/// `window` ticks and at most `CAPACITY` requests (oldest forgotten first), and per origin
/// the highest request id it forgot: a re-send at or below it that is not remembered may
/// have been appended already, and is dropped (request ids increase per origin).
#[derive(Debug, Default)]
pub(crate) struct ForwardDedup {
    seen: HashMap<(PeerId, u64), Answered>,
    order: VecDeque<(u64, PeerId, u64)>,
    forgotten: HashMap<PeerId, u64>,
}

impl ForwardDedup {
    /// At most this many requests are remembered.
    const CAPACITY: usize = 65_536;

    /// The hash `lookup` and `record` compare.
    pub(crate) fn digest(commands: &[Vec<u8>]) -> u64 {
        let mut h = DefaultHasher::new();
        commands.hash(&mut h);
        h.finish()
    }

    /// Forgets requests recorded before `now - window`.
    pub(crate) fn expire(&mut self, now: u64, window: u64) {
        while let Some(&(at, peer, rid)) = self.order.front() {
            if now.saturating_sub(at) < window && self.order.len() <= Self::CAPACITY {
                break;
            }
            self.order.pop_front();
            // The key may have been recorded again later; only its own record goes.
            if self.seen.get(&(peer, rid)).is_some_and(|a| a.at == at) {
                self.seen.remove(&(peer, rid));
                let mark = self.forgotten.entry(peer).or_insert(rid);
                *mark = (*mark).max(rid);
            }
        }
    }

    /// The answer to an earlier request from `origin` with this id and these commands.
    pub(crate) fn lookup(&self, origin: PeerId, rid: u64, digest: u64) -> Option<Forward> {
        self.seen
            .get(&(origin, rid))
            .filter(|a| a.digest == digest)
            .map(|a| a.reply.clone())
    }

    /// Whether a re-send from `origin` that is not remembered must be dropped: its first
    /// send may have been appended in `first_term` (not the leader's `term`: this node may
    /// have restarted since and forgotten), or before its memory of `origin` was cut.
    pub(crate) fn refuse_resend(
        &self,
        origin: PeerId,
        rid: u64,
        first_term: Term,
        term: Term,
    ) -> bool {
        first_term != term || self.forgotten.get(&origin).is_some_and(|m| rid <= *m)
    }

    /// Records the answer `reply` to the request.
    pub(crate) fn record(
        &mut self,
        origin: PeerId,
        rid: u64,
        digest: u64,
        reply: Forward,
        now: u64,
    ) {
        self.seen.insert(
            (origin, rid),
            Answered {
                reply,
                digest,
                at: now,
            },
        );
        self.order.push_back((now, origin, rid));
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

/// The follower's side of client traffic: what it sends its leader.
impl crate::Node {
    /// The leader steps down with reads unconfirmed: a follower's read is refused (it asks
    /// the next leader), and this node's own reads wait for the next leader like a
    /// follower's.
    pub(crate) fn fail_leader_reads(&mut self, reads: Vec<(u64, Option<PeerId>)>) {
        let term = self.term;
        for (ctx, origin) in reads {
            match origin {
                None => self.follower_reads.insert(ctx, self.now),
                Some(peer) => self.send(
                    peer,
                    crate::Message::ReadIndexResponse(crate::message::ReadIndexResponse {
                        term,
                        ctx,
                        index: None,
                    }),
                ),
            }
        }
    }

    /// Sends queued forwards and reads to the known leader, and re-sends those it has not
    /// answered for a quarter of their timeout (forwards: same leader, same term only; see
    /// `client.rs`; reads go to every new leader, see `read_index.rs`).
    pub(crate) fn flush_to_leader(&mut self) {
        let Some(leader) = self.leader else { return };
        if leader == self.id {
            return;
        }
        let heartbeat = self.config.heartbeat_ticks;
        let quarter = |timeout: u32| u64::from((timeout / 4).max(heartbeat).max(1));
        let read_retry = quarter(self.config.query_timeout_ticks);
        for ctx in self
            .follower_reads
            .unsent(leader, self.term, self.now, read_retry)
        {
            self.send(
                leader,
                crate::Message::ReadIndex(crate::message::ReadIndex { ctx }),
            );
        }
        let retry = quarter(self.config.forward_timeout_ticks);
        for (rid, payload, resend_of) in self.clients.unsent(leader, self.term, self.now, retry) {
            self.send(
                leader,
                crate::Message::Forward(crate::message::Forward::Command {
                    commands: vec![payload],
                    request_id: Some(rid),
                    resend_of,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Payload;

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
    fn the_leader_remembers_forwards_for_a_window_and_refuses_forgotten_resends() {
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        let ack = Forward::CommandAck {
            request_id: 3,
            term: Term(2),
            assigned: crate::IndexRange {
                start: Index(5),
                end: Index(5),
            },
        };
        let d = ForwardDedup::digest(&[vec![1]]);
        let mut f = ForwardDedup::default();
        f.record(a, 3, d, ack.clone(), 10);
        assert_eq!(f.lookup(a, 3, d), Some(ack));
        let refused = Forward::Refused {
            request_id: 2,
            transfer_to: b,
        };
        f.record(a, 2, d, refused.clone(), 10);
        assert_eq!(
            f.lookup(a, 2, d),
            Some(refused),
            "a refusal is remembered too"
        );
        assert!(f.lookup(b, 3, d).is_none(), "per origin");
        assert!(
            f.lookup(a, 3, d ^ 1).is_none(),
            "other commands: another request"
        );
        assert!(!f.refuse_resend(a, 4, Term(2), Term(2)));
        assert!(
            f.refuse_resend(a, 4, Term(1), Term(2)),
            "first sent in another term"
        );
        f.expire(20, 10);
        assert!(f.lookup(a, 3, d).is_none(), "forgotten after the window");
        assert!(
            f.refuse_resend(a, 3, Term(2), Term(2)),
            "at or below what was forgotten"
        );
        assert!(!f.refuse_resend(a, 4, Term(2), Term(2)));
        assert!(!f.refuse_resend(b, 3, Term(2), Term(2)));
    }

    #[test]
    fn a_new_term_strands_what_went_to_the_old_leader_and_keeps_what_was_never_sent() {
        let mut c = Clients::default();
        let l = PeerId([1; 32]);
        c.forward(ProposalId(1), vec![1], 0);
        assert_eq!(c.unsent(l, Term(2), 0, 4).len(), 1);
        c.forward(ProposalId(2), vec![2], 1);
        let mut out = Vec::new();
        c.strand(Term(2), &mut out);
        assert!(out.is_empty(), "its term goes on");
        c.strand(Term(3), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, ProposalId(1));
        assert_eq!(
            out[0].result,
            Err(ClientError::LeaderLost {
                leader: l,
                term: Term(2)
            })
        );
        assert_eq!(
            c.unsent(PeerId([2; 32]), Term(3), 2, 4),
            [(2, vec![2], None)],
            "the one never sent goes to the new leader"
        );
        assert!(c.take_unsent().is_empty());
        c.forward(ProposalId(3), vec![3], 3);
        assert_eq!(c.take_unsent(), [(ProposalId(3), vec![3])]);
        assert_eq!(c.pending(), 1, "proposal 2 waits for its acknowledgement");
    }

    #[test]
    fn forwards_expire() {
        let mut c = Clients::default();
        c.forward(ProposalId(7), vec![1], 10);
        let l = PeerId([1; 32]);
        assert_eq!(c.unsent(l, Term(2), 10, 4), [(7, vec![1], None)]);
        assert!(c.unsent(l, Term(2), 13, 4).is_empty());
        assert_eq!(
            c.unsent(l, Term(2), 14, 4),
            [(7, vec![1], Some(Term(2)))],
            "re-sent to the same leader, saying when it was first sent"
        );
        assert!(
            c.unsent(PeerId([2; 32]), Term(3), 30, 4).is_empty(),
            "never re-sent to another leader"
        );
        assert!(
            c.unsent(l, Term(3), 30, 4).is_empty(),
            "nor in another term"
        );
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
