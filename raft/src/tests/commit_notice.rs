//! Commit notices (`leader.rs`, `on_leader_commit`): a follower with nothing new to receive
//! learns a new commit index from the next append, or from a notice the driver asks for a
//! moment later; one that forwarded the committed commands, or waits on a read, learns it
//! at once.

use super::*;

/// Delivers everything queued, and what that brings, without the driver's delayed
/// notices; returns how many of the delivered messages were empty appends (heartbeats or
/// notices).
fn deliver_without_notices(h: &mut Harness) -> usize {
    let before = h.empty_appends_in;
    h.deliver_all();
    h.empty_appends_in - before
}

/// A settled group of three led by node 0, nothing pending.
fn settled() -> Harness {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    assert!(!h.nodes[0].commit_notices_pending());
    h
}

fn put(h: &mut Harness, i: usize, id: u64) -> Index {
    h.nodes[i]
        .propose(ProposalId(id), vec![id as u8], &h.stores[i])
        .unwrap();
    h.drive(i);
    h.nodes[i].last().index()
}

#[test]
fn the_next_append_tells_followers_the_commit_and_no_notice_is_sent() {
    let mut h = settled();
    let first = put(&mut h, 0, 1);
    assert_eq!(
        deliver_without_notices(&mut h),
        0,
        "no empty append after the commit"
    );
    assert!(
        h.nodes[0].commit_index() >= first,
        "the leader committed it"
    );
    assert!(
        h.nodes[0].commit_notices_pending(),
        "followers have yet to learn it"
    );
    for i in [1, 2] {
        assert!(h.nodes[i].commit_index() < first, "node {i} not told yet");
    }
    // The next write's append carries the commit of the first.
    let second = put(&mut h, 0, 2);
    assert_eq!(deliver_without_notices(&mut h), 0);
    for i in [1, 2] {
        assert!(
            h.nodes[i].commit_index() >= first,
            "node {i} learned it from the append"
        );
        assert!(h.nodes[i].commit_index() < second);
    }
    // Idle now: the driver's notice tells them the second.
    assert!(h.nodes[0].commit_notices_pending());
    h.nodes[0].send_commit_notices(&h.stores[0]).unwrap();
    h.drive(0);
    assert_eq!(
        deliver_without_notices(&mut h),
        2,
        "one notice per follower"
    );
    assert!(!h.nodes[0].commit_notices_pending());
    for i in [1, 2] {
        assert_eq!(
            h.nodes[i].commit_index(),
            second,
            "node {i} told by the notice"
        );
    }
}

#[test]
fn a_tick_sends_the_notices_the_driver_did_not() {
    let mut h = settled();
    let at = put(&mut h, 0, 1);
    deliver_without_notices(&mut h);
    assert!(h.nodes[0].commit_notices_pending());
    h.tick(0);
    deliver_without_notices(&mut h);
    assert!(!h.nodes[0].commit_notices_pending());
    for i in [1, 2] {
        assert_eq!(h.nodes[i].commit_index(), at, "node {i} told at the tick");
    }
}

#[test]
fn a_follower_that_forwarded_the_command_learns_its_commit_at_once() {
    let mut h = settled();
    let id = ProposalId(42);
    h.nodes[2].propose(id, b"x".to_vec(), &h.stores[2]).unwrap();
    h.drive(2);
    deliver_without_notices(&mut h);
    let outcome = h.outcomes[2].iter().find(|o| o.id == id);
    let at = match outcome.map(|o| o.result.clone()) {
        Some(Ok(at)) => at,
        other => panic!("the forwarding follower resolved its proposal: {other:?}"),
    };
    assert_eq!(h.nodes[2].commit_index(), at.index());
    // The other follower forwarded nothing: it waits for the notice.
    assert!(h.nodes[1].commit_index() < at.index());
    assert!(h.nodes[0].commit_notices_pending());
}

#[test]
fn a_follower_read_is_answered_with_an_index_it_knows_committed() {
    let mut h = settled();
    let at = put(&mut h, 0, 1);
    deliver_without_notices(&mut h);
    assert!(h.nodes[1].commit_index() < at);
    h.nodes[1].read_index(7, &h.stores[1]).unwrap();
    h.drive(1);
    deliver_without_notices(&mut h);
    assert_eq!(h.reads[1].len(), 1);
    assert_eq!(h.reads[1][0].result, Ok(at));
    assert!(
        h.nodes[1].commit_index() >= at,
        "it can apply up to the read index"
    );
}
