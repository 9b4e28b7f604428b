//! Dropping a collection's handle and opening the same collection again right away, on a
//! node with a data directory, 100 times in a row for every collection type: every reopen
//! succeeds (it used to fail now and then with "group … is already joined on this node",
//! when the dropped handle's worker had not stopped yet), comes back with everything
//! written before (restored from the node's log) and takes the next write.
//!
//! Every wait is bounded; no assertion depends on timing.

mod collections_support;
mod common;
use collections_support::{config, nodes, ok, stop};

use std::future::Future;
use tessera::collections::{
    BoundedPriorityQueue, Cell, CellWriter, Collection, Error, Map, MapWriter, Once, OnceWriter,
    Set, SetWriter, Vec as ReplicatedVec, VecWriter, Version,
};
use tessera::network::Network;

/// Drop-and-reopen cycles per collection type.
const CYCLES: u64 = 100;

/// Opens the collection on `network` (store id `name`), writes `0..CYCLES` with `write`,
/// dropping the handle after each write and opening it again at once; `check` sees the
/// reopened handle once it holds write `i`.
async fn cycle<C, Fut>(
    name: &'static str,
    network: Network,
    open: impl Fn(&Network, &'static str) -> Result<C, Error>,
    write: impl Fn(&C, u64) -> Fut,
    check: impl Fn(&C, u64),
) where
    C: Collection,
    Fut: Future<Output = Result<Version, Error>>,
{
    let mut handle = open(&network, name).unwrap_or_else(|e| panic!("{name}: first open: {e}"));
    ok(&format!("{name} online"), handle.when().online()).await;
    for i in 0..CYCLES {
        let v = ok(&format!("{name}: write {i}"), write(&handle, i)).await;
        drop(handle);
        handle = open(&network, name)
            .unwrap_or_else(|e| panic!("{name}: reopen {i} right after the drop: {e}"));
        ok(
            &format!("{name}: reopened {i} reaches its write"),
            handle.when().reaches(v),
        )
        .await;
        check(&handle, i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_collection_reopens_right_after_its_handle_is_dropped() {
    let root = tempfile::tempdir().expect("tempdir");
    let ns = nodes(root.path(), 3).await;

    // The other two nodes keep every collection open (and its group's quorum).
    type Queue = BoundedPriorityQueue<u64, u64, u64, 50>;
    let mut keep: Vec<Box<dyn Collection>> = Vec::new();
    for n in &ns[1..] {
        let net = &n.network;
        keep.push(Box::new(
            Cell::<u64>::writer_with_config(net, "reopen-cell", config()).expect("cell"),
        ));
        keep.push(Box::new(
            Map::<u64, u64>::writer_with_config(net, "reopen-map", config()).expect("map"),
        ));
        keep.push(Box::new(
            ReplicatedVec::<u64>::writer_with_config(net, "reopen-vec", config()).expect("vec"),
        ));
        keep.push(Box::new(
            Set::<u64>::writer_with_config(net, "reopen-set", config()).expect("set"),
        ));
        keep.push(Box::new(
            Once::<u64>::writer_with_config(net, "reopen-once", config()).expect("once"),
        ));
        keep.push(Box::new(
            Queue::writer_with_config(net, "reopen-queue", config()).expect("queue"),
        ));
    }

    let net = ns[0].network.clone();
    let cells = cycle(
        "reopen-cell",
        net.clone(),
        |n, id| Cell::<u64>::writer_with_config(n, id, config()),
        |c: &CellWriter<u64>, i| c.write(i),
        |c: &CellWriter<u64>, i| assert_eq!(c.read(), Some(i)),
    );
    let maps = cycle(
        "reopen-map",
        net.clone(),
        |n, id| Map::<u64, u64>::writer_with_config(n, id, config()),
        |m: &MapWriter<u64, u64>, i| m.insert(i, i * 10),
        |m: &MapWriter<u64, u64>, i| {
            assert_eq!(m.get(&i), Some(i * 10));
            assert_eq!(m.len() as u64, i + 1, "every earlier write is back");
        },
    );
    let vecs = cycle(
        "reopen-vec",
        net.clone(),
        |n, id| ReplicatedVec::<u64>::writer_with_config(n, id, config()),
        |v: &VecWriter<u64>, i| v.push(i),
        |v: &VecWriter<u64>, i| {
            assert_eq!(v.last(), Some(i));
            assert_eq!(v.len() as u64, i + 1);
        },
    );
    let sets = cycle(
        "reopen-set",
        net.clone(),
        |n, id| Set::<u64>::writer_with_config(n, id, config()),
        |s: &SetWriter<u64>, i| s.insert(i),
        |s: &SetWriter<u64>, i| assert!(s.contains(&i) && s.len() as u64 == i + 1),
    );
    let onces = cycle(
        "reopen-once",
        net.clone(),
        |n, id| Once::<u64>::writer_with_config(n, id, config()),
        |o: &OnceWriter<u64>, i| o.write(i),
        |o: &OnceWriter<u64>, _| assert_eq!(o.get(), Some(0), "the first write won"),
    );
    let queues = cycle(
        "reopen-queue",
        net.clone(),
        |n, id| Queue::writer_with_config(n, id, config()),
        |q: &Queue, i| {
            let inserted = q.insert(i, i, i);
            async move { inserted.await.map(|x| x.version) }
        },
        |q: &Queue, i| {
            assert_eq!(q.get_max(), Some((i, i, i)));
            assert_eq!(q.len() as u64, (i + 1).min(50), "bounded to 50");
        },
    );
    tokio::join!(cells, maps, vecs, sets, onces, queues);

    drop(keep);
    for n in ns {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_live_handle_of_the_same_collection_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let ns = nodes(root.path(), 3).await;
    let net = &ns[0].network;
    let first = Map::<u64, u64>::writer_with_config(net, "twice", config()).expect("first");
    match Map::<u64, u64>::writer_with_config(net, "twice", config()) {
        Err(Error::Open { source, .. }) => {
            assert!(source.to_string().contains("already joined"), "{source}")
        }
        Err(other) => panic!("expected an open error, got {other}"),
        Ok(_) => panic!("two live handles of one collection on one node"),
    }
    // A reader is the same collection too.
    assert!(Map::<u64, u64>::reader_with_config(net, "twice", config()).is_err());
    // Once shut down and dropped, it opens again.
    first.shutdown().await;
    drop(first);
    let again = Map::<u64, u64>::writer_with_config(net, "twice", config()).expect("reopened");
    again.shutdown().await;
    drop(again);
    for n in ns {
        stop(n).await;
    }
}
