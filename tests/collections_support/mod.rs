//! Helpers shared by the collection tests (`tests/collections*.rs`): loopback nodes with
//! their own data directories, restarts on the same port, bounded writes and waits.
#![allow(dead_code)]

use crate::common::{bind_loopback, bounded, loopback_consensus};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tessera::collections::{CollectionConfig, Error, Version, When};
use tessera::groups::snapshot::{SnapshotConfig, SnapshotStats};
use tessera::network::{Network, PeerAddr};

/// A write, bounded and expected to succeed.
pub async fn ok<T, F: Future<Output = Result<T, Error>>>(what: &str, fut: F) -> T {
    match bounded(what, 20, fut).await {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Fast consensus for three writers on loopback.
pub fn config() -> CollectionConfig {
    CollectionConfig::default().with_consensus(loopback_consensus(Duration::from_secs(2)))
}

/// Small snapshot intervals, so a few hundred writes cut snapshots and prune the log.
pub fn snapshotting() -> CollectionConfig {
    config().with_sync(
        SnapshotConfig::default()
            .every_entries(200)
            .keep_tail(50)
            .chunk_size(4096),
    )
}

/// One node: its network and where it lives.
pub struct Node {
    pub dir: PathBuf,
    pub network: Network,
    pub addr: PeerAddr,
}

/// A node of the collection tests' network in `dir`, on `port` (0: any free one).
pub async fn node(dir: &Path, port: u16, peers: &[PeerAddr]) -> Node {
    let network = bind_loopback("tessera-collections-test", dir, port, peers).await;
    let addr = network.local_addr();
    Node {
        dir: dir.to_path_buf(),
        network,
        addr,
    }
}

/// `n` nodes, the others bootstrapping from the first.
pub async fn nodes(root: &Path, n: usize) -> Vec<Node> {
    let first = node(&root.join("n0"), 0, &[]).await;
    let seed = [first.addr];
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(node(&root.join(format!("n{i}")), 0, &seed).await);
    }
    nodes
}

/// Three nodes, the second and third bootstrapping from the first.
pub async fn three_nodes(root: &Path) -> Vec<Node> {
    nodes(root, 3).await
}

/// Stops a node's network; returns where to restart it.
pub async fn stop(node: Node) -> (PathBuf, PeerAddr) {
    node.network.shutdown().await;
    (node.dir, node.addr)
}

/// Restarts every node from its data directory, on its old port.
pub async fn restart(saved: Vec<(PathBuf, PeerAddr)>) -> Vec<Node> {
    let addrs: Vec<PeerAddr> = saved.iter().map(|(_, a)| *a).collect();
    let mut nodes = Vec::new();
    for (dir, addr) in saved {
        let n = node(&dir, addr.addr.port(), &addrs).await;
        assert_eq!(n.addr.id, addr.id, "identity survives the restart");
        nodes.push(n);
    }
    nodes
}

/// Runs writes concurrently (at most 64 at a time); the highest version they resolved to.
pub async fn all<F>(what: &str, writes: Vec<F>) -> Version
where
    F: Future<Output = Result<Version, Error>> + Send + 'static,
{
    let mut last = Version::ZERO;
    let mut running = tokio::task::JoinSet::new();
    let mut writes = writes.into_iter();
    loop {
        while running.len() < 64 {
            match writes.next() {
                Some(w) => {
                    running.spawn(w);
                }
                None => break,
            }
        }
        let Some(done) = bounded(what, 30, running.join_next()).await else {
            return last;
        };
        match done.expect("write task") {
            Ok(v) => last = last.max(v),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Every `When` comes online.
pub async fn online(what: &str, whens: &[&When]) {
    for when in whens {
        ok(what, when.online()).await;
    }
}

/// Every `When` reaches `version`.
pub async fn reach(what: &str, version: impl Into<Version>, whens: &[&When]) {
    let version = version.into();
    for when in whens {
        ok(what, when.reaches(version)).await;
    }
}

/// A snapshot counter's value.
pub fn stat(
    stats: &SnapshotStats,
    counter: fn(&SnapshotStats) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    SnapshotStats::get(counter(stats))
}
