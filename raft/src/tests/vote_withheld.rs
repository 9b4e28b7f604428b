//! A member whose log was repaired by truncation (a damaged record on its disk): the store
//! hands the core a vote-withheld marker, the last index the log had. Until its log reaches
//! that index again through a leader, the node grants no vote or pre-vote (it abstains),
//! does not campaign and takes no leadership transfer; then it votes and campaigns again,
//! and the marker is cleared in the store, durably.

use super::*;

/// Node `i` loses its entries from `at` on (as `Storage::repair_from` leaves a damaged
/// log) and restarts from its store; the leader hears of the restart with what it holds
/// (the worker passes it on from the peer's hello, see `Node::on_peer_restarted`).
fn repair_and_restart(h: &mut Harness, i: usize, at: Index) {
    h.stores[i].lose_from(at).unwrap();
    h.stores[i].crash();
    h.nodes[i] = Node::restart(p(i), RaftConfig::for_tests(), 77, &h.stores[i], Index(0)).unwrap();
    h.drivers[i] = ReadyDriver::new();
    if let Some(l) = h.leader() {
        let durable = h.nodes[i].durable().index();
        h.nodes[l]
            .on_peer_restarted(p(i), durable, &h.stores[l])
            .unwrap();
        h.drive(l);
    }
}

/// What node `i` answers to a (pre-)vote request of `term` for candidate `c`, whose log is
/// up to date (the transfer flag gets past the leader-stickiness check).
fn answer(h: &mut Harness, i: usize, c: usize, term: Term, pre: bool) -> Vote {
    let request = RequestVote {
        term,
        candidate: p(c),
        log_position: h.nodes[c].last(),
        transfer: true,
    };
    let msg = if pre {
        Message::PreVote(request)
    } else {
        Message::RequestVote(request)
    };
    h.nodes[i].step(p(c), msg, &h.stores[i]).unwrap();
    let mut rd = h.nodes[i].ready(&h.stores[i]).unwrap();
    rd.stage(&mut h.stores[i]).unwrap();
    let mut out = rd.take_messages();
    out.extend(rd.take_after_sync());
    out.into_iter()
        .find_map(|(_, m)| match m {
            Message::RequestVoteResponse(r) | Message::PreVoteResponse(r) => Some(r.vote),
            _ => None,
        })
        .expect("an answer")
}

#[test]
fn a_repaired_member_neither_votes_nor_campaigns_until_its_log_is_back() {
    let mut h = cluster_with_entries(6);
    let last = h.nodes[2].last();
    assert_eq!(last, h.nodes[0].last());
    repair_and_restart(&mut h, 2, Index(4));
    assert_eq!(h.nodes[2].vote_withheld(), Some(last.index()));
    assert_eq!(h.nodes[2].last().index(), Index(3));
    assert!(
        h.nodes[2].commit_index() <= Index(3),
        "commit capped at the log"
    );

    // No vote and no pre-vote, whatever the candidate's log (asked in the current term,
    // so the group is not disturbed).
    let term = h.nodes[0].term();
    assert_eq!(answer(&mut h, 2, 1, term.next(), true), Vote::Abstained);
    assert_eq!(answer(&mut h, 2, 1, term, false), Vote::Abstained);
    // No campaign when its election timer fires.
    h.nodes[2].force_election_timeout(1);
    h.tick(2);
    assert_eq!(h.nodes[2].role(), Role::Follower, "it must not campaign");
    // No leadership transfer to it either.
    h.stabilize();
    h.tick_all(3);
    let leader = h.leader().expect("a leader");
    assert!(leader != 2);
    // Caught up through the leader: the marker is lifted, and cleared on disk.
    assert!(h.nodes[2].last().index() >= last.index(), "caught up");
    assert_eq!(h.nodes[2].vote_withheld(), None);
    assert_eq!(Storage::vote_withheld(&h.stores[2]), None);
    h.stores[2].crash();
    assert_eq!(
        Storage::vote_withheld(&h.stores[2]),
        None,
        "the clearing is durable"
    );
    // It votes and campaigns again.
    let term = h.nodes[2].term();
    let other = if leader == 0 { 1 } else { 0 };
    assert_eq!(answer(&mut h, 2, other, term.next(), false), Vote::Granted);
    h.nodes[2].force_election_timeout(1);
    h.nodes[2].tick(&h.stores[2]).unwrap();
    assert_ne!(h.nodes[2].role(), Role::Follower, "it campaigns again");
}

#[test]
fn the_marker_survives_a_crash_until_the_log_reaches_it() {
    let mut h = cluster_with_entries(4);
    let last = h.nodes[1].last();
    h.cut.insert(1);
    repair_and_restart(&mut h, 1, Index(3));
    // Crashed again before it heard from any leader: still withheld.
    repair_and_restart(&mut h, 1, Index(9));
    assert_eq!(h.nodes[1].vote_withheld(), Some(last.index()));
    // A second repair never lowers the marker.
    repair_and_restart(&mut h, 1, Index(2));
    assert_eq!(Storage::vote_withheld(&h.stores[1]), Some(last.index()));
    assert_eq!(h.nodes[1].vote_withheld(), Some(last.index()));
    h.cut.clear();
    h.tick_all(4);
    assert_eq!(h.nodes[1].last(), h.nodes[0].last());
    assert_eq!(h.nodes[1].vote_withheld(), None);
    // The rest of the group never lost anything and agrees.
    assert_eq!(h.nodes[0].commit_index(), h.nodes[1].commit_index());
}

#[test]
fn a_restart_whose_log_already_reached_the_marker_lifts_it() {
    let mut h = cluster_with_entries(3);
    let last = h.nodes[2].last();
    Storage::set_vote_withheld(&mut h.stores[2], Some(last.index())).unwrap();
    h.stores[2].sync().unwrap();
    let mut n = Node::restart(p(2), RaftConfig::for_tests(), 5, &h.stores[2], Index(0)).unwrap();
    assert_eq!(n.vote_withheld(), None);
    let mut rd = n.ready(&h.stores[2]).unwrap();
    assert!(rd.clears_vote_withheld());
    rd.stage(&mut h.stores[2]).unwrap();
    h.stores[2].sync().unwrap();
    assert_eq!(Storage::vote_withheld(&h.stores[2]), None);
}
