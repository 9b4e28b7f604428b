//! Replicated collections on three loopback nodes with their own data directories: every
//! collection's operations replicate (a write on one node is visible on the others once
//! they reach its version); every collection's state survives a restart of every node
//! (restored from the node's newest local snapshot plus the log after it, or from the
//! whole log when no snapshot was cut); and a reader that joins after every collection's
//! log was pruned bootstraps each of them from a snapshot, then follows new writes.
//!
//! Every wait is bounded; no assertion depends on timing.

mod common;
use common::{bind_loopback, bounded, loopback_consensus};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tessera::collections::Vec as ReplicatedVec;
use tessera::collections::{
    Cell, CellReader, CellWriter, CollectionConfig, Error, Map, MapReader, MapWriter, Once,
    OnceReader, OnceWriter, PriorityQueue, PriorityQueueReader, PriorityQueueWriter, Set,
    SetReader, SetWriter, VecReader, VecWriter, Version, When, READER, WRITER,
};
use tessera::groups::snapshot::{SnapshotConfig, SnapshotStats};
use tessera::groups::Index;
use tessera::network::{Network, PeerAddr};

/// A write, bounded and expected to succeed.
async fn ok<T, F: Future<Output = Result<T, Error>>>(what: &str, fut: F) -> T {
    match bounded(what, 20, fut).await {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn config() -> CollectionConfig {
    CollectionConfig::default().with_consensus(loopback_consensus(Duration::from_secs(2)))
}

/// Small snapshot intervals, so a few hundred writes cut snapshots and prune the log.
fn snapshotting() -> CollectionConfig {
    config().with_sync(
        SnapshotConfig::default()
            .every_entries(200)
            .keep_tail(50)
            .chunk_size(4096),
    )
}

struct Node {
    dir: PathBuf,
    network: Network,
    addr: PeerAddr,
}

async fn node(dir: &Path, port: u16, peers: &[PeerAddr]) -> Node {
    let network = bind_loopback("tessera-collections-test", dir, port, peers).await;
    let addr = network.local_addr();
    Node {
        dir: dir.to_path_buf(),
        network,
        addr,
    }
}

/// Three nodes, the second and third bootstrapping from the first.
async fn three_nodes(root: &Path) -> Vec<Node> {
    let first = node(&root.join("n0"), 0, &[]).await;
    let seed = [first.addr];
    let mut nodes = vec![first];
    for i in 1..3 {
        nodes.push(node(&root.join(format!("n{i}")), 0, &seed).await);
    }
    nodes
}

/// Stops a node's network; returns where to restart it.
async fn stop(node: Node) -> (PathBuf, PeerAddr) {
    node.network.shutdown().await;
    (node.dir, node.addr)
}

/// Restarts every node from its data directory, on its old port.
async fn restart(saved: Vec<(PathBuf, PeerAddr)>) -> Vec<Node> {
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
async fn all<F>(what: &str, writes: Vec<F>) -> Version
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

async fn online(what: &str, whens: &[&When]) {
    for when in whens {
        ok(what, when.online()).await;
    }
}

async fn reach(what: &str, version: Version, whens: &[&When]) {
    for when in whens {
        ok(what, when.reaches(version)).await;
    }
}

fn stat(
    stats: &SnapshotStats,
    counter: fn(&SnapshotStats) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    SnapshotStats::get(counter(stats))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_collection_replicates_its_operations_across_three_writers() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = three_nodes(root.path()).await;
    let cells: Vec<CellWriter<String>> = nodes
        .iter()
        .map(|n| CellWriter::writer_with_config(&n.network, "cell", config()).expect("cell"))
        .collect();
    let maps: Vec<MapWriter<String, u64>> = nodes
        .iter()
        .map(|n| MapWriter::writer_with_config(&n.network, "map", config()).expect("map"))
        .collect();
    let vecs: Vec<VecWriter<u32>> = nodes
        .iter()
        .map(|n| VecWriter::writer_with_config(&n.network, "vec", config()).expect("vec"))
        .collect();
    let sets: Vec<SetWriter<String>> = nodes
        .iter()
        .map(|n| SetWriter::writer_with_config(&n.network, "set", config()).expect("set"))
        .collect();
    let onces: Vec<OnceWriter<String>> = nodes
        .iter()
        .map(|n| OnceWriter::writer_with_config(&n.network, "once", config()).expect("once"))
        .collect();
    let queues: Vec<PriorityQueueWriter<u32, String>> = nodes
        .iter()
        .map(|n| {
            PriorityQueueWriter::writer_with_config(&n.network, "queue", 3, config())
                .expect("queue")
        })
        .collect();

    // Different collections never share a group, even under one store id.
    let same_name =
        MapWriter::<String, String>::writer_with_config(&nodes[0].network, "map", config())
            .expect("a map of other types is another collection");
    assert_ne!(same_name.group_id(), maps[0].group_id());
    assert_ne!(cells[0].group_id(), maps[0].group_id());
    assert_eq!(cells[0].group_id(), cells[1].group_id());
    same_name.shutdown().await;

    online(
        "cells online",
        &cells.iter().map(|c| c.when()).collect::<Vec<_>>(),
    )
    .await;
    online(
        "maps online",
        &maps.iter().map(|c| c.when()).collect::<Vec<_>>(),
    )
    .await;
    online(
        "vecs online",
        &vecs.iter().map(|c| c.when()).collect::<Vec<_>>(),
    )
    .await;
    online(
        "sets online",
        &sets.iter().map(|c| c.when()).collect::<Vec<_>>(),
    )
    .await;
    online(
        "onces online",
        &onces.iter().map(|c| c.when()).collect::<Vec<_>>(),
    )
    .await;
    online(
        "queues online",
        &queues.iter().map(|c| c.when()).collect::<Vec<_>>(),
    )
    .await;

    // ---- Cell
    let whens: Vec<&When> = cells.iter().map(|c| c.when()).collect();
    let v = ok("cell write", cells[0].write("one".into())).await;
    reach("cell write visible", v, &whens).await;
    for c in &cells {
        assert_eq!(c.read().as_deref(), Some("one"));
        assert!(c.is_some() && c.version() >= v);
    }
    let failed = ok(
        "cell cas (stale)",
        cells[1].compare_exchange(Some("zero".into()), Some("two".into())),
    )
    .await;
    assert!(!failed.exchanged);
    assert_eq!(failed.previous.as_deref(), Some("one"));
    let swapped = ok(
        "cell cas",
        cells[2].compare_exchange(Some("one".into()), Some("two".into())),
    )
    .await;
    assert!(swapped.exchanged && swapped.version > failed.version);
    reach("cell cas visible", swapped.version, &whens).await;
    for c in &cells {
        assert_eq!(c.get().as_deref(), Some("two"));
    }
    let v = ok("cell clear", cells[1].clear()).await;
    reach("cell clear visible", v, &whens).await;
    assert!(cells.iter().all(|c| c.is_none() && c.is_empty()));

    // ---- Map
    let whens: Vec<&When> = maps.iter().map(|m| m.when()).collect();
    ok("map insert", maps[0].insert("b".into(), 2)).await;
    ok(
        "map extend",
        maps[1].extend([
            ("a".to_string(), 1),
            ("c".to_string(), 3),
            ("d".to_string(), 4),
        ]),
    )
    .await;
    ok("map remove", maps[2].remove("d".into())).await;
    let failed = ok(
        "map cas (stale)",
        maps[0].compare_exchange("a".into(), Some(9), Some(10)),
    )
    .await;
    assert!(!failed.exchanged && failed.previous == Some(1));
    let absent = ok(
        "map cas (insert if absent)",
        maps[1].compare_exchange("e".into(), None, Some(5)),
    )
    .await;
    assert!(absent.exchanged && absent.previous.is_none());
    let swapped = ok(
        "map cas",
        maps[2].compare_exchange("a".into(), Some(1), Some(11)),
    )
    .await;
    assert!(swapped.exchanged);
    reach("map writes visible", swapped.version, &whens).await;
    let want = vec![
        ("a".to_string(), 11),
        ("b".to_string(), 2),
        ("c".to_string(), 3),
        ("e".to_string(), 5),
    ];
    for m in &maps {
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            want,
            "same entries, in key order"
        );
        assert_eq!(m.len(), 4);
        assert_eq!(m.get(&"c".to_string()), Some(3));
        assert!(!m.contains_key(&"d".to_string()));
    }
    let v = ok("map clear", maps[0].clear()).await;
    reach("map clear visible", v, &whens).await;
    assert!(maps.iter().all(|m| m.is_empty()));

    // ---- Vec (out-of-range operations are no-ops everywhere)
    let whens: Vec<&When> = vecs.iter().map(|v| v.when()).collect();
    ok("vec push", vecs[0].push(1)).await;
    ok("vec push", vecs[1].push(2)).await;
    ok("vec extend", vecs[2].extend([3, 4, 5])).await;
    ok("vec insert", vecs[0].insert(0, 0)).await; // 0 1 2 3 4 5
    ok("vec insert out of range", vecs[1].insert(99, 9)).await;
    let gone = ok("vec remove out of range", vecs[2].remove(99)).await;
    assert_eq!(gone.value, None);
    let removed = ok("vec remove", vecs[0].remove(1)).await; // 0 2 3 4 5
    assert_eq!(removed.value, Some(1));
    ok("vec swap", vecs[1].swap(0, 4)).await; // 5 2 3 4 0
    ok("vec swap out of range", vecs[2].swap(0, 5)).await;
    ok("vec truncate no-op", vecs[0].truncate(10)).await;
    let popped = ok("vec pop", vecs[1].pop()).await; // 5 2 3 4
    assert_eq!(popped.value, Some(0));
    let v = ok("vec truncate", vecs[2].truncate(3)).await; // 5 2 3
    reach("vec writes visible", v, &whens).await;
    for x in &vecs {
        assert_eq!(x.iter().collect::<Vec<_>>(), vec![5, 2, 3]);
        assert_eq!((x.get(0), x.get(3), x.len()), (Some(5), None, 3));
    }

    // ---- Set
    let whens: Vec<&When> = sets.iter().map(|s| s.when()).collect();
    ok("set insert", sets[0].insert("b".into())).await;
    ok("set insert", sets[1].insert("a".into())).await;
    ok("set insert again", sets[2].insert("a".into())).await;
    ok("set insert", sets[0].insert("c".into())).await;
    let v = ok("set remove", sets[1].remove("b".into())).await;
    reach("set writes visible", v, &whens).await;
    for s in &sets {
        assert_eq!(s.iter().collect::<Vec<_>>(), vec!["a", "c"]);
        assert!(s.contains(&"a".to_string()) && !s.contains(&"b".to_string()));
        assert_eq!(s.len(), 2);
    }

    // ---- Once: the first write wins everywhere
    let whens: Vec<&When> = onces.iter().map(|o| o.when()).collect();
    let waiting = {
        let reader = &onces[2];
        async move { reader.await_value().await }
    };
    let first = ok("once write", onces[0].write("first".into())).await;
    let second = ok("once second write", onces[1].set("second".into())).await;
    assert!(second > first, "the ignored write still commits");
    assert_eq!(ok("once await value", waiting).await, "first");
    reach("once writes visible", second, &whens).await;
    for o in &onces {
        assert_eq!(o.get().as_deref(), Some("first"));
    }

    // ---- PriorityQueue: capacity 3
    let whens: Vec<&When> = queues.iter().map(|q| q.when()).collect();
    let a = ok("queue push", queues[0].push(5, "a".into())).await;
    let b = ok("queue push", queues[1].push(3, "b".into())).await;
    let c = ok("queue push", queues[2].push(9, "c".into())).await;
    assert!(a.evicted.is_none() && b.evicted.is_none() && c.evicted.is_none());
    assert!(a.id < b.id && b.id < c.id, "ids follow push order");
    let d = ok(
        "queue push into a full queue",
        queues[0].push(7, "d".into()),
    )
    .await;
    assert_eq!(
        d.evicted.map(|e| e.id),
        Some(b.id),
        "the minimum is dropped"
    );
    let e = ok("queue push below everything", queues[1].push(1, "e".into())).await;
    assert_eq!(
        e.evicted.map(|x| x.id),
        Some(e.id),
        "the new minimum drops itself"
    );
    ok("queue update", queues[2].update_priority(a.id, 8)).await; // d 7, a 8, c 9
    let v = ok("queue push", queues[0].push(6, "f".into())).await; // evicts nothing? full: drops f
    assert_eq!(v.evicted.map(|x| x.id), Some(v.id));
    let max = ok("queue pop max", queues[1].pop_max()).await;
    assert_eq!(
        max.value.map(|x| (x.priority, x.value)),
        Some((9, "c".to_string()))
    );
    ok("queue push", queues[2].push(2, "g".into())).await; // g 2, d 7, a 8
    let v = ok("queue remove range", queues[0].remove_range(6..8)).await; // g 2, a 8
    reach("queue writes visible", v, &whens).await;
    for q in &queues {
        let order: Vec<(u32, String)> = q.iter().map(|x| (x.priority, x.value)).collect();
        assert_eq!(order, vec![(2, "g".to_string()), (8, "a".to_string())]);
        assert_eq!(q.peek_min().map(|x| x.priority), Some(2));
        assert_eq!(q.peek_max().map(|x| x.id), Some(a.id));
        assert!(q.contains(a.id) && !q.contains(b.id));
        assert_eq!(q.capacity(), 3);
    }
    let min = ok("queue pop min", queues[2].pop_min()).await;
    assert_eq!(min.value.map(|x| x.value).as_deref(), Some("g"));
    let max = ok("queue pop max", queues[0].pop_max()).await;
    assert_eq!(max.value.map(|x| x.value).as_deref(), Some("a"));
    let none = ok("queue pop empty", queues[1].pop_min()).await;
    assert!(none.value.is_none());
    reach("queue pops visible", none.version, &whens).await;
    assert!(queues.iter().all(|q| q.is_empty()));

    // `updated` resolves on the next change, not on writes that change nothing.
    let v = {
        let updated = cells[2].when().updated();
        tokio::pin!(updated);
        // Poll it once, so it has observed the current state before the write.
        tokio::select! {
            biased;
            r = &mut updated => panic!("updated before any write: {r:?}"),
            _ = tokio::task::yield_now() => {}
        }
        // A compare-exchange that does not match changes nothing: still not updated once
        // node 2 has applied it.
        let cas = ok(
            "cell cas (stale)",
            cells[0].compare_exchange(Some("nope".into()), None),
        )
        .await;
        assert!(!cas.exchanged);
        ok("stale cas applied", cells[2].when().reaches(cas.version)).await;
        tokio::select! {
            biased;
            r = &mut updated => panic!("updated by a write that changed nothing: {r:?}"),
            _ = tokio::task::yield_now() => {}
        }
        let v = ok("cell write", cells[0].write("three".into())).await;
        ok("updated", updated).await;
        v
    };
    reach("cell write visible", v, &whens_of(&cells)).await;

    for x in cells {
        x.shutdown().await;
    }
    for x in maps {
        x.shutdown().await;
    }
    for x in vecs {
        x.shutdown().await;
    }
    for x in sets {
        x.shutdown().await;
    }
    for x in onces {
        x.shutdown().await;
    }
    for x in queues {
        x.shutdown().await;
    }
    for n in nodes {
        stop(n).await;
    }
}

fn whens_of(cells: &[CellWriter<String>]) -> Vec<&When> {
    cells.iter().map(|c| c.when()).collect()
}

/// Writes to each collection in the restart and late-reader tests: past the first snapshot
/// marker of [`snapshotting`] (every 200 entries), so every collection cuts a snapshot and
/// prunes its log to the snapshot's anchor minus 50.
const WRITES: u64 = 300;

/// The capacity of the queues in those tests: most of their pushes evict.
const CAPACITY: u64 = 100;

/// The collections of [`Collections`], in the order of [`Versions`].
const KINDS: [&str; 6] = ["cell", "map", "vec", "set", "once", "queue"];

/// A version per collection, in [`KINDS`] order.
type Versions = [Version; 6];

/// One collection of each type (opened with [`snapshotting`]) on each of some nodes.
struct Collections<const W: bool> {
    cells: Vec<Cell<String, W>>,
    maps: Vec<Map<String, u64, W>>,
    vecs: Vec<ReplicatedVec<u32, W>>,
    sets: Vec<Set<String, W>>,
    onces: Vec<Once<String, W>>,
    queues: Vec<PriorityQueue<u64, String, W>>,
}

/// Everything one node's [`Collections`] hold.
#[derive(Clone, Debug, PartialEq)]
struct Contents {
    cell: Option<String>,
    map: Vec<(String, u64)>,
    vec: Vec<u32>,
    set: Vec<String>,
    once: Option<String>,
    /// (id, priority, value), in priority order.
    queue: Vec<(u64, u64, String)>,
}

/// The store id of the collection `kind` of the test `name`.
fn store(name: &str, kind: &str) -> String {
    format!("{name}-{kind}")
}

/// Opens the collection `kind` of the test `name` on each of `nets`, with `open`.
fn on_each<T, E: std::fmt::Debug>(
    nets: &[&Network],
    name: &str,
    kind: &str,
    open: impl Fn(&Network, String) -> Result<T, E>,
) -> Vec<T> {
    nets.iter()
        .map(|n| open(n, store(name, kind)))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("open {kind}: {e:?}"))
}

impl Collections<WRITER> {
    /// Writers on every node.
    fn writers(nodes: &[Node], name: &str) -> Self {
        let nets: Vec<&Network> = nodes.iter().map(|n| &n.network).collect();
        Collections {
            cells: on_each(&nets, name, "cell", |n, id| {
                CellWriter::writer_with_config(n, id, snapshotting())
            }),
            maps: on_each(&nets, name, "map", |n, id| {
                MapWriter::writer_with_config(n, id, snapshotting())
            }),
            vecs: on_each(&nets, name, "vec", |n, id| {
                VecWriter::writer_with_config(n, id, snapshotting())
            }),
            sets: on_each(&nets, name, "set", |n, id| {
                SetWriter::writer_with_config(n, id, snapshotting())
            }),
            onces: on_each(&nets, name, "once", |n, id| {
                OnceWriter::writer_with_config(n, id, snapshotting())
            }),
            queues: on_each(&nets, name, "queue", |n, id| {
                PriorityQueueWriter::writer_with_config(n, id, CAPACITY, snapshotting())
            }),
        }
    }
}

impl Collections<READER> {
    /// A reader of each collection on `node`.
    fn reader(node: &Node, name: &str) -> Self {
        let nets = [&node.network];
        Collections {
            cells: on_each(&nets, name, "cell", |n, id| {
                CellReader::reader_with_config(n, id, snapshotting())
            }),
            maps: on_each(&nets, name, "map", |n, id| {
                MapReader::reader_with_config(n, id, snapshotting())
            }),
            vecs: on_each(&nets, name, "vec", |n, id| {
                VecReader::reader_with_config(n, id, snapshotting())
            }),
            sets: on_each(&nets, name, "set", |n, id| {
                SetReader::reader_with_config(n, id, snapshotting())
            }),
            onces: on_each(&nets, name, "once", |n, id| {
                OnceReader::reader_with_config(n, id, snapshotting())
            }),
            queues: on_each(&nets, name, "queue", |n, id| {
                PriorityQueueReader::reader_with_config(n, id, CAPACITY, snapshotting())
            }),
        }
    }
}

impl<const W: bool> Collections<W> {
    /// What the `i`th node's collections hold.
    fn contents(&self, i: usize) -> Contents {
        Contents {
            cell: self.cells[i].get(),
            map: self.maps[i].iter().collect(),
            vec: self.vecs[i].iter().collect(),
            set: self.sets[i].iter().collect(),
            once: self.onces[i].get(),
            queue: self.queues[i]
                .iter()
                .map(|e| (e.id.0, e.priority, e.value))
                .collect(),
        }
    }

    /// Each collection's `When` on every node, in [`KINDS`] order.
    fn whens(&self) -> [Vec<&When>; 6] {
        [
            self.cells.iter().map(|x| x.when()).collect(),
            self.maps.iter().map(|x| x.when()).collect(),
            self.vecs.iter().map(|x| x.when()).collect(),
            self.sets.iter().map(|x| x.when()).collect(),
            self.onces.iter().map(|x| x.when()).collect(),
            self.queues.iter().map(|x| x.when()).collect(),
        ]
    }

    /// Each collection's snapshot counters on every node, in [`KINDS`] order.
    fn stats(&self) -> [Vec<Arc<SnapshotStats>>; 6] {
        [
            self.cells.iter().map(|x| x.snapshot_stats()).collect(),
            self.maps.iter().map(|x| x.snapshot_stats()).collect(),
            self.vecs.iter().map(|x| x.snapshot_stats()).collect(),
            self.sets.iter().map(|x| x.snapshot_stats()).collect(),
            self.onces.iter().map(|x| x.snapshot_stats()).collect(),
            self.queues.iter().map(|x| x.snapshot_stats()).collect(),
        ]
    }

    /// The first index of each collection's log on every node.
    fn log_starts(&self) -> Vec<Index> {
        let mut starts: Vec<Index> = Vec::new();
        starts.extend(self.cells.iter().map(|x| x.status().log_start));
        starts.extend(self.maps.iter().map(|x| x.status().log_start));
        starts.extend(self.vecs.iter().map(|x| x.status().log_start));
        starts.extend(self.sets.iter().map(|x| x.status().log_start));
        starts.extend(self.onces.iter().map(|x| x.status().log_start));
        starts.extend(self.queues.iter().map(|x| x.status().log_start));
        starts
    }

    async fn online(&self, what: &str) {
        for (kind, whens) in KINDS.iter().zip(self.whens()) {
            online(&format!("{what}: {kind}"), &whens).await;
        }
    }

    /// Every collection on every node reaches its version.
    async fn reach(&self, what: &str, versions: Versions) {
        for ((kind, whens), version) in KINDS.iter().zip(self.whens()).zip(versions) {
            reach(&format!("{what}: {kind}"), version, &whens).await;
        }
    }

    /// Waits until every node cut a snapshot of every collection.
    async fn cut(&self) {
        let stats = self.stats();
        bounded("every node cut a snapshot of every collection", 30, async {
            while !stats
                .iter()
                .flatten()
                .all(|s| stat(s, |s| &s.snapshots_cut) >= 1)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Waits until every node pruned the log of every collection past its first 100
    /// entries: a node that joins now cannot replay the log from the start.
    async fn pruned(&self) {
        bounded("every node pruned every collection's log", 30, async {
            while !self.log_starts().iter().all(|start| *start > Index(100)) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    async fn shutdown(self) {
        for x in self.cells {
            x.shutdown().await;
        }
        for x in self.maps {
            x.shutdown().await;
        }
        for x in self.vecs {
            x.shutdown().await;
        }
        for x in self.sets {
            x.shutdown().await;
        }
        for x in self.onces {
            x.shutdown().await;
        }
        for x in self.queues {
            x.shutdown().await;
        }
    }
}

/// [`WRITES`] writes to each collection, round robin over the writers and concurrently,
/// then a few more operations of each type in order; the version of each collection's
/// last write.
async fn fill(c: &Collections<WRITER>) -> Versions {
    let on = |i: u64| (i % c.cells.len() as u64) as usize;

    // Cell: overwrites, then a compare-exchange from the last one.
    let writes = (0..WRITES)
        .map(|i| c.cells[on(i)].write(format!("c{i}")))
        .collect();
    all("cell writes", writes).await;
    ok("cell write", c.cells[0].write("last".into())).await;
    let swapped = ok(
        "cell cas",
        c.cells[1].compare_exchange(Some("last".into()), Some("kept".into())),
    )
    .await;
    assert!(swapped.exchanged);

    // Map: inserts, a remove, an extend and a compare-exchange.
    let writes = (0..WRITES)
        .map(|i| c.maps[on(i)].insert(format!("k{i:03}"), i))
        .collect();
    all("map inserts", writes).await;
    ok("map remove", c.maps[1].remove("k000".into())).await;
    ok(
        "map extend",
        c.maps[2].extend([("x".to_string(), 1), ("y".to_string(), 2)]),
    )
    .await;
    let map = ok(
        "map cas",
        c.maps[0].compare_exchange("k001".into(), Some(1), Some(1001)),
    )
    .await;
    assert!(map.exchanged);

    // Vec: pushes (in whatever order they commit), then every other operation.
    let writes = (0..WRITES).map(|i| c.vecs[on(i)].push(i as u32)).collect();
    all("vec pushes", writes).await;
    ok("vec extend", c.vecs[1].extend([1000, 1001])).await;
    ok("vec swap", c.vecs[2].swap(0, 301)).await;
    let removed = ok("vec remove", c.vecs[0].remove(1)).await;
    assert!(removed.value.is_some());
    ok("vec insert", c.vecs[1].insert(0, 2000)).await;
    let popped = ok("vec pop", c.vecs[2].pop()).await;
    assert!(popped.value.is_some());

    // Set: inserts (50 of them already present), an extend and a remove.
    let writes = (0..WRITES)
        .map(|i| c.sets[on(i)].insert(format!("s{:03}", i % 250)))
        .collect();
    all("set inserts", writes).await;
    ok(
        "set extend",
        c.sets[1].extend(["x".to_string(), "y".into()]),
    )
    .await;
    let set = ok("set remove", c.sets[2].remove("s000".into())).await;

    // Once: the first write, then writes that commit and change nothing.
    ok("once write", c.onces[0].write("first".into())).await;
    let writes = (1..WRITES)
        .map(|i| c.onces[on(i)].set(format!("o{i}")))
        .collect();
    let once = all("ignored once writes", writes).await;

    // Queue: pushes with distinct priorities (the full queue drops its minimum), then
    // pops, a range removal and a priority update.
    let writes = (0..WRITES)
        .map(|i| {
            let pushed = c.queues[on(i)].push((i * 37) % 1000, format!("q{i}"));
            async move { pushed.await.map(|p| p.version) }
        })
        .collect();
    all("queue pushes", writes).await;
    let max = ok("queue pop max", c.queues[1].pop_max()).await;
    assert!(max.value.is_some());
    let min = ok("queue pop min", c.queues[2].pop_min()).await;
    assert!(min.value.is_some());
    ok("queue remove range", c.queues[0].remove_range(..800)).await;
    let pushed = ok("queue push", c.queues[1].push(5000, "high".into())).await;
    assert!(pushed.evicted.is_none());
    let queue = ok("queue update", c.queues[2].update_priority(pushed.id, 5)).await;

    [
        swapped.version,
        map.version,
        popped.version,
        set,
        once,
        queue,
    ]
}

/// The sizes [`fill`] leaves.
fn assert_filled(c: &Contents) {
    assert_eq!(c.cell.as_deref(), Some("kept"));
    assert_eq!(c.map.len(), 301);
    assert!(c.map.contains(&("k001".to_string(), 1001)));
    assert_eq!(c.vec.len(), 301);
    assert_eq!(c.vec.first(), Some(&2000));
    assert_eq!(c.set.len(), 251);
    assert_eq!(c.once.as_deref(), Some("first"));
    assert!(c.queue.len() > 1 && c.queue.len() < CAPACITY as usize);
    assert_eq!(
        c.queue.first().map(|e| (e.1, e.2.as_str())),
        Some((5, "high"))
    );
}

/// One more write to each collection (the one to the Once changes nothing); their
/// versions and the id of the element pushed.
async fn one_more(c: &Collections<WRITER>) -> (Versions, u64) {
    let cell = ok("cell write", c.cells[2].write("after".into())).await;
    let map = ok("map insert", c.maps[1].insert("after".into(), 1)).await;
    let vec = ok("vec push", c.vecs[0].push(3000)).await;
    let set = ok("set insert", c.sets[2].insert("after".into())).await;
    let once = ok("once write", c.onces[1].set("after".into())).await;
    let pushed = ok("queue push", c.queues[0].push(9999, "after".into())).await;
    // `fill` pushed WRITES + 1 elements, ids 1..=WRITES + 1: the counter is part of the
    // state (restored, installed) and never goes back.
    assert_eq!(pushed.id.0, WRITES + 2, "element ids keep growing");
    ([cell, map, vec, set, once, pushed.version], pushed.id.0)
}

/// `before` with [`one_more`]'s writes (`id` the pushed element's).
fn after_one_more(before: &Contents, id: u64) -> Contents {
    let mut want = before.clone();
    want.cell = Some("after".into());
    want.map.push(("after".into(), 1));
    want.map.sort();
    want.vec.push(3000);
    want.set.push("after".into());
    want.set.sort();
    want.queue.push((id, 9999, "after".into()));
    want
}

/// A cell that never cuts a snapshot, on every node.
fn log_only_cells(nodes: &[Node]) -> Vec<CellWriter<String>> {
    nodes
        .iter()
        .map(|n| CellWriter::writer_with_config(&n.network, "restart-log-only", config()))
        .collect::<Result<_, _>>()
        .expect("cell")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_survive_a_restart_of_every_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = three_nodes(root.path()).await;
    let writers = Collections::writers(&nodes, "restart");
    let cells = log_only_cells(&nodes);
    writers.online("writers online").await;
    online("log-only cells online", &whens_of(&cells)).await;

    // Every collection cuts a snapshot: the restart restores it and replays the log after
    // it. The log-only cell has no snapshot: the restart replays its whole log.
    let last = fill(&writers).await;
    ok("log-only cell write", cells[0].write("one".into())).await;
    let cell_last = ok("log-only cell write", cells[1].write("two".into())).await;
    writers.reach("writers caught up", last).await;
    reach("log-only cells caught up", cell_last, &whens_of(&cells)).await;
    let before = writers.contents(0);
    assert_filled(&before);
    for i in 1..3 {
        assert_eq!(writers.contents(i), before, "node {i} holds the same state");
    }
    writers.cut().await;

    writers.shutdown().await;
    for c in cells {
        c.shutdown().await;
    }
    let mut saved = Vec::new();
    for n in nodes {
        saved.push(stop(n).await);
    }

    let nodes = restart(saved).await;
    let writers = Collections::writers(&nodes, "restart");
    let cells = log_only_cells(&nodes);
    writers.reach("restored", last).await;
    reach("log-only cells restored", cell_last, &whens_of(&cells)).await;
    for i in 0..3 {
        assert_eq!(writers.contents(i), before, "node {i} after the restart");
    }
    for (kind, stats) in KINDS.iter().zip(writers.stats()) {
        for (i, s) in stats.iter().enumerate() {
            assert!(
                stat(s, |s| &s.restores) >= 1,
                "node {i} restored its local snapshot of the {kind}"
            );
        }
    }
    for c in &cells {
        assert_eq!(c.get().as_deref(), Some("two"));
        assert_eq!(stat(&c.snapshot_stats(), |s| &s.restores), 0);
    }

    // The restarted groups elect again and take writes.
    writers.online("writers online again").await;
    online("log-only cells online again", &whens_of(&cells)).await;
    let (v, id) = one_more(&writers).await;
    writers.reach("writes after the restart visible", v).await;
    let want = after_one_more(&before, id);
    for i in 0..3 {
        assert_eq!(writers.contents(i), want, "node {i} after one more write");
    }
    let swapped = ok(
        "log-only cell cas after restart",
        cells[2].compare_exchange(Some("two".into()), Some("three".into())),
    )
    .await;
    assert!(swapped.exchanged);
    reach(
        "log-only cell cas visible",
        swapped.version,
        &whens_of(&cells),
    )
    .await;
    assert!(cells.iter().all(|c| c.get().as_deref() == Some("three")));

    writers.shutdown().await;
    for c in cells {
        c.shutdown().await;
    }
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reader_bootstraps_from_a_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = three_nodes(root.path()).await;
    let writers = Collections::writers(&nodes, "late");
    writers.online("writers online").await;

    // Snapshots are cut every 200 entries and each log is pruned to the newest one's
    // anchor minus 50, so the reader cannot replay any collection from the start.
    let last = fill(&writers).await;
    writers.reach("writers caught up", last).await;
    writers.pruned().await;
    let want = writers.contents(0);
    assert_filled(&want);

    let late = node(&root.path().join("reader"), 0, &[nodes[0].addr]).await;
    let reader = Collections::reader(&late, "late");
    assert_eq!(reader.maps[0].group_id(), writers.maps[0].group_id());
    assert_eq!(reader.queues[0].group_id(), writers.queues[0].group_id());
    reader.reach("reader caught up", last).await;
    assert_eq!(reader.contents(0), want);
    assert_eq!(
        ok("once reader value", reader.onces[0].await_value()).await,
        "first"
    );
    assert_eq!(reader.queues[0].capacity(), CAPACITY);
    for (kind, stats) in KINDS.iter().zip(reader.stats()) {
        let stats = &stats[0];
        assert!(
            stat(stats, |s| &s.installs) >= 1 && stat(stats, |s| &s.chunks_fetched) >= 1,
            "the reader installed a snapshot of the {kind} (installs {}, chunks fetched {})",
            stat(stats, |s| &s.installs),
            stat(stats, |s| &s.chunks_fetched),
        );
    }

    // It keeps following the writers after the installs.
    let (v, id) = one_more(&writers).await;
    reader.reach("reader sees the new writes", v).await;
    assert_eq!(reader.contents(0), after_one_more(&want, id));

    reader.shutdown().await;
    stop(late).await;
    writers.shutdown().await;
    for n in nodes {
        stop(n).await;
    }
}
