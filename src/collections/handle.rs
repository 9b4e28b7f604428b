//! `Handle<K>`: what every collection wraps — its group, the published state, the
//! outcomes of its writes, its snapshot counters and its [`When`].

use super::config::SharedValidator;
use super::machine::{Command, Kind, Machine};
use super::replies::{Replies, Ticket};
use super::{CollectionConfig, Error, StoreId, Version, When};
use crate::groups::snapshot::SnapshotStats;
use crate::groups::{Group, GroupBuilder, GroupKey, GroupStatus};
use crate::network::Network;
use crate::primitives::Digest;
use crate::GroupId;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// One open collection of kind `K` on this node.
pub(crate) struct Handle<K: Kind> {
    group: Group<Machine<K>>,
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
        let replies = Replies::new(network.peer_id(), first);
        let machine = Machine::new(kind, writer, config.sync, replies.clone());
        let state = machine.subscribe();
        let changes = machine.subscribe_changes();
        let stats = machine.snapshot_stats();
        let mut builder = GroupBuilder::new(network)
            .with_key(key)
            .with_consensus_config(config.consensus)
            .with_ticket(config.ticket)
            .with_state_machine(machine);
        for validator in config.auth {
            builder = builder.require_ticket(SharedValidator(validator));
        }
        let group = builder.join().map_err(|source| Error::Open {
            kind: K::NAME,
            store,
            source: Box::new(source),
        })?;
        let when = When::new(K::NAME, group.when(), changes);
        Ok(Handle {
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

    /// The committed index this node's state reflects.
    pub(crate) fn version(&self) -> Version {
        Version(self.group.log_position().1)
    }

    pub(crate) fn group_id(&self) -> GroupId {
        self.group.id()
    }

    pub(crate) fn status(&self) -> GroupStatus {
        self.group.status()
    }

    pub(crate) fn snapshot_stats(&self) -> Arc<SnapshotStats> {
        self.stats.clone()
    }

    pub(crate) fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        let group = self.group.clone();
        async move { group.shutdown().await }
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
        let group = self.group.clone();
        async move {
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
