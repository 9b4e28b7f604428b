//! In-process clusters on loopback: three nodes with durable groups elect a leader,
//! replicate from leader and follower, serve strong and weak queries, survive the loss
//! and restart of members and of the whole group, and catch a far-behind follower up by
//! log replay from several peers.

mod common;
use common::{bind_loopback, bounded, init_logs, loopback_consensus};

use std::path::{Path, PathBuf};
use std::time::Duration;
use tessera::groups::machine::{ApplyContext, StateMachine};
use tessera::groups::LogReplaySync;
use tessera::groups::{
    ConsensusConfig, Consistency, Group, GroupBuilder, GroupError, GroupKey, Index, StopCause,
};
use tessera::network::{Network, NetworkId, PeerAddr};
use tessera::store::{kv, KvCommand, KvMachine, KvQuery, KvResult};
use tessera::PeerId;

fn config() -> ConsensusConfig {
    loopback_consensus(Duration::from_secs(2))
}

struct Member<M: StateMachine = KvMachine> {
    dir: PathBuf,
    network: Network,
    group: Group<M>,
    addr: PeerAddr,
}

/// The replicated map of `tessera::store`, caught up by log replay instead of snapshots.
struct ReplayKv {
    state: kv::KvState,
    sync: LogReplaySync<ReplayKv>,
}

impl Default for ReplayKv {
    /// Batches of 200 entries (not the default 2,000): a catch-up of 50,000 entries then
    /// takes 250 requests, long enough for a peer that bonds after the first ask to be
    /// asked again and share the load.
    fn default() -> Self {
        ReplayKv {
            state: kv::KvState::default(),
            sync: LogReplaySync::default()
                .with_batch_size(std::num::NonZeroU32::new(200).expect("not zero")),
        }
    }
}

impl StateMachine for ReplayKv {
    type Command = KvCommand;
    type Query = KvQuery;
    type QueryResult = KvResult;
    type StateSync = LogReplaySync<ReplayKv>;

    fn signature(&self) -> tessera::UniqueId {
        tessera::Digest::of(b"tessera/test/replay-kv")
    }

    fn apply(&mut self, command: KvCommand, ctx: &dyn ApplyContext) {
        self.apply_batch([command], ctx);
    }

    fn apply_batch(
        &mut self,
        commands: impl IntoIterator<Item = KvCommand>,
        ctx: &dyn ApplyContext,
    ) {
        kv::apply_batch(
            &mut self.state,
            commands,
            ctx,
            &kv::Retention::default(),
            None,
        );
    }

    fn query(&self, query: KvQuery) -> KvResult {
        kv::answer(&self.state, query)
    }

    fn state_sync(&self) -> LogReplaySync<ReplayKv> {
        self.sync.clone()
    }
}

async fn start<M: StateMachine>(
    dir: &Path,
    port: u16,
    peers: &[PeerAddr],
    machine: M,
) -> Member<M> {
    let network = bind_loopback("tessera-cluster-test", dir, port, peers).await;
    let group = GroupBuilder::new(&network)
        .with_key(GroupKey::from_secret("cluster test"))
        .with_state_machine(machine)
        .with_consensus_config(config())
        .join()
        .expect("join");
    let addr = network.local_addr();
    Member {
        dir: dir.to_path_buf(),
        network,
        group,
        addr,
    }
}

async fn stop<M: StateMachine>(m: Member<M>) -> (PathBuf, u16) {
    let port = m.addr.addr.port();
    m.group.shutdown().await;
    m.network.shutdown().await;
    drop(m.group);
    (m.dir, port)
}

async fn cluster(root: &Path) -> Vec<Member> {
    cluster_of(root, KvMachine::default).await
}

async fn cluster_of<M: StateMachine>(root: &Path, machine: impl Fn() -> M) -> Vec<Member<M>> {
    let first = start(&root.join("n0"), 0, &[], machine()).await;
    let seed = [first.addr];
    let mut members = vec![first];
    for i in 1..3 {
        members.push(start(&root.join(format!("n{i}")), 0, &seed, machine()).await);
    }
    members
}

async fn leader_of<M: StateMachine>(members: &[Member<M>]) -> PeerId {
    leader_other_than(members, None).await
}

/// Waits until every live member names the same leader, which is not `old`.
async fn leader_other_than<M: StateMachine>(members: &[Member<M>], old: Option<PeerId>) -> PeerId {
    bounded("leader elected", 30, async {
        loop {
            let leader = members[0].group.leader();
            // Every live member must agree before we call it elected.
            if let Some(leader) = leader.filter(|l| Some(*l) != old) {
                if members.iter().all(|m| m.group.leader() == Some(leader)) {
                    return leader;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn put(key: &str, value: &str) -> KvCommand {
    KvCommand::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

async fn get(group: &Group<KvMachine>, key: &str, c: Consistency) -> Option<String> {
    let (result, _) = bounded(
        "query",
        10,
        group.query(KvQuery::Get { key: key.into() }, c),
    )
    .await
    .expect("query");
    match result {
        KvResult::Value(v) => v.map(|b| String::from_utf8(b).expect("utf8")),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_and_answer_queries() {
    let root = tempfile::tempdir().unwrap();
    let members = cluster(root.path()).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();
    let fi = (li + 1) % 3;
    // `stopped` resolves when the worker stops, not on the status changes of the writes.
    let stopped = tokio::spawn({
        let group = members[li].group.clone();
        async move { group.stopped().await }
    });
    let at = bounded(
        "execute on leader",
        10,
        members[li].group.execute(put("a", "1")),
    )
    .await
    .expect("execute on leader");
    assert!(at > Index(1));
    let at2 = bounded(
        "execute on follower",
        10,
        members[fi].group.execute(put("b", "2")),
    )
    .await
    .expect("execute on follower (forwarded)");
    assert!(at2 > at);
    for m in &members {
        assert_eq!(
            get(&m.group, "a", Consistency::Strong).await.as_deref(),
            Some("1")
        );
        assert_eq!(
            get(&m.group, "b", Consistency::Strong).await.as_deref(),
            Some("2")
        );
    }
    // A weak read on the node that executed sees its own write (applied before Ok).
    assert_eq!(
        get(&members[fi].group, "b", Consistency::Weak)
            .await
            .as_deref(),
        Some("2")
    );
    assert_eq!(members[li].group.members().voters().len(), 3);
    assert!(
        !stopped.is_finished(),
        "stopped() resolved while the group was running"
    );
    for m in members {
        stop(m).await;
    }
    let why = bounded("stopped() after shutdown", 10, stopped)
        .await
        .expect("the stopped() task");
    assert!(
        matches!(
            why,
            GroupError::Stopped {
                cause: StopCause::ShutDown
            }
        ),
        "stopped() said {why:?}"
    );
}

/// Writes `n` keys `prefix-i` through `via`, returning the acknowledged ones.
async fn write_keys(via: &Group<KvMachine>, prefix: &str, n: usize) -> Vec<String> {
    let mut acked = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}-{i}");
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(10), via.execute(put(&key, &key))).await
        {
            acked.push(key);
        }
    }
    acked
}

async fn assert_all_readable(members: &[Member], keys: &[String]) {
    for m in members {
        for key in keys {
            assert_eq!(
                get(&m.group, key, Consistency::Strong).await.as_deref(),
                Some(key.as_str()),
                "{key} on {}",
                m.addr
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_keeps_every_acknowledged_write_and_members_restart_from_disk() {
    let root = tempfile::tempdir().unwrap();
    let mut members = cluster(root.path()).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();
    let mut acked = write_keys(&members[li].group, "before", 20).await;
    assert_eq!(acked.len(), 20, "a healthy group acknowledges every write");

    // Drop the leader: the other two elect a new one and lose nothing.
    let old = members.remove(li);
    let (old_dir, old_port) = stop(old).await;
    let new_leader = leader_other_than(&members, Some(leader)).await;
    let via = members
        .iter()
        .position(|m| m.addr.id != new_leader)
        .unwrap();
    acked.extend(write_keys(&members[via].group, "during", 10).await);
    assert_all_readable(&members, &acked).await;

    // The old leader restarts from its data directory (no --peer: it kept its peers),
    // keeps its state and catches up with what it missed.
    let back = start(&old_dir, old_port, &[], KvMachine::default()).await;
    assert_eq!(back.addr.id, leader, "identity survives the restart");
    members.push(back);
    let commit = members[0].group.committed();
    bounded("restarted node catches up", 20, async {
        members[2].group.when().applied_reaches(commit).await
    })
    .await
    .expect("catch up");
    assert_all_readable(&members, &acked).await;

    // Each remaining member restarts in turn and rejoins with its state.
    for i in 0..2 {
        let m = members.remove(0);
        let (dir, port) = stop(m).await;
        let m = start(&dir, port, &[], KvMachine::default()).await;
        members.push(m);
        leader_of(&members).await;
        acked.extend(write_keys(&members[2].group, &format!("restart{i}"), 5).await);
    }
    assert_all_readable(&members, &acked).await;
    for m in members {
        stop(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_group_stopped_and_restarted_keeps_its_state_and_elects_again() {
    let root = tempfile::tempdir().unwrap();
    let members = cluster(root.path()).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();
    let acked = write_keys(&members[li].group, "k", 30).await;
    assert_eq!(acked.len(), 30);
    let term_before = members[li].group.status().term;
    let mut saved = Vec::new();
    for m in members {
        saved.push(stop(m).await);
    }
    let mut members = Vec::new();
    for (dir, port) in saved {
        members.push(start(&dir, port, &[], KvMachine::default()).await);
    }
    leader_of(&members).await;
    assert!(members[0].group.status().term > term_before);
    assert_all_readable(&members, &acked).await;
    for m in members {
        stop(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_missed_50_000_entries_catches_up_by_log_replay_from_two_peers() {
    init_logs();
    let root = tempfile::tempdir().unwrap();
    let mut members = cluster_of(root.path(), ReplayKv::default).await;
    let leader = leader_of(&members).await;
    let fi = members.iter().position(|m| m.addr.id != leader).unwrap();
    let (dir, port) = stop(members.remove(fi)).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();

    const MISSED: usize = 50_000;
    let mut commit = Index(0);
    for chunk in 0..(MISSED / 1000) {
        let commands = (0..1000).map(|i| {
            let n = chunk * 1000 + i;
            put(&format!("bulk-{n}"), &format!("{n}"))
        });
        let indices = bounded("bulk write", 60, members[li].group.execute_many(commands))
            .await
            .expect("bulk write");
        commit = *indices.last().expect("1000 indices");
    }
    assert!(commit.0 >= MISSED as u64);

    let machine = ReplayKv::default();
    let stats = machine.sync.stats();
    let back = start(&dir, port, &[], machine).await;
    bounded("replayed follower catches up", 60, async {
        back.group.when().applied_reaches(commit).await
    })
    .await
    .expect("catch up");
    let fetched = stats.fetched();
    let serving: Vec<_> = fetched.iter().filter(|(_, n)| **n > 0).collect();
    assert!(
        serving.len() >= 2,
        "entries must come from at least two peers, got {fetched:?}"
    );
    let delivered = stats.delivered.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        // The rest may stream from the leader once the follower is within the
        // leader's replay threshold (8,192 entries by default).
        delivered >= (MISSED as u64) / 2,
        "most missed entries come by replay, {delivered} handed to the core ({fetched:?})"
    );
    members.push(back);
    let (len, _) = bounded(
        "count",
        10,
        members[2].group.query(KvQuery::Len, Consistency::Strong),
    )
    .await
    .expect("len");
    assert_eq!(len, KvResult::Len(MISSED as u64));
    for m in members {
        stop(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sending_undecodable_group_frames_is_cut_off_and_the_group_keeps_serving() {
    use tessera::groups::raft::{Message, ReadIndex};
    use tessera::groups::wire::GroupFrame;
    use tessera::network::GroupAccess;

    let root = tempfile::tempdir().unwrap();
    let members = cluster(root.path()).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();

    // An authenticated peer (it has the key) that speaks nonsense inside the group.
    let rogue = Network::builder(NetworkId::named("tessera-cluster-test"))
        .bind()
        .await
        .expect("bind rogue");
    let access = GroupAccess::new(
        members[li].group.id(),
        GroupKey::from_secret("cluster test").link_key(),
    );
    let links = rogue.join(access).expect("join");
    let link = bounded("rogue link", 10, links.connect_addr(members[li].addr))
        .await
        .expect("the key is right, so the link comes up");
    link.send(vec![0xff; 64]).await.expect("send garbage");
    let reason = bounded("link closed", 10, link.closed()).await;
    assert!(!format!("{reason:?}").is_empty());
    drop(link);

    // A well-formed frame with a hostile message is dropped by the core, not obeyed.
    let link = bounded("rogue link again", 10, links.connect_addr(members[li].addr))
        .await
        .expect("link");
    let frame = GroupFrame::Raft(Message::ReadIndex(ReadIndex { ctx: u64::MAX }));
    let bytes = tessera::primitives::codec::encode(&frame).unwrap();
    link.send(bytes).await.expect("send");

    // The group still commits and answers.
    let acked = write_keys(&members[li].group, "after-rogue", 5).await;
    assert_eq!(acked.len(), 5);
    assert_all_readable(&members, &acked).await;
    drop(link);
    drop(links);
    rogue.shutdown().await;
    for m in members {
        stop(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_nodes_join_as_learners_are_promoted_in_pairs_and_can_be_removed_explicitly() {
    init_logs();
    let root = tempfile::tempdir().unwrap();
    let mut members = cluster(root.path()).await;
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();
    let acked = write_keys(&members[li].group, "early", 10).await;

    // A fourth node alone stays a learner (four voters tolerate no more failures than
    // three); with a fifth caught up, both are promoted.
    let seed = [members[0].addr];
    let fourth = start(&root.path().join("n3"), 0, &seed, KvMachine::default()).await;
    let id4 = fourth.addr.id;
    members.push(fourth);
    bounded("fourth node added as a caught-up learner", 30, async {
        loop {
            let m = members[li].group.members();
            if m.learners().contains_key(&id4) && members[3].group.status().applied.0 > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(members[li].group.members().voters().len(), 3);
    let fifth = start(&root.path().join("n4"), 0, &seed, KvMachine::default()).await;
    let id5 = fifth.addr.id;
    members.push(fifth);
    bounded("fourth and fifth nodes promoted to voters", 30, async {
        loop {
            let voters = members[li].group.members().voters().clone();
            if voters.contains(&id4) && voters.contains(&id5) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_all_readable(&members, &acked).await;

    // Removal is explicit and sticks: the nodes are removed while they still run, and the
    // leader does not add them back although they stay bonded.
    for id in [id4, id5] {
        let leader = leader_of(&members).await;
        let li = members.iter().position(|m| m.addr.id == leader).unwrap();
        bounded("remove", 20, async {
            loop {
                match members[li].group.remove_member(id).await {
                    Ok(_) => break,
                    // A change may still be pending (a promotion); retry.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..2 {
        let node = members.pop().unwrap();
        stop(node).await;
    }
    let leader = leader_of(&members).await;
    let li = members.iter().position(|m| m.addr.id == leader).unwrap();
    let m = members[li].group.members();
    assert!(!m.contains(&id4) && !m.contains(&id5), "{m:?}");
    assert_eq!(m.voters().len(), 3);
    let more = write_keys(&members[li].group, "after-remove", 5).await;
    assert_eq!(more.len(), 5);
    for m in members {
        stop(m).await;
    }
}
