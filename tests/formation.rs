//! How groups form and grow, in-process on loopback: never two groups under one id without
//! saying so, a group grown one node at a time that survives its leader's loss, and a
//! member that lost its state re-synced before it counts.
//!
//! - Nodes started as mosaik's rival scenarios start them (each expecting to found alone,
//!   the later ones knowing an earlier one) form one group: a fresh node asks the peers it
//!   knows before it founds anything.
//! - Two groups founded apart (each alone, knowing nobody) and then linked refuse each
//!   other's traffic, name the other founding in their status, and keep their own data.
//! - A group founded alone and joined one node at a time reaches three voters (promotions
//!   two at a time, never resting on two voters) and then survives the loss of its leader.
//! - A member whose in-memory state is gone (its group reopened on the same node) is
//!   caught up again by the leader, which stops trusting what it knew of its log.

mod common;
use common::{bind_loopback, bounded};

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tessera::groups::machine::{ApplyContext, StateMachine};
use tessera::groups::{
    ConsensusConfig, Consistency, Group, GroupBuilder, GroupKey, GroupStatus, LogReplaySync,
};
use tessera::network::{Network, PeerAddr};

/// The commands a node applied, in order: enough to tell two groups' data apart.
#[derive(Default, Clone)]
struct Notes {
    notes: Vec<String>,
    sync: LogReplaySync<Notes>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Note(String);

impl StateMachine for Notes {
    type Command = Note;
    type Query = ();
    type QueryResult = Vec<String>;
    type StateSync = LogReplaySync<Notes>;

    fn signature(&self) -> tessera::UniqueId {
        tessera::Digest::of(b"tessera/test/notes")
    }

    fn apply(&mut self, command: Note, _: &dyn ApplyContext) {
        self.notes.push(command.0);
    }

    fn query(&self, (): ()) -> Vec<String> {
        self.notes.clone()
    }

    fn state_sync(&self) -> LogReplaySync<Notes> {
        self.sync.clone()
    }
}

fn config(expect: usize) -> ConsensusConfig {
    ConsensusConfig::builder()
        .with_heartbeat_interval(Duration::from_millis(50))
        .with_heartbeat_jitter(Duration::from_millis(10))
        .with_election_timeout(Duration::from_millis(400))
        .with_election_timeout_jitter(Duration::from_millis(200))
        .with_bootstrap_delay(Duration::from_millis(200))
        .with_forward_timeout(Duration::from_secs(5))
        .with_query_timeout(Duration::from_secs(5))
        .with_bootstrap_expect(expect)
        .build()
        .expect("valid config")
}

struct Node {
    network: Network,
    group: Group<Notes>,
    addr: PeerAddr,
}

fn join(network: &Network, expect: usize, in_memory: bool) -> Group<Notes> {
    let builder = GroupBuilder::new(network)
        .with_key(GroupKey::from_secret("formation test"))
        .with_state_machine(Notes::default())
        .with_consensus_config(config(expect));
    if in_memory {
        builder.in_memory().join().expect("join")
    } else {
        builder.join().expect("join")
    }
}

async fn start(dir: &std::path::Path, peers: &[PeerAddr], expect: usize) -> Node {
    let network = bind_loopback("tessera-formation-test", dir, 0, peers).await;
    let group = join(&network, expect, false);
    let addr = network.local_addr();
    Node {
        network,
        group,
        addr,
    }
}

/// Waits until `pred` holds for `node`'s status; the step is named on timeout.
async fn until(what: &str, group: &Group<Notes>, pred: impl Fn(&GroupStatus) -> bool) {
    bounded(what, 30, async {
        loop {
            if pred(&group.status()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Executes `note` on `group`, retrying while the group fails over.
async fn write(group: &Group<Notes>, note: &str) {
    bounded(&format!("write {note}"), 30, async {
        loop {
            match group.execute(Note(note.into())).await {
                Ok(_) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
}

/// The notes `group` holds, read through the leader (linearizable).
async fn notes(group: &Group<Notes>) -> Vec<String> {
    bounded("strong read", 30, async {
        loop {
            match group.query((), Consistency::Strong).await {
                Ok((notes, _)) => return notes,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_founded_alone_and_grown_one_node_at_a_time_is_one_group_that_survives_its_leader()
{
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    // The first writer starts alone; the others each expect to found alone too (as
    // mosaik's rival scenarios start them) but know the first one.
    let a = start(dirs[0].path(), &[], 1).await;
    until("the lone founder leads", &a.group, |s| {
        s.leader == Some(s.id)
    })
    .await;
    write(&a.group, "a1").await;
    let b = start(dirs[1].path(), &[a.addr], 1).await;
    until("b joins a's group", &b.group, |s| {
        s.commit.0 > 0 && s.leader.is_some()
    })
    .await;
    let m = a.group.members();
    assert_eq!(
        m.voters().len(),
        1,
        "one learner beside one voter stays a learner: {m:?}"
    );
    let c = start(dirs[2].path(), &[a.addr], 1).await;
    for n in [&a, &b, &c] {
        until("three voters", &n.group, |s| s.members.voters().len() == 3).await;
    }
    let cluster = a.group.status().cluster.expect("a founded a cluster");
    for n in [&b, &c] {
        let s = n.group.status();
        assert_eq!(s.cluster, Some(cluster), "one founding, not several");
        assert!(s.conflicts.is_empty(), "{:?}", s.conflicts);
    }
    write(&c.group, "c1").await;
    assert_eq!(notes(&b.group).await, ["a1", "c1"]);

    // The leader dies; the two others elect a new one and take writes.
    let leader = a.group.leader().expect("a leader");
    let (dead, alive): (Vec<&Node>, Vec<&Node>) =
        [&a, &b, &c].into_iter().partition(|n| n.addr.id == leader);
    dead[0].group.shutdown().await;
    dead[0].network.shutdown().await;
    for n in &alive {
        until("a new leader", &n.group, |s| {
            s.leader.is_some() && s.leader != Some(leader)
        })
        .await;
    }
    write(&alive[0].group, "after").await;
    assert_eq!(notes(&alive[1].group).await, ["a1", "c1", "after"]);
    for n in alive {
        n.group.shutdown().await;
        n.network.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_founded_apart_refuse_each_other_and_keep_their_own_data() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    // Each knows nobody, so each founds its own group: same group id, two foundings.
    let a = start(dirs[0].path(), &[], 1).await;
    let b = start(dirs[1].path(), &[], 1).await;
    for n in [&a, &b] {
        until("founded alone", &n.group, |s| s.leader == Some(s.id)).await;
    }
    assert_eq!(a.group.id(), b.group.id());
    write(&a.group, "only in a").await;
    write(&b.group, "only in b").await;
    let (ca, cb) = (
        a.group.status().cluster.expect("a's cluster"),
        b.group.status().cluster.expect("b's cluster"),
    );
    assert_ne!(ca, cb, "two foundings have two cluster ids");

    // Now they learn of each other and link.
    a.network.add_peer(b.addr);
    until("a names b's founding", &a.group, |s| {
        s.conflicts == [(b.addr.id, cb)]
    })
    .await;
    until("b names a's founding", &b.group, |s| {
        s.conflicts == [(a.addr.id, ca)]
    })
    .await;
    // Neither took the other's entries or leader; both still take writes.
    write(&a.group, "a again").await;
    write(&b.group, "b again").await;
    assert_eq!(notes(&a.group).await, ["only in a", "a again"]);
    assert_eq!(notes(&b.group).await, ["only in b", "b again"]);
    for n in [&a, &b] {
        let s = n.group.status();
        assert_eq!(s.leader, Some(s.id));
        assert_eq!(s.members.voters().len(), 1, "{:?}", s.members);
        n.group.shutdown().await;
        n.network.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_lost_its_state_is_caught_up_again() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    // In-memory groups on durable networks: the peer id survives, the state does not.
    let mut networks = Vec::new();
    let mut peers = Vec::new();
    for dir in &dirs {
        let n = bind_loopback("tessera-formation-test", dir.path(), 0, &peers).await;
        peers.push(n.local_addr());
        networks.push(n);
    }
    let mut groups: Vec<Group<Notes>> = networks.iter().map(|n| join(n, 3, true)).collect();
    for g in &groups {
        until("a leader", g, |s| s.leader.is_some()).await;
    }
    for k in 0..10 {
        write(&groups[0], &format!("before {k}")).await;
    }
    // A follower's group is dropped and reopened on the same node: empty state, same id.
    let leader = groups[0].leader().expect("leader");
    let i = (0..3)
        .find(|i| networks[*i].peer_id() != leader)
        .expect("a follower");
    groups[i].shutdown().await;
    groups[i] = join(&networks[i], 3, true);
    for k in 0..5 {
        write(&groups[(i + 1) % 3], &format!("after {k}")).await;
    }
    let want = notes(&groups[(i + 1) % 3]).await;
    assert_eq!(want.len(), 15);
    let reopened = &groups[i];
    bounded("the reopened member catches up", 30, async {
        loop {
            if let Ok((got, _)) = reopened.query((), Consistency::Weak).await {
                if got == want {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for (g, n) in groups.iter().zip(&networks) {
        g.shutdown().await;
        n.shutdown().await;
    }
}
