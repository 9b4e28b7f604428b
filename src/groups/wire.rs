//! What a group's links carry: one enum, encoded with the one codec into each link frame.
//!
//! The link layer already framed, versioned and capped the bytes; this layer decodes them
//! into a [`GroupFrame`]. A frame that does not decode closes nothing by itself: the worker
//! drops it with a logged reason and counts it (a peer running another version sends
//! frames we cannot read; it still hears our heartbeats' effects).

use super::raft::{ClusterId, Message};
use super::Cursor;
use crate::primitives::Bytes;
use crate::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One frame on a group link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupFrame {
    /// Consensus traffic for the core.
    Raft(Message),
    /// State-sync traffic from a session to this node's provider.
    ToProvider(Bytes),
    /// State-sync traffic from a provider to this node's session.
    ToSession(Bytes),
    /// Who the sender is in the group, sent on every new link and every heartbeat
    /// interval: drives group formation and the leader's adding of new members.
    Hello(Hello),
}

/// A member's announcement (see [`super::formation`]), sent first on every new link and
/// then every heartbeat interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender has no state yet (term 0, empty log): it may found the group.
    pub fresh: bool,
    /// The sender never votes or leads (a reader).
    pub observer: bool,
    /// The founding the sender proposes, once it sees enough fresh peers.
    pub proposal: Option<Proposal>,
    /// The sender's formation nonce (random per start); founders derive the cluster id
    /// from theirs.
    pub nonce: u64,
    /// The founding the sender belongs to, once it has one: a peer of another founding of
    /// the same group id is refused (see the worker).
    pub cluster: Option<ClusterId>,
    /// The sender's state incarnation, random per start: when it changes, the sender
    /// restarted and may have lost what it held, and a leader stops trusting what it knew
    /// of the sender's log.
    pub state: u64,
    /// The last entry the sender holds durably.
    pub durable: Cursor,
    /// Where clients reach the sender (a `tessera node`: its HTTP URL), for member lists;
    /// at most [`MAX_CONTACT_BYTES`](super::roster::MAX_CONTACT_BYTES), else ignored.
    pub contact: Option<String>,
}

/// A founding a fresh peer proposes: the voters and the cluster id they would have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The founding voters.
    pub voters: BTreeSet<PeerId>,
    /// The cluster id of this founding.
    pub cluster: ClusterId,
}
