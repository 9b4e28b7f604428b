//! The worker's side of state sync: the one place a sync context over the worker's state
//! is built, requests and answers routed to the provider and the session, catch-up
//! sessions started from the core's `CatchUp`, polling both sides every tick, pruning the
//! log as far as the provider allows, and carrying out what they asked for (replayed
//! batches, an installed state, commands to feed).

use super::{Worker, WorkerError};
use crate::groups::machine::{
    Provider, Session, StateMachine, StateSync, StateSyncProvider, StateSyncSession,
};
use crate::groups::raft::{CatchUp, LogReader};
use crate::groups::sync_context::{Cx, Side, SyncOutputs};
use crate::groups::{Cursor, Index, Storage};
use crate::primitives::{codec, Short};
use crate::PeerId;
use std::task::{Context, Poll, Waker};

/// The worker's sync objects, lent to one provider or session call.
pub(super) struct SyncParts<'a, M: StateMachine> {
    pub(super) sync: &'a M::StateSync,
    pub(super) provider: &'a mut Provider<M::StateSync>,
    pub(super) session: &'a mut Option<Session<M::StateSync>>,
}

impl<M: StateMachine, S: Storage> Worker<M, S> {
    /// Calls the sync provider or session with a context over this worker's state, then
    /// carries out what it asked for. The one place such contexts are built. `leader`
    /// overrides the leader the context reports (a new session's leader).
    pub(super) fn with_sync<R>(
        &mut self,
        side: Side,
        leader: Option<PeerId>,
        f: impl FnOnce(SyncParts<'_, M>, &mut Cx<'_, M, S>) -> R,
    ) -> Result<R, WorkerError> {
        let commit = self.node.commit_index();
        let term = LogReader::term_at(&self.store, commit)?.unwrap_or_default();
        let mut out = SyncOutputs::default();
        let mut cx = Cx {
            side,
            machine: &mut self.machine,
            store: &self.store,
            bonds: &mut self.bonds,
            committed: Cursor(term, commit),
            leader_commit: self.node.leader_commit(),
            me: self.me,
            group: self.group,
            network: self.network_id,
            leader: leader.or(self.node.leader()),
            applied_membership: &self.applied_membership,
            applied_bytes: self.applied_bytes,
            repairing: self.restoring,
            out: &mut out,
        };
        let parts = SyncParts {
            sync: &self.sync,
            provider: &mut self.provider,
            session: &mut self.session,
        };
        let result = f(parts, &mut cx);
        self.carry_out(out)?;
        Ok(result)
    }

    pub(super) fn for_provider(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), WorkerError> {
        let message = match codec::decode(bytes) {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(peer = %Short(&peer), %err, "undecodable state-sync request dropped");
                return Ok(());
            }
        };
        let handled = self.with_sync(Side::Provider, None, |p, cx| {
            p.provider.receive(message, peer, cx)
        })?;
        if handled.is_err() {
            tracing::debug!(peer = %Short(&peer), "provider could not handle a request");
        }
        Ok(())
    }

    pub(super) fn for_session(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), WorkerError> {
        if self.session.is_none() {
            return Ok(());
        }
        let message = match codec::decode(bytes) {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(peer = %Short(&peer), %err, "undecodable state-sync answer dropped");
                return Ok(());
            }
        };
        self.with_sync(Side::Session, None, |p, cx| {
            if let Some(session) = p.session {
                session.receive(message, peer, cx);
            }
        })
    }

    pub(super) fn start_session(&mut self, catch_up: CatchUp) -> Result<(), WorkerError> {
        if self.session.is_none() {
            tracing::info!(
                group = %Short(&self.group),
                from = self.node.commit_index().0,
                to = catch_up.leader_commit.0,
                "catching up by state sync"
            );
        }
        self.with_sync(Side::Session, Some(catch_up.leader), |p, cx| {
            match p.session {
                Some(session) => session.buffer(catch_up.position, catch_up.entries, cx),
                None => {
                    *p.session = Some(p.sync.create_session(
                        cx,
                        catch_up.position,
                        catch_up.leader_commit,
                        catch_up.entries,
                    ));
                }
            }
        })
    }

    pub(super) fn poll_sync(&mut self) -> Result<(), WorkerError> {
        let mut context = Context::from_waker(Waker::noop());
        let safe = self.with_sync(Side::Provider, None, |p, cx| {
            while p.provider.poll(&mut context, cx).is_ready() {}
            // Asked here, in the same context: a cut or install the poll picked up moves it.
            p.provider.safe_to_prune_prefix(cx)
        })?;
        self.prune_to(safe)?;
        if self.session.is_none() {
            return Ok(());
        }
        let done = self.with_sync(Side::Session, None, |p, cx| {
            p.session
                .as_mut()
                .and_then(|session| match session.poll(&mut context, cx) {
                    Poll::Ready(position) => Some(position),
                    Poll::Pending => None,
                })
        })?;
        if let Some(position) = done {
            if self.session.take().is_some() {
                tracing::info!(group = %Short(&self.group), at = position.index().0, "caught up");
                self.node.finish_catch_up();
                if self.restoring.take().is_some() {
                    self.apply_stash()?;
                }
            }
        }
        Ok(())
    }

    /// After a repaired snapshot is installed: applies the committed entries that came
    /// in meanwhile and are still in the log (an install further ahead reset the log, and
    /// the core hands those entries out again).
    pub(super) fn apply_stash(&mut self) -> Result<(), WorkerError> {
        let Some(to) = self.stash_to.take() else {
            return Ok(());
        };
        let from = self.applied.next();
        if to < from || !self.store.available().contains(&from) {
            return Ok(());
        }
        let entries = LogReader::entries(&self.store, from, to)?;
        self.apply_entries(entries)
    }

    /// Prunes the log up to `safe`, what the sync provider allows (never above what is
    /// applied, and not at all while a damaged snapshot is repaired).
    pub(super) fn prune_to(&mut self, safe: Option<Index>) -> Result<(), WorkerError> {
        if self.restoring.is_some() {
            return Ok(());
        }
        let Some(up_to) = safe.map(|i| i.min(self.applied)) else {
            return Ok(());
        };
        if up_to > *self.store.available().start() {
            self.store.prune_prefix(up_to)?;
            tracing::debug!(group = %Short(&self.group), up_to = up_to.0, "log pruned");
        }
        Ok(())
    }

    pub(super) fn carry_out(&mut self, out: SyncOutputs) -> Result<(), WorkerError> {
        for (entries, committed) in out.replayed {
            match self.node.on_replayed(entries, committed, &self.store) {
                Ok(()) => {}
                Err(err) if !err.is_fatal() => {
                    // The batch does not fit where the core stands (it skipped entries
                    // of a term it has not entered, or the batch is bad): end this
                    // session; the leader asks for another one from the new position
                    // if the node is still far behind.
                    tracing::warn!(group = %Short(&self.group), %err, "replayed batch refused; ending the catch-up");
                    if self.session.take().is_some() {
                        self.node.finish_catch_up();
                    }
                    break;
                }
                Err(err) => return Err(err.into()),
            }
        }
        if let Some(position) = out.synced {
            let membership = out.synced_membership;
            self.node.on_state_synced(position, membership.clone())?;
            // At equal index too: a repaired snapshot is installed at the index the node
            // restarted from, and its header may be the first membership it can read.
            if position.index() >= self.applied {
                self.applied = position.index();
                if let Some(m) = membership {
                    self.applied_membership = m;
                }
            }
            // The provider learns of the install from the worker, not from the session.
            self.with_sync(Side::Provider, None, |p, cx| {
                p.provider.installed(position, cx)
            })?;
        }
        for command in out.feed {
            let id = self.ledger.feed();
            self.node.propose(id, command, &self.store)?;
        }
        Ok(())
    }
}
