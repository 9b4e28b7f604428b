//! Storage figures: synced appends of 256-byte entries in batches of 1, 16 and 256, beside
//! a raw `write` + `fdatasync` loop on the same filesystem in the same run; `get_range` of
//! 10k entries; pruning 1M entries.
//!
//! Run: `cargo bench --bench storage` (set `TESSERA_BENCH_DIR` to measure another
//! filesystem; the default is the system temporary directory). Criterion prints its own
//! statistics; the table at the end puts tessera and the raw loop side by side, measured
//! interleaved so machine noise hits both alike.

use criterion::{BenchmarkId, Criterion, Throughput};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tessera::groups::raft::Payload;
use tessera::groups::{GroupLog, Index, Storage, Term};
use tessera::{Digest, GroupId};

const ENTRY: usize = 256;
const BATCHES: [u64; 3] = [1, 16, 256];

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("TESSERA_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(PathBuf::from(d)).expect("bench dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn open_log(dir: &std::path::Path, name: &str) -> GroupLog {
    let store = tessera_storage::Store::open(dir).expect("open store");
    store
        .group_log(*GroupId(Digest::of(name.as_bytes())).as_bytes())
        .expect("open log")
}

/// Appends `batch` entries and syncs once.
fn tessera_batch(log: &mut GroupLog, batch: u64, payload: &[u8]) {
    for _ in 0..batch {
        log.append(Payload::Command(payload.to_vec()), Term(1))
            .expect("append");
    }
    log.sync().expect("sync");
}

/// The disk's limit for the same work: `batch` 256-byte records written to an append-only
/// file with one `fdatasync`.
struct RawLog {
    file: std::fs::File,
    buf: Vec<u8>,
}

impl RawLog {
    fn new(dir: &std::path::Path) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("raw.log"))
            .expect("raw log");
        RawLog {
            file,
            buf: Vec::new(),
        }
    }

    fn batch(&mut self, batch: u64, payload: &[u8]) {
        self.buf.clear();
        for _ in 0..batch {
            self.buf.extend_from_slice(payload);
        }
        self.file.write_all(&self.buf).expect("write");
        // SAFETY: fdatasync on a file descriptor we own and keep open; no memory is passed.
        let rc = unsafe { libc::fdatasync(self.file.as_raw_fd()) };
        assert_eq!(rc, 0, "fdatasync failed");
    }
}

fn bench_appends(c: &mut Criterion) {
    let payload = vec![0xA5u8; ENTRY];
    let mut group = c.benchmark_group("synced_append_256B");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch));
        let dir = bench_dir();
        let mut log = open_log(dir.path(), "append");
        group.bench_with_input(BenchmarkId::new("tessera", batch), &batch, |b, &batch| {
            b.iter(|| tessera_batch(&mut log, batch, &payload))
        });
        let mut raw = RawLog::new(dir.path());
        group.bench_with_input(
            BenchmarkId::new("raw_fdatasync", batch),
            &batch,
            |b, &batch| b.iter(|| raw.batch(batch, &payload)),
        );
    }
    group.finish();
}

fn bench_get_range(c: &mut Criterion) {
    let dir = bench_dir();
    let mut log = open_log(dir.path(), "range");
    let payload = vec![7u8; ENTRY];
    for _ in 0..20 {
        tessera_batch(&mut log, 1000, &payload);
    }
    let mut group = c.benchmark_group("get_range");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10k_entries_256B", |b| {
        b.iter(|| {
            let got = log
                .get_range(&(Index(5001)..=Index(15_000)))
                .expect("range");
            assert_eq!(got.len(), 10_000);
        })
    });
    group.finish();
}

fn fill(log: &mut GroupLog, n: u64) {
    let payload = vec![1u8; 16];
    let mut left = n;
    while left > 0 {
        let batch = left.min(10_000);
        tessera_batch(log, batch, &payload);
        left -= batch;
    }
}

fn bench_prune(c: &mut Criterion) {
    let mut group = c.benchmark_group("prune");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("1M_entries", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = bench_dir();
                let mut log = open_log(dir.path(), "prune");
                fill(&mut log, 1_000_000);
                let start = Instant::now();
                log.prune_prefix(Index(1_000_000)).expect("prune");
                log.sync().expect("sync");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// Measures entries/s of `f(batch)` over about `window`.
fn rate(window: Duration, batch: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        f();
        n += batch;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The side-by-side table: five interleaved rounds per batch size, medians.
fn comparison_table() {
    let payload = vec![0x5Au8; ENTRY];
    let dir = bench_dir();
    println!(
        "\nsynced appends, {ENTRY}-byte entries, {} (medians of 5 interleaved 0.5 s rounds)",
        dir.path().display()
    );
    println!("| batch | tessera entries/s | raw write+fdatasync records/s | ratio |");
    println!("|------:|------------------:|------------------------------:|------:|");
    for batch in BATCHES {
        let mut log = open_log(dir.path(), &format!("table-{batch}"));
        let mut raw = RawLog::new(dir.path());
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            ours.push(rate(Duration::from_millis(500), batch, || {
                tessera_batch(&mut log, batch, &payload)
            }));
            theirs.push(rate(Duration::from_millis(500), batch, || {
                raw.batch(batch, &payload)
            }));
        }
        let (o, t) = (median(ours), median(theirs));
        println!(
            "| {batch:>5} | {o:>17.0} | {t:>29.0} | {:>4.0}% |",
            100.0 * o / t
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_appends(&mut c);
    bench_get_range(&mut c);
    bench_prune(&mut c);
    c.final_summary();
    comparison_table();
}
