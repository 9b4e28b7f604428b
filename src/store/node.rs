//! `tessera node`: one process hosting the replicated key-value group and its HTTP API.
//!
//! [`Node::start`] opens the network (identity and known peers in the data directory),
//! joins the [`KvMachine`] group with a durable log, and serves [`super::http`]. A node
//! restarted with the same data directory needs no bootstrap peers: the network saves the
//! peers it knows in `DATA_DIR/peers` and the group resumes from its log.

use super::http;
use super::kv::KvMachine;
use crate::groups::snapshot::{SnapshotConfig, SnapshotStats};
use crate::groups::{ConfigError, ConsensusConfig, Group, GroupBuilder, GroupKey, JoinError};
use crate::network::{Network, NetworkError, NetworkId, PeerAddr};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The network every `tessera node` belongs to.
pub const NETWORK_NAME: &str = "tessera";

/// The group key used when none is given. Anyone who knows it can join: give your own
/// with `--group-key` outside a private test network.
pub const DEFAULT_GROUP_KEY: &str = "tessera default kv group";

/// How long [`Node::stop`] waits for each part to stop.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// What a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Data directory: node key, peers file, RocksDB (created if missing).
    pub data_dir: PathBuf,
    /// UDP address for QUIC (peers).
    pub listen: SocketAddr,
    /// Address peers should dial when `listen` is not reachable as is (`0.0.0.0`).
    pub advertise: Option<SocketAddr>,
    /// TCP address of the HTTP API.
    pub http: SocketAddr,
    /// Bootstrap peers (`ID@IP:PORT`); not needed after the first start.
    pub peers: Vec<PeerAddr>,
    /// The group key's secret; members must share it.
    pub group_key: String,
    /// Fresh nodes that must see each other before a new group forms.
    pub bootstrap_expect: usize,
    /// Leader heartbeat interval (part of the group id: every member must use the same).
    pub heartbeat: Duration,
    /// Follower election timeout (a random extra of up to a quarter is added).
    pub election_timeout: Duration,
    /// When snapshots are cut and how much log stays behind them (the marker spacing is
    /// part of the group id: every member must use the same).
    pub snapshot: SnapshotConfig,
}

impl NodeConfig {
    /// A configuration with the seed's timing (heartbeat 500 ms, election 2 s), three
    /// founders and the default key.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr, http: SocketAddr) -> Self {
        NodeConfig {
            data_dir: data_dir.into(),
            listen,
            advertise: None,
            http,
            peers: Vec::new(),
            group_key: DEFAULT_GROUP_KEY.to_string(),
            bootstrap_expect: 3,
            heartbeat: Duration::from_millis(500),
            election_timeout: Duration::from_secs(2),
            snapshot: SnapshotConfig::default(),
        }
    }

    /// The consensus settings derived from the two timings: jitters in the seed's
    /// proportions (heartbeat × 0.3, election × 0.25), bootstrap delay election × 1.5,
    /// forward and query timeouts the seed's 2 s (at least one election timeout).
    pub fn consensus(&self) -> Result<ConsensusConfig, ConfigError> {
        let calls = self.election_timeout.max(Duration::from_secs(2));
        ConsensusConfig::builder()
            .with_heartbeat_interval(self.heartbeat)
            .with_heartbeat_jitter(self.heartbeat * 3 / 10)
            .with_election_timeout(self.election_timeout)
            .with_election_timeout_jitter(self.election_timeout / 4)
            .with_bootstrap_delay(self.election_timeout * 3 / 2)
            .with_forward_timeout(calls)
            .with_query_timeout(calls)
            .with_bootstrap_expect(self.bootstrap_expect)
            .build()
    }
}

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The timing settings are unusable.
    #[error("consensus settings: {0}")]
    Config(#[from] ConfigError),
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
    /// The group's worker stopped on its own (a fatal storage error).
    #[error("the group stopped: {reason}")]
    GroupStopped {
        /// The worker's reason.
        reason: String,
    },
}

/// A running node.
pub struct Node {
    network: Network,
    group: Group<KvMachine>,
    snapshots: Arc<SnapshotStats>,
    http_addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    stop_http: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.network.local_addr())
            .field("http", &self.http_addr)
            .finish()
    }
}

impl Node {
    /// Opens the network, joins the group and serves HTTP (needs a tokio runtime).
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let consensus = config.consensus()?;
        let mut builder = Network::builder(NetworkId::named(NETWORK_NAME))
            .data_dir(&config.data_dir)
            .bind_addr(config.listen)
            .bootstrap(config.peers.iter().copied());
        if let Some(advertise) = config.advertise {
            builder = builder.advertise_addr(advertise);
        }
        let network = builder.bind().await?;
        let machine = KvMachine::new(config.snapshot);
        let snapshots = machine.snapshot_stats();
        let joined = GroupBuilder::new(&network)
            .with_key(GroupKey::from_secret(config.group_key.as_bytes()))
            .with_state_machine(machine)
            .with_consensus_config(consensus)
            .join();
        let group = match joined {
            Ok(group) => group,
            Err(err) => {
                network.shutdown().await;
                return Err(err.into());
            }
        };
        let listener = match tokio::net::TcpListener::bind(config.http).await {
            Ok(l) => l,
            Err(source) => {
                group.shutdown().await;
                network.shutdown().await;
                return Err(NodeError::HttpBind {
                    addr: config.http,
                    source,
                });
            }
        };
        let http_addr = listener.local_addr().map_err(NodeError::Http)?;
        let app = http::router(group.clone(), network.local_addr(), snapshots.clone());
        let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(peer = %network.local_addr(), http = %http_addr, group = %group.id(), "node up");
        Ok(Node {
            network,
            group,
            snapshots,
            http_addr,
            server,
            stop_http,
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
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        let group = self.group.clone();
        let group_stopped = async move {
            let mut when = group.when();
            // `leader_changed` returns Err only once the worker stopped.
            loop {
                if let Err(err) = when.leader_changed().await {
                    return err;
                }
            }
        };
        let outcome = tokio::select! {
            () = shutdown => Ok(()),
            err = group_stopped => Err(NodeError::GroupStopped { reason: match err {
                crate::groups::GroupError::Stopped { reason } => reason,
                other => other.to_string(),
            }}),
            served = &mut self.server => Err(match served {
                Ok(Ok(())) => NodeError::Http(std::io::Error::other("server ended")),
                Ok(Err(e)) => NodeError::Http(e),
                Err(e) => NodeError::Http(std::io::Error::other(e)),
            }),
        };
        self.stop().await;
        outcome
    }

    /// Stops serving HTTP (in-flight requests get up to 5 s), then the group and the
    /// network, each bounded.
    pub async fn stop(self) {
        let Node {
            network,
            group,
            server,
            stop_http,
            ..
        } = self;
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
