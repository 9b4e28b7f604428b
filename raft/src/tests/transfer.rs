//! Leadership transfer: the leader catches the target up, sends it `TimeoutNow`, refuses
//! new work meanwhile, and gives up after an election timeout; the target campaigns at
//! once and voters answer it despite leader stickiness.

use super::*;

/// A 3-voter group led by node 0 in term 2 with a few commands committed everywhere.
fn led_by_0() -> Harness {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    for k in 0..3 {
        h.nodes[0]
            .propose(ProposalId(k), vec![k as u8], &h.stores[0])
            .unwrap();
    }
    h.drive(0);
    h.stabilize();
    h.tick_all(2);
    assert_eq!(h.nodes[0].commit_index(), Index(5));
    h
}

fn transfer(h: &mut Harness, i: usize, target: Option<PeerId>) -> Result<PeerId, ClientError> {
    let r = h.nodes[i]
        .transfer_leadership(target, &h.stores[i])
        .unwrap();
    h.drive(i);
    r
}

fn outcome(h: &Harness, i: usize, id: ProposalId) -> Option<&Result<Cursor, ClientError>> {
    h.outcomes[i].iter().find(|o| o.id == id).map(|o| &o.result)
}

/// `TimeoutNow` messages waiting in the queue from node `from` to `to`.
fn timeout_nows(h: &Harness, from: usize, to: usize) -> usize {
    h.queue
        .iter()
        .filter(|(f, t, m)| *f == from && *t == p(to) && matches!(m, Message::TimeoutNow(_)))
        .count()
}

/// Delivers one queued message the way `stabilize` does; false when none is left.
fn deliver_one(h: &mut Harness) -> bool {
    let Some((from, to, m)) = h.queue.pop_front() else {
        return false;
    };
    let j = to.0[0] as usize - 1;
    if !h.cut.contains(&from) && !h.cut.contains(&j) {
        h.nodes[j].step(p(from), m, &h.stores[j]).unwrap();
        h.drive(j);
    }
    true
}

/// The (term, index) of every entry node `i` applied.
fn applied(h: &Harness, i: usize) -> Vec<Cursor> {
    h.applied[i].iter().map(Entry::cursor).collect()
}

#[test]
fn a_caught_up_follower_takes_over_in_the_next_term_and_nothing_committed_is_lost() {
    let mut h = led_by_0();
    let before = applied(&h, 0);
    assert_eq!(transfer(&mut h, 0, Some(p(1))), Ok(p(1)));
    assert_eq!(h.nodes[0].transfer_target(), Some(p(1)));
    assert_eq!(timeout_nows(&h, 0, 1), 1, "caught up: TimeoutNow at once");
    h.stabilize();
    assert!(h.nodes[1].is_leader());
    assert_eq!(h.nodes[1].term(), Term(3));
    assert_eq!(h.nodes[0].role(), Role::Follower);
    assert_eq!(h.nodes[0].transfer_target(), None);
    assert_eq!(
        h.transfers[0],
        [TransferOutcome::SteppedDown {
            to: p(1),
            term: Term(3)
        }]
    );
    h.tick_all(2);
    for i in 0..3 {
        assert_eq!(h.nodes[i].leader(), Some(p(1)), "node {i}");
        let now = applied(&h, i);
        assert_eq!(
            now[..before.len()],
            before[..],
            "node {i} kept what was committed"
        );
        assert_eq!(now.len(), before.len() + 1, "plus the new leader's no-op");
    }
}

#[test]
fn a_lagging_target_is_caught_up_before_it_is_told_to_campaign() {
    let mut h = led_by_0();
    h.cut.insert(2);
    for k in 10..30 {
        h.nodes[0]
            .propose(ProposalId(k), vec![k as u8], &h.stores[0])
            .unwrap();
    }
    h.drive(0);
    h.stabilize();
    h.cut.clear();
    let last = h.nodes[0].last();
    assert!(
        h.nodes[2].last().index().0 + 20 <= last.index().0,
        "node 2 lags"
    );
    assert_eq!(transfer(&mut h, 0, Some(p(2))), Ok(p(2)));
    assert_eq!(timeout_nows(&h, 0, 2), 0, "not before it is caught up");
    let mut told = false;
    while deliver_one(&mut h) {
        if !told && timeout_nows(&h, 0, 2) > 0 {
            told = true;
            assert_eq!(
                h.nodes[0].progress_of(&p(2)).map(|(matched, _)| matched),
                Some(last.index()),
                "TimeoutNow only once the target matches the leader's last entry"
            );
            assert_eq!(h.nodes[2].last(), last);
        }
    }
    assert!(told);
    assert!(h.nodes[2].is_leader());
    assert_eq!(h.nodes[2].term(), Term(3));
    h.tick_all(2);
    assert_eq!(h.nodes[0].leader(), Some(p(2)));
    assert!(h.nodes[2].commit_index() > last.index());
}

#[test]
fn new_work_is_refused_during_a_transfer_and_taken_by_the_new_leader() {
    let mut h = led_by_0();
    assert_eq!(transfer(&mut h, 0, Some(p(1))), Ok(p(1)));
    let refused = ClientError::TransferInProgress { to: p(1) };
    h.nodes[0]
        .propose(ProposalId(100), vec![100], &h.stores[0])
        .unwrap();
    h.drive(0);
    assert_eq!(outcome(&h, 0, ProposalId(100)), Some(&Err(refused.clone())));
    let change = MembershipChange::AddLearner {
        peer: p(5),
        observer: false,
    };
    let r = h.nodes[0].propose_membership(change, &h.stores[0]).unwrap();
    assert_eq!(r, Err(refused.clone()));
    assert_eq!(
        refused.to_string(),
        format!(
            "leadership is being transferred to {}: nothing was appended, retry at the new leader",
            p(1)
        )
    );
    // Reads go on.
    h.nodes[0].read_index(7, &h.stores[0]).unwrap();
    h.drive(0);
    h.stabilize();
    assert!(h.reads[0].iter().any(|r| r.ctx == 7 && r.result.is_ok()));
    assert!(h.nodes[1].is_leader());
    h.tick_all(2);
    // The new leader takes proposals, and so does the old one, forwarding them.
    for (i, id) in [(1, ProposalId(101)), (0, ProposalId(102))] {
        h.nodes[i].propose(id, vec![1], &h.stores[i]).unwrap();
        h.drive(i);
        h.stabilize();
        h.tick_all(1);
        assert!(
            matches!(outcome(&h, i, id), Some(Ok(c)) if c.term() == Term(3)),
            "{:?}",
            h.outcomes[i]
        );
    }
}

#[test]
fn a_transfer_to_an_unreachable_target_gives_up_after_an_election_timeout() {
    let mut h = led_by_0();
    h.cut.insert(1);
    assert_eq!(transfer(&mut h, 0, Some(p(1))), Ok(p(1)));
    // A follower's forwarded command fails at once, definitely not appended.
    h.nodes[2]
        .propose(ProposalId(200), vec![200], &h.stores[2])
        .unwrap();
    h.drive(2);
    let forward = h
        .queue
        .iter()
        .find(|(from, _, m)| *from == 2 && matches!(m, Message::Forward(_)))
        .cloned()
        .expect("forwarded to the leader");
    h.stabilize();
    let refused = Err(ClientError::TransferInProgress { to: p(1) });
    assert_eq!(outcome(&h, 2, ProposalId(200)), Some(&refused));
    let last = h.nodes[0].last();
    let election = h.nodes[0].config.election_ticks as usize;
    for t in 1..=election {
        for i in [0, 2] {
            h.tick(i);
        }
        h.stabilize();
        let expected = (t < election).then_some(p(1));
        assert_eq!(h.nodes[0].transfer_target(), expected, "tick {t}");
    }
    assert!(h.nodes[0].is_leader(), "still the leader");
    assert_eq!(h.transfers[0], [TransferOutcome::TimedOut { to: p(1) }]);
    // A late copy of the refused forward gets the same answer: never appended.
    h.queue.push_back(forward);
    h.stabilize();
    assert_eq!(h.nodes[0].last(), last);
    // Proposals are taken again.
    h.nodes[0]
        .propose(ProposalId(201), vec![201], &h.stores[0])
        .unwrap();
    h.drive(0);
    h.stabilize();
    h.tick_all(1);
    assert!(matches!(outcome(&h, 0, ProposalId(201)), Some(Ok(_))));
}

#[test]
fn removing_the_target_from_the_configuration_ends_the_transfer() {
    let mut h = led_by_0();
    h.cut.insert(1);
    assert_eq!(transfer(&mut h, 0, Some(p(1))), Ok(p(1)));
    // Membership changes are refused during a transfer, so write the entry directly, as a
    // configuration applied on the leader by any path would be.
    let without = h.nodes[0]
        .membership()
        .apply(MembershipChange::Remove(p(1)))
        .unwrap();
    h.nodes[0]
        .append_local(Payload::Config(without), &h.stores[0])
        .unwrap();
    h.drive(0);
    assert_eq!(h.nodes[0].transfer_target(), None);
    assert_eq!(
        h.transfers[0],
        [TransferOutcome::TargetRemoved { to: p(1) }]
    );
}

#[test]
fn transfers_to_learners_strangers_from_followers_and_during_another_are_refused() {
    let mut h = Harness::new(3, 1);
    h.elect(0);
    h.tick_all(1);
    let change = MembershipChange::AddLearner {
        peer: p(3),
        observer: true,
    };
    assert!(h.nodes[0]
        .propose_membership(change, &h.stores[0])
        .unwrap()
        .is_ok());
    h.drive(0);
    h.stabilize();
    h.tick_all(3);
    let stranger = PeerId([99; 32]);
    let cases = [
        (
            Some(p(3)),
            ClientError::TransferToLearner { peer: p(3) },
            format!(
                "cannot transfer leadership to {}: it is a learner, not a voter",
                p(3)
            ),
        ),
        (
            Some(stranger),
            ClientError::TransferToUnknown { peer: stranger },
            format!("cannot transfer leadership to {stranger}: it is not a member of this group"),
        ),
    ];
    for (target, error, text) in cases {
        assert_eq!(transfer(&mut h, 0, target), Err(error.clone()));
        assert_eq!(error.to_string(), text);
        assert_eq!(h.nodes[0].transfer_target(), None);
    }
    assert_eq!(
        transfer(&mut h, 1, Some(p(2))),
        Err(ClientError::NotLeader { leader: Some(p(0)) })
    );
    assert_eq!(
        transfer(&mut h, 0, Some(p(0))),
        Ok(p(0)),
        "to itself: a no-op"
    );
    assert_eq!(h.nodes[0].transfer_target(), None);
    // One at a time.
    h.cut.insert(1);
    assert_eq!(transfer(&mut h, 0, Some(p(1))), Ok(p(1)));
    for target in [Some(p(2)), Some(p(1)), None] {
        assert_eq!(
            transfer(&mut h, 0, target),
            Err(ClientError::TransferInProgress { to: p(1) })
        );
    }
    // A lone voter has nobody to hand over to.
    let mut alone = Harness::new(1, 0);
    alone.elect(0);
    assert_eq!(
        transfer(&mut alone, 0, None),
        Err(ClientError::NoTransferTarget)
    );
    assert_eq!(
        ClientError::NoTransferTarget.to_string(),
        "cannot transfer leadership: no other voter is active"
    );
}

#[test]
fn without_a_target_the_most_caught_up_active_voter_is_chosen() {
    let mut h = Harness::new(5, 0);
    h.elect(0);
    h.tick_all(2);
    // Nodes 1 and 4 miss three entries; 2 and 3 hold them all.
    h.cut.extend([1, 4]);
    for k in 0..3 {
        h.nodes[0]
            .propose(ProposalId(k), vec![k as u8], &h.stores[0])
            .unwrap();
    }
    h.drive(0);
    h.stabilize();
    assert_eq!(
        h.nodes[0].progress_of(&p(1)).map(|x| x.0),
        Some(Index(2)),
        "node 1 lags"
    );
    h.cut.insert(2);
    assert_eq!(
        transfer(&mut h, 0, None),
        Ok(p(2)),
        "the furthest ahead, lowest id among equals (2 and 3)"
    );
    // Node 2 is cut off: the transfer gives up.
    h.cut.remove(&1);
    h.cut.remove(&4);
    h.tick_all(12);
    assert_eq!(h.transfers[0], [TransferOutcome::TimedOut { to: p(2) }]);
    assert!(h.nodes[0].is_leader());
    // All caught up, then node 1 falls silent: once a check-quorum round passed without
    // word from it, it no longer counts as active, lowest id or not.
    h.cut.clear();
    h.tick_all(2);
    let last = h.nodes[0].last().index();
    for i in 1..5 {
        assert_eq!(h.nodes[0].progress_of(&p(i)).map(|x| x.0), Some(last));
    }
    h.cut.insert(1);
    h.tick_all(11);
    assert!(h.nodes[0].is_leader());
    assert_eq!(
        transfer(&mut h, 0, None),
        Ok(p(2)),
        "node 1 was not heard from"
    );
}

#[test]
fn time_out_now_is_obeyed_only_from_the_current_leader_and_only_by_voters() {
    let mut h = Harness::new(3, 2);
    h.elect(0);
    h.tick_all(1);
    for (peer, observer) in [(p(3), false), (p(4), true)] {
        let change = MembershipChange::AddLearner { peer, observer };
        let r = h.nodes[0].propose_membership(change, &h.stores[0]).unwrap();
        assert!(r.is_ok(), "{r:?}");
        h.drive(0);
        h.stabilize();
        h.tick_all(2);
    }
    assert!(h.nodes[0].membership().learners().len() == 2);
    let now = |term| Message::TimeoutNow(TimeoutNow { term: Term(term) });
    // (receiver, sender, term): not the leader, a stale term, a catching-up learner, an
    // observer.
    for (i, from, term) in [(1, 2, 2), (1, 0, 1), (3, 0, 2), (4, 0, 2)] {
        h.nodes[i].step(p(from), now(term), &h.stores[i]).unwrap();
        assert_eq!(h.nodes[i].role(), Role::Follower, "node {i} from {from}");
        assert_eq!(h.nodes[i].term(), Term(2), "node {i} from {from}");
    }
    // A voter set never to campaign ignores it too.
    h.nodes[2].config.campaign = crate::CampaignPolicy::Never;
    h.nodes[2].step(p(0), now(2), &h.stores[2]).unwrap();
    assert_eq!(h.nodes[2].role(), Role::Follower);
    // From the leader of its term, a voter campaigns at once, flagged as a transfer.
    h.nodes[1].step(p(0), now(2), &h.stores[1]).unwrap();
    assert_eq!(h.nodes[1].role(), Role::Candidate, "no pre-vote");
    assert_eq!(h.nodes[1].term(), Term(3));
    let mut rd = h.nodes[1].ready(&h.stores[1]).unwrap();
    let requests: Vec<_> = rd.take_after_sync();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|(_, m)| matches!(m, Message::RequestVote(r) if r.transfer && r.term == Term(3))));
}

#[test]
fn a_transfer_vote_is_granted_under_the_lease_and_an_ordinary_one_is_not() {
    let mut h = led_by_0();
    let request = |transfer| {
        Message::RequestVote(RequestVote {
            term: Term(3),
            candidate: p(1),
            log_position: h.nodes[1].last(),
            transfer,
        })
    };
    let (plain, flagged) = (request(false), request(true));
    h.nodes[2].step(p(1), plain, &h.stores[2]).unwrap();
    assert_eq!(
        h.nodes[2].term(),
        Term(2),
        "ignored while the leader is heard"
    );
    let mut rd = h.nodes[2].ready(&h.stores[2]).unwrap();
    assert!(rd.take_messages().is_empty() && rd.take_after_sync().is_empty());
    rd.persist(&mut h.stores[2]).unwrap();
    h.nodes[2].step(p(1), flagged, &h.stores[2]).unwrap();
    assert_eq!(h.nodes[2].term(), Term(3));
    let mut rd = h.nodes[2].ready(&h.stores[2]).unwrap();
    assert!(matches!(
        &rd.take_after_sync()[..],
        [(to, Message::RequestVoteResponse(RequestVoteResponse { vote: Vote::Granted, term: Term(3) }))]
            if *to == p(1)
    ));
}
