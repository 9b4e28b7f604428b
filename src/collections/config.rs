//! `CollectionConfig`: the consensus timing, snapshot policy, access control and type tag
//! of one collection.
//!
//! Every member of a collection's group must use the same settings: the consensus fields
//! members share, the snapshot marker spacing and chunking, the ticket validators and the
//! type tag are all part of the group id, so members that differ in any of them form
//! different groups and never see each other's writes.

use crate::groups::snapshot::SnapshotConfig;
use crate::groups::ConsensusConfig;
use crate::network::{TicketError, TicketValidator};
use crate::{PeerId, UniqueId};
use std::fmt;
use std::sync::Arc;

/// Settings of one collection (see the module docs: members must agree on them).
#[derive(Clone, Default)]
pub struct CollectionConfig {
    /// Timing and membership of the collection's consensus group (`bootstrap_expect`
    /// writers found it).
    pub consensus: ConsensusConfig,
    /// When snapshots are cut and how much log is kept behind them.
    pub sync: SnapshotConfig,
    /// Replaces the value type names in the group key (see [`Self::with_type_tag`]).
    pub type_tag: Option<String>,
    /// Peers must present a ticket every one of these accepts.
    pub auth: Vec<Arc<dyn TicketValidator>>,
    /// The ticket this node presents to peers.
    pub ticket: Vec<u8>,
}

impl CollectionConfig {
    /// Sets the consensus settings.
    pub fn with_consensus(mut self, consensus: ConsensusConfig) -> Self {
        self.consensus = consensus;
        self
    }

    /// Sets the snapshot policy.
    pub fn with_sync(mut self, sync: SnapshotConfig) -> Self {
        self.sync = sync;
        self
    }

    /// Names the value types with a tag of your own instead of their Rust type names.
    ///
    /// By default the group key includes `std::any::type_name` of the value types, so two
    /// collections with the same store id but different types never share a group. The
    /// compiler does not promise those names stay the same across toolchain versions: a
    /// node rebuilt with a toolchain that names a type differently derives another group
    /// and no longer sees its stored state. Deployments that must survive such upgrades set
    /// a stable tag (e.g. `"user-profile/v1"`) and change it only when the types change.
    pub fn with_type_tag(mut self, tag: impl Into<String>) -> Self {
        self.type_tag = Some(tag.into());
        self
    }

    /// Peers must present a ticket `validator` accepts (several calls require all).
    pub fn require_ticket(mut self, validator: impl TicketValidator) -> Self {
        self.auth.push(Arc::new(validator));
        self
    }

    /// The ticket this node presents to peers.
    pub fn with_ticket(mut self, ticket: impl Into<Vec<u8>>) -> Self {
        self.ticket = ticket.into();
        self
    }
}

impl From<ConsensusConfig> for CollectionConfig {
    fn from(consensus: ConsensusConfig) -> Self {
        CollectionConfig::default().with_consensus(consensus)
    }
}

impl From<SnapshotConfig> for CollectionConfig {
    fn from(sync: SnapshotConfig) -> Self {
        CollectionConfig::default().with_sync(sync)
    }
}

impl fmt::Debug for CollectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectionConfig")
            .field("consensus", &self.consensus)
            .field("sync", &self.sync)
            .field("type_tag", &self.type_tag)
            .field("auth", &self.auth.len())
            .field("ticket", &self.ticket.len())
            .finish()
    }
}

/// A shared validator handed to the group builder (which takes validators by value).
pub(crate) struct SharedValidator(pub(crate) Arc<dyn TicketValidator>);

impl TicketValidator for SharedValidator {
    fn validate(&self, peer: PeerId, ticket: &[u8]) -> Result<(), TicketError> {
        self.0.validate(peer, ticket)
    }

    fn signature(&self) -> UniqueId {
        self.0.signature()
    }
}
