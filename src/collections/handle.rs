//! `Handle<K>`: what every collection wraps — its group, the published state, the
//! outcomes of its writes, its snapshot counters and its [`When`].
//!
//! The group is joined when the collection is opened, except when this node still runs
//! the previous instance of the same collection (its handle was just dropped and its
//! worker has not stopped yet, see `reopen.rs`): then a task joins once that instance has
//! stopped. Until then reads see the empty state, writes and waits wait for the join, and
//! `version()` is zero; a join that fails then fails every later call with its reason.

use super::config::SharedValidator;
use super::machine::{Command, Kind, Machine};
use super::replies::{Replies, Ticket};
use super::when::{self, Stage};
use super::{reopen, CollectionConfig, Error, StoreId, Version, When};
use crate::groups::machine::{StateMachine, StateSync};
use crate::groups::snapshot::SnapshotStats;
use crate::groups::{
    Group, GroupBuilder, GroupError, GroupIdInputs, GroupKey, GroupStatus, StopCause,
};
use crate::network::Network;
use crate::primitives::Digest;
use crate::{GroupId, PeerId};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// The collection's group on this node, as far as it has come.
pub(crate) enum Joined<M: StateMachine> {
    /// Waiting for the previous instance to stop.
    Pending,
    /// Joined.
    Ready(Group<M>),
    /// The deferred join failed; why.
    Failed(Arc<dyn std::error::Error + Send + Sync>),
}

/// One open collection of kind `K` on this node.
pub(crate) struct Handle<K: Kind> {
    slot: watch::Receiver<Joined<Machine<K>>>,
    me: PeerId,
    group: GroupId,
    state: watch::Receiver<K::State>,
    replies: Replies<K::Reply>,
    stats: Arc<SnapshotStats>,
    when: When,
}

/// The group key of a collection: its kind, store id and value types (or type tag), so
/// different collections never share a group.
fn group_key(
    kind: &'static str,
    store: StoreId,
    types: &[&str],
    config: &CollectionConfig,
) -> GroupKey {
    let mut parts: Vec<&[u8]> = vec![
        b"tessera/collections/group-key/v1",
        kind.as_bytes(),
        store.as_bytes(),
    ];
    match &config.type_tag {
        Some(tag) => {
            parts.push(b"tag");
            parts.push(tag.as_bytes());
        }
        None => {
            parts.push(b"types");
            parts.extend(types.iter().map(|t| t.as_bytes()));
        }
    }
    GroupKey::from_secret(Digest::from_parts(&parts).as_bytes())
}

/// Everything joining the group takes, so it can run now or in a task later.
struct Join<K: Kind> {
    network: Network,
    key: GroupKey,
    config: CollectionConfig,
    machine: Machine<K>,
    store: StoreId,
}

impl<K: Kind> Join<K> {
    /// The group id the builder derives from these settings (the same inputs, in the same
    /// order: see `GroupBuilder::join`).
    fn group_id(&self) -> GroupId {
        GroupIdInputs {
            key: self.key.public_digest(),
            consensus: self.config.consensus.digest(),
            machine: self.machine.signature(),
            sync: self.machine.state_sync().signature(),
            tickets: self.config.auth.iter().map(|v| v.signature()).collect(),
        }
        .derive()
    }

    fn run(self) -> Result<Group<Machine<K>>, Error> {
        let mut builder = GroupBuilder::new(&self.network)
            .with_key(self.key)
            .with_consensus_config(self.config.consensus)
            .with_ticket(self.config.ticket)
            .with_state_machine(self.machine);
        for validator in self.config.auth {
            builder = builder.require_ticket(SharedValidator(validator));
        }
        builder.join().map_err(|source| Error::Open {
            kind: K::NAME,
            store: self.store,
            source: Box::new(source),
        })
    }
}

impl<K: Kind> Handle<K> {
    /// Joins the collection's group on `network`, as a writer (may lead) or a reader (an
    /// observer). Durable when the network has a data directory: the group restores its
    /// newest local snapshot and replays the log after it.
    pub(crate) fn open(
        network: &Network,
        store: StoreId,
        config: CollectionConfig,
        kind: K,
        writer: bool,
    ) -> Result<Self, Error> {
        let key = group_key(K::NAME, store, &kind.type_names(), &config);
        // Nonces start at a random point, so commands replayed from the log after a
        // restart never match a registration of this process.
        let first = getrandom::u64().map_err(|e| Error::Random {
            kind: K::NAME,
            reason: e.to_string(),
        })?;
        let me = network.peer_id();
        let replies = Replies::new(me, first);
        let machine = Machine::new(kind, writer, config.sync, replies.clone());
        let state = machine.subscribe();
        let changes = machine.subscribe_changes();
        let stats = machine.snapshot_stats();
        let join = Join {
            network: network.clone(),
            key,
            config,
            machine,
            store,
        };
        let group = join.group_id();
        let (slot_tx, slot) = watch::channel(Joined::Pending);
        let (stage_tx, stage) = watch::channel(Stage::Pending);
        match reopen::closing(me, group) {
            None => {
                let joined = join.run()?;
                debug_assert_eq!(joined.id(), group, "collections derive the builder's id");
                stage_tx.send_replace(Stage::Ready(joined.when()));
                slot_tx.send_replace(Joined::Ready(joined));
            }
            Some(previous) => {
                tracing::debug!(kind = K::NAME, %store, "waiting for the previous instance to stop before joining");
                tokio::spawn(async move {
                    previous.wait().await;
                    match join.run() {
                        Ok(joined) => {
                            stage_tx.send_replace(Stage::Ready(joined.when()));
                            // No receiver left: the handle was dropped meanwhile, and the
                            // group stops with this last handle.
                            let _ = slot_tx.send(Joined::Ready(joined));
                        }
                        Err(err) => {
                            let reason: Arc<dyn std::error::Error + Send + Sync> = Arc::new(err);
                            stage_tx.send_replace(Stage::Failed(reason.clone()));
                            let _ = slot_tx.send(Joined::Failed(reason));
                        }
                    }
                });
            }
        }
        let when = When::new(K::NAME, stage, changes);
        Ok(Handle {
            slot,
            me,
            group,
            state,
            replies,
            stats,
            when,
        })
    }

    /// Reads the current state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&K::State) -> R) -> R {
        f(&self.state.borrow())
    }

    /// A clone of the current state (O(1)).
    pub(crate) fn state(&self) -> K::State {
        self.state.borrow().clone()
    }

    /// Receives every published state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<K::State> {
        self.state.clone()
    }

    pub(crate) fn when(&self) -> &When {
        &self.when
    }

    /// The applied index this node's state reflects (zero before the group joined).
    pub(crate) fn version(&self) -> Version {
        match &*self.slot.borrow() {
            Joined::Ready(group) => Version(group.log_position().1),
            Joined::Pending | Joined::Failed(_) => Version::ZERO,
        }
    }

    pub(crate) fn group_id(&self) -> GroupId {
        self.group
    }

    pub(crate) fn status(&self) -> GroupStatus {
        match &*self.slot.borrow() {
            Joined::Ready(group) => group.status(),
            Joined::Pending => GroupStatus::initial(self.me, self.group),
            Joined::Failed(reason) => GroupStatus {
                stopped: Some(StopCause::NotStarted(reason.clone())),
                ..GroupStatus::initial(self.me, self.group)
            },
        }
    }

    pub(crate) fn snapshot_stats(&self) -> Arc<SnapshotStats> {
        self.stats.clone()
    }

    pub(crate) fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        let slot = self.slot.clone();
        async move {
            if let Ok(group) = joined(slot, K::NAME, "shutdown").await {
                group.shutdown().await;
            }
        }
    }

    /// Replicates `op`; resolves to the version that contains it once it is applied here.
    pub(crate) fn execute(
        &self,
        name: &'static str,
        op: K::Op,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        self.replicate(name, op, None)
    }

    /// Replicates `op` and returns its outcome as applied on this node.
    pub(crate) fn execute_for_reply(
        &self,
        name: &'static str,
        op: K::Op,
    ) -> impl Future<Output = Result<(Version, K::Reply), Error>> + Send + 'static {
        let (ticket, pending) = self.replies.register();
        let applied = self.replicate(name, op, Some(ticket));
        async move {
            let version = applied.await?;
            // `execute` resolves once the entry is applied here, so the machine has sent
            // the outcome, unless the node skipped past it by installing a snapshot.
            match pending.take() {
                Some(reply) => Ok((version, reply)),
                None => Err(Error::OutcomeUnknown {
                    kind: K::NAME,
                    op: name,
                    version,
                }),
            }
        }
    }

    /// Replicates `op` (with `ticket` when its outcome is awaited); resolves to the version
    /// that contains it once it is applied here.
    fn replicate(
        &self,
        name: &'static str,
        op: K::Op,
        ticket: Option<Ticket>,
    ) -> impl Future<Output = Result<Version, Error>> + Send + 'static {
        let slot = self.slot.clone();
        async move {
            let group = joined(slot, K::NAME, name).await?;
            group
                .execute(Command::Op { op, ticket })
                .await
                .map(Version)
                .map_err(|source| Error::Group {
                    kind: K::NAME,
                    op: name,
                    source,
                })
        }
    }
}

/// The group once joined (waiting while the join is deferred).
async fn joined<M: StateMachine>(
    mut slot: watch::Receiver<Joined<M>>,
    kind: &'static str,
    op: &'static str,
) -> Result<Group<M>, Error> {
    let stopped = |cause: StopCause| Error::Group {
        kind,
        op,
        source: GroupError::Stopped { cause },
    };
    loop {
        match &*slot.borrow_and_update() {
            Joined::Ready(group) => return Ok(group.clone()),
            Joined::Failed(reason) => return Err(stopped(StopCause::NotStarted(reason.clone()))),
            Joined::Pending => {}
        }
        if slot.changed().await.is_err() {
            // The join task ended without a result: the collection was dropped meanwhile.
            return Err(stopped(StopCause::Ended));
        }
    }
}

impl<K: Kind> Drop for Handle<K> {
    /// The group stops once this handle (its last one) is gone; until it has, the node
    /// remembers it so a reopen of the same collection waits for it instead of failing.
    fn drop(&mut self) {
        reopen::dropping(self.me, self.group, when::stopped(self.when.stage()));
    }
}
