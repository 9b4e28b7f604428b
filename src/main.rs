//! The `tessera` command line.
//!
//! - `tessera inspect DATA_DIR`: JSON summary of a data directory (read-only).
//! - `tessera write-log --data-dir DIR`: append synced batches, printing each durable
//!   position (the writer the crash test and the demo kill).
//! - `tessera demo`: the storage demo (write, SIGKILL, reopen, verify).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tessera::groups::DurableLogStore;

mod demo;

#[derive(Parser)]
#[command(name = "tessera", version, about = "A durable replication engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a JSON summary of a data directory: groups, log range, hard state, snapshots,
    /// bytes per column family. Read-only; safe beside a running node.
    Inspect {
        /// The node's data directory.
        data_dir: PathBuf,
    },
    /// Append entries in synced batches to a group's log, printing `durable INDEX TERM`
    /// after each sync returns. Runs until killed or `--entries` are written.
    WriteLog(WriteLogArgs),
    /// Run the storage demo: write, kill -9 the writer, reopen, show nothing synced was lost.
    Demo(demo::Args),
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
    let group = tessera::write_log::group_id(&args.group);
    let mut log: DurableLogStore<Vec<u8>> =
        DurableLogStore::open(&store, group).map_err(|e| e.to_string())?;
    tessera::write_log::run(
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("tessera: {reason}");
            ExitCode::FAILURE
        }
    }
}
