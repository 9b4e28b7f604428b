//! Every operation of every collection replicates across three writers on loopback
//! nodes with their own data directories: a write on one node is visible on the others
//! once they reach its version, out-of-range and non-matching writes change nothing
//! anywhere, and `updated` fires only on a change.
//!
//! Every wait is bounded; no assertion depends on timing.

mod collections_support;
mod common;
use collections_support::{config, ok, online, reach, stop, three_nodes};
use common::bounded;

use tessera::collections::{
    CellWriter, MapWriter, OnceWriter, PriorityQueueWriter, SetWriter, VecWriter, Version, When,
};

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
    let queues: Vec<PriorityQueueWriter<u32, String, String, 3>> = nodes
        .iter()
        .map(|n| {
            PriorityQueueWriter::writer_with_config(&n.network, "queue", config()).expect("queue")
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
    let v = ok(
        "map remove_many",
        maps[1].remove_many(["a".to_string(), "c".to_string(), "zz".to_string()]),
    )
    .await;
    reach("map remove_many visible", v, &whens).await;
    for m in &maps {
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            vec!["b".to_string(), "e".to_string()]
        );
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
    ok("vec push_front", vecs[0].push_front(7)).await; // 7 5 2 3
    ok("vec push_back", vecs[1].push_back(8)).await; // 7 5 2 3 8
    let front = ok("vec pop_front", vecs[2].pop_front()).await; // 5 2 3 8
    assert_eq!(front.value, Some(7));
    ok("vec push_front", vecs[0].push_front(2)).await; // 2 5 2 3 8
    let back = ok("vec pop_back", vecs[1].pop_back()).await; // 2 5 2 3
    assert_eq!(back.value, Some(8));
    reach("vec front operations visible", back.version, &whens).await;
    for x in &vecs {
        assert_eq!(x.iter().collect::<Vec<_>>(), vec![2, 5, 2, 3]);
        assert_eq!((x.front(), x.back()), (Some(2), Some(3)));
        assert!(x.contains(&5) && !x.contains(&7));
        assert_eq!(x.index_of(&2), Some(0), "the first occurrence");
        assert_eq!(x.index_of(&3), Some(3));
        assert_eq!(x.index_of(&9), None);
    }
    for _ in 0..4 {
        ok("vec pop_front", vecs[0].pop_front()).await;
    }
    let empty = ok("vec pop_front of an empty vector", vecs[1].pop_front()).await;
    assert_eq!(empty.value, None);
    reach("vec emptied", empty.version, &whens).await;
    assert!(vecs.iter().all(|x| x.is_empty()));

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
    // is_subset compares with any set of the same element type: here a second set.
    let others: Vec<SetWriter<String>> = nodes
        .iter()
        .map(|n| SetWriter::writer_with_config(&n.network, "set-2", config()).expect("set"))
        .collect();
    online(
        "second sets online",
        &others.iter().map(|c| c.when()).collect::<Vec<_>>(),
    )
    .await;
    let v = ok(
        "second set extend",
        others[0].extend(["a".to_string(), "b".into(), "c".into()]),
    )
    .await;
    reach(
        "second set visible",
        v,
        &others.iter().map(|c| c.when()).collect::<Vec<_>>(),
    )
    .await;
    for (s, o) in sets.iter().zip(&others) {
        assert!(s.is_subset(o) && !o.is_subset(s) && s.is_subset(s));
    }
    let v = ok(
        "set remove_many",
        sets[2].remove_many(["a".to_string(), "c".into(), "zz".into()]),
    )
    .await;
    reach("set remove_many visible", v, &whens).await;
    for (s, o) in sets.iter().zip(&others) {
        assert!(s.is_empty() && s.is_subset(o), "the empty set is a subset");
    }
    for o in others {
        o.shutdown().await;
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

    // ---- PriorityQueue: capacity 3 (the full suite is tests/collections_queue.rs)
    let whens: Vec<&When> = queues.iter().map(|q| q.when()).collect();
    let a = ok("queue insert", queues[0].insert(5, "a".into(), "A".into())).await;
    let b = ok("queue insert", queues[1].insert(3, "b".into(), "B".into())).await;
    let c = ok("queue insert", queues[2].insert(9, "c".into(), "C".into())).await;
    assert!(a.evicted.is_empty() && b.evicted.is_empty() && c.evicted.is_empty());
    let d = ok(
        "queue insert into a full queue",
        queues[0].insert(7, "d".into(), "D".into()),
    )
    .await;
    assert_eq!(
        d.evicted,
        vec![(3, "b".to_string(), "B".to_string())],
        "the minimum goes"
    );
    let e = ok(
        "queue insert below everything",
        queues[1].insert(1, "e".into(), "E".into()),
    )
    .await;
    assert_eq!(
        e.evicted,
        vec![(1, "e".to_string(), "E".to_string())],
        "itself"
    );
    let up = ok(
        "queue upsert of a present key",
        queues[2].insert(2, "a".into(), "A2".into()),
    )
    .await;
    assert!(up.evicted.is_empty(), "an upsert does not grow the queue");
    ok(
        "queue update priority",
        queues[0].update_priority(&"a".into(), 8),
    )
    .await; // d 7, a 8, c 9
    let cas = ok(
        "queue compare-exchange",
        queues[1].compare_exchange_value(&"d".into(), "D".into(), Some("D2".into())),
    )
    .await;
    assert!(cas.exchanged && cas.previous.as_deref() == Some("D"));
    let max = ok("queue pop max", queues[1].pop_max()).await;
    assert_eq!(max.value, Some((9, "c".to_string(), "C".to_string())));
    ok("queue insert", queues[2].insert(2, "g".into(), "G".into())).await; // g 2, d 7, a 8
    let v = ok("queue remove range", queues[0].remove_range(6..8)).await; // g 2, a 8
    reach("queue writes visible", v, &whens).await;
    for q in &queues {
        assert_eq!(
            q.iter().collect::<Vec<_>>(),
            vec![
                (2, "g".to_string(), "G".to_string()),
                (8, "a".to_string(), "A2".to_string())
            ]
        );
        assert_eq!(q.get_min().map(|x| x.0), Some(2));
        assert_eq!(q.get_max().map(|x| x.1), Some("a".to_string()));
        assert!(q.contains_key("a") && !q.contains_key("b"));
        assert_eq!(q.capacity(), 3);
    }
    let min = ok("queue pop min", queues[2].pop_min()).await;
    assert_eq!(min.value.map(|x| x.1).as_deref(), Some("g"));
    let max = ok("queue pop max", queues[0].pop_max()).await;
    assert_eq!(max.value.map(|x| x.1).as_deref(), Some("a"));
    let none = ok("queue pop empty", queues[1].pop_min()).await;
    assert!(none.value.is_none());
    reach("queue pops visible", none, &whens).await;
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

/// Counts the keys `0..n` present in `map`.
fn present(map: &MapWriter<u64, u64>, n: u64) -> u64 {
    (0..n).filter(|k| map.contains_key(k)).count() as u64
}

/// Follows `map` until none of the keys `0..n` is left; every state it saw on the way
/// held all of them or none.
async fn all_or_none(map: &MapWriter<u64, u64>, n: u64) -> usize {
    let mut seen = 0;
    loop {
        let count = present(map, n);
        assert!(count == n || count == 0, "a state with {count} of {n} keys");
        seen += 1;
        if count == 0 {
            return seen;
        }
        ok("next state", map.when().updated()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_many_is_all_or_nothing_on_every_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = three_nodes(root.path()).await;
    let maps: Vec<MapWriter<u64, u64>> = nodes
        .iter()
        .map(|n| MapWriter::writer_with_config(&n.network, "atomic", config()).expect("map"))
        .collect();
    let whens: Vec<&When> = maps.iter().map(|m| m.when()).collect();
    online("maps online", &whens).await;
    const N: u64 = 100;
    let v = ok("extend", maps[0].extend((0..N).map(|k| (k, k)))).await;
    reach("extend visible", v, &whens).await;

    // A remove_many that fails removes nothing: a follower's handle is shut down (not the
    // leader's, so the others need no election to go on).
    let follower = maps
        .iter()
        .position(|m| m.status().leader.is_some_and(|l| l != m.status().id))
        .expect("a follower that knows its leader");
    let (a, b) = match follower {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    maps[follower].shutdown().await;
    let failed = bounded(
        "a write on a stopped handle",
        20,
        maps[follower].remove_many(0..N),
    )
    .await;
    assert!(failed.is_err(), "the write fails");
    let v = ok("a write from another node", maps[a].insert(1000, 0)).await;
    reach("still there", v, &[maps[a].when(), maps[b].when()]).await;
    for m in [&maps[a], &maps[b]] {
        assert_eq!(present(m, N), N, "nothing was removed");
    }

    // One that succeeds is one command: no node holds a state with only some keys
    // removed, while other writes keep coming in around it.
    let removing = async {
        for i in 0..20u64 {
            ok("insert", maps[b].insert(2000 + i, i)).await;
        }
        ok("remove_many", maps[a].remove_many(0..N)).await;
        let mut last = Version::ZERO;
        for i in 0..20u64 {
            last = ok("insert", maps[a].insert(3000 + i, i)).await;
        }
        last
    };
    let (v, seen_a, seen_b) =
        tokio::join!(removing, all_or_none(&maps[a], N), all_or_none(&maps[b], N));
    assert!(seen_a >= 1 && seen_b >= 1);
    reach("every write visible", v, &[maps[a].when(), maps[b].when()]).await;
    assert_eq!(
        maps[a].iter().collect::<Vec<_>>(),
        maps[b].iter().collect::<Vec<_>>()
    );

    for m in maps {
        m.shutdown().await;
    }
    for n in nodes {
        stop(n).await;
    }
}
