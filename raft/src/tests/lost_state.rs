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
    vote_for_log(h, i, c, term, log_position)
}

/// What node `i` answers to a vote request of `term` for candidate `c` whose log ends at
/// `log_position`.
fn vote_for_log(h: &mut Harness, i: usize, c: usize, term: Term, log_position: Cursor) -> Vote {
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
    let mut h = cluster_with_entries(5);
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

#[test]
fn a_member_that_lost_its_state_votes_only_for_a_log_that_reaches_its_first_leaders_commit() {
    let mut h = cluster_with_entries(5);
    let term = h.nodes[0].term();
    let committed = h.nodes[0].commit_index();
    let leader_last = h.nodes[0].last();
    lose_state(&mut h, 2);
    // No repair marker: the abstention below is the lost state's.
    assert!(h.nodes[2].vote_withheld().is_none());
    // It hears the leader once (a heartbeat it cannot match yet), then the leader is gone.
    h.nodes[2]
        .step(
            p(0),
            Message::AppendEntries(AppendEntries {
                term,
                leader: p(0),
                prev_log_position: leader_last,
                entries: Vec::new(),
                leader_commit: committed,
                seq: 0,
                catch_up: false,
            }),
            &h.stores[2],
        )
        .unwrap();
    assert_eq!(h.nodes[2].last(), Cursor::zero(), "nothing caught up");
    // The leader stays silent past an election timeout, so votes of a new term count.
    for _ in 0..100 {
        h.tick(2);
    }
    h.queue.clear();
    let next = Term(term.0 + 1);
    // A log short of that commit could lack what this node once acknowledged.
    let short = Cursor(term, Index(committed.0 - 1));
    assert_eq!(vote_for_log(&mut h, 2, 1, next, short), Vote::Abstained);
    // One that reaches it holds everything that leader had committed.
    let reaching = Cursor(term, committed);
    assert_eq!(vote_for_log(&mut h, 2, 1, next, reaching), Vote::Granted);
}
