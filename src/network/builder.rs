//! [`NetworkBuilder`]: the settings of a node's network, and [`bind`](NetworkBuilder::bind),
//! which brings the endpoint up and starts the accept loop.
//!
//! # Offline by default
//! The endpoint is built from iroh's `Minimal` preset: no relays, no address lookup (no DNS,
//! no pkarr), IP transports cleared and replaced by the one configured bind address (default
//! `127.0.0.1:0`). Nothing is tried on the internet and nothing waits for a relay. Peers are
//! reached only at addresses given (`[PEER_ID@]HOST:PORT`, names looked up with the
//! system resolver) or learned from bonded peers.
//!
//! # The id probe
//! Beside the QUIC (UDP) socket, the node answers "who are you" probes on TCP at the same
//! IP and port number (`whoami.rs`), so a peer given as `HOST:PORT` without an id can be
//! dialed. When that TCP port cannot be bound the node still runs (a warning says so):
//! only id-less `--peer`s naming this node fail, each saying why on its own side.
//!
//! # Identity
//! A node built from a [`DataDir`] takes its key (so its peer id survives restarts) and the
//! peers its peers file lists from there, and keeps the handle: groups find the node's
//! store through it. Without one the key is ephemeral or given, and groups live in memory.

use super::accept::accept_loop;
use super::connection::Heartbeat;
use super::conns::ConnTable;
use super::error::NetworkError;
use super::frame::DEFAULT_MAX_FRAME_LEN;
use super::identity;
use super::names::{NameBook, RESOLVE_TIMEOUT};
use super::network::{Inner, Network, ALPN};
use super::network_id::NetworkId;
use super::peer_addr::PeerAddr;
use super::peer_spec::{HostPort, PeerSpec};
use super::peers::{PeerTable, Source};
use super::refusals::RefusalLog;
use super::registry::LinkRegistry;
use super::whoami;
use crate::data_dir::DataDir;
use crate::primitives::Short;
use iroh::endpoint::{presets, QuicTransportConfig};
use iroh::{Endpoint, SecretKey};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The default of [`NetworkBuilder::group_mismatch_hint`].
pub const DEFAULT_MISMATCH_HINT: &str = "Every member must use the same group key and the same \
consensus and state machine settings: together they make the group id, and a node whose id \
differs is refused.";

/// How long a start waits for an advertised host name to resolve (a container's own DNS
/// record may appear a little after it starts).
const ADVERTISE_WAIT: Duration = Duration::from_secs(15);

/// The address `host` resolves to (of `bound`'s family first), retried for up to
/// [`ADVERTISE_WAIT`].
async fn advertised(host: &HostPort, bound: SocketAddr) -> Result<SocketAddr, NetworkError> {
    let started = std::time::Instant::now();
    loop {
        match host.resolve(bound.is_ipv4(), RESOLVE_TIMEOUT).await {
            Ok(addrs) => {
                if host.is_name() {
                    tracing::info!(advertise = %host, resolved = %addrs[0], "advertising the address the name resolves to");
                }
                return Ok(addrs[0]);
            }
            Err(err) if started.elapsed() >= ADVERTISE_WAIT => {
                return Err(NetworkError::InvalidConfig {
                    setting: "advertise",
                    reason: format!("{err} (tried for {ADVERTISE_WAIT:?})"),
                })
            }
            Err(err) => {
                tracing::warn!(%err, "the advertised name does not resolve yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Where the node's secret key comes from.
#[derive(Debug)]
enum KeySource {
    DataDir(DataDir),
    Ephemeral,
    /// Boxed: a secret key is large beside a `DataDir` handle.
    Given(Box<SecretKey>),
}

/// Builds a [`Network`]. Every setting has a default suited to a private network.
#[derive(Debug)]
pub struct NetworkBuilder {
    network: NetworkId,
    key: KeySource,
    bind: SocketAddr,
    advertise: Option<HostPort>,
    bootstrap: Vec<PeerSpec>,
    mismatch_hint: String,
    max_frame_len: u32,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    backoff: (Duration, Duration),
    max_learned_peers: usize,
    heartbeat_interval: Duration,
    max_missed_heartbeats: u32,
}

/// QUIC streams a peer may have open at once on one connection: one per shared group,
/// so this bounds the groups two nodes can share.
pub const MAX_LINKS_PER_CONNECTION: u32 = 65_536;

impl NetworkBuilder {
    pub(super) fn new(network: NetworkId) -> Self {
        Self {
            network,
            key: KeySource::Ephemeral,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            bootstrap: Vec::new(),
            mismatch_hint: DEFAULT_MISMATCH_HINT.to_string(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            backoff: (Duration::from_millis(100), Duration::from_secs(10)),
            max_learned_peers: 4096,
            heartbeat_interval: Duration::from_millis(500),
            max_missed_heartbeats: 10,
        }
    }

    /// The node's data directory: its key (so the peer id survives restarts), the peers
    /// its peers file lists, and the store the node's durable groups use. The network
    /// keeps this handle until its last clone is dropped. Without it (or
    /// [`secret_key`](Self::secret_key)) the key is ephemeral and groups live in memory.
    pub fn data_dir(mut self, dir: DataDir) -> Self {
        self.key = KeySource::DataDir(dir);
        self
    }

    /// Use a fresh key that is never stored (tests, throwaway clients). The default.
    pub fn ephemeral(mut self) -> Self {
        self.key = KeySource::Ephemeral;
        self
    }

    /// Use this secret key.
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.key = KeySource::Given(Box::new(key));
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
        self.advertise = Some(HostPort::from_socket(addr));
        self
    }

    /// As [`advertise_addr`](Self::advertise_addr), with a host name: looked up when the
    /// network binds (each start, so a node rescheduled under the same name announces its
    /// new address); peers are told the address it resolved to.
    pub fn advertise_host(mut self, host: HostPort) -> Self {
        self.advertise = Some(host);
        self
    }

    /// Peers to know from the start (pinned in the peer table).
    pub fn bootstrap(mut self, peers: impl IntoIterator<Item = PeerAddr>) -> Self {
        self.bootstrap.extend(peers.into_iter().map(PeerSpec::from));
        self
    }

    /// Peers to know from the start, as configured: `ID@IP:PORT` is pinned in the peer
    /// table; a host name is resolved again before every dial; a peer without an id is
    /// asked for it (the id probe) once a group is joined.
    pub fn bootstrap_specs(mut self, peers: impl IntoIterator<Item = PeerSpec>) -> Self {
        self.bootstrap.extend(peers);
        self
    }

    /// What to tell an operator when a peer refuses a link because it does not host the
    /// group (logged on both sides): which settings make the group id. The default names
    /// the group key and the consensus settings; `tessera node` names its flags.
    pub fn group_mismatch_hint(mut self, hint: impl Into<String>) -> Self {
        self.mismatch_hint = hint.into();
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

    /// Connection heartbeat (default 500 ms): a heartbeat goes out on a connection when
    /// nothing else did for half of this, so busy or idle links add nothing. One setting
    /// for every group: connections are shared by all the groups two nodes have.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// A connection that heard nothing for this many heartbeat intervals is closed with
    /// every link on it (default 10).
    pub fn max_missed_heartbeats(mut self, missed: u32) -> Self {
        self.max_missed_heartbeats = missed;
        self
    }

    /// Cap on peers learned from exchange (default 4096); bootstrap peers do not count.
    pub fn max_learned_peers(mut self, max: usize) -> Self {
        self.max_learned_peers = max;
        self
    }

    /// Binds the endpoint and starts the accept loop.
    pub async fn bind(self) -> Result<Network, NetworkError> {
        if self.max_frame_len < 1024 {
            return Err(NetworkError::InvalidConfig {
                setting: "max_frame_len",
                reason: format!("{} bytes is below the minimum of 1024", self.max_frame_len),
            });
        }
        let (key, data_dir) = match self.key {
            KeySource::DataDir(dir) => (dir.secret_key().clone(), Some(dir)),
            KeySource::Ephemeral => (SecretKey::generate(), None),
            KeySource::Given(key) => (*key, None),
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
            .max_concurrent_bidi_streams(MAX_LINKS_PER_CONNECTION.into())
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
        let advertised = match &self.advertise {
            Some(host) => Some(advertised(host, bound).await?),
            None => None,
        };
        let local = PeerAddr::new(me, advertised.unwrap_or(bound));
        let mut peers = PeerTable::new(me, self.max_learned_peers);
        let mut names = NameBook::default();
        for spec in self.bootstrap {
            match spec.to_peer_addr() {
                Some(peer) => {
                    peers.insert(peer, Source::Bootstrap);
                }
                None => names.add(spec),
            }
        }
        for spec in data_dir.iter().flat_map(DataDir::peers) {
            match spec.to_peer_addr() {
                Some(peer) => {
                    peers.insert(peer, Source::Exchange);
                }
                None => names.add(spec),
            }
        }
        let probe = match whoami::bind(bound).await {
            Ok(listener) => Some(listener),
            Err(err) => {
                tracing::warn!(addr = %bound, %err, "cannot bind the id probe's TCP port (same number as the peer port): peers given this node's address without its id cannot reach it; open TCP and UDP on the peer port");
                None
            }
        };
        let inner = Arc::new(Inner {
            endpoint,
            network: self.network,
            local,
            incarnation: getrandom::u64().map_err(NetworkError::Random)?,
            started: std::time::Instant::now(),
            max_frame: self.max_frame_len,
            connect_timeout: self.connect_timeout,
            handshake_timeout: self.handshake_timeout,
            backoff: self.backoff,
            peers: Mutex::new(peers),
            names: Mutex::new(names),
            mismatch_hint: self.mismatch_hint,
            refusals: Mutex::new(RefusalLog::default()),
            data_dir,
            groups: Mutex::new(HashMap::new()),
            links: LinkRegistry::default(),
            conns: ConnTable::new(me),
            heartbeat: Heartbeat::new(self.heartbeat_interval, self.max_missed_heartbeats),
            heartbeats_sent: Default::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner.tasks.spawn(accept_loop(inner.clone()));
        if let Some(listener) = probe {
            inner.tasks.spawn(whoami::serve(inner.clone(), listener));
        }
        tracing::info!(peer = %local, network = %Short(&self.network), "network up");
        Ok(Network::from_inner(inner))
    }
}
