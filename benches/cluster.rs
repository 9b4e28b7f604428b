//! Three in-process nodes on loopback, durable (RocksDB with fsync) in a directory under
//! the target directory: commits per second and latency of 256-byte commands executed on
//! the leader by 1 and by 64 concurrent clients, printed beside the raw fsync rate of the
//! same file system (append 256 bytes + fdatasync, in a loop), so the distance to the
//! disk's limit shows.
//!
//! `cargo bench --bench cluster`; `BENCH_SECS=N` sets each measurement's length (default 5).
//! Prints a markdown table. Not a test: nothing is asserted on timings.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tessera::groups::GroupError;
use tessera::store::server::{Server, ServerConfig};
use tessera::store::KvCommand;

const VALUE_BYTES: usize = 256;

struct Row {
    name: String,
    ops: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Row {
    fn new(name: impl Into<String>, elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort();
        Row {
            name: name.into(),
            ops: latencies.len() as u64,
            elapsed,
            latencies,
        }
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let measure = Duration::from_secs(secs);
    let probe = measure.min(Duration::from_secs(2));
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("target tmp dir");
    let dir = tempfile::Builder::new()
        .prefix("bench-cluster-")
        .tempdir_in(base)
        .expect("bench directory");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The disk's speed drifts on a shared machine: the raw fsync loop runs right before
    // each workload, and each workload is compared with the figure measured next to it.
    let rows = runtime.block_on(async {
        let nodes = cluster(dir.path()).await;
        let leader = leader(&nodes).await;
        let mut rows = Vec::new();
        for clients in [1usize, 64] {
            let fsync = raw_fsync(dir.path(), probe);
            // Warm up (first writes open files, fill caches), then measure.
            run(&nodes[leader], clients, Duration::from_millis(500)).await;
            let (elapsed, latencies) = run(&nodes[leader], clients, measure).await;
            let name = format!(
                "{clients} client{} (on the leader)",
                if clients == 1 { "" } else { "s" }
            );
            rows.push((fsync, Row::new(name, elapsed, latencies)));
        }
        for node in nodes {
            node.stop().await;
        }
        rows
    });

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\nthree nodes on loopback, durable (fsync), {VALUE_BYTES}-byte values, {secs} s per workload\n"
    );
    let _ = writeln!(
        out,
        "| workload | ops/s | p50 | p99 | vs raw fsync just before |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for (fsync, r) in &rows {
        let _ = writeln!(
            out,
            "| raw fsync: append {VALUE_BYTES} B + fdatasync, one at a time | {:.0} | {} | {} | |",
            fsync.rate(),
            fmt(fsync.percentile(0.5)),
            fmt(fsync.percentile(0.99))
        );
        let _ = writeln!(
            out,
            "| {} | {:.0} commits | {} | {} | {:.2}x |",
            r.name,
            r.rate(),
            fmt(r.percentile(0.5)),
            fmt(r.percentile(0.99)),
            r.rate() / fsync.rate()
        );
    }
    let _ = writeln!(
        out,
        "\nEach commit needs the leader's and one follower's fsync (in parallel) and a round trip: \
         one client waits for each, so it stays near or below the raw fsync rate; 64 clients \
         share each fsync (group commit) and may run above it."
    );
}

/// Appends `VALUE_BYTES` and fdatasyncs, in a loop, for `length`.
fn raw_fsync(dir: &Path, length: Duration) -> Row {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fsync-probe"))
        .expect("probe file");
    let record = [0x5au8; VALUE_BYTES];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < length {
        let t = Instant::now();
        file.write_all(&record).expect("write");
        file.sync_data().expect("fdatasync");
        latencies.push(t.elapsed());
    }
    Row::new("raw fsync", started.elapsed(), latencies)
}

async fn cluster(root: &Path) -> Vec<Server> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let config = |i: usize| {
        let mut c = ServerConfig::new(root.join(format!("n{i}")), any, any);
        c.heartbeat = Duration::from_millis(100);
        c.election_timeout = Duration::from_secs(1);
        c
    };
    let first = Server::start(config(0)).await.expect("start n0");
    let seed = first.addr();
    let mut nodes = vec![first];
    for i in 1..3 {
        let mut c = config(i);
        c.peers = vec![seed.into()];
        nodes.push(Server::start(c).await.expect("start node"));
    }
    nodes
}

async fn leader(nodes: &[Server]) -> usize {
    let wait = async {
        loop {
            let leaders: Vec<_> = nodes.iter().map(|n| n.group().leader()).collect();
            if let Some(l) = leaders[0] {
                if leaders.iter().all(|x| *x == Some(l)) {
                    if let Some(i) = nodes.iter().position(|n| n.addr().id == l) {
                        return i;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("a leader within 30 s")
}

/// `clients` tasks execute puts back to back on `node` for `length`; returns the
/// measured time and every command's latency.
async fn run(node: &Server, clients: usize, length: Duration) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let group = node.group().clone();
            tokio::spawn(async move {
                let value = vec![0xa5u8; VALUE_BYTES];
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while started.elapsed() < length {
                    let command = KvCommand::Put {
                        key: format!("c{c}/{i}"),
                        value: value.clone(),
                    };
                    let t = Instant::now();
                    match group.execute(command).await {
                        Ok(_) => latencies.push(t.elapsed()),
                        Err(e @ GroupError::Stopped { .. }) => panic!("group stopped: {e}"),
                        Err(e) => eprintln!("client {c}: {e}"),
                    }
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    (started.elapsed(), all)
}

fn fmt(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
