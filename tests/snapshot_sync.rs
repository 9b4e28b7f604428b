//! SnapshotSync end to end, in-process on loopback, every node durable (RocksDB):
//! - a new node joins a group holding 200 MB and is served chunks by several peers; stopped
//!   mid-transfer and restarted, it fetches only the chunks it lacked;
//! - sustained writes keep every log within its bound (snapshots + pruning);
//! - a restarted node with a snapshot and a 10,000-entry tail is online without fetching;
//! - a damaged local chunk (one in the middle, or the first, which holds the header) is
//!   detected at restart and fetched again from a peer.

mod common;
use common::{bind_loopback, bounded, init_logs, loopback_consensus, noise};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tessera::groups::snapshot::{key_group, SnapshotConfig, SnapshotStats};
use tessera::groups::{
    ConsensusConfig, Consistency, Group, GroupBuilder, GroupError, GroupKey, Index,
};
use tessera::network::{Network, PeerAddr};
use tessera::store::{KvCommand, KvMachine, KvQuery, KvResult};
use tessera::PeerId;

fn consensus() -> ConsensusConfig {
    loopback_consensus(Duration::from_secs(5))
}

struct Member {
    dir: PathBuf,
    network: Network,
    group: Group<KvMachine>,
    addr: PeerAddr,
    stats: Arc<SnapshotStats>,
}

async fn start(dir: &Path, port: u16, peers: &[PeerAddr], sync: SnapshotConfig) -> Member {
    let network = bind_loopback("tessera-snapshot-test", dir, port, peers).await;
    let machine = KvMachine::new(sync);
    let stats = machine.snapshot_stats();
    let group = GroupBuilder::new(&network)
        .with_key(GroupKey::from_secret("snapshot test"))
        .with_state_machine(machine)
        .with_consensus_config(consensus())
        .join()
        .expect("join");
    let addr = network.local_addr();
    Member {
        dir: dir.to_path_buf(),
        network,
        group,
        addr,
        stats,
    }
}

async fn stop(m: Member) -> (PathBuf, u16, Arc<SnapshotStats>) {
    let port = m.addr.addr.port();
    m.group.shutdown().await;
    m.network.shutdown().await;
    drop(m.group);
    (m.dir, port, m.stats)
}

async fn cluster(root: &Path, sync: SnapshotConfig) -> Vec<Member> {
    let first = start(&root.join("n0"), 0, &[], sync).await;
    let seed = [first.addr];
    let mut members = vec![first];
    for i in 1..3 {
        members.push(start(&root.join(format!("n{i}")), 0, &seed, sync).await);
    }
    members
}

async fn leader_of(members: &[Member]) -> PeerId {
    bounded("leader elected", 30, async {
        loop {
            if let Some(leader) = members[0].group.leader() {
                if members.iter().all(|m| m.group.leader() == Some(leader)) {
                    return leader;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Writes `count` keys `{prefix}{n}` with `value_len`-byte values, `batch` per call.
async fn write(
    via: &Group<KvMachine>,
    prefix: &str,
    count: usize,
    value_len: usize,
    batch: usize,
) -> Index {
    let mut last = Index(0);
    let mut n = 0;
    while n < count {
        let end = (n + batch).min(count);
        let commands: Vec<KvCommand> = (n..end)
            .map(|i| KvCommand::Put {
                key: format!("{prefix}{i:08}"),
                value: noise(i as u64, value_len),
            })
            .collect();
        let mut attempt = 0;
        let indices = loop {
            match bounded("write batch", 60, via.execute_many(commands.clone())).await {
                Ok(indices) => break indices,
                // A leader change (the batch was overwritten, or the leader lost its
                // term): a client sends it again; puts of the same values are idempotent.
                Err(GroupError::Client(err)) if attempt < 5 => {
                    attempt += 1;
                    eprintln!("write batch {n}..{end}: {err}; again");
                }
                Err(err) => panic!("write batch {n}..{end}: {err}"),
            }
        };
        last = *indices.last().expect("indices");
        n = end;
    }
    last
}

async fn len(group: &Group<KvMachine>, c: Consistency) -> u64 {
    match bounded("count", 20, group.query(KvQuery::Len, c))
        .await
        .expect("len")
    {
        (KvResult::Len(n), _) => n,
        other => panic!("unexpected {other:?}"),
    }
}

fn newest_raw_bytes(stats: &SnapshotStats) -> u64 {
    stats.held().last().map_or(0, |h| h.raw_bytes)
}

/// Waits (up to 120 s) until every member holds a snapshot of at least `raw_bytes` and has
/// pruned its log.
async fn all_hold_a_snapshot(members: &[Member], raw_bytes: u64) {
    let what = format!("every member holds a snapshot of {raw_bytes} bytes and a pruned log");
    bounded(&what, 120, async {
        while !members
            .iter()
            .all(|m| newest_raw_bytes(&m.stats) >= raw_bytes && m.group.status().log_start.0 > 1)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
    SnapshotStats::get(counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_bootstraps_200_mb_from_several_peers_and_resumes_after_a_stop_mid_transfer() {
    init_logs();
    let root = tempfile::tempdir().unwrap();
    // One snapshot, after 192 MiB of applied commands; a short log tail, so the new node
    // cannot be served from any log.
    let sync = SnapshotConfig::default()
        .every_entries(1_000_000)
        .every_bytes(192 << 20)
        .keep_tail(100);
    let members = cluster(root.path(), sync).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();

    // 13,000 keys of 16 KiB: 208 MiB of state.
    const KEYS: usize = 13_000;
    let commit = write(&members[li].group, "big-", KEYS, 16 << 10, 64).await;
    all_hold_a_snapshot(&members, 200_000_000).await;
    let held = members[li].stats.held();
    let newest = held.last().expect("a snapshot").clone();
    let total = u64::from(newest.chunks);
    assert!(total >= 190, "1 MiB chunks: {newest:?}");

    // The new node fetches slowly (one chunk per peer at a time) so it can be stopped
    // mid-way.
    let mut slow = sync;
    slow.transfer.max_in_flight = 2;
    slow.transfer.max_in_flight_per_peer = 1;
    slow.transfer.max_chunks_per_request = 1;
    let seed = [members[0].addr];
    let new_dir = root.path().join("n3");
    let fresh = start(&new_dir, 0, &seed, slow).await;
    let fresh_stats = fresh.stats.clone();
    bounded("a third of the chunks arrive", 120, async {
        while count(&fresh_stats.chunks_fetched) < total / 3 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let (dir, _, first_stats) = stop(fresh).await;
    let before = count(&first_stats.chunks_fetched);
    assert!(before < total, "stopped mid-transfer: {before} of {total}");

    let again = start(&dir, 0, &seed, sync).await;
    // If the catch-up stalls, the failure output shows where (captured unless it fails).
    let watched = again.stats.clone();
    let watch = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(15)).await;
            eprintln!(
                "restarted node: fetched {}, transfer {:?}",
                count(&watched.chunks_fetched),
                watched.transfer()
            );
        }
    });
    bounded("the restarted node catches up", 180, async {
        again.group.when().applied_reaches(commit).await
    })
    .await
    .expect("catch up");
    watch.abort();
    let after = count(&again.stats.chunks_fetched);
    assert_eq!(
        after,
        total - before,
        "after the restart only the missing chunks are fetched ({before} before, {total} in all)"
    );
    assert_eq!(count(&again.stats.installs), 1);
    assert_eq!(len(&again.group, Consistency::Weak).await, KEYS as u64);
    // The provider of the node that installed serves the installed snapshot from then on
    // (the worker tells it of the install).
    assert_eq!(
        again.stats.held().last().map(|h| h.anchor),
        Some(newest.anchor),
        "the installed snapshot is held and served"
    );

    // Chunks came from several peers: the session's view and the providers' counters.
    let from: Vec<u64> = first_stats
        .fetched_from()
        .into_iter()
        .chain(again.stats.fetched_from())
        .map(|(_, n)| n)
        .collect();
    let serving = members
        .iter()
        .filter(|m| count(&m.stats.chunks_served) > 0)
        .count();
    assert!(
        serving >= 2,
        "at least two providers served chunks: {:?} (session saw {from:?})",
        members
            .iter()
            .map(|m| count(&m.stats.chunks_served))
            .collect::<Vec<_>>()
    );
    let served: u64 = members.iter().map(|m| count(&m.stats.chunks_served)).sum();
    assert!(
        served >= total,
        "providers served {served} of {total} chunks"
    );

    stop(again).await;
    for m in members {
        stop(m).await;
    }
}

/// Every provider stops in the middle of a transfer, long enough for the new node to give
/// up on each of them, and comes back: the same session asks them again and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_goes_on_after_every_provider_restarts_mid_way() {
    init_logs();
    let root = tempfile::tempdir().unwrap();
    // 48 MiB of state in 64 KiB chunks: about 750 chunks, fetched one at a time.
    let sync = SnapshotConfig::default()
        .every_entries(1_000_000)
        .every_bytes(40 << 20)
        .keep_tail(100)
        .chunk_size(64 << 10);
    let members = cluster(root.path(), sync).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();
    const KEYS: usize = 3_000;
    let commit = write(&members[li].group, "k-", KEYS, 16 << 10, 64).await;
    all_hold_a_snapshot(&members, 40_000_000).await;
    let total = u64::from(members[li].stats.held().last().expect("a snapshot").chunks);

    // One chunk in flight at a time; a provider is dropped after one timeout of 300 ms.
    let mut slow = sync;
    slow.transfer.max_in_flight = 1;
    slow.transfer.max_in_flight_per_peer = 1;
    slow.transfer.max_chunks_per_request = 1;
    slow.transfer.request_timeout_ms = 300;
    slow.transfer.max_peer_failures = 1;
    let addrs: Vec<PeerAddr> = members.iter().map(|m| m.addr).collect();
    let fresh = start(&root.path().join("n3"), 0, &addrs[..1], slow).await;
    let stats = fresh.stats.clone();
    bounded("a tenth of the chunks arrive", 120, async {
        while count(&stats.chunks_fetched) < total / 10 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;

    // Every provider stops, and stays down until the new node has dropped them all (one
    // timeout each). Before the session asked again in that case, it waited for ever here.
    let stopping: Vec<_> = members.into_iter().map(|m| tokio::spawn(stop(m))).collect();
    let mut stopped = Vec::new();
    for s in stopping {
        stopped.push(s.await.expect("stop a provider"));
    }
    let during = count(&stats.chunks_fetched);
    assert!(during < total, "stopped mid-transfer: {during} of {total}");
    bounded("the new node drops every provider", 60, async {
        while stats.transfer().is_none_or(|t| t.providers > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut members = Vec::new();
    for (i, (dir, port, _)) in stopped.into_iter().enumerate() {
        let others: Vec<PeerAddr> = addrs.iter().copied().filter(|a| *a != addrs[i]).collect();
        members.push(start(&dir, port, &others, sync).await);
    }

    bounded("the new node catches up", 120, async {
        fresh.group.when().applied_reaches(commit).await
    })
    .await
    .expect("catch up");
    assert_eq!(
        count(&stats.sessions),
        1,
        "the first session finished the transfer"
    );
    assert_eq!(count(&stats.installs), 1);
    assert!(count(&stats.chunks_fetched) > during);
    assert_eq!(len(&fresh.group, Consistency::Weak).await, KEYS as u64);

    stop(fresh).await;
    for m in members {
        stop(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_writes_keep_the_log_bounded_and_a_restart_replays_only_the_tail() {
    init_logs();
    let root = tempfile::tempdir().unwrap();
    const EVERY: u64 = 20_000;
    const TAIL: u64 = 2_000;
    let sync = SnapshotConfig::default()
        .every_entries(EVERY)
        .keep_tail(TAIL);
    let mut members = cluster(root.path(), sync).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();

    // 100,000 writes, 1,000 per call; the log length is sampled on every member after
    // each call. The bound: one snapshot period, the kept tail, and the entries written
    // while a cut runs and until the next prune (a heartbeat interval).
    let bound = EVERY + TAIL + EVERY;
    let mut longest = 0;
    let mut written = Index(0);
    for round in 0..100 {
        written = write(&members[li].group, &format!("r{round}-"), 1_000, 32, 1_000).await;
        for m in &members {
            let s = m.group.status();
            longest = longest.max(s.last.index().0 + 1 - s.log_start.0);
        }
    }
    let on_leader = len(&members[li].group, Consistency::Strong).await;
    assert_eq!(
        on_leader,
        100_000,
        "every acknowledged write is on the leader: {:?}",
        members[li].group.status()
    );
    assert!(
        longest <= bound,
        "log length stays within {bound} entries, longest seen {longest}"
    );
    let pruned: Vec<u64> = members
        .iter()
        .map(|m| m.group.status().log_start.0)
        .collect();
    assert!(
        pruned.iter().all(|&p| p > 60_000),
        "every log was pruned well past its start: {pruned:?}"
    );

    // A follower with a snapshot and a tail of at least 10,000 entries restarts: it loads
    // the snapshot and replays the tail, fetching nothing.
    let fi = (li + 1) % 3;
    bounded("the follower holds a snapshot", 60, async {
        while members[fi].stats.held().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let anchor = members[fi].stats.held().last().unwrap().anchor.index();
    let commit = written.max(members[li].group.committed());
    let extra = (anchor.0 + 10_000).saturating_sub(commit.0);
    let commit = if extra > 0 {
        write(&members[li].group, "tail-", extra as usize, 32, 1_000).await
    } else {
        commit
    };
    bounded("follower applied everything", 60, async {
        members[fi].group.when().applied_reaches(commit).await
    })
    .await
    .expect("applied");
    let follower = members.remove(fi);
    let (dir, _, _) = stop(follower).await;
    // A fresh port: another test may have taken the old one meanwhile.
    let others: Vec<PeerAddr> = members.iter().map(|m| m.addr).collect();
    let back = start(&dir, 0, &others, sync).await;
    let restored_anchor = back.stats.held().last().map(|h| h.anchor.index());
    bounded("restarted follower applied everything", 60, async {
        back.group.when().applied_reaches(commit).await
    })
    .await
    .expect("applied");
    bounded("restarted follower is online", 30, async {
        back.group.when().online().await
    })
    .await
    .expect("online");
    assert_eq!(count(&back.stats.restores), 1, "restored from its snapshot");
    assert!(
        restored_anchor.is_some_and(|a| commit.0 - a.0 >= 10_000),
        "restart with a tail of at least 10,000 entries: anchor {restored_anchor:?}, commit {commit}"
    );
    assert_eq!(count(&back.stats.sessions), 0, "no catch-up session");
    assert_eq!(count(&back.stats.chunks_fetched), 0, "nothing fetched");
    let expected = 100_000 + extra;
    let got = len(&back.group, Consistency::Weak).await;
    assert_eq!(
        got,
        expected,
        "restarted follower: restored {restored_anchor:?}, commit {commit}, status {:?}",
        back.group.status()
    );
    members.push(back);
    for m in members {
        stop(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_local_chunk_is_detected_at_restart_and_fetched_from_a_peer() {
    damaged_chunk_is_fetched_again(1).await;
}

/// Chunk 0 begins with the snapshot's header (anchor and membership), so the node learns
/// neither from its own copy and must still repair it from a peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_header_chunk_is_detected_at_restart_and_fetched_from_a_peer() {
    damaged_chunk_is_fetched_again(0).await;
}

/// Stops a follower holding a snapshot of several chunks, overwrites chunk `damaged` on
/// its disk with bytes that are not zstd, restarts it and checks that exactly that chunk
/// is fetched again and the repaired snapshot installed with every key.
async fn damaged_chunk_is_fetched_again(damaged: u64) {
    init_logs();
    let root = tempfile::tempdir().unwrap();
    let sync = SnapshotConfig::default()
        .every_entries(2_000)
        .keep_tail(100);
    let mut members = cluster(root.path(), sync).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();
    // 2,500 keys of 2 KiB: a snapshot of about 5 MB, five 1 MiB chunks.
    let commit = write(&members[li].group, "d-", 2_500, 2 << 10, 250).await;
    let fi = (li + 1) % 3;
    bounded("the follower cut its snapshot and pruned", 60, async {
        loop {
            let m = &members[fi];
            if m.stats.held().last().is_some_and(|h| h.chunks >= 3)
                && m.group.status().log_start.0 > 1
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    bounded("follower applied everything", 60, async {
        members[fi].group.when().applied_reaches(commit).await
    })
    .await
    .expect("applied");
    let group = members[fi].group.id();
    let anchor = members[fi].stats.held().last().unwrap().anchor.index().0;
    let follower = members.remove(fi);
    let (dir, _, _) = stop(follower).await;

    // Damage one chunk of the newest snapshot on disk.
    {
        let store = tessera_storage::Store::open(&dir).expect("open store");
        store
            .snapshot_store(key_group(group).0)
            .put_chunk(anchor, damaged, b"this is not a zstd chunk")
            .expect("damage a chunk");
    }

    let others: Vec<PeerAddr> = members.iter().map(|m| m.addr).collect();
    let back = start(&dir, 0, &others, sync).await;
    bounded("the repaired follower applied everything", 60, async {
        back.group.when().applied_reaches(commit).await
    })
    .await
    .expect("applied");
    assert_eq!(
        count(&back.stats.damaged_chunks),
        1,
        "one damaged chunk found"
    );
    assert_eq!(
        count(&back.stats.chunks_fetched),
        1,
        "only that chunk fetched"
    );
    assert_eq!(
        count(&back.stats.installs),
        1,
        "the repaired snapshot was installed"
    );
    assert_eq!(len(&back.group, Consistency::Weak).await, 2_500);
    members.push(back);
    for m in members {
        stop(m).await;
    }
}

/// A bit flips in stored chunks while their nodes run: every chunk of the newest snapshot
/// on two of the three nodes. A new node then bootstraps from the three: the damaged
/// copies are detected when asked for and never sent (the new node rejects nothing), it
/// gets every chunk from the one intact copy and holds every key. One damaged node is
/// then restarted: it finds its damage and repairs it from a peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_damaged_while_their_nodes_run_are_never_served_and_repaired_from_a_peer() {
    init_logs();
    let root = tempfile::tempdir().unwrap();
    let sync = SnapshotConfig::default()
        .every_entries(2_000)
        .keep_tail(100);
    let mut members = cluster(root.path(), sync).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();
    // 2,500 keys of 2 KiB: a snapshot of about 5 MB, five 1 MiB chunks.
    let commit = write(&members[li].group, "r-", 2_500, 2 << 10, 250).await;
    all_hold_a_snapshot(&members, 4_000_000).await;
    for m in &members {
        bounded("every member applied everything", 60, async {
            m.group.when().applied_reaches(commit).await
        })
        .await
        .expect("applied");
    }
    let group = members[0].group.id();
    let anchors: Vec<_> = members
        .iter()
        .map(|m| m.stats.held().last().map(|h| (h.anchor, h.chunks)))
        .collect();
    let Some((anchor, chunks)) = anchors[0] else {
        panic!("no snapshot held: {anchors:?}")
    };
    assert!(
        anchors.iter().all(|a| *a == Some((anchor, chunks))),
        "every member holds the same newest snapshot: {anchors:?}"
    );

    // One bit of every chunk flips on two running nodes (their RocksDB, under them).
    let damaged = [li, (li + 1) % 3];
    for &d in &damaged {
        let dir = members[d].network.data_dir().expect("a data directory");
        let store = dir.store().snapshot_store(key_group(group).0);
        for chunk in 0..u64::from(chunks) {
            let mut bytes = store
                .chunk(anchor.index().0, chunk)
                .expect("read a chunk")
                .expect("the chunk is there");
            let at = bytes.len() / 2;
            bytes[at] ^= 0x10;
            store
                .put_chunk(anchor.index().0, chunk, &bytes)
                .expect("damage a chunk");
        }
    }

    // A new node bootstraps from all three, one chunk per request, one per peer at a time
    // (so each provider is asked).
    let mut spread = sync;
    spread.transfer.max_in_flight_per_peer = 1;
    spread.transfer.max_chunks_per_request = 1;
    let seed: Vec<PeerAddr> = members.iter().map(|m| m.addr).collect();
    let fresh = start(&root.path().join("n3"), 0, &seed, spread).await;
    bounded("the new node catches up", 120, async {
        fresh.group.when().applied_reaches(commit).await
    })
    .await
    .expect("catch up");
    assert_eq!(len(&fresh.group, Consistency::Weak).await, 2_500);
    assert_eq!(
        count(&fresh.stats.chunks_rejected),
        0,
        "no damaged chunk reached the new node"
    );
    assert_eq!(count(&fresh.stats.installs), 1);
    let not_served: Vec<u64> = damaged
        .iter()
        .map(|&d| count(&members[d].stats.damaged_not_served))
        .collect();
    assert!(
        not_served.iter().sum::<u64>() >= 1,
        "the damaged nodes were asked and refused: {not_served:?}"
    );
    for &d in &damaged {
        assert_eq!(
            count(&members[d].stats.chunks_served),
            0,
            "a damaged node served nothing"
        );
    }

    // The damaged follower restarts: it finds its damage and repairs it from a peer.
    let di = damaged[1];
    let follower = members.remove(di);
    let (dir, _, _) = stop(follower).await;
    let others: Vec<PeerAddr> = members.iter().map(|m| m.addr).collect();
    let back = start(&dir, 0, &others, sync).await;
    bounded("the repaired follower applied everything", 60, async {
        back.group.when().applied_reaches(commit).await
    })
    .await
    .expect("applied");
    assert_eq!(
        count(&back.stats.damaged_chunks),
        u64::from(chunks),
        "every damaged chunk found at restart"
    );
    assert!(count(&back.stats.chunks_fetched) >= u64::from(chunks));
    assert_eq!(count(&back.stats.chunks_rejected), 0);
    assert_eq!(len(&back.group, Consistency::Weak).await, 2_500);
    eprintln!(
        "{chunks} chunks damaged on 2 of 3 running nodes: {not_served:?} requests refused as damaged, \
         the new node fetched {} chunks, rejected 0; the restarted node found {} damaged and fetched {}",
        count(&fresh.stats.chunks_fetched),
        count(&back.stats.damaged_chunks),
        count(&back.stats.chunks_fetched),
    );
    members.push(back);
    members.push(fresh);
    for m in members {
        stop(m).await;
    }
}
