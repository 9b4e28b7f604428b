//! What can go wrong building the network ([`NetworkError`]) and establishing a link
//! ([`BondError`]).

use super::handshake::HandshakeError;
use super::identity::InvalidPeerId;
use super::peer_addr::PeerAddr;
use crate::primitives::{GroupId, PeerId};
use iroh::endpoint::ConnectionError;
use std::net::SocketAddr;
use std::time::Duration;

/// Building or running the network failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The endpoint could not bind its socket.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// iroh's error.
        source: iroh::endpoint::BindError,
    },
    /// A setting is out of range.
    #[error("invalid network setting {setting}: {reason}")]
    InvalidConfig {
        /// The setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// No randomness for the process incarnation.
    #[error("no randomness for the process incarnation: {0}")]
    Random(getrandom::Error),
    /// The group is already joined on this node.
    #[error("group {group} is already joined on this node")]
    GroupAlreadyJoined {
        /// The group.
        group: GroupId,
    },
    /// The group is not joined on this node (never joined, or left).
    #[error("group {group} is not joined on this node")]
    GroupNotJoined {
        /// The group.
        group: GroupId,
    },
}

/// Establishing a link failed.
#[derive(Debug, thiserror::Error)]
pub enum BondError {
    /// The peer id is not a valid public key.
    #[error(transparent)]
    InvalidPeer(#[from] InvalidPeerId),
    /// No address is known for the peer.
    #[error("no address known for peer {peer}")]
    UnknownPeer {
        /// The peer.
        peer: PeerId,
    },
    /// A node cannot bond with itself.
    #[error("cannot bond with myself")]
    SelfBond,
    /// The QUIC connection could not be established.
    #[error("cannot connect to {peer}: {source}")]
    Connect {
        /// The peer dialed.
        peer: PeerAddr,
        /// iroh's error (boxed: it is large).
        source: Box<iroh::endpoint::ConnectError>,
    },
    /// Connecting failed, in an attempt another dial to the same peer made and this one
    /// waited for (dials to one peer share one connect).
    #[error("cannot connect to {peer}: {reason}")]
    ConnectFailed {
        /// The peer.
        peer: PeerId,
        /// What the attempt's error said.
        reason: String,
    },
    /// The connection failed before the handshake finished.
    #[error("connection to {peer} failed: {source}")]
    Connection {
        /// The peer.
        peer: PeerId,
        /// iroh's error (boxed: it is large).
        source: Box<ConnectionError>,
    },
    /// A step took longer than its bound.
    #[error("{what} with {peer} timed out after {after:?}")]
    Timeout {
        /// The peer.
        peer: PeerId,
        /// `"connect"` or `"handshake"`.
        what: &'static str,
        /// The bound.
        after: Duration,
    },
    /// This side refused the peer during the handshake.
    #[error("handshake with {peer} failed: {source}")]
    Handshake {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        source: HandshakeError,
    },
    /// The peer refused this node (its code and reason, sent in a `Close` frame on the
    /// link's stream, or in the connection close).
    #[error("refused by {peer} (code {code}): {reason}")]
    Refused {
        /// The peer.
        peer: PeerId,
        /// The peer's close code.
        code: u64,
        /// The peer's reason.
        reason: String,
    },
    /// A link for this peer and group already exists and wins.
    #[error("a link with {peer} for group {group} already exists")]
    Duplicate {
        /// The peer.
        peer: PeerId,
        /// The group.
        group: GroupId,
    },
    /// The group left or the network shut down.
    #[error("the group left or the network shut down")]
    Shutdown,
}
