//! What a transfer has done so far, for progress bars and metrics: [`Progress`], and the
//! windowed rate meter behind its rate and estimated time left.

use std::collections::VecDeque;
use std::fmt;

/// A snapshot transfer's progress at one instant. Byte counts are compressed bytes: what
/// moves over the network and what the rate measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Chunks in the snapshot.
    pub chunks_total: u32,
    /// Chunks verified and stored (including those found in the store on resume).
    pub chunks_verified: u32,
    /// Chunks asked for and not yet answered.
    pub chunks_in_flight: u32,
    /// Compressed bytes in the snapshot.
    pub bytes_total: u64,
    /// Compressed bytes verified and stored.
    pub bytes_verified: u64,
    /// Compressed bytes verified per second over the recent window (0 before any arrives).
    pub rate_bytes_per_sec: u64,
    /// Estimated milliseconds until all bytes are verified at the current rate; `None` while
    /// the rate is 0 and bytes remain.
    pub eta_ms: Option<u64>,
    /// Peers currently usable (not dropped).
    pub peers: usize,
}

impl Progress {
    /// Fraction of bytes verified, in `0.0..=1.0` (1.0 for an empty snapshot).
    pub fn fraction(&self) -> f64 {
        if self.bytes_total == 0 {
            1.0
        } else {
            self.bytes_verified as f64 / self.bytes_total as f64
        }
    }

    /// True once every chunk is verified.
    pub fn is_complete(&self) -> bool {
        self.chunks_verified == self.chunks_total
    }
}

impl fmt::Display for Progress {
    /// One progress-bar line: `412/1024 chunks, 400.0/1000.0 MiB, 95.3 MiB/s, 6 s left`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: f64 = 1024.0 * 1024.0;
        write!(
            f,
            "{}/{} chunks, {:.1}/{:.1} MiB, {:.1} MiB/s",
            self.chunks_verified,
            self.chunks_total,
            self.bytes_verified as f64 / MIB,
            self.bytes_total as f64 / MIB,
            self.rate_bytes_per_sec as f64 / MIB
        )?;
        match self.eta_ms {
            Some(ms) => write!(f, ", {} s left", ms.div_ceil(1000)),
            None => write!(f, ", time left unknown"),
        }
    }
}

/// Bytes per second over a sliding window of `window_ms`, from samples stamped with the
/// caller's clock.
#[derive(Clone, Debug)]
pub(crate) struct RateMeter {
    window_ms: u64,
    /// When measuring began (the window never reaches back before it).
    started_ms: u64,
    samples: VecDeque<(u64, u64)>,
}

impl RateMeter {
    pub(crate) fn new(window_ms: u64, now_ms: u64) -> Self {
        RateMeter {
            window_ms,
            started_ms: now_ms,
            samples: VecDeque::new(),
        }
    }

    pub(crate) fn record(&mut self, now_ms: u64, bytes: u64) {
        self.samples.push_back((now_ms, bytes));
        self.expire(now_ms);
    }

    fn expire(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.window_ms);
        while let Some(&(t, _)) = self.samples.front() {
            if t >= cutoff {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window ending at `now_ms` (or since measuring began, if
    /// that is shorter).
    pub(crate) fn rate(&self, now_ms: u64) -> u64 {
        let since = self.started_ms.max(now_ms.saturating_sub(self.window_ms));
        let bytes: u64 = self
            .samples
            .iter()
            .rev()
            .take_while(|(t, _)| *t >= since)
            .map(|(_, b)| b)
            .sum();
        let span = now_ms.saturating_sub(since).max(1);
        bytes.saturating_mul(1000) / span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_windowed() {
        let mut m = RateMeter::new(1000, 0);
        assert_eq!(m.rate(0), 0);
        m.record(100, 1000);
        assert_eq!(m.rate(500), 2000); // 1000 B over 500 ms since start
        m.record(1500, 3000);
        assert_eq!(m.rate(2000), 3000); // the first sample left the window
        assert_eq!(m.rate(5000), 0);
    }

    #[test]
    fn display_reads_like_a_progress_bar() {
        let p = Progress {
            chunks_total: 1024,
            chunks_verified: 412,
            chunks_in_flight: 8,
            bytes_total: 1000 << 20,
            bytes_verified: 400 << 20,
            rate_bytes_per_sec: 100 << 20,
            eta_ms: Some(6000),
            peers: 3,
        };
        assert_eq!(
            p.to_string(),
            "412/1024 chunks, 400.0/1000.0 MiB, 100.0 MiB/s, 6 s left"
        );
        assert!((p.fraction() - 0.4).abs() < 1e-9);
    }
}
