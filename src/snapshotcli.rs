//! `tessera snapshot save|status|restore`: backups of the store (etcdctl's `snapshot`
//! commands). `save` streams a consistent backup from a node into a file with a progress
//! bar; `status` checks a file whole and says what it holds; `restore` puts one into a new
//! node's data directory, which the node imports at its first start, as the only voter of
//! a new cluster (add the other members to it then).

use crate::kvcli::{connect, ClientArgs, Failure, Format, Out};
use clap::{Args, Subcommand};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Duration;
use tessera::store::backup::{self, BackupSummary};
use tessera::store::client::{SaveError, EXIT_FAILURE};

/// Exit code: the backup file is damaged, incomplete or not a backup.
pub const EXIT_BAD_BACKUP: u8 = 8;

/// `tessera snapshot`.
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Save a consistent backup of the store from a node into FILE: every write
    /// acknowledged before the call, none after. Checked as it arrives and whole before it
    /// takes FILE's name.
    ///
    /// Example: tessera snapshot save backup.tsb --endpoints http://10.0.0.1:7070
    Save {
        /// The file to write (replaced only once the new backup checked out).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Check a backup file whole (every chunk, the digest, every item) and print what it
    /// holds: revision, keys, sizes, digest. Exit code 8 when it is damaged.
    ///
    /// Example: tessera snapshot status backup.tsb
    Status {
        /// The backup file.
        file: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Check a backup and place it in a new data directory: `tessera node --data-dir DIR`
    /// then starts as the only voter of a new cluster holding exactly the backup's state.
    /// Start the node with the group key, timing and snapshot flags of the cluster the
    /// backup came from; then add members (`--peer` on fresh nodes, or `tessera member
    /// add`).
    ///
    /// Example: tessera snapshot restore backup.tsb --data-dir /var/lib/tessera
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The new node's data directory (must not exist, or be empty).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Runs one `snapshot` command.
pub fn run(args: SnapshotArgs) -> Result<(), Failure> {
    let mut out = Out::new();
    match args.command {
        SnapshotCommand::Save {
            file,
            format,
            client,
        } => {
            let client = connect(&client)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| (EXIT_FAILURE, format!("tokio runtime: {e}")))?;
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} {bytes} ({bytes_per_sec}), {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            let saved = runtime.block_on(client.save_backup(&file, |p| {
                bar.set_position(p.bytes);
                if let Some(info) = &p.info {
                    bar.set_message(format!(
                        "revision {}: {} chunks,",
                        info.anchor_index, p.chunks
                    ));
                }
            }));
            bar.finish_and_clear();
            let summary = saved.map_err(|e| match e {
                SaveError::Client(e) => (e.exit_code(), e.to_string()),
                SaveError::Backup(e) => (EXIT_BAD_BACKUP, e.to_string()),
                e @ SaveError::File { .. } => (EXIT_FAILURE, e.to_string()),
            })?;
            print(&mut out, &summary, format, "saved")
        }
        SnapshotCommand::Status { file, format } => {
            let summary = backup::summarize(&file).map_err(|e| (EXIT_BAD_BACKUP, e.to_string()))?;
            print(&mut out, &summary, format, "checked")
        }
        SnapshotCommand::Restore {
            file,
            data_dir,
            format,
        } => {
            let summary = backup::restore(&file, &data_dir).map_err(|e| (EXIT_BAD_BACKUP, e))?;
            print(&mut out, &summary, format, "restored")?;
            if format == Format::Text {
                out.line(&format!(
                    "next: tessera node --data-dir {} (with the group key, timing and snapshot flags of the old cluster); it starts as the only voter, then add members",
                    data_dir.display()
                ))?;
            }
            Ok(())
        }
    }
}

fn print(out: &mut Out, s: &BackupSummary, format: Format, verb: &str) -> Result<(), Failure> {
    if format == Format::Json {
        return out.json_pretty(s);
    }
    out.line(&format!("{verb} {}", s.file.display()))?;
    out.line(&format!("revision     {}", s.revision))?;
    out.line(&format!("keys         {}", s.keys))?;
    out.line(&format!(
        "data         {} in keys and values, {} history events",
        HumanBytes(s.data_bytes),
        s.history_events
    ))?;
    out.line(&format!(
        "snapshot     {} raw, {} in {} chunks, file {}",
        HumanBytes(s.raw_bytes),
        HumanBytes(s.stored_bytes),
        s.chunks,
        HumanBytes(s.file_bytes)
    ))?;
    out.line(&format!("digest       {}", s.digest))?;
    out.line(&format!("group        {} (term {})", s.group, s.term))?;
    if !s.node.is_empty() {
        out.line(&format!(
            "taken by     {} at unix time {}",
            s.node, s.taken_at_unix
        ))?;
    }
    if !s.largest_values.is_empty() {
        let list: Vec<String> = s
            .largest_values
            .iter()
            .map(|(k, n)| format!("{k} ({})", HumanBytes(*n)))
            .collect();
        out.line(&format!("largest      {}", list.join(", ")))?;
    }
    out.line("checked      every chunk's crc32, the digest and every item")
}
