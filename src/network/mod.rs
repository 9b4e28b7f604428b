//! The transport: one iroh endpoint per node, identities, addresses, framing, links
//! (issue 5).
//!
//! - [`identity`] — the secret key kept in the data directory; `PeerId` ⇄ iroh `EndpointId`.
//! - [`peer_addr`] — `PEER_ID@IP:PORT`.
//! - [`frame`] — length-prefixed, versioned, capped frames.
//! - [`handshake`] — the mutual proof of the group key, bound to one link.
//! - [`link`] — an established link: data, heartbeats, peer exchange, ticket re-checks.
//! - `ticket` — tickets: validated in the handshake, re-checked while a link lives,
//!   renewed on live links.
//! - [`Network`] — the endpoint, accept loop, bonds with back-off, peer table.
//!
//! Nothing here panics on what a peer sends: every malformed, oversized, unexpected or
//! unauthenticated input closes that one link with a logged reason, and the node keeps
//! serving everyone else.

mod backoff;
mod close;
pub mod frame;
pub mod handshake;
pub mod identity;
pub mod link;
mod message;
#[allow(clippy::module_inception)]
mod network;
mod network_id;
pub mod peer_addr;
mod peers;
mod peers_file;
mod ticket;

pub use backoff::Backoff;
pub use close::{
    CloseReason, CODE_DUPLICATE, CODE_HEARTBEAT, CODE_NORMAL, CODE_PROTOCOL, CODE_REFUSED,
    CODE_REPLACED, CODE_TICKET, CODE_UNKNOWN_GROUP,
};
pub use handshake::{HandshakeError, LinkKey};
pub use identity::{endpoint_id, peer_id, IdentityError, InvalidPeerId};
pub use link::{Link, LinkClosed, LinkConfig, LinkSender, TrySendError};
pub(crate) use network::WeakNetwork;
pub use network::{
    BondError, GroupAccess, GroupLinks, Network, NetworkBuilder, NetworkError, ALPN,
    GROUP_LINK_QUEUE,
};
pub use network_id::NetworkId;
pub use peer_addr::{PeerAddr, PeerAddrError};
pub use peers::{PeerTable, Source as PeerSource};
pub use ticket::{Revalidation, TicketError, TicketValidator, DEFAULT_TICKET_RECHECK};
