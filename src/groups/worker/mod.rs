//! The task that drives one group: ticks, messages, client calls, the core's output, bonds,
//! formation, state sync.
//!
//! One loop, one owner of everything (the consensus core, the log store, the state
//! machine, the sync provider and session, the links): no locks. Each turn waits for one
//! input (a tick, a frame, a request, a new link), then takes whatever else is already
//! queued (up to a bound) without waiting, then drains the core's `Ready`s through the
//! one Ready driver (`apply.rs`): stage the log writes, send what may go before the sync,
//! **one** `sync()` for everything staged, send what had to wait for it, apply the
//! committed entries, answer clients. Inputs that arrive during a sync wait in their
//! bounded channels (and in the core) and are taken together once it returned: that is
//! the group commit.
//!
//! The sync goes to the node's syncer thread (one fsync per round for every group of
//! the node, `tessera_storage::group_commit`), and the core is not driven until it
//! returns; a current-thread runtime (unit tests) syncs in place instead. Driving the
//! core during a sync (appends sent at once, later batches pipelined behind it) was
//! measured and dropped: twice the datagrams and ~8% more CPU per write at 64
//! connections, with no gain in writes/s on a CPU-bound machine.
//!
//! The parts: this file (the loop and its inputs), `ledger.rs` (client calls in flight),
//! `requests.rs` (client calls in, the status out), `readers.rs` (frames in from every
//! link), `apply.rs` (the driver's effects: send, apply, answer), `peers.rs` (hellos,
//! links, founding, learners, bonds), `state_sync.rs` (provider and session).

mod apply;
mod batches;
mod disk;
mod ledger;
mod peers;
mod readers;
mod requests;
mod roster;
mod state_sync;
mod trace;
mod transfer;

pub(crate) use transfer::TransferReply;
#[cfg(test)]
mod tests;

use self::ledger::Ledger;
use self::readers::{Inbound, LinkReaders};
use super::bonds::Bonds;
use super::formation::Formation;
use super::group::{GroupStatus, Request};
use super::machine::{Provider, Session, StateMachine, StateSync};
use super::metrics::GroupMetrics;
use super::raft::{ClusterId, Membership, Message, Node, RaftError, ReadyDriver};
use super::sync_context::{Cx, Side, SyncOutputs};
use super::wire::GroupFrame;
use super::{Cursor, Index, StopCause, Storage, StorageError, Term};
use crate::network::{GroupLinks, Network};
use crate::primitives::Short;
use crate::{GroupId, PeerId, UniqueId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// At most this many extra inputs are taken per turn before the worker drives the core.
const DRAIN_PER_TURN: usize = 1024;

/// Extra yields a worker may make after a sync returns, each only while the one before
/// brought proposals (see `gather_proposals`). At 64 connections, 3 alternating pairs of
/// runs: writes per fsync per node 18.7 -> 21.4, writes/s +7 to +12%, CPU per write -11%;
/// 12 yields instead of 4 gave the same.
const GATHER_YIELDS: usize = 4;

/// While the core is quiesced the worker ticks this many times slower (3 s at the default
/// 50 ms tick): enough for the disk check, adding learners and saving peers, while an idle
/// group costs next to nothing. Any input is still handled at once, and a wake brings the
/// normal tick back at once.
const QUIET_TICK_FACTOR: u32 = 60;

/// How long a leader waits, after a commit, before telling followers with nothing new to
/// receive the new commit index: under a steady load the next append tells them sooner
/// and the notice (and its answer) is never sent; idle, followers learn it this much later.
/// Followers that forwarded the committed commands, or wait on a read, are told at once.
const COMMIT_NOTICE_DELAY: Duration = Duration::from_millis(1);

/// Where the commit notice timer waits while disarmed (never reached: it is re-armed first).
const NOTICES_IDLE: Duration = Duration::from_secs(3600);

/// While quiesced, an unchanged hello is sent again only this often (peers learn restarts
/// and new state from a changed hello at once; the link's own heartbeats keep it alive).
const QUIET_HELLO: Duration = Duration::from_secs(30);

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

/// Everything the worker needs, assembled by the builder.
pub(crate) struct WorkerSetup<M: StateMachine, S: Storage> {
    pub(crate) me: PeerId,
    pub(crate) group: GroupId,
    pub(crate) network: Network,
    pub(crate) links: GroupLinks,
    pub(crate) node: Node,
    pub(crate) store: S,
    pub(crate) machine: M,
    pub(crate) tick: Duration,
    pub(crate) hello_ticks: u64,
    /// Ticks of an election timeout (a transfer's deadline is two of them).
    pub(crate) election_ticks: u64,
    pub(crate) expect: usize,
    pub(crate) requests: mpsc::Receiver<Request<M>>,
    pub(crate) status: watch::Sender<GroupStatus>,
    /// The machine's state sync, attached to the group's storage by the builder.
    pub(crate) sync: M::StateSync,
    /// What the machine holds at start (a restored snapshot's anchor, else 0).
    pub(crate) applied: Index,
    /// The configuration at `applied`.
    pub(crate) applied_membership: Membership,
    /// The newest local snapshot is damaged: nothing is applied until a session repairs it.
    pub(crate) restoring: Option<Cursor>,
    /// What this node announces for clients (see [`Hello::contact`](super::wire::Hello)).
    pub(crate) contact: Option<String>,
    /// Where the worker records what it measures (shared with the handle).
    pub(crate) metrics: GroupMetrics,
}

pub(crate) struct Worker<M: StateMachine, S: Storage> {
    me: PeerId,
    group: GroupId,
    network_id: UniqueId,
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
    /// Every open link, read by this loop (`readers.rs`).
    readers: LinkReaders,
    requests: mpsc::Receiver<Request<M>>,
    status: watch::Sender<GroupStatus>,
    tick: Duration,
    hello_ticks: u64,
    election_ticks: u64,
    ticks: u64,
    /// The leadership transfer a caller waits for.
    transfer: Option<transfer::PendingTransfer>,
    /// Client calls in flight.
    ledger: Ledger<M::Query, M::QueryResult>,
    /// The one Ready driver (messages waiting for a sync).
    driver: ReadyDriver,
    /// A batch handed to the store's syncer and not yet durable, since when (the core is
    /// not driven meanwhile; see `apply.rs`).
    sync_in_flight: Option<std::time::Instant>,
    /// Whether syncs go to the store's syncer thread without blocking this task: on a
    /// multi-threaded runtime (every node), decided once when the worker starts. On a
    /// current-thread runtime (unit tests) the worker syncs in place, as nothing else
    /// could run meanwhile anyway.
    async_sync: bool,
    /// Where the syncer says a batch ended: its generation and result. Unbounded, but it
    /// holds at most one message: a worker has at most one batch in flight.
    sync_done_tx: mpsc::UnboundedSender<(u64, Result<(), StorageError>)>,
    sync_done: mpsc::UnboundedReceiver<(u64, Result<(), StorageError>)>,
    applied: Index,
    applied_membership: Membership,
    applied_bytes: u64,
    /// Set while a damaged local snapshot is repaired: committed entries are not applied
    /// (the machine is empty) but remembered up to `stash_to`, and applied once it is.
    restoring: Option<Cursor>,
    stash_to: Option<Index>,
    shutdown: Option<oneshot::Sender<()>>,
    /// What this node announces in its hellos for clients.
    contact: Option<String>,
    /// When each peer was heard from last, and what it announced.
    heard: roster::Heard,
    /// What the worker measures.
    metrics: GroupMetrics,
    /// The tick from which a leader low on disk space tries to hand leadership over
    /// (again); see `disk.rs`.
    space_transfer_at: u64,
    /// The hello last broadcast and when, so a quiesced group resends only what changed.
    last_hello: Option<(super::wire::Hello, std::time::Instant)>,
    /// Peers this node removed as leader, with the start (hello nonce) they announced
    /// then: not re-added as fresh while they announce that start.
    removed: BTreeMap<PeerId, u64>,
    /// The write being timed stage by stage (`trace.rs`).
    trace: trace::WriteTrace,
    /// Declared last so it drops last: the network holds the node's `DataDir`, whose lock
    /// must outlive this worker's store handles (fields drop in declaration order).
    network: Network,
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

impl<M: StateMachine, S: Storage> Worker<M, S> {
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
            election_ticks,
            expect,
            requests,
            status,
            sync,
            applied,
            applied_membership,
            restoring,
            contact,
            metrics,
        } = setup;
        let observer =
            machine.leadership_preference() == super::machine::LeadershipPreference::Observer;
        let fresh = node.term() == Term(0) && node.last() == Cursor::zero();
        let nonce = random_u64();
        let formation = fresh.then(|| Formation::new(me, expect, observer, nonce));
        let network_id = network.network_id().0;
        let mut bonds = Bonds::default();
        bonds.sent = metrics.sent_traffic();
        let committed = Cursor::zero();
        let mut out = SyncOutputs::default();
        let provider = {
            let cx = Cx::<M, S> {
                side: Side::Provider,
                machine: &mut machine,
                store: &store,
                bonds: &mut bonds,
                committed,
                leader_commit: Index(0),
                me,
                group,
                network: network_id,
                leader: None,
                applied_membership: &applied_membership,
                applied_bytes: 0,
                repairing: restoring,
                out: &mut out,
            };
            sync.create_provider(&cx)
        };
        let (sync_done_tx, sync_done) = mpsc::unbounded_channel();
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
            readers: LinkReaders::new(metrics.clone()),
            requests,
            status,
            tick,
            hello_ticks: hello_ticks.max(1),
            election_ticks,
            ticks: 0,
            transfer: None,
            ledger: Ledger::new(first_proposal_id()),
            driver: ReadyDriver::new(),
            sync_in_flight: None,
            async_sync: false,
            sync_done_tx,
            sync_done,
            applied,
            applied_membership,
            applied_bytes: 0,
            restoring,
            stash_to: None,
            shutdown: None,
            contact,
            heard: roster::Heard::default(),
            metrics,
            space_transfer_at: 0,
            last_hello: None,
            removed: BTreeMap::new(),
            trace: trace::WriteTrace::default(),
        }
    }

    /// Runs until every handle is dropped, `shutdown` is asked, the network shuts down,
    /// or a fatal error.
    pub(crate) async fn run(mut self) {
        self.async_sync = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
        let result = self.run_loop().await;
        // A batch still with the syncer is written whether or not anyone waits; wait, so
        // that a group reopened once this worker is gone never reads the store while the
        // old batch lands (the syncer always answers).
        if self.sync_in_flight.take().is_some() {
            let _ = self.sync_done.recv().await;
        }
        let cause = match result {
            Ok(()) => StopCause::ShutDown,
            Err(err) => {
                tracing::error!(group = %Short(&self.group), %err, "group stopped");
                StopCause::Fatal(std::sync::Arc::new(err))
            }
        };
        self.ledger.fail_everything(&cause);
        self.bonds.log_counts(&self.group);
        let status = self.status.clone();
        let done = self.shutdown.take();
        // Everything the worker owns (store handles, sync threads) goes before `shutdown`
        // returns, so a caller may reopen the same data directory right after.
        drop(self);
        status.send_modify(|s| s.stopped = Some(cause));
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// Called when a sync returned: the next batch is staged and handed to the syncer this
    /// turn, so first the tasks already runnable go (`yield_now` puts this one at the back
    /// of the queue): API connections holding a request queue their proposals, and the
    /// batch carries them. While a yield brought proposals, more are likely on their way
    /// (a loaded node): it yields again, up to [`GATHER_YIELDS`] more times. An idle or
    /// lightly loaded node yields once and goes on. Measured at 64 connections: the first
    /// yield took writes per fsync from 16.2 to 17.8 (writes/s +6%), the repeated ones to
    /// 21.4 (+7 to +12% more); one client's latency did not change either time.
    async fn gather_proposals(requests: &mpsc::Receiver<Request<M>>) {
        tokio::task::yield_now().await;
        for _ in 0..GATHER_YIELDS {
            let before = requests.len();
            tokio::task::yield_now().await;
            if requests.len() <= before {
                break;
            }
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
        // A sleep reset after each tick rather than an interval: its period changes with
        // quiescence (see `QUIET_TICK_FACTOR`).
        let ticker = tokio::time::sleep(self.tick);
        tokio::pin!(ticker);
        // Armed while the core has commit notices to send (`COMMIT_NOTICE_DELAY`).
        let notices = tokio::time::sleep(NOTICES_IDLE);
        tokio::pin!(notices);
        let mut notices_armed = false;
        loop {
            let was_quiesced = self.node.is_quiesced();
            tokio::select! {
                _ = &mut ticker => {
                    self.on_tick()?;
                    let next = tokio::time::Instant::now() + self.tick_period();
                    ticker.as_mut().reset(next);
                }
                request = self.requests.recv() => match request {
                    Some(request) => self.on_request(request)?,
                    None => return Ok(()),
                },
                inbound = self.readers.next() => self.on_inbound(inbound)?,
                Some((generation, result)) = self.sync_done.recv() => {
                    self.on_synced(generation, result)?;
                    Self::gather_proposals(&self.requests).await;
                }
                link = self.links.next_link() => match link {
                    Some(link) => self.on_link(link),
                    None => return Ok(()),
                },
                _ = &mut notices, if notices_armed => {
                    notices_armed = false;
                    self.node.send_commit_notices(&self.store)?;
                }
            }
            for _ in 0..DRAIN_PER_TURN {
                match self.readers.try_next() {
                    Some(inbound) => self.on_inbound(inbound)?,
                    None => break,
                }
            }
            for _ in 0..DRAIN_PER_TURN {
                match self.requests.try_recv() {
                    Ok(request) => self.on_request(request)?,
                    Err(_) => break,
                }
            }
            self.drive()?;
            match (notices_armed, self.node.commit_notices_pending()) {
                (false, true) => {
                    notices_armed = true;
                    notices
                        .as_mut()
                        .reset(tokio::time::Instant::now() + COMMIT_NOTICE_DELAY);
                }
                // An append told them: the timer would only wake the runtime for nothing.
                (true, false) => {
                    notices_armed = false;
                    notices
                        .as_mut()
                        .reset(tokio::time::Instant::now() + NOTICES_IDLE);
                }
                _ => {}
            }
            self.settle_transfer();
            if self.shutdown.is_some() {
                return Ok(());
            }
            if was_quiesced && !self.node.is_quiesced() {
                // Woken: back to the normal tick now, not at the end of a slow one.
                let next = tokio::time::Instant::now() + self.tick;
                if ticker.deadline() > next {
                    ticker.as_mut().reset(next);
                }
            }
            self.publish();
        }
    }

    /// The time to the next tick: slower while the core is quiesced.
    fn tick_period(&self) -> Duration {
        if self.node.is_quiesced() {
            self.tick * QUIET_TICK_FACTOR
        } else {
            self.tick
        }
    }

    // ---- inputs ----------------------------------------------------------------------

    fn on_tick(&mut self) -> Result<(), WorkerError> {
        self.ticks += 1;
        self.check_disk()?;
        self.node.tick(&self.store)?;
        // Quiesced, every (slow) tick does the bookkeeping; the hello goes out only when
        // it changed or `QUIET_HELLO` passed.
        if self.node.is_quiesced() || self.ticks % self.hello_ticks == 1 || self.hello_ticks == 1 {
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

    fn on_inbound(&mut self, inbound: Inbound) -> Result<(), WorkerError> {
        match inbound {
            Inbound::Closed { peer, link_id } => {
                if self.bonds.closed(&peer, link_id) {
                    if let Some(f) = &mut self.formation {
                        f.gone(&peer);
                    }
                    tracing::debug!(peer = %Short(&peer), "bond closed");
                    self.wake_on_lost(&peer);
                    // A leader may quiesce without it (and wakes when it is back).
                    self.node.set_reachable(peer, false);
                }
            }
            Inbound::Frame {
                peer,
                frame: GroupFrame::Hello(hello),
            } => {
                self.heard.frame(peer, std::time::Instant::now());
                self.heard.contact(peer, hello.contact.as_deref());
                self.on_hello(peer, hello)?
            }
            // Everything else only from a peer that announced itself on its current link
            // (a peer's hello is the first frame of every link) and is of this founding.
            Inbound::Frame { peer, .. } if !self.admitted(&peer) => {
                tracing::trace!(peer = %Short(&peer), "frame from a peer not admitted; dropped");
            }
            Inbound::Frame { peer, frame } => {
                self.heard.frame(peer, std::time::Instant::now());
                match frame {
                    GroupFrame::Raft(message) if self.held_back(&message) => {
                        tracing::trace!(peer = %Short(&peer), "disk space low: entries held back");
                    }
                    GroupFrame::Raft(message) => {
                        match &message {
                            Message::AppendEntries(append) => self.trace.append_received(append),
                            Message::AppendEntriesResponse(response) => {
                                self.trace.acknowledged(response)
                            }
                            _ => {}
                        }
                        self.node.step(peer, message, &self.store)?
                    }
                    GroupFrame::Hello(_) => {}
                    GroupFrame::ToProvider(bytes) => self.for_provider(peer, &bytes.0)?,
                    GroupFrame::ToSession(bytes) => self.for_session(peer, &bytes.0)?,
                }
            }
        }
        Ok(())
    }

    /// The driver's side of quiescence: the network closes every link to a node that
    /// died or stopped answering, so a closed link to the leader (on a follower) or to a
    /// voter (on the leader) may be the failure the quiesced core's timers no longer
    /// watch for. Waking lets them run: a follower elects a new leader after its
    /// election timeout, a leader heartbeats and steps down without a quorum.
    fn wake_on_lost(&mut self, peer: &PeerId) {
        if !self.node.is_quiesced() {
            return;
        }
        let lost_leader = self.node.leader() == Some(*peer);
        let lost_voter = self.node.is_leader() && self.node.membership().is_voter(peer);
        if lost_leader || lost_voter {
            tracing::debug!(group = %Short(&self.group), peer = %Short(peer), "link lost: waking");
            self.node.wake();
        }
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
}
