//! A leader whose driver says the disk is low ([`Node::set_low_space`]) appends no client
//! command, its own or forwarded, and says so at once; membership changes still go
//! through, and commands are taken again once the disk is no longer low.

use super::*;

#[test]
fn a_leader_low_on_space_refuses_commands_at_once_and_takes_them_again_after() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.stabilize();
    h.nodes[0].set_low_space(true);
    let last = h.nodes[0].last();

    h.nodes[0]
        .propose(ProposalId(1), vec![1], &h.stores[0])
        .unwrap();
    h.drive(0);
    h.nodes[2]
        .propose(ProposalId(2), vec![2], &h.stores[2])
        .unwrap();
    h.drive(2);
    h.stabilize();
    let refused = |i: usize, id: u64| {
        h.outcomes[i]
            .iter()
            .find(|o| o.id == ProposalId(id))
            .map(|o| o.result.clone())
    };
    assert_eq!(
        refused(0, 1),
        Some(Err(ClientError::NoSpace { leader: p(0) })),
        "the leader's own proposal"
    );
    assert_eq!(
        refused(2, 2),
        Some(Err(ClientError::NoSpace { leader: p(0) })),
        "a follower's forwarded proposal"
    );
    assert_eq!(h.nodes[0].last(), last, "nothing appended");

    h.nodes[0].set_low_space(false);
    h.nodes[0]
        .propose(ProposalId(3), vec![3], &h.stores[0])
        .unwrap();
    h.drive(0);
    h.stabilize();
    h.tick_all(2);
    let taken = h.outcomes[0].iter().find(|o| o.id == ProposalId(3));
    assert!(
        matches!(taken, Some(o) if o.result.is_ok()),
        "taken again once space is back: {taken:?}"
    );
}
