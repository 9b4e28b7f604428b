//! `Network`: one iroh endpoint per node, the accept loop, bonds and the peer table.
//!
//! # Offline by default
//! The endpoint is built from iroh's `Minimal` preset: no relays, no address lookup (no DNS,
//! no pkarr), IP transports cleared and replaced by the one configured bind address (default
//! `127.0.0.1:0`). Nothing is tried on the internet and nothing waits for a relay. Peers are
//! reached only at addresses given (`PEER_ID@IP:PORT`) or learned from bonded peers.
//!
//! # Links
//! One QUIC connection per link, one link per (peer, group). A link starts with the
//! [`handshake`](super::handshake) on the connection's first bidirectional stream and then
//! runs as described in [`link`](super::link). Incoming connections are handled each on its
//! own task, bounded by the handshake timeout, so a slow or hostile peer holds nothing else
//! up; every refusal closes that connection with a code and a reason and logs them.
//!
//! If two links for the same peer and group come up (both sides dialed at once), the one
//! dialed by the smaller peer id wins on both sides and the other is closed as duplicate.
//! A link from another *incarnation* of the peer (a random number each process draws at
//! start and tells in the handshake) always wins: the peer restarted, so the old link
//! goes to a dead process and is closed at once ([`CloseReason::Replaced`]) instead of
//! holding the place until its heartbeats run out.
//!
//! # Bonds
//! [`GroupLinks::maintain`] keeps a link to a peer up: it dials (address from the peer
//! table), waits while a link exists, and redials with bounded exponential back-off after a
//! failure or a close. Links it makes, and every link accepted for the group, come out of
//! [`GroupLinks::next_link`].
//!
//! # Tickets
//! Each link keeps the ticket its peer presented and asks the group's validator again every
//! [`LinkConfig::ticket_recheck_interval`] and on [`Network::revalidate_tickets`]; a node
//! renews its own with [`Network::renew_ticket`], sent on its live links of the group. A
//! link whose ticket no longer passes closes with [`CloseReason::TicketRevoked`]; see
//! [`ticket`](super::ticket).
//!
//! # Peer exchange
//! Each side of a new link tells the other the addresses it knows (and again every
//! [`PEER_EXCHANGE_TICKS`](super::link::PEER_EXCHANGE_TICKS) heartbeats); an address a peer
//! states for itself in its hello replaces a second-hand one. So a node given one live peer
//! learns the rest.

use super::backoff::Backoff;
use super::close::{
    CloseReason, CODE_DUPLICATE, CODE_PROTOCOL, CODE_REFUSED, CODE_TICKET, CODE_UNKNOWN_GROUP,
};
use super::frame::DEFAULT_MAX_FRAME_LEN;
use super::handshake::Remote;
use super::handshake::{self, HandshakeError, LinkKey, Side, BINDING_LABEL};
use super::identity::{self, IdentityError, InvalidPeerId};
use super::link::{new_link, run_link, Link, LinkConfig, LinkControl, LinkTickets, PeerExchange};
use super::network_id::NetworkId;
use super::peer_addr::PeerAddr;
use super::peers::{PeerTable, Source};
use super::peers_file;
use super::ticket::{PeerTicket, Revalidation, TicketValidator};
use crate::primitives::{GroupId, PeerId, Short};
use iroh::endpoint::{
    presets, Connection, ConnectionError, QuicTransportConfig, RecvStream, SendStream, VarInt,
};
use iroh::{Endpoint, SecretKey};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The ALPN of tessera links.
pub const ALPN: &[u8] = b"tessera/1";

/// Capacity of a group's channel of new links; when full, a new link is closed (and a
/// maintained bond retries later), since a group that does not take links is stuck anyway.
pub const GROUP_LINK_QUEUE: usize = 64;

/// Building or running the network failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The node's identity could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
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
    /// The peer refused this node (its reason, sent in the close frame).
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

/// Where the node's secret key comes from.
#[derive(Debug)]
enum KeySource {
    DataDir(PathBuf),
    Ephemeral,
    Given(SecretKey),
}

/// Builds a [`Network`]. Every setting has a default suited to a private network.
#[derive(Debug)]
pub struct NetworkBuilder {
    network: NetworkId,
    key: KeySource,
    bind: SocketAddr,
    advertise: Option<SocketAddr>,
    bootstrap: Vec<PeerAddr>,
    max_frame_len: u32,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    backoff: (Duration, Duration),
    max_learned_peers: usize,
}

impl NetworkBuilder {
    fn new(network: NetworkId) -> Self {
        Self {
            network,
            key: KeySource::Ephemeral,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            bootstrap: Vec::new(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            backoff: (Duration::from_millis(100), Duration::from_secs(10)),
            max_learned_peers: 4096,
        }
    }

    /// Keep the secret key in `dir/node.key` (created on first start), so the peer id
    /// survives restarts. Without it (or [`secret_key`](Self::secret_key)) the key is
    /// ephemeral.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.key = KeySource::DataDir(dir.into());
        self
    }

    /// Use a fresh key that is never stored (tests, throwaway clients). The default.
    pub fn ephemeral(mut self) -> Self {
        self.key = KeySource::Ephemeral;
        self
    }

    /// Use this secret key.
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.key = KeySource::Given(key);
        self
    }

    /// The UDP address to bind (default `127.0.0.1:0`, port 0 picks a free port).
    pub fn bind_addr(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The address to tell peers, when the bound one is not reachable as is (bound to
    /// `0.0.0.0`, behind a port mapping). Default: the bound address.
    pub fn advertise_addr(mut self, addr: SocketAddr) -> Self {
        self.advertise = Some(addr);
        self
    }

    /// Peers to know from the start (pinned in the peer table).
    pub fn bootstrap(mut self, peers: impl IntoIterator<Item = PeerAddr>) -> Self {
        self.bootstrap.extend(peers);
        self
    }

    /// Cap on one frame's payload, for reading and writing (default 16 MiB).
    pub fn max_frame_len(mut self, max: u32) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Bound on establishing a QUIC connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bound on the handshake after the connection is up (default 5 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// QUIC idle timeout: a connection with no packets for this long is dead (default
    /// 10 s; iroh keeps connections alive at a third of it).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Reconnection back-off of maintained bonds: first delay and cap (default 100 ms,
    /// 10 s).
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max);
        self
    }

    /// Cap on peers learned from exchange (default 4096); bootstrap peers do not count.
    pub fn max_learned_peers(mut self, max: usize) -> Self {
        self.max_learned_peers = max;
        self
    }

    /// Loads the identity, binds the endpoint and starts the accept loop.
    pub async fn bind(self) -> Result<Network, NetworkError> {
        if self.max_frame_len < 1024 {
            return Err(NetworkError::InvalidConfig {
                setting: "max_frame_len",
                reason: format!("{} bytes is below the minimum of 1024", self.max_frame_len),
            });
        }
        let (key, data_dir) = match self.key {
            KeySource::DataDir(dir) => (identity::load_or_create(&dir)?, Some(dir)),
            KeySource::Ephemeral => (SecretKey::generate(), None),
            KeySource::Given(key) => (key, None),
        };
        let idle = self
            .idle_timeout
            .try_into()
            .map_err(|err| NetworkError::InvalidConfig {
                setting: "idle_timeout",
                reason: format!("{:?}: {err}", self.idle_timeout),
            })?;
        let transport = QuicTransportConfig::builder()
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(self.idle_timeout / 3)
            .build();
        let endpoint = Endpoint::builder(presets::Minimal)
            .secret_key(key)
            .clear_ip_transports()
            .bind_addr(self.bind)
            .map_err(|err| NetworkError::InvalidConfig {
                setting: "bind_addr",
                reason: err.to_string(),
            })?
            .alpns(vec![ALPN.to_vec()])
            .transport_config(transport)
            .bind()
            .await
            .map_err(|source| NetworkError::Bind {
                addr: self.bind,
                source,
            })?;
        let me = identity::peer_id(&endpoint.id());
        let bound = endpoint
            .bound_sockets()
            .into_iter()
            .find(|a| a.is_ipv4() == self.bind.is_ipv4())
            .unwrap_or(self.bind);
        let local = PeerAddr::new(me, self.advertise.unwrap_or(bound));
        let mut peers = PeerTable::new(me, self.max_learned_peers);
        for peer in self.bootstrap {
            peers.insert(peer, Source::Bootstrap);
        }
        let saved = match &data_dir {
            Some(dir) => peers_file::load(dir),
            None => Vec::new(),
        };
        for peer in &saved {
            peers.insert(*peer, Source::Exchange);
        }
        let inner = Arc::new(Inner {
            endpoint,
            network: self.network,
            local,
            incarnation: getrandom::u64().map_err(NetworkError::Random)?,
            max_frame: self.max_frame_len,
            connect_timeout: self.connect_timeout,
            handshake_timeout: self.handshake_timeout,
            backoff: self.backoff,
            peers: Mutex::new(peers),
            data_dir,
            store: Mutex::new(None),
            saved_peers: Mutex::new(saved),
            groups: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            next_link_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner.tasks.spawn(accept_loop(inner.clone()));
        tracing::info!(peer = %local, network = %Short(&self.network), "network up");
        Ok(Network { inner })
    }
}

/// What a group needs to bond: its id, key, ticket and link settings.
#[derive(Clone)]
pub struct GroupAccess {
    group: GroupId,
    key: LinkKey,
    ticket: Vec<u8>,
    validator: Option<Arc<dyn TicketValidator>>,
    link: LinkConfig,
}

impl GroupAccess {
    /// Access to `group` with the link key derived from its group key.
    pub fn new(group: GroupId, key: LinkKey) -> Self {
        Self {
            group,
            key,
            ticket: Vec::new(),
            validator: None,
            link: LinkConfig::default(),
        }
    }

    /// The ticket this node presents to peers of the group, until renewed with
    /// [`Network::renew_ticket`].
    pub fn with_ticket(mut self, ticket: Vec<u8>) -> Self {
        self.ticket = ticket;
        self
    }

    /// Require peers' tickets to pass `validator`.
    pub fn require_ticket(mut self, validator: impl TicketValidator) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// Heartbeats and channel capacities of the group's links.
    pub fn with_link_config(mut self, config: LinkConfig) -> Self {
        self.link = config;
        self
    }
}

impl std::fmt::Debug for GroupAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAccess")
            .field("group", &self.group)
            .field("ticket_len", &self.ticket.len())
            .field("requires_ticket", &self.validator.is_some())
            .field("link", &self.link)
            .finish()
    }
}

struct GroupEntry {
    access: Arc<GroupAccess>,
    links: mpsc::Sender<Link>,
    /// Peers whose last answer to a dial was "I do not host this group".
    absent: Arc<Mutex<BTreeSet<PeerId>>>,
    /// The ticket this node presents to the group now (the access's until renewed); each
    /// link subscribes before its handshake and sends every renewal to its peer.
    ticket: watch::Sender<Vec<u8>>,
}

struct Registered {
    id: u64,
    dialer: PeerId,
    /// The peer's process incarnation on this link.
    incarnation: u64,
    control: Arc<LinkControl>,
    /// The ticket the peer presents on this link, for revalidation.
    ticket: Arc<PeerTicket>,
}

struct Inner {
    endpoint: Endpoint,
    network: NetworkId,
    local: PeerAddr,
    /// This process's incarnation, told to peers in every handshake.
    incarnation: u64,
    max_frame: u32,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    backoff: (Duration, Duration),
    peers: Mutex<PeerTable>,
    /// Where the key, the peers file and the RocksDB store live (durable nodes).
    data_dir: Option<PathBuf>,
    /// The node's one RocksDB store, opened by the first durable group.
    store: Mutex<Option<tessera_storage::Store>>,
    /// What the peers file held last, so unchanged tables are not rewritten.
    saved_peers: Mutex<Vec<PeerAddr>>,
    groups: Mutex<HashMap<GroupId, GroupEntry>>,
    links: Mutex<HashMap<(GroupId, PeerId), Registered>>,
    next_link_id: AtomicU64,
    shutdown: CancellationToken,
    /// Every task of this node, so shutdown can wait for them.
    tasks: TaskTracker,
}

/// Locks a mutex; a poisoned one (a panic elsewhere while holding it) is still usable:
/// every critical section here leaves the data consistent at each step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PeerExchange for Inner {
    fn known(&self, _peer: PeerId) -> Vec<PeerAddr> {
        lock(&self.peers).all()
    }

    fn learned(&self, from: PeerId, peers: Vec<PeerAddr>) {
        let mut table = lock(&self.peers);
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
        lock(&self.inner.peers).all()
    }

    /// Adds a peer address (as if given at bootstrap).
    pub fn add_peer(&self, peer: PeerAddr) {
        lock(&self.inner.peers).insert(peer, Source::Bootstrap);
    }

    /// The data directory, for a node opened with one.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.inner.data_dir.as_deref()
    }

    /// The node's RocksDB store in its data directory (opened on first use and shared by
    /// every group of this node); `None` for a node without a data directory.
    pub fn store(&self) -> Result<Option<tessera_storage::Store>, tessera_storage::Error> {
        let Some(dir) = &self.inner.data_dir else {
            return Ok(None);
        };
        let mut slot = lock(&self.inner.store);
        if let Some(store) = &*slot {
            return Ok(Some(store.clone()));
        }
        let store = tessera_storage::Store::open(dir)?;
        *slot = Some(store.clone());
        Ok(Some(store))
    }

    /// Writes the known peers to the data directory's peers file when they changed, so a
    /// restarted node finds its group without `--peer`. Does nothing without a data
    /// directory; a failed write is logged and retried on the next call.
    pub fn save_peers(&self) {
        let Some(dir) = &self.inner.data_dir else {
            return;
        };
        let mut now = self.known_peers();
        now.sort_by_key(|p| p.id);
        let mut saved = lock(&self.inner.saved_peers);
        if *saved == now {
            return;
        }
        match peers_file::save(dir, &now) {
            Ok(()) => *saved = now,
            Err(err) => tracing::warn!(dir = %dir.display(), %err, "cannot save the peers file"),
        }
    }

    /// Joins a group: links for it are accepted from now on and delivered by the returned
    /// handle. Dropping the handle leaves the group (its links stay until dropped).
    pub fn join(&self, access: GroupAccess) -> Result<GroupLinks, NetworkError> {
        let group = access.group;
        let (tx, rx) = mpsc::channel(GROUP_LINK_QUEUE);
        let cancel = self.inner.shutdown.child_token();
        let mut groups = lock(&self.inner.groups);
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
    pub fn renew_ticket(&self, group: GroupId, ticket: Vec<u8>) -> Result<(), NetworkError> {
        let groups = lock(&self.inner.groups);
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
    pub fn revalidate_tickets(&self, group: GroupId) -> Result<Revalidation, NetworkError> {
        let checks = lock(&self.inner.groups)
            .get(&group)
            .map(|g| g.access.validator.is_some())
            .ok_or(NetworkError::GroupNotJoined { group })?;
        let mut report = Revalidation::default();
        if !checks {
            return Ok(report);
        }
        let live: Vec<(PeerId, Arc<PeerTicket>, Arc<LinkControl>)> = lock(&self.inner.links)
            .iter()
            .filter(|((g, _), r)| *g == group && r.control.reason().is_none())
            .map(|((_, peer), r)| (*peer, r.ticket.clone(), r.control.clone()))
            .collect();
        for (peer, ticket, control) in live {
            report.checked += 1;
            if let Err(err) = ticket.check() {
                control.request_close(CloseReason::TicketRevoked {
                    reason: err.reason.clone(),
                });
                report.refused.push((peer, err));
            }
        }
        Ok(report)
    }

    /// Stops accepting, closes every link (reason: shutdown) and the endpoint, and waits
    /// for the node's tasks to end. The UDP socket is released once the last handle
    /// (`Network` clones, [`GroupLinks`]) is dropped too.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.endpoint.close().await;
    }
}

/// A joined group's side of the network: dial peers, keep bonds, receive new links.
pub struct GroupLinks {
    inner: Arc<Inner>,
    group: GroupId,
    incoming: mpsc::Receiver<Link>,
    cancel: CancellationToken,
    absent: Arc<Mutex<BTreeSet<PeerId>>>,
}

impl std::fmt::Debug for GroupLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLinks")
            .field("group", &self.group)
            .field("local", &self.inner.local)
            .finish()
    }
}

impl GroupLinks {
    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Maintained peers whose last answer to a dial was that they do not host this group
    /// (they cannot hold it now; a fresh group may form without them).
    pub fn absent(&self) -> BTreeSet<PeerId> {
        lock(&self.absent).clone()
    }

    /// Dials `peer` at its known address and runs the handshake; the link is returned
    /// here (not through [`next_link`](Self::next_link)).
    pub async fn connect(&self, peer: PeerId) -> Result<Link, BondError> {
        let addr = lock(&self.inner.peers)
            .get(&peer)
            .ok_or(BondError::UnknownPeer { peer })?;
        self.connect_addr(addr).await
    }

    /// Dials `addr` and runs the handshake; on success the address is remembered.
    pub async fn connect_addr(&self, addr: PeerAddr) -> Result<Link, BondError> {
        let access = self.access()?;
        dial(&self.inner, &access, addr).await
    }

    /// Keeps a link to `peer` up until the group is left: dials now, and redials with
    /// back-off after a failure or a close. The links come out of
    /// [`next_link`](Self::next_link).
    pub fn maintain(&self, peer: PeerId) {
        let inner = self.inner.clone();
        let group = self.group;
        let cancel = self.cancel.clone();
        self.inner.tasks.spawn(async move {
            cancel
                .run_until_cancelled(maintain(inner, group, peer))
                .await;
        });
    }

    /// The next link of this group (accepted, or made by a maintained bond); `None` after
    /// the network shut down.
    pub async fn next_link(&mut self) -> Option<Link> {
        tokio::select! {
            link = self.incoming.recv() => link,
            _ = self.cancel.cancelled() => None,
        }
    }

    fn access(&self) -> Result<Arc<GroupAccess>, BondError> {
        lock(&self.inner.groups)
            .get(&self.group)
            .map(|g| g.access.clone())
            .ok_or(BondError::Shutdown)
    }
}

impl Drop for GroupLinks {
    fn drop(&mut self) {
        self.cancel.cancel();
        lock(&self.inner.groups).remove(&self.group);
    }
}

async fn maintain(inner: Arc<Inner>, group: GroupId, peer: PeerId) {
    let mut backoff = Backoff::new(inner.backoff.0, inner.backoff.1);
    loop {
        let existing = lock(&inner.links)
            .get(&(group, peer))
            .map(|r| r.control.clone());
        if let Some(control) = existing {
            control.closed().await;
            tokio::time::sleep(backoff.next_jittered()).await;
            continue;
        }
        let Some(access) = lock(&inner.groups).get(&group).map(|g| g.access.clone()) else {
            return;
        };
        let addr = lock(&inner.peers).get(&peer);
        let result = match addr {
            Some(addr) => dial(&inner, &access, addr).await,
            None => Err(BondError::UnknownPeer { peer }),
        };
        let absent = matches!(
            result,
            Err(BondError::Refused { code, .. }) if code == u64::from(CODE_UNKNOWN_GROUP)
        );
        if let Some(entry) = lock(&inner.groups).get(&group) {
            let mut set = lock(&entry.absent);
            if absent {
                set.insert(peer);
            } else if result.is_ok() {
                set.remove(&peer);
            }
        }
        match result {
            Ok(link) => {
                backoff.reset();
                let control = link_control(&inner, group, peer);
                let tx = lock(&inner.groups).get(&group).map(|g| g.links.clone());
                let Some(tx) = tx else { return };
                if tx.send(link).await.is_err() {
                    return;
                }
                if let Some(control) = control {
                    control.closed().await;
                }
                tokio::time::sleep(backoff.next_jittered()).await;
            }
            Err(err) => {
                let delay = backoff.next_jittered();
                tracing::debug!(peer = %Short(&peer), group = %Short(&group), error = %err, retry_in = ?delay, "bond attempt failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn link_control(inner: &Inner, group: GroupId, peer: PeerId) -> Option<Arc<LinkControl>> {
    lock(&inner.links)
        .get(&(group, peer))
        .map(|r| r.control.clone())
}

/// Keying material of this connection's TLS session, the same on both sides.
fn binding(conn: &Connection, group: GroupId) -> Result<[u8; 32], HandshakeError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, BINDING_LABEL, group.as_bytes())
        .map_err(|err| HandshakeError::Binding(format!("{err:?}")))?;
    Ok(out)
}

/// The ticket this node presents to `group` now, and a subscription that sees every later
/// renewal; `None` once the group is left.
fn our_ticket(inner: &Inner, group: GroupId) -> Option<(Vec<u8>, watch::Receiver<Vec<u8>>)> {
    let groups = lock(&inner.groups);
    let ours = groups.get(&group)?.ticket.subscribe();
    let now = ours.borrow().clone();
    Some((now, ours))
}

fn side<'a>(
    inner: &Inner,
    access: &'a GroupAccess,
    ticket: &'a [u8],
    peer: PeerId,
    binding: [u8; 32],
) -> Side<'a> {
    Side {
        network: inner.network,
        group: access.group,
        key: &access.key,
        me: inner.local.id,
        peer,
        binding,
        ticket,
        validator: access.validator.as_deref(),
        listen: Some(inner.local.addr),
        incarnation: inner.incarnation,
        max_frame: inner.max_frame,
    }
}

/// The close code a handshake failure is reported with.
fn refusal_code(err: &HandshakeError) -> u32 {
    match err {
        HandshakeError::Frame(_)
        | HandshakeError::StreamEnded { .. }
        | HandshakeError::Unexpected { .. } => CODE_PROTOCOL,
        HandshakeError::UnknownGroup { .. } => CODE_UNKNOWN_GROUP,
        _ => CODE_REFUSED,
    }
}

fn close(conn: &Connection, code: u32, reason: &str) {
    // Keep the reason inside one packet; it is for logs only.
    let reason = reason.get(..reason.len().min(400)).unwrap_or("refused");
    conn.close(VarInt::from_u32(code), reason.as_bytes());
}

async fn dial(inner: &Arc<Inner>, access: &GroupAccess, addr: PeerAddr) -> Result<Link, BondError> {
    let peer = addr.id;
    if peer == inner.local.id {
        return Err(BondError::SelfBond);
    }
    // A live link that a new one would not replace (see `start_link`): do not even dial.
    let taken = lock(&inner.links)
        .get(&(access.group, peer))
        .is_some_and(|r| r.control.reason().is_none() && r.dialer <= inner.local.id);
    if taken {
        return Err(BondError::Duplicate {
            peer,
            group: access.group,
        });
    }
    let (ticket, ours) = our_ticket(inner, access.group).ok_or(BondError::Shutdown)?;
    let target = addr.to_endpoint_addr()?;
    let conn = tokio::select! {
        result = tokio::time::timeout(inner.connect_timeout, inner.endpoint.connect(target, ALPN)) => match result {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => return Err(BondError::Connect { peer: addr, source: Box::new(source) }),
            Err(_) => return Err(BondError::Timeout { peer, what: "connect", after: inner.connect_timeout }),
        },
        _ = inner.shutdown.cancelled() => return Err(BondError::Shutdown),
    };
    let handshake = async {
        let (mut send, mut recv) =
            conn.open_bi()
                .await
                .map_err(|source| BondError::Connection {
                    peer,
                    source: Box::new(source),
                })?;
        let binding =
            binding(&conn, access.group).map_err(|source| BondError::Handshake { peer, source })?;
        let side = side(inner, access, &ticket, peer, binding);
        match handshake::dial(&mut send, &mut recv, &side).await {
            Ok(remote) => Ok::<_, BondError>((send, recv, remote)),
            Err(err) => Err(refused_or(&conn, peer, err)),
        }
    };
    let (send, recv, remote) = match tokio::time::timeout(inner.handshake_timeout, handshake).await
    {
        Ok(Ok(parts)) => parts,
        Ok(Err(err)) => {
            if !matches!(err, BondError::Refused { .. }) {
                tracing::warn!(peer = %Short(&peer), group = %Short(&access.group), reason = %err, "bond refused");
            }
            return Err(err);
        }
        Err(_) => {
            close(&conn, CODE_REFUSED, "handshake timed out");
            return Err(BondError::Timeout {
                peer,
                what: "handshake",
                after: inner.handshake_timeout,
            });
        }
    };
    {
        let mut table = lock(&inner.peers);
        table.insert(addr, Source::Direct);
        if let Some(listen) = remote.listen {
            table.insert(PeerAddr::new(peer, listen), Source::Direct);
        }
    }
    start_link(
        inner,
        conn,
        send,
        recv,
        access,
        peer,
        inner.local.id,
        remote,
        ours,
    )
    .ok_or(BondError::Duplicate {
        peer,
        group: access.group,
    })
}

/// The error for a failed dialer handshake: the peer's refusal if it closed the
/// connection with a reason, else our own complaint (sent to the peer as we close).
fn refused_or(conn: &Connection, peer: PeerId, err: HandshakeError) -> BondError {
    if let Some(ConnectionError::ApplicationClosed(close)) = conn.close_reason() {
        return BondError::Refused {
            peer,
            code: close.error_code.into_inner(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        };
    }
    close(conn, refusal_code(&err), &err.to_string());
    BondError::Handshake { peer, source: err }
}

async fn accept_loop(inner: Arc<Inner>) {
    loop {
        let incoming = tokio::select! {
            incoming = inner.endpoint.accept() => incoming,
            _ = inner.shutdown.cancelled() => return,
        };
        let Some(incoming) = incoming else { return };
        let inner = inner.clone();
        let tasks = inner.tasks.clone();
        tasks.spawn(async move {
            let bound = inner.handshake_timeout;
            let work = async {
                let conn = match incoming.accept() {
                    Ok(accepting) => match accepting.await {
                        Ok(conn) => conn,
                        Err(err) => {
                            tracing::debug!(error = %err, "incoming connection failed");
                            return;
                        }
                    },
                    Err(err) => {
                        tracing::debug!(error = %err, "incoming connection refused by QUIC");
                        return;
                    }
                };
                accept_link(&inner, conn).await;
            };
            tokio::select! {
                r = tokio::time::timeout(bound, work) => if r.is_err() {
                    tracing::warn!(after = ?bound, "refused incoming link: handshake timed out");
                },
                _ = inner.shutdown.cancelled() => {}
            }
        });
    }
}

async fn accept_link(inner: &Arc<Inner>, conn: Connection) {
    let peer = identity::peer_id(&conn.remote_id());
    let result = async {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|err| {
            HandshakeError::Frame(super::frame::FrameError::Io {
                action: "accept stream",
                source: std::io::Error::other(err),
            })
        })?;
        let hello = handshake::read_hello(&mut recv, inner.max_frame).await?;
        if hello.network != inner.network {
            return Err(HandshakeError::WrongNetwork {
                ours: inner.network,
                theirs: hello.network,
            });
        }
        let access = lock(&inner.groups)
            .get(&hello.group)
            .map(|g| g.access.clone())
            .ok_or(HandshakeError::UnknownGroup { group: hello.group })?;
        let (ticket, ours) = our_ticket(inner, access.group)
            .ok_or(HandshakeError::UnknownGroup { group: hello.group })?;
        let binding = binding(&conn, access.group)?;
        let side = side(inner, &access, &ticket, peer, binding);
        let remote = handshake::accept(&mut send, &mut recv, hello, &side).await?;
        Ok::<_, HandshakeError>((send, recv, access, remote, ours))
    }
    .await;
    let (send, recv, access, remote, ours) = match result {
        Ok(parts) => parts,
        Err(err) => {
            tracing::warn!(peer = %Short(&peer), reason = %err, "refused incoming link");
            close(&conn, refusal_code(&err), &err.to_string());
            return;
        }
    };
    if let Some(listen) = remote.listen {
        lock(&inner.peers).insert(PeerAddr::new(peer, listen), Source::Direct);
    }
    let group = access.group;
    let Some(link) = start_link(inner, conn, send, recv, &access, peer, peer, remote, ours) else {
        return;
    };
    let tx = lock(&inner.groups).get(&group).map(|g| g.links.clone());
    let delivered = match tx {
        Some(tx) => tx.try_send(link).map_err(|err| match err {
            mpsc::error::TrySendError::Full(link) => ("group link queue full", link),
            mpsc::error::TrySendError::Closed(link) => ("group left", link),
        }),
        None => Ok(()),
    };
    if let Err((why, link)) = delivered {
        tracing::warn!(peer = %Short(&peer), group = %Short(&group), why, "dropping accepted link");
        drop(link);
    }
}

/// Registers a link for (group, peer) and spawns its task; `None` if an existing link wins
/// (the new connection is then closed as duplicate). A live link to another incarnation
/// of the peer never wins: it goes to a process that has since restarted. `ours` is the
/// subscription to this node's ticket whose current value the handshake sent.
#[allow(clippy::too_many_arguments)]
fn start_link(
    inner: &Arc<Inner>,
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    access: &GroupAccess,
    peer: PeerId,
    dialer: PeerId,
    remote: Remote,
    ours: watch::Receiver<Vec<u8>>,
) -> Option<Link> {
    let group = access.group;
    let ticket = PeerTicket::new(peer, access.validator.clone(), remote.ticket);
    let tickets = LinkTickets {
        peer: ticket.clone(),
        ours,
    };
    let (link, parts) = new_link(peer, group, dialer, &access.link, tickets);
    let id = inner.next_link_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut links = lock(&inner.links);
        if let Some(existing) = links.get(&(group, peer)) {
            let live = existing.control.reason().is_none();
            let restarted = existing.incarnation != remote.incarnation;
            if live && restarted {
                tracing::info!(peer = %Short(&peer), group = %Short(&group), "peer restarted: replacing its old link");
                existing.control.request_close(CloseReason::Replaced);
            } else if live && dialer >= existing.dialer {
                drop(links);
                tracing::debug!(peer = %Short(&peer), group = %Short(&group), "closing duplicate link");
                close(
                    &conn,
                    CODE_DUPLICATE,
                    "duplicate link for this peer and group",
                );
                return None;
            } else if live {
                existing.control.request_close(CloseReason::Duplicate);
            }
        }
        links.insert(
            (group, peer),
            Registered {
                id,
                dialer,
                incarnation: remote.incarnation,
                control: parts.control.clone(),
                ticket,
            },
        );
    }
    let config = access.link.clone();
    let task_inner = inner.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        let control = parts.control.clone();
        let exchange: Arc<dyn PeerExchange> = inner.clone();
        // The streams outlive the link's loops until the connection is closed below, so
        // the peer sees our close code and reason, not a bare end of stream first.
        let (mut send, mut recv) = (send, recv);
        let mut reason = tokio::select! {
            reason = run_link(&mut send, &mut recv, peer, &config, inner.max_frame, parts, exchange) => reason,
            err = conn.closed() => CloseReason::Transport(err.to_string()),
            _ = inner.shutdown.cancelled() => CloseReason::Shutdown,
        };
        if let Some(ConnectionError::ApplicationClosed(close)) = conn.close_reason() {
            if matches!(reason, CloseReason::Transport(_)) {
                reason = CloseReason::ByPeer {
                    code: close.error_code.into_inner(),
                    reason: String::from_utf8_lossy(&close.reason).into_owned(),
                };
            }
        }
        match &reason {
            CloseReason::Protocol(_)
            | CloseReason::HeartbeatTimeout { .. }
            | CloseReason::TicketRevoked { .. } => {
                tracing::warn!(peer = %Short(&peer), group = %Short(&group), %reason, "link closed")
            }
            CloseReason::ByPeer { code, .. } if *code == u64::from(CODE_TICKET) => {
                tracing::warn!(peer = %Short(&peer), group = %Short(&group), %reason, "link closed")
            }
            _ => tracing::debug!(peer = %Short(&peer), group = %Short(&group), %reason, "link closed"),
        }
        close(&conn, reason.code(), &reason.to_string());
        drop((send, recv));
        control.finish(reason);
        let mut links = lock(&inner.links);
        if links.get(&(group, peer)).is_some_and(|r| r.id == id) {
            links.remove(&(group, peer));
        }
    });
    tracing::debug!(peer = %Short(&peer), group = %Short(&group), dialer = %Short(&dialer), "link up");
    Some(link)
}
