//! Failing over without waiting out client timeouts: forwards stranded on a dead leader
//! fail at once when a new term begins, reads pending on it go to the next leader, and
//! calls that waited for a leader go to (or are served by) the one elected.
//!
//! Timeouts are set far above anything these scripts run, so an outcome can only come
//! from the failover rules, never from a timeout.

use super::*;

const LONG: u32 = 10_000;

fn patient() -> Harness {
    Harness::with_config(
        3,
        0,
        RaftConfig {
            forward_timeout_ticks: LONG,
            query_timeout_ticks: LONG,
            ..RaftConfig::for_tests()
        },
    )
}

/// Cuts node `dead` off and ticks the others until one of them leads; returns it.
fn elect_without(h: &mut Harness, dead: usize) -> usize {
    h.cut.insert(dead);
    for _ in 0..100 {
        for i in 0..h.nodes.len() {
            if i != dead {
                h.tick(i);
            }
        }
        h.stabilize();
        if let Some(l) = h.leader() {
            return l;
        }
    }
    panic!("no new leader within 100 ticks");
}

fn outcome(h: &Harness, i: usize, id: ProposalId) -> Option<&Result<Cursor, ClientError>> {
    h.outcomes[i].iter().find(|o| o.id == id).map(|o| &o.result)
}

#[test]
fn a_forward_stranded_on_a_dead_leader_fails_as_indeterminate_once_a_new_term_begins() {
    let mut h = patient();
    h.elect(0);
    h.tick_all(1);
    h.cut.insert(0);
    h.nodes[1]
        .propose(ProposalId(7), b"x".to_vec(), &h.stores[1])
        .unwrap();
    h.drive(1);
    h.stabilize();
    assert!(outcome(&h, 1, ProposalId(7)).is_none(), "in flight");
    let new = elect_without(&mut h, 0);
    assert_ne!(new, 0);
    assert_eq!(
        outcome(&h, 1, ProposalId(7)),
        Some(&Err(ClientError::LeaderLost {
            leader: p(0),
            term: Term(2)
        })),
        "failed at once, as 'may or may not be applied'"
    );
}

#[test]
fn a_read_pending_on_a_dead_leader_is_answered_by_the_next_one() {
    let mut h = patient();
    h.elect(0);
    h.tick_all(1);
    h.cut.insert(0);
    h.nodes[1].read_index(9, &h.stores[1]).unwrap();
    h.drive(1);
    h.stabilize();
    assert!(h.reads[1].is_empty(), "in flight");
    let new = elect_without(&mut h, 0);
    h.tick_all(2);
    let read: Vec<_> = h.reads[1].iter().filter(|r| r.ctx == 9).collect();
    assert_eq!(read.len(), 1, "{:?}", h.reads[1]);
    let index = read[0].result.clone().expect("answered by the new leader");
    assert!(
        index >= Index(3) && index <= h.nodes[new].commit_index(),
        "the new leader's read index covers its own no-op (index 3): {index}"
    );
}

#[test]
fn calls_made_while_no_leader_is_known_go_to_the_one_elected() {
    let mut h = patient();
    // No election yet: nobody knows a leader.
    h.nodes[1]
        .propose(ProposalId(1), b"a".to_vec(), &h.stores[1])
        .unwrap();
    h.nodes[1].read_index(2, &h.stores[1]).unwrap();
    h.nodes[2]
        .propose(ProposalId(3), b"b".to_vec(), &h.stores[2])
        .unwrap();
    h.nodes[2].read_index(4, &h.stores[2]).unwrap();
    for i in 1..3 {
        h.drive(i);
    }
    assert!(h.reads[1].is_empty() && h.reads[2].is_empty(), "they wait");
    h.elect(1);
    h.tick_all(3);
    // Node 1 won: it proposed its own waiting command and served its own read; node 2
    // sent both to it.
    for (node, id, ctx) in [(1, ProposalId(1), 2), (2, ProposalId(3), 4)] {
        assert!(
            matches!(outcome(&h, node, id), Some(Ok(_))),
            "node {node}: {:?}",
            h.outcomes[node]
        );
        assert!(
            h.reads[node]
                .iter()
                .any(|r| r.ctx == ctx && r.result.is_ok()),
            "node {node}: {:?}",
            h.reads[node]
        );
    }
    let commands: Vec<_> = h.applied[0]
        .iter()
        .filter(|e| matches!(e.payload, Payload::Command(_)))
        .collect();
    assert_eq!(commands.len(), 2, "each applied once");
}

#[test]
fn a_deposed_leader_s_own_read_is_answered_by_its_successor() {
    let mut h = patient();
    h.elect(0);
    h.tick_all(1);
    h.cut.insert(0);
    h.nodes[0].read_index(5, &h.stores[0]).unwrap();
    h.drive(0);
    let new = elect_without(&mut h, 0);
    // The old leader steps down (check-quorum) or hears of the new term once healed.
    h.cut.clear();
    h.tick_all(30);
    assert!(!h.nodes[0].is_leader());
    let read: Vec<_> = h.reads[0].iter().filter(|r| r.ctx == 5).collect();
    assert_eq!(read.len(), 1, "{:?}", h.reads[0]);
    assert!(read[0].result.is_ok(), "served through leader {new}");
}
