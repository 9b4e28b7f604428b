//! Replicated collections on three loopback nodes with their own data directories: every
//! collection's operations replicate (a write on one node is visible on the others once
//! they reach its version), the state survives a restart of every node, and a reader that
//! joins after the log was pruned bootstraps from a snapshot.
//!
//! Every wait is bounded; no assertion depends on timing.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tessera::collections::{
    CellWriter, CollectionConfig, Error, MapReader, MapWriter, OnceWriter, PriorityQueueWriter,
    SetWriter, VecWriter, Version, When,
};
use tessera::groups::snapshot::{SnapshotConfig, SnapshotStats};
use tessera::groups::{ConsensusConfig, Index};
use tessera::network::{Network, NetworkId, PeerAddr};

/// Every wait is bounded: a hang fails with the step's name.
async fn bounded<F: Future>(what: &str, secs: u64, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// A write, bounded and expected to succeed.
async fn ok<T, F: Future<Output = Result<T, Error>>>(what: &str, fut: F) -> T {
    match bounded(what, 20, fut).await {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn consensus() -> ConsensusConfig {
    ConsensusConfig::builder()
        .with_heartbeat_interval(Duration::from_millis(50))
        .with_heartbeat_jitter(Duration::from_millis(10))
        .with_election_timeout(Duration::from_millis(400))
        .with_election_timeout_jitter(Duration::from_millis(200))
        .with_bootstrap_delay(Duration::from_millis(200))
        .with_forward_timeout(Duration::from_secs(2))
        .with_query_timeout(Duration::from_secs(2))
        .with_bootstrap_expect(3)
        .build()
        .expect("valid config")
}

fn config() -> CollectionConfig {
    CollectionConfig::default().with_consensus(consensus())
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
    let network = Network::builder(NetworkId::named("tessera-collections-test"))
        .data_dir(dir)
        .bind_addr(([127, 0, 0, 1], port).into())
        .bootstrap(peers.iter().copied())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .bind()
        .await
        .expect("bind");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_survive_a_restart_of_every_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = three_nodes(root.path()).await;
    let open_maps = |nodes: &[Node]| -> Vec<MapWriter<String, u64>> {
        nodes
            .iter()
            .map(|n| {
                MapWriter::writer_with_config(&n.network, "restart-map", snapshotting())
                    .expect("map")
            })
            .collect()
    };
    let open_queues = |nodes: &[Node]| -> Vec<PriorityQueueWriter<u64, String>> {
        nodes
            .iter()
            .map(|n| {
                PriorityQueueWriter::writer_with_config(&n.network, "restart-queue", 100, config())
                    .expect("queue")
            })
            .collect()
    };
    let maps = open_maps(&nodes);
    let queues = open_queues(&nodes);
    online(
        "maps online",
        &maps.iter().map(|m| m.when()).collect::<Vec<_>>(),
    )
    .await;
    online(
        "queues online",
        &queues.iter().map(|q| q.when()).collect::<Vec<_>>(),
    )
    .await;

    // Enough map writes to cut a snapshot (every 200 entries): the restart restores it
    // and replays the log after it.
    let writes = (0..300u64)
        .map(|i| maps[(i % 3) as usize].insert(format!("k{i:03}"), i))
        .collect();
    let last = all("map inserts", writes).await;
    for i in 0..5u64 {
        ok("queue push", queues[0].push(i * 10, format!("q{i}"))).await;
    }
    let popped = ok("queue pop", queues[1].pop_max()).await;
    assert_eq!(popped.value.map(|e| e.priority), Some(40));
    let queue_version = popped.version;
    reach(
        "maps caught up",
        last,
        &maps.iter().map(|m| m.when()).collect::<Vec<_>>(),
    )
    .await;
    reach(
        "queues caught up",
        queue_version,
        &queues.iter().map(|q| q.when()).collect::<Vec<_>>(),
    )
    .await;
    let map_before: Vec<(String, u64)> = maps[0].iter().collect();
    assert_eq!(map_before.len(), 300);
    let queue_before: Vec<(u64, u64, String)> = queues[0]
        .iter()
        .map(|e| (e.id.0, e.priority, e.value))
        .collect();
    assert_eq!(queue_before.len(), 4);

    let mut saved = Vec::new();
    for ((m, q), n) in maps.into_iter().zip(queues).zip(nodes) {
        m.shutdown().await;
        q.shutdown().await;
        drop((m, q));
        saved.push(stop(n).await);
    }

    let nodes = restart(saved).await;
    let maps = open_maps(&nodes);
    let queues = open_queues(&nodes);
    let map_whens: Vec<&When> = maps.iter().map(|m| m.when()).collect();
    let queue_whens: Vec<&When> = queues.iter().map(|q| q.when()).collect();
    reach("maps restored", last, &map_whens).await;
    reach("queues restored", queue_version, &queue_whens).await;
    for m in &maps {
        assert_eq!(m.iter().collect::<Vec<_>>(), map_before);
    }
    for q in &queues {
        let after: Vec<(u64, u64, String)> =
            q.iter().map(|e| (e.id.0, e.priority, e.value)).collect();
        assert_eq!(after, queue_before);
    }
    let restores: u64 = maps
        .iter()
        .map(|m| stat(&m.snapshot_stats(), |s| &s.restores))
        .sum();
    assert!(restores >= 1, "at least one node restored a local snapshot");

    // The restarted group elects again and takes writes; ids keep growing.
    online("maps online again", &map_whens).await;
    online("queues online again", &queue_whens).await;
    let v = ok(
        "map insert after restart",
        maps[1].insert("after".into(), 1),
    )
    .await;
    reach("insert after restart visible", v, &map_whens).await;
    assert!(maps.iter().all(|m| m.len() == 301));
    let pushed = ok("queue push after restart", queues[2].push(1, "late".into())).await;
    assert!(queue_before.iter().all(|(id, _, _)| *id < pushed.id.0));

    for m in maps {
        m.shutdown().await;
    }
    for q in queues {
        q.shutdown().await;
    }
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reader_bootstraps_from_a_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = three_nodes(root.path()).await;
    let maps: Vec<MapWriter<String, u64>> = nodes
        .iter()
        .map(|n| {
            MapWriter::writer_with_config(&n.network, "late-map", snapshotting()).expect("map")
        })
        .collect();
    let whens: Vec<&When> = maps.iter().map(|m| m.when()).collect();
    online("maps online", &whens).await;

    // 800 entries: markers every 200, so snapshots are cut and the log is pruned to the
    // newest one's anchor minus 50.
    let writes = (0..800u64)
        .map(|i| maps[0].insert(format!("key-{i:04}"), i))
        .collect();
    let last = all("map inserts", writes).await;
    reach("writers caught up", last, &whens).await;
    bounded("every writer pruned its log", 30, async {
        while !maps.iter().all(|m| m.status().log_start > Index(100)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let late = node(&root.path().join("reader"), 0, &[nodes[0].addr]).await;
    let reader =
        MapReader::<String, u64>::reader_with_config(&late.network, "late-map", snapshotting())
            .expect("reader");
    assert_eq!(reader.group_id(), maps[0].group_id());
    ok("reader caught up", reader.when().reaches(last)).await;
    let want: Vec<(String, u64)> = maps[0].iter().collect();
    assert_eq!(want.len(), 800);
    assert_eq!(reader.iter().collect::<Vec<_>>(), want);
    let stats = reader.snapshot_stats();
    assert!(
        stat(&stats, |s| &s.installs) >= 1,
        "the reader installed a snapshot (installs {}, chunks fetched {})",
        stat(&stats, |s| &s.installs),
        stat(&stats, |s| &s.chunks_fetched),
    );
    assert!(stat(&stats, |s| &s.chunks_fetched) >= 1);

    // It keeps following the writers after the install.
    let v = ok(
        "insert after the reader joined",
        maps[1].insert("later".into(), 1),
    )
    .await;
    ok("reader sees the new write", reader.when().reaches(v)).await;
    assert_eq!(reader.get(&"later".to_string()), Some(1));

    reader.shutdown().await;
    stop(late).await;
    for m in maps {
        m.shutdown().await;
    }
    for n in nodes {
        stop(n).await;
    }
}
