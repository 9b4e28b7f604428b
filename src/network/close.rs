//! Why links end: close codes, how they reach the peer, and the local [`CloseReason`].
//!
//! Every link to a peer is one stream of the connection shared with that peer, so a link's
//! end must not close the connection. A refusal, a protocol violation or any other close
//! decided on one side is sent on the link's stream as a last `Close{code, reason}` frame,
//! then the stream is finished; when that frame cannot be written whole (the stream is
//! blocked or already mid-frame) the stream is reset with the code instead, so the peer
//! still learns the code. The peer sees [`CloseReason::ByPeer`] either way.
//!
//! A whole connection ends only when the network shuts down, the connection's watchdog
//! fires (see [`connection`](super::connection)), it has carried no link for a while, or
//! the peer restarted; then QUIC's CONNECTION_CLOSE carries the code and reason, and every
//! link on it ends with that reason.

use super::frame::{read_message, FrameError};
use super::message::Message;
use std::fmt;
use std::time::Duration;
use tokio::io::AsyncRead;

/// Longest close reason sent, in bytes: it is for logs, and must fit one packet.
pub const MAX_CLOSE_REASON: usize = 400;

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
    /// The shared connection carried no link for this long and was closed (no link ever
    /// sees this: it has none).
    Unused(Duration),
}

impl CloseReason {
    /// The code sent to the peer for this reason.
    pub fn code(&self) -> u32 {
        match self {
            CloseReason::Local | CloseReason::Shutdown | CloseReason::ByPeer { .. } => CODE_NORMAL,
            CloseReason::Transport(_) | CloseReason::Unused(_) => CODE_NORMAL,
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
            CloseReason::Unused(after) => write!(f, "no link on the connection for {after:?}"),
        }
    }
}

/// `reason` cut to at most [`MAX_CLOSE_REASON`] bytes, on a character boundary.
pub(crate) fn cut(reason: &str) -> String {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// Reads a link stream's frames until its `Close` frame; returns its code and reason.
/// `Ok(None)`: the stream ended without one. For tools and tests that speak to a node
/// without being one (a node's own links handle `Close` themselves).
pub async fn read_close<R: AsyncRead + Unpin>(
    recv: &mut R,
    max: u32,
) -> Result<Option<(u32, String)>, FrameError> {
    while let Some(msg) = read_message::<Message, _>(recv, max).await? {
        if let Message::Close { code, reason } = msg {
            return Ok(Some((code, reason)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(MAX_CLOSE_REASON);
        let c = cut(&long);
        assert!(c.len() <= MAX_CLOSE_REASON && c.len() >= MAX_CLOSE_REASON - 1);
        assert!(long.starts_with(&c));
    }
}
