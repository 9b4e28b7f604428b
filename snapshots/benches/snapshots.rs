//! Snapshot writer and reader throughput beside plain zstd, and their peak memory.
//!
//! Run: `cargo bench -p tessera-snapshots --bench snapshots`.
//!
//! 1. Criterion measures the per-chunk costs that make up a snapshot's (one 1 MiB chunk of
//!    each kind of data): zstd level-1 compression and decompression, `Manifest::verify_chunk`
//!    (length and crc32), the XXH3-128 stream digest, and blake3 for comparison (the digest
//!    of manifest version 1).
//! 2. The throughput table, for 256 MiB of config-like records and 256 MiB of incompressible
//!    bytes (4 KiB items), in MB/s of raw item bytes (10^6 bytes per second):
//!    - `write`: `SnapshotWriter`, default settings (1 MiB chunks, zstd level 1, XXH3-128
//!      digest), into a sink that drops the chunks (storing them is the store's cost, not the
//!      format's);
//!    - `zstd compress`: plain `zstd::bulk::Compressor` (level 1, reused context) over the
//!      same item bytes concatenated in one buffer, into a buffer written beforehand and
//!      placed half a page from the input, as the format places its own (without that,
//!      `memcpy` of incompressible data hits 4K aliasing and runs 2-3 times slower);
//!    - `read`: `SnapshotReader` over the chunks held in memory and lent to it (as a RocksDB
//!      pinned read lends them; fetching them is the store's cost), returning every item,
//!      every check on (crc32, exact decompressed length, framing, digest); `read, no digest`:
//!      without the digest (`SnapshotReader::without_digest_check`, for snapshots whose digest
//!      was verified when written or installed);
//!    - `zstd decompress`: plain `zstd::bulk::Decompressor` of that one frame into a buffer
//!      written beforehand and placed the same way.
//!
//!    Everything, writer and reader included, runs on one thread. The machine is shared, so
//!    the operations run in rounds (each operation once per round) and every ratio is the
//!    median of per-round ratios: a load change hits both sides of a ratio alike. `wall` is
//!    elapsed time; `cpu` is the process's CPU time, which other processes do not inflate.
//!    The targets: writer >= 80% of plain compression, reader >= 80% of plain
//!    decompression.
//! 3. Peak memory: the bench re-runs itself as a child process that writes (or reads) a 1 GiB
//!    snapshot of generated records to (from) a temporary file, and reports the child's
//!    `VmHWM` from `/proc/self/status`: the whole process's peak resident memory, zstd's C
//!    allocations included.

#[path = "../tests/common/records.rs"]
mod records;

use criterion::{black_box, Criterion, Throughput};
use records::{config_record, Rng};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};
use tessera_snapshots::*;

const DATA_BYTES: usize = 256 << 20;
const ROUNDS: usize = 7;
const MEMORY_SNAPSHOT_BYTES: u64 = 1 << 30;
const CHILD_ENV: &str = "TESSERA_SNAPSHOTS_BENCH_CHILD";

/// Items stored back to back in one buffer, with their end offsets.
struct Items {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Items {
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(s, e)| &self.bytes[s..e])
    }

    fn config(total: usize) -> Self {
        let mut rng = Rng(1);
        let mut bytes = Vec::with_capacity(total + 512);
        let mut ends = Vec::new();
        let mut i = 0;
        while bytes.len() < total {
            config_record(&mut rng, i, &mut bytes);
            ends.push(bytes.len());
            i += 1;
        }
        Items { bytes, ends }
    }

    /// Random bytes in 4 KiB items.
    fn incompressible(total: usize) -> Self {
        let mut rng = Rng(2);
        let mut bytes = Vec::with_capacity(total);
        while bytes.len() < total {
            bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        let ends = (1..=total / 4096).map(|i| i * 4096).collect();
        Items { bytes, ends }
    }
}

fn group() -> GroupId {
    GroupId([7; 32])
}

fn anchor() -> Cursor {
    Cursor {
        term: 1,
        index: 100,
    }
}

fn write_snapshot(items: &Items, keep: bool) -> (Manifest, Vec<Vec<u8>>) {
    let mut chunks = Vec::new();
    let sink = |_: u32, bytes: &[u8]| {
        if keep {
            chunks.push(bytes.to_vec());
        }
        black_box(bytes);
        Ok(())
    };
    let mut w =
        SnapshotWriter::new(group(), anchor(), WriterConfig::default(), sink).expect("writer");
    for item in items.iter() {
        w.push(item).expect("push");
    }
    let (m, _) = w.finish().expect("finish");
    (m, chunks)
}

fn read_snapshot(m: &Manifest, chunks: &[Vec<u8>], digest: bool) -> u64 {
    let r = SnapshotReader::new(m.clone(), chunks).expect("reader");
    let mut r = if digest { r } else { r.without_digest_check() };
    let mut total = 0u64;
    while let Some(item) = r.next_item().expect("read") {
        total += item.len() as u64;
        black_box(item);
    }
    total
}

/// The process's CPU time (all its threads): `CLOCK_PROCESS_CPUTIME_ID`.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and the
    // clock is one every Linux provides; clock_gettime writes only `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One run's times: elapsed and CPU.
#[derive(Clone, Copy, Default)]
struct Times {
    wall: Duration,
    cpu: Duration,
}

/// Runs `f` once and times it.
fn measure(f: &mut dyn FnMut()) -> Times {
    let (wall, cpu) = (Instant::now(), cpu_time());
    f();
    Times {
        wall: wall.elapsed(),
        cpu: cpu_time().saturating_sub(cpu),
    }
}

/// Criterion: the per-chunk costs, on one full 1 MiB chunk of `items`.
fn per_chunk(
    c: &mut Criterion,
    name: &str,
    items: &Items,
    manifest: &Manifest,
    chunks: &[Vec<u8>],
) {
    let raw = &items.bytes[..1 << 20];
    let info = manifest.chunks()[1];
    let chunk = &chunks[1];
    let mut cctx = zstd::bulk::Compressor::new(1).expect("cctx");
    let mut dctx = zstd::bulk::Decompressor::new().expect("dctx");
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(1 << 20));
    let mut g = c.benchmark_group(format!("{name} chunk"));
    g.throughput(Throughput::Bytes(1 << 20));
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("zstd compress 1 MiB", |b| {
        b.iter(|| {
            cctx.compress_to_buffer(black_box(raw), &mut out)
                .expect("compress")
        })
    });
    g.bench_function("zstd decompress 1 MiB", |b| {
        b.iter(|| {
            dctx.decompress_to_buffer(black_box(chunk), &mut out)
                .expect("decompress")
        })
    });
    g.bench_function("verify chunk (length, crc32)", |b| {
        b.iter(|| manifest.verify_chunk(1, black_box(chunk)).expect("verify"))
    });
    g.bench_function("xxh3-128 digest 1 MiB", |b| {
        b.iter(|| StreamDigest::of(black_box(raw)))
    });
    g.bench_function("blake3 1 MiB", |b| b.iter(|| blake3::hash(black_box(raw))));
    g.finish();
    assert_eq!(info.raw_len, 1 << 20);
}

/// The operations of the throughput table, in table order.
const OPS: [&str; 5] = [
    "write",
    "zstd compress",
    "read",
    "read, no digest",
    "zstd decompress",
];

/// The offset in a buffer starting at `buffer` that puts the output half a page away from
/// `source`: the placement the format's own encoder and decoder use, so that neither the
/// baselines nor the format are slowed by 4K aliasing of `memcpy` (see `chunk.rs`).
fn half_page_from(source: &[u8], buffer: &[u8]) -> usize {
    (source.as_ptr() as usize + 2048).wrapping_sub(buffer.as_ptr() as usize) % 4096
}

/// Runs every operation once per round over `items`; returns the times per round and op.
fn rounds(items: &Items, manifest: &Manifest, chunks: &[Vec<u8>]) -> Vec<[Times; 5]> {
    let item_bytes = items.bytes.len();
    let mut cctx = zstd::bulk::Compressor::new(1).expect("cctx");
    let bound = zstd::zstd_safe::compress_bound(item_bytes);
    let mut frame = Vec::with_capacity(bound);
    cctx.compress_to_buffer(&items.bytes, &mut frame)
        .expect("compress");
    // Output buffers written once before timing (no page faults inside a timed run).
    let mut compressed = vec![1u8; bound + 4096];
    let compressed_at = half_page_from(&items.bytes, &compressed);
    let mut dctx = zstd::bulk::Decompressor::new().expect("dctx");
    let mut out = vec![1u8; item_bytes + 4096];
    let out_at = half_page_from(&frame, &out);
    let mut results = Vec::new();
    for _ in 0..ROUNDS {
        let mut ops: [&mut dyn FnMut(); 5] = [
            &mut || drop(black_box(write_snapshot(items, false))),
            &mut || {
                black_box(
                    cctx.compress_to_buffer(&items.bytes, &mut compressed[compressed_at..])
                        .expect("compress"),
                );
            },
            &mut || {
                black_box(read_snapshot(manifest, chunks, true));
            },
            &mut || {
                black_box(read_snapshot(manifest, chunks, false));
            },
            &mut || {
                let len = dctx
                    .decompress_to_buffer(&frame, &mut out[out_at..out_at + item_bytes])
                    .expect("decompress");
                assert_eq!(len, item_bytes);
            },
        ];
        let mut round = [Times::default(); 5];
        for (slot, op) in round.iter_mut().zip(ops.iter_mut()) {
            *slot = measure(*op);
        }
        results.push(round);
    }
    results
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prints one data set's rows of the throughput table.
fn print_rows(name: &str, bytes: usize, results: &[[Times; 5]]) {
    let mbps = |d: Duration| bytes as f64 / d.as_secs_f64().max(1e-9) / 1e6;
    for (i, op) in OPS.iter().enumerate() {
        // Writers compare with plain compression, readers with plain decompression.
        let base = if i < 2 { 1 } else { 4 };
        let speed =
            |f: fn(&Times) -> Duration| median(results.iter().map(|r| mbps(f(&r[i]))).collect());
        // The baseline runs on one thread, so its wall (cpu) time is compared throughout.
        let ratio = |base_time: fn(&Times) -> Duration, f: fn(&Times) -> Duration| {
            let per_round = results
                .iter()
                .map(|r| base_time(&r[base]).as_secs_f64() / f(&r[i]).as_secs_f64().max(1e-9));
            100.0 * median(per_round.collect())
        };
        println!(
            "{name:<15} {op:<20} {:>9.0} {:>9.0} {:>12.0}% {:>11.0}%",
            speed(|t| t.wall),
            speed(|t| t.cpu),
            ratio(|t| t.wall, |t| t.wall),
            ratio(|t| t.cpu, |t| t.cpu),
        );
    }
}

/// Child process: writes (or reads) a 1 GiB snapshot through a file and prints its VmHWM.
fn child(mode: &str, path: &str) {
    let manifest_path = format!("{path}.manifest");
    let raw = match mode {
        "write" => {
            let mut file = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(path).expect("create"),
            );
            let sink = |_: u32, bytes: &[u8]| {
                file.write_all(bytes).map_err(|e| {
                    SnapshotError::store(StoreOp::Sink, SnapshotKey::new(group(), 100), None, e)
                })
            };
            let mut w = SnapshotWriter::new(group(), anchor(), WriterConfig::default(), sink)
                .expect("writer");
            let (mut rng, mut i, mut buf) = (Rng(3), 0, Vec::new());
            while w.raw_bytes() < MEMORY_SNAPSHOT_BYTES {
                buf.clear();
                config_record(&mut rng, i, &mut buf);
                w.push(&buf).expect("push");
                i += 1;
            }
            let (m, _) = w.finish().expect("finish");
            drop(file);
            std::fs::write(&manifest_path, m.encode()).expect("manifest");
            m.raw_bytes()
        }
        _ => {
            let m = Manifest::decode(&std::fs::read(&manifest_path).expect("manifest"))
                .expect("decode");
            let mut offsets = Vec::with_capacity(m.chunks().len());
            let mut at = 0u64;
            for c in m.chunks() {
                offsets.push(at);
                at += u64::from(c.compressed_len);
            }
            let mut file = std::fs::File::open(path).expect("open");
            let chunks = m.chunks().to_vec();
            let source = |c: u32, buf: &mut Vec<u8>| {
                let len = chunks[c as usize].compressed_len as usize;
                buf.resize(len, 0);
                file.seek(SeekFrom::Start(offsets[c as usize]))
                    .and_then(|_| file.read_exact(buf))
                    .map_err(|e| SnapshotError::store(StoreOp::ReadChunk, m.key(), Some(c), e))?;
                Ok(true)
            };
            let raw = m.raw_bytes();
            let mut r = SnapshotReader::new(m.clone(), CopyingSource::new(source)).expect("reader");
            while let Some(item) = r.next_item().expect("read") {
                black_box(item);
            }
            raw
        }
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: unknown");
    println!("{mode} {raw} {}", hwm.trim_start_matches("VmHWM:").trim());
}

fn peak_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snapshot");
    let exe = std::env::current_exe().expect("current exe");
    println!("\npeak memory (VmHWM of a child process), 1 GiB snapshot of config records, default settings");
    for mode in ["write", "read"] {
        let start = Instant::now();
        let out = std::process::Command::new(&exe)
            .env(CHILD_ENV, mode)
            .arg(&path)
            .output()
            .expect("run child");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace();
        let (_, raw, hwm) = (
            fields.next(),
            fields.next().unwrap_or("?"),
            fields.collect::<Vec<_>>().join(" "),
        );
        println!(
            "{mode:<6} {raw} raw bytes in {:.1} s, peak resident {hwm}",
            start.elapsed().as_secs_f64()
        );
        if !out.status.success() {
            println!("  child failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        let path = std::env::args().nth(1).expect("path argument");
        child(&mode, &path);
        return;
    }
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {} (2 cores)", load().trim());
    let mut c = Criterion::default().configure_from_args();
    let mut tables = Vec::new();
    for (name, items) in [
        ("config", Items::config(DATA_BYTES)),
        ("incompressible", Items::incompressible(DATA_BYTES)),
    ] {
        let (manifest, chunks) = write_snapshot(&items, true);
        // The measured read path must accept the snapshot, digest included.
        assert_eq!(
            read_snapshot(&manifest, &chunks, true),
            items.bytes.len() as u64,
            "{name}: read back"
        );
        println!(
            "{name}: {} items, {:.1} MiB of items, {} chunks, compression ratio {:.2}",
            items.ends.len(),
            items.bytes.len() as f64 / (1 << 20) as f64,
            manifest.chunk_count(),
            manifest.raw_bytes() as f64 / manifest.compressed_bytes() as f64,
        );
        per_chunk(&mut c, name, &items, &manifest, &chunks);
        tables.push((name, items.bytes.len(), rounds(&items, &manifest, &chunks)));
    }
    c.final_summary();
    println!("\nthroughput, MB/s of raw item bytes, median of {ROUNDS} rounds; ratio = vs plain zstd, median of per-round ratios");
    println!(
        "{:<15} {:<20} {:>9} {:>9} {:>13} {:>12}",
        "data", "operation", "wall", "cpu", "wall ratio", "cpu ratio"
    );
    for (name, bytes, results) in &tables {
        print_rows(name, *bytes, results);
    }
    println!("load average at end: {} (2 cores)", load().trim());
    peak_memory();
}
