//! Outcomes of transactions, handed back to the node that proposed them.
//!
//! Whether a compare held and what a transaction read are decided when it applies. The
//! proposing HTTP handler registers a oneshot under a fresh nonce and sends the nonce with
//! the command ([`Ticket`]); the machine on the same node resolves it when it applies the
//! command, before `Group::execute` returns. Other nodes see a ticket of another origin
//! and only apply the writes. Nonces start at a random value, so commands replayed from
//! the log after a restart never match a registration of the new process.

use super::apply::TxnOutcome;
use super::command::Ticket;
use crate::PeerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

type Table = HashMap<u64, oneshot::Sender<TxnOutcome>>;

/// This node's outcomes waiting to be resolved (clones share them).
#[derive(Clone)]
pub struct Outcomes {
    next: Arc<AtomicU64>,
    pending: Arc<Mutex<Table>>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            next: Arc::new(AtomicU64::new(first_nonce())),
            pending: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcomes")
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// A random start (the wall clock in microseconds if the system has no randomness to
/// give: it still differs between two runs of the process). Half the range leaves room
/// to count up.
fn first_nonce() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64)
    }) >> 1
}

fn lock(m: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // Each critical section is one insert, lookup or remove: a poisoned lock still holds
    // a consistent table.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registration; removed when dropped, so an abandoned call leaves nothing behind.
pub struct Pending {
    pending: Arc<Mutex<Table>>,
    nonce: u64,
    rx: oneshot::Receiver<TxnOutcome>,
}

impl Pending {
    /// The outcome, if the machine on this node applied the command.
    pub fn take(mut self) -> Option<TxnOutcome> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.nonce);
    }
}

impl Outcomes {
    /// Registers an outcome to wait for, for a command proposed by `origin` (this node).
    pub fn register(&self, origin: PeerId) -> (Ticket, Pending) {
        let nonce = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(nonce, tx);
        let pending = Pending {
            pending: self.pending.clone(),
            nonce,
            rx,
        };
        (Ticket { origin, nonce }, pending)
    }

    /// Whether the machine on node `local` should compute `ticket`'s outcome.
    pub fn is_waiting(&self, ticket: &Ticket, local: PeerId) -> bool {
        ticket.origin == local && lock(&self.pending).contains_key(&ticket.nonce)
    }

    /// Hands `outcome` to `ticket`'s registration, if it is still waiting.
    pub fn resolve(&self, ticket: Ticket, outcome: TxnOutcome) {
        if let Some(tx) = lock(&self.pending).remove(&ticket.nonce) {
            let _ = tx.send(outcome);
        }
    }

    /// Registrations still waiting.
    pub fn waiting(&self) -> usize {
        lock(&self.pending).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_reaches_its_registration_and_a_dropped_one_is_forgotten() {
        let me = PeerId([1; 32]);
        let outcomes = Outcomes::default();
        let (ticket, pending) = outcomes.register(me);
        assert!(outcomes.is_waiting(&ticket, me));
        assert!(
            !outcomes.is_waiting(&ticket, PeerId([2; 32])),
            "another node"
        );
        let done = TxnOutcome {
            succeeded: true,
            ..TxnOutcome::default()
        };
        outcomes.resolve(ticket, done.clone());
        assert_eq!(pending.take(), Some(done));
        let (ticket, pending) = outcomes.register(me);
        drop(pending);
        assert!(!outcomes.is_waiting(&ticket, me));
        assert_eq!(outcomes.waiting(), 0);
    }
}
