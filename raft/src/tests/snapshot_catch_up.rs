//! Catch-up by snapshot, the core's part of "a catch-up cannot livelock" (issue 17): a
//! follower that installed a snapshot is streamed the log after it whenever the leader still
//! holds it (the members keep it pinned, see the runtime's `snapshot/retention.rs`), and is
//! sent to another session only for entries no log holds. With `replay_threshold` 0 (what a
//! snapshot-synced group runs) the core never asks for a session for entries it holds: the
//! session would fetch a newer snapshot, and a follower whose transfer takes long enough for
//! the writes to put it that far behind again would be sent for another one after each
//! install, without end.

use super::*;
use crate::progress::ProgressState;

fn config(replay_threshold: u64) -> RaftConfig {
    RaftConfig {
        replay_threshold,
        ..RaftConfig::for_tests()
    }
}

/// Three voters; node 2 missed 40 commands; the leader (0) pruned its log up to 20 (a
/// snapshot at 20 is what node 2 will install).
fn behind_a_pruned_leader(replay_threshold: u64) -> Harness {
    let mut h = Harness::with_config(3, 0, config(replay_threshold));
    h.elect(0);
    h.tick_all(1);
    h.cut.insert(2);
    for k in 0..40 {
        h.nodes[0]
            .propose(ProposalId(k), vec![k as u8], &h.stores[0])
            .unwrap();
        h.drive(0);
        h.stabilize();
    }
    h.tick_all(1);
    assert_eq!(h.nodes[0].commit_index(), Index(42));
    Storage::prune_prefix(&mut h.stores[0], Index(20)).unwrap();
    h.cut.clear();
    h.tick_all(3);
    h
}

/// Node 2's session installed the snapshot at 20 and ended.
fn install_at_20(h: &mut Harness) {
    let anchor = Cursor(Term(2), Index(20));
    assert_eq!(
        Storage::term_at(&h.stores[0], Index(20)).unwrap(),
        Some(Term(2))
    );
    h.nodes[2].on_state_synced(anchor, None).unwrap();
    h.drive(2);
    h.nodes[2].finish_catch_up();
    h.drive(2);
    h.stabilize();
}

#[test]
fn entries_the_leader_pruned_send_the_follower_to_a_session_whatever_the_threshold() {
    let h = behind_a_pruned_leader(0);
    assert_eq!(h.nodes[0].progress_state(&p(2)), Some(ProgressState::Sync));
    assert_eq!(h.catch_ups[2].len(), 1, "one session for what no log holds");
    assert!(h.nodes[2].is_catching_up());
}

#[test]
fn after_an_install_the_follower_is_streamed_what_the_leader_kept() {
    // 22 entries behind after the install, more than a log-replay threshold of 10: with
    // threshold 0 the leader streams them instead of asking for another session.
    let mut h = behind_a_pruned_leader(0);
    install_at_20(&mut h);
    h.tick_all(3);
    assert_eq!(h.catch_ups[2].len(), 1, "no second session");
    assert_eq!(
        h.nodes[0].progress_state(&p(2)),
        Some(ProgressState::Replicate)
    );
    assert_eq!(h.nodes[2].last(), h.nodes[0].last());
    assert_eq!(h.nodes[2].commit_index(), Index(42));
    // And it keeps up with new writes by streaming.
    h.nodes[0]
        .propose(ProposalId(99), vec![99], &h.stores[0])
        .unwrap();
    h.drive(0);
    h.stabilize();
    h.tick_all(2);
    assert_eq!(h.nodes[2].commit_index(), Index(43));
    assert_eq!(h.catch_ups[2].len(), 1);
}

#[test]
fn with_a_log_replay_threshold_an_installed_follower_far_behind_is_sent_to_another_session() {
    // What a snapshot-synced group must not run: the same install, threshold 10, and the
    // leader asks for a second session although it holds every entry the follower lacks.
    let mut h = behind_a_pruned_leader(10);
    install_at_20(&mut h);
    h.tick_all(3);
    assert_eq!(h.catch_ups[2].len(), 2, "sent for another snapshot");
}

#[test]
fn a_follower_far_behind_whose_entries_the_leader_holds_is_streamed_with_threshold_zero() {
    let mut h = Harness::with_config(3, 0, config(0));
    h.elect(0);
    h.tick_all(1);
    h.cut.insert(2);
    for k in 0..40 {
        h.nodes[0]
            .propose(ProposalId(k), vec![k as u8], &h.stores[0])
            .unwrap();
        h.drive(0);
        h.stabilize();
    }
    h.cut.clear();
    h.tick_all(3);
    assert!(h.catch_ups[2].is_empty(), "no session");
    assert_eq!(h.nodes[2].last(), h.nodes[0].last());
    assert_eq!(h.nodes[2].commit_index(), h.nodes[0].commit_index());
}
