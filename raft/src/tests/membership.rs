//! Membership: learners that catch up and are promoted two at a time, observers that are
//! not, and one configuration change in flight at a time.

use super::*;

/// Adds `peer` as a learner on the leader `l` and runs the change to quiescence.
fn add_learner(h: &mut Harness, l: usize, peer: PeerId, observer: bool) {
    let r = h.nodes[l]
        .propose_membership(
            MembershipChange::AddLearner { peer, observer },
            &h.stores[l],
        )
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    h.drive(l);
    h.stabilize();
    h.tick_all(10);
}

#[test]
fn a_group_grows_in_odd_steps_two_caught_up_learners_at_a_time() {
    // One founder, then two nodes joining one after the other.
    let mut h = Harness::new(1, 2);
    h.elect(0);
    h.tick_all(1);
    add_learner(&mut h, 0, p(1), false);
    let m = h.nodes[0].membership().clone();
    assert_eq!(
        m.voters().len(),
        1,
        "1 -> 2 voters would be a resting even count: {m:?}"
    );
    assert_eq!(
        h.nodes[1].last(),
        h.nodes[0].last(),
        "the learner is caught up"
    );
    add_learner(&mut h, 0, p(2), false);
    h.tick_all(10);
    let m = h.nodes[0].membership().clone();
    assert_eq!(
        m.voters().len(),
        3,
        "two caught-up learners are promoted one after the other: {m:?}"
    );
    assert!(m.learners().is_empty());
}

#[test]
fn learners_abstain_catch_up_and_are_promoted_observers_are_not() {
    let mut h = Harness::new(3, 2);
    h.elect(0);
    h.tick_all(1);
    let r = h.nodes[0]
        .propose_membership(
            MembershipChange::AddLearner {
                peer: p(3),
                observer: false,
            },
            &h.stores[0],
        )
        .unwrap();
    assert!(r.is_ok());
    h.drive(0);
    h.stabilize();
    // One change at a time.
    h.tick_all(3);
    let r = h.nodes[0]
        .propose_membership(
            MembershipChange::AddLearner {
                peer: p(4),
                observer: true,
            },
            &h.stores[0],
        )
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    h.drive(0);
    h.stabilize();
    h.tick_all(10);
    let m = h.nodes[0].membership().clone();
    assert_eq!(
        m.learners().get(&p(3)),
        Some(&LearnerKind::CatchingUp),
        "one caught-up learner beside 3 voters waits for a second (4 voters is even): {m:?}"
    );
    assert_eq!(h.nodes[3].last(), h.nodes[0].last(), "caught up");
    assert_eq!(m.learners().get(&p(4)), Some(&LearnerKind::Observer));
    assert_eq!(
        h.nodes[4].last(),
        h.nodes[0].last(),
        "the observer is replicated to"
    );
    // The observer abstains from votes.
    let term = h.nodes[4].term();
    h.nodes[4]
        .step(
            p(1),
            Message::RequestVote(RequestVote {
                term,
                candidate: p(1),
                log_position: Cursor(Term(99), Index(99)),
                transfer: false,
            }),
            &h.stores[4],
        )
        .unwrap();
    let mut rd = h.nodes[4].ready(&h.stores[4]).unwrap();
    let out = rd.take_after_sync();
    assert!(out
        .iter()
        .any(|(_, m)| matches!(m, Message::RequestVoteResponse(r) if r.vote == Vote::Abstained)));
}

/// A leader of three (node 0) cut off from its followers, with an `AddLearner` of p(3)
/// appended and so not committed.
/// Three voters (and `learners`) led by node 0, which is then cut off from voters 1 and 2.
fn leader_cut_off(learners: usize) -> Harness {
    let mut h = Harness::new(3, learners);
    h.elect(0);
    h.tick_all(1);
    h.cut.insert(1);
    h.cut.insert(2);
    h
}

fn leader_with_a_change_pending() -> Harness {
    let mut h = leader_cut_off(2);
    let first = h.nodes[0]
        .propose_membership(
            MembershipChange::AddLearner {
                peer: p(3),
                observer: false,
            },
            &h.stores[0],
        )
        .unwrap();
    assert!(first.is_ok());
    h
}

#[test]
fn membership_changes_one_at_a_time() {
    let mut h = leader_with_a_change_pending();
    let second = h.nodes[0]
        .propose_membership(
            MembershipChange::AddLearner {
                peer: p(4),
                observer: false,
            },
            &h.stores[0],
        )
        .unwrap();
    assert!(matches!(second, Err(ClientError::ChangePending { .. })));
}

#[test]
fn a_change_that_can_never_apply_is_refused_as_such_while_another_is_pending() {
    let mut h = leader_with_a_change_pending();
    // Promoting a voter is wrong whatever is pending: not "try again later".
    let promote = h.nodes[0]
        .propose_membership(MembershipChange::Promote(p(1)), &h.stores[0])
        .unwrap();
    assert!(
        matches!(promote, Err(ClientError::Membership(_))),
        "{promote:?}"
    );
}

#[test]
fn a_leader_whose_own_removal_is_not_committed_may_stand_again_to_commit_it() {
    // Node 0 proposes its own removal while cut off: only its log holds the entry.
    let mut h = leader_cut_off(0);
    let at = h.nodes[0]
        .propose_membership(MembershipChange::Remove(p(0)), &h.stores[0])
        .unwrap()
        .expect("the removal is proposed");
    h.drive(0);
    // Everyone times out while cut off; node 0 loses its quorum and steps down.
    for _ in 0..60 {
        for i in 0..3 {
            h.tick(i);
        }
        h.stabilize();
    }
    assert!(!h.nodes[0].is_leader(), "check-quorum");
    assert!(!h.nodes[0].membership().is_voter(&p(0)));
    assert!(
        h.nodes[1].last().index() < at.index(),
        "nodes 1 and 2 miss the entry"
    );

    // Back together, node 0 (the longest log: 1 and 2 cannot win without its vote,
    // which it refuses them) stands although its latest configuration excludes it.
    h.cut.clear();
    h.nodes[0].force_election_timeout(1);
    h.tick(0);
    h.stabilize();
    assert!(
        h.nodes[0].commit_index() >= at.index(),
        "node 0 led again and committed its removal"
    );
    for i in [1, 2] {
        assert!(
            h.nodes[i].last().index() >= at.index(),
            "node {i} got the entry"
        );
        assert!(!h.nodes[i].membership().is_voter(&p(0)));
    }
    assert!(
        !h.nodes[0].is_leader(),
        "a removed leader steps down once it commits"
    );
    // And the two left elect one of them.
    let mut ticks = 0;
    while !(h.nodes[1].is_leader() || h.nodes[2].is_leader()) {
        ticks += 1;
        assert!(ticks <= 100, "no leader among the two left");
        h.tick_all(1);
    }
    assert!((1..3).all(|i| h.nodes[i].commit_index() >= at.index()));
}
