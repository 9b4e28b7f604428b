//! Outcomes of writes, handed back to the node that issued them.
//!
//! Some writes decide something only when applied (whether a compare-exchange matched,
//! which element a pop took, which id a push got). The issuing handle registers a oneshot
//! under a fresh nonce and sends the nonce with the command ([`Ticket`]); when the state
//! machine on the same node applies the command, it sends the outcome there. Other nodes
//! apply the same command and ignore the ticket (it names another origin). Nonces start
//! at a random value, so commands replayed from the log after a restart never match a
//! registration of the new process.

use crate::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Who asked for a command's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ticket {
    /// The node that issued the command.
    pub(crate) origin: PeerId,
    /// Its registration there.
    pub(crate) nonce: u64,
}

struct Inner<R> {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<R>>>,
}

/// Pending outcomes of one node's writes to one collection (clones share them).
pub(crate) struct Replies<R> {
    local: PeerId,
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Replies<R> {
    fn clone(&self) -> Self {
        Replies {
            local: self.local,
            inner: self.inner.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is a single map insert or remove: a poisoned lock still holds
    // a consistent map.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registration: removed from the table when dropped, so a write that failed or was
/// abandoned leaves nothing behind.
pub(crate) struct Pending<R> {
    replies: Replies<R>,
    nonce: u64,
    rx: oneshot::Receiver<R>,
}

impl<R> Pending<R> {
    /// The outcome, if the machine on this node applied the command.
    pub(crate) fn take(mut self) -> Option<R> {
        self.rx.try_recv().ok()
    }
}

impl<R> Drop for Pending<R> {
    fn drop(&mut self) {
        lock(&self.replies.inner.pending).remove(&self.nonce);
    }
}

impl<R> Replies<R> {
    /// A table for node `local`, nonces starting at `first`.
    pub(crate) fn new(local: PeerId, first: u64) -> Self {
        Replies {
            local,
            inner: Arc::new(Inner {
                next: AtomicU64::new(first),
                pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Registers a new outcome to wait for.
    pub(crate) fn register(&self) -> (Ticket, Pending<R>) {
        let nonce = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(nonce, tx);
        let ticket = Ticket {
            origin: self.local,
            nonce,
        };
        let pending = Pending {
            replies: self.clone(),
            nonce,
            rx,
        };
        (ticket, pending)
    }

    /// Called by the state machine: hands `outcome` to the registration `ticket` names,
    /// if it was issued here and is still waiting.
    pub(crate) fn resolve(&self, ticket: Ticket, outcome: R) {
        if ticket.origin != self.local {
            return;
        }
        if let Some(tx) = lock(&self.inner.pending).remove(&ticket.nonce) {
            let _ = tx.send(outcome);
        }
    }

    /// Registrations still waiting (tests).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.inner.pending).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_reach_their_registration_and_dropped_ones_are_forgotten() {
        let me = PeerId([1; 32]);
        let replies = Replies::<u32>::new(me, 7);
        let (ticket, pending) = replies.register();
        assert_eq!(ticket.nonce, 7);
        replies.resolve(ticket, 5);
        assert_eq!(pending.take(), Some(5));
        assert_eq!(replies.waiting(), 0);

        let (ticket, pending) = replies.register();
        replies.resolve(
            Ticket {
                origin: PeerId([2; 32]),
                ..ticket
            },
            1,
        );
        assert_eq!(replies.waiting(), 1, "another origin's ticket is ignored");
        drop(pending);
        assert_eq!(replies.waiting(), 0);
    }
}
