//! A group's side of the network: what it needs to bond ([`GroupAccess`]), what the
//! network keeps for each joined group, and the handle that dials, keeps bonds and
//! receives the group's new links ([`GroupLinks`]).

use super::dial::{dial, maintain};
use super::error::BondError;
use super::handshake::LinkKey;
use super::link::{Link, LinkConfig};
use super::network::{guard, Inner};
use super::peer_addr::PeerAddr;
use super::ticket::TicketValidator;
use crate::primitives::{GroupId, PeerId};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// What a group needs to bond: its id, key, ticket and link settings.
#[derive(Clone)]
pub struct GroupAccess {
    pub(super) group: GroupId,
    pub(super) key: LinkKey,
    pub(super) ticket: Vec<u8>,
    pub(super) validator: Option<Arc<dyn TicketValidator>>,
    pub(super) link: LinkConfig,
}

impl GroupAccess {
    /// Access to `group` with the link key derived from its group key.
    pub fn new(group: GroupId, key: LinkKey) -> Self {
        Self {
            group,
            key,
            ticket: Vec::new(),
            validator: None,
            link: LinkConfig::default(),
        }
    }

    /// The ticket this node presents to peers of the group, until renewed with
    /// [`Network::renew_ticket`].
    pub fn with_ticket(mut self, ticket: Vec<u8>) -> Self {
        self.ticket = ticket;
        self
    }

    /// Require peers' tickets to pass `validator`.
    pub fn require_ticket(mut self, validator: impl TicketValidator) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// Channel capacities and ticket re-checks of the group's links (heartbeats are per
    /// connection, set on the [`NetworkBuilder`](super::NetworkBuilder)).
    pub fn with_link_config(mut self, config: LinkConfig) -> Self {
        self.link = config;
        self
    }
}

impl std::fmt::Debug for GroupAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAccess")
            .field("group", &self.group)
            .field("ticket_len", &self.ticket.len())
            .field("requires_ticket", &self.validator.is_some())
            .field("link", &self.link)
            .finish()
    }
}

/// What the network keeps for a joined group.
pub(super) struct GroupEntry {
    pub(super) access: Arc<GroupAccess>,
    pub(super) links: mpsc::Sender<Link>,
    /// Peers whose last answer to a dial was "I do not host this group".
    pub(super) absent: Arc<Mutex<BTreeSet<PeerId>>>,
    /// The ticket this node presents to the group now (the access's until renewed); each
    /// link subscribes before its handshake and sends every renewal to its peer.
    pub(super) ticket: watch::Sender<Vec<u8>>,
}

/// A joined group's side of the network: dial peers, keep bonds, receive new links.
pub struct GroupLinks {
    pub(super) inner: Arc<Inner>,
    pub(super) group: GroupId,
    pub(super) incoming: mpsc::Receiver<Link>,
    pub(super) cancel: CancellationToken,
    pub(super) absent: Arc<Mutex<BTreeSet<PeerId>>>,
}

impl std::fmt::Debug for GroupLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLinks")
            .field("group", &self.group)
            .field("local", &self.inner.local)
            .finish()
    }
}

impl GroupLinks {
    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Maintained peers whose last answer to a dial was that they do not host this group
    /// (they cannot hold it now; a fresh group may form without them).
    pub fn absent(&self) -> BTreeSet<PeerId> {
        guard(&self.absent).clone()
    }

    /// Dials `peer` at its known address and runs the handshake; the link is returned
    /// here (not through [`next_link`](Self::next_link)).
    pub async fn connect(&self, peer: PeerId) -> Result<Link, BondError> {
        let addr = guard(&self.inner.peers)
            .get(&peer)
            .ok_or(BondError::UnknownPeer { peer })?;
        self.connect_addr(addr).await
    }

    /// Dials `addr` and runs the handshake; on success the address is remembered.
    pub async fn connect_addr(&self, addr: PeerAddr) -> Result<Link, BondError> {
        let access = self.access()?;
        dial(&self.inner, &access, addr).await
    }

    /// Keeps a link to `peer` up until the group is left: dials now, and redials with
    /// back-off after a failure or a close. The links come out of
    /// [`next_link`](Self::next_link).
    pub fn maintain(&self, peer: PeerId) {
        let inner = self.inner.clone();
        let group = self.group;
        let cancel = self.cancel.clone();
        self.inner.tasks.spawn(async move {
            cancel
                .run_until_cancelled(maintain(inner, group, peer))
                .await;
        });
    }

    /// The next link of this group (accepted, or made by a maintained bond); `None` after
    /// the network shut down. Links to one peer may come out of the order they replaced
    /// each other in (a duplicate that lost may come after its winner): the one with the
    /// larger [`Link::id`] is the live one.
    pub async fn next_link(&mut self) -> Option<Link> {
        tokio::select! {
            link = self.incoming.recv() => link,
            _ = self.cancel.cancelled() => None,
        }
    }

    fn access(&self) -> Result<Arc<GroupAccess>, BondError> {
        guard(&self.inner.groups)
            .get(&self.group)
            .map(|g| g.access.clone())
            .ok_or(BondError::Shutdown)
    }
}

impl Drop for GroupLinks {
    fn drop(&mut self) {
        self.cancel.cancel();
        guard(&self.inner.groups).remove(&self.group);
        guard(&self.inner.refusals).left(self.group);
    }
}
