//! The worker's side of the `StateSync` contexts: what providers and sessions see (state
//! machine, log, positions, ids) and what they may do (send, fast-forward, hand replayed
//! entries to the core, feed commands), collected as [`SyncOutputs`] the worker carries out
//! after the call returns.

use super::bonds::Bonds;
use super::machine::{
    Command, StateMachine, StateSync, SyncContext, SyncProviderContext, SyncSessionContext,
};
use super::raft::{Entry, Membership};
use super::wire::GroupFrame;
use super::{Cursor, Index, Storage};
use crate::primitives::codec::{self, EncodeError};
use crate::primitives::Bytes;
use crate::{GroupId, PeerId, UniqueId};

/// What a provider or session asked the worker to do.
#[derive(Default)]
pub(crate) struct SyncOutputs {
    /// Committed entries for `Node::on_replayed`, with the provider's commit index.
    pub(crate) replayed: Vec<(Vec<Entry>, Index)>,
    /// State installed up to this position (`set_committed`); the worker fast-forwards
    /// the core and then tells the provider (`StateSyncProvider::installed`).
    pub(crate) synced: Option<Cursor>,
    /// Encoded commands to propose (`feed_command`).
    pub(crate) feed: Vec<Vec<u8>>,
    /// The configuration at `synced` (`set_synced_membership`).
    pub(crate) synced_membership: Option<Membership>,
}

/// Which side is calling: it decides the frame kind of what it sends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Provider,
    Session,
}

/// The context handed to a provider or session for one call.
pub(crate) struct Cx<'a, M: StateMachine, S: Storage> {
    pub(crate) side: Side,
    pub(crate) machine: &'a mut M,
    pub(crate) store: &'a S,
    pub(crate) bonds: &'a mut Bonds,
    pub(crate) committed: Cursor,
    /// The highest commit index a leader announced to this node (its own on a leader).
    pub(crate) leader_commit: Index,
    pub(crate) me: PeerId,
    pub(crate) group: GroupId,
    pub(crate) network: UniqueId,
    pub(crate) leader: Option<PeerId>,
    pub(crate) applied_membership: &'a Membership,
    pub(crate) applied_bytes: u64,
    /// Local state found damaged at start and not yet installed again.
    pub(crate) repairing: Option<Cursor>,
    pub(crate) out: &'a mut SyncOutputs,
}

impl<M: StateMachine, S: Storage> Cx<'_, M, S> {
    fn frame(
        &self,
        message: &<M::StateSync as StateSync>::Message,
    ) -> Result<GroupFrame, EncodeError> {
        let bytes = codec::encode(message)?;
        Ok(match self.side {
            Side::Provider => GroupFrame::ToSession(Bytes(bytes)),
            Side::Session => GroupFrame::ToProvider(Bytes(bytes)),
        })
    }
}

impl<M: StateMachine, S: Storage> SyncContext<M::StateSync> for Cx<'_, M, S> {
    fn state_machine(&self) -> &M {
        self.machine
    }

    fn state_machine_mut(&mut self) -> &mut M {
        self.machine
    }

    fn log(&self) -> &dyn Storage {
        self.store
    }

    fn committed(&self) -> Cursor {
        self.committed
    }

    fn local_id(&self) -> PeerId {
        self.me
    }

    fn group_id(&self) -> GroupId {
        self.group
    }

    fn network_id(&self) -> UniqueId {
        self.network
    }

    fn send_to(
        &mut self,
        peer: PeerId,
        message: <M::StateSync as StateSync>::Message,
    ) -> Result<(), EncodeError> {
        let frame = self.frame(&message)?;
        self.bonds.send(peer, &frame);
        Ok(())
    }

    fn broadcast(
        &mut self,
        message: <M::StateSync as StateSync>::Message,
    ) -> Result<Vec<PeerId>, EncodeError> {
        let frame = self.frame(&message)?;
        Ok(self.bonds.broadcast(&frame))
    }

    fn peers(&self) -> Vec<PeerId> {
        self.bonds.peers()
    }

    fn applied_membership(&self) -> &Membership {
        self.applied_membership
    }

    fn applied_bytes(&self) -> u64 {
        self.applied_bytes
    }
}

impl<M: StateMachine, S: Storage> SyncSessionContext<M::StateSync> for Cx<'_, M, S> {
    fn leader(&self) -> PeerId {
        self.leader.unwrap_or(self.me)
    }

    fn repairing(&self) -> Option<Cursor> {
        self.repairing
    }

    fn set_committed(&mut self, position: Cursor) {
        self.out.synced = Some(position);
    }

    fn append_committed(&mut self, entries: Vec<Entry>, committed: Index) {
        self.out.replayed.push((entries, committed));
    }

    fn set_synced_membership(&mut self, membership: Membership) {
        self.out.synced_membership = Some(membership);
    }
}

impl<M: StateMachine, S: Storage> SyncProviderContext<M::StateSync> for Cx<'_, M, S> {
    fn leader(&self) -> Option<PeerId> {
        self.leader
    }

    fn feed_command(
        &mut self,
        command: Command<M::StateSync>,
    ) -> Result<(), Command<M::StateSync>> {
        match codec::encode(&command) {
            Ok(bytes) => {
                self.out.feed.push(bytes);
                Ok(())
            }
            Err(_) => Err(command),
        }
    }

    fn leader_commit(&self) -> Index {
        self.leader_commit.max(self.committed.index())
    }

    fn broadcast_to_providers(
        &mut self,
        message: <M::StateSync as StateSync>::Message,
    ) -> Result<Vec<PeerId>, EncodeError> {
        let frame = GroupFrame::ToProvider(Bytes(codec::encode(&message)?));
        Ok(self.bonds.broadcast(&frame))
    }
}
