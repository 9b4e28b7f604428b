//! `tessera demo`: the cluster demo ([`cluster`]: three `tessera node` processes; the
//! leader is killed with SIGKILL, a new one takes over, the old one restarts and catches
//! up), and with `--storage` the storage demo ([`storage`]: a writer killed mid-write, the
//! directory reopened, every entry it reported durable checked).

mod cluster;
mod storage;

use std::path::PathBuf;

/// Arguments of `tessera demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Run the storage demo (one writer killed mid-write) instead of the cluster demo.
    #[arg(long)]
    pub storage: bool,
    /// Where to keep the data (default: a fresh temporary directory, removed at the end).
    /// The cluster demo wants a new or empty directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Storage demo: how long the writer runs before it is killed, in milliseconds.
    #[arg(long, default_value_t = 700)]
    pub run_ms: u64,
}

/// Runs the demo `args` selects.
pub fn run(args: Args) -> Result<(), String> {
    if args.storage {
        storage::run(args)
    } else {
        run_cluster(args)
    }
}

/// The cluster demo, in a multi-threaded runtime.
fn run_cluster(args: Args) -> Result<(), String> {
    let (root, _guard) = match args.data_dir {
        Some(d) => {
            let empty = std::fs::read_dir(&d).map_or(true, |mut entries| entries.next().is_none());
            if !empty {
                return Err(format!(
                    "{} is not empty; give a new directory",
                    d.display()
                ));
            }
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            (d, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("tessera-demo-")
                .tempdir()
                .map_err(|e| format!("temporary directory: {e}"))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(cluster::run(exe, &root))
}
