//! The worker's jobs one at a time, without its loop: a single-voter worker on loopback
//! (a real network handle with no peers, an in-memory log) whose methods the tests call
//! directly: client requests and the status (`requests.rs`), applying and resolving
//! (`apply.rs`), announcements and peers of another founding (`peers.rs`), pruning under
//! the state sync's rule (`state_sync.rs`).

use super::{Worker, WorkerSetup};
use crate::groups::group::{GroupStatus, Request};
use crate::groups::machine::{ApplyContext, Consistency, StateMachine};
use crate::groups::raft::{ClientError, ClusterId, Membership, MembershipChange, Node, Role};
use crate::groups::replay::LogReplaySync;
use crate::groups::wire::Hello;
use crate::groups::{
    tick_for, ConsensusConfig, Cursor, GroupError, GroupKey, InMemoryLogStore, Index, LocalStorage,
    Storage,
};
use crate::network::{GroupAccess, Network, NetworkId};
use crate::primitives::codec;
use crate::{Digest, GroupId, PeerId, UniqueId};
use tokio::sync::{mpsc, oneshot, watch};

/// Records every command it applies.
#[derive(Clone, Debug, Default)]
struct Recorder {
    applied: Vec<u64>,
}

impl StateMachine for Recorder {
    type Command = u64;
    type Query = ();
    type QueryResult = Vec<u64>;
    type StateSync = LogReplaySync<Recorder>;

    fn signature(&self) -> UniqueId {
        Digest::of(b"tessera/worker-tests/recorder")
    }

    fn apply(&mut self, command: u64, _: &dyn ApplyContext) {
        self.applied.push(command);
    }

    fn query(&self, _: ()) -> Vec<u64> {
        self.applied.clone()
    }

    fn state_sync(&self) -> LogReplaySync<Recorder> {
        LogReplaySync::default()
    }
}

struct Fixture {
    worker: Worker<Recorder, InMemoryLogStore>,
    status: watch::Receiver<GroupStatus>,
    /// Kept so the worker's request channel stays open.
    _requests: mpsc::Sender<Request<Recorder>>,
}

/// A worker of a founded one-voter group, not yet leading.
async fn single_voter(name: &str) -> Fixture {
    let network = Network::builder(NetworkId::named(name))
        .bind()
        .await
        .expect("bind on loopback");
    let me = network.peer_id();
    let group = GroupId(Digest::of(name.as_bytes()));
    let key = GroupKey::from_secret(name);
    let links = network
        .join(GroupAccess::new(group, key.link_key()))
        .expect("join");
    let config = ConsensusConfig::builder()
        .with_bootstrap_expect(1)
        .build()
        .expect("config");
    let tick = tick_for(&config);
    let machine = Recorder::default();
    let store = InMemoryLogStore::default();
    let mut node = Node::restart(
        me,
        config.raft_config(tick, machine.leadership_preference()),
        7,
        &store,
        Index(0),
    )
    .expect("node");
    node.bootstrap([me].into(), ClusterId(9), &store)
        .expect("bootstrap");
    let mut sync = machine.state_sync();
    crate::groups::machine::StateSync::attach(&mut sync, &LocalStorage::memory());
    let (requests_tx, requests) = mpsc::channel(8);
    let (status_tx, status) = watch::channel(GroupStatus::initial(me, group));
    let worker = Worker::new(WorkerSetup {
        me,
        group,
        network,
        links,
        node,
        store,
        machine,
        tick,
        hello_ticks: 10,
        election_ticks: 100,
        expect: 1,
        requests,
        status: status_tx,
        sync,
        applied: Index(0),
        applied_membership: Membership::default(),
        restoring: None,
        contact: None,
        metrics: Default::default(),
    });
    Fixture {
        worker,
        status,
        _requests: requests_tx,
    }
}

impl Fixture {
    /// Ticks (and drives) until this voter leads and has applied its term's no-op.
    fn lead(&mut self) {
        for _ in 0..10_000 {
            self.worker.on_tick().expect("tick");
            self.worker.drive().expect("drive");
            if self.worker.node.is_leader() && self.worker.applied >= Index(2) {
                return;
            }
        }
        panic!("a single voter never led");
    }

    fn execute(&mut self, commands: &[u64]) -> oneshot::Receiver<Result<Vec<Index>, GroupError>> {
        let (reply, rx) = oneshot::channel();
        let commands = commands
            .iter()
            .map(|c| codec::encode(c).expect("encode"))
            .collect();
        self.worker
            .on_request(Request::Execute {
                commands,
                at: std::time::Instant::now(),
                reply,
            })
            .expect("execute");
        rx
    }
}

// ---- requests.rs -------------------------------------------------------------------

#[tokio::test]
async fn an_execute_is_answered_with_its_indices_once_applied() {
    let mut f = single_voter("worker-execute").await;
    f.lead();
    let mut reply = f.execute(&[5, 6]);
    assert!(
        reply.try_recv().is_err(),
        "no answer before the entries apply"
    );
    f.worker.drive().expect("drive");
    let indices = reply.try_recv().expect("answered").expect("applied");
    assert_eq!(
        indices,
        [Index(3), Index(4)],
        "after the config and the no-op"
    );
    assert_eq!(f.worker.machine.applied, [5, 6]);
}

#[tokio::test]
async fn a_weak_query_answers_at_once_and_a_strong_one_after_its_read_index() {
    let mut f = single_voter("worker-query").await;
    f.lead();
    f.execute(&[1]);
    f.worker.drive().expect("drive");
    let (reply, mut weak) = oneshot::channel();
    f.worker
        .on_request(Request::Query {
            query: (),
            consistency: Consistency::Weak,
            reply,
        })
        .expect("weak query");
    assert_eq!(
        weak.try_recv().expect("answered at once").expect("ok"),
        (vec![1], Index(3))
    );
    let (reply, mut strong) = oneshot::channel();
    f.worker
        .on_request(Request::Query {
            query: (),
            consistency: Consistency::Strong,
            reply,
        })
        .expect("strong query");
    f.worker.drive().expect("drive");
    assert_eq!(
        strong.try_recv().expect("answered").expect("ok"),
        (vec![1], Index(3))
    );
}

#[tokio::test]
async fn a_membership_change_off_the_leader_is_refused_naming_no_leader() {
    let mut f = single_voter("worker-change").await;
    let (reply, mut rx) = oneshot::channel();
    let change = MembershipChange::AddLearner {
        peer: PeerId([3; 32]),
        observer: false,
    };
    f.worker
        .on_request(Request::Change { change, reply })
        .expect("change");
    match rx.try_recv().expect("answered at once") {
        Err(GroupError::Client(ClientError::NotLeader { leader: None })) => {}
        other => panic!("expected NotLeader, got {other:?}"),
    }
}

#[tokio::test]
async fn the_status_shows_role_term_and_positions() {
    let mut f = single_voter("worker-status").await;
    f.lead();
    f.execute(&[1, 2, 3]);
    f.worker.drive().expect("drive");
    f.worker.publish();
    let status = f.status.borrow().clone();
    assert_eq!(status.role, Role::Leader);
    assert_eq!(status.leader, Some(status.id));
    assert_eq!((status.commit, status.applied), (Index(5), Index(5)));
    assert_eq!(status.durable, status.last);
    assert_eq!(status.cluster, Some(ClusterId(9)));
    assert!(status.online);
}

// ---- apply.rs ----------------------------------------------------------------------

#[tokio::test]
async fn fed_commands_apply_in_order_and_the_applied_position_follows() {
    let mut f = single_voter("worker-apply").await;
    f.lead();
    for c in [10u64, 20, 30] {
        f.worker
            .on_request(Request::Feed {
                commands: vec![codec::encode(&c).expect("encode")],
            })
            .expect("feed");
    }
    f.worker.drive().expect("drive");
    assert_eq!(f.worker.machine.applied, [10, 20, 30]);
    assert_eq!(f.worker.applied, Index(5));
    assert_eq!(f.worker.applied, f.worker.node.commit_index());
}

// ---- peers.rs ----------------------------------------------------------------------

#[tokio::test]
async fn the_hello_announces_the_founding_and_what_is_durable() {
    let mut f = single_voter("worker-hello").await;
    f.lead();
    let hello = f.worker.hello();
    assert!(!hello.fresh, "a founded member is not fresh");
    assert_eq!(hello.cluster, Some(ClusterId(9)));
    assert_eq!(hello.durable, f.worker.node.durable());
    assert_eq!(hello.proposal, None);
}

#[tokio::test]
async fn a_peer_of_another_founding_is_recorded_as_a_conflict_until_it_changes() {
    let mut f = single_voter("worker-conflict").await;
    f.lead();
    let stranger = PeerId([4; 32]);
    let hello = |cluster| Hello {
        fresh: false,
        observer: false,
        proposal: None,
        nonce: 1,
        cluster: Some(cluster),
        state: 1,
        durable: Cursor::zero(),
        contact: None,
    };
    f.worker
        .on_hello(stranger, hello(ClusterId(77)))
        .expect("hello");
    assert_eq!(f.worker.conflicts.get(&stranger), Some(&ClusterId(77)));
    assert_eq!(f.status.borrow().conflicts, [(stranger, ClusterId(77))]);
    f.worker
        .on_hello(stranger, hello(ClusterId(9)))
        .expect("hello");
    assert!(
        f.worker.conflicts.is_empty(),
        "it now announces our founding"
    );
}

#[tokio::test]
async fn a_removed_peer_whose_last_hello_still_says_fresh_is_not_added_back() {
    let mut f = single_voter("worker-removed").await;
    f.lead();
    let peer = PeerId([5; 32]);
    let (link, _parts) = crate::network::link::detached_link(peer, f.worker.group);
    f.worker.on_link(link);
    let fresh = |nonce| Hello {
        fresh: true,
        observer: false,
        proposal: None,
        nonce,
        cluster: None,
        state: 1,
        durable: Cursor::zero(),
        contact: None,
    };
    f.worker.on_hello(peer, fresh(11)).expect("hello");
    f.worker.maybe_add_members().expect("add");
    f.worker.drive().expect("drive");
    assert!(
        f.worker.node.membership().contains(&peer),
        "a fresh peer is added"
    );

    // Removed before its next hello (which would say it has entries) came in.
    let (reply, mut removed) = oneshot::channel();
    f.worker
        .on_request(Request::Change {
            change: MembershipChange::Remove(peer),
            reply,
        })
        .expect("remove");
    f.worker.drive().expect("drive");
    removed.try_recv().expect("committed").expect("removed");
    for _ in 0..3 {
        f.worker.maybe_add_members().expect("tick");
        f.worker.drive().expect("drive");
    }
    assert!(
        !f.worker.node.membership().contains(&peer),
        "the removal sticks although the last hello says fresh"
    );

    // The same peer started again with no state is a new node: added.
    f.worker.on_hello(peer, fresh(12)).expect("hello");
    f.worker.maybe_add_members().expect("add");
    f.worker.drive().expect("drive");
    assert!(f.worker.node.membership().contains(&peer));
}

#[tokio::test]
async fn a_link_that_lost_to_a_newer_one_but_arrived_after_it_does_not_take_its_place() {
    // Both nodes dialled at once: the registry kept the link registered last (the larger
    // id) and closed the other, but the loser reached the worker last. Before, the worker
    // bonded the loser, dropped the bond when it closed, and sent nothing more to a peer
    // whose live link stayed up (a group that never came online in tests/collections_defs).
    let mut f = single_voter("worker-late-loser").await;
    let peer = PeerId([6; 32]);
    let (loser, _loser_parts) = crate::network::link::detached_link(peer, f.worker.group);
    let (winner, _winner_parts) = crate::network::link::detached_link(peer, f.worker.group);
    let (loser_id, winner_id) = (loser.id(), winner.id());
    let close = |f: &mut Fixture, link_id| {
        let closed = super::readers::Inbound::Closed { peer, link_id };
        f.worker.on_inbound(closed).expect("closed");
    };
    assert!(loser_id < winner_id);
    f.worker.on_link(winner);
    f.worker.on_link(loser);
    assert_eq!(
        f.worker.bonds.get(&peer).map(|b| b.link_id),
        Some(winner_id),
        "the newer link stays bonded"
    );
    close(&mut f, loser_id);
    assert_eq!(
        f.worker.bonds.get(&peer).map(|b| b.link_id),
        Some(winner_id),
        "the loser's close leaves the newer link's bond"
    );
    close(&mut f, winner_id);
    assert_eq!(
        f.worker.bonds.get(&peer).map(|b| b.link_id),
        None,
        "the bond ends with its own link"
    );
}

// ---- state_sync.rs -----------------------------------------------------------------

#[tokio::test]
async fn pruning_never_passes_what_is_applied() {
    let mut f = single_voter("worker-prune").await;
    f.lead();
    f.execute(&[1, 2, 3]);
    f.worker.drive().expect("drive");
    assert_eq!(f.worker.applied, Index(5));
    f.worker.prune_to(None).expect("no rule, no prune");
    assert_eq!(*f.worker.store.available().start(), Index(0));
    f.worker.prune_to(Some(Index(3))).expect("prune");
    assert_eq!(*f.worker.store.available().start(), Index(3));
    f.worker.prune_to(Some(Index(99))).expect("prune");
    assert_eq!(
        *f.worker.store.available().start(),
        Index(5),
        "clamped to applied"
    );
    f.worker.restoring = Some(Cursor::zero());
    f.execute(&[4]);
    f.worker.drive().expect("drive");
    f.worker.prune_to(Some(Index(6))).expect("prune");
    assert_eq!(
        *f.worker.store.available().start(),
        Index(5),
        "nothing is pruned while a damaged snapshot is repaired"
    );
}
