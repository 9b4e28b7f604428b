//! The task that drives one group: ticks, messages, one batched storage sync per step,
//! apply, client calls, bonds, formation, state sync.
//!
//! One loop, one owner of everything (the consensus core, the log store, the state
//! machine, the sync provider and session, the links): no locks. Each turn waits for one
//! input (a tick, a frame, a request, a new link), then takes whatever else is already
//! queued (up to a bound) without waiting, then drains the core's `Ready`s in the order
//! `raft::Ready` documents: stage the log writes, send what may go before the sync,
//! **one** `sync()` for everything staged, send what had to wait for it, apply the
//! committed entries, answer clients. Inputs that arrive during a sync wait in their
//! bounded channels and are taken together next turn: that is the group commit.
//!
//! The sync is a blocking fsync on the worker's task. It is short (one RocksDB write
//! batch), and the worker cannot make progress without it anyway; other groups and the
//! network run on other runtime threads in a multi-threaded runtime.

use super::bonds::Bonds;
use super::formation::{Decision, Formation};
use super::group::{GroupError, GroupStatus, Request};
use super::machine::{
    ApplyContext, Consistency, Provider, Session, StateMachine, StateSync, StateSyncProvider,
    StateSyncSession,
};
use super::raft::{
    ClientError, ClusterId, Entry, Forward, LogReader, Membership, MembershipChange, Message, Node,
    Payload, ProposalId, RaftError,
};
use super::snapshot::SnapshotStore;
use super::sync_context::{Cx, Side, SyncOutputs};
use super::wire::{GroupFrame, Hello};
use super::{Cursor, Index, Storage, StorageError, Term};
use crate::network::{GroupLinks, Link, Network};
use crate::primitives::{codec, Short};
use crate::{GroupId, PeerId, UniqueId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Capacity of the channel carrying decoded frames from all link readers to the worker.
/// When full, readers stop reading, and QUIC flow control pushes back on the senders.
pub const INBOUND_QUEUE: usize = 4096;

/// At most this many extra inputs are taken per turn before the worker drives the core.
const DRAIN_PER_TURN: usize = 1024;

/// A fatal error: the group stops with it.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The consensus core stopped (storage failure or broken invariant).
    #[error(transparent)]
    Raft(#[from] RaftError),
    /// The log store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a link reader hands the worker.
enum Inbound {
    Frame { peer: PeerId, frame: GroupFrame },
    Closed { peer: PeerId, link_id: u64 },
}

/// An execute or execute_many waiting for its entries.
struct Batch {
    indices: Vec<Option<Index>>,
    remaining: usize,
    reply: oneshot::Sender<Result<Vec<Index>, GroupError>>,
}

type QueryReply<M> = oneshot::Sender<Result<(<M as StateMachine>::QueryResult, Index), GroupError>>;

/// A strong query waiting for its read index to be applied.
type PendingQuery<M> = (<M as StateMachine>::Query, QueryReply<M>);

/// The worker's sync objects, lent to one provider or session call.
struct SyncParts<'a, M: StateMachine> {
    sync: &'a M::StateSync,
    provider: &'a mut Provider<M::StateSync>,
    session: &'a mut Option<Session<M::StateSync>>,
}

/// Everything the worker needs, assembled by the builder.
pub(crate) struct WorkerSetup<M: StateMachine, S: Storage<Payload>> {
    pub(crate) me: PeerId,
    pub(crate) group: GroupId,
    pub(crate) network: Network,
    pub(crate) links: GroupLinks,
    pub(crate) node: Node,
    pub(crate) store: S,
    pub(crate) machine: M,
    pub(crate) tick: Duration,
    pub(crate) hello_ticks: u64,
    pub(crate) expect: usize,
    pub(crate) requests: mpsc::Receiver<Request<M>>,
    pub(crate) status: watch::Sender<GroupStatus>,
    pub(crate) snapshots: SnapshotStore,
    /// What the machine holds at start (a restored snapshot's anchor, else 0).
    pub(crate) applied: Index,
    /// The configuration at `applied`.
    pub(crate) applied_membership: Membership,
    /// The newest local snapshot is damaged: nothing is applied until a session repairs it.
    pub(crate) restoring: Option<Cursor>,
}

pub(crate) struct Worker<M: StateMachine, S: Storage<Payload>> {
    me: PeerId,
    group: GroupId,
    network_id: UniqueId,
    network: Network,
    links: GroupLinks,
    node: Node,
    store: S,
    machine: M,
    sync: M::StateSync,
    provider: Provider<M::StateSync>,
    session: Option<Session<M::StateSync>>,
    observer: bool,
    formation: Option<Formation>,
    /// This start's formation nonce (announced while fresh; see `formation.rs`).
    nonce: u64,
    /// This start's state incarnation (see `wire::Hello::state`).
    state_incarnation: u64,
    /// The state incarnation each peer announced last.
    peer_states: HashMap<PeerId, u64>,
    /// Peers of another founding of this group id, and theirs: their traffic is refused.
    conflicts: BTreeMap<PeerId, ClusterId>,
    /// The tick a wait to hear from known peers before founding was last logged.
    asked_logged: Option<u64>,
    bonds: Bonds,
    maintained: HashSet<PeerId>,
    next_link_id: u64,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound: mpsc::Receiver<Inbound>,
    requests: mpsc::Receiver<Request<M>>,
    status: watch::Sender<GroupStatus>,
    tick: Duration,
    hello_ticks: u64,
    ticks: u64,
    next_proposal: u64,
    next_batch: u64,
    proposals: HashMap<ProposalId, (u64, usize)>,
    batches: HashMap<u64, Batch>,
    fed: HashSet<ProposalId>,
    next_read: u64,
    reads: HashMap<u64, PendingQuery<M>>,
    waiting_reads: BTreeMap<Index, Vec<PendingQuery<M>>>,
    changes: Vec<(Cursor, oneshot::Sender<Result<Index, GroupError>>)>,
    applied: Index,
    applied_membership: Membership,
    applied_bytes: u64,
    snapshots: SnapshotStore,
    /// Set while a damaged local snapshot is repaired: committed entries are not applied
    /// (the machine is empty) but remembered up to `stash_to`, and applied once it is.
    restoring: Option<Cursor>,
    stash_to: Option<Index>,
    shutdown: Option<oneshot::Sender<()>>,
}

struct Apply {
    committed: Cursor,
    indices: Vec<Index>,
    term: Term,
    group: GroupId,
    network: UniqueId,
    me: PeerId,
}

impl ApplyContext for Apply {
    fn committed(&self) -> Cursor {
        self.committed
    }
    fn current_term(&self) -> Term {
        self.term
    }
    fn group_id(&self) -> GroupId {
        self.group
    }
    fn network_id(&self) -> UniqueId {
        self.network
    }
    fn local_id(&self) -> PeerId {
        self.me
    }
    fn indices(&self) -> &[Index] {
        &self.indices
    }
}

/// Proposal ids double as forward request ids, which the leader deduplicates per origin:
/// they must grow across restarts too, so they start at the wall clock in microseconds.
fn first_proposal_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
        .max(1)
}

/// A random number for nonces and incarnations; falls back to the clock (these need to
/// differ between starts, not to be secret).
fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| first_proposal_id() ^ u64::from(std::process::id()))
}

fn stopped(reason: &str) -> GroupError {
    GroupError::Stopped {
        reason: reason.to_string(),
    }
}

impl<M: StateMachine, S: Storage<Payload>> Worker<M, S> {
    pub(crate) fn new(setup: WorkerSetup<M, S>) -> Self {
        let WorkerSetup {
            me,
            group,
            network,
            links,
            node,
            store,
            mut machine,
            tick,
            hello_ticks,
            expect,
            requests,
            status,
            snapshots,
            applied,
            applied_membership,
            restoring,
        } = setup;
        let observer =
            machine.leadership_preference() == super::machine::LeadershipPreference::Observer;
        let fresh = node.term() == Term(0) && node.last() == Cursor::zero();
        let nonce = random_u64();
        let formation = fresh.then(|| Formation::new(me, expect, observer, nonce));
        let sync = machine.state_sync();
        let network_id = network.network_id().0;
        let mut bonds = Bonds::default();
        let committed = Cursor::zero();
        let mut out = SyncOutputs::default();
        let provider = {
            let cx = Cx::<M, S> {
                side: Side::Provider,
                machine: &mut machine,
                store: &store,
                bonds: &mut bonds,
                committed,
                me,
                group,
                network: network_id,
                leader: None,
                snapshots: &snapshots,
                applied_membership: &applied_membership,
                applied_bytes: 0,
                out: &mut out,
            };
            sync.create_provider(&cx)
        };
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        Worker {
            me,
            group,
            network_id,
            network,
            links,
            node,
            store,
            machine,
            sync,
            provider,
            session: None,
            observer,
            formation,
            nonce,
            state_incarnation: random_u64(),
            peer_states: HashMap::new(),
            conflicts: BTreeMap::new(),
            asked_logged: None,
            bonds,
            maintained: HashSet::new(),
            next_link_id: 1,
            inbound_tx,
            inbound,
            requests,
            status,
            tick,
            hello_ticks: hello_ticks.max(1),
            ticks: 0,
            next_proposal: first_proposal_id(),
            next_batch: 1,
            proposals: HashMap::new(),
            batches: HashMap::new(),
            fed: HashSet::new(),
            next_read: 1,
            reads: HashMap::new(),
            waiting_reads: BTreeMap::new(),
            changes: Vec::new(),
            applied,
            applied_membership,
            applied_bytes: 0,
            snapshots,
            restoring,
            stash_to: None,
            shutdown: None,
        }
    }

    /// Runs until every handle is dropped, `shutdown` is asked, the network shuts down,
    /// or a fatal error.
    pub(crate) async fn run(mut self) {
        let result = self.run_loop().await;
        let reason = match &result {
            Ok(()) => "shut down".to_string(),
            Err(err) => {
                tracing::error!(group = %Short(&self.group), %err, "group stopped");
                format!("fatal: {err}")
            }
        };
        self.fail_everything(&reason);
        let status = self.status.clone();
        let done = self.shutdown.take();
        // Everything the worker owns (store handles, sync threads) goes before `shutdown`
        // returns, so a caller may reopen the same data directory right after.
        drop(self);
        status.send_modify(|s| s.stopped = Some(reason));
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    async fn run_loop(&mut self) -> Result<(), WorkerError> {
        self.maintain_bonds();
        if let Some(anchor) = self.restoring {
            self.with_sync(Side::Session, None, |p, cx| {
                *p.session = Some(
                    p.sync
                        .create_session(cx, anchor, anchor.index(), Vec::new()),
                );
            })?;
        }
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.on_tick()?,
                request = self.requests.recv() => match request {
                    Some(request) => self.on_request(request)?,
                    None => return Ok(()),
                },
                Some(inbound) = self.inbound.recv() => self.on_inbound(inbound)?,
                link = self.links.next_link() => match link {
                    Some(link) => self.on_link(link),
                    None => return Ok(()),
                },
            }
            for _ in 0..DRAIN_PER_TURN {
                match self.inbound.try_recv() {
                    Ok(inbound) => self.on_inbound(inbound)?,
                    Err(_) => break,
                }
            }
            for _ in 0..DRAIN_PER_TURN {
                match self.requests.try_recv() {
                    Ok(request) => self.on_request(request)?,
                    Err(_) => break,
                }
            }
            self.drive()?;
            if self.shutdown.is_some() {
                return Ok(());
            }
            self.publish();
        }
    }

    // ---- inputs ----------------------------------------------------------------------

    fn on_tick(&mut self) -> Result<(), WorkerError> {
        self.ticks += 1;
        self.node.tick(&self.store)?;
        if self.ticks % self.hello_ticks == 1 || self.hello_ticks == 1 {
            self.announce();
            self.maybe_found()?;
            self.maybe_add_members()?;
            self.maintain_bonds();
            // Cheap when nothing changed (compares with what was written last).
            self.network.save_peers();
        }
        self.poll_sync()?;
        Ok(())
    }

    fn on_request(&mut self, request: Request<M>) -> Result<(), WorkerError> {
        match request {
            Request::Execute { commands, reply } => {
                let batch = self.next_batch;
                self.next_batch += 1;
                let n = commands.len();
                if n == 0 {
                    let _ = reply.send(Ok(Vec::new()));
                    return Ok(());
                }
                self.batches.insert(
                    batch,
                    Batch {
                        indices: vec![None; n],
                        remaining: n,
                        reply,
                    },
                );
                for (pos, command) in commands.into_iter().enumerate() {
                    let id = self.proposal_id();
                    self.proposals.insert(id, (batch, pos));
                    self.node.propose(id, command, &self.store)?;
                }
            }
            Request::Feed { commands } => {
                for command in commands {
                    let id = self.proposal_id();
                    self.fed.insert(id);
                    self.node.propose(id, command, &self.store)?;
                }
            }
            Request::Query {
                query,
                consistency,
                reply,
            } => match consistency {
                Consistency::Weak => {
                    let result = self.machine.query(query);
                    let _ = reply.send(Ok((result, self.applied)));
                }
                Consistency::Strong => {
                    let ctx = self.next_read;
                    self.next_read += 1;
                    self.reads.insert(ctx, (query, reply));
                    self.node.read_index(ctx, &self.store)?;
                }
            },
            Request::Change { change, reply } => self.propose_change(change, reply)?,
            Request::Shutdown { done } => self.shutdown = Some(done),
        }
        Ok(())
    }

    fn proposal_id(&mut self) -> ProposalId {
        let id = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        id
    }

    fn propose_change(
        &mut self,
        change: MembershipChange,
        reply: oneshot::Sender<Result<Index, GroupError>>,
    ) -> Result<(), WorkerError> {
        if !self.node.is_leader() {
            let _ = reply.send(Err(ClientError::NotLeader {
                leader: self.node.leader(),
            }
            .into()));
            return Ok(());
        }
        match self.node.propose_membership(change, &self.store)? {
            Ok(at) => self.changes.push((at, reply)),
            Err(err) => {
                let _ = reply.send(Err(err.into()));
            }
        }
        Ok(())
    }

    fn on_inbound(&mut self, inbound: Inbound) -> Result<(), WorkerError> {
        match inbound {
            Inbound::Closed { peer, link_id } => {
                if self.bonds.closed(&peer, link_id) {
                    if let Some(f) = &mut self.formation {
                        f.gone(&peer);
                    }
                    tracing::debug!(peer = %Short(&peer), "bond closed");
                }
            }
            Inbound::Frame {
                peer,
                frame: GroupFrame::Hello(hello),
            } => self.on_hello(peer, hello)?,
            // Everything else only from a peer that announced itself on its current link
            // (a peer's hello is the first frame of every link) and is of this founding.
            Inbound::Frame { peer, .. } if !self.admitted(&peer) => {
                tracing::trace!(peer = %Short(&peer), "frame from a peer not admitted; dropped");
            }
            Inbound::Frame { peer, frame } => match frame {
                GroupFrame::Raft(Message::Forward(Forward::Query { .. }))
                | GroupFrame::Raft(Message::Forward(Forward::QueryResponse { .. })) => {
                    // Strong queries use ReadIndex (the follower serves the query itself
                    // once the leader confirmed the index); forwarded queries are not sent
                    // by this version and are ignored.
                }
                GroupFrame::Raft(message) => self.node.step(peer, message, &self.store)?,
                GroupFrame::Hello(_) => {}
                GroupFrame::ToProvider(bytes) => self.for_provider(peer, &bytes.0)?,
                GroupFrame::ToSession(bytes) => self.for_session(peer, &bytes.0)?,
            },
        }
        Ok(())
    }

    /// Whether `peer`'s frames are taken: it announced itself on its current link and
    /// belongs to this founding.
    fn admitted(&self, peer: &PeerId) -> bool {
        !self.conflicts.contains_key(peer)
            && self
                .bonds
                .get(peer)
                .is_some_and(|bond| bond.hello.is_some())
    }

    /// A peer's announcement: refuses a peer of another founding, feeds formation, and
    /// tells the core when the peer restarted (its state incarnation changed).
    fn on_hello(&mut self, peer: PeerId, hello: Hello) -> Result<(), WorkerError> {
        let mine = self.node.membership().cluster();
        match hello.cluster {
            Some(theirs) if mine.is_known() && theirs != mine => {
                if self.conflicts.insert(peer, theirs).is_none() {
                    tracing::error!(
                        group = %Short(&self.group),
                        peer = %Short(&peer),
                        ours = %mine,
                        theirs = %theirs,
                        "peer belongs to another founding of this group (cluster {theirs}, ours \
                         {mine}): the two were founded apart and cannot merge, so its messages are \
                         refused. To move a node into this cluster, stop it, wipe its data \
                         directory and start it with --peer set to a member of this cluster"
                    );
                    self.publish();
                }
                if let Some(bond) = self.bonds.get_mut(&peer) {
                    bond.hello = Some(hello);
                }
                return Ok(());
            }
            _ => {
                if self.conflicts.remove(&peer).is_some() {
                    tracing::info!(peer = %Short(&peer), "peer of another founding now announces this one");
                }
            }
        }
        if let Some(f) = &mut self.formation {
            f.hello(peer, hello.clone());
        }
        let previous = self.peer_states.insert(peer, hello.state);
        if previous.is_some_and(|state| state != hello.state) {
            tracing::debug!(peer = %Short(&peer), durable = %hello.durable, "peer restarted");
            self.node
                .on_peer_restarted(peer, hello.durable.index(), &self.store)?;
        }
        if let Some(bond) = self.bonds.get_mut(&peer) {
            bond.hello = Some(hello);
        }
        Ok(())
    }

    fn on_link(&mut self, link: Link) {
        let peer = link.peer();
        let link_id = self.next_link_id;
        self.next_link_id += 1;
        self.bonds.insert(peer, link_id, link.sender());
        tracing::debug!(peer = %Short(&peer), group = %Short(&self.group), "bonded");
        let tx = self.inbound_tx.clone();
        tokio::spawn(read_link(link, link_id, tx));
        let hello = GroupFrame::Hello(self.hello());
        self.bonds.send(peer, &hello);
        self.network.save_peers();
    }

    // ---- membership and formation ----------------------------------------------------

    fn is_fresh(&self) -> bool {
        self.node.term() == Term(0) && self.node.last() == Cursor::zero()
    }

    fn hello(&self) -> Hello {
        let fresh = self.is_fresh();
        let cluster = self.node.membership().cluster();
        Hello {
            fresh,
            observer: self.observer,
            proposal: if fresh {
                self.formation.as_ref().and_then(|f| f.proposal())
            } else {
                None
            },
            nonce: self.nonce,
            cluster: cluster.is_known().then_some(cluster),
            state: self.state_incarnation,
            durable: self.node.durable(),
        }
    }

    fn announce(&mut self) {
        let hello = GroupFrame::Hello(self.hello());
        self.bonds.broadcast(&hello);
    }

    fn maybe_found(&mut self) -> Result<(), WorkerError> {
        if !self.is_fresh() {
            self.formation = None;
            return Ok(());
        }
        let Some(formation) = &self.formation else {
            return Ok(());
        };
        // Every peer this node knows of must have answered first: it announced itself on
        // a link of this group, or said it does not host the group.
        let absent = self.links.absent();
        let unanswered: Vec<PeerId> = self
            .network
            .known_peers()
            .into_iter()
            .map(|a| a.id)
            .filter(|p| *p != self.me && !formation.heard(p) && !absent.contains(p))
            .collect();
        match formation.decide(&unanswered) {
            Decision::Found(proposal) => {
                tracing::info!(
                    group = %Short(&self.group),
                    voters = proposal.voters.len(),
                    cluster = %proposal.cluster,
                    "founding the group"
                );
                self.node
                    .bootstrap(proposal.voters, proposal.cluster, &self.store)?;
                self.formation = None;
            }
            Decision::AskFirst(peers) => {
                // Logged when the wait starts and then every ~10 s.
                let every = (10_000 / self.tick.as_millis().max(1)) as u64;
                if self
                    .asked_logged
                    .is_none_or(|t| self.ticks.saturating_sub(t) >= every)
                {
                    self.asked_logged = Some(self.ticks);
                    let names: Vec<String> = peers.iter().map(|p| Short(p).to_string()).collect();
                    tracing::info!(
                        group = %Short(&self.group),
                        waiting_for = %names.join(", "),
                        "not founding the group yet: known peers have not answered and may hold it"
                    );
                }
            }
            Decision::JoinExisting | Decision::Wait => {}
        }
        Ok(())
    }

    /// The leader adds bonded *fresh* peers that are not members as learners (one change
    /// at a time; the core promotes caught-up learners while voters < `max_voters`). A
    /// peer with state that is not a member was removed (or its addition was lost): it is
    /// never re-added on its own, so an explicit removal sticks; `add_learner` brings it
    /// back.
    fn maybe_add_members(&mut self) -> Result<(), WorkerError> {
        if !self.node.is_leader() {
            return Ok(());
        }
        let members = self.node.membership().clone();
        let candidate = self
            .bonds
            .hellos()
            .find(|(p, h)| h.fresh && !members.contains(p))
            .map(|(p, h)| (*p, h.observer));
        if let Some((peer, observer)) = candidate {
            match self
                .node
                .propose_membership(MembershipChange::AddLearner { peer, observer }, &self.store)?
            {
                Ok(at) => tracing::info!(
                    peer = %Short(&peer),
                    index = at.index().0,
                    "adding a learner"
                ),
                Err(err) => tracing::debug!(peer = %Short(&peer), %err, "learner not added yet"),
            }
        }
        Ok(())
    }

    /// Keeps a bond to every known peer and member (dialled with back-off by the network).
    fn maintain_bonds(&mut self) {
        let mut want: BTreeSet<PeerId> = self
            .network
            .known_peers()
            .into_iter()
            .map(|a| a.id)
            .collect();
        want.extend(self.node.membership().members().copied());
        want.remove(&self.me);
        for peer in want {
            if self.maintained.insert(peer) {
                self.links.maintain(peer);
            }
        }
    }

    // ---- state sync ------------------------------------------------------------------

    /// Calls the sync provider or session with a context over this worker's state, then
    /// carries out what it asked for. The one place such contexts are built. `leader`
    /// overrides the leader the context reports (a new session's leader).
    fn with_sync<R>(
        &mut self,
        side: Side,
        leader: Option<PeerId>,
        f: impl FnOnce(SyncParts<'_, M>, &mut Cx<'_, M, S>) -> R,
    ) -> Result<R, WorkerError> {
        let commit = self.node.commit_index();
        let term = LogReader::term_at(&self.store, commit)?.unwrap_or_default();
        let mut out = SyncOutputs::default();
        let mut cx = Cx {
            side,
            machine: &mut self.machine,
            store: &self.store,
            bonds: &mut self.bonds,
            committed: Cursor(term, commit),
            me: self.me,
            group: self.group,
            network: self.network_id,
            leader: leader.or(self.node.leader()),
            snapshots: &self.snapshots,
            applied_membership: &self.applied_membership,
            applied_bytes: self.applied_bytes,
            out: &mut out,
        };
        let parts = SyncParts {
            sync: &self.sync,
            provider: &mut self.provider,
            session: &mut self.session,
        };
        let result = f(parts, &mut cx);
        self.carry_out(out)?;
        Ok(result)
    }

    fn for_provider(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), WorkerError> {
        let message = match codec::decode(bytes) {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(peer = %Short(&peer), %err, "undecodable state-sync request dropped");
                return Ok(());
            }
        };
        let handled = self.with_sync(Side::Provider, None, |p, cx| {
            p.provider.receive(message, peer, cx)
        })?;
        if handled.is_err() {
            tracing::debug!(peer = %Short(&peer), "provider could not handle a request");
        }
        Ok(())
    }

    fn for_session(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), WorkerError> {
        if self.session.is_none() {
            return Ok(());
        }
        let message = match codec::decode(bytes) {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(peer = %Short(&peer), %err, "undecodable state-sync answer dropped");
                return Ok(());
            }
        };
        self.with_sync(Side::Session, None, |p, cx| {
            if let Some(session) = p.session {
                session.receive(message, peer, cx);
            }
        })
    }

    fn start_session(&mut self, catch_up: super::raft::CatchUp) -> Result<(), WorkerError> {
        if self.session.is_none() {
            tracing::info!(
                group = %Short(&self.group),
                from = self.node.commit_index().0,
                to = catch_up.leader_commit.0,
                "catching up by state sync"
            );
        }
        self.with_sync(Side::Session, Some(catch_up.leader), |p, cx| {
            match p.session {
                Some(session) => session.buffer(catch_up.position, catch_up.entries, cx),
                None => {
                    *p.session = Some(p.sync.create_session(
                        cx,
                        catch_up.position,
                        catch_up.leader_commit,
                        catch_up.entries,
                    ));
                }
            }
        })
    }

    fn poll_sync(&mut self) -> Result<(), WorkerError> {
        let mut context = Context::from_waker(Waker::noop());
        let safe = self.with_sync(Side::Provider, None, |p, cx| {
            while p.provider.poll(&mut context, cx).is_ready() {}
            // Asked here, in the same context: a cut or install the poll picked up moves it.
            p.provider.safe_to_prune_prefix(cx)
        })?;
        self.prune_to(safe)?;
        if self.session.is_none() {
            return Ok(());
        }
        let done = self.with_sync(Side::Session, None, |p, cx| {
            p.session
                .as_mut()
                .and_then(|session| match session.poll(&mut context, cx) {
                    Poll::Ready(position) => Some(position),
                    Poll::Pending => None,
                })
        })?;
        if let Some(position) = done {
            if self.session.take().is_some() {
                tracing::info!(group = %Short(&self.group), at = position.index().0, "caught up");
                self.node.finish_catch_up();
                if self.restoring.take().is_some() {
                    self.apply_stash()?;
                }
            }
        }
        Ok(())
    }

    /// After a repaired snapshot is installed: applies the committed entries that came
    /// in meanwhile and are still in the log (an install further ahead reset the log, and
    /// the core hands those entries out again).
    fn apply_stash(&mut self) -> Result<(), WorkerError> {
        let Some(to) = self.stash_to.take() else {
            return Ok(());
        };
        let from = self.applied.next();
        if to < from || !self.store.available().contains(&from) {
            return Ok(());
        }
        let entries = LogReader::entries(&self.store, from, to)?;
        self.apply(entries)
    }

    /// Prunes the log up to `safe`, what the sync provider allows (never above what is
    /// applied, and not at all while a damaged snapshot is repaired).
    fn prune_to(&mut self, safe: Option<Index>) -> Result<(), WorkerError> {
        if self.restoring.is_some() {
            return Ok(());
        }
        let Some(up_to) = safe.map(|i| i.min(self.applied)) else {
            return Ok(());
        };
        if up_to > *self.store.available().start() {
            self.store.prune_prefix(up_to)?;
            tracing::debug!(group = %Short(&self.group), up_to = up_to.0, "log pruned");
        }
        Ok(())
    }

    fn carry_out(&mut self, out: SyncOutputs) -> Result<(), WorkerError> {
        for (entries, committed) in out.replayed {
            match self.node.on_replayed(entries, committed, &self.store) {
                Ok(()) => {}
                Err(err) if !err.is_fatal() => {
                    // The batch does not fit where the core stands (it skipped entries
                    // of a term it has not entered, or the batch is bad): end this
                    // session; the leader asks for another one from the new position
                    // if the node is still far behind.
                    tracing::warn!(group = %Short(&self.group), %err, "replayed batch refused; ending the catch-up");
                    if self.session.take().is_some() {
                        self.node.finish_catch_up();
                    }
                    break;
                }
                Err(err) => return Err(err.into()),
            }
        }
        if let Some(position) = out.synced {
            let membership = out.synced_membership;
            self.node.on_state_synced(position, membership.clone())?;
            // At equal index too: a repaired snapshot is installed at the index the node
            // restarted from, and its header may be the first membership it can read.
            if position.index() >= self.applied {
                self.applied = position.index();
                if let Some(m) = membership {
                    self.applied_membership = m;
                }
            }
        }
        for command in out.feed {
            let id = self.proposal_id();
            self.fed.insert(id);
            self.node.propose(id, command, &self.store)?;
        }
        Ok(())
    }

    // ---- the core's output -----------------------------------------------------------

    fn drive(&mut self) -> Result<(), WorkerError> {
        while self.node.has_ready() {
            let mut rd = self.node.ready(&self.store)?;
            let must_sync = rd.stage(&mut self.store)?;
            for (to, message) in rd.take_messages() {
                self.bonds.send(to, &GroupFrame::Raft(message));
            }
            if must_sync {
                let report = self.store.sync()?;
                for (to, message) in rd.take_after_sync() {
                    self.bonds.send(to, &GroupFrame::Raft(message));
                }
                self.node.on_persisted(&report, &self.store)?;
            } else {
                for (to, message) in rd.take_after_sync() {
                    self.bonds.send(to, &GroupFrame::Raft(message));
                }
            }
            self.apply(rd.take_committed())?;
            let outcomes = rd.take_outcomes();
            if !outcomes.is_empty() {
                // A caller woken by its reply must see a status (commit, applied) that
                // includes its entry.
                self.publish();
            }
            for outcome in outcomes {
                self.resolve_proposal(outcome.id, outcome.result.map(|c| c.index()));
            }
            for read in rd.take_reads() {
                self.resolve_read(read.ctx, read.result);
            }
            if let Some(catch_up) = rd.take_catch_up() {
                self.start_session(catch_up)?;
            }
        }
        self.resolve_changes()?;
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), WorkerError> {
        let Some(last) = entries.last().map(Entry::cursor) else {
            return Ok(());
        };
        if self.restoring.is_some() {
            // The machine is empty until the damaged snapshot is repaired.
            self.stash_to = Some(last.index());
            return Ok(());
        }
        let mut commands = Vec::new();
        let mut indices = Vec::new();
        let mut batch_end = None;
        for entry in entries {
            let at = entry.cursor();
            let bytes = match entry.payload {
                Payload::Command(bytes) => bytes,
                Payload::Config(membership) => {
                    self.applied_membership = membership;
                    continue;
                }
                _ => continue,
            };
            self.applied_bytes += bytes.len() as u64;
            let command = match codec::decode::<M::Command>(&bytes) {
                Ok(command) => command,
                // Every member runs the same machine (its signature is in the group id), so
                // every member skips the same entry: state stays identical.
                Err(err) => {
                    tracing::error!(
                        index = at.index().0,
                        %err,
                        "committed command does not decode; skipped"
                    );
                    continue;
                }
            };
            let barrier = self.sync.is_barrier(&command);
            commands.push(command);
            indices.push(at.index());
            batch_end = Some(at);
            if barrier {
                // The barrier ends its batch, so the machine holds the state at exactly its
                // index when the provider hears of it.
                self.apply_commands(
                    std::mem::take(&mut commands),
                    std::mem::take(&mut indices),
                    at,
                );
                self.with_sync(Side::Provider, None, |p, cx| {
                    p.provider.barrier_applied(at, cx)
                })?;
            }
        }
        if let Some(end) = batch_end {
            self.apply_commands(commands, indices, end);
        }
        self.applied = last.index();
        self.node.on_applied(last.index());
        let later = self.waiting_reads.split_off(&self.applied.next());
        let ready = std::mem::replace(&mut self.waiting_reads, later);
        for (query, reply) in ready.into_values().flatten() {
            let result = self.machine.query(query);
            let _ = reply.send(Ok((result, self.applied)));
        }
        self.with_sync(Side::Provider, None, |p, cx| p.provider.committed(last, cx))
    }

    /// Applies one batch of decoded commands (at `indices`) ending at `end`.
    fn apply_commands(&mut self, commands: Vec<M::Command>, indices: Vec<Index>, end: Cursor) {
        if commands.is_empty() {
            return;
        }
        let ctx = Apply {
            committed: end,
            indices,
            term: self.node.term(),
            group: self.group,
            network: self.network_id,
            me: self.me,
        };
        self.machine.apply_batch(commands, &ctx);
        self.applied = end.index();
    }

    fn resolve_proposal(&mut self, id: ProposalId, result: Result<Index, ClientError>) {
        if self.fed.remove(&id) {
            if let Err(err) = result {
                tracing::debug!(%err, "fed command failed");
            }
            return;
        }
        let Some((batch_id, pos)) = self.proposals.remove(&id) else {
            return;
        };
        let Some(batch) = self.batches.get_mut(&batch_id) else {
            return;
        };
        match result {
            Ok(index) => {
                batch.indices[pos] = Some(index);
                batch.remaining -= 1;
                if batch.remaining == 0 {
                    if let Some(batch) = self.batches.remove(&batch_id) {
                        let indices = batch.indices.into_iter().flatten().collect();
                        let _ = batch.reply.send(Ok(indices));
                    }
                }
            }
            Err(err) => {
                if let Some(batch) = self.batches.remove(&batch_id) {
                    let _ = batch.reply.send(Err(err.into()));
                }
            }
        }
    }

    fn resolve_read(&mut self, ctx: u64, result: Result<Index, ClientError>) {
        let Some((query, reply)) = self.reads.remove(&ctx) else {
            return;
        };
        match result {
            Ok(index) if index <= self.applied => {
                let result = self.machine.query(query);
                let _ = reply.send(Ok((result, self.applied)));
            }
            Ok(index) => self
                .waiting_reads
                .entry(index)
                .or_default()
                .push((query, reply)),
            Err(err) => {
                let _ = reply.send(Err(err.into()));
            }
        }
    }

    fn resolve_changes(&mut self) -> Result<(), WorkerError> {
        let commit = self.node.commit_index();
        let mut i = 0;
        while i < self.changes.len() {
            let at = self.changes[i].0;
            if at.index() <= commit {
                let (at, reply) = self.changes.swap_remove(i);
                let found = LogReader::term_at(&self.store, at.index())?;
                let result = match found {
                    Some(t) if t == at.term() => Ok(at.index()),
                    Some(t) => Err(ClientError::Overwritten {
                        proposed: at,
                        found: t,
                    }
                    .into()),
                    None => Ok(at.index()),
                };
                let _ = reply.send(result);
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    fn fail_everything(&mut self, reason: &str) {
        for (_, batch) in self.batches.drain() {
            let _ = batch.reply.send(Err(stopped(reason)));
        }
        for (_, (_, reply)) in self.reads.drain() {
            let _ = reply.send(Err(stopped(reason)));
        }
        for (_, waiting) in std::mem::take(&mut self.waiting_reads) {
            for (_, reply) in waiting {
                let _ = reply.send(Err(stopped(reason)));
            }
        }
        for (_, reply) in self.changes.drain(..) {
            let _ = reply.send(Err(stopped(reason)));
        }
    }

    fn publish(&mut self) {
        let node = &self.node;
        let status = GroupStatus {
            id: self.me,
            group: self.group,
            role: node.role(),
            term: node.term(),
            leader: node.leader(),
            commit: node.commit_index(),
            applied: self.applied,
            log_start: self.store.available().start().next(),
            last: node.last(),
            durable: node.durable(),
            members: node.membership().clone(),
            bonded: self.bonds.peers(),
            online: node.leader().is_some() && self.session.is_none(),
            syncing: self.session.is_some(),
            stopped: None,
            cluster: Some(node.membership().cluster()).filter(|c| c.is_known()),
            conflicts: self.conflicts.iter().map(|(p, c)| (*p, *c)).collect(),
        };
        self.status.send_if_modified(|s| {
            if *s != status {
                *s = status;
                true
            } else {
                false
            }
        });
    }
}

/// Reads one link: decodes frames and hands them to the worker. A frame that does not
/// decode closes the link (logged); the worker hears of the close either way.
async fn read_link(mut link: Link, link_id: u64, tx: mpsc::Sender<Inbound>) {
    let peer = link.peer();
    while let Some(bytes) = link.recv().await {
        match codec::decode::<GroupFrame>(&bytes) {
            Ok(frame) => {
                if tx.send(Inbound::Frame { peer, frame }).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(peer = %Short(&peer), %err, "undecodable group frame; closing the link");
                link.close();
                break;
            }
        }
    }
    let _ = tx.send(Inbound::Closed { peer, link_id }).await;
}
