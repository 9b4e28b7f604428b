//! Unit tests per rule: each feeds one input (or a short script) and asserts the exact
//! effect. A tiny in-process harness delivers messages in order with no faults.

use super::*;
use crate::{InMemoryLogStore, Storage};
use std::collections::{BTreeSet, HashSet, VecDeque};

fn p(i: usize) -> PeerId {
    PeerId([i as u8 + 1; 32])
}

use crate::PeerId;

/// What the harness's driver does with node `from`'s output: queue messages, record
/// applied entries, outcomes and catch-ups, and sync at once unless syncing is off.
struct HarnessEffects<'a> {
    from: usize,
    node: &'a mut Node,
    store: &'a mut InMemoryLogStore,
    queue: &'a mut VecDeque<(usize, PeerId, Message)>,
    applied: &'a mut Vec<Entry>,
    outcomes: &'a mut Vec<ProposalOutcome>,
    reads: &'a mut Vec<ReadOutcome>,
    catch_ups: &'a mut Vec<CatchUp>,
    transfers: &'a mut Vec<TransferOutcome>,
    sync: bool,
}

impl Effects for HarnessEffects<'_> {
    type Store = InMemoryLogStore;
    type Error = RaftError;

    fn core(&mut self) -> (&mut Node, &mut InMemoryLogStore) {
        (self.node, self.store)
    }

    fn send(&mut self, to: PeerId, message: Message, _after_sync: bool) {
        self.queue.push_back((self.from, to, message));
    }

    fn sync(&mut self) -> Result<Option<SyncReport>, RaftError> {
        Ok(if self.sync {
            Some(self.store.sync()?)
        } else {
            None
        })
    }

    fn apply(&mut self, committed: Vec<Entry>) -> Result<(), RaftError> {
        for e in committed {
            self.node.on_applied(e.index);
            self.applied.push(e);
        }
        Ok(())
    }

    fn resolve(
        &mut self,
        outcomes: Vec<ProposalOutcome>,
        reads: Vec<ReadOutcome>,
    ) -> Result<(), RaftError> {
        self.outcomes.extend(outcomes);
        self.reads.extend(reads);
        Ok(())
    }

    fn catch_up(&mut self, catch_up: CatchUp) -> Result<(), RaftError> {
        self.catch_ups.push(catch_up);
        Ok(())
    }

    fn transfer_ended(&mut self, outcome: TransferOutcome) -> Result<(), RaftError> {
        self.transfers.push(outcome);
        Ok(())
    }
}

struct Harness {
    nodes: Vec<Node>,
    drivers: Vec<ReadyDriver>,
    stores: Vec<InMemoryLogStore>,
    queue: VecDeque<(usize, PeerId, Message)>,
    applied: Vec<Vec<Entry>>,
    outcomes: Vec<Vec<ProposalOutcome>>,
    reads: Vec<Vec<ReadOutcome>>,
    cut: HashSet<usize>,
    /// When false, the driver stages but does not sync (to test durability gating).
    sync: bool,
    /// Catch-ups each node reported.
    catch_ups: Vec<Vec<CatchUp>>,
    /// Entries delivered to each node in appends.
    entries_in: Vec<usize>,
    /// Empty appends (heartbeats, commit notices) delivered to any node.
    empty_appends_in: usize,
    /// How the leadership transfers each node ran ended.
    transfers: Vec<Vec<TransferOutcome>>,
}

impl Harness {
    fn new(voters: usize, learners: usize) -> Self {
        Self::with_config(voters, learners, RaftConfig::for_tests())
    }

    fn with_config(voters: usize, learners: usize, config: RaftConfig) -> Self {
        let mut h = Harness {
            nodes: Vec::new(),
            drivers: Vec::new(),
            stores: Vec::new(),
            queue: VecDeque::new(),
            applied: Vec::new(),
            outcomes: Vec::new(),
            reads: Vec::new(),
            cut: HashSet::new(),
            sync: true,
            catch_ups: Vec::new(),
            entries_in: Vec::new(),
            empty_appends_in: 0,
            transfers: Vec::new(),
        };
        let set: BTreeSet<PeerId> = (0..voters).map(p).collect();
        for i in 0..voters + learners {
            let store = InMemoryLogStore::default();
            let mut node = Node::restart(p(i), config.clone(), i as u64, &store, Index(0)).unwrap();
            if i < voters {
                node.bootstrap(set.clone(), ClusterId(1), &store).unwrap();
            }
            h.nodes.push(node);
            h.drivers.push(ReadyDriver::new());
            h.stores.push(store);
            h.applied.push(Vec::new());
            h.outcomes.push(Vec::new());
            h.reads.push(Vec::new());
            h.catch_ups.push(Vec::new());
            h.entries_in.push(0);
            h.transfers.push(Vec::new());
        }
        for i in 0..h.nodes.len() {
            h.drive(i);
        }
        h
    }

    /// Drives node `i` through the one Ready driver.
    fn drive(&mut self, i: usize) {
        let mut fx = HarnessEffects {
            from: i,
            node: &mut self.nodes[i],
            store: &mut self.stores[i],
            queue: &mut self.queue,
            applied: &mut self.applied[i],
            outcomes: &mut self.outcomes[i],
            reads: &mut self.reads[i],
            catch_ups: &mut self.catch_ups[i],
            transfers: &mut self.transfers[i],
            sync: self.sync,
        };
        self.drivers[i].drive(&mut fx).unwrap();
    }

    /// Delivers every message until none is left; a leader's commit notices go out once
    /// the network is quiet (as the worker sends them a moment after its turn).
    fn stabilize(&mut self) {
        self.deliver_all();
        let waiting = |h: &Self| -> Vec<usize> {
            (0..h.nodes.len())
                .filter(|i| !h.cut.contains(i) && h.nodes[*i].commit_notices_pending())
                .collect()
        };
        loop {
            let leaders = waiting(self);
            if leaders.is_empty() {
                return;
            }
            for i in leaders {
                self.nodes[i].send_commit_notices(&self.stores[i]).unwrap();
                self.drive(i);
            }
            self.deliver_all();
        }
    }

    fn deliver_all(&mut self) {
        let mut steps = 0;
        while let Some((from, to, m)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "no quiescence");
            let j = to.0[0] as usize - 1;
            if self.cut.contains(&from) || self.cut.contains(&j) {
                continue;
            }
            if let Message::AppendEntries(a) = &m {
                self.entries_in[j] += a.entries.len();
                self.empty_appends_in += usize::from(a.entries.is_empty());
            }
            self.nodes[j].step(p(from), m, &self.stores[j]).unwrap();
            self.drive(j);
        }
    }

    fn tick(&mut self, i: usize) {
        self.nodes[i].tick(&self.stores[i]).unwrap();
        self.drive(i);
    }

    fn tick_all(&mut self, times: usize) {
        for _ in 0..times {
            for i in 0..self.nodes.len() {
                self.tick(i);
            }
            self.stabilize();
        }
    }

    /// Makes node `i` time out now and runs the election to quiescence.
    fn elect(&mut self, i: usize) {
        self.nodes[i].force_election_timeout(1);
        self.tick(i);
        self.stabilize();
    }

    fn leader(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.nodes[i].is_leader() && !self.cut.contains(&i))
    }
}

/// Three voters led by node 0 with `n` commands committed everywhere.
fn cluster_with_entries(n: u8) -> Harness {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    for k in 0..n {
        h.nodes[0]
            .propose(ProposalId(u64::from(k)), vec![k], &h.stores[0])
            .unwrap();
        h.drive(0);
        h.stabilize();
    }
    h.tick_all(2);
    h
}

mod commit_notice;
mod failover;
mod lost_state;
mod low_space;
mod membership;
mod quiesce;
mod replay;
mod snapshot_catch_up;
mod transfer;
mod vote_withheld;

#[test]
fn single_voter_elects_itself_and_commits_its_noop_once_synced() {
    let mut h = Harness::new(1, 0);
    h.sync = false;
    h.nodes[0].force_election_timeout(1);
    h.tick(0);
    assert!(h.nodes[0].is_leader());
    assert_eq!(h.nodes[0].term(), Term(2));
    // The no-op (index 2) is staged but not synced: the leader does not count itself yet.
    assert_eq!(h.nodes[0].commit_index(), Index(1));
    let report = h.stores[0].sync().unwrap();
    h.nodes[0].on_persisted(&report, &h.stores[0]).unwrap();
    assert_eq!(h.nodes[0].commit_index(), Index(2));
}

#[test]
fn three_voters_elect_exactly_one_leader() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    assert_eq!(h.leader(), Some(0));
    assert_eq!(h.nodes.iter().filter(|n| n.is_leader()).count(), 1);
    assert!(h.nodes.iter().all(|n| n.term() == Term(2)));
    // Everyone applied config (1) and no-op (2) after a heartbeat carries the commit.
    h.tick_all(2);
    for a in &h.applied {
        assert_eq!(a.iter().map(|e| e.index.0).collect::<Vec<_>>(), vec![1, 2]);
    }
}

#[test]
fn vote_is_persisted_before_it_leaves() {
    let store = InMemoryLogStore::default();
    let voters: BTreeSet<PeerId> = (0..3).map(p).collect();
    let mut n = Node::restart(p(1), RaftConfig::for_tests(), 1, &store, Index(0)).unwrap();
    n.bootstrap(voters, ClusterId(1), &store).unwrap();
    let mut store = store;
    let mut rd = n.ready(&store).unwrap();
    rd.persist(&mut store).unwrap();
    let req = Message::RequestVote(RequestVote {
        term: Term(2),
        candidate: p(0),
        log_position: Cursor(Term(1), Index(1)),
        transfer: false,
    });
    n.step(p(0), req, &store).unwrap();
    let mut rd = n.ready(&store).unwrap();
    assert_eq!(
        rd.hard_state().map(|h| (h.term, h.vote)),
        Some((Term(2), Some(p(0))))
    );
    assert!(rd.must_sync());
    assert!(
        rd.take_messages().is_empty(),
        "nothing leaves before the sync"
    );
    let after = rd.take_after_sync();
    assert!(matches!(
        &after[..],
        [(to, Message::RequestVoteResponse(RequestVoteResponse { vote: Vote::Granted, term: Term(2) }))] if *to == p(0)
    ));
}

#[test]
fn one_vote_per_term_even_after_restart() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    // Node 2 voted for 0 in term 2. Restart it from its store and ask for another vote.
    let store = &h.stores[2];
    let mut n = Node::restart(p(2), RaftConfig::for_tests(), 9, store, Index(0)).unwrap();
    assert_eq!(n.term(), Term(2));
    n.step(
        p(1),
        Message::RequestVote(RequestVote {
            term: Term(2),
            candidate: p(1),
            log_position: Cursor(Term(9), Index(9)),
            transfer: false,
        }),
        store,
    )
    .unwrap();
    let mut rd = n.ready(store).unwrap();
    let out = rd.take_after_sync();
    assert!(matches!(
        &out[..],
        [(
            _,
            Message::RequestVoteResponse(RequestVoteResponse {
                vote: Vote::Denied,
                ..
            })
        )]
    ));
}

#[test]
fn follower_acknowledges_only_durable_entries() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    let store = &h.stores[1];
    let mut n = Node::restart(p(1), RaftConfig::for_tests(), 3, store, Index(0)).unwrap();
    let last = n.last();
    let ae = AppendEntries {
        term: Term(2),
        leader: p(0),
        prev_log_position: last,
        entries: vec![Entry {
            term: Term(2),
            index: last.index().next(),
            payload: Payload::Command(vec![7]),
        }],
        leader_commit: Index(1),
        seq: 0,
        catch_up: false,
    };
    n.step(p(0), Message::AppendEntries(ae), store).unwrap();
    let mut store = InMemoryLogStore::default();
    std::mem::swap(&mut store, &mut h.stores[1]);
    let mut rd = n.ready(&store).unwrap();
    rd.stage(&mut store).unwrap();
    let acks = |msgs: &[(PeerId, Message)]| {
        msgs.iter()
            .filter(
                |(_, m)| matches!(m, Message::AppendEntriesResponse(r) if r.vote == Vote::Granted),
            )
            .count()
    };
    assert_eq!(acks(&rd.take_messages()) + acks(&rd.take_after_sync()), 0);
    let report = store.sync().unwrap();
    n.on_persisted(&report, &store).unwrap();
    let mut rd = n.ready(&store).unwrap();
    let msgs = rd.take_messages();
    assert_eq!(acks(&msgs), 1);
    assert!(
        matches!(&msgs[0].1, Message::AppendEntriesResponse(r) if r.last_log_index == last.index().next())
    );
}

#[test]
fn commit_waits_for_a_current_term_entry() {
    // §5.4.2 / Figure 8: a leader never commits an entry of an earlier term by counting.
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    // Node 0 (term 2) appends index 3 while everyone is isolated: only it holds it.
    h.cut.extend([0, 1, 2]);
    h.nodes[0]
        .propose(ProposalId(1), vec![1], &h.stores[0])
        .unwrap();
    h.drive(0);
    h.stabilize();
    // Without a no-op (knob) the next leader's term has no entry of its own at first.
    h.nodes[0].config.knobs.skip_noop = true;
    h.tick_all(30);
    assert!(
        !h.nodes[0].is_leader(),
        "check-quorum deposed the isolated leader"
    );
    h.cut.clear();
    h.cut.insert(2);
    h.queue.clear();
    h.elect(0);
    assert!(h.nodes[0].is_leader(), "node 0 wins with node 1's vote");
    assert_eq!(
        h.nodes[0].term(),
        Term(3),
        "pre-vote kept the terms from inflating"
    );
    h.tick_all(2);
    assert_eq!(h.nodes[0].progress_of(&p(1)).map(|x| x.0), Some(Index(3)));
    assert_eq!(
        h.nodes[0].commit_index(),
        Index(2),
        "index 3 (term 2) is on a majority but not of the current term"
    );
    // An entry of the current term commits it and everything before.
    h.nodes[0]
        .propose(ProposalId(2), vec![2], &h.stores[0])
        .unwrap();
    h.drive(0);
    h.stabilize();
    assert_eq!(h.nodes[0].commit_index(), Index(4));
}

#[test]
fn pre_vote_keeps_an_isolated_node_from_raising_its_term() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.cut.insert(2);
    for _ in 0..200 {
        h.tick(2);
        h.queue.clear();
    }
    assert_eq!(
        h.nodes[2].term(),
        Term(2),
        "pre-votes never reached a majority"
    );
    assert_eq!(h.nodes[2].role(), Role::PreCandidate);
    h.cut.clear();
    h.tick_all(3);
    assert_eq!(h.leader(), Some(0), "rejoining does not depose the leader");
    assert_eq!(h.nodes[0].term(), Term(2));
}

#[test]
fn pre_vote_is_denied_while_a_leader_is_heard() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    h.nodes[1]
        .step(
            p(2),
            Message::PreVote(RequestVote {
                term: Term(3),
                candidate: p(2),
                log_position: Cursor(Term(9), Index(99)),
                transfer: false,
            }),
            &h.stores[1],
        )
        .unwrap();
    let mut rd = h.nodes[1].ready(&h.stores[1]).unwrap();
    let msgs = rd.take_messages();
    assert!(matches!(
        &msgs[..],
        [(
            _,
            Message::PreVoteResponse(RequestVoteResponse {
                vote: Vote::Denied,
                ..
            })
        )]
    ));
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.cut.insert(0);
    for _ in 0..25 {
        h.tick(0);
        h.queue.clear();
    }
    assert!(!h.nodes[0].is_leader());
}

#[test]
fn a_diverging_follower_is_truncated_and_matched() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    // Node 0 appends three entries nobody gets.
    h.cut.insert(1);
    h.cut.insert(2);
    for k in 0..3 {
        h.nodes[0]
            .propose(ProposalId(k), vec![k as u8], &h.stores[0])
            .unwrap();
    }
    h.drive(0);
    h.queue.clear();
    h.cut.clear();
    h.cut.insert(0);
    h.tick_all(30);
    let l = h.leader().expect("a new leader among 1 and 2");
    assert_ne!(l, 0);
    h.nodes[l]
        .propose(ProposalId(10), vec![10], &h.stores[l])
        .unwrap();
    h.nodes[l]
        .propose(ProposalId(11), vec![11], &h.stores[l])
        .unwrap();
    h.drive(l);
    h.stabilize();
    h.cut.clear();
    h.tick_all(40);
    let l = h.leader().unwrap();
    let last = h.nodes[l].last();
    assert_eq!(
        h.nodes[0].last(),
        last,
        "node 0's divergent tail was replaced"
    );
    assert_eq!(h.nodes[0].commit_index(), last.index());
    for k in 0..3 {
        assert!(
            h.outcomes[0].iter().any(|o| o.id == ProposalId(k)
                && matches!(o.result, Err(ClientError::Overwritten { .. }))),
            "proposal {k} reports it was overwritten"
        );
    }
}

#[test]
fn forwarded_command_resolves_with_its_index_and_term() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    h.nodes[2]
        .propose(ProposalId(42), b"x".to_vec(), &h.stores[2])
        .unwrap();
    h.drive(2);
    h.stabilize();
    h.tick_all(2);
    let ok: Vec<_> = h.outcomes[2]
        .iter()
        .filter(|o| o.id == ProposalId(42))
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].result, Ok(Cursor(Term(2), Index(3))));
}

#[test]
fn forward_without_a_leader_times_out() {
    let mut h = Harness::new(3, 0);
    h.nodes[1]
        .propose(ProposalId(5), b"y".to_vec(), &h.stores[1])
        .unwrap();
    for _ in 0..35 {
        h.tick(1);
        h.queue.clear();
    }
    assert!(matches!(
        h.outcomes[1]
            .iter()
            .find(|o| o.id == ProposalId(5))
            .map(|o| &o.result),
        Some(Err(ClientError::ForwardTimeout { .. }))
    ));
}

#[test]
fn read_index_waits_for_majority_confirmation() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    h.nodes[0].read_index(77, &h.stores[0]).unwrap();
    h.drive(0);
    assert!(h.reads[0].is_empty(), "not confirmed before any answer");
    h.stabilize();
    assert_eq!(
        h.reads[0],
        vec![ReadOutcome {
            ctx: 77,
            result: Ok(Index(2))
        }]
    );
    // A follower's read goes through the leader.
    h.nodes[1].read_index(78, &h.stores[1]).unwrap();
    h.drive(1);
    h.stabilize();
    assert_eq!(h.reads[1][0].result, Ok(Index(2)));
}

#[test]
fn an_isolated_leader_cannot_confirm_a_read() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    h.cut.insert(0);
    h.nodes[0].read_index(1, &h.stores[0]).unwrap();
    for _ in 0..60 {
        h.tick(0);
        h.stabilize();
    }
    // It steps down, keeps the read for a next leader, and none comes within the query
    // timeout.
    assert!(!h.nodes[0].is_leader());
    assert_eq!(h.reads[0].len(), 1);
    assert!(matches!(
        h.reads[0][0].result,
        Err(ClientError::ReadTimeout { .. })
    ));
}

#[test]
fn restart_keeps_durable_state_and_loses_the_rest() {
    let mut h = Harness::new(1, 0);
    h.elect(0);
    h.sync = false;
    h.nodes[0]
        .propose(ProposalId(1), vec![1], &h.stores[0])
        .unwrap();
    h.drive(0);
    assert_eq!(Storage::last(&h.stores[0]).index(), Index(3));
    h.stores[0].crash();
    let n = Node::restart(p(0), RaftConfig::for_tests(), 5, &h.stores[0], Index(0)).unwrap();
    assert_eq!(n.last().index(), Index(2), "the unsynced entry is gone");
    assert_eq!(n.term(), Term(2));
    assert_eq!(n.membership().voters().len(), 1);
}

#[test]
fn malformed_appends_are_dropped() {
    let mut h = Harness::new(3, 0);
    let bad = AppendEntries {
        term: Term(5),
        leader: p(0),
        prev_log_position: Cursor(Term(1), Index(1)),
        entries: vec![Entry {
            term: Term(5),
            index: Index(9),
            payload: Payload::Noop,
        }],
        leader_commit: Index(0),
        seq: 0,
        catch_up: false,
    };
    h.nodes[1]
        .step(p(0), Message::AppendEntries(bad), &h.stores[1])
        .unwrap();
    assert_eq!(h.nodes[1].last(), Cursor(Term(1), Index(1)));
    // A forged leader field is dropped too.
    let forged = AppendEntries {
        term: Term(5),
        leader: p(2),
        prev_log_position: Cursor(Term(1), Index(1)),
        entries: vec![],
        leader_commit: Index(0),
        seq: 0,
        catch_up: false,
    };
    h.nodes[1]
        .step(p(0), Message::AppendEntries(forged), &h.stores[1])
        .unwrap();
    assert_eq!(h.nodes[1].leader(), None);
}

#[test]
fn a_gap_asks_for_a_state_sync_and_an_install_fast_forwards() {
    let mut h = Harness::new(3, 0);
    let ae = AppendEntries {
        term: Term(4),
        leader: p(0),
        prev_log_position: Cursor(Term(4), Index(100)),
        entries: vec![Entry {
            term: Term(4),
            index: Index(101),
            payload: Payload::Noop,
        }],
        leader_commit: Index(101),
        seq: 0,
        catch_up: true,
    };
    h.nodes[1]
        .step(p(0), Message::AppendEntries(ae), &h.stores[1])
        .unwrap();
    let mut rd = h.nodes[1].ready(&h.stores[1]).unwrap();
    let cu = rd.take_catch_up().expect("a catch-up request");
    assert_eq!(cu.position, Cursor(Term(4), Index(100)));
    assert_eq!(cu.leader, p(0));
    rd.persist(&mut h.stores[1]).unwrap();
    // The session installed state up to 100.
    h.nodes[1]
        .on_state_synced(Cursor(Term(4), Index(100)), None)
        .unwrap();
    let mut rd = h.nodes[1].ready(&h.stores[1]).unwrap();
    assert_eq!(rd.reset_to(), Some(Cursor(Term(4), Index(100))));
    let report = rd.persist(&mut h.stores[1]).unwrap().unwrap();
    assert_eq!(report.last, Cursor(Term(4), Index(100)));
    h.nodes[1].on_persisted(&report, &h.stores[1]).unwrap();
    assert_eq!(h.nodes[1].commit_index(), Index(100));
    assert_eq!(h.nodes[1].applied_index(), Index(100));
    // The leader's next append now follows.
    let ae = AppendEntries {
        term: Term(4),
        leader: p(0),
        prev_log_position: Cursor(Term(4), Index(100)),
        entries: vec![Entry {
            term: Term(4),
            index: Index(101),
            payload: Payload::Noop,
        }],
        leader_commit: Index(101),
        seq: 0,
        catch_up: false,
    };
    h.nodes[1]
        .step(p(0), Message::AppendEntries(ae), &h.stores[1])
        .unwrap();
    let mut rd = h.nodes[1].ready(&h.stores[1]).unwrap();
    assert_eq!(rd.take_committed().len(), 1);
}

#[test]
fn reluctant_nodes_wait_longer_and_observers_never_campaign() {
    use crate::CampaignPolicy;
    for (preference, min_ticks) in [
        (CampaignPolicy::Normal, 10u32),
        (CampaignPolicy::Reluctant, 30),
        (CampaignPolicy::Never, u32::MAX),
    ] {
        let store = InMemoryLogStore::default();
        let mut config = RaftConfig::for_tests();
        config.campaign = preference;
        let mut n = Node::restart(p(0), config, 1, &store, Index(0)).unwrap();
        n.bootstrap([p(0), p(1), p(2)].into(), ClusterId(1), &store)
            .unwrap();
        let mut first = None;
        for t in 1..=200u32 {
            n.tick(&store).unwrap();
            if n.role() != Role::Follower {
                first = Some(t);
                break;
            }
        }
        match first {
            Some(t) => assert!(
                t >= min_ticks && min_ticks != u32::MAX,
                "{preference:?} campaigned at {t}"
            ),
            None => assert_eq!(min_ticks, u32::MAX, "{preference:?} never campaigned"),
        }
    }
}

#[test]
fn stale_leader_learns_the_new_term_from_a_rejection() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(1);
    h.cut.insert(0);
    h.tick_all(30);
    let l = h.leader().unwrap();
    assert_ne!(l, 0);
    // Node 0 still believes it leads (check-quorum has not fired yet if we stop here):
    // whatever it believes, an append of its old term is refused with the new term.
    let old = AppendEntries {
        term: Term(2),
        leader: p(0),
        prev_log_position: Cursor(Term(1), Index(1)),
        entries: vec![],
        leader_commit: Index(1),
        seq: 0,
        catch_up: false,
    };
    let j = (l + 1) % 3;
    let j = if j == 0 { (j + 1) % 3 } else { j };
    h.nodes[j]
        .step(p(0), Message::AppendEntries(old), &h.stores[j])
        .unwrap();
    let mut rd = h.nodes[j].ready(&h.stores[j]).unwrap();
    let out = rd.take_messages();
    assert!(matches!(
        &out[..],
        [(_, Message::AppendEntriesResponse(r))] if r.term > Term(2) && r.vote == Vote::Denied
    ));
}

/// What lets a driver encode a batch once for every follower (`AppendIdentity`): followers
/// in step get the same append, one after the other in the leader's output.
#[test]
fn followers_in_step_get_one_and_the_same_append() {
    let mut h = Harness::new(3, 0);
    h.elect(0);
    h.tick_all(2);
    for id in 1..=3 {
        h.nodes[0]
            .propose(ProposalId(id), vec![id as u8; 64], &h.stores[0])
            .unwrap();
    }
    h.drive(0);
    let appends: Vec<(PeerId, crate::AppendEntries)> = h
        .queue
        .iter()
        .filter_map(|(from, to, m)| match m {
            Message::AppendEntries(a) if *from == 0 && !a.entries.is_empty() => {
                Some((*to, a.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(appends.len(), 2, "one append per follower: {appends:?}");
    assert_ne!(appends[0].0, appends[1].0);
    assert_eq!(
        appends[0].1.entries.len(),
        3,
        "the whole batch in one append"
    );
    assert_eq!(appends[0].1, appends[1].1);
    assert_eq!(appends[0].1.identity(), appends[1].1.identity());
    h.stabilize();
}
