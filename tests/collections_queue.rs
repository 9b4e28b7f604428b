//! The keyed priority queue (mosaik's DEPQ) on loopback nodes, written the way mosaik's
//! own scenarios use it: writers on three nodes, readers on others. A bounded queue that
//! is full takes upserts without evicting and evicts its minimum (ties: the smallest key)
//! for new keys, the same entries on every node; compare-exchange of a value; a reader
//! that joins after the log was pruned installs a snapshot; every node (readers too)
//! restarts from its data directory with the same queue.
//!
//! Every wait is bounded; no assertion depends on timing.

mod collections_support;
mod common;
use collections_support::{
    config, node, nodes, ok, online, reach, restart, snapshotting, stat, stop, Node,
};
use common::bounded;

use std::ops::Bound;
use std::time::Duration;
use tessera::collections::{
    BoundedPriorityQueue, PriorityQueueReader, PriorityQueueWriter, UnboundedPriorityQueue,
    Version, When, READER,
};

type Writer = BoundedPriorityQueue<u64, String, u64, 4>;
type Reader = BoundedPriorityQueue<u64, String, u64, 4, READER>;

fn e(p: u64, k: &str, v: u64) -> (u64, String, u64) {
    (p, k.to_string(), v)
}

/// Every queue (writers and readers) reaches `v` and holds `want`, in this order.
async fn all_hold(
    what: &str,
    v: impl Into<Version>,
    ws: &[Writer],
    rs: &[Reader],
    want: &[(u64, String, u64)],
) {
    let v = v.into();
    let whens: Vec<&When> = ws
        .iter()
        .map(|q| q.when())
        .chain(rs.iter().map(|q| q.when()))
        .collect();
    reach(what, v, &whens).await;
    for (i, q) in ws.iter().enumerate() {
        assert_eq!(q.iter_asc().collect::<Vec<_>>(), want, "{what}: writer {i}");
    }
    for (i, q) in rs.iter().enumerate() {
        assert_eq!(q.iter_asc().collect::<Vec<_>>(), want, "{what}: reader {i}");
        assert_eq!(q.len(), want.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_queue_upserts_evicts_and_exchanges_alike_everywhere() {
    let root = tempfile::tempdir().expect("tempdir");
    let all_nodes = nodes(root.path(), 5).await;
    let (writer_nodes, reader_nodes) = all_nodes.split_at(3);
    let ws: Vec<Writer> = writer_nodes
        .iter()
        .map(|n| Writer::writer_with_config(&n.network, "orders", config()).expect("writer"))
        .collect();
    let rs: Vec<Reader> = reader_nodes
        .iter()
        .map(|n| Reader::reader_with_config(&n.network, "orders", config()).expect("reader"))
        .collect();
    assert!(rs.iter().all(|r| r.group_id() == ws[0].group_id()));
    online("writers", &ws.iter().map(|q| q.when()).collect::<Vec<_>>()).await;
    online("readers", &rs.iter().map(|q| q.when()).collect::<Vec<_>>()).await;

    // -- empty
    for r in &rs {
        assert!(r.is_empty() && r.get("k1").is_none() && r.get_min().is_none());
        assert_eq!(
            (r.min_priority(), r.max_priority(), r.capacity()),
            (None, None, 4)
        );
    }

    // -- fill to capacity from every writer
    let mut v = Version::ZERO;
    for (i, (p, k)) in [(10, "k1"), (20, "k2"), (30, "k3"), (40, "k4")]
        .into_iter()
        .enumerate()
    {
        let inserted = ok("insert", ws[i % 3].insert(p, k.into(), p * 10)).await;
        assert!(inserted.evicted.is_empty(), "room left for {k}");
        v = inserted.version;
    }
    let full = [
        e(10, "k1", 100),
        e(20, "k2", 200),
        e(30, "k3", 300),
        e(40, "k4", 400),
    ];
    all_hold("filled", v, &ws, &rs, &full).await;

    // -- upserts into the full queue evict nothing, even below the minimum
    let up = ok("upsert k1 lower", ws[1].insert(5, "k1".into(), 101)).await;
    assert!(up.evicted.is_empty());
    let up = ok("upsert k2 higher", ws[2].insert(50, "k2".into(), 201)).await;
    assert!(up.evicted.is_empty());
    all_hold(
        "upserts",
        up,
        &ws,
        &rs,
        &[
            e(5, "k1", 101),
            e(30, "k3", 300),
            e(40, "k4", 400),
            e(50, "k2", 201),
        ],
    )
    .await;
    for r in &rs {
        assert_eq!((r.get("k1"), r.get_priority("k1")), (Some(101), Some(5)));
        assert_eq!(r.len(), 4, "length unchanged");
    }

    // -- a new key below everything evicts itself; one above evicts the minimum
    let low = ok(
        "insert below the minimum",
        ws[0].insert(1, "k5".into(), 500),
    )
    .await;
    assert_eq!(low.evicted, vec![e(1, "k5", 500)]);
    let mid = ok("insert into the middle", ws[1].insert(35, "k6".into(), 600)).await;
    assert_eq!(mid.evicted, vec![e(5, "k1", 101)]);
    all_hold(
        "evictions",
        mid,
        &ws,
        &rs,
        &[
            e(30, "k3", 300),
            e(35, "k6", 600),
            e(40, "k4", 400),
            e(50, "k2", 201),
        ],
    )
    .await;

    // -- ties: the lowest priority's smallest key goes first, on every node
    let v = ok("clear", ws[2].clear()).await;
    all_hold("cleared", v, &ws, &rs, &[]).await;
    let filled = ok(
        "extend with ties",
        ws[0].extend([e(10, "b", 1), e(10, "a", 2), e(10, "c", 3), e(20, "d", 4)]),
    )
    .await;
    assert!(filled.evicted.is_empty());
    for r in &rs {
        ok("reader sees the ties", r.when().reaches(filled.version)).await;
        assert_eq!(r.get_min(), Some(e(10, "a", 2)));
        assert_eq!(r.get_max(), Some(e(20, "d", 4)));
    }
    let one = ok("insert evicting a tie", ws[1].insert(15, "e".into(), 5)).await;
    assert_eq!(one.evicted, vec![e(10, "a", 2)]);
    let two = ok(
        "insert evicting the next tie",
        ws[2].insert(16, "f".into(), 6),
    )
    .await;
    assert_eq!(two.evicted, vec![e(10, "b", 1)]);
    // An extend into the full queue evicts as it goes, its own entries included.
    let batch = ok(
        "extend into a full queue",
        ws[0].extend([e(11, "g", 7), e(30, "h", 8), e(31, "i", 9)]),
    )
    .await;
    assert_eq!(
        batch.evicted,
        vec![e(10, "c", 3), e(11, "g", 7), e(15, "e", 5)]
    );
    all_hold(
        "ties evicted in key order",
        batch,
        &ws,
        &rs,
        &[e(16, "f", 6), e(20, "d", 4), e(30, "h", 8), e(31, "i", 9)],
    )
    .await;
    for r in &rs {
        let desc: Vec<u64> = r.iter_desc().map(|(p, _, _)| p).collect();
        assert_eq!(desc, vec![31, 30, 20, 16]);
    }

    // -- compare-exchange of a value: match, mismatch, missing key, removal
    let hit = ok(
        "cas match",
        ws[1].compare_exchange_value(&"d".into(), 4, Some(40)),
    )
    .await;
    assert!(hit.exchanged && hit.previous == Some(4));
    let miss = ok(
        "cas mismatch",
        ws[2].compare_exchange_value(&"d".into(), 4, Some(41)),
    )
    .await;
    assert!(!miss.exchanged && miss.previous == Some(40));
    let absent = ok(
        "cas missing key",
        ws[0].compare_exchange_value(&"zz".into(), 4, Some(1)),
    )
    .await;
    assert!(!absent.exchanged && absent.previous.is_none());
    let gone = ok(
        "cas removal",
        ws[1].compare_exchange_value(&"h".into(), 8, None),
    )
    .await;
    assert!(gone.exchanged);
    all_hold(
        "compare-exchanges",
        gone,
        &ws,
        &rs,
        &[e(16, "f", 6), e(20, "d", 40), e(31, "i", 9)],
    )
    .await;
    for r in &rs {
        assert_eq!(r.get_priority("d"), Some(20), "the priority is kept");
    }

    // -- the other writes
    ok("update priority", ws[2].update_priority(&"f".into(), 99)).await;
    ok(
        "update missing priority",
        ws[0].update_priority(&"zz".into(), 1),
    )
    .await;
    ok("update value", ws[1].update_value(&"i".into(), 90)).await;
    ok("update missing value", ws[2].update_value(&"zz".into(), 1)).await;
    let v = ok("insert", ws[0].insert(25, "j".into(), 10)).await;
    all_hold(
        "updates",
        v,
        &ws,
        &rs,
        &[
            e(20, "d", 40),
            e(25, "j", 10),
            e(31, "i", 90),
            e(99, "f", 6),
        ],
    )
    .await;
    let max = ok("pop max", ws[1].pop_max()).await;
    assert_eq!(max.value, Some(e(99, "f", 6)));
    let min = ok("pop min", ws[2].pop_min()).await;
    assert_eq!(min.value, Some(e(20, "d", 40)));
    ok("remove", ws[0].remove(&"zz".into())).await;
    let v = ok(
        "remove keys",
        ws[1].remove_keys(["j".to_string(), "nope".into()]),
    )
    .await;
    all_hold("removals", v, &ws, &rs, &[e(31, "i", 90)]).await;
    ok(
        "extend",
        ws[2].extend([e(1, "x", 1), e(2, "y", 2), e(3, "z", 3)]),
    )
    .await;
    let v = ok("remove range", ws[0].remove_range(2..=3)).await;
    all_hold(
        "range removed",
        v,
        &ws,
        &rs,
        &[e(1, "x", 1), e(31, "i", 90)],
    )
    .await;
    let inverted = (Bound::Included(3), Bound::Excluded(2));
    let v = ok("inverted range", ws[1].remove_range(inverted)).await;
    all_hold(
        "an inverted range removes nothing",
        v,
        &ws,
        &rs,
        &[e(1, "x", 1), e(31, "i", 90)],
    )
    .await;
    let v = ok("remove everything", ws[2].remove_range(..)).await;
    all_hold("emptied", v, &ws, &rs, &[]).await;

    for q in ws {
        q.shutdown().await;
    }
    for q in rs {
        q.shutdown().await;
    }
    for n in all_nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_queue_keeps_everything_and_refuses_no_capacity() {
    let root = tempfile::tempdir().expect("tempdir");
    let ns = nodes(root.path(), 3).await;
    let qs: Vec<UnboundedPriorityQueue<u64, u64, u64>> = ns
        .iter()
        .map(|n| {
            UnboundedPriorityQueue::writer_with_config(&n.network, "unbounded", config())
                .expect("queue")
        })
        .collect();
    online("queues", &qs.iter().map(|q| q.when()).collect::<Vec<_>>()).await;
    let batch = ok(
        "extend",
        qs[0].extend((0..500u64).map(|i| ((i * 7) % 50, i, i))),
    )
    .await;
    assert!(batch.evicted.is_empty());
    reach(
        "extend visible",
        batch,
        &qs.iter().map(|q| q.when()).collect::<Vec<_>>(),
    )
    .await;
    for q in &qs {
        assert_eq!(q.len(), 500);
        assert_eq!(q.capacity(), u64::MAX);
        assert_eq!(q.get_min(), Some((0, 0, 0)));
        assert_eq!(
            q.get_max(),
            Some((49, 7, 7)),
            "smallest key of the highest priority"
        );
    }
    // A bound of zero cannot hold anything: refused when opened.
    let none = PriorityQueueWriter::<u64, u64, u64, 0>::writer_with_config(
        &ns[0].network,
        "zero",
        config(),
    );
    assert!(
        matches!(&none, Err(tessera::collections::Error::Config { .. })),
        "capacity 0 is refused"
    );
    for q in qs {
        q.shutdown().await;
    }
    for n in ns {
        stop(n).await;
    }
}

/// The queues of [`a_late_reader_installs_a_snapshot_and_every_node_restarts`].
type Big = PriorityQueueWriter<u64, String, u64, 100>;
type BigReader = PriorityQueueReader<u64, String, u64, 100>;

/// Writes to the big queue: past a few snapshot markers (every 200 entries).
const WRITES: u64 = 500;

async fn fill(qs: &[Big]) -> Version {
    let on = |i: u64| (i % qs.len() as u64) as usize;
    let mut last = Version::ZERO;
    let mut pending = Vec::new();
    for i in 0..WRITES {
        pending.push(qs[on(i)].insert((i * 37) % 1000, format!("k{:03}", i % 400), i));
        if pending.len() == 32 {
            for p in pending.drain(..) {
                last = last.max(ok("insert", p).await.version);
            }
        }
    }
    for p in pending {
        last = last.max(ok("insert", p).await.version);
    }
    let cas = ok(
        "cas",
        qs[1].compare_exchange_value(&"k399".into(), 399, Some(3990)),
    )
    .await;
    last.max(cas.version)
}

/// Waits until every writer pruned its log past the first 100 entries.
async fn pruned(qs: &[Big]) {
    bounded("every writer pruned the queue's log", 30, async {
        while !qs
            .iter()
            .all(|q| q.status().log_start > tessera::groups::Index(100))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reader_installs_a_snapshot_and_every_node_restarts() {
    let root = tempfile::tempdir().expect("tempdir");
    let writers = nodes(root.path(), 3).await;
    let qs: Vec<Big> = writers
        .iter()
        .map(|n| Big::writer_with_config(&n.network, "big", snapshotting()).expect("queue"))
        .collect();
    online("writers", &qs.iter().map(|q| q.when()).collect::<Vec<_>>()).await;
    let last = fill(&qs).await;
    reach(
        "writers caught up",
        last,
        &qs.iter().map(|q| q.when()).collect::<Vec<_>>(),
    )
    .await;
    pruned(&qs).await;
    let want: Vec<(u64, String, u64)> = qs[0].iter_asc().collect();
    assert_eq!(want.len(), 100, "the bound holds");
    for q in &qs[1..] {
        assert_eq!(q.iter_asc().collect::<Vec<_>>(), want);
    }

    // A reader joining now cannot replay the log from the start: it installs a snapshot.
    let late: Node = node(&root.path().join("reader"), 0, &[writers[0].addr]).await;
    let reader =
        BigReader::reader_with_config(&late.network, "big", snapshotting()).expect("reader");
    ok("reader caught up", reader.when().reaches(last)).await;
    assert_eq!(reader.iter_asc().collect::<Vec<_>>(), want);
    let stats = reader.snapshot_stats();
    assert!(
        stat(&stats, |s| &s.installs) >= 1 && stat(&stats, |s| &s.chunks_fetched) >= 1,
        "the reader installed a snapshot (installs {}, chunks {})",
        stat(&stats, |s| &s.installs),
        stat(&stats, |s| &s.chunks_fetched)
    );
    let after = ok(
        "insert after the install",
        qs[2].insert(5000, "top".into(), 1),
    )
    .await;
    assert_eq!(after.evicted.len(), 1, "the full queue evicts");
    ok("reader follows", reader.when().reaches(after.version)).await;
    let want: Vec<(u64, String, u64)> = qs[2].iter_asc().collect();
    assert_eq!(reader.iter_asc().collect::<Vec<_>>(), want);
    assert_eq!(reader.get_max(), Some((5000, "top".to_string(), 1)));

    // Every node restarts, the reader's too.
    for q in qs {
        q.shutdown().await;
    }
    reader.shutdown().await;
    drop(reader);
    let mut saved = Vec::new();
    for n in writers {
        saved.push(stop(n).await);
    }
    let reader_saved = stop(late).await;
    let writers = restart(saved).await;
    let late = node(
        &reader_saved.0,
        reader_saved.1.addr.port(),
        &[writers[0].addr],
    )
    .await;
    let qs: Vec<Big> = writers
        .iter()
        .map(|n| Big::writer_with_config(&n.network, "big", snapshotting()).expect("queue"))
        .collect();
    let reader =
        BigReader::reader_with_config(&late.network, "big", snapshotting()).expect("reader");
    let whens: Vec<&When> = qs.iter().map(|q| q.when()).chain([reader.when()]).collect();
    reach("restored", after, &whens).await;
    for q in &qs {
        assert_eq!(
            q.iter_asc().collect::<Vec<_>>(),
            want,
            "a writer after the restart"
        );
        assert!(
            stat(&q.snapshot_stats(), |s| &s.restores) >= 1,
            "restored its local snapshot"
        );
    }
    assert_eq!(
        reader.iter_asc().collect::<Vec<_>>(),
        want,
        "the reader after the restart"
    );
    assert!(
        stat(&reader.snapshot_stats(), |s| &s.restores) >= 1,
        "the reader restored its installed snapshot"
    );
    online(
        "writers again",
        &qs.iter().map(|q| q.when()).collect::<Vec<_>>(),
    )
    .await;
    let v = ok("upsert after the restart", qs[0].insert(1, "top".into(), 2)).await;
    assert!(v.evicted.is_empty());
    reach("upsert visible", v, &whens).await;
    assert_eq!(reader.get_priority("top"), Some(1));
    assert_eq!(reader.len(), 100);

    for q in qs {
        q.shutdown().await;
    }
    reader.shutdown().await;
    for n in writers {
        stop(n).await;
    }
    stop(late).await;
}
