//! Watch fan-out: one writer and 1,000 watchers of one prefix on one node, on loopback.
//!
//! Run: `cargo bench --profile dev --bench watch` (the dev profile builds RocksDB
//! optimized; tessera's crates at opt-level 1). Knobs: `WATCH_WATCHERS=N` (default 1,000),
//! `WATCH_WRITES=N` (default 2,000), `WATCH_VALUE=N` bytes per value (default 100).
//!
//! What it does:
//! 1. Starts `tessera node` (this package's binary) as a child process, a group of one
//!    (`--bootstrap-expect 1`), QUIC and HTTP on one free 127.0.0.1 port, and writes 100
//!    keys to warm it up, then 200 more from the writer alone (the put round trip without
//!    watchers, for comparison).
//! 2. Opens the watchers, each with the library's [`Client::watch`] on `bench/` from the
//!    current revision (one HTTP/1.1 connection each, all from this process), and waits
//!    until every one got its first progress line (the node has it registered and caught
//!    up). Memory per idle watcher: the node's `VmRSS` (`/proc/PID/status`) two seconds
//!    after that, minus its `VmRSS` before the watchers opened, divided by the watchers.
//! 3. One writer (a thread and runtime of its own, so that the watchers' tasks do not
//!    queue ahead of it) puts `WATCH_WRITES` values, one at a time, through the same node,
//!    over 100 keys; each value starts with the time it was sent (nanoseconds since the bench
//!    began, one monotonic clock for writer and watchers). Every watcher records, for each
//!    event, the time from the write's send to the event's arrival (latency of delivery,
//!    which includes the commit: the put's own round trip is printed beside it).
//!    Events delivered per second: all events received by all watchers, over the time from
//!    the first send to the last arrival.
//!
//! The node, the writer and the 1,000 watchers' parsing share the machine's cores: on a
//! two-core machine the watchers' side costs about as much CPU as the node. Figures are
//! printed, never asserted.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::store::client::{Client, WatchOptions};
use tessera::store::http::WatchLine;
use tessera_testkit::cluster::die_with_parent;
use tessera_testkit::ports::free_port;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/PID/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// A process's user + system CPU seconds (`pid` or `self`).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    match (ticks(14), ticks(15)) {
        (Some(u), Some(s)) => (u + s) as f64 / 100.0,
        _ => f64::NAN,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// The child node, killed when dropped.
struct ChildNode(Child);

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_node(root: &Path, port: u16) -> ChildNode {
    let log = std::fs::File::create(root.join("node.log")).expect("the node's log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("node")
        .arg("--data-dir")
        .arg(root.join("n0"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--http")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--bootstrap-expect")
        .arg("1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("spawning tessera node");
    let stdout = child.stdout.take().expect("the node's stdout");
    std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
    ChildNode(child)
}

/// What one watcher measured: delivery latencies (µs) and its last arrival (ns).
struct Measured {
    latencies: Vec<u32>,
    last_arrival: u128,
}

async fn watcher(
    client: Client,
    writes: usize,
    epoch: Instant,
    ready: Arc<AtomicUsize>,
) -> Result<Measured, String> {
    let mut watch = client.watch("bench/", WatchOptions::default());
    match watch.next().await {
        Ok(WatchLine::Progress { .. }) => {}
        other => return Err(format!("a watcher's first line: {other:?}")),
    }
    ready.fetch_add(1, Ordering::SeqCst);
    let mut latencies = Vec::with_capacity(writes);
    let mut last_arrival = 0;
    while latencies.len() < writes {
        match watch.next().await.map_err(|e| e.to_string())? {
            WatchLine::Put { value, .. } => {
                let now = epoch.elapsed().as_nanos();
                let sent: u128 = value
                    .as_deref()
                    .and_then(|v| std::str::from_utf8(v.get(..20)?).ok())
                    .and_then(|s| s.parse().ok())
                    .ok_or("a value without its send time")?;
                latencies.push(u32::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u32::MAX));
                last_arrival = now;
            }
            WatchLine::Closed { reason, .. } => return Err(format!("closed: {reason}")),
            _ => {}
        }
    }
    Ok(Measured {
        latencies,
        last_arrival,
    })
}

/// `writes` puts, one at a time, on a runtime of its own (a thread of the writer's, so
/// that the watchers' tasks do not delay it); each value starts with its send time since
/// `epoch` when given. Round trips in µs.
fn put_loop(endpoint: &str, writes: usize, value_bytes: usize, epoch: Option<Instant>) -> Vec<u32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the writer's runtime");
    runtime.block_on(async {
        let client = Client::with_timeout(endpoint, Duration::from_secs(10)).expect("endpoint");
        let mut puts = Vec::with_capacity(writes);
        for n in 0..writes {
            let sent = epoch.map_or(0, |e| e.elapsed().as_nanos());
            let mut value = format!("{sent:020} ").into_bytes();
            value.resize(value_bytes, b'v');
            let t = Instant::now();
            client
                .put(&format!("bench/{:02}", n % 100), value)
                .await
                .expect("a put");
            puts.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
        puts
    })
}

fn main() {
    let watchers = knob("WATCH_WATCHERS", 1_000);
    let writes = knob("WATCH_WRITES", 2_000);
    let value_bytes = knob("WATCH_VALUE", 100).max(21);
    let root = tempfile::Builder::new()
        .prefix("tessera-watch-bench-")
        .tempdir()
        .expect("a temporary directory");
    let port = free_port(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("a free port");
    let node = spawn_node(root.path(), port);
    let pid = node.0.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = Client::with_timeout(&endpoint, Duration::from_secs(10)).expect("endpoint");
        let started = Instant::now();
        loop {
            if let Ok(s) = client.status().await {
                if s.leader.is_some() {
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no leader within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for i in 0..100 {
            client
                .put(&format!("bench/{i:02}"), vec![b'w'; value_bytes])
                .await
                .expect("warm-up put");
        }
        let baseline = {
            let endpoint = endpoint.clone();
            let writer = std::thread::spawn(move || put_loop(&endpoint, 200, value_bytes, None));
            let mut puts = tokio::task::spawn_blocking(move || writer.join().expect("the writer"))
                .await
                .expect("the writer's thread");
            puts.sort_unstable();
            puts
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_before = proc_kib(pid, "VmRSS");

        let epoch = Instant::now();
        let ready = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..watchers)
            .map(|_| tokio::spawn(watcher(client.clone(), writes, epoch, ready.clone())))
            .collect();
        let opening = Instant::now();
        while ready.load(Ordering::SeqCst) < watchers {
            assert!(
                opening.elapsed() < Duration::from_secs(120),
                "{} of {watchers} watchers open after 120 s",
                ready.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let open_secs = opening.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_idle = proc_kib(pid, "VmRSS");
        let open_on_node = client
            .status()
            .await
            .ok()
            .and_then(|s| s.store)
            .map_or(0, |s| s.watchers);

        let cpu_before = cpu_secs(&pid.to_string());
        let bench_cpu_before = cpu_secs("self");
        let first_send = epoch.elapsed().as_nanos();
        let writer = {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || put_loop(&endpoint, writes, value_bytes, Some(epoch)))
        };
        let mut puts = tokio::task::spawn_blocking(move || writer.join().expect("the writer"))
            .await
            .expect("the writer's thread");
        let write_secs = (epoch.elapsed().as_nanos() - first_send) as f64 / 1e9;
        let mut latencies = Vec::with_capacity(watchers * writes);
        let mut last_arrival = 0;
        for t in tasks {
            let m = tokio::time::timeout(Duration::from_secs(300), t)
                .await
                .expect("watchers done within 300 s")
                .expect("a watcher task")
                .expect("a watcher");
            latencies.extend(m.latencies);
            last_arrival = last_arrival.max(m.last_arrival);
        }
        let cpu = cpu_secs(&pid.to_string()) - cpu_before;
        let bench_cpu = cpu_secs("self") - bench_cpu_before;
        let deliver_secs = (last_arrival - first_send) as f64 / 1e9;
        let hwm = proc_kib(pid, "VmHWM");
        latencies.sort_unstable();
        puts.sort_unstable();

        println!("watch fan-out: {watchers} watchers, 1 writer, {writes} puts of {value_bytes} B, one node (dev profile)");
        println!("| figure | value |");
        println!("|---|---:|");
        println!("| watchers open (node's count) | {open_on_node} (opened in {open_secs:.1} s) |");
        println!(
            "| put round trip p50 / p99, no watcher | {:.2} / {:.2} ms |",
            percentile(&baseline, 0.5),
            percentile(&baseline, 0.99)
        );
        println!(
            "| put round trip p50 / p99, {watchers} watchers | {:.2} / {:.2} ms |",
            percentile(&puts, 0.5),
            percentile(&puts, 0.99)
        );
        println!("| writes/s (one writer, one at a time) | {:.0} |", writes as f64 / write_secs);
        println!(
            "| delivery latency from send p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
        println!(
            "| events delivered | {} in {deliver_secs:.2} s = {:.0}/s |",
            latencies.len(),
            latencies.len() as f64 / deliver_secs
        );
        println!("| CPU during the load: node / bench (writer and watchers) | {cpu:.1} s / {bench_cpu:.1} s |");
        println!(
            "| node VmRSS before / with idle watchers / peak | {:.1} / {:.1} / {:.1} MiB |",
            rss_before as f64 / 1024.0,
            rss_idle as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        println!(
            "| memory per idle watcher (node side) | {:.1} KiB |",
            rss_idle.saturating_sub(rss_before) as f64 / watchers as f64
        );
    });
    drop(node);
}
