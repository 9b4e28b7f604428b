//! What users plug into a group: the replicated [`StateMachine`], the [`ApplyContext`] it
//! sees while applying, and [`StateSync`] (catch-up of lagging followers) with its
//! provider, session and context traits. Names and shapes follow the seed API (mosaik
//! 0.3); departures are noted where they are.
//!
//! These traits are typed; the consensus core ([`super::raft`]) below them works on bytes.
//! The worker encodes commands with [`crate::primitives::codec`] before proposing and
//! decodes committed entries before calling [`StateMachine::apply_batch`].
//!
//! # Fast-forward after a state sync
//!
//! A session that installed state up to a position calls
//! [`SyncSessionContext::set_committed`]; the worker maps that to
//! [`super::raft::Node::on_state_synced`], which resets the log to an empty one anchored at
//! that position (one `Ready` with `reset_to`), raises the commit and applied indices to it,
//! and resumes normal replication from there.

mod noop;
mod restore;

pub use noop::NoOp;
pub use restore::{RestoreError, Restored};

use crate::groups::command::Command as CommandBound;
use crate::groups::raft::{Entry, Membership};
use crate::groups::{Cursor, Index, LocalStorage, Storage, Term};
use crate::primitives::codec::EncodeError;
use crate::{GroupId, PeerId, UniqueId};
use serde::{de::DeserializeOwned, Serialize};
use std::task::{Context, Poll};

/// How eager a node is to lead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LeadershipPreference {
    /// Campaigns with the configured election timeout.
    #[default]
    Normal,
    /// Campaigns only after three times the election timeout, so others usually win.
    Reluctant,
    /// Never campaigns and is never promoted: a learner for good (collection readers).
    Observer,
}

/// What a state machine may learn about the group while it applies commands.
pub trait ApplyContext {
    /// The position of the last entry of the batch being applied (committed).
    fn committed(&self) -> Cursor;
    /// The node's current term.
    fn current_term(&self) -> Term;
    /// The group.
    fn group_id(&self) -> GroupId;
    /// The network the group lives in.
    fn network_id(&self) -> UniqueId;
    /// This node.
    fn local_id(&self) -> PeerId;
    /// The log index of each command of the batch, in order (tessera addition: a machine
    /// that records per-command revisions needs them, and a batch skips no-op and
    /// configuration entries, so the indices are not contiguous). Empty when the caller
    /// does not tell.
    fn indices(&self) -> &[Index] {
        &[]
    }
}

/// The application's replicated state. Every member applies the same commands in the
/// same order, so every member holds the same state at the same index.
pub trait StateMachine: Sized + Send + Sync + 'static {
    /// A state transition, replicated through the log.
    type Command: CommandBound;
    /// A read of the state.
    type Query: CommandBound;
    /// What a query returns.
    type QueryResult: CommandBound;
    /// How lagging followers catch up.
    type StateSync: StateSync<Machine = Self>;

    /// Identifies the implementation and its settings; part of the group id.
    fn signature(&self) -> UniqueId;

    /// Applies one committed command.
    fn apply(&mut self, command: Self::Command, ctx: &dyn ApplyContext);

    /// Applies committed commands in order; override to amortise per-batch work.
    fn apply_batch(
        &mut self,
        commands: impl IntoIterator<Item = Self::Command>,
        ctx: &dyn ApplyContext,
    ) {
        for command in commands {
            self.apply(command, ctx);
        }
    }

    /// Answers a query from the local state.
    fn query(&self, query: Self::Query) -> Self::QueryResult;

    /// The catch-up implementation.
    fn state_sync(&self) -> Self::StateSync;

    /// How eager this node is to lead.
    fn leadership_preference(&self) -> LeadershipPreference {
        LeadershipPreference::Normal
    }
}

/// Read consistency of a query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable: served once the node has applied a read index the leader confirmed
    /// with a majority (§6.4).
    #[default]
    Strong,
    /// Whatever the local state holds now, without asking anyone: fast, but it may be
    /// behind. A follower learns that an entry is committed from the leader's next message:
    /// right after the commit when it has nothing else to receive (the leader sends idle
    /// followers the new commit index at once), else with the next append. So a weak read
    /// on a follower right after a write acknowledged elsewhere may still return the old
    /// value for about one round trip (longer on a follower that is behind or cut off:
    /// a weak read never waits and never fails for lack of a leader).
    Weak,
}

/// Marker for state-sync wire messages.
pub trait StateSyncMessage: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T> StateSyncMessage for T where T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}

/// The state machine a sync implementation serves.
pub type Machine<S> = <S as StateSync>::Machine;
/// The sync implementation's wire message.
pub type Message<S> = <S as StateSync>::Message;
/// The command type of the served state machine.
pub type Command<S> = <Machine<S> as StateMachine>::Command;
/// The session type.
pub type Session<S> = <S as StateSync>::Session;
/// The provider type.
pub type Provider<S> = <S as StateSync>::Provider;

/// Catch-up of followers that are behind: a factory of a long-lived provider (every peer)
/// and short-lived sessions (a lagging follower).
pub trait StateSync: Send + 'static {
    /// The state machine this serves.
    type Machine: StateMachine;
    /// The wire message between sessions and providers.
    type Message: StateSyncMessage;
    /// Serves state to sessions; one per peer for the group's lifetime.
    type Provider: StateSyncProvider<Owner = Self>;
    /// Drives one catch-up on a lagging follower.
    type Session: StateSyncSession<Owner = Self>;

    /// Identifies the implementation and its settings; part of the group id.
    fn signature(&self) -> UniqueId;

    /// Creates this peer's provider, once, at group start.
    fn create_provider(&self, cx: &dyn SyncContext<Self>) -> Self::Provider;

    /// Creates a session when a follower receives entries that do not follow its log:
    /// `position` is the leader's entry before them, `leader_commit` the leader's commit
    /// index, `entries` the batch that revealed the gap (to buffer).
    ///
    /// Departure from the seed: entries are the log's raw [`Entry`] values (the log also
    /// holds no-op and configuration entries, which a catch-up must carry too), not
    /// `(Command, Term)` pairs.
    fn create_session(
        &self,
        cx: &mut dyn SyncSessionContext<Self>,
        position: Cursor,
        leader_commit: Index,
        entries: Vec<Entry>,
    ) -> Self::Session;

    /// Whether `command` ends an apply batch: the worker applies it last in its batch and
    /// then calls [`StateSyncProvider::barrier_applied`] with its position, so the state
    /// after it can be captured at exactly its index on every node (tessera addition: the
    /// snapshot markers of [`crate::groups::snapshot::SnapshotSync`]).
    fn is_barrier(&self, _command: &Command<Self>) -> bool {
        false
    }

    /// Whether the leader sends a follower far behind (more than the core's
    /// `replay_threshold` entries) to a catch-up session even while its log still holds
    /// what the follower lacks (tessera addition). Yes for log replay, which spreads that
    /// load over the peers. Snapshot sync says no: its session installs a snapshot, and a
    /// follower whose transfer took long enough for the writes to put it that far behind
    /// again would be sent for another snapshot after each install, without end; it is
    /// streamed the log kept for it instead (see the snapshot module's `retention.rs`).
    fn sessions_while_log_holds(&self) -> bool {
        true
    }

    /// Called once when the group is built, before anything else: where the group keeps
    /// what it stores besides its log (tessera addition). Providers and sessions are
    /// created from this instance, so they see it. The default keeps nothing.
    fn attach(&mut self, _local: &LocalStorage) {}

    /// Called once when the group starts, after [`StateSync::attach`] and before the
    /// consensus core is built: restores the newest local state (a snapshot) into
    /// `machine` so that only the log after it is replayed (tessera addition). Blocking;
    /// the default restores nothing. An error stops the group from starting
    /// ([`crate::groups::JoinError::Recovery`]).
    fn restore(
        &self,
        _machine: &mut Self::Machine,
        _group: GroupId,
    ) -> Result<Restored, RestoreError> {
        Ok(Restored::Nothing)
    }
}

/// Serves state to sessions of lagging followers.
pub trait StateSyncProvider: Send + 'static {
    /// The sync implementation.
    type Owner: StateSync;

    /// Background work on every scheduler tick; `Ready` asks to be polled again at once.
    fn poll(
        &mut self,
        _: &mut Context<'_>,
        _: &mut dyn SyncProviderContext<Self::Owner>,
    ) -> Poll<()> {
        Poll::Pending
    }

    /// A message from a session; an answer that could not be handled comes back as `Err`.
    fn receive(
        &mut self,
        message: Message<Self::Owner>,
        sender: PeerId,
        cx: &mut dyn SyncProviderContext<Self::Owner>,
    ) -> Result<(), Message<Self::Owner>>;

    /// The index up to which the log may be pruned (never above the commit index).
    fn safe_to_prune_prefix(&self, _: &mut dyn SyncProviderContext<Self::Owner>) -> Option<Index> {
        None
    }

    /// The commit index advanced to `position`.
    fn committed(&mut self, _: Cursor, _: &mut dyn SyncProviderContext<Self::Owner>) {}

    /// A barrier command ([`StateSync::is_barrier`]) at `position` was just applied: the
    /// state machine holds the state at exactly `position` (tessera addition).
    fn barrier_applied(&mut self, _: Cursor, _: &mut dyn SyncProviderContext<Self::Owner>) {}

    /// A session on this node installed state at `position` (it called
    /// [`SyncSessionContext::set_committed`]): the provider may serve that state from now
    /// on (tessera addition; the worker tells the provider, so the two share no state).
    fn installed(&mut self, _: Cursor, _: &mut dyn SyncProviderContext<Self::Owner>) {}
}

/// One catch-up episode on a lagging follower.
pub trait StateSyncSession: Send + 'static {
    /// The sync implementation.
    type Owner: StateSync;

    /// Drives the session; `Ready(position)` once the follower holds the state up to
    /// `position` (it then calls `set_committed` or the worker fast-forwards for it).
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        driver: &mut dyn SyncSessionContext<Self::Owner>,
    ) -> Poll<Cursor>;

    /// A message from a provider.
    fn receive(
        &mut self,
        message: Message<Self::Owner>,
        sender: PeerId,
        cx: &mut dyn SyncSessionContext<Self::Owner>,
    );

    /// Entries the leader sent while the session runs, following the gap (raw entries, as
    /// in [`StateSync::create_session`]).
    fn buffer(
        &mut self,
        position: Cursor,
        entries: Vec<Entry>,
        cx: &mut dyn SyncSessionContext<Self::Owner>,
    );
}

/// What providers and sessions may see and do.
///
/// Departure from the seed: `log` exposes the fallible, durable [`Storage`] of the
/// raw log ([`Payload`]: commands, no-ops and configuration entries), not a typed view of
/// commands only; `network_id` is a [`UniqueId`]; the seed's `bonds()` belongs to the
/// network layer and is not part of this trait.
pub trait SyncContext<S: StateSync> {
    /// The state machine.
    fn state_machine(&self) -> &S::Machine;
    /// The state machine, mutably (to install state).
    fn state_machine_mut(&mut self) -> &mut S::Machine;
    /// The raw log (read it; writes go through the consensus core, see
    /// [`SyncSessionContext::append_committed`]).
    fn log(&self) -> &dyn Storage;
    /// The latest committed position.
    fn committed(&self) -> Cursor;
    /// This node.
    fn local_id(&self) -> PeerId;
    /// The group.
    fn group_id(&self) -> GroupId;
    /// The network.
    fn network_id(&self) -> UniqueId;
    /// Sends a message to one peer.
    fn send_to(&mut self, peer: PeerId, message: S::Message) -> Result<(), EncodeError>;
    /// Sends a message to every bonded peer; returns who it went to.
    fn broadcast(&mut self, message: S::Message) -> Result<Vec<PeerId>, EncodeError>;
    /// The bonded peers (tessera addition; the seed has it on the network's bonds).
    fn peers(&self) -> Vec<PeerId>;
    /// The group's configuration as of the last applied entry (tessera addition: a
    /// snapshot records it, so a log pruned past every configuration entry loses nothing).
    fn applied_membership(&self) -> &Membership;
    /// Payload bytes of the commands applied since this node started (tessera addition:
    /// snapshot markers every N bytes).
    fn applied_bytes(&self) -> u64;
}

/// What a session on a lagging follower may additionally do.
pub trait SyncSessionContext<S: StateSync>: SyncContext<S> {
    /// The leader (always known when a session starts).
    fn leader(&self) -> PeerId;
    /// The position of local state found damaged at start ([`Restored::Damaged`]), while
    /// it is not yet installed again: the session fetches exactly that state before
    /// anything is applied (tessera addition). `None` in a normal catch-up.
    fn repairing(&self) -> Option<Cursor>;
    /// Fast-forwards the committed index to `position` after installing state there.
    fn set_committed(&mut self, position: Cursor);
    /// Hands entries a provider reported committed to the consensus core, which appends
    /// them after this node's committed prefix (tessera addition, used by log replay:
    /// writing the log behind the core's back would desynchronise it).
    fn append_committed(&mut self, entries: Vec<Entry>, committed: Index);
    /// The configuration in force at the position given to `set_committed` (tessera
    /// addition: a snapshot carries it; without it the node keeps its current one).
    fn set_synced_membership(&mut self, membership: Membership);
}

/// What a provider may additionally do.
pub trait SyncProviderContext<S: StateSync>: SyncContext<S> {
    /// The leader, if known.
    fn leader(&self) -> Option<PeerId>;
    /// Whether this node leads.
    fn is_leader(&self) -> bool {
        self.leader() == Some(self.local_id())
    }
    /// Proposes a command (leader only, best effort; e.g. snapshot markers).
    fn feed_command(&mut self, command: Command<S>) -> Result<(), Command<S>>;
    /// The highest commit index a leader announced to this node (tessera addition: a
    /// provider on a member that installed state tells how far behind it still is).
    fn leader_commit(&self) -> Index {
        self.committed().index()
    }
    /// Sends a message to every bonded peer's *provider* (tessera addition: `send_to` and
    /// `broadcast` from a provider reach sessions; a member streaming the log after an
    /// install asks its peers' providers to keep it, see `SnapshotMessage::Keep`).
    fn broadcast_to_providers(&mut self, message: S::Message) -> Result<Vec<PeerId>, EncodeError>;
}
