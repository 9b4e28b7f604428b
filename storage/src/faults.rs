//! Storage faults for tests: compiled only with the `fault-injection` feature, which the
//! test harness (`tessera-testkit`) turns on and a `cargo build` of the binary does not.
//!
//! **Disk faults** are switched on and off while a node runs, by a file named
//! [`FAULT_FILE`] in its data directory, in a process started with
//! [`DISK_FAULTS_VAR`]`=1` (the test harness's clusters are): every sync with something
//! to write reads it first (one failed `open` when there is none). Without the variable
//! nothing is read: the feature is unified into every binary a `cargo test` or
//! `cargo bench` builds (the harness turns it on), and the benchmarks' nodes must not pay
//! an `open` per sync and per log read that a release build never makes. Its first word
//! says what fails:
//! - `sync-eio`: the sync fails as an fsync returning EIO would: nothing of the batch is
//!   written, the caller gets an error naming the data directory and the fault;
//! - `sync-enospc`: the same with ENOSPC (a full disk);
//! - `flip-log-record INDEX`: the next read of log entry `INDEX` from RocksDB (not from the
//!   in-memory tail) in this process sees one bit of the stored record flipped, as a bad
//!   sector or a flaky controller would return it; the record's crc must catch it. It
//!   fires once per data directory, index and process; the record on disk stays intact.
//!   Log reads check the file once per call (a range read once, not per entry).
//!
//! **The deliberate bug** `TESSERA_DELIBERATE_BUG=lazy-fsync` (read once, at the first
//! sync) makes a sync report everything staged as durable but write it only once a second:
//! the lazy fsync that lost acknowledged writes in NATS. It exists so the nemesis suite
//! can prove it catches an acknowledgement given before the data was durable.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The file in a data directory that switches a disk fault on (see the module docs).
pub const FAULT_FILE: &str = "fault-injection";

/// The environment variable naming a deliberate bug.
pub const BUG_VAR: &str = "TESSERA_DELIBERATE_BUG";

pub use crate::DISK_FAULTS_VAR;

/// Whether this process looks for fault files at all.
fn fault_files_on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(DISK_FAULTS_VAR).is_some_and(|v| v == "1"))
}

/// How long a lazy sync lets staged writes wait before it writes them for real.
const LAZY_PERIOD: Duration = Duration::from_secs(1);

/// The error the fault in `dir`'s [`FAULT_FILE`] makes a sync return, if any.
pub(crate) fn sync_fault(dir: &Path) -> Option<std::io::Error> {
    if !fault_files_on() {
        return None;
    }
    let path = dir.join(FAULT_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let (code, name) = match text.split_whitespace().next()? {
        "sync-eio" => (5, "EIO"),
        "sync-enospc" => (28, "ENOSPC"),
        _ => return None,
    };
    let os = std::io::Error::from_raw_os_error(code);
    Some(std::io::Error::new(
        os.kind(),
        format!(
            "fsync failed with {name} ({os}), a fault injected by {}",
            path.display()
        ),
    ))
}

/// The log index the fault file in `dir` says to flip on its next read, if it has not
/// fired yet in this process.
pub(crate) fn flip_target(dir: &Path) -> Option<u64> {
    if !fault_files_on() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join(FAULT_FILE)).ok()?;
    let mut words = text.split_whitespace();
    if words.next()? != "flip-log-record" {
        return None;
    }
    let index = words.next()?.parse::<u64>().ok()?;
    let fired = FIRED.get_or_init(|| std::sync::Mutex::new(Vec::new()));
    let fired = fired.lock().ok()?;
    (!fired.iter().any(|(d, i)| d == dir && *i == index)).then_some(index)
}

/// Flips one bit of `record`, the stored value of log entry `index` in `dir`, when it is
/// the fault's target; marks the fault fired. Returns whether it flipped.
pub(crate) fn flip_record(dir: &Path, index: u64, record: &mut [u8]) -> bool {
    if record.is_empty() {
        return false;
    }
    let Some(fired) = FIRED.get() else {
        return false;
    };
    let Ok(mut fired) = fired.lock() else {
        return false;
    };
    if fired.iter().any(|(d, i)| d == dir && *i == index) {
        return false;
    }
    fired.push((dir.to_path_buf(), index));
    // The first payload byte (the low byte of the entry's term), or the version byte of
    // a record too short to have one: either way the crc (or the version check) fails.
    let at = usize::from(record.len() > 1);
    record[at] ^= 0x01;
    eprintln!(
        "fault injection: flipped a bit of log entry {index} read from {}",
        dir.display()
    );
    true
}

/// Flip faults already fired in this process: data directory and index.
static FIRED: OnceLock<std::sync::Mutex<Vec<(std::path::PathBuf, u64)>>> = OnceLock::new();

/// Whether the lazy-fsync bug is on.
fn lazy_fsync() -> bool {
    static LAZY: OnceLock<bool> = OnceLock::new();
    *LAZY.get_or_init(|| {
        let on = std::env::var(BUG_VAR).is_ok_and(|v| v == "lazy-fsync");
        if on {
            eprintln!("DELIBERATE BUG lazy-fsync: syncs are acknowledged before they are written");
        }
        on
    })
}

/// With the lazy-fsync bug on, whether this sync should only pretend (the last real write
/// was less than a second ago); records the real ones in `last_real`.
pub(crate) fn pretend_sync(last_real: &mut Option<Instant>) -> bool {
    if !lazy_fsync() {
        return false;
    }
    let now = Instant::now();
    match last_real {
        Some(at) if now.duration_since(*at) < LAZY_PERIOD => true,
        _ => {
            *last_real = Some(now);
            false
        }
    }
}
