//! [`Network`]: a node's endpoint, its peer table, the groups it joined and their links.
//!
//! The parts, each in its file: [`NetworkBuilder`](super::NetworkBuilder) binds the
//! endpoint (`builder.rs`); `accept.rs` takes incoming connections and `dial.rs` makes and
//! keeps outgoing ones; the link registry (`registry.rs`) keeps one live link per peer and
//! group; [`GroupLinks`](super::GroupLinks) is a joined group's handle (`group_links.rs`).
//!
//! # Links and connections
//! One link per (peer, group), one QUIC connection per pair of nodes: every group's link to
//! a peer is a bidirectional stream of the connection shared with it (`conns.rs`,
//! `connection.rs`), which also carries the heartbeats, the watchdog and peer exchange, once
//! for all its links. A link starts with the [`handshake`](super::handshake) on its stream
//! and then runs as described in [`link`](super::link); its end closes its stream only.
//! [`Network::open_connections`] and [`Network::live_links`] count both.
//!
//! # Peer exchange
//! Each side of a connection tells the other the addresses it knows once a link on it is
//! authenticated, again when later links start, and every
//! [`PEER_EXCHANGE_TICKS`](super::link::PEER_EXCHANGE_TICKS) heartbeat intervals; an
//! address a peer states for itself in its hello replaces a second-hand one. So a node given one live peer
//! learns the rest. A node built from a [`DataDir`] writes what it knows to the peers file
//! ([`Network::save_peers`]), so a restart needs no bootstrap peers.

use super::connection::Heartbeat;
use super::conns::ConnTable;
use super::error::NetworkError;
use super::group_links::{GroupAccess, GroupEntry, GroupLinks};
use super::link::PeerExchange;
use super::names::{self, NameBook};
use super::network_id::NetworkId;
use super::peer_addr::PeerAddr;
use super::peer_spec::PeerSpec;
use super::peers::{PeerTable, Source};
use super::refusals::RefusalLog;
use super::registry::LinkRegistry;
use super::ticket::Revalidation;
use super::NetworkBuilder;
use crate::data_dir::DataDir;
use crate::primitives::{GroupId, PeerId, Short};
use iroh::Endpoint;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The ALPN of tessera connections. Version 2: one connection carries every group's links
/// as streams, with a control stream each way (version 1 had a connection per link); the
/// two cannot talk, so a version 1 node is refused by QUIC itself, by name.
pub const ALPN: &[u8] = b"tessera/2";

/// Capacity of a group's channel of new links; when full, a new link is closed (and a
/// maintained bond retries later), since a group that does not take links is stuck anyway.
pub const GROUP_LINK_QUEUE: usize = 64;

/// The state every part of the network shares.
pub(super) struct Inner {
    pub(super) endpoint: Endpoint,
    pub(super) network: NetworkId,
    pub(super) local: PeerAddr,
    /// This process's incarnation, told to peers in every handshake.
    pub(super) incarnation: u64,
    /// When this network started: refusals of groups not opened yet are expected for a
    /// moment after (see `accept.rs`).
    pub(super) started: std::time::Instant,
    pub(super) max_frame: u32,
    pub(super) connect_timeout: Duration,
    pub(super) handshake_timeout: Duration,
    pub(super) backoff: (Duration, Duration),
    pub(super) peers: Mutex<PeerTable>,
    /// Peers given by host name or without an id (see `names.rs`).
    pub(super) names: Mutex<NameBook>,
    /// Said with every "refused: unknown group" line, on both sides: which settings make
    /// the group id (see [`NetworkBuilder::group_mismatch_hint`]).
    pub(super) mismatch_hint: String,
    /// When each refused peer was last logged by the accepting side (rate limit).
    pub(super) refusals: Mutex<RefusalLog>,
    /// The node's data directory (key, store, peers file), for a durable node.
    pub(super) data_dir: Option<DataDir>,
    pub(super) groups: Mutex<HashMap<GroupId, GroupEntry>>,
    pub(super) links: LinkRegistry,
    /// Live connections by peer.
    pub(super) conns: ConnTable,
    /// Liveness of every connection.
    pub(super) heartbeat: Heartbeat,
    /// Heartbeat frames sent on all connections since start.
    pub(super) heartbeats_sent: AtomicU64,
    pub(super) shutdown: CancellationToken,
    /// Every task of this node, so shutdown can wait for them.
    pub(super) tasks: TaskTracker,
}

/// Locks a mutex; a poisoned one (a panic elsewhere while holding it) is still usable:
/// every critical section here leaves the data consistent at each step.
pub(super) fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PeerExchange for Inner {
    fn known(&self, _peer: PeerId) -> Vec<PeerAddr> {
        guard(&self.peers).all()
    }

    fn learned(&self, from: PeerId, peers: Vec<PeerAddr>) {
        let mut table = guard(&self.peers);
        let added = peers
            .into_iter()
            .filter(|p| table.insert(*p, Source::Exchange))
            .count();
        if added > 0 {
            tracing::debug!(from = %Short(&from), added, "learned peers");
        }
    }
}

/// A tessera node's network: its endpoint, identity and peers. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

impl Network {
    pub(super) fn from_inner(inner: Arc<Inner>) -> Self {
        Network { inner }
    }
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("local", &self.inner.local)
            .field("network", &self.inner.network)
            .finish()
    }
}

/// A reference to a [`Network`] that does not keep it (nor its UDP socket) alive, for
/// handles that outlive their node's shutdown (a `Group` handle).
#[derive(Clone, Debug)]
pub(crate) struct WeakNetwork(std::sync::Weak<Inner>);

impl WeakNetwork {
    /// The network, while any strong handle is left.
    pub(crate) fn upgrade(&self) -> Option<Network> {
        self.0.upgrade().map(|inner| Network { inner })
    }
}

impl Network {
    /// A reference that does not keep the network alive.
    pub(crate) fn downgrade(&self) -> WeakNetwork {
        WeakNetwork(Arc::downgrade(&self.inner))
    }

    /// A builder for a node of network `network`.
    pub fn builder(network: NetworkId) -> NetworkBuilder {
        NetworkBuilder::new(network)
    }

    /// This node's id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.local.id
    }

    /// This node's address as peers should dial it (`ID@IP:PORT`).
    pub fn local_addr(&self) -> PeerAddr {
        self.inner.local
    }

    /// The network this node belongs to.
    pub fn network_id(&self) -> NetworkId {
        self.inner.network
    }

    /// The iroh endpoint, for protocols beside tessera's links.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Every peer address this node knows (bootstrap and learned).
    pub fn known_peers(&self) -> Vec<PeerAddr> {
        guard(&self.inner.peers).all()
    }

    /// Adds a peer address (as if given at bootstrap).
    pub fn add_peer(&self, peer: PeerAddr) {
        guard(&self.inner.peers).insert(peer, Source::Bootstrap);
    }

    /// The node's data directory (its key, store and peers file), for a network built
    /// from one; durable groups keep their log and snapshots in its store.
    pub fn data_dir(&self) -> Option<&DataDir> {
        self.inner.data_dir.as_ref()
    }

    /// Ids of the peers given by host name (with an id, or with one learned since): each
    /// is dialled at its name resolved anew, whether or not the name resolves now.
    pub fn named_peers(&self) -> Vec<PeerId> {
        guard(&self.inner.names).ids()
    }

    /// Peers given without an id whose id is not learned yet (`HOST:PORT`).
    pub fn unresolved_peers(&self) -> Vec<String> {
        guard(&self.inner.names)
            .unresolved()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Writes the known peers to the data directory's peers file when they changed, so a
    /// restarted node finds its group without `--peer` (see [`DataDir::save_peers`]).
    /// A peer given by name is kept by name (`ID@NAME:PORT`), and one whose id is not
    /// learned yet as `HOST:PORT`. Does nothing without a data directory.
    pub fn save_peers(&self) {
        if let Some(dir) = &self.inner.data_dir {
            let named = guard(&self.inner.names).specs();
            let mut specs: Vec<PeerSpec> = self
                .known_peers()
                .into_iter()
                .filter(|p| !named.iter().any(|n| n.id == Some(p.id)))
                .map(PeerSpec::from)
                .collect();
            specs.extend(named);
            dir.save_peers(specs);
        }
    }

    /// Joins a group: links for it are accepted from now on and delivered by the returned
    /// handle. Dropping the handle leaves the group (its links stay until dropped).
    pub fn join(&self, access: GroupAccess) -> Result<GroupLinks, NetworkError> {
        let group = access.group;
        let (tx, rx) = mpsc::channel(GROUP_LINK_QUEUE);
        let cancel = self.inner.shutdown.child_token();
        let mut groups = guard(&self.inner.groups);
        if groups.contains_key(&group) {
            return Err(NetworkError::GroupAlreadyJoined { group });
        }
        let absent = Arc::new(Mutex::new(BTreeSet::new()));
        let ticket = watch::channel(access.ticket.clone()).0;
        groups.insert(
            group,
            GroupEntry {
                access: Arc::new(access),
                links: tx,
                absent: absent.clone(),
                ticket,
            },
        );
        drop(groups);
        let learn = names::learn_ids(self.inner.clone(), group);
        let stop = cancel.clone();
        self.inner.tasks.spawn(async move {
            stop.run_until_cancelled(learn).await;
        });
        Ok(GroupLinks {
            inner: self.inner.clone(),
            group,
            incoming: rx,
            cancel,
            absent,
        })
    }

    /// Replaces the ticket this node presents to `group`'s peers, without reconnecting: it
    /// is sent at once on every live link of the group (each peer validates it and keeps
    /// the bond, or ends it with [`CloseReason::TicketRevoked`]) and presented by every
    /// new link.
    ///
    /// [`CloseReason::TicketRevoked`]: super::CloseReason::TicketRevoked
    pub fn renew_ticket(&self, group: GroupId, ticket: Vec<u8>) -> Result<(), NetworkError> {
        let groups = guard(&self.inner.groups);
        let entry = groups
            .get(&group)
            .ok_or(NetworkError::GroupNotJoined { group })?;
        entry.ticket.send_replace(ticket);
        tracing::info!(group = %Short(&group), "ticket renewed: sending it on the group's live links");
        Ok(())
    }

    /// Asks `group`'s validator again about the ticket of every live link of the group,
    /// for when the application's rules changed (a ticket revoked), and closes each link
    /// whose ticket no longer passes ([`CloseReason::TicketRevoked`], logged on both
    /// sides). One validator call per live link, on the caller's thread, under no lock of
    /// the network's. Returns once every link is checked; refused links close on their
    /// tasks right after.
    ///
    /// [`CloseReason::TicketRevoked`]: super::CloseReason::TicketRevoked
    pub fn revalidate_tickets(&self, group: GroupId) -> Result<Revalidation, NetworkError> {
        let checks = guard(&self.inner.groups)
            .get(&group)
            .map(|g| g.access.validator.is_some())
            .ok_or(NetworkError::GroupNotJoined { group })?;
        if !checks {
            return Ok(Revalidation::default());
        }
        Ok(self.inner.links.revalidate(group))
    }

    /// QUIC connections open now: one per peer this node has links with (two for a moment
    /// when both sides connected at once), however many groups they share.
    pub fn open_connections(&self) -> usize {
        self.inner.conns.open()
    }

    /// Links up now, over all groups and peers.
    pub fn live_links(&self) -> usize {
        self.inner.links.count()
    }

    /// Heartbeat frames this node sent since it started, on all connections: at most about
    /// two per heartbeat interval and connection, however many links are idle on them.
    pub fn heartbeats_sent(&self) -> u64 {
        self.inner.heartbeats_sent.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every link (reason: shutdown) and the endpoint, and waits
    /// for the node's tasks to end. The UDP socket and the network's handle on its data
    /// directory (so the directory's lock, unless other handles hold it) are released once
    /// the last handle (`Network` clones, [`GroupLinks`]) is dropped too.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.endpoint.close().await;
    }
}
