//! The simulated world: nodes with their stores and drivers, a faulty network, a fault
//! schedule, clients, and the checkers.

mod damage;
mod effects;
mod quiet;
mod replay;
mod scenario;
mod transfer;

pub use scenario::{Scenario, Stats};

use super::checks::Checks;
use crate::{
    CampaignPolicy, ClusterId, Entry, InMemoryLogStore, Index, MembershipChange, Message, Node,
    Payload, PeerId, ProposalId, RaftConfig, ReadyDriver, Storage,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

/// Sub-tick time units per tick.
const TICK: u64 = 10;

/// More events than this within one tick is a message storm: reported, not run forever.
const MAX_EVENTS_PER_TICK: u64 = 200_000;

enum EventKind {
    Deliver {
        from: usize,
        to: usize,
        msg: Message,
    },
    SyncDone {
        node: usize,
        epoch: u64,
    },
    Restart {
        node: usize,
    },
    /// The driver's moment after a commit: the leader tells followers that no append told
    /// yet (`Node::send_commit_notices`).
    CommitNotices {
        node: usize,
        epoch: u64,
    },
    /// A replay session asks a peer for committed entries from `from` on.
    ReplayRequest {
        session: u64,
        follower: usize,
        provider: usize,
        from: u64,
        max: u64,
    },
    /// The peer's answer.
    ReplayResponse {
        session: u64,
        follower: usize,
        from: u64,
        entries: Vec<Entry>,
        committed: u64,
    },
}

struct Event {
    at: u64,
    key: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.key) == (other.at, other.key)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.key).cmp(&(other.at, other.key))
    }
}

struct SimNode {
    id: PeerId,
    node: Option<Node>,
    store: InMemoryLogStore,
    config: RaftConfig,
    /// Last index applied to the test state machine.
    applied: u64,
    /// Bumped at each crash; stale sync completions are ignored.
    epoch: u64,
    /// The one Ready driver (its messages waiting for a sync die with a crash).
    driver: ReadyDriver,
    /// Max sync delay in sub-ticks (0: the disk syncs at once).
    slow_disk: u64,
    /// proposal id -> command id.
    proposals: HashMap<u64, u64>,
    /// Reads with a read index, waiting to be applied: (ctx, read index).
    reads_waiting: Vec<(u64, u64)>,
    down: bool,
    restarts: u64,
    /// The commit index this node had after its last `Ready`.
    last_commit: u64,
    /// The open log-replay catch-up session.
    session: Option<replay::Session>,
    /// A `CommitNotices` event is scheduled.
    notices_due: bool,
}

/// The simulated cluster.
pub struct World {
    seed: u64,
    sc: Scenario,
    rng: SmallRng,
    now: u64,
    tick: u64,
    nodes: Vec<SimNode>,
    events: BinaryHeap<Reverse<Event>>,
    blocked: HashSet<(usize, usize)>,
    loss: f64,
    dup: f64,
    max_delay: u64,
    faults_on: bool,
    checks: Checks,
    next_command: u64,
    next_proposal: u64,
    next_ctx: u64,
    max_commit_known: u64,
    markers: HashSet<u64>,
    marker_ok: bool,
    trace: VecDeque<String>,
    stats: Stats,
    /// Nodes to crash once their current step is done.
    pending_crash: Vec<usize>,
    next_session: u64,
    /// (term, target) of every transfer that ended with its leader stepping down.
    transfer_ends: Vec<(u64, usize)>,
    /// Every node's `quiesce_after_ticks` (0: this seed does not quiesce).
    quiesce_after: u32,
}

fn peer(i: usize) -> PeerId {
    PeerId([i as u8 + 1; 32])
}

fn index_of(p: &PeerId) -> usize {
    p.0[0] as usize - 1
}

fn digest(p: &Payload) -> u64 {
    let mut h = DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

impl World {
    pub fn new(seed: u64, sc: Scenario) -> Self {
        World {
            seed,
            rng: SmallRng::seed_from_u64(seed),
            quiesce_after: quiet::quiesce_after(seed, &sc),
            sc,
            now: 0,
            tick: 0,
            nodes: Vec::new(),
            events: BinaryHeap::new(),
            blocked: HashSet::new(),
            loss: 0.0,
            dup: 0.0,
            max_delay: 1,
            faults_on: true,
            checks: Checks::default(),
            next_command: 1,
            next_proposal: 1,
            next_ctx: 1,
            max_commit_known: 0,
            markers: HashSet::new(),
            marker_ok: false,
            trace: VecDeque::new(),
            stats: Stats::default(),
            pending_crash: Vec::new(),
            next_session: 1,
            transfer_ends: Vec::new(),
        }
    }

    fn note(&mut self, text: String) {
        let line = format!("[t{} {}] {}", self.tick, self.now, text);
        if self.sc.trace {
            println!("{line}");
        }
        self.trace.push_back(line);
        if self.trace.len() > 60 {
            self.trace.pop_front();
        }
    }

    fn fail(&self, what: String) -> String {
        let trace: Vec<&str> = self.trace.iter().map(String::as_str).collect();
        format!(
            "seed {} ({}): {what}\nlast events:\n  {}\nreplay: {}",
            self.seed,
            self.sc.name,
            trace.join("\n  "),
            super::replay_command(self.seed, &self.sc)
        )
    }

    fn schedule(&mut self, at: u64, kind: EventKind) {
        let key = self.rng.random();
        self.events.push(Reverse(Event { at, key, kind }));
    }

    fn sim_config(&mut self, voter: bool) -> RaftConfig {
        let mut c = RaftConfig::for_tests();
        c.heartbeat_ticks = 2;
        c.election_ticks = 12;
        c.election_jitter_ticks = 12;
        c.forward_timeout_ticks = 40;
        c.query_timeout_ticks = 40;
        c.knobs = self.sc.knobs;
        c.quiesce_after_ticks = self.quiesce_after;
        c.campaign = if voter {
            if self.rng.random_bool(0.15) {
                CampaignPolicy::Reluctant
            } else {
                CampaignPolicy::Normal
            }
        } else if self.rng.random_bool(0.25) {
            CampaignPolicy::Never
        } else {
            CampaignPolicy::Normal
        };
        c
    }

    fn setup(&mut self) -> Result<(), String> {
        let n = self.rng.random_range(3..=self.sc.max_nodes.max(3));
        let voters = if self.sc.membership {
            self.rng.random_range(3..=n.min(5))
        } else {
            n
        };
        self.stats.nodes = n;
        // Log replay: off, or past a few entries behind (often), or the default.
        let replay_threshold = [0, 2, 4, 8, 16, 64][self.rng.random_range(0..6)];
        self.loss = self.rng.random_range(0.0..0.15);
        self.dup = self.rng.random_range(0.0..0.05);
        self.max_delay = self.rng.random_range(1..=3 * TICK);
        let voter_set: BTreeSet<PeerId> = (0..voters).map(peer).collect();
        for i in 0..n {
            let mut config = self.sim_config(i < voters);
            config.replay_threshold = replay_threshold;
            let store = InMemoryLogStore::default();
            let node_seed = self.seed.wrapping_mul(31).wrapping_add(i as u64);
            let mut node = Node::restart(peer(i), config.clone(), node_seed, &store, Index(0))
                .map_err(|e| self.fail(format!("start node {i}: {e}")))?;
            if i < voters {
                node.bootstrap(voter_set.clone(), ClusterId(1), &store)
                    .map_err(|e| self.fail(format!("bootstrap node {i}: {e}")))?;
            }
            self.nodes.push(SimNode {
                id: peer(i),
                node: Some(node),
                store,
                config,
                applied: 0,
                epoch: 0,
                driver: ReadyDriver::new(),
                slow_disk: 0,
                proposals: HashMap::new(),
                reads_waiting: Vec::new(),
                down: false,
                restarts: 0,
                last_commit: 0,
                session: None,
                notices_due: false,
            });
        }
        self.note(format!(
            "{n} nodes, {voters} voters, loss {:.2}, dup {:.2}, delay <= {}, replay past {replay_threshold}",
            self.loss, self.dup, self.max_delay
        ));
        for i in 0..n {
            self.drive(i)?;
        }
        Ok(())
    }

    /// Runs the whole scenario.
    pub fn run(&mut self) -> Result<Stats, String> {
        self.setup()?;
        let total = self.sc.fault_ticks + self.sc.liveness_ticks;
        let mut healed_at = None;
        while self.tick < total {
            if self.tick == self.sc.fault_ticks {
                self.heal()?;
                healed_at = Some(self.tick);
            }
            self.reachability()?;
            // Tick every live node, then deliver what is due within this tick.
            for i in 0..self.nodes.len() {
                let sn = &mut self.nodes[i];
                if let Some(node) = sn.node.as_mut() {
                    node.tick(&sn.store)
                        .map_err(|e| format!("node {i} tick: {e}"))
                        .map_err(|e| self.fail(e))?;
                    self.drive(i)?;
                }
            }
            self.tick_sessions()?;
            self.count_quiesced();
            let end = self.now + TICK;
            let mut handled = 0u64;
            while let Some(Reverse(ev)) = self.events.peek() {
                if ev.at >= end {
                    break;
                }
                let Some(Reverse(ev)) = self.events.pop() else {
                    break;
                };
                handled += 1;
                if handled > MAX_EVENTS_PER_TICK {
                    let kinds = self.storm_kinds();
                    return Err(self.fail(format!(
                        "liveness: message storm: more than {MAX_EVENTS_PER_TICK} events in tick {}; pending: {kinds}\n{}",
                        self.tick,
                        self.dump()
                    )));
                }
                self.now = self.now.max(ev.at);
                self.handle(ev)?;
                for i in std::mem::take(&mut self.pending_crash) {
                    self.crash(i);
                    self.lost_contact(&self.peers_of(i))?;
                    let (lo, hi) = self.sc.restart_ticks;
                    let at = self.now + self.rng.random_range(lo..=hi) * TICK + 1;
                    self.schedule(at, EventKind::Restart { node: i });
                }
            }
            self.now = end;
            if self.faults_on {
                self.faults()?;
                if !self.quiet_window() {
                    self.clients()?;
                    if self.sc.membership {
                        self.membership()?;
                    }
                    self.transfer()?;
                }
            } else if let Some(h) = healed_at {
                if self.live()? {
                    self.stats.liveness_ticks = self.tick - h;
                    break;
                }
            }
            self.tick += 1;
        }
        if self.tick >= total {
            return Err(self.fail(format!(
                "liveness: no leader with every pending command committed within {} ticks after faults stopped\n{}",
                self.sc.liveness_ticks,
                self.dump()
            )));
        }
        // Durability: the final leader's log holds every acknowledged command.
        let l = self
            .leader()
            .ok_or_else(|| self.fail("no final leader".into()))?;
        let store = &self.nodes[l].store;
        self.checks
            .durability
            .all_present(|i| store.term_at(Index(i)).ok().flatten().map(|t| t.0))
            .map_err(|e| self.fail(e))?;
        self.stats.elections = self.checks.election.elections();
        self.stats.committed = self.checks.machine.max_committed();
        self.stats.acked = self.checks.durability.acked.len();
        self.stats.reads_served = self.checks.reads.served;
        self.stats.transfers_completed = self.completed_transfers();
        Ok(self.stats.clone())
    }

    /// What the pending events are, by kind and link, with a few samples (a storm report).
    fn storm_kinds(&self) -> String {
        let mut count: std::collections::BTreeMap<String, usize> = Default::default();
        for Reverse(ev) in self.events.iter() {
            let k = match &ev.kind {
                EventKind::Deliver { from, to, msg } => format!("{} {from}->{to}", msg.kind()),
                EventKind::SyncDone { node, .. } => format!("sync {node}"),
                EventKind::Restart { node } => format!("restart {node}"),
                EventKind::CommitNotices { node, .. } => format!("commit notices {node}"),
                EventKind::ReplayRequest { follower, .. } => format!("replay request {follower}"),
                EventKind::ReplayResponse { follower, .. } => format!("replay answer {follower}"),
            };
            *count.entry(k).or_default() += 1;
        }
        let mut samples = Vec::new();
        for Reverse(ev) in self.events.iter().take(6) {
            if let EventKind::Deliver { msg, .. } = &ev.kind {
                samples.push(match msg {
                    Message::AppendEntries(a) => format!(
                        "AE prev {} n {} commit {} seq {} cu {}",
                        a.prev_log_position,
                        a.entries.len(),
                        a.leader_commit,
                        a.seq,
                        a.catch_up
                    ),
                    m => format!("{m:?}"),
                });
            }
        }
        let mut v: Vec<(String, usize)> = count.into_iter().collect();
        v.sort_by_key(|x| Reverse(x.1));
        v.truncate(8);
        format!("{v:?}; e.g. {samples:?}")
    }

    /// One line per node: role, term, log, commit, applied, configuration.
    fn dump(&self) -> String {
        let mut out = String::new();
        for (i, sn) in self.nodes.iter().enumerate() {
            match sn.node.as_ref() {
                None => out.push_str(&format!("  node {i}: down\n")),
                Some(n) => {
                    let voters: Vec<usize> = n.membership().voters().iter().map(index_of).collect();
                    let learners: Vec<usize> =
                        n.membership().learners().keys().map(index_of).collect();
                    out.push_str(&format!(
                        "  node {i}: {:?} term {} leader {:?} last {} commit {} applied {} voters {voters:?} learners {learners:?} {:?}{}\n",
                        n.role(),
                        n.term(),
                        n.leader().map(|l| index_of(&l)),
                        n.last(),
                        n.commit_index(),
                        sn.applied,
                        sn.config.campaign,
                        if n.is_catching_up() { " catching up" } else { "" },
                    ));
                }
            }
        }
        out
    }

    fn handle(&mut self, ev: Event) -> Result<(), String> {
        match ev.kind {
            EventKind::Deliver { from, to, msg } => {
                let sn = &mut self.nodes[to];
                let Some(node) = sn.node.as_mut() else {
                    return Ok(());
                };
                node.step(peer(from), msg, &sn.store)
                    .map_err(|e| format!("node {to} step: {e}"))
                    .map_err(|e| self.fail(e))?;
                self.drive(to)
            }
            EventKind::SyncDone { node, epoch } => {
                if self.nodes[node].epoch == epoch && self.nodes[node].node.is_some() {
                    self.sync_done(node)?;
                }
                Ok(())
            }
            EventKind::Restart { node } => self.restart(node),
            EventKind::CommitNotices { node, epoch } => {
                let sn = &mut self.nodes[node];
                sn.notices_due = false;
                if sn.epoch != epoch {
                    return Ok(());
                }
                let Some(n) = sn.node.as_mut() else {
                    return Ok(());
                };
                n.send_commit_notices(&sn.store)
                    .map_err(|e| format!("node {node} commit notices: {e}"))
                    .map_err(|e| self.fail(e))?;
                self.drive(node)
            }
            EventKind::ReplayRequest {
                session,
                follower,
                provider,
                from,
                max,
            } => self.serve_replay(session, follower, provider, from, max),
            EventKind::ReplayResponse {
                session,
                follower,
                from,
                entries,
                committed,
            } => self.on_replay_response(follower, session, from, entries, committed),
        }
    }

    fn send(&mut self, from: usize, to: PeerId, msg: Message) {
        let to = index_of(&to);
        if to >= self.nodes.len() || self.blocked.contains(&(from, to)) {
            return;
        }
        if self.rng.random_bool(self.loss) {
            return;
        }
        self.stats.messages += 1;
        if self.rng.random_bool(self.dup) {
            let at = self.now + self.rng.random_range(0..=self.max_delay * 2);
            self.schedule(
                at,
                EventKind::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
        let at = self.now + self.rng.random_range(0..=self.max_delay);
        self.schedule(at, EventKind::Deliver { from, to, msg });
    }

    fn crash(&mut self, i: usize) {
        let sn = &mut self.nodes[i];
        if sn.down {
            return;
        }
        sn.store.crash();
        self.maybe_damage(i);
        let sn = &mut self.nodes[i];
        sn.node = None;
        sn.down = true;
        sn.epoch += 1;
        sn.driver = ReadyDriver::new();
        sn.applied = 0;
        sn.last_commit = 0;
        sn.session = None;
        sn.proposals.clear();
        let reads: Vec<u64> = sn.reads_waiting.drain(..).map(|(c, _)| c).collect();
        for ctx in reads {
            self.checks.reads.abandoned(i, ctx);
        }
        self.stats.crashes += 1;
        self.note(format!("crash node {i}"));
    }

    fn restart(&mut self, i: usize) -> Result<(), String> {
        let sn = &mut self.nodes[i];
        if !sn.down {
            return Ok(());
        }
        sn.restarts += 1;
        let seed = self.seed ^ (sn.restarts << 32) ^ i as u64;
        let node = Node::restart(sn.id, sn.config.clone(), seed, &sn.store, Index(0))
            .map_err(|e| format!("restart node {i}: {e}"));
        match node {
            Ok(node) => {
                sn.node = Some(node);
                sn.down = false;
                sn.applied = 0;
            }
            Err(e) => return Err(self.fail(e)),
        }
        self.note(format!("restart node {i}"));
        self.drive(i)?;
        // A repaired node's hello tells leaders it restarted with less than they knew (the
        // worker passes the peer's new state incarnation on; `Node::on_peer_restarted`),
        // so they probe it from what it holds now.
        if Storage::vote_withheld(&self.nodes[i].store).is_some() {
            let (id, durable) = (self.nodes[i].id, Storage::durable(&self.nodes[i].store));
            for j in 0..self.nodes.len() {
                let sn = &mut self.nodes[j];
                let Some(node) = sn.node.as_mut().filter(|n| j != i && n.is_leader()) else {
                    continue;
                };
                node.on_peer_restarted(id, durable.index(), &sn.store)
                    .map_err(|e| format!("node {j} on_peer_restarted: {e}"))
                    .map_err(|e| self.fail(e))?;
                self.drive(j)?;
            }
        }
        Ok(())
    }

    fn faults(&mut self) -> Result<(), String> {
        let n = self.nodes.len();
        if self.rng.random_bool(self.sc.crash_rate) {
            let i = self.rng.random_range(0..n);
            if !self.nodes[i].down {
                self.crash(i);
                self.lost_contact(&self.peers_of(i))?;
                let (lo, hi) = self.sc.restart_ticks;
                let at = self.now + self.rng.random_range(lo..=hi) * TICK + 1;
                self.schedule(at, EventKind::Restart { node: i });
            }
        }
        let blocked_before = self.blocked.clone();
        if self.rng.random_bool(self.sc.partition_rate) {
            self.stats.partitions += 1;
            match self.rng.random_range(0..3) {
                0 => {
                    // Symmetric split.
                    let side: Vec<bool> = (0..n).map(|_| self.rng.random_bool(0.5)).collect();
                    for a in 0..n {
                        for b in 0..n {
                            if side[a] != side[b] {
                                self.blocked.insert((a, b));
                            }
                        }
                    }
                    self.note(format!("partition {side:?}"));
                }
                1 => {
                    let a = self.rng.random_range(0..n);
                    for b in 0..n {
                        if a != b {
                            self.blocked.insert((a, b));
                            self.blocked.insert((b, a));
                        }
                    }
                    self.note(format!("isolate node {a}"));
                }
                _ => {
                    let a = self.rng.random_range(0..n);
                    let b = self.rng.random_range(0..n);
                    if a != b {
                        self.blocked.insert((a, b));
                        self.note(format!("one-way block {a} -> {b}"));
                    }
                }
            }
        }
        let mut cut: Vec<usize> = self
            .blocked
            .difference(&blocked_before)
            .flat_map(|&(a, b)| [a, b])
            .collect();
        cut.sort_unstable();
        cut.dedup();
        self.lost_contact(&cut)?;
        if !self.blocked.is_empty() && self.rng.random_bool(0.03) {
            self.blocked.clear();
            self.note("partitions healed".into());
        }
        if self.sc.slow_disks && self.rng.random_bool(0.02) {
            let i = self.rng.random_range(0..n);
            self.nodes[i].slow_disk = if self.rng.random_bool(0.5) {
                0
            } else {
                self.rng.random_range(1..=20) * TICK
            };
        }
        Ok(())
    }

    fn clients(&mut self) -> Result<(), String> {
        let n = self.nodes.len();
        if self.rng.random_bool(self.sc.propose_rate) {
            let i = self.rng.random_range(0..n);
            self.propose(i, false)?;
        }
        if self.rng.random_bool(self.sc.read_rate) {
            let i = self.rng.random_range(0..n);
            let ctx = self.next_ctx;
            self.next_ctx += 1;
            let sn = &mut self.nodes[i];
            if let Some(node) = sn.node.as_mut() {
                let known = self.max_commit_known;
                self.checks.reads.invoked(i, ctx, known);
                node.read_index(ctx, &sn.store)
                    .map_err(|e| format!("node {i} read_index: {e}"))
                    .map_err(|e| self.fail(e))?;
                self.drive(i)?;
            }
        }
        Ok(())
    }

    fn propose(&mut self, i: usize, marker: bool) -> Result<(), String> {
        let sn = &mut self.nodes[i];
        let Some(node) = sn.node.as_mut() else {
            return Ok(());
        };
        let id = self.next_proposal;
        self.next_proposal += 1;
        let command = self.next_command;
        self.next_command += 1;
        node.propose(ProposalId(id), command.to_le_bytes().to_vec(), &sn.store)
            .map_err(|e| format!("node {i} propose: {e}"))
            .map_err(|e| self.fail(e))?;
        self.nodes[i].proposals.insert(id, command);
        if marker {
            self.markers.insert(id);
        }
        self.drive(i)
    }

    fn leader(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].node.as_ref().is_some_and(|n| n.is_leader()))
            .max_by_key(|&i| self.nodes[i].node.as_ref().map(|n| n.term()))
    }

    fn membership(&mut self) -> Result<(), String> {
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let n = self.nodes.len();
        let change = if self.rng.random_bool(0.02) {
            let members = self.nodes[l].node.as_ref().map(|x| x.membership().clone());
            let Some(members) = members else {
                return Ok(());
            };
            let outsiders: Vec<usize> = (0..n).filter(|&i| !members.contains(&peer(i))).collect();
            if outsiders.is_empty() {
                None
            } else {
                let j = outsiders[self.rng.random_range(0..outsiders.len())];
                let observer = self.nodes[j].config.campaign == CampaignPolicy::Never;
                Some(MembershipChange::AddLearner {
                    peer: peer(j),
                    observer,
                })
            }
        } else if self.rng.random_bool(0.005) {
            let members = self.nodes[l].node.as_ref().map(|x| x.membership().clone());
            let Some(members) = members else {
                return Ok(());
            };
            let voters: Vec<PeerId> = members.voters().iter().copied().collect();
            if voters.len() > 3 {
                let v = voters[self.rng.random_range(0..voters.len())];
                Some(MembershipChange::Remove(v))
            } else {
                None
            }
        } else {
            None
        };
        if let Some(change) = change {
            let sn = &mut self.nodes[l];
            if let Some(node) = sn.node.as_mut() {
                let r = node
                    .propose_membership(change, &sn.store)
                    .map_err(|e| format!("membership: {e}"))
                    .map_err(|e| self.fail(e))?;
                if r.is_ok() {
                    self.stats.membership_changes += 1;
                    self.note(format!("leader {l} proposes {change:?}"));
                }
            }
            self.drive(l)?;
        }
        Ok(())
    }

    fn heal(&mut self) -> Result<(), String> {
        self.faults_on = false;
        self.blocked.clear();
        self.loss = 0.0;
        self.dup = 0.0;
        for sn in &mut self.nodes {
            sn.slow_disk = 0;
        }
        self.note("faults stop".into());
        for i in 0..self.nodes.len() {
            if self.nodes[i].down {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    /// Liveness: a leader, a command proposed after the faults committed, everything in
    /// the leader's log committed and applied on every member.
    fn live(&mut self) -> Result<bool, String> {
        let Some(l) = self.leader() else {
            return Ok(false);
        };
        if !self.marker_ok {
            if self.tick.is_multiple_of(10) {
                self.propose(l, true)?;
            }
            return Ok(false);
        }
        let Some(leader) = self.nodes[l].node.as_ref() else {
            return Ok(false);
        };
        if leader.commit_index() != leader.last().index() {
            return Ok(false);
        }
        let commit = leader.commit_index().0;
        for m in leader.membership().members() {
            let sn = &self.nodes[index_of(m)];
            let Some(node) = sn.node.as_ref() else {
                return Ok(false);
            };
            if sn.applied < commit || node.commit_index().0 < commit {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
