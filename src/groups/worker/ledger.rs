//! The worker's ledger of client calls in flight: which proposals belong to which
//! `execute` batch, fed commands (no one waits for them), strong queries waiting for their
//! read index and then for it to be applied, and membership changes waiting to commit.
//! Pure bookkeeping (no core, no store), so its rules are tested on their own.

use super::super::group::GroupError;
use super::super::raft::{ClientError, ProposalId};
use super::super::{Cursor, Index, StopCause, Term};
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio::sync::oneshot;

/// Where an `execute` answer goes: the indices of its commands, in order.
pub(crate) type ExecuteReply = oneshot::Sender<Result<Vec<Index>, GroupError>>;

/// Where a query answer goes: the result and the index it was read at.
pub(crate) type QueryReply<R> = oneshot::Sender<Result<(R, Index), GroupError>>;

/// Where a membership change's answer goes: the index it committed at.
pub(crate) type ChangeReply = oneshot::Sender<Result<Index, GroupError>>;

/// An execute or execute_many waiting for its entries.
struct Batch {
    indices: Vec<Option<Index>>,
    remaining: usize,
    reply: ExecuteReply,
}

/// The calls in flight of one worker; `Q` is the machine's query, `R` its result.
pub(crate) struct Ledger<Q, R> {
    next_proposal: u64,
    next_batch: u64,
    proposals: HashMap<ProposalId, (u64, usize)>,
    batches: HashMap<u64, Batch>,
    fed: HashSet<ProposalId>,
    next_read: u64,
    reads: HashMap<u64, (Q, QueryReply<R>)>,
    waiting_reads: BTreeMap<Index, Vec<(Q, QueryReply<R>)>>,
    changes: Vec<(Cursor, ChangeReply)>,
}

/// A strong query whose read index was applied: the worker runs it and answers.
pub(crate) type ReadyQuery<Q, R> = (Q, QueryReply<R>);

fn stopped(cause: &StopCause) -> GroupError {
    GroupError::Stopped {
        cause: cause.clone(),
    }
}

impl<Q, R> Ledger<Q, R> {
    /// A ledger whose proposal ids start at `first_proposal` (they must grow across
    /// restarts: the leader deduplicates forwards by id).
    pub(crate) fn new(first_proposal: u64) -> Self {
        Self {
            next_proposal: first_proposal.max(1),
            next_batch: 1,
            proposals: HashMap::new(),
            batches: HashMap::new(),
            fed: HashSet::new(),
            next_read: 1,
            reads: HashMap::new(),
            waiting_reads: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    fn proposal_id(&mut self) -> ProposalId {
        let id = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        id
    }

    /// Registers an execute of `count` commands; returns the ids to propose them under,
    /// in order. An empty execute is answered at once.
    pub(crate) fn execute(&mut self, count: usize, reply: ExecuteReply) -> Vec<ProposalId> {
        if count == 0 {
            let _ = reply.send(Ok(Vec::new()));
            return Vec::new();
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        self.batches.insert(
            batch,
            Batch {
                indices: vec![None; count],
                remaining: count,
                reply,
            },
        );
        (0..count)
            .map(|pos| {
                let id = self.proposal_id();
                self.proposals.insert(id, (batch, pos));
                id
            })
            .collect()
    }

    /// A command no one waits for (fed by a client or a sync session).
    pub(crate) fn feed(&mut self) -> ProposalId {
        let id = self.proposal_id();
        self.fed.insert(id);
        id
    }

    /// Registers a strong query; returns the read context to ask the core with.
    pub(crate) fn read(&mut self, query: Q, reply: QueryReply<R>) -> u64 {
        let ctx = self.next_read;
        self.next_read += 1;
        self.reads.insert(ctx, (query, reply));
        ctx
    }

    /// A membership change proposed at `at`, answered once the commit passes it.
    pub(crate) fn change(&mut self, at: Cursor, reply: ChangeReply) {
        self.changes.push((at, reply));
    }

    /// A proposal's outcome: a batch is answered once all its commands are in, or at its
    /// first failure (the rest of it is then dropped unanswered by design: the caller has
    /// its error).
    pub(crate) fn resolve_proposal(&mut self, id: ProposalId, result: Result<Index, ClientError>) {
        if self.fed.remove(&id) {
            if let Err(err) = result {
                tracing::debug!(%err, "fed command failed");
            }
            return;
        }
        let Some((batch_id, pos)) = self.proposals.remove(&id) else {
            return;
        };
        let Some(batch) = self.batches.get_mut(&batch_id) else {
            return;
        };
        match result {
            Ok(index) => {
                batch.indices[pos] = Some(index);
                batch.remaining -= 1;
                if batch.remaining == 0 {
                    if let Some(batch) = self.batches.remove(&batch_id) {
                        let indices = batch.indices.into_iter().flatten().collect();
                        let _ = batch.reply.send(Ok(indices));
                    }
                }
            }
            Err(err) => {
                if let Some(batch) = self.batches.remove(&batch_id) {
                    let _ = batch.reply.send(Err(err.into()));
                }
            }
        }
    }

    /// A read index arrived for `ctx`: the query is returned to be served now when
    /// `applied` reached it, parked until then otherwise; a failure is answered.
    pub(crate) fn resolve_read(
        &mut self,
        ctx: u64,
        result: Result<Index, ClientError>,
        applied: Index,
    ) -> Option<ReadyQuery<Q, R>> {
        let (query, reply) = self.reads.remove(&ctx)?;
        match result {
            Ok(index) if index <= applied => Some((query, reply)),
            Ok(index) => {
                self.waiting_reads
                    .entry(index)
                    .or_default()
                    .push((query, reply));
                None
            }
            Err(err) => {
                let _ = reply.send(Err(err.into()));
                None
            }
        }
    }

    /// The parked queries whose read index `applied` reached, oldest index first.
    pub(crate) fn reads_ready(&mut self, applied: Index) -> Vec<ReadyQuery<Q, R>> {
        let later = self.waiting_reads.split_off(&applied.next());
        let ready = std::mem::replace(&mut self.waiting_reads, later);
        ready.into_values().flatten().collect()
    }

    /// Answers the changes at or below `commit`: with their index when the log still
    /// holds their entry (or no longer holds that index: pruned after it committed), with
    /// `Overwritten` when another term's entry took the index.
    pub(crate) fn resolve_changes<E>(
        &mut self,
        commit: Index,
        term_at: impl Fn(Index) -> Result<Option<Term>, E>,
    ) -> Result<(), E> {
        let mut i = 0;
        while i < self.changes.len() {
            let at = self.changes[i].0;
            if at.index() > commit {
                i += 1;
                continue;
            }
            let (at, reply) = self.changes.swap_remove(i);
            let result = match term_at(at.index())? {
                Some(t) if t != at.term() => Err(ClientError::Overwritten {
                    proposed: at,
                    found: t,
                }
                .into()),
                _ => Ok(at.index()),
            };
            let _ = reply.send(result);
        }
        Ok(())
    }

    /// The group stops: every call still waiting is answered with `cause`.
    pub(crate) fn fail_everything(&mut self, cause: &StopCause) {
        for (_, batch) in self.batches.drain() {
            let _ = batch.reply.send(Err(stopped(cause)));
        }
        self.proposals.clear();
        for (_, (_, reply)) in self.reads.drain() {
            let _ = reply.send(Err(stopped(cause)));
        }
        for (_, waiting) in std::mem::take(&mut self.waiting_reads) {
            for (_, reply) in waiting {
                let _ = reply.send(Err(stopped(cause)));
            }
        }
        for (_, reply) in self.changes.drain(..) {
            let _ = reply.send(Err(stopped(cause)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    fn ledger() -> Ledger<&'static str, u32> {
        Ledger::new(100)
    }

    #[test]
    fn a_batch_answers_once_every_command_is_in_with_indices_in_order() {
        let mut l = ledger();
        let (tx, mut rx) = oneshot::channel();
        let ids = l.execute(3, tx);
        assert_eq!(ids, vec![ProposalId(100), ProposalId(101), ProposalId(102)]);
        l.resolve_proposal(ids[2], Ok(Index(9)));
        l.resolve_proposal(ids[0], Ok(Index(7)));
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        l.resolve_proposal(ids[1], Ok(Index(8)));
        assert_eq!(
            rx.try_recv().unwrap().unwrap(),
            vec![Index(7), Index(8), Index(9)]
        );
    }

    #[test]
    fn a_batch_fails_at_its_first_failed_command() {
        let mut l = ledger();
        let (tx, mut rx) = oneshot::channel();
        let ids = l.execute(2, tx);
        l.resolve_proposal(ids[0], Err(ClientError::NotLeader { leader: None }));
        assert!(rx.try_recv().unwrap().is_err());
        // The second outcome finds nothing to answer.
        l.resolve_proposal(ids[1], Ok(Index(4)));
    }

    #[test]
    fn an_empty_execute_is_answered_at_once_and_ids_keep_growing() {
        let mut l = ledger();
        let (tx, mut rx) = oneshot::channel();
        assert!(l.execute(0, tx).is_empty());
        assert_eq!(rx.try_recv().unwrap().unwrap(), Vec::<Index>::new());
        let fed = l.feed();
        let (tx, _rx) = oneshot::channel();
        assert!(l.execute(1, tx)[0] > fed);
    }

    #[test]
    fn a_read_waits_until_its_index_is_applied() {
        let mut l = ledger();
        let (tx, _rx) = oneshot::channel();
        let ctx = l.read("q1", tx);
        assert!(l.resolve_read(ctx, Ok(Index(5)), Index(4)).is_none());
        assert!(l.reads_ready(Index(4)).is_empty());
        let ready = l.reads_ready(Index(5));
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].0, "q1");

        let (tx, _rx) = oneshot::channel();
        let ctx = l.read("q2", tx);
        let now = l.resolve_read(ctx, Ok(Index(3)), Index(5));
        assert_eq!(now.map(|(q, _)| q), Some("q2"));
    }

    #[test]
    fn a_failed_read_is_answered_with_its_error() {
        let mut l = ledger();
        let (tx, mut rx) = oneshot::channel();
        let ctx = l.read("q", tx);
        assert!(l
            .resolve_read(ctx, Err(ClientError::NotLeader { leader: None }), Index(9))
            .is_none());
        assert!(rx.try_recv().unwrap().is_err());
    }

    #[test]
    fn a_change_answers_by_what_the_log_holds_at_its_index() {
        let mut l = ledger();
        let (kept, mut kept_rx) = oneshot::channel();
        let (lost, mut lost_rx) = oneshot::channel();
        let (later, mut later_rx) = oneshot::channel();
        l.change(Cursor(Term(2), Index(5)), kept);
        l.change(Cursor(Term(2), Index(6)), lost);
        l.change(Cursor(Term(2), Index(9)), later);
        let term_at = |i: Index| -> Result<Option<Term>, ()> {
            Ok(Some(if i == Index(6) { Term(3) } else { Term(2) }))
        };
        l.resolve_changes(Index(6), term_at).unwrap();
        assert_eq!(kept_rx.try_recv().unwrap().unwrap(), Index(5));
        assert!(lost_rx.try_recv().unwrap().is_err());
        assert_eq!(later_rx.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    #[test]
    fn stopping_answers_every_waiting_call() {
        let mut l = ledger();
        let (b, mut b_rx) = oneshot::channel();
        let (r, mut r_rx) = oneshot::channel();
        let (w, mut w_rx) = oneshot::channel();
        let (c, mut c_rx) = oneshot::channel();
        l.execute(1, b);
        l.read("r", r);
        let ctx = l.read("w", w);
        assert!(l.resolve_read(ctx, Ok(Index(10)), Index(1)).is_none());
        l.change(Cursor(Term(1), Index(3)), c);
        l.fail_everything(&StopCause::ShutDown);
        for err in [
            b_rx.try_recv().unwrap().unwrap_err(),
            c_rx.try_recv().unwrap().unwrap_err(),
        ] {
            assert!(err.to_string().contains("shut down"), "{err}");
        }
        assert!(r_rx.try_recv().unwrap().is_err());
        assert!(w_rx.try_recv().unwrap().is_err());
    }
}
