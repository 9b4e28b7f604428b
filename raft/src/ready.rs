//! `Ready`: everything the driver must do after feeding the node, as one value.
//!
//! The driver's loop (the worker and the simulator follow it):
//!
//! 1. `let mut rd = node.ready(&store)?;`
//! 2. write: [`Ready::reset_to`] (log reset), then [`Ready::take_entries`] (truncate the
//!    store at the first entry's index if it holds that index, then append), then
//!    [`Ready::hard_state`], then the vote-withheld marker's clearing
//!    ([`Ready::clears_vote_withheld`]) — all staged, then **one** `sync()` if [`Ready::must_sync`]
//!    ([`Ready::persist`] does exactly this for any `Storage`);
//! 3. send [`Ready::take_messages`] (they may go before the sync completes);
//! 4. after the sync: send [`Ready::take_after_sync`], call `node.on_persisted(..)` with
//!    the sync report;
//! 5. apply [`Ready::take_committed`] in order, resolve [`Ready::take_outcomes`] and serve
//!    [`Ready::take_reads`] once applied, then `node.on_applied(last applied)`;
//! 6. [`Ready::take_catch_up`]: open the one catch-up session it asks for (see
//!    [`CatchUp`]). A log-replay session pulls committed batches from peers and hands each
//!    to `node.on_replayed(..)` in log order, between two `Ready`s like any other input
//!    (the entries come out in the next `Ready`, to persist and apply as usual); when it
//!    ends, caught up or abandoned, it calls `node.finish_catch_up()`. A state-sync session
//!    ends with `node.on_state_synced(..)` instead.
//! 7. [`Ready::take_transfers`]: how leadership transfers ended (nothing to do for the core;
//!    a driver answers whoever asked for the transfer).

use super::message::{Entry, Message};
use crate::output::{CatchUp, ProposalOutcome, ReadOutcome, TransferOutcome};
use crate::PeerId;
use crate::{Cursor, HardState, Storage, StorageError, SyncReport};

/// What the driver must do; see the module docs for the order.
#[derive(Debug, Default)]
#[must_use]
pub struct Ready {
    number: u64,
    hard_state: Option<HardState>,
    reset_to: Option<Cursor>,
    entries: Vec<Entry>,
    messages: Vec<(PeerId, Message)>,
    after_sync: Vec<(PeerId, Message)>,
    committed: Vec<Entry>,
    outcomes: Vec<ProposalOutcome>,
    reads: Vec<ReadOutcome>,
    catch_up: Option<CatchUp>,
    transfers: Vec<TransferOutcome>,
    must_sync: bool,
    /// The node's log reached its vote-withheld marker: clear the marker in the store.
    clear_vote_withheld: bool,
}

#[allow(clippy::too_many_arguments)]
impl Ready {
    pub(crate) fn new(
        number: u64,
        hard_state: Option<HardState>,
        reset_to: Option<Cursor>,
        entries: Vec<Entry>,
        messages: Vec<(PeerId, Message)>,
        after_sync: Vec<(PeerId, Message)>,
        committed: Vec<Entry>,
        outcomes: Vec<ProposalOutcome>,
        reads: Vec<ReadOutcome>,
        catch_up: Option<CatchUp>,
        transfers: Vec<TransferOutcome>,
        must_sync: bool,
    ) -> Self {
        Ready {
            number,
            hard_state,
            reset_to,
            entries,
            messages,
            after_sync,
            committed,
            outcomes,
            reads,
            catch_up,
            transfers,
            must_sync,
            clear_vote_withheld: false,
        }
    }

    /// Marks this `Ready` as clearing the store's vote-withheld marker.
    pub(crate) fn clearing_vote_withheld(mut self) -> Self {
        self.clear_vote_withheld = true;
        self
    }

    /// Whether the store's vote-withheld marker is to be cleared (staged after the
    /// entries, so it is never durable without the entries that earned it).
    pub fn clears_vote_withheld(&self) -> bool {
        self.clear_vote_withheld
    }

    /// The sequence number of this `Ready` (1, 2, ...).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The hard state to stage, when it changed.
    pub fn hard_state(&self) -> Option<HardState> {
        self.hard_state
    }

    /// A log reset to stage first (state sync installed up to this position).
    pub fn reset_to(&self) -> Option<Cursor> {
        self.reset_to
    }

    /// Whether a sync is needed before `after_sync` messages go out: term, vote, entries
    /// or a reset changed.
    pub fn must_sync(&self) -> bool {
        self.must_sync
    }

    /// Entries to stage: truncate the store at the first one's index, then append.
    pub fn take_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }

    /// The entries to stage, borrowed.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Messages that may be sent before the sync.
    pub fn take_messages(&mut self) -> Vec<(PeerId, Message)> {
        std::mem::take(&mut self.messages)
    }

    /// Messages that may be sent only after the sync succeeded (votes, vote requests,
    /// anything of a term not yet durable).
    pub fn take_after_sync(&mut self) -> Vec<(PeerId, Message)> {
        std::mem::take(&mut self.after_sync)
    }

    /// Committed entries to apply, in order.
    pub fn take_committed(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.committed)
    }

    /// Proposal outcomes.
    pub fn take_outcomes(&mut self) -> Vec<ProposalOutcome> {
        std::mem::take(&mut self.outcomes)
    }

    /// Read-index outcomes.
    pub fn take_reads(&mut self) -> Vec<ReadOutcome> {
        std::mem::take(&mut self.reads)
    }

    /// The leader asked this follower to catch up by itself: open a session for it (at most
    /// one is open; see [`CatchUp`]).
    pub fn take_catch_up(&mut self) -> Option<CatchUp> {
        self.catch_up.take()
    }

    /// How leadership transfers this node ran as leader ended (see [`TransferOutcome`]).
    pub fn take_transfers(&mut self) -> Vec<TransferOutcome> {
        std::mem::take(&mut self.transfers)
    }

    /// Whether there is nothing to do at all.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.reset_to.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.after_sync.is_empty()
            && self.committed.is_empty()
            && self.outcomes.is_empty()
            && self.reads.is_empty()
            && self.catch_up.is_none()
            && self.transfers.is_empty()
    }

    /// Step 2 of the loop for any store: stages the reset, the entries (truncating first
    /// where they overwrite) and the hard state. Returns whether a sync is needed; the
    /// caller then calls `store.sync()` once (or later, for a slow disk) and reports it
    /// with `Node::on_persisted`.
    pub fn stage<S: Storage + ?Sized>(&mut self, store: &mut S) -> Result<bool, StorageError> {
        if let Some(at) = self.reset_to {
            store.reset_to(at)?;
        }
        let entries = self.take_entries();
        if let Some(first) = entries.first() {
            if store.last().index() >= first.index {
                store.truncate(first.index)?;
            }
        }
        for e in entries {
            store.append(e.payload, e.term)?;
        }
        if let Some(hs) = self.hard_state {
            store.set_hard_state(hs)?;
        }
        if self.clear_vote_withheld {
            store.set_vote_withheld(None)?;
        }
        Ok(self.must_sync)
    }

    /// [`Ready::stage`] followed by one `sync()` when needed.
    pub fn persist<S: Storage + ?Sized>(
        &mut self,
        store: &mut S,
    ) -> Result<Option<SyncReport>, StorageError> {
        if self.stage(store)? {
            Ok(Some(store.sync()?))
        } else {
            Ok(None)
        }
    }
}
