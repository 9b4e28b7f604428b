//! The `tessera` command line.
//!
//! - `tessera inspect DATA_DIR [--format text]`: what a data directory holds (read-only).
//! - `tessera demo [--storage]`: the cluster demo (three node processes, the leader killed
//!   and restarted), or the storage demo (write, SIGKILL, reopen, verify).
//! - `tessera node ...`: run a node of the replicated key-value store with its HTTP API.
//! - `tessera get|put|del|txn|watch|status`: clients of the nodes' HTTP API ([`kvcli`]).
//! - `tessera snapshot save|status|restore`: backups ([`snapshotcli`]).
//! - `tessera write-log --data-dir DIR` (hidden, a developer tool): append synced batches,
//!   printing each durable position (the writer the crash test and the storage demo kill).
//! - `tessera groups-node --data-dir DIR` (hidden, a developer tool): one node hosting many
//!   groups, driven on standard input (the many-groups benchmark and crash test).

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod demo;
mod groups_node;
mod kvcli;
mod membercli;
mod node_config;
mod nodecli;
mod snapshotcli;

#[allow(dead_code)] // the binary uses part of the test kit; the tests use the rest
mod kit;

/// Every allocation of the binary (nodes, clients, tools) goes through jemalloc: a node
/// allocates and frees many small buffers per request and per frame on every runtime
/// thread, where glibc's malloc spent about 9% of a node's CPU at 64 connections
/// (`perf record` during `make compare`'s c=64 writes; see the README).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    Node(Box<nodecli::NodeArgs>),
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
    /// Back up the store into a file, check a backup, or restore one into a new data
    /// directory.
    Snapshot(snapshotcli::SnapshotArgs),
    /// Print what a data directory holds: the node's id and saved peers, and per group
    /// the log range, hard state, snapshots, transfers and the key-value store's keys,
    /// revision and largest values. JSON by default. Read-only; safe beside a running
    /// node.
    ///
    /// Example: tessera inspect /var/lib/tessera --format text
    Inspect(InspectArgs),
    /// Append entries in synced batches to a group's log, printing `durable INDEX TERM`
    /// after each sync returns. Runs until killed or `--entries` are written. A developer
    /// tool (the crash test and the storage demo kill it), hidden from `--help`.
    #[command(hide = true)]
    WriteLog(WriteLogArgs),
    /// Host many groups of the key-value machine on one node, driven by commands on
    /// standard input (the many-groups benchmark and crash test run three). A developer
    /// tool, hidden from `--help`.
    #[command(hide = true)]
    GroupsNode(groups_node::GroupsNodeArgs),
    /// Run the cluster demo: three nodes, kill -9 the leader, a new leader, restart, catch
    /// up. `--storage`: the storage demo (kill -9 a writer, show nothing synced was lost).
    Demo(demo::Args),
}

#[derive(clap::Args)]
struct InspectArgs {
    /// The node's data directory.
    data_dir: PathBuf,
    /// `json` (the default, for scripts) or `text` (a short summary for people).
    #[arg(long, value_enum, default_value_t = kvcli::Format::Json)]
    format: kvcli::Format,
    /// List every group. By default, with more than 16 groups only the totals, the groups
    /// with problems and the 10 largest logs are listed.
    #[arg(long, conflicts_with = "group")]
    all: bool,
    /// List only the groups whose hex id starts with PREFIX.
    #[arg(long, value_name = "PREFIX", value_parser = hex_prefix)]
    group: Option<String>,
}

fn hex_prefix(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "{s:?} is not a group id prefix (1 to 64 hex digits)"
        ))
    }
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
    /// After every this many entries, flush the memtables: the write-ahead log switches
    /// and the old one is reused later (the crash test kills writers writing into reused
    /// log files this way).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    flush_every: Option<u64>,
}

fn write_log(args: WriteLogArgs) -> Result<(), String> {
    let store = tessera_storage::Store::open(&args.data_dir).map_err(|e| e.to_string())?;
    let group = kit::write_log::group_id(&args.group);
    let mut log = store
        .group_log(*group.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = &mut std::io::stdout().lock();
    let payload = args.payload_bytes as usize;
    // Without --flush-every, one chunk: all the entries asked for, or without end.
    let every = args.flush_every.unwrap_or(u64::MAX);
    let mut left = args.entries.unwrap_or(u64::MAX);
    loop {
        let chunk = left.min(every);
        kit::write_log::run(&mut log, args.batch, payload, Some(chunk), out)
            .map_err(|e| e.to_string())?;
        left = left.saturating_sub(chunk);
        if left == 0 {
            return Ok(());
        }
        store.flush_memtables().map_err(|e| e.to_string())?;
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = match node_config::layered(Cli::command(), &args) {
        Ok(command) => command,
        Err(reason) => {
            eprintln!("tessera: {reason}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&command.get_matches_from(args)) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let result = match cli.command {
        Command::Inspect(args) => tessera::inspect::report_with(
            &args.data_dir,
            &tessera::inspect::Selection {
                all: args.all,
                group_prefix: args.group,
            },
        )
        .map(|report| match args.format {
            kvcli::Format::Json => println!("{}", report.to_json()),
            kvcli::Format::Text => print!("{}", report.to_text()),
        })
        .map_err(|e| e.to_string()),
        Command::WriteLog(args) => write_log(args),
        Command::GroupsNode(args) => groups_node::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Node(args) => nodecli::run_node(*args),
        Command::Put(a) => return client_exit(kvcli::Call::Put(a)),
        Command::Get(a) => return client_exit(kvcli::Call::Get(a)),
        Command::Del(a) => return client_exit(kvcli::Call::Del(a)),
        Command::Txn(a) => return client_exit(kvcli::Call::Txn(a)),
        Command::Watch(a) => return client_exit(kvcli::Call::Watch(a)),
        Command::Status(a) => return client_exit(kvcli::Call::Status(a)),
        Command::Member(a) => return client_exit(kvcli::Call::Member(a)),
        Command::Leader(a) => return client_exit(kvcli::Call::Leader(a)),
        Command::Snapshot(a) => return exit_with(snapshotcli::run(a)),
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
    exit_with(kvcli::run(call))
}

/// The exit of a command that failed with a code and one line.
fn exit_with(result: Result<(), kvcli::Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, reason)) => {
            eprintln!("tessera: {reason}");
            ExitCode::from(code)
        }
    }
}
