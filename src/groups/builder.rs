//! `GroupBuilder`: the seed's way to join a group (`with_key`, `with_state_machine`,
//! `with_log_storage`, `with_consensus_config`, `require_ticket`, `join`).
//!
//! ```no_run
//! # async fn demo(network: tessera::network::Network) -> Result<(), Box<dyn std::error::Error>> {
//! use tessera::groups::{GroupBuilder, GroupKey, machine::NoOp};
//! let group = GroupBuilder::new(&network)
//!     .with_key(GroupKey::from_secret("my group"))
//!     .with_state_machine(NoOp)
//!     .join()?;
//! group.when().leader_elected().await?;
//! # Ok(()) }
//! ```
//!
//! Storage: a network built from a [`DataDir`](crate::data_dir::DataDir) gives a durable
//! group (the RocksDB log store of `tessera-storage`, in the node's one database); without
//! one, or after [`GroupBuilder::in_memory`], the log lives in memory. `with_log_storage`
//! takes any `Storage` (departure from the seed's `Storage<M::Command>`: the log
//! holds no-op and configuration entries besides commands).

use super::group::{Group, GroupStatus, REQUEST_QUEUE};
use super::key::{GroupIdInputs, GroupKey};
use super::machine::{NoOp, StateMachine, StateSync};
use super::raft::{Membership, Node, RaftError};
use super::recovery::{self, Recovered, RecoveryError};
use super::restore::{self, RestoreError, StartFrom};
use super::worker::{Worker, WorkerSetup};
use super::{ConsensusConfig, InMemoryLogStore, LocalStorage, Storage, StorageError};
use crate::network::{
    GroupAccess, LinkConfig, Network, NetworkError, TicketError, TicketValidator,
    DEFAULT_TICKET_RECHECK,
};
use crate::{GroupId, PeerId, UniqueId};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// `with_key` was not called.
    #[error("no group key: call with_key")]
    NoKey,
    /// The network refused (already joined, shut down).
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The group's log could not be loaded.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The consensus core could not restart from the stored state.
    #[error(transparent)]
    Raft(#[from] RaftError),
    /// No randomness for the core's seed.
    #[error("no randomness for the consensus seed: {0}")]
    Random(String),
    /// The group's local state could not be recovered (snapshot restore, or a log that
    /// disagrees with it).
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// A forced new cluster or a backup restore could not be done.
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

/// Marker: durable when the network has a data directory, in memory otherwise.
#[derive(Debug, Default, Clone, Copy)]
pub struct AutoStorage;

/// Marker: in memory even on a durable node.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryStorage;

/// Configures a group before joining it.
pub struct GroupBuilder<'n, M = NoOp, S = AutoStorage> {
    network: &'n Network,
    key: Option<GroupKey>,
    consensus: ConsensusConfig,
    machine: M,
    storage: S,
    validators: Vec<Arc<dyn TicketValidator>>,
    ticket: Vec<u8>,
    ticket_recheck: Duration,
    contact: Option<String>,
    start: StartFrom,
}

impl<'n> GroupBuilder<'n, NoOp, AutoStorage> {
    /// Starts configuring a group on `network`.
    pub fn new(network: &'n Network) -> Self {
        GroupBuilder {
            network,
            key: None,
            consensus: ConsensusConfig::default(),
            machine: NoOp,
            storage: AutoStorage,
            validators: Vec::new(),
            ticket: Vec::new(),
            ticket_recheck: DEFAULT_TICKET_RECHECK,
            contact: None,
            start: StartFrom::Log,
        }
    }
}

impl<'n, M, S> GroupBuilder<'n, M, S> {
    /// What this node announces to the group's members for clients (a `tessera node`:
    /// its HTTP URL), shown in every member's [`Roster`](super::Roster). Not part of the
    /// id. At most [`MAX_CONTACT_BYTES`](super::roster::MAX_CONTACT_BYTES): a longer one
    /// is not announced (logged).
    pub fn with_contact(mut self, contact: impl Into<String>) -> Self {
        let contact = contact.into();
        if contact.len() > super::roster::MAX_CONTACT_BYTES {
            tracing::warn!(
                bytes = contact.len(),
                limit = super::roster::MAX_CONTACT_BYTES,
                "group contact too long; not announced"
            );
            self.contact = None;
        } else {
            self.contact = Some(contact);
        }
        self
    }

    /// The group key: the shared secret members prove on every link. Part of the id.
    pub fn with_key(mut self, key: GroupKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The application's state machine (its signature is part of the id).
    pub fn with_state_machine<M2: StateMachine>(self, machine: M2) -> GroupBuilder<'n, M2, S> {
        GroupBuilder {
            network: self.network,
            key: self.key,
            consensus: self.consensus,
            machine,
            storage: self.storage,
            validators: self.validators,
            ticket: self.ticket,
            ticket_recheck: self.ticket_recheck,
            contact: self.contact,
            start: self.start,
        }
    }

    /// A log store of your own (see the module docs for the entry type).
    pub fn with_log_storage<S2: Storage>(self, storage: S2) -> GroupBuilder<'n, M, S2> {
        GroupBuilder {
            network: self.network,
            key: self.key,
            consensus: self.consensus,
            machine: self.machine,
            storage,
            validators: self.validators,
            ticket: self.ticket,
            ticket_recheck: self.ticket_recheck,
            contact: self.contact,
            start: self.start,
        }
    }

    /// Keep the log in memory even on a node with a data directory.
    pub fn in_memory(self) -> GroupBuilder<'n, M, MemoryStorage> {
        GroupBuilder {
            network: self.network,
            key: self.key,
            consensus: self.consensus,
            machine: self.machine,
            storage: MemoryStorage,
            validators: self.validators,
            ticket: self.ticket,
            ticket_recheck: self.ticket_recheck,
            contact: self.contact,
            start: self.start,
        }
    }

    /// Timing and membership settings (the fields members must share are part of the id).
    pub fn with_consensus_config(mut self, config: ConsensusConfig) -> Self {
        self.consensus = config;
        self
    }

    /// Peers must present a ticket this validator accepts; several calls require all of
    /// them. Their signatures, in order, are part of the id.
    pub fn require_ticket(mut self, validator: impl TicketValidator) -> Self {
        self.validators.push(Arc::new(validator));
        self
    }

    /// The ticket this node presents to peers (renewed later with
    /// [`Group::renew_ticket`]).
    pub fn with_ticket(mut self, ticket: impl Into<Vec<u8>>) -> Self {
        self.ticket = ticket.into();
        self
    }

    /// Start as the only voter of a new cluster holding everything this node has of the
    /// group (quorum loss: the other members are gone for good). See
    /// [`restore`](super::restore). Not part of the id.
    pub fn force_new_cluster(mut self) -> Self {
        if self.start == StartFrom::Log {
            self.start = StartFrom::ForceNewCluster;
        }
        self
    }

    /// Import the backup at `path` (a `tessera snapshot save` file) into this node's empty
    /// group and start as the only voter of a new cluster holding it; the file is deleted
    /// once imported. Not part of the id.
    pub fn restore_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.start = StartFrom::Backup(path.into());
        self
    }

    /// How often a bonded peer's ticket is checked again by the `require_ticket`
    /// validators (default 1 s): a ticket they start refusing (expired) ends the bond
    /// within this. A local setting, not part of the id.
    pub fn with_ticket_recheck_interval(mut self, interval: Duration) -> Self {
        self.ticket_recheck = interval;
        self
    }
}

/// Every validator must accept.
struct AllOf(Vec<Arc<dyn TicketValidator>>);

impl TicketValidator for AllOf {
    fn validate(&self, peer: PeerId, ticket: &[u8]) -> Result<(), TicketError> {
        self.0.iter().try_for_each(|v| v.validate(peer, ticket))
    }
}

/// How a builder's storage choice becomes a store.
pub trait StorageChoice<M: StateMachine> {
    /// Joins with this storage.
    #[doc(hidden)]
    fn join_with(self, parts: Parts<'_, M>) -> Result<Group<M>, JoinError>;
}

/// What `join` computed, handed to the storage choice.
#[doc(hidden)]
pub struct Parts<'n, M> {
    network: &'n Network,
    key: GroupKey,
    consensus: ConsensusConfig,
    machine: M,
    validators: Vec<Arc<dyn TicketValidator>>,
    ticket: Vec<u8>,
    ticket_recheck: Duration,
    contact: Option<String>,
    start: StartFrom,
}

impl<M: StateMachine> StorageChoice<M> for AutoStorage {
    fn join_with(self, parts: Parts<'_, M>) -> Result<Group<M>, JoinError> {
        let group = group_id(&parts);
        match parts.network.data_dir().map(|dir| dir.store().clone()) {
            Some(store) => {
                let log = store.open_core_log(*group.as_bytes())?;
                spawn(parts, group, log, LocalStorage::durable(store))
            }
            None => spawn(
                parts,
                group,
                InMemoryLogStore::default(),
                LocalStorage::memory(),
            ),
        }
    }
}

impl<M: StateMachine> StorageChoice<M> for MemoryStorage {
    fn join_with(self, parts: Parts<'_, M>) -> Result<Group<M>, JoinError> {
        let group = group_id(&parts);
        spawn(
            parts,
            group,
            InMemoryLogStore::default(),
            LocalStorage::memory(),
        )
    }
}

impl<M: StateMachine, S: Storage> StorageChoice<M> for S {
    fn join_with(self, parts: Parts<'_, M>) -> Result<Group<M>, JoinError> {
        let group = group_id(&parts);
        // A custom log store keeps its snapshots in the node's RocksDB when there is one.
        let local = match parts.network.data_dir().map(|dir| dir.store().clone()) {
            Some(store) => LocalStorage::durable(store),
            None => LocalStorage::memory(),
        };
        spawn(parts, group, self, local)
    }
}

impl<M: StateMachine, S: StorageChoice<M>> GroupBuilder<'_, M, S> {
    /// Joins the group: derives its id, opens its log, restarts the consensus core from
    /// it and starts the worker (needs a tokio runtime). Restarted with the same data
    /// directory, the node resumes with its term, vote, log and membership.
    pub fn join(self) -> Result<Group<M>, JoinError> {
        let key = self.key.ok_or(JoinError::NoKey)?;
        self.storage.join_with(Parts {
            network: self.network,
            key,
            consensus: self.consensus,
            machine: self.machine,
            validators: self.validators,
            ticket: self.ticket,
            ticket_recheck: self.ticket_recheck,
            contact: self.contact,
            start: self.start,
        })
    }
}

fn group_id<M: StateMachine>(parts: &Parts<'_, M>) -> GroupId {
    GroupIdInputs {
        key: parts.key.public_digest(),
        consensus: parts.consensus.digest(),
        machine: parts.machine.signature(),
        sync: parts.machine.state_sync().signature(),
        tickets: parts
            .validators
            .iter()
            .map(|v| v.signature())
            .collect::<Vec<UniqueId>>(),
    }
    .derive()
}

/// The worker's tick: a tenth of the heartbeat interval, between 1 and 50 ms.
pub fn tick_for(config: &ConsensusConfig) -> Duration {
    (config.heartbeat_interval / 10).clamp(Duration::from_millis(1), Duration::from_millis(50))
}

fn spawn<M: StateMachine, S: Storage>(
    parts: Parts<'_, M>,
    group: GroupId,
    mut store: S,
    local: LocalStorage,
) -> Result<Group<M>, JoinError> {
    let Parts {
        network,
        key,
        consensus,
        mut machine,
        validators,
        ticket,
        ticket_recheck,
        contact,
        start,
    } = parts;
    let me = network.peer_id();
    if let StartFrom::Backup(path) = &start {
        restore::import_backup(path, &local, &mut store, group)?;
    }
    // The state sync the worker runs: given its storage first, then asked to restore.
    let mut sync = machine.state_sync();
    sync.attach(&local);
    // Recovery verifies the log it is about to replay and repairs a damaged record (it
    // logs a warning naming it; the core learns of the repair through the store's
    // vote-withheld marker).
    let Recovered {
        applied,
        base,
        repairing,
        log_repair: _,
    } = recovery::recover(&mut machine, &sync, &mut store, group)?;
    let tick = tick_for(&consensus);
    let mut raft = consensus.raft_config(tick, machine.leadership_preference());
    if !sync.sessions_while_log_holds() {
        // Catch-up sessions only for what no log holds (see `StateSync`'s method).
        raft.replay_threshold = 0;
    }
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| JoinError::Random(e.to_string()))?;
    let mut node = Node::restart_from(
        me,
        raft.clone(),
        u64::from_le_bytes(seed),
        &store,
        applied,
        base.clone(),
    )?;
    // After recovery (it may reset the log to a snapshot's anchor, which would drop an
    // entry appended before it), in the cluster in force: the snapshots this node serves
    // name it in their headers, so members that join from them agree with the new
    // configuration (etcd's --force-new-cluster keeps its cluster id too).
    if start != StartFrom::Log {
        let cluster = node.membership().cluster();
        restore::force_new_cluster(&mut store, group, me, cluster, &start)?;
        node = Node::restart_from(
            me,
            raft.clone(),
            u64::from_le_bytes(seed),
            &store,
            applied,
            base.clone(),
        )?;
        if let StartFrom::Backup(path) = &start {
            restore::remove(path);
        }
    }
    // The membership in force at `applied`, which the next snapshot records: the
    // snapshot header's (at its anchor, which is `applied` now). Configuration entries
    // after the anchor are applied again, in order, by the worker. The core's
    // `membership()` would be wrong here: it is the newest configuration in the log,
    // possibly past `applied` and not yet committed. It is only the fallback when the
    // header itself is damaged; the repaired snapshot's install then replaces it.
    let applied_membership: Membership = match &base {
        Some((_, membership)) => membership.clone(),
        None if applied.is_zero() => Membership::default(),
        None => node.membership().clone(),
    };
    let mut access = GroupAccess::new(group, key.link_key())
        .with_ticket(ticket)
        .with_link_config(LinkConfig {
            heartbeat_interval: consensus.heartbeat_interval,
            max_missed_heartbeats: consensus.max_missed_heartbeats,
            ticket_recheck_interval: ticket_recheck,
            ..LinkConfig::default()
        });
    if !validators.is_empty() {
        access = access.require_ticket(AllOf(validators));
    }
    let links = network.join(access)?;
    let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
    let (status_tx, status) = watch::channel(GroupStatus::initial(me, group));
    let deadline =
        consensus.election_timeout * 3 + consensus.forward_timeout + consensus.query_timeout;
    let metrics = super::metrics::GroupMetrics::default();
    let worker = Worker::new(WorkerSetup {
        me,
        group,
        network: network.clone(),
        links,
        node,
        store,
        machine,
        tick,
        hello_ticks: u64::from(raft.heartbeat_ticks),
        election_ticks: u64::from(raft.election_ticks),
        expect: consensus.bootstrap_expect,
        requests,
        status: status_tx,
        sync,
        applied,
        applied_membership,
        restoring: repairing,
        contact,
        metrics: metrics.clone(),
    });
    tokio::spawn(worker.run());
    Ok(Group::new(
        requests_tx,
        status,
        group,
        deadline,
        network.downgrade(),
        metrics,
    ))
}
