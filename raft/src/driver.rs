//! The one Ready driver: the order in which a node's output is persisted, sent and applied,
//! written once and used by every driver of the core (the `tessera` worker, the simulator,
//! the core's tests and its bench), so the simulator's seeds exercise the persistence order
//! production runs.
//!
//! For each [`Ready`], in order (DESIGN.md, "Durability rules"):
//! 1. [`Effects::staging`] sees it (checks, metrics), then its writes are staged
//!    ([`Ready::stage`]: log reset, entries, hard state);
//! 2. the messages that may leave before the sync are sent;
//! 3. if it must sync (term, vote, entries or a reset changed): **one** [`Effects::sync`];
//!    the messages that had to wait (votes, acks, anything of a term not yet durable) are
//!    sent once it returned, and the node hears [`Node::on_persisted`]. A driver whose
//!    disk is slow may answer the sync later ([`Effects::sync`] returns `None`, then
//!    [`ReadyDriver::synced`]): meanwhile later `Ready`s are staged and their waiting
//!    messages queue behind the same sync;
//! 4. committed entries are applied ([`Effects::apply`], which reports them to the node);
//! 5. proposal and read outcomes are resolved ([`Effects::resolve`]);
//! 6. a catch-up request is handed over ([`Effects::catch_up`]);
//! 7. how leadership transfers ended is told ([`Effects::transfer_ended`]).

use crate::{
    CatchUp, Entry, Message, Node, PeerId, ProposalOutcome, RaftError, ReadOutcome, Ready, Storage,
    StorageError, SyncReport, TransferOutcome,
};

/// What a driver does with a node's output. The implementor owns (or borrows) the node and
/// its store and lends them to the driver through [`Effects::core`], so a runtime can
/// implement it on its own state. Everything but `core`, `send`, `apply` and `resolve` has
/// a default.
pub trait Effects {
    /// The node's log store.
    type Store: Storage;
    /// The driver's error: the core's and the store's convert into it.
    type Error: From<RaftError> + From<StorageError>;

    /// The node and its store.
    fn core(&mut self) -> (&mut Node, &mut Self::Store);

    /// A `Ready` is about to be staged (the simulator checks log matching here).
    fn staging(&mut self, _ready: &Ready) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Sends `message` to `to`; `after_sync` says it waited for a sync to return.
    fn send(&mut self, to: PeerId, message: Message, after_sync: bool);

    /// Makes everything staged durable: `Some(report)` once done, or `None` when the sync
    /// completes later (the driver then calls [`ReadyDriver::synced`] with its report,
    /// which must cover everything staged until then).
    fn sync(&mut self) -> Result<Option<SyncReport>, Self::Error> {
        let (_, store) = self.core();
        Ok(Some(store.sync()?))
    }

    /// Applies committed entries in order, and reports them with [`Node::on_applied`].
    fn apply(&mut self, committed: Vec<Entry>) -> Result<(), Self::Error>;

    /// Resolves proposal and read outcomes (after the entries they cover were applied).
    fn resolve(
        &mut self,
        outcomes: Vec<ProposalOutcome>,
        reads: Vec<ReadOutcome>,
    ) -> Result<(), Self::Error>;

    /// Opens the catch-up session the leader asked for (see [`CatchUp`]).
    fn catch_up(&mut self, _catch_up: CatchUp) -> Result<(), Self::Error> {
        Ok(())
    }

    /// A leadership transfer this node ran as leader ended (see [`TransferOutcome`]).
    fn transfer_ended(&mut self, _outcome: TransferOutcome) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Drives one node's `Ready`s; holds the messages waiting for a sync that has not
/// returned yet. One per node; a crash or restart starts a new one.
#[derive(Debug, Default)]
pub struct ReadyDriver {
    waiting: Vec<(PeerId, Message)>,
    sync_pending: bool,
}

impl ReadyDriver {
    /// A driver with nothing waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a sync is in progress (asked and not yet reported).
    pub fn sync_pending(&self) -> bool {
        self.sync_pending
    }

    /// Handles `Ready`s until the node has none (see the module docs for the order).
    pub fn drive<E: Effects>(&mut self, effects: &mut E) -> Result<(), E::Error> {
        loop {
            let (node, store) = effects.core();
            if !node.has_ready() {
                return Ok(());
            }
            let mut rd = node.ready(store)?;
            effects.staging(&rd)?;
            let (_, store) = effects.core();
            let must_sync = rd.stage(store)?;
            for (to, message) in rd.take_messages() {
                effects.send(to, message, false);
            }
            let after = rd.take_after_sync();
            if must_sync || self.sync_pending {
                self.waiting.extend(after);
                if !self.sync_pending {
                    self.sync_pending = true;
                    if let Some(report) = effects.sync()? {
                        self.synced(&report, effects)?;
                    }
                }
            } else {
                for (to, message) in after {
                    effects.send(to, message, false);
                }
            }
            effects.apply(rd.take_committed())?;
            effects.resolve(rd.take_outcomes(), rd.take_reads())?;
            if let Some(catch_up) = rd.take_catch_up() {
                effects.catch_up(catch_up)?;
            }
            for outcome in rd.take_transfers() {
                effects.transfer_ended(outcome)?;
            }
        }
    }

    /// The sync asked for returned `report`: sends what waited for it and tells the node.
    pub fn synced<E: Effects>(
        &mut self,
        report: &SyncReport,
        effects: &mut E,
    ) -> Result<(), E::Error> {
        self.sync_pending = false;
        for (to, message) in std::mem::take(&mut self.waiting) {
            effects.send(to, message, true);
        }
        let (node, store) = effects.core();
        node.on_persisted(report, store)?;
        Ok(())
    }
}
