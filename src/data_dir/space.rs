//! [`DiskSpace`]: the free space of the file system under a data directory, and the alarm
//! raised when it falls below a reserve.
//!
//! Why a reserve and not the `ENOSPC` itself: RocksDB needs room to flush, compact and
//! write its manifest, and a sync that fails half-way stops the group (the node cannot
//! tell what reached the disk). So a node refuses new log entries *before* the disk is
//! full, while everything it already acknowledged is safe and it can still vote, serve
//! reads and write its small hard state. While the alarm is up:
//! - a leader takes no new writes (they fail at once with "no space", nothing appended)
//!   and hands leadership to another voter when one is active;
//! - a follower takes no new entries (it keeps following: heartbeats still count), so it
//!   falls behind instead of failing;
//! - the alarm clears by itself once free space is back above the reserve by a margin
//!   ([`CLEAR_MARGIN`]), and the node catches up and takes writes again: no restart.
//!
//! The free space is read with `statvfs` at most every [`REFRESH`] (whoever asks first
//! after that reads it again), so many groups asking every tick cost one system call.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The reserve when none is configured: room for RocksDB's flushes and compactions of a
/// config store's worth of data.
pub const DEFAULT_RESERVE_BYTES: u64 = 256 << 20;

/// How stale a reading may be.
pub const REFRESH: Duration = Duration::from_millis(250);

/// The alarm clears at the reserve plus this share of it (a quarter, at least 1 MiB), so a
/// disk hovering at the reserve does not flap.
pub const CLEAR_MARGIN: u64 = 4;

/// One reading of the disk under a data directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceState {
    /// Bytes available to this process (`f_bavail`).
    pub free: u64,
    /// The file system's size.
    pub total: u64,
    /// The configured reserve.
    pub reserve: u64,
    /// The alarm: free space fell below the reserve and has not yet come back above it
    /// with the margin.
    pub low: bool,
}

/// The free-space watch of one data directory (shared by every group of the node).
#[derive(Debug)]
pub struct DiskSpace {
    path: PathBuf,
    reserve: AtomicU64,
    cached: Mutex<Option<(Instant, SpaceState)>>,
}

impl DiskSpace {
    /// Watches the file system holding `path`, with the default reserve.
    pub fn new(path: &Path) -> DiskSpace {
        DiskSpace {
            path: path.to_path_buf(),
            reserve: AtomicU64::new(DEFAULT_RESERVE_BYTES),
            cached: Mutex::new(None),
        }
    }

    /// Sets the reserve (`--min-free-mib`); the next reading uses it.
    pub fn set_reserve(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
        *self.guard() = None;
    }

    /// The configured reserve.
    pub fn reserve(&self) -> u64 {
        self.reserve.load(Ordering::Relaxed)
    }

    /// The current reading (at most [`REFRESH`] old). A failed `statvfs` keeps the last
    /// reading (logged): a file system that cannot be asked is not thereby full.
    pub fn check(&self) -> SpaceState {
        let mut cached = self.guard();
        let now = Instant::now();
        if let Some((at, state)) = *cached {
            if now.duration_since(at) < REFRESH {
                return state;
            }
        }
        let before = cached.map(|(_, s)| s);
        let reserve = self.reserve();
        let state = match rustix::fs::statvfs(&self.path) {
            Ok(stat) => {
                let block = stat.f_frsize.max(1);
                let free = stat.f_bavail.saturating_mul(block);
                let total = stat.f_blocks.saturating_mul(block);
                let was_low = before.is_some_and(|s| s.low);
                SpaceState {
                    free,
                    total,
                    reserve,
                    low: next_alarm(was_low, free, reserve),
                }
            }
            Err(err) => {
                tracing::warn!(dir = %self.path.display(), %err, "cannot read the free disk space");
                before.unwrap_or(SpaceState {
                    reserve,
                    ..SpaceState::default()
                })
            }
        };
        match (before.is_some_and(|s| s.low), state.low) {
            (false, true) => tracing::warn!(
                dir = %self.path.display(),
                free_mib = state.free >> 20,
                reserve_mib = state.reserve >> 20,
                "disk space low: this node takes no new writes or log entries until space is \
                 freed (reads and votes go on; leadership moves to another voter)"
            ),
            (true, false) => tracing::info!(
                dir = %self.path.display(),
                free_mib = state.free >> 20,
                "disk space back above the reserve: taking writes again"
            ),
            _ => {}
        }
        *cached = Some((now, state));
        state
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, Option<(Instant, SpaceState)>> {
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The alarm after a reading of `free` bytes: raised below the reserve, cleared only at
/// the reserve plus the margin.
fn next_alarm(was_low: bool, free: u64, reserve: u64) -> bool {
    if reserve == 0 {
        return false;
    }
    if was_low {
        let margin = (reserve / CLEAR_MARGIN).max(1 << 20);
        free < reserve.saturating_add(margin)
    } else {
        free < reserve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_rises_below_the_reserve_and_clears_above_it_with_a_margin() {
        let reserve = 64 << 20;
        assert!(!next_alarm(false, reserve, reserve));
        assert!(next_alarm(false, reserve - 1, reserve));
        assert!(
            next_alarm(true, reserve, reserve),
            "no flapping at the line"
        );
        assert!(next_alarm(true, reserve + (16 << 20) - 1, reserve));
        assert!(!next_alarm(true, reserve + (16 << 20), reserve));
        assert!(
            !next_alarm(false, 0, 0),
            "a reserve of 0 turns the alarm off"
        );
    }

    #[test]
    fn a_reading_of_a_real_directory_is_sane() {
        let dir = tempfile::tempdir().expect("temp dir");
        let space = DiskSpace::new(dir.path());
        space.set_reserve(0);
        let s = space.check();
        assert!(s.total > 0 && s.free <= s.total, "{s:?}");
        assert!(!s.low);
        space.set_reserve(u64::MAX);
        assert!(
            space.check().low,
            "a reserve above the disk's size is an alarm"
        );
    }
}
