//! `tessera node`: its flags (also from `TESSERA_*` and a TOML file: [`crate::node_config`]),
//! its logging, and the process that runs a [`Server`] until SIGTERM or SIGINT.

use clap::ValueEnum;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tessera::network::{HostPort, PeerSpec};
use tessera::store::server::{self, Server, ServerConfig};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people (colours on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs to stderr at `level` (RUST_LOG, when set, replaces it) in `format`.
fn init_logging(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => tracing_subscriber::EnvFilter::try_new(&env)
            .map_err(|e| format!("RUST_LOG={env:?}: {e}"))?,
        _ => tracing_subscriber::EnvFilter::try_new(level)
            .map_err(|e| format!("--log-level {level:?}: {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
    Ok(())
}

/// `tessera node`. Every flag can also come from the environment (`TESSERA_` and the
/// flag's name in upper snake case: `--heartbeat-ms` is `TESSERA_HEARTBEAT_MS`) or from a
/// TOML file (`--config`, keys named as the flags: `heartbeat-ms = 100`); see
/// [`crate::node_config`] for the precedence.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// A TOML file of node settings, keys named as the flags (`http = "0.0.0.0:7070"`,
    /// `peer = ["ID@IP:PORT"]`). A flag or a TESSERA_* variable overrides the file.
    #[arg(long, value_name = "FILE", env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// A file of read-only bearer tokens, one per line: with token files, every call needs
    /// `Authorization: Bearer TOKEN` (401 without, 403 for a read token on a write). Every
    /// member needs the same files.
    #[arg(long, value_name = "FILE")]
    read_token_file: Option<PathBuf>,
    /// A file of read-write bearer tokens, one per line.
    #[arg(long, value_name = "FILE")]
    write_token_file: Option<PathBuf>,
    /// With token files, /healthz, /readyz and /metrics need a token too (by default they
    /// stay open for load balancers and Prometheus).
    #[arg(long)]
    auth_probes: bool,
    /// Serve the API over HTTPS with this certificate chain (PEM, leaf first; its SANs
    /// must name the host or IP clients and members call). Needs --http-key.
    #[arg(long, value_name = "FILE")]
    http_cert: Option<PathBuf>,
    /// The private key of --http-cert (PEM).
    #[arg(long, value_name = "FILE")]
    http_key: Option<PathBuf>,
    /// Require client certificates signed by one of these CAs (PEM): mutual TLS. Members
    /// then present their own --http-cert when they relay a call to the leader, so it
    /// must allow client authentication too.
    #[arg(long, value_name = "FILE")]
    http_client_ca: Option<PathBuf>,
    /// The CAs (PEM) this node trusts for other members' HTTPS APIs, when it relays a
    /// call to the leader. Default: --http-client-ca if given, else the system's roots.
    #[arg(long, value_name = "FILE")]
    http_trusted_ca: Option<PathBuf>,
    /// Log lines as `text` (for people) or `json` (one object per line, for collectors).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Least severe level logged: error, warn, info, debug, trace, or a filter such as
    /// `info,tessera::groups=debug`. RUST_LOG, when set, replaces it.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Data directory: node key, known peers, RocksDB (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// UDP address for peers (QUIC).
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Address peers should dial, HOST:PORT or IP:PORT, when --listen is not reachable
    /// as is (0.0.0.0, a container). A host name is looked up at each start.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<HostPort>,
    /// TCP address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    http: SocketAddr,
    /// The HTTP URL members and clients should use for this node, when --http is not
    /// reachable as is (0.0.0.0, a proxy). Default: http://IP:PORT of --http (https://
    /// with --http-cert), with the IP of --advertise (or --listen) when --http's is
    /// 0.0.0.0.
    #[arg(long, value_name = "URL")]
    advertise_http: Option<String>,
    /// A peer to contact first (repeatable): `HOST:PORT`, or `ID@HOST:PORT` to pin its
    /// id. HOST is an IP or a name (looked up again before every dial). Without an id,
    /// the peer's id is asked on TCP at the same port (the peer port takes UDP and TCP).
    /// Not needed after the first start: known peers are kept in the data directory.
    #[arg(long = "peer", value_name = "[ID@]HOST:PORT", value_delimiter = ',')]
    peers: Vec<PeerSpec>,
    /// How many fresh nodes must see each other before a new group forms.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=99))]
    bootstrap_expect: u64,
    /// The group's shared secret; every member needs the same. The default is public:
    /// set your own outside a private network.
    #[arg(long, env = "TESSERA_GROUP_KEY", default_value = server::DEFAULT_GROUP_KEY, hide_default_value = true)]
    group_key: String,
    /// Leader heartbeat interval in milliseconds (every member must use the same). The
    /// default suits a LAN; raise it with the election timeout across a WAN.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    heartbeat_ms: u64,
    /// Election timeout in milliseconds (above the heartbeat, best ten of them; a random
    /// extra of up to a quarter is added). A leader failure costs about this long.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=600_000))]
    election_timeout_ms: u64,
    /// A link to a peer closes after this many heartbeat intervals without a frame (every
    /// member must use the same). A restarted peer's new link replaces its old one at once
    /// whatever this is.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_missed_heartbeats: u32,
    /// Keep heartbeating while idle: by default an idle group quiesces (its leader stops
    /// heartbeating after four idle heartbeat intervals and a lost link wakes it). Every
    /// member must use the same (part of the group id).
    #[arg(long)]
    no_quiesce: bool,
    /// A write forwarded to the leader fails after this many milliseconds without its
    /// acknowledgement (default: two election rounds, 2 × 1.25 × the election timeout).
    /// A write stranded on a leader that died fails as soon as a new leader is elected.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    forward_timeout_ms: Option<u64>,
    /// A strong read fails after this many milliseconds without a read index from a leader
    /// (default: as the forward timeout). A read pending on a leader that died is asked of
    /// the next one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    query_timeout_ms: Option<u64>,
    /// A QUIC connection with no packet for this many milliseconds is dead (links notice
    /// a dead peer sooner through --max-missed-heartbeats).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    quic_idle_timeout_ms: u64,
    /// Quorum loss: start as the only voter of a new cluster holding this node's data
    /// (every entry it holds counts as committed), then add fresh members. Only once:
    /// a restart with the flag still set is refused. See the README's operations guide.
    #[arg(long)]
    force_new_cluster: bool,
    /// Cut a snapshot every this many committed entries (every member must use the same).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every_entries: u64,
    /// ... or every this many MiB of applied commands (every member must use the same).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    snapshot_every_mib: u64,
    /// Free space (MiB) kept on the data directory's disk: below it the node takes no new
    /// writes or log entries (507 `no_space`; reads go on, leadership moves to another
    /// voter) until space is back above it by a quarter. 0 turns the alarm off.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    min_free_mib: u64,
    /// Log entries kept behind the newest snapshot, for cheap catch-up from the log.
    #[arg(long, default_value_t = 10_000)]
    keep_log_tail: u64,
    /// Raw size of a snapshot chunk in KiB, 1 to 16384 (every member must use the same).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16_384))]
    snapshot_chunk_kib: u32,
    /// Changes kept for watches and blocking reads: at most this many events (every
    /// member must use the same). A watch from an older revision gets 410.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    watch_history_events: u64,
    /// ... and at most this many MiB of keys and values (every member must use the same).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    watch_history_mib: u64,
    /// Threads running the node's tasks (network, groups, HTTP); default: one per core
    /// this process may use. Nodes sharing a machine's cores with other nodes answer a
    /// lone client sooner with fewer (fewer threads to wake per message); the fsync
    /// thread and RocksDB's own threads are not counted.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    runtime_threads: Option<u16>,
}

pub fn run_node(args: NodeArgs) -> Result<(), String> {
    init_logging(args.log_format, &args.log_level)?;
    if let Some(file) = &args.config {
        tracing::info!(config = %file.display(), "settings read from the config file (flags and TESSERA_* override it)");
    }
    if args.group_key == server::DEFAULT_GROUP_KEY {
        tracing::warn!(
            "THE GROUP KEY IS THE PUBLIC DEFAULT: anyone who reaches this node's peer port can join its group. \
Set --group-key (or TESSERA_GROUP_KEY) to a secret shared by the members, outside a private test network."
        );
    }
    let tokens = tessera::store::http::auth::Tokens::from_files(
        args.read_token_file.as_deref(),
        args.write_token_file.as_deref(),
        args.auth_probes,
    )?;
    if !tokens.enabled() {
        tracing::warn!("no token files: anyone who reaches the HTTP port can read and write");
    }
    // Every TLS file is read and checked here, before the data directory is touched.
    let tls = tessera::store::tls::HttpTlsFiles {
        cert: args.http_cert,
        key: args.http_key,
        client_ca: args.http_client_ca,
        trusted_ca: args.http_trusted_ca,
    }
    .load()
    .map_err(|e| e.to_string())?;
    let config = ServerConfig {
        tokens,
        force_new_cluster: args.force_new_cluster,
        tls,
        data_dir: args.data_dir,
        min_free_bytes: args.min_free_mib << 20,
        listen: args.listen,
        advertise: args.advertise,
        http: args.http,
        advertise_http: args.advertise_http,
        peers: args.peers,
        group_key: args.group_key,
        bootstrap_expect: args.bootstrap_expect as usize,
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        election_timeout: Duration::from_millis(args.election_timeout_ms),
        max_missed_heartbeats: args.max_missed_heartbeats,
        quiesce: !args.no_quiesce,
        forward_timeout: args.forward_timeout_ms.map(Duration::from_millis),
        query_timeout: args.query_timeout_ms.map(Duration::from_millis),
        quic_idle_timeout: Duration::from_millis(args.quic_idle_timeout_ms),
        snapshot: tessera::groups::snapshot::SnapshotConfig::default()
            .every_entries(args.snapshot_every_entries)
            .every_bytes(args.snapshot_every_mib << 20)
            .keep_tail(args.keep_log_tail)
            .chunk_size(args.snapshot_chunk_kib << 10),
        watch_history: tessera::store::kv::Retention {
            events: args.watch_history_events,
            bytes: args.watch_history_mib << 20,
        },
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.runtime_threads {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let node = Server::start(config).await.map_err(|e| e.to_string())?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", node.addr())
            .and_then(|()| writeln!(out, "{}", node.http_url()))
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
        drop(out);
        node.run_until(server::termination())
            .await
            .map_err(|e| e.to_string())
    })
}
