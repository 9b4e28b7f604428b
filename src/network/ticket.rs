//! Tickets: an application-defined credential a peer presents when it bonds into a group.
//!
//! The group key proves a peer may talk to the group at all; a ticket lets the application
//! say more (this node may join this group until a date, only these machines, ...). Each side
//! sends the ticket configured for the group in its hello, and each side with a
//! [`TicketValidator`] checks the other's ticket once the peer has proven the group key.
//! A refused ticket closes the link with the validator's reason, logged on both sides.

use crate::primitives::{PeerId, UniqueId};

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
/// Called during the handshake, after the peer proved the group key, on the connection's
/// task: keep it quick and non-blocking (it is not async).
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
