//! The `tessera` command line.
//!
//! - `tessera inspect DATA_DIR`: JSON summary of a data directory (read-only).
//! - `tessera demo [--storage]`: the cluster demo (three node processes, the leader killed
//!   and restarted), or the storage demo (write, SIGKILL, reopen, verify).
//! - `tessera node ...`: run a node of the replicated key-value store with its HTTP API.
//! - `tessera get|put|del|txn|watch|status`: clients of the nodes' HTTP API ([`kvcli`]).
//! - `tessera write-log --data-dir DIR` (hidden, a developer tool): append synced batches,
//!   printing each durable position (the writer the crash test and the storage demo kill).

use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tessera::network::PeerAddr;
use tessera::store::server::{self, Server, ServerConfig};

mod demo;
mod kvcli;
mod membercli;

#[allow(dead_code)] // the binary uses part of the test kit; the tests use the rest
mod kit;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "A durable replication engine: a replicated key-value store whose state survives restarts",
    after_help = "Start three nodes with `tessera node --data-dir DIR --peer ID@IP:PORT` (see the README), then \
`tessera put KEY VALUE` and `tessera get KEY`. Logs go to stderr; set RUST_LOG (e.g. \
RUST_LOG=tessera=debug) to see more."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node of the replicated key-value store and serve its HTTP API. Prints its
    /// `ID@IP:PORT` as the first line and its HTTP URL as the second; stops on SIGTERM or
    /// SIGINT.
    Node(NodeArgs),
    /// Set KEY to VALUE, or to standard input (prints the index of the write).
    Put(kvcli::PutArgs),
    /// Print KEY's value (exit code 3 when absent), or with --prefix the keys under it.
    Get(kvcli::GetArgs),
    /// Remove KEY, or with --prefix every key under it (prints the index and how many).
    Del(kvcli::DelArgs),
    /// Run a transaction given as JSON on standard input (see the README); prints the
    /// answer, exit code 6 when the compares did not hold.
    Txn(kvcli::TxnArgs),
    /// Print every change under PREFIX as it happens, one per line; reconnects (to the
    /// other endpoints too) and resumes where it stopped.
    Watch(kvcli::WatchArgs),
    /// Print the node's status as JSON: id, leader, term, commit, applied, members, store.
    Status(kvcli::StatusArgs),
    /// List, add, promote or remove members of the group.
    Member(membercli::MemberArgs),
    /// Hand leadership to another voter.
    Leader(membercli::LeaderArgs),
    /// Print a JSON summary of a data directory: groups, log range, hard state, snapshots,
    /// bytes per column family. Read-only; safe beside a running node.
    Inspect {
        /// The node's data directory.
        data_dir: PathBuf,
    },
    /// Append entries in synced batches to a group's log, printing `durable INDEX TERM`
    /// after each sync returns. Runs until killed or `--entries` are written. A developer
    /// tool (the crash test and the storage demo kill it), hidden from `--help`.
    #[command(hide = true)]
    WriteLog(WriteLogArgs),
    /// Run the cluster demo: three nodes, kill -9 the leader, a new leader, restart, catch
    /// up. `--storage`: the storage demo (kill -9 a writer, show nothing synced was lost).
    Demo(demo::Args),
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Data directory: node key, known peers, RocksDB (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// UDP address for peers (QUIC).
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Address peers should dial, when --listen is not reachable as is (0.0.0.0).
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// TCP address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    http: SocketAddr,
    /// The HTTP URL members and clients should use for this node, when --http is not
    /// reachable as is (0.0.0.0, a proxy). Default: http://IP:PORT of --http, with the
    /// IP of --advertise (or --listen) when --http's is 0.0.0.0.
    #[arg(long, value_name = "URL")]
    advertise_http: Option<String>,
    /// A peer to contact first, `ID@IP:PORT` (repeatable). Not needed after the first
    /// start: known peers are kept in the data directory.
    #[arg(long = "peer", value_name = "ID@IP:PORT")]
    peers: Vec<PeerAddr>,
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
    /// Cut a snapshot every this many committed entries (every member must use the same).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every_entries: u64,
    /// ... or every this many MiB of applied commands (every member must use the same).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    snapshot_every_mib: u64,
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
}

fn run_node(args: NodeArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = ServerConfig {
        data_dir: args.data_dir,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let node = Server::start(config).await.map_err(|e| e.to_string())?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", node.addr())
            .and_then(|()| writeln!(out, "http://{}", node.http_addr()))
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
        drop(out);
        node.run_until(server::termination())
            .await
            .map_err(|e| e.to_string())
    })
}

#[derive(clap::Args)]
struct WriteLogArgs {
    /// Data directory (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Group name; the group id is its blake3 digest.
    #[arg(long, default_value = "write-log")]
    group: String,
    /// Entries per synced batch.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
    /// Payload bytes per entry.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=(16 << 20)))]
    payload_bytes: u64,
    /// Stop after this many entries (default: run until killed).
    #[arg(long)]
    entries: Option<u64>,
}

fn write_log(args: WriteLogArgs) -> Result<(), String> {
    let store = tessera_storage::Store::open(&args.data_dir).map_err(|e| e.to_string())?;
    let group = kit::write_log::group_id(&args.group);
    let mut log = store
        .group_log(*group.as_bytes())
        .map_err(|e| e.to_string())?;
    kit::write_log::run(
        &mut log,
        args.batch,
        args.payload_bytes as usize,
        args.entries,
        &mut std::io::stdout().lock(),
    )
    .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { data_dir } => tessera::inspect::inspect(&data_dir)
            .map(|json| println!("{json}"))
            .map_err(|e| e.to_string()),
        Command::WriteLog(args) => write_log(args),
        Command::Demo(args) => demo::run(args),
        Command::Node(args) => run_node(args),
        Command::Put(a) => return client_exit(kvcli::Call::Put(a)),
        Command::Get(a) => return client_exit(kvcli::Call::Get(a)),
        Command::Del(a) => return client_exit(kvcli::Call::Del(a)),
        Command::Txn(a) => return client_exit(kvcli::Call::Txn(a)),
        Command::Watch(a) => return client_exit(kvcli::Call::Watch(a)),
        Command::Status(a) => return client_exit(kvcli::Call::Status(a)),
        Command::Member(a) => return client_exit(kvcli::Call::Member(a)),
        Command::Leader(a) => return client_exit(kvcli::Call::Leader(a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("tessera: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a client command; a failure prints its one line and exits with its code.
fn client_exit(call: kvcli::Call) -> ExitCode {
    match kvcli::run(call) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, reason)) => {
            eprintln!("tessera: {reason}");
            ExitCode::from(code)
        }
    }
}
