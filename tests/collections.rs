//! Replicated collections on three loopback nodes with their own data directories: every
//! collection's state survives a restart of every node (restored from the node's newest
//! local snapshot plus the log after it, or from the whole log when no snapshot was cut),
//! and a reader that joins after every collection's log was pruned bootstraps each of
//! them from a snapshot, then follows new writes. (Each operation's replication:
//! `collections_ops.rs`.)
//!
//! Every wait is bounded; no assertion depends on timing.

mod collections_support;
mod common;
use collections_support::{
    all, config, node, ok, online, reach, restart, snapshotting, stat, stop, three_nodes, Node,
};
use common::{bounded, init_logs};

use std::sync::Arc;
use std::time::Duration;
use tessera::collections::Vec as ReplicatedVec;
use tessera::collections::{
    Cell, CellReader, CellWriter, Map, MapReader, MapWriter, Once, OnceReader, OnceWriter,
    PriorityQueue, PriorityQueueReader, PriorityQueueWriter, Set, SetReader, SetWriter, VecReader,
    VecWriter, Version, When, READER, WRITER,
};
use tessera::groups::snapshot::SnapshotStats;
use tessera::groups::Index;
use tessera::network::Network;

fn whens_of(cells: &[CellWriter<String>]) -> Vec<&When> {
    cells.iter().map(|c| c.when()).collect()
}

/// Writes to each collection in the restart and late-reader tests: past the first snapshot
/// marker of [`snapshotting`] (every 200 entries), so every collection cuts a snapshot and
/// prunes its log to the snapshot's anchor minus 50.
const WRITES: u64 = 300;

/// The capacity of the queues in those tests: most of their inserts evict.
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
    queues: Vec<PriorityQueue<u64, String, u64, CAPACITY, W>>,
}

/// Everything one node's [`Collections`] hold.
#[derive(Clone, Debug, PartialEq)]
struct Contents {
    cell: Option<String>,
    map: Vec<(String, u64)>,
    vec: Vec<u32>,
    set: Vec<String>,
    once: Option<String>,
    /// (priority, key, value), in ascending order.
    queue: Vec<(u64, String, u64)>,
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
                PriorityQueueWriter::writer_with_config(n, id, snapshotting())
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
                PriorityQueueReader::reader_with_config(n, id, snapshotting())
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
            queue: self.queues[i].iter().collect(),
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

    // Queue: inserts with distinct priorities (the full queue evicts its minimum), then
    // pops, a range removal, an upsert and a priority update.
    let writes = (0..WRITES)
        .map(|i| {
            let inserted = c.queues[on(i)].insert((i * 37) % 1000, format!("q{i:03}"), i);
            async move { inserted.await.map(|p| p.version) }
        })
        .collect();
    all("queue inserts", writes).await;
    let max = ok("queue pop max", c.queues[1].pop_max()).await;
    assert!(max.value.is_some());
    let min = ok("queue pop min", c.queues[2].pop_min()).await;
    assert!(min.value.is_some());
    ok("queue remove range", c.queues[0].remove_range(..800)).await;
    let inserted = ok("queue insert", c.queues[1].insert(5000, "high".into(), 1)).await;
    assert!(inserted.evicted.is_empty());
    ok("queue upsert", c.queues[0].insert(6000, "high".into(), 2)).await;
    let queue = ok(
        "queue update",
        c.queues[2].update_priority(&"high".into(), 5),
    )
    .await;

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
    assert_eq!(c.queue.first(), Some(&(5, "high".to_string(), 2)));
}

/// One more write to each collection (the one to the Once changes nothing); their
/// versions.
async fn one_more(c: &Collections<WRITER>) -> Versions {
    let cell = ok("cell write", c.cells[2].write("after".into())).await;
    let map = ok("map insert", c.maps[1].insert("after".into(), 1)).await;
    let vec = ok("vec push", c.vecs[0].push(3000)).await;
    let set = ok("set insert", c.sets[2].insert("after".into())).await;
    let once = ok("once write", c.onces[1].set("after".into())).await;
    let inserted = ok("queue insert", c.queues[0].insert(9999, "after".into(), 7)).await;
    [cell, map, vec, set, once, inserted.version]
}

/// `before` with [`one_more`]'s writes.
fn after_one_more(before: &Contents) -> Contents {
    let mut want = before.clone();
    want.cell = Some("after".into());
    want.map.push(("after".into(), 1));
    want.map.sort();
    want.vec.push(3000);
    want.set.push("after".into());
    want.set.sort();
    want.queue.push((9999, "after".into(), 7));
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
    init_logs();
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
    let v = one_more(&writers).await;
    writers.reach("writes after the restart visible", v).await;
    let want = after_one_more(&before);
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
    init_logs();
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
    let v = one_more(&writers).await;
    reader.reach("reader sees the new writes", v).await;
    assert_eq!(reader.contents(0), after_one_more(&want));

    reader.shutdown().await;
    stop(late).await;
    writers.shutdown().await;
    for n in nodes {
        stop(n).await;
    }
}
