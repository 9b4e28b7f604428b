//! Why links end: close codes sent in QUIC's CONNECTION_CLOSE and the local [`CloseReason`].
//!
//! A refusal or a protocol violation is reported to the peer as an application close with
//! one of the codes below and a short UTF-8 reason, so both logs name the cause.

use std::fmt;
use std::time::Duration;

/// Normal close (link dropped, network shut down).
pub const CODE_NORMAL: u32 = 0;
/// The peer sent a malformed, oversized or unexpected frame.
pub const CODE_PROTOCOL: u32 = 1;
/// The handshake refused the peer (network, group, key, ticket).
pub const CODE_REFUSED: u32 = 2;
/// The peer missed too many heartbeats.
pub const CODE_HEARTBEAT: u32 = 3;
/// A link for the same peer and group already exists and wins.
pub const CODE_DUPLICATE: u32 = 4;
/// The peer restarted: a link to its new process replaced this one.
pub const CODE_REPLACED: u32 = 5;
/// The peer's ticket no longer passes this side's validator (revoked, expired, or a
/// renewal refused); the reason is "ticket no longer accepted: <validator's reason>".
pub const CODE_TICKET: u32 = 6;
/// The handshake refused the peer because this node does not host the group asked for.
pub const CODE_UNKNOWN_GROUP: u32 = 7;

/// Why a link closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Closed on this side: the `Link` was closed or dropped.
    Local,
    /// This node's network is shutting down.
    Shutdown,
    /// The peer closed the connection with a code and reason.
    ByPeer {
        /// One of the `CODE_*` constants (or another peer's code).
        code: u64,
        /// The peer's reason.
        reason: String,
    },
    /// The peer sent a frame that broke the protocol (garbage, oversized, out of place).
    Protocol(String),
    /// Nothing arrived for `missed` heartbeat intervals.
    HeartbeatTimeout {
        /// Intervals without a frame.
        missed: u32,
        /// The interval.
        interval: Duration,
    },
    /// Another link for the same peer and group won.
    Duplicate,
    /// The peer's process restarted (a link with another incarnation came up): this link
    /// went to the old process.
    Replaced,
    /// The peer's ticket no longer passes the group's validator: re-checked periodically
    /// (expiry), on [`Network::revalidate_tickets`](super::Network::revalidate_tickets)
    /// (revocation), or renewed by the peer with one that fails.
    TicketRevoked {
        /// The validator's reason.
        reason: String,
    },
    /// The connection failed underneath (timed out, reset).
    Transport(String),
}

impl CloseReason {
    /// The code sent to the peer for this reason.
    pub fn code(&self) -> u32 {
        match self {
            CloseReason::Local | CloseReason::Shutdown | CloseReason::ByPeer { .. } => CODE_NORMAL,
            CloseReason::Transport(_) => CODE_NORMAL,
            CloseReason::Protocol(_) => CODE_PROTOCOL,
            CloseReason::HeartbeatTimeout { .. } => CODE_HEARTBEAT,
            CloseReason::Duplicate => CODE_DUPLICATE,
            CloseReason::Replaced => CODE_REPLACED,
            CloseReason::TicketRevoked { .. } => CODE_TICKET,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Shutdown => f.write_str("network shut down"),
            CloseReason::ByPeer { code, reason } => {
                write!(f, "closed by peer (code {code}): {reason}")
            }
            CloseReason::Protocol(why) => write!(f, "protocol violation: {why}"),
            CloseReason::HeartbeatTimeout { missed, interval } => {
                write!(
                    f,
                    "no frame for {missed} heartbeat intervals of {interval:?}"
                )
            }
            CloseReason::Duplicate => f.write_str("duplicate link for this peer and group"),
            CloseReason::Replaced => {
                f.write_str("the peer restarted: replaced by a link to its new process")
            }
            CloseReason::TicketRevoked { reason } => {
                write!(f, "ticket no longer accepted: {reason}")
            }
            CloseReason::Transport(why) => write!(f, "connection failed: {why}"),
        }
    }
}
