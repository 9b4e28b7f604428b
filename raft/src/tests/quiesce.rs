//! Quiescence (`quiesce.rs`): an idle group goes silent, stays silent while its leader is
//! alive, wakes on client calls and on the driver's word, and elects a new leader when the
//! driver reports the leader lost.

use super::*;

const AFTER: u32 = 4;

fn quiet_group() -> Harness {
    let mut h = Harness::with_config(
        3,
        0,
        RaftConfig {
            quiesce_after_ticks: AFTER,
            ..RaftConfig::for_tests()
        },
    );
    h.elect(0);
    h.tick_all(AFTER as usize + 2);
    assert!(
        h.nodes.iter().all(Node::is_quiesced),
        "idle for {AFTER} ticks: every node quiesced"
    );
    h
}

/// Ticks every node `times` times and asserts none of them sends anything.
fn tick_silently(h: &mut Harness, times: usize) {
    for _ in 0..times {
        for i in 0..h.nodes.len() {
            h.tick(i);
            assert!(h.queue.is_empty(), "node {i} sent {:?}", h.queue);
        }
    }
}

#[test]
fn an_idle_group_quiesces_and_a_quiesced_follower_does_not_campaign_while_its_leader_is_silent() {
    let mut h = quiet_group();
    let term = h.nodes[0].term();
    let commit = h.nodes[0].commit_index();
    assert!(h.nodes.iter().all(|n| n.commit_index() == commit));
    // Ten times the longest election timeout (20 ticks) without a word from the leader.
    tick_silently(&mut h, 200);
    assert_eq!(h.leader(), Some(0));
    assert!(
        h.nodes.iter().all(|n| n.term() == term),
        "nobody campaigned"
    );
    assert!(h.nodes.iter().all(Node::is_quiesced));
}

#[test]
fn a_quiesced_group_whose_leader_dies_elects_a_new_one_once_the_driver_wakes_the_followers() {
    let mut h = quiet_group();
    let term = h.nodes[0].term();
    h.cut.insert(0);
    // The core alone never notices: quiesced followers have no election timer.
    tick_silently(&mut h, 100);
    assert!(h.nodes[1].is_quiesced() && h.nodes[2].is_quiesced());
    // The driver's rule: the link to the leader closed.
    for i in [1, 2] {
        h.nodes[i].wake();
        h.drive(i);
        assert!(!h.nodes[i].is_quiesced());
    }
    h.stabilize();
    let mut ticks = 0;
    let new = loop {
        ticks += 1;
        assert!(ticks <= 60, "no new leader within 60 ticks of the wake");
        for i in [1, 2] {
            h.tick(i);
        }
        h.stabilize();
        if let Some(l) = h.leader() {
            break l;
        }
    };
    assert!(new == 1 || new == 2);
    assert!(h.nodes[new].term() > term);
    // Not before an election timeout (10 ticks at least) after the wake.
    assert!(ticks >= 10, "campaigned {ticks} ticks after the wake");
}

#[test]
fn a_proposal_on_a_follower_wakes_the_group_commits_and_the_group_quiesces_again() {
    let mut h = quiet_group();
    let before = h.nodes[0].last().index();
    h.nodes[2]
        .propose(ProposalId(5), b"x".to_vec(), &h.stores[2])
        .unwrap();
    h.drive(2);
    h.stabilize();
    assert!(!h.nodes[0].is_quiesced(), "the forward woke the leader");
    h.tick_all(2);
    let at = before.next();
    assert!(h.outcomes[2]
        .iter()
        .any(|o| o.id == ProposalId(5) && o.result == Ok(Cursor(h.nodes[0].term(), at))));
    assert!(h.nodes.iter().all(|n| n.commit_index() == at));
    h.tick_all(AFTER as usize + 2);
    assert!(h.nodes.iter().all(Node::is_quiesced), "idle again");
}

#[test]
fn a_read_on_a_quiesced_leader_waits_for_a_fresh_majority_round() {
    let mut h = quiet_group();
    h.cut.insert(1);
    h.cut.insert(2);
    h.nodes[0].read_index(9, &h.stores[0]).unwrap();
    h.drive(0);
    h.stabilize();
    assert!(!h.nodes[0].is_quiesced());
    assert!(h.reads[0].is_empty(), "no read served from a quiesced view");
    h.cut.clear();
    h.tick(0);
    h.stabilize();
    assert_eq!(h.reads[0].len(), 1);
    assert!(h.reads[0][0].result.is_ok());
}

#[test]
fn a_woken_follower_asks_its_leader_to_heartbeat_again() {
    let mut h = quiet_group();
    h.nodes[1].wake();
    h.drive(1);
    assert!(
        h.queue
            .iter()
            .any(|(from, to, m)| *from == 1 && *to == p(0) && matches!(m, Message::Wake(_))),
        "{:?}",
        h.queue
    );
    h.stabilize();
    assert!(!h.nodes[0].is_quiesced(), "the leader woke");
    // It heartbeats at once; the group stays led and quiesces again when idle.
    let term = h.nodes[0].term();
    h.tick_all(40);
    assert!(h.nodes.iter().all(|n| n.term() == term));
    assert!(h.nodes.iter().all(Node::is_quiesced));
}

#[test]
fn a_late_ack_of_a_heartbeat_does_not_wake_the_leader() {
    let mut h = quiet_group();
    let last = h.nodes[0].last().index();
    let ack = Message::AppendEntriesResponse(AppendEntriesResponse {
        term: h.nodes[0].term(),
        last_log_index: last,
        vote: Vote::Granted,
        rejected: Index(0),
        seq: 0,
    });
    h.nodes[0].step(p(1), ack, &h.stores[0]).unwrap();
    assert!(h.nodes[0].is_quiesced());
    // A stale notice of an older term wakes its receiver's sender instead.
    let stale = Message::Quiesce(Quiesce {
        term: Term(1),
        commit: last,
        last: h.nodes[1].last(),
    });
    h.nodes[1].step(p(2), stale, &h.stores[1]).unwrap();
    h.drive(1);
    assert!(h
        .queue
        .iter()
        .any(|(_, to, m)| *to == p(2)
            && matches!(m, Message::Wake(w) if w.term == h.nodes[1].term())));
}

#[test]
fn quiescing_is_off_at_zero() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(50);
    assert!(h.nodes.iter().all(|n| !n.is_quiesced()));
}

#[test]
fn a_quiesced_leader_cut_off_and_woken_steps_down_instead_of_quiescing_again() {
    let mut h = quiet_group();
    h.cut.insert(0);
    // The driver's rule on the leader: its links to the voters closed.
    h.nodes[0].wake();
    h.drive(0);
    tick_leader_until_it_steps_down(&mut h, |_| {});
    assert!(!h.nodes[0].is_quiesced());
}

/// Ticks node 0, a leader cut off from every voter, until check-quorum makes it step down
/// (within 200 ticks of its wake); `each_tick` looks at it before every tick.
fn tick_leader_until_it_steps_down(h: &mut Harness, each_tick: impl Fn(&Node)) {
    let mut ticks = 0;
    while h.nodes[0].is_leader() {
        ticks += 1;
        assert!(
            ticks <= 200,
            "a leader that reaches nobody is still leading {ticks} ticks after its wake (quiesced: {})",
            h.nodes[0].is_quiesced()
        );
        each_tick(&h.nodes[0]);
        h.tick(0);
        h.stabilize();
    }
}

/// Ticks the nodes not cut off and delivers what they send, `times` times.
fn tick_reachable(h: &mut Harness, times: usize) {
    for _ in 0..times {
        for i in 0..h.nodes.len() {
            if !h.cut.contains(&i) {
                h.tick(i);
            }
        }
        h.stabilize();
    }
}

#[test]
fn a_leader_quiesces_without_a_member_it_cannot_reach_and_wakes_to_catch_it_up_once_back() {
    let mut h = quiet_group();
    let term = h.nodes[0].term();
    // Node 2 goes down; the driver's rule on the leader: wake, and say whom it lost.
    h.cut.insert(2);
    h.nodes[0].set_reachable(p(2), false);
    h.nodes[0].wake();
    h.drive(0);
    // A write while it is down: committed by nodes 0 and 1 alone.
    h.nodes[0]
        .propose(ProposalId(9), b"while 2 is down".to_vec(), &h.stores[0])
        .unwrap();
    h.drive(0);
    tick_reachable(&mut h, 2 * AFTER as usize + 4);
    let written = h.nodes[0].last().index();
    assert_eq!(h.nodes[1].commit_index(), written);
    assert!(h.nodes[2].last().index() < written, "node 2 missed it");
    assert!(
        h.nodes[0].is_quiesced() && h.nodes[1].is_quiesced(),
        "the group quiesced without the member it cannot reach"
    );
    // It stays quiet, leader and term unchanged, for ten election timeouts.
    for _ in 0..200 {
        h.tick(0);
        h.tick(1);
        assert!(h.queue.is_empty(), "a quiesced node sent {:?}", h.queue);
    }
    assert_eq!(h.leader(), Some(0));
    assert_eq!(h.nodes[1].term(), term);

    // Back: the leader wakes, catches it up, and the whole group quiesces again.
    h.cut.remove(&2);
    h.nodes[0].set_reachable(p(2), true);
    assert!(!h.nodes[0].is_quiesced(), "a peer back wakes the leader");
    h.drive(0);
    h.stabilize();
    tick_reachable(&mut h, 2 * AFTER as usize + 4);
    assert_eq!(h.nodes[2].commit_index(), written, "caught up");
    assert!(
        h.nodes.iter().all(Node::is_quiesced),
        "idle again, all three"
    );
    assert_eq!(h.nodes[0].term(), term);
}

#[test]
fn a_leader_that_can_reach_no_majority_does_not_quiesce_and_steps_down() {
    let mut h = quiet_group();
    h.cut.insert(1);
    h.cut.insert(2);
    for i in [1, 2] {
        h.nodes[0].set_reachable(p(i), false);
    }
    h.nodes[0].wake();
    h.drive(0);
    tick_leader_until_it_steps_down(&mut h, |leader| {
        assert!(!leader.is_quiesced(), "quiesced with no majority");
    });
}
