//! A group's live links, one per peer: where the worker sends frames.
//!
//! Sending never waits: a frame goes into the link's bounded outbound channel with
//! `try_send`. When that channel is full (the peer or the network is slower than we
//! produce), the frame is dropped and counted. Every frame the group sends tolerates loss:
//! Raft retransmits (heartbeats, probes), hellos repeat every heartbeat interval, and
//! state-sync sessions time out and re-ask. Waiting instead would let one slow peer stall
//! the whole group.

use super::wire::{GroupFrame, Hello};
use crate::network::{LinkSender, TrySendError};
use crate::primitives::codec;
use crate::PeerId;
use std::collections::BTreeMap;

/// One live link.
pub(crate) struct Bond {
    /// Which link (a newer link to the same peer replaces this one).
    pub(crate) link_id: u64,
    sender: LinkSender,
    /// The peer's latest announcement.
    pub(crate) hello: Option<Hello>,
}

/// The group's live links.
#[derive(Default)]
pub(crate) struct Bonds {
    links: BTreeMap<PeerId, Bond>,
    /// Frames dropped because a link's outbound channel was full.
    pub(crate) dropped_full: u64,
}

impl Bonds {
    /// Records a new link to `peer`, replacing an older one.
    pub(crate) fn insert(&mut self, peer: PeerId, link_id: u64, sender: LinkSender) {
        self.links.insert(
            peer,
            Bond {
                link_id,
                sender,
                hello: None,
            },
        );
    }

    /// The link `link_id` to `peer` closed; returns whether it was the current one.
    pub(crate) fn closed(&mut self, peer: &PeerId, link_id: u64) -> bool {
        if self.links.get(peer).is_some_and(|b| b.link_id == link_id) {
            self.links.remove(peer);
            true
        } else {
            false
        }
    }

    pub(crate) fn get(&self, peer: &PeerId) -> Option<&Bond> {
        self.links.get(peer)
    }

    pub(crate) fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Bond> {
        self.links.get_mut(peer)
    }

    /// The bonded peers, in id order.
    pub(crate) fn peers(&self) -> Vec<PeerId> {
        self.links.keys().copied().collect()
    }

    /// Bonded peers with their latest hello.
    pub(crate) fn hellos(&self) -> impl Iterator<Item = (&PeerId, &Hello)> {
        self.links
            .iter()
            .filter_map(|(p, b)| b.hello.as_ref().map(|h| (p, h)))
    }

    /// Sends one frame to `peer`; false when there is no link or the frame was dropped.
    pub(crate) fn send(&mut self, peer: PeerId, frame: &GroupFrame) -> bool {
        let Some(bond) = self.links.get(&peer) else {
            return false;
        };
        let bytes = match codec::encode(frame) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(%err, "cannot encode a group frame; dropped");
                return false;
            }
        };
        self.send_bytes(peer, bond.sender.clone(), bytes)
    }

    /// Sends already encoded bytes.
    fn send_bytes(&mut self, peer: PeerId, sender: LinkSender, bytes: Vec<u8>) -> bool {
        match sender.try_send(bytes) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped_full += 1;
                tracing::debug!(peer = %crate::primitives::Short(&peer), "link full, frame dropped");
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Sends one frame to every bonded peer; returns who it went to.
    pub(crate) fn broadcast(&mut self, frame: &GroupFrame) -> Vec<PeerId> {
        let bytes = match codec::encode(frame) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(%err, "cannot encode a group frame; dropped");
                return Vec::new();
            }
        };
        let targets: Vec<(PeerId, LinkSender)> = self
            .links
            .iter()
            .map(|(p, b)| (*p, b.sender.clone()))
            .collect();
        targets
            .into_iter()
            .filter(|(p, s)| self.send_bytes(*p, s.clone(), bytes.clone()))
            .map(|(p, _)| p)
            .collect()
    }
}
