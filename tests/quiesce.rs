//! Quiescence on a real in-process cluster (three nodes on loopback, several groups each):
//! idle groups go quiet (their status says so, and their raft traffic stops), a write to
//! a quiet group wakes it and succeeds, and a quiet group whose leader's node shuts down
//! elects a new leader (the closed links wake the followers); a group with a member down
//! goes quiet without it and catches it up once it is back.
//!
//! Waits are bounded generously; no assertion is about speed.

mod common;
use common::{bind_loopback, bounded, loopback_consensus};

use std::path::Path;
use std::time::Duration;
use tessera::groups::metrics::{PeerFrame, PeerLabel};
use tessera::groups::{Group, GroupBuilder, GroupKey};
use tessera::network::{Network, PeerAddr};
use tessera::store::{KvCommand, KvMachine};
use tessera::PeerId;

const GROUPS: usize = 3;

/// Every kind label a group frame may carry (see `groups::metrics`).
const KINDS: [&str; 11] = [
    "append",
    "append_response",
    "vote",
    "vote_response",
    "read_index",
    "forward",
    "timeout_now",
    "quiesce",
    "wake",
    "hello",
    "sync",
];

struct Node {
    network: Network,
    groups: Vec<Group<KvMachine>>,
    id: PeerId,
}

async fn start(dir: &Path, peers: &[PeerAddr]) -> (Node, PeerAddr) {
    let network = bind_loopback("tessera-quiesce-test", dir, 0, peers).await;
    let groups = (0..GROUPS)
        .map(|g| {
            GroupBuilder::new(&network)
                .with_key(GroupKey::from_secret(format!("quiesce test {g}")))
                .with_state_machine(KvMachine::default())
                .with_consensus_config(loopback_consensus(Duration::from_secs(5)))
                .join()
                .expect("join")
        })
        .collect();
    let addr = network.local_addr();
    let id = addr.id;
    (
        Node {
            network,
            groups,
            id,
        },
        addr,
    )
}

async fn cluster(root: &Path) -> Vec<Node> {
    let (first, addr) = start(&root.join("n0"), &[]).await;
    let mut nodes = vec![first];
    for i in 1..3 {
        nodes.push(start(&root.join(format!("n{i}")), &[addr]).await.0);
    }
    nodes
}

/// Shuts a node down: its groups, then its network.
async fn stop(node: Node) {
    for group in &node.groups {
        group.shutdown().await;
    }
    node.network.shutdown().await;
}

/// Waits until every live node names the same leader of group `g`, other than `old`.
async fn leader(nodes: &[&Node], g: usize, old: Option<PeerId>) -> PeerId {
    bounded("leader elected", 60, async {
        loop {
            let l = nodes[0].groups[g].leader().filter(|l| Some(*l) != old);
            if let Some(l) = l.filter(|l| nodes.iter().all(|n| n.groups[g].leader() == Some(*l))) {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn put(key: &str) -> KvCommand {
    KvCommand::Put {
        key: key.into(),
        value: b"v".to_vec(),
    }
}

/// Waits until group `g` is quiesced on every node in `nodes`.
async fn all_quiesced(nodes: &[&Node], g: usize) {
    bounded("group quiesced everywhere", 60, async {
        while !nodes.iter().all(|n| n.groups[g].status().quiesced) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Frames sent by every group of `nodes` to their peers: (raft frames, hellos).
fn frames_sent(nodes: &[&Node], all: &[PeerId]) -> (u64, u64) {
    let (mut raft, mut hellos) = (0, 0);
    for n in nodes {
        for g in &n.groups {
            for peer in all.iter().filter(|p| **p != n.id) {
                for kind in KINDS {
                    let labels = PeerFrame {
                        peer: PeerLabel::from(peer),
                        kind,
                    };
                    let count = g.metrics().sent_frames.get_or_create(&labels).get();
                    if kind == "hello" {
                        hellos += count;
                    } else {
                        raft += count;
                    }
                }
            }
        }
    }
    (raft, hellos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_groups_quiesce_go_silent_and_a_write_wakes_one() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = cluster(root.path()).await;
    let live: Vec<&Node> = nodes.iter().collect();
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.id).collect();
    for g in 0..GROUPS {
        leader(&live, g, None).await;
        bounded("write", 30, nodes[g % 3].groups[g].execute(put("a")))
            .await
            .expect("write");
    }
    for g in 0..GROUPS {
        all_quiesced(&live, g).await;
    }
    let window = Duration::from_secs(2);
    let before = frames_sent(&live, &ids);
    tokio::time::sleep(window).await;
    let after = frames_sent(&live, &ids);
    let (raft, hellos) = (after.0 - before.0, after.1 - before.1);
    println!(
        "{GROUPS} quiesced groups on 3 nodes sent {raft} raft frames and {hellos} hellos in {window:?}"
    );
    // Awake, each leader alone sends two heartbeats every 50 ms: 240 frames in 2 s.
    assert!(
        raft <= 2,
        "quiesced groups still send raft frames: {raft} in {window:?}"
    );
    assert!(
        (0..GROUPS).all(|g| live.iter().all(|n| n.groups[g].status().quiesced)),
        "something woke a group"
    );
    // A write through a follower wakes the group and succeeds; the group quiets again.
    let g = 1;
    let l = nodes[0].groups[g].leader().expect("leader");
    let follower = nodes.iter().position(|n| n.id != l).expect("a follower");
    let index = bounded(
        "write to a quiesced group",
        30,
        nodes[follower].groups[g].execute(put("b")),
    )
    .await
    .expect("a write to a quiesced group succeeds");
    println!("write to a quiesced group applied at {index}");
    all_quiesced(&live, g).await;
    assert!(nodes[0].groups[g].metrics().quiesces.get() >= 2);
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiesced_group_elects_a_new_leader_when_the_leaders_node_shuts_down() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(root.path()).await;
    let live: Vec<&Node> = nodes.iter().collect();
    let g = 0;
    let old = leader(&live, g, None).await;
    bounded("write", 30, nodes[0].groups[g].execute(put("a")))
        .await
        .expect("write");
    all_quiesced(&live, g).await;
    let term = nodes[0].groups[g].status().term;
    let dead = nodes
        .iter()
        .position(|n| n.id == old)
        .expect("leader's node");
    stop(nodes.remove(dead)).await;
    let live: Vec<&Node> = nodes.iter().collect();
    let new = leader(&live, g, Some(old)).await;
    assert_ne!(new, old);
    assert!(nodes[0].groups[g].status().term > term);
    bounded(
        "write after failover",
        30,
        nodes[0].groups[g].execute(put("b")),
    )
    .await
    .expect("write after failover");
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_a_member_down_quiesces_and_catches_the_member_up_once_it_is_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(root.path()).await;
    let first = nodes[0].network.local_addr();
    let live: Vec<&Node> = nodes.iter().collect();
    let g = 0;
    let l = leader(&live, g, None).await;
    bounded("write", 30, nodes[0].groups[g].execute(put("a")))
        .await
        .expect("write");
    all_quiesced(&live, g).await;
    // A follower other than node 0 (whose address the restart uses) goes down.
    let down = (1..3)
        .find(|&i| nodes[i].id != l)
        .expect("a follower besides node 0");
    stop(nodes.remove(down)).await;
    let live: Vec<&Node> = nodes.iter().collect();
    // The two left go quiet without it, also after a write it misses.
    all_quiesced(&live, g).await;
    let leading = nodes.iter().position(|n| n.id == l).expect("leader's node");
    let index = bounded(
        "write while a member is down",
        30,
        nodes[leading].groups[g].execute(put("b")),
    )
    .await
    .expect("write while a member is down");
    all_quiesced(&live, g).await;
    assert_eq!(nodes[leading].groups[g].leader(), Some(l), "no election");

    // Back: the leader wakes, catches it up, and the three go quiet again.
    let (back, _) = start(&root.path().join(format!("n{down}")), &[first]).await;
    bounded("the member back catches up", 60, async {
        while back.groups[g].status().applied < index {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    nodes.push(back);
    let live: Vec<&Node> = nodes.iter().collect();
    all_quiesced(&live, g).await;
    assert_eq!(nodes[0].groups[g].leader(), Some(l), "same leader");
    for n in nodes {
        stop(n).await;
    }
}
