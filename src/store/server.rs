//! `tessera node`: one process hosting the replicated key-value group and its HTTP API.
//!
//! [`Server::start`] locks the data directory, binds its ports, opens the directory
//! ([`DataDir`]: identity, store, known peers), starts the network from it, joins the
//! [`KvMachine`] group with a durable log, and serves [`super::http`]. The lock comes
//! first, so a second process on the same directory fails before it binds anything; the
//! ports come before the directory is created or written, so a busy port leaves nothing
//! behind. TLS settings ([`ServerConfig::tls`]) arrive loaded and checked, so a bad
//! certificate file is refused before any of this. A node restarted with the same data
//! directory needs no bootstrap peers: the network saves the peers it knows in
//! `DATA_DIR/peers` and the group resumes from its log.

use super::feed::Feed;
use super::http;
use super::kv::{KvMachine, Retention};
use super::tls::{HttpTls, TlsListener};
use crate::data_dir::{DataDirError, DirLock};
use crate::groups::snapshot::{SnapshotConfig, SnapshotStats};
use crate::groups::{ConfigError, ConsensusConfig, Group, GroupBuilder, GroupKey, JoinError};
use crate::network::{HostPort, Network, NetworkError, NetworkId, PeerAddr, PeerSpec};
use axum::serve::ListenerExt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The network every `tessera node` belongs to.
pub const NETWORK_NAME: &str = "tessera";

/// The group key used when none is given. Anyone who knows it can join: give your own
/// with `--group-key` outside a private test network.
pub const DEFAULT_GROUP_KEY: &str = "tessera default kv group";

/// The node's default heartbeat interval (see [`ServerConfig::new`] for why).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(100);

/// The node's default election timeout (see [`ServerConfig::new`] for why).
pub const DEFAULT_ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long a clean stop (SIGTERM) keeps serving with `Connection: close` on every
/// answer before it stops accepting, so active clients move off their kept-alive
/// connections first.
pub const HTTP_DRAIN: Duration = Duration::from_millis(500);

/// What a node refused for an unknown group is told on both sides: the settings that make
/// `tessera node`'s group id (the group key, the consensus digest's heartbeat and missed
/// heartbeats, the snapshot sync's signature and the store's history retention).
pub const GROUP_ID_SETTINGS: &str = "Every member must use the same --group-key, \
--heartbeat-ms, --max-missed-heartbeats, --no-quiesce, --snapshot-every-entries, --snapshot-every-mib, \
--snapshot-chunk-kib, --watch-history-events and --watch-history-mib: together they make \
the group id, and a node whose group id differs is refused.";

/// How long [`Server::stop`] waits for each part to stop.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// What a node needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Data directory: node key, peers file, RocksDB (created if missing).
    pub data_dir: PathBuf,
    /// Free space kept on the data directory's disk: below it the node takes no writes
    /// or log entries until space is freed (see [`crate::data_dir::space`]; 0: no alarm).
    pub min_free_bytes: u64,
    /// UDP address for QUIC (peers).
    pub listen: SocketAddr,
    /// Address peers should dial when `listen` is not reachable as is (`0.0.0.0`); a
    /// host name is looked up at start.
    pub advertise: Option<HostPort>,
    /// TCP address of the HTTP API.
    pub http: SocketAddr,
    /// The HTTP URL other members and clients should use for this node, when `http` is
    /// not reachable as is (`0.0.0.0`, a proxy); `None`: derived (see
    /// [`ServerConfig::http_contact`]).
    pub advertise_http: Option<String>,
    /// Bootstrap peers (`[ID@]HOST:PORT`); not needed after the first start.
    pub peers: Vec<PeerSpec>,
    /// The group key's secret; members must share it.
    pub group_key: String,
    /// Fresh nodes that must see each other before a new group forms.
    pub bootstrap_expect: usize,
    /// Leader heartbeat interval (part of the group id: every member must use the same).
    pub heartbeat: Duration,
    /// Follower election timeout (a random extra of up to a quarter is added).
    pub election_timeout: Duration,
    /// A link closes after this many heartbeat intervals without a frame (part of the
    /// group id).
    pub max_missed_heartbeats: u32,
    /// Whether idle groups quiesce (see [`ConsensusConfig::quiesce`]; off is part of the
    /// group id).
    pub quiesce: bool,
    /// A forwarded write not acknowledged by the leader of its term within this fails;
    /// `None`: derived from the election timeout (see [`ServerConfig::consensus`]).
    pub forward_timeout: Option<Duration>,
    /// A strong read not given a read index within this fails; `None`: derived.
    pub query_timeout: Option<Duration>,
    /// A QUIC connection with no packet for this long is dead (iroh pings at a third of
    /// it). Links notice a dead peer sooner through `max_missed_heartbeats`.
    pub quic_idle_timeout: Duration,
    /// When snapshots are cut and how much log stays behind them (the marker spacing is
    /// part of the group id: every member must use the same).
    pub snapshot: SnapshotConfig,
    /// How much change history the store keeps for watches and blocking reads (part of
    /// the group id: every member must use the same).
    pub watch_history: Retention,
    /// The bearer tokens the HTTP API takes (default: none, the API is open).
    pub tokens: http::auth::Tokens,
    /// Start as the only voter of a new cluster holding this node's data (quorum loss:
    /// the other members are gone for good). Refused on a directory already forced once
    /// (see [`FORCED_MARKER_FILE`]).
    pub force_new_cluster: bool,
    /// HTTPS for the API (default: none, plain HTTP): load it with
    /// [`HttpTlsFiles::load`](super::tls::HttpTlsFiles::load) before starting, so a bad
    /// file is refused before the data directory is touched.
    pub tls: Option<HttpTls>,
}

impl ServerConfig {
    /// A configuration with the node's default timing (heartbeat 100 ms, election 1 s, as
    /// etcd's), three founders and the default key.
    ///
    /// Why these and not the seed library's 500 ms / 2 s: `tessera node` is a config store
    /// on a LAN, where a round trip is well under a millisecond and an fsync a few (p99
    /// 5–8 ms on the virtual disks measured in NOTES.md). A heartbeat of 100 ms is still
    /// over ten times both, so it costs little (ten small frames a second per follower),
    /// and an election timeout of ten heartbeats tolerates several lost or late ones
    /// before a follower campaigns. Failover takes about one election timeout, so these
    /// timings bring it from 2–2.5 s to 1–1.25 s. Raise both together (keep election ≥ 10
    /// heartbeats) across a WAN or on disks whose fsync can stall for hundreds of ms.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr, http: SocketAddr) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            min_free_bytes: crate::data_dir::space::DEFAULT_RESERVE_BYTES,
            listen,
            advertise: None,
            http,
            advertise_http: None,
            peers: Vec::new(),
            group_key: DEFAULT_GROUP_KEY.to_string(),
            bootstrap_expect: 3,
            heartbeat: DEFAULT_HEARTBEAT,
            election_timeout: DEFAULT_ELECTION_TIMEOUT,
            max_missed_heartbeats: 10,
            quiesce: true,
            forward_timeout: None,
            query_timeout: None,
            quic_idle_timeout: Duration::from_secs(10),
            snapshot: SnapshotConfig::default(),
            watch_history: Retention::default(),
            tokens: http::auth::Tokens::open(),
            force_new_cluster: false,
            tls: None,
        }
    }

    /// The HTTP URL this node announces to its members (shown in member lists, and where
    /// they relay membership calls): `advertise_http` if set, else `http://IP:PORT` of the
    /// bound HTTP address (`https://` with [`tls`](Self::tls)), with the IP of `advertise`
    /// (or `listen`) when the HTTP address is unspecified (`0.0.0.0`).
    pub fn http_contact(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.advertise_http {
            return url.clone();
        }
        if bound.ip().is_unspecified() {
            // The host peers dial (the advertised one as given: a name stays a name),
            // with the HTTP port.
            let peers_host = match &self.advertise {
                Some(host) => host.clone(),
                None => HostPort::from_socket(self.listen),
            };
            let unspecified = peers_host
                .literal()
                .is_some_and(|a| a.ip().is_unspecified());
            if !unspecified {
                let mut url = peers_host.to_string();
                if let Some((host, _)) = url.rsplit_once(':') {
                    url = host.to_string();
                }
                return format!("{}://{url}:{}", self.http_scheme(), bound.port());
            }
        }
        format!("{}://{bound}", self.http_scheme())
    }

    /// `https` with TLS, else `http`.
    pub fn http_scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }

    /// The consensus settings derived from the two timings: jitters in the seed's
    /// proportions (heartbeat × 0.3, election × 0.25), bootstrap delay election × 1.5.
    ///
    /// Forward and query timeouts, unless set, are two whole elections (2 × (election +
    /// jitter), 2.5 s with the defaults). They no longer bound a failover: a write
    /// forwarded to a leader that dies fails as soon as a new term begins (outcome unknown,
    /// retry), and a pending strong read goes to the new leader. The timeouts fire only
    /// when no new leader shows up for two election rounds (this node is cut off, or no
    /// quorum is left), and then say "no leader" instead of leaving the client waiting.
    pub fn consensus(&self) -> Result<ConsensusConfig, ConfigError> {
        let jitter = self.election_timeout / 4;
        let calls = (self.election_timeout + jitter) * 2;
        ConsensusConfig::builder()
            .with_heartbeat_interval(self.heartbeat)
            .with_heartbeat_jitter(self.heartbeat * 3 / 10)
            .with_max_missed_heartbeats(self.max_missed_heartbeats)
            .with_quiesce(self.quiesce)
            .with_election_timeout(self.election_timeout)
            .with_election_timeout_jitter(jitter)
            .with_bootstrap_delay(self.election_timeout * 3 / 2)
            .with_forward_timeout(self.forward_timeout.unwrap_or(calls))
            .with_query_timeout(self.query_timeout.unwrap_or(calls))
            .with_bootstrap_expect(self.bootstrap_expect)
            .build()
    }
}

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The timing settings are unusable.
    #[error("consensus settings: {0}")]
    Config(#[from] ConfigError),
    /// The data directory is in use or could not be opened.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The peers' (UDP) address could not be bound.
    #[error("cannot listen for peers on {addr}: {source}")]
    ListenBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The network could not start.
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    /// The group could not be joined (store, log, state).
    #[error("joining the group: {0}")]
    Join(#[from] JoinError),
    /// The HTTP address could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    HttpBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    /// `--force-new-cluster` on a data directory forced before: a second forcing would
    /// drop the members added since.
    #[error(
        "{marker}: this data directory was already forced into a new cluster ({when}); start it without --force-new-cluster \
         (delete the file only to force it again, which drops every member added since)"
    )]
    AlreadyForced {
        /// The marker file.
        marker: PathBuf,
        /// What it says.
        when: String,
    },
    /// The group's worker stopped on its own (a fatal storage error).
    #[error("the group stopped: {cause}")]
    GroupStopped {
        /// Why.
        #[source]
        cause: crate::groups::StopCause,
    },
    /// Watching the group for a stop failed in another way (not expected: the wait only
    /// ends when the group stops).
    #[error("watching the group failed: {0}")]
    GroupWait(#[source] crate::groups::GroupError),
}

/// The file a data directory forced into a new cluster keeps (when, and as which node), so
/// a restart that still carries `--force-new-cluster` is refused instead of forcing again.
pub const FORCED_MARKER_FILE: &str = "forced-new-cluster";

/// A running node.
pub struct Server {
    network: Network,
    group: Group<KvMachine>,
    snapshots: Arc<SnapshotStats>,
    http_addr: SocketAddr,
    /// `http` or `https`.
    http_scheme: &'static str,
    server: JoinHandle<std::io::Result<()>>,
    stop_http: tokio::sync::oneshot::Sender<()>,
    /// Ends watches and blocking reads, and the feed's relay.
    stop_streams: CancellationToken,
    /// Bound on handing leadership over before a clean stop.
    handover_bound: Duration,
    /// Cancelled when a clean stop begins draining HTTP connections.
    draining: CancellationToken,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.network.local_addr())
            .field("http", &self.http_addr)
            .finish()
    }
}

impl Server {
    /// Opens the network, joins the group and serves HTTP (needs a tokio runtime).
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let consensus = config.consensus()?;
        let marker = config.data_dir.join(FORCED_MARKER_FILE);
        if config.force_new_cluster {
            if let Ok(when) = std::fs::read_to_string(&marker) {
                return Err(ServerError::AlreadyForced {
                    marker,
                    when: when.trim().to_string(),
                });
            }
        }
        let lock = DirLock::acquire(&config.data_dir)?;
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .map_err(|source| ServerError::HttpBind {
                addr: config.http,
                source,
            })?;
        // Holds the peers' port while the directory is opened; released just before the
        // endpoint binds it (a fixed port only: port 0 is any free one).
        let udp = match config.listen.port() {
            0 => None,
            _ => Some(std::net::UdpSocket::bind(config.listen).map_err(|source| {
                ServerError::ListenBind {
                    addr: config.listen,
                    source,
                }
            })?),
        };
        let dir = lock.open()?;
        dir.space().set_reserve(config.min_free_bytes);
        drop(udp);
        let mut builder = Network::builder(NetworkId::named(NETWORK_NAME))
            .data_dir(dir)
            .bind_addr(config.listen)
            .idle_timeout(config.quic_idle_timeout)
            // Connection liveness is shared by every group's links: the node's timing.
            .heartbeat_interval(consensus.heartbeat_interval)
            .max_missed_heartbeats(consensus.max_missed_heartbeats)
            .bootstrap_specs(config.peers.iter().cloned())
            .group_mismatch_hint(GROUP_ID_SETTINGS);
        if let Some(advertise) = &config.advertise {
            builder = builder.advertise_host(advertise.clone());
        }
        let network = builder.bind().await?;
        let machine = KvMachine::with_retention(config.snapshot, config.watch_history);
        let snapshots = machine.snapshot_stats();
        let published = machine.subscribe();
        let outcomes = machine.outcomes();
        let http_addr = listener.local_addr().map_err(ServerError::Http)?;
        let mut builder = GroupBuilder::new(&network)
            .with_contact(config.http_contact(http_addr))
            .with_key(GroupKey::from_secret(config.group_key.as_bytes()))
            .with_state_machine(machine)
            .with_consensus_config(consensus);
        let restore = config.data_dir.join(super::backup::RESTORE_FILE_NAME);
        let forcing = if restore.exists() {
            tracing::info!(backup = %restore.display(), "importing the restored backup");
            builder = builder.restore_from(restore);
            false
        } else if config.force_new_cluster {
            builder = builder.force_new_cluster();
            true
        } else {
            false
        };
        let joined = builder.join();
        let group = match joined {
            Ok(group) => group,
            Err(err) => {
                network.shutdown().await;
                return Err(err.into());
            }
        };
        if forcing {
            let when = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let text = format!("forced at unix time {when}, as {}\n", network.local_addr());
            if let Err(err) = std::fs::write(&marker, text) {
                tracing::warn!(%err, marker = %marker.display(), "could not record the forced new cluster: a restart with --force-new-cluster would force it again");
            }
        }
        let stop_streams = CancellationToken::new();
        let (feed, _relay) = Feed::start(published, stop_streams.clone());
        let draining = CancellationToken::new();
        let metrics = Arc::new(http::metrics::NodeMetrics::new(
            &group,
            snapshots.clone(),
            feed.clone(),
            network.data_dir().cloned(),
        ));
        let relay_tls = config
            .tls
            .as_ref()
            .map(|tls| tls.relay.clone())
            .unwrap_or_default();
        let app = http::router(http::Served {
            metrics,
            tokens: Arc::new(config.tokens.clone()),
            relay_tls,
            group: group.clone(),
            addr: network.local_addr(),
            network: network.clone(),
            snapshots: snapshots.clone(),
            feed,
            outcomes,
            stop: stop_streams.clone(),
            draining: draining.clone(),
        });
        let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = match &config.tls {
            Some(tls) => {
                let listener = match TlsListener::new(listener, tls.server.clone()) {
                    Ok(listener) => listener,
                    Err(e) => {
                        stop_streams.cancel();
                        group.shutdown().await;
                        network.shutdown().await;
                        return Err(ServerError::Http(e));
                    }
                };
                serve(listener, app, stopped)
            }
            None => serve(listener.tap_io(no_delay), app, stopped),
        };
        let http_scheme = config.http_scheme();
        tracing::info!(
            peer = %network.local_addr(),
            http = %format!("{http_scheme}://{http_addr}"),
            client_certificates = config.tls.as_ref().is_some_and(|t| t.client_auth),
            group = %group.id(),
            "node up"
        );
        Ok(Server {
            network,
            group,
            snapshots,
            http_addr,
            http_scheme,
            server,
            stop_http,
            stop_streams,
            handover_bound: config.election_timeout * 3,
            draining,
        })
    }

    /// This node's `ID@IP:PORT`.
    pub fn addr(&self) -> PeerAddr {
        self.network.local_addr()
    }

    /// Where the HTTP API listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The HTTP API's URL as bound: `http://IP:PORT`, or `https://IP:PORT` with TLS.
    pub fn http_url(&self) -> String {
        format!("{}://{}", self.http_scheme, self.http_addr)
    }

    /// The key-value group.
    pub fn group(&self) -> &Group<KvMachine> {
        &self.group
    }

    /// Snapshot counters and the transfer in progress.
    pub fn snapshots(&self) -> &Arc<SnapshotStats> {
        &self.snapshots
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Serves until `shutdown` resolves (then stops cleanly and returns `Ok`), or until the
    /// HTTP server or the group fails (then stops what is left and returns the error).
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        // A handle of its own: the arms below borrow `self` (one of them mutably).
        let group = self.group.clone();
        let outcome = tokio::select! {
            () = shutdown => {
                self.hand_over_leadership().await;
                self.drain_http().await;
                Ok(())
            }
            err = group.stopped() => Err(match err {
                crate::groups::GroupError::Stopped { cause } => ServerError::GroupStopped { cause },
                other => ServerError::GroupWait(other),
            }),
            served = &mut self.server => Err(match served {
                Ok(Ok(())) => ServerError::Http(std::io::Error::other("server ended")),
                Ok(Err(e)) => ServerError::Http(e),
                Err(e) => ServerError::Http(std::io::Error::other(e)),
            }),
        };
        self.stop().await;
        outcome
    }

    /// When this node leads a group with other voters, hands leadership to the most
    /// caught-up one and waits until it is elected (bounded by three election timeouts),
    /// so a clean stop (SIGTERM) costs clients no failover: writes arriving meanwhile wait
    /// and go to the new leader. A failure is logged; the stop goes on either way.
    pub async fn hand_over_leadership(&self) {
        let status = self.group.status();
        let others = status.members.voters().iter().any(|v| *v != status.id);
        if status.role != crate::groups::raft::Role::Leader || !others {
            return;
        }
        let started = std::time::Instant::now();
        match tokio::time::timeout(self.handover_bound, self.group.transfer_leadership(None)).await
        {
            Ok(Ok(leader)) => tracing::info!(
                to = %leader,
                ms = started.elapsed().as_millis() as u64,
                "leadership handed over before stopping"
            ),
            Ok(Err(err)) => tracing::warn!(%err, "leadership not handed over; stopping anyway"),
            Err(_) => tracing::warn!(
                bound = ?self.handover_bound,
                "leadership not handed over in time; stopping anyway"
            ),
        }
    }

    /// Before a clean stop: for [`HTTP_DRAIN`] every answer closes its connection, so
    /// active clients leave their kept-alive connections before the server stops (a
    /// request sent on one just as it closes could not be retried safely).
    pub async fn drain_http(&self) {
        self.draining.cancel();
        tokio::time::sleep(HTTP_DRAIN).await;
    }

    /// Stops serving HTTP (in-flight requests get up to 5 s), then the group and the
    /// network, each bounded.
    pub async fn stop(self) {
        let Server {
            network,
            group,
            server,
            stop_http,
            stop_streams,
            ..
        } = self;
        // Watches and blocking reads end first (with a line saying why), so the server's
        // graceful shutdown does not wait for them.
        stop_streams.cancel();
        let _ = stop_http.send(());
        let abort = server.abort_handle();
        if tokio::time::timeout(STOP_BOUND, server).await.is_err() {
            tracing::warn!("HTTP requests still open after {STOP_BOUND:?}; dropping them");
            abort.abort();
        }
        if tokio::time::timeout(STOP_BOUND, group.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("the group did not stop within {STOP_BOUND:?}");
        }
        if tokio::time::timeout(STOP_BOUND, network.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("the network did not stop within {STOP_BOUND:?}");
        }
        tracing::info!("node stopped");
    }
}

/// Turns Nagle's algorithm off on an accepted API connection, as Go's net/http (etcd)
/// does: a watch or a blocking read writes its lines one at a time, and with Nagle on a
/// line waits for the acknowledgement of the one before (up to the client's delayed-ACK
/// timer, 40 ms on Linux). A failure only costs latency, so it is logged, not fatal.
pub(crate) fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%e, "cannot set TCP_NODELAY on an API connection");
    }
}

/// Serves `app` on `listener` (plain or TLS) until `stopped` fires, then lets in-flight
/// requests finish (graceful shutdown).
fn serve<L>(
    listener: L,
    app: axum::Router,
    stopped: tokio::sync::oneshot::Receiver<()>,
) -> JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    })
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
}
