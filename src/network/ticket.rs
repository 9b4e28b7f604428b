//! Tickets: an application-defined credential a peer presents when it bonds into a group,
//! and keeps presenting while the bond lives.
//!
//! The group key proves a peer may talk to the group at all; a ticket lets the application
//! say more (this node may join this group until a date, only these machines, ...). Each side
//! sends the ticket configured for the group in its hello, and each side with a
//! [`TicketValidator`] checks the other's ticket once the peer has proven the group key.
//! A refused ticket closes the link with the validator's reason, logged on both sides.
//!
//! A ticket is not only checked once. Each live link remembers the ticket the peer presented
//! ([`PeerTicket`]) and asks the validator again:
//! - every [`LinkConfig::ticket_recheck_interval`](super::LinkConfig) (default
//!   [`DEFAULT_TICKET_RECHECK`], one second), so a ticket the validator refuses once its
//!   time is past (a JWT's `exp`) ends the bond within one interval;
//! - at once for every live link of a group on
//!   [`Network::revalidate_tickets`](super::Network::revalidate_tickets), after the
//!   application's rules changed (a revocation list);
//! - when the peer renews its ticket ([`Network::renew_ticket`](super::Network::renew_ticket)
//!   on its side): the new ticket arrives on the live link and replaces the old one only if
//!   it passes.
//!
//! A link whose peer's ticket no longer passes closes with
//! [`CloseReason::TicketRevoked`](super::CloseReason::TicketRevoked) (code
//! [`CODE_TICKET`](super::CODE_TICKET)); the peer's close reason reads "ticket no longer
//! accepted: <validator's reason>". A maintained bond redials with back-off as after any
//! close, and the handshake refuses it while the ticket does not pass.
//!
//! Cost: one validator call per link per interval, plus one per link on a revalidation
//! call and one per renewal received. Calls run on network tasks (or the caller's thread
//! for a revalidation), under the link's own lock only.

use crate::primitives::{PeerId, UniqueId};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a live link asks the validator again about the peer's ticket, unless set in
/// [`LinkConfig`](super::LinkConfig): a revoked or expired ticket ends the bond within this.
pub const DEFAULT_TICKET_RECHECK: Duration = Duration::from_secs(1);

/// A ticket was refused; the reason is logged and sent to the peer in the close frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket refused: {reason}")]
pub struct TicketError {
    /// Why (shown to operators on both sides; keep secrets out of it).
    pub reason: String,
}

impl TicketError {
    /// A refusal with a reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Decides whether a peer's ticket admits it to a group.
///
/// Called during the handshake, after the peer proved the group key, and again while the
/// link lives (periodically, on revalidation, on renewal; see the module docs), on network
/// tasks: keep it quick and non-blocking (it is not async). It may change its answer for
/// the same ticket (expiry, a revocation list): that is how a live bond is ended.
pub trait TicketValidator: Send + Sync + 'static {
    /// `Ok(())` admits `peer`; an error refuses it.
    fn validate(&self, peer: PeerId, ticket: &[u8]) -> Result<(), TicketError>;

    /// Identifies the validator and its settings; part of the group id, so members with
    /// different validators derive different groups. The default names an unnamed
    /// validator: override it when one program may configure validators differently.
    fn signature(&self) -> UniqueId {
        UniqueId::of(b"tessera/ticket-validator/unnamed")
    }
}

impl<F> TicketValidator for F
where
    F: Fn(PeerId, &[u8]) -> Result<(), TicketError> + Send + Sync + 'static,
{
    fn validate(&self, peer: PeerId, ticket: &[u8]) -> Result<(), TicketError> {
        self(peer, ticket)
    }
}

/// What a revalidation found: how many live links had their peer's ticket checked, and
/// which peers were refused (their links are closing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revalidation {
    /// Live links whose peer's ticket was checked (0 when the group requires no ticket).
    pub checked: usize,
    /// Peers whose ticket no longer passes, with the validator's reason.
    pub refused: Vec<(PeerId, TicketError)>,
}

/// The ticket the peer presented on one live link, and the validator it must keep
/// passing. Shared by the link's task (periodic check, renewals) and the registry
/// (revalidation on demand).
pub(crate) struct PeerTicket {
    peer: PeerId,
    validator: Option<Arc<dyn TicketValidator>>,
    /// The peer's current ticket: the one from its hello, or the last renewal that passed.
    ticket: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for PeerTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTicket")
            .field("peer", &self.peer)
            .field("checked", &self.validator.is_some())
            .finish()
    }
}

impl PeerTicket {
    /// `ticket`, presented by `peer` in its hello (and accepted by `validator` if any).
    pub(crate) fn new(
        peer: PeerId,
        validator: Option<Arc<dyn TicketValidator>>,
        ticket: Vec<u8>,
    ) -> Arc<Self> {
        Arc::new(Self {
            peer,
            validator,
            ticket: Mutex::new(ticket),
        })
    }

    /// Whether there is anything to check (the group requires tickets).
    pub(crate) fn is_checked(&self) -> bool {
        self.validator.is_some()
    }

    /// The peer's current ticket.
    pub(crate) fn current(&self) -> Vec<u8> {
        self.lock().clone()
    }

    /// Asks the validator again about the current ticket.
    pub(crate) fn check(&self) -> Result<(), TicketError> {
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        // Under the link's lock, so a renewal cannot slip in between the check and the
        // verdict (a stale refusal of a ticket already replaced).
        let ticket = self.lock();
        validator.validate(self.peer, &ticket)
    }

    /// The peer renewed its ticket: it replaces the current one if it passes. A refused
    /// renewal leaves the old one in place (the link is closing anyway).
    pub(crate) fn renew(&self, ticket: Vec<u8>) -> Result<(), TicketError> {
        let mut current = self.lock();
        if let Some(validator) = &self.validator {
            validator.validate(self.peer, &ticket)?;
        }
        *current = ticket;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A validator that panicked while the lock was held left the bytes intact.
        self.ticket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    const P: PeerId = PeerId([5; 32]);

    #[test]
    fn a_peer_ticket_is_asked_again_and_renewed_only_when_it_passes() {
        let revoked = Arc::new(AtomicBool::new(false));
        let flag = revoked.clone();
        let validator = move |peer: PeerId, ticket: &[u8]| {
            assert_eq!(peer, P);
            if flag.load(Ordering::SeqCst) && ticket == b"old" {
                Err(TicketError::new("old is revoked"))
            } else if ticket.starts_with(b"bad") {
                Err(TicketError::new("bad ticket"))
            } else {
                Ok(())
            }
        };
        let t = PeerTicket::new(P, Some(Arc::new(validator)), b"old".to_vec());
        assert!(t.is_checked());
        assert_eq!(t.check(), Ok(()));
        revoked.store(true, Ordering::SeqCst);
        assert_eq!(t.check(), Err(TicketError::new("old is revoked")));
        assert_eq!(
            t.renew(b"bad one".to_vec()),
            Err(TicketError::new("bad ticket"))
        );
        assert_eq!(
            t.current(),
            b"old".to_vec(),
            "a refused renewal is not stored"
        );
        assert_eq!(t.renew(b"new".to_vec()), Ok(()));
        assert_eq!(t.current(), b"new".to_vec());
        assert_eq!(
            t.check(),
            Ok(()),
            "the renewed ticket is what is checked now"
        );
    }

    #[test]
    fn without_a_validator_every_ticket_passes_and_renewals_are_kept() {
        let t = PeerTicket::new(P, None, Vec::new());
        assert!(!t.is_checked());
        assert_eq!(t.check(), Ok(()));
        assert_eq!(t.renew(b"x".to_vec()), Ok(()));
        assert_eq!(t.current(), b"x".to_vec());
    }
}
