//! A member whose state is gone (an in-memory store reopened under the same peer id):
//! it abstains from votes until it has caught up again, and the leader stops trusting what
//! it knew of its log once it hears of the restart.

use super::*;

/// Replaces node `i` with a fresh node of the same id on an empty store (its state lost).
fn lose_state(h: &mut Harness, i: usize) {
    let store = InMemoryLogStore::default();
    h.nodes[i] = Node::restart(p(i), RaftConfig::for_tests(), 99, &store, Index(0)).unwrap();
    h.drivers[i] = ReadyDriver::new();
    h.stores[i] = store;
}

/// What node `i` answers to a vote request of `term` for an up-to-date candidate `c`.
fn vote_of(h: &mut Harness, i: usize, c: usize, term: Term) -> Vote {
    let log_position = h.nodes[c].last();
    h.nodes[i]
        .step(
            p(c),
            Message::RequestVote(RequestVote {
                term,
                candidate: p(c),
                log_position,
                transfer: false,
            }),
            &h.stores[i],
        )
        .unwrap();
    let mut rd = h.nodes[i].ready(&h.stores[i]).unwrap();
    let mut out = rd.take_messages();
    out.extend(rd.take_after_sync());
    out.into_iter()
        .find_map(|(_, m)| match m {
            Message::RequestVoteResponse(r) => Some(r.vote),
            _ => None,
        })
        .expect("an answer")
}

#[test]
fn a_member_that_lost_its_state_abstains_and_is_resynced_before_it_counts() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    for k in 0..5u8 {
        h.nodes[0]
            .propose(ProposalId(u64::from(k)), vec![k], &h.stores[0])
            .unwrap();
        h.drive(0);
        h.stabilize();
    }
    h.tick_all(2);
    let last = h.nodes[0].last();
    assert_eq!(
        h.nodes[0].progress_of(&p(2)).map(|x| x.0),
        Some(last.index())
    );

    lose_state(&mut h, 2);
    // Asked in the current term (so the cluster is not disturbed by a new one).
    let term = h.nodes[0].term();
    assert_eq!(
        vote_of(&mut h, 2, 1, term),
        Vote::Abstained,
        "it may have acknowledged entries it no longer has"
    );
    // The leader hears of the restart (the worker passes on the new state incarnation
    // from the peer's hello, with what it holds now: nothing).
    h.nodes[0]
        .on_peer_restarted(p(2), Index(0), &h.stores[0])
        .unwrap();
    assert_eq!(
        h.nodes[0].progress_of(&p(2)).map(|x| x.0),
        Some(Index(0)),
        "what the leader knew of its log no longer counts"
    );
    h.drive(0);
    h.stabilize();
    h.tick_all(3);
    assert_eq!(h.nodes[2].last(), last, "re-synced from the leader");
    assert_eq!(
        h.nodes[0].progress_of(&p(2)).map(|x| x.0),
        Some(last.index())
    );
    assert!(
        !h.nodes[2].may_have_lost_state(),
        "caught up with the leader's commit: it votes again"
    );
}

#[test]
fn a_restart_with_its_log_intact_changes_nothing_the_leader_knew() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(2);
    let last = h.nodes[0].last();
    h.nodes[0]
        .on_peer_restarted(p(1), last.index(), &h.stores[0])
        .unwrap();
    assert_eq!(
        h.nodes[0].progress_of(&p(1)).map(|x| x.0),
        Some(last.index())
    );
}
