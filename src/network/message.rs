//! The messages of a link, one per frame, in one enum so a message out of place is named
//! as such ("unexpected Heartbeat during the handshake") instead of misread as another kind.
//!
//! Handshake, in order (see [`handshake`](super::handshake)):
//! dialer `Hello` → acceptor `Challenge` (its hello and proof) → dialer `Proof` →
//! acceptor `Welcome`. After that either side sends `Data` and `Ticket` (a renewed ticket,
//! see [`ticket`](super::ticket)) in any order on the link's stream.
//!
//! `Heartbeat` and `Peers` travel only on a connection's control stream (one per side and
//! connection, see [`connection`](super::connection)), never on a link's stream.
//!
//! `Close` is the last frame of a link's stream, in the handshake (a refusal) or after it:
//! the code and reason a whole connection close carried when every link had its own
//! connection, so closing one link leaves the others on the connection up (see
//! [`close`](super::close)). The frame layout is unchanged by it (frame version 1); the
//! variant is appended, so the others keep their encoding.

use super::network_id::NetworkId;
use super::peer_addr::PeerAddr;
use crate::primitives::GroupId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// What each side says about itself at the start of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The network the sender belongs to.
    pub network: NetworkId,
    /// The group this link is for.
    pub group: GroupId,
    /// Fresh random bytes, covered by both proofs, so a recorded proof is worthless.
    pub nonce: [u8; 32],
    /// The sender's ticket for this group (empty if none is configured).
    pub ticket: Vec<u8>,
    /// Where the sender listens, so the receiver can dial it back and tell others.
    pub listen: Option<SocketAddr>,
    /// Random per process, drawn when the sender's network starts: a link from the same
    /// peer id with another incarnation comes from a restarted process, so it replaces
    /// the old link at once instead of waiting for that one's heartbeats to run out.
    pub incarnation: u64,
}

/// One message on a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Dialer → acceptor, first.
    Hello(Hello),
    /// Acceptor → dialer: its own hello and its proof of the group key.
    Challenge {
        /// The acceptor's hello.
        hello: Hello,
        /// MAC proving the acceptor knows the group key.
        proof: [u8; 32],
    },
    /// Dialer → acceptor: proof of the group key.
    Proof {
        /// MAC proving the dialer knows the group key.
        proof: [u8; 32],
    },
    /// Acceptor → dialer: the link is established.
    Welcome,
    /// Liveness, on the control stream: sent when nothing else went out on the connection
    /// for half a heartbeat interval.
    Heartbeat,
    /// Peer exchange: addresses the sender knows.
    Peers(Vec<PeerAddr>),
    /// Application bytes for the group.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The sender renewed the ticket it presents for this group: the receiver validates it
    /// and either keeps it in place of the hello's or closes the link.
    Ticket(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The sender ends this stream's link (or refuses it in the handshake): the last frame
    /// on the stream.
    Close {
        /// One of the `CODE_*` constants of [`close`](super::close).
        code: u32,
        /// Why, for the peer's logs (cut to [`MAX_CLOSE_REASON`](super::close::MAX_CLOSE_REASON) bytes).
        reason: String,
    },
}

impl Message {
    /// The variant's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "Hello",
            Message::Challenge { .. } => "Challenge",
            Message::Proof { .. } => "Proof",
            Message::Welcome => "Welcome",
            Message::Heartbeat => "Heartbeat",
            Message::Peers(_) => "Peers",
            Message::Data(_) => "Data",
            Message::Ticket(_) => "Ticket",
            Message::Close { .. } => "Close",
        }
    }
}
