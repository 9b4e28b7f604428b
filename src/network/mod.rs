//! The transport: one iroh endpoint per node, identities, addresses, framing, links
//! (issue 5).
//!
//! - [`identity`] — `PeerId` ⇄ iroh `EndpointId` (the key itself lives in the
//!   [`DataDir`](crate::data_dir::DataDir)).
//! - [`peer_addr`] — `PEER_ID@IP:PORT`, the form dialed and exchanged.
//! - [`peer_spec`] — `[PEER_ID@]HOST:PORT`, the form configured: host names are resolved
//!   again before every dial (`names`), and a missing id is learned with a probe
//!   (`whoami`) on the peer port number over TCP.
//! - [`frame`] — length-prefixed, versioned, capped frames.
//! - [`handshake`] — the mutual proof of the group key, bound to one link (stream).
//! - [`link`] — an established link, one stream of the connection to its peer: data,
//!   ticket re-checks, its own close.
//! - `connection`, `conns` — one QUIC connection per pair of nodes for all their groups'
//!   links, with one heartbeat, watchdog and peer exchange per connection.
//! - `ticket` — tickets: validated in the handshake, re-checked while a link lives,
//!   renewed on live links.
//! - [`Network`] — the endpoint and peer table, built by [`NetworkBuilder`]; it accepts
//!   links (`accept`), dials and keeps bonds with back-off (`dial`), keeps one live link
//!   per peer and group (`registry`), and hands each joined group its links
//!   ([`GroupLinks`]).
//!
//! Nothing here panics on what a peer sends: every malformed, oversized, unexpected or
//! unauthenticated input on a link's stream closes that one link with a logged reason
//! (the connection and the other groups' links on it stay), and the node keeps serving
//! everyone else.

mod accept;
mod backoff;
mod builder;
mod close;
mod connection;
mod conns;
mod dial;
mod error;
pub mod frame;
mod group_links;
pub mod handshake;
pub mod identity;
pub mod link;
mod link_setup;
mod message;
mod names;
#[allow(clippy::module_inception)]
mod network;
mod network_id;
pub mod peer_addr;
pub mod peer_spec;
mod peers;
mod refusals;
mod registry;
mod ticket;
mod whoami;

pub use backoff::Backoff;
pub use builder::{NetworkBuilder, MAX_LINKS_PER_CONNECTION};
pub use close::{
    read_close, CloseReason, CODE_DUPLICATE, CODE_HEARTBEAT, CODE_NORMAL, CODE_PROTOCOL,
    CODE_REFUSED, CODE_REPLACED, CODE_TICKET, CODE_UNKNOWN_GROUP, MAX_CLOSE_REASON,
};
pub use error::{BondError, NetworkError};
pub use group_links::{GroupAccess, GroupLinks};
pub use handshake::{HandshakeError, LinkKey};
pub use identity::{endpoint_id, peer_id, InvalidPeerId};
pub use link::{Link, LinkClosed, LinkConfig, LinkSender, TrySendError};
pub use names::WARN_EVERY;
pub(crate) use network::WeakNetwork;
pub use network::{Network, ALPN, GROUP_LINK_QUEUE};
pub use network_id::NetworkId;
pub use peer_addr::{PeerAddr, PeerAddrError};
pub use peer_spec::{HostPort, PeerSpec, PeerSpecError, ResolveError};
pub use peers::{PeerTable, Source as PeerSource};
pub use ticket::{Revalidation, TicketError, TicketValidator, DEFAULT_TICKET_RECHECK};
