//! Log-replay catch-up, forwarded-command deduplication and abstentions: one test per rule.

use super::*;
use crate::progress::ProgressState;

fn e(t: u64, i: u64) -> Entry {
    Entry {
        term: Term(t),
        index: Index(i),
        payload: Payload::Command(vec![i as u8]),
    }
}

fn heartbeat(term: u64, leader: usize, prev: (u64, u64), commit: u64, catch_up: bool) -> Message {
    Message::AppendEntries(AppendEntries {
        term: Term(term),
        leader: p(leader),
        prev_log_position: Cursor(Term(prev.0), Index(prev.1)),
        entries: vec![],
        leader_commit: Index(commit),
        seq: 0,
        catch_up,
    })
}

fn replay_config() -> RaftConfig {
    RaftConfig {
        replay_threshold: 10,
        ..RaftConfig::for_tests()
    }
}

/// Node `i` pulls what `from` holds committed, in batches of `batch`, as a replay session
/// would.
fn replay_from(h: &mut Harness, i: usize, from: usize, batch: u64) {
    loop {
        let start = h.nodes[i].replay_position().next();
        let committed = h.nodes[from].commit_index();
        if start > committed {
            break;
        }
        let end = Index(committed.0.min(start.0 + batch - 1));
        let entries = LogReader::entries(&h.stores[from], start, end).unwrap();
        let (term, vote, leader) = (h.nodes[i].term(), h.nodes[i].vote, h.nodes[i].leader());
        h.nodes[i]
            .on_replayed(entries, committed, &h.stores[i])
            .unwrap();
        assert_eq!(
            (h.nodes[i].term(), h.nodes[i].vote, h.nodes[i].leader()),
            (term, vote, leader),
            "replay changes no term, vote or leader"
        );
        h.drive(i);
    }
}

/// A three-voter group where node 2 missed 40 commands; the leader (0) learns where it
/// stands and asks it to catch up by replay.
fn lagging_follower() -> Harness {
    let mut h = Harness::with_config(3, 0, replay_config());
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
    h.cut.clear();
    h.tick_all(3);
    h
}

#[test]
fn a_far_behind_follower_is_asked_to_catch_up_and_only_heartbeated() {
    let mut h = lagging_follower();
    assert_eq!(h.nodes[0].progress_state(&p(2)), Some(ProgressState::Sync));
    assert_eq!(h.catch_ups[2].len(), 1, "one catch-up request");
    let cu = h.catch_ups[2][0].clone();
    assert_eq!(cu.leader, p(0));
    assert_eq!(cu.leader_commit, Index(42));
    assert!(
        cu.position.index() > h.nodes[2].last().index(),
        "the request's previous entry is beyond the follower's log"
    );
    assert_eq!(
        cu.entries.last().map(|e| e.index),
        Some(h.nodes[0].last().index()),
        "it carries the leader's newest entries"
    );
    assert!(h.nodes[2].is_catching_up());
    // While the follower catches up: heartbeats only, and it never campaigns.
    let before = h.entries_in[2];
    h.tick_all(30);
    assert_eq!(h.entries_in[2], before, "no entries streamed");
    assert_eq!(h.leader(), Some(0));
    assert_eq!(h.nodes[2].role(), Role::Follower);
    assert_eq!(h.nodes[0].term(), Term(2));
    assert_eq!(
        h.catch_ups[2].len(),
        1,
        "no second request while the session is open"
    );
}

#[test]
fn a_replayed_follower_reports_its_position_and_the_leader_streams_only_the_rest() {
    let mut h = lagging_follower();
    let streamed = h.entries_in[2];
    replay_from(&mut h, 2, 1, 7);
    assert_eq!(h.nodes[2].commit_index(), Index(42));
    assert_eq!(h.applied[2].len(), 42, "replayed entries are applied");
    // The leader is told on finishing, leaves Sync and sends only what is new.
    h.nodes[2].finish_catch_up();
    assert!(!h.nodes[2].is_catching_up());
    h.drive(2);
    h.stabilize();
    assert_eq!(
        h.nodes[0].progress_state(&p(2)),
        Some(ProgressState::Replicate)
    );
    assert_eq!(h.nodes[0].progress_of(&p(2)).map(|x| x.0), Some(Index(42)));
    h.nodes[0]
        .propose(ProposalId(99), vec![99], &h.stores[0])
        .unwrap();
    h.drive(0);
    h.stabilize();
    h.tick_all(2);
    assert_eq!(h.nodes[2].last(), h.nodes[0].last());
    assert_eq!(h.nodes[2].commit_index(), Index(43));
    assert_eq!(
        h.entries_in[2] - streamed,
        1,
        "only the new command was streamed after the replay"
    );
}

#[test]
fn a_lost_catch_up_session_falls_back_to_probing_and_then_streaming() {
    let mut h = lagging_follower();
    assert_eq!(h.nodes[0].progress_state(&p(2)), Some(ProgressState::Sync));
    // The session never runs (its worker lost it). After a few stalls the leader streams.
    h.tick_all(250);
    assert_eq!(h.nodes[2].commit_index(), h.nodes[0].commit_index());
    assert_eq!(h.nodes[2].last(), h.nodes[0].last());
    assert_eq!(h.leader(), Some(0), "no election meanwhile");
}

#[test]
fn a_follower_close_to_the_commit_index_is_streamed_to() {
    // Far behind the leader's last entry but not its commit index (its no-op is not
    // committed): replay could not help, so the leader streams.
    let mut h = Harness::with_config(3, 0, replay_config());
    h.elect(0);
    h.tick_all(1);
    h.cut.extend([1, 2]);
    for k in 0..30 {
        h.nodes[0]
            .propose(ProposalId(k), vec![k as u8], &h.stores[0])
            .unwrap();
    }
    h.drive(0);
    h.stabilize();
    h.cut.clear();
    h.tick_all(3);
    assert_eq!(
        h.nodes[0].progress_state(&p(1)),
        Some(ProgressState::Replicate)
    );
    assert!(h.catch_ups[1].is_empty());
    assert_eq!(h.nodes[1].last(), h.nodes[0].last());
}

/// A follower (node 1 of a fresh group, term 1, commit 1) and its store.
fn follower() -> (Node, InMemoryLogStore) {
    let mut store = InMemoryLogStore::default();
    let mut n = Node::restart(p(1), RaftConfig::for_tests(), 1, &store, Index(0)).unwrap();
    n.bootstrap([p(0), p(1), p(2)].into(), ClusterId(1), &store)
        .unwrap();
    let _ = persist(&mut n, &mut store);
    (n, store)
}

fn persist(n: &mut Node, store: &mut InMemoryLogStore) -> Ready {
    let mut rd = n.ready(store).unwrap();
    if let Some(report) = rd.persist(store).unwrap() {
        n.on_persisted(&report, store).unwrap();
    }
    rd
}

#[test]
fn malformed_replayed_batches_are_refused_without_any_change() {
    let (mut n, mut store) = follower();
    n.on_replayed(vec![e(1, 2), e(1, 3)], Index(3), &store)
        .unwrap();
    let _ = persist(&mut n, &mut store);
    let before = (n.last(), n.commit_index(), n.replay_position());
    type Expect = fn(&InvalidReplay) -> bool;
    let cases: Vec<(Vec<Entry>, Expect)> = vec![
        (vec![e(1, 4), e(1, 6)], |x| {
            matches!(x, InvalidReplay::NotConsecutive { .. })
        }),
        (vec![e(1, 4), e(0, 5)], |x| {
            matches!(x, InvalidReplay::TermDecreases { .. })
        }),
        (vec![e(1, 5), e(1, 6)], |x| {
            matches!(x, InvalidReplay::Gap { .. })
        }),
        (vec![e(0, 1), e(1, 2)], |x| {
            matches!(x, InvalidReplay::ConflictsWithCommitted { .. })
        }),
    ];
    for (batch, expected) in cases {
        let err = n.on_replayed(batch.clone(), Index(9), &store).unwrap_err();
        assert!(!err.is_fatal(), "{err}");
        match &err {
            RaftError::InvalidReplay(x) => assert!(expected(x), "{batch:?}: {x}"),
            other => panic!("{other}"),
        }
        assert_eq!((n.last(), n.commit_index(), n.replay_position()), before);
        assert!(!n.has_ready());
    }
}

#[test]
fn replay_takes_only_committed_entries_of_entered_terms_and_commits_what_a_leader_announced() {
    let (mut n, mut store) = follower();
    // The peer's commit index is 6: entries above it are not known committed.
    n.on_replayed((2..=8).map(|i| e(1, i)).collect(), Index(6), &store)
        .unwrap();
    assert_eq!(n.last().index(), Index(6));
    assert_eq!(n.replay_position(), Index(6));
    // No leader of this node's term announced more than 1 yet: nothing new is committed.
    assert_eq!(n.commit_index(), Index(1));
    let _ = persist(&mut n, &mut store);
    // Entries of a term this node has not entered wait.
    n.on_replayed(vec![e(1, 7), e(2, 8)], Index(8), &store)
        .unwrap();
    assert_eq!(n.last(), Cursor(Term(1), Index(7)));
    let _ = persist(&mut n, &mut store);
    // The leader of term 1 announces commit 5: replayed entries up to it commit.
    n.step(p(0), heartbeat(1, 0, (1, 1), 5, false), &store)
        .unwrap();
    assert_eq!(n.commit_index(), Index(5));
    let mut rd = persist(&mut n, &mut store);
    assert_eq!(
        rd.take_committed()
            .iter()
            .map(|e| e.index.0)
            .collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    n.step(p(0), heartbeat(1, 0, (1, 1), 9, false), &store)
        .unwrap();
    assert_eq!(n.commit_index(), Index(7), "up to the replayed entries");
}

#[test]
fn replay_replaces_a_conflicting_uncommitted_suffix() {
    let (mut n, mut store) = follower();
    // Term 2's leader (0) sends 2..=5; commits 3.
    n.step(
        p(0),
        Message::AppendEntries(AppendEntries {
            term: Term(2),
            leader: p(0),
            prev_log_position: Cursor(Term(1), Index(1)),
            entries: (2..=5).map(|i| e(2, i)).collect(),
            leader_commit: Index(3),
            seq: 0,
            catch_up: false,
        }),
        &store,
    )
    .unwrap();
    let _ = persist(&mut n, &mut store);
    // A forwarded proposal landed at 5 in term 2.
    n.propose(ProposalId(9), vec![9], &store).unwrap();
    n.step(
        p(0),
        Message::Forward(Forward::CommandAck {
            request_id: 9,
            term: Term(2),
            assigned: IndexRange {
                start: Index(5),
                end: Index(5),
            },
        }),
        &store,
    )
    .unwrap();
    // Term 3's leader (2) is heard of; its committed entries 4..=6 replace 4 and 5.
    n.step(p(2), heartbeat(3, 2, (2, 3), 3, false), &store)
        .unwrap();
    let _ = persist(&mut n, &mut store);
    n.on_replayed(vec![e(2, 3), e(3, 4), e(3, 5), e(3, 6)], Index(6), &store)
        .unwrap();
    assert_eq!(n.last(), Cursor(Term(3), Index(6)));
    assert_eq!(n.commit_index(), Index(3), "term 3's leader announced 3");
    let mut rd = persist(&mut n, &mut store);
    assert_eq!(rd.entries().len(), 0, "handed out and persisted");
    assert_eq!(Storage::term_at(&store, Index(4)).unwrap(), Some(Term(3)));
    assert!(rd.take_outcomes().iter().any(|o| o.id == ProposalId(9)
        && matches!(
            o.result,
            Err(ClientError::Overwritten { found: Term(3), .. })
        )));
}

#[test]
fn finishing_a_catch_up_reports_the_commit_index_once_durable() {
    let (mut n, mut store) = follower();
    n.step(p(0), heartbeat(1, 0, (1, 9), 6, true), &store)
        .unwrap();
    let mut rd = n.ready(&store).unwrap();
    assert!(rd.take_catch_up().is_some());
    rd.persist(&mut store).unwrap();
    n.on_replayed((2..=6).map(|i| e(1, i)).collect(), Index(6), &store)
        .unwrap();
    assert_eq!(n.commit_index(), Index(6));
    let mut rd = n.ready(&store).unwrap();
    rd.stage(&mut store).unwrap();
    n.finish_catch_up();
    let acks = |rd: &mut Ready| -> Vec<Index> {
        rd.take_messages()
            .into_iter()
            .chain(rd.take_after_sync())
            .filter_map(|(to, m)| match m {
                Message::AppendEntriesResponse(r) if r.vote == Vote::Granted && to == p(0) => {
                    Some(r.last_log_index)
                }
                _ => None,
            })
            .collect()
    };
    let mut rd = n.ready(&store).unwrap();
    assert!(
        acks(&mut rd).is_empty(),
        "not before the entries are durable"
    );
    let report = store.sync().unwrap();
    n.on_persisted(&report, &store).unwrap();
    let mut rd = n.ready(&store).unwrap();
    assert_eq!(acks(&mut rd), [Index(6)]);
    assert!(!n.is_catching_up());
}

#[test]
fn a_catch_up_is_reported_only_when_asked_and_once_per_session() {
    let (mut n, mut store) = follower();
    let catch_up = |n: &mut Node, store: &mut InMemoryLogStore| {
        let mut rd = n.ready(store).unwrap();
        let cu = rd.take_catch_up();
        let answers: Vec<Vote> = rd
            .take_messages()
            .into_iter()
            .chain(rd.take_after_sync())
            .filter_map(|(_, m)| match m {
                Message::AppendEntriesResponse(r) => Some(r.vote),
                _ => None,
            })
            .collect();
        rd.persist(store).unwrap();
        (cu.is_some(), answers)
    };
    // A probe beyond the log: a plain gap, no catch-up.
    n.step(p(0), heartbeat(1, 0, (1, 9), 1, false), &store)
        .unwrap();
    assert_eq!(catch_up(&mut n, &mut store), (false, vec![Vote::Abstained]));
    // The leader asks.
    n.step(p(0), heartbeat(1, 0, (1, 9), 1, true), &store)
        .unwrap();
    assert_eq!(catch_up(&mut n, &mut store), (true, vec![Vote::Abstained]));
    // Asked again, or by a new leader, while the session is open: no second one.
    n.step(p(0), heartbeat(1, 0, (1, 9), 1, true), &store)
        .unwrap();
    assert_eq!(catch_up(&mut n, &mut store), (false, vec![Vote::Abstained]));
    n.step(p(2), heartbeat(2, 2, (2, 9), 1, true), &store)
        .unwrap();
    assert_eq!(catch_up(&mut n, &mut store), (false, vec![Vote::Abstained]));
    // The session ended: the next request opens another, also on a conflict at prev.
    n.finish_catch_up();
    n.step(p(2), heartbeat(2, 2, (2, 1), 1, true), &store)
        .unwrap();
    assert_eq!(
        catch_up(&mut n, &mut store),
        (true, vec![Vote::Granted, Vote::Abstained]),
        "finishing reported the commit index (granted), then the new request"
    );
}

#[test]
fn a_repeated_forward_is_appended_once_and_answered_with_the_original_assignment() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    let forward = |commands: Vec<Vec<u8>>| {
        Message::Forward(Forward::Command {
            commands,
            request_id: Some(7),
            resend_of: None,
        })
    };
    let acks = |h: &mut Harness| -> Vec<(Term, IndexRange)> {
        let mut rd = h.nodes[0].ready(&h.stores[0]).unwrap();
        rd.persist(&mut h.stores[0]).unwrap();
        rd.take_messages()
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Forward(Forward::CommandAck { term, assigned, .. }) => {
                    Some((term, assigned))
                }
                _ => None,
            })
            .collect()
    };
    let last = h.nodes[0].last().index();
    h.nodes[0]
        .step(
            p(1),
            forward(vec![b"a".to_vec(), b"b".to_vec()]),
            &h.stores[0],
        )
        .unwrap();
    let first = acks(&mut h);
    h.nodes[0]
        .step(
            p(1),
            forward(vec![b"a".to_vec(), b"b".to_vec()]),
            &h.stores[0],
        )
        .unwrap();
    assert_eq!(acks(&mut h), first, "the original answer");
    assert_eq!(
        h.nodes[0].last().index(),
        Index(last.0 + 2),
        "appended once"
    );
    // The same id from another follower, or with other commands, is another request.
    h.nodes[0]
        .step(
            p(2),
            forward(vec![b"a".to_vec(), b"b".to_vec()]),
            &h.stores[0],
        )
        .unwrap();
    h.nodes[0]
        .step(p(1), forward(vec![b"c".to_vec()]), &h.stores[0])
        .unwrap();
    assert_eq!(h.nodes[0].last().index(), Index(last.0 + 5));
}

#[test]
fn a_resend_the_leader_does_not_remember_is_appended_only_in_its_first_term() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    let resend = |rid: u64, term: u64| {
        Message::Forward(Forward::Command {
            commands: vec![vec![rid as u8]],
            request_id: Some(rid),
            resend_of: Some(Term(term)),
        })
    };
    let last = h.nodes[0].last().index();
    // First sent in an earlier term: maybe appended by an incarnation that forgot it.
    h.nodes[0].step(p(1), resend(1, 1), &h.stores[0]).unwrap();
    assert_eq!(h.nodes[0].last().index(), last, "dropped");
    // First sent in this term: the first send never arrived, so it is appended (once).
    h.nodes[0].step(p(1), resend(2, 2), &h.stores[0]).unwrap();
    h.nodes[0].step(p(1), resend(2, 2), &h.stores[0]).unwrap();
    assert_eq!(h.nodes[0].last().index(), last.next());
}

#[test]
fn a_forward_whose_acknowledgement_was_lost_is_retried_and_applied_once() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    h.nodes[2]
        .propose(ProposalId(5), b"x".to_vec(), &h.stores[2])
        .unwrap();
    h.drive(2);
    // The leader appends it; its acknowledgement is lost.
    while let Some((from, to, m)) = h.queue.pop_front() {
        let j = to.0[0] as usize - 1;
        if matches!(m, Message::Forward(Forward::CommandAck { .. })) {
            continue;
        }
        h.nodes[j].step(p(from), m, &h.stores[j]).unwrap();
        h.drive(j);
    }
    h.tick_all(12);
    let outcomes: Vec<_> = h.outcomes[2]
        .iter()
        .filter(|o| o.id == ProposalId(5))
        .collect();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].result, Ok(Cursor(Term(2), Index(3))));
    let applied_x = h.applied[0]
        .iter()
        .filter(|e| e.payload == Payload::Command(b"x".to_vec()))
        .count();
    assert_eq!(applied_x, 1, "applied once");
}

#[test]
fn abstentions_count_neither_for_nor_against_a_candidate() {
    let mut h = Harness::new(3, 0);
    h.nodes[0].force_election_timeout(1);
    h.tick(0);
    h.queue.clear();
    assert_eq!(h.nodes[0].role(), Role::PreCandidate);
    let answer = |vote, term: u64, pre: bool| {
        let r = RequestVoteResponse {
            term: Term(term),
            vote,
        };
        if pre {
            Message::PreVoteResponse(r)
        } else {
            Message::RequestVoteResponse(r)
        }
    };
    // One voter denies, one abstains: counted as a denial, the pre-vote would be lost.
    let store = &h.stores[0];
    h.nodes[0]
        .step(p(2), answer(Vote::Denied, 1, true), store)
        .unwrap();
    h.nodes[0]
        .step(p(1), answer(Vote::Abstained, 1, true), store)
        .unwrap();
    assert_eq!(h.nodes[0].role(), Role::PreCandidate, "still undecided");
    h.nodes[0]
        .step(p(1), answer(Vote::Granted, 2, true), store)
        .unwrap();
    assert_eq!(h.nodes[0].role(), Role::Candidate);
    h.nodes[0]
        .step(p(2), answer(Vote::Denied, 2, false), store)
        .unwrap();
    h.nodes[0]
        .step(p(1), answer(Vote::Abstained, 2, false), store)
        .unwrap();
    assert_eq!(h.nodes[0].role(), Role::Candidate, "still undecided");
    h.nodes[0]
        .step(p(1), answer(Vote::Granted, 2, false), store)
        .unwrap();
    assert!(h.nodes[0].is_leader());
}

#[test]
fn a_learner_in_its_own_configuration_votes_when_a_candidate_asks() {
    // A candidate asks only the voters of its configuration: being asked means this node
    // was promoted in an entry it has not received yet.
    let mut h = Harness::new(3, 1);
    h.elect(0);
    h.tick_all(1);
    h.nodes[0]
        .propose_membership(
            MembershipChange::AddLearner {
                peer: p(3),
                observer: false,
            },
            &h.stores[0],
        )
        .unwrap()
        .unwrap();
    h.drive(0);
    h.stabilize();
    assert_eq!(
        h.nodes[3].membership().learners().get(&p(3)),
        Some(&LearnerKind::CatchingUp)
    );
    // Out of the leader's lease (a vote request within it is ignored).
    for _ in 0..20 {
        h.tick(3);
    }
    h.queue.clear();
    let term = h.nodes[3].term().next();
    h.nodes[3]
        .step(
            p(1),
            Message::RequestVote(RequestVote {
                term,
                candidate: p(1),
                log_position: Cursor(term, Index(99)),
                transfer: false,
            }),
            &h.stores[3],
        )
        .unwrap();
    let mut rd = h.nodes[3].ready(&h.stores[3]).unwrap();
    assert!(rd
        .take_after_sync()
        .iter()
        .any(|(_, m)| matches!(m, Message::RequestVoteResponse(r) if r.vote == Vote::Granted)));
}
