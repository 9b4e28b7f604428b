//! A group's live links, one per peer: where the worker sends frames.
//!
//! Sending never waits: a frame goes into the link's bounded outbound channel with
//! `try_send`. When that channel is full (the peer or the network is slower than we
//! produce), the frame is dropped and counted. Every frame the group sends tolerates loss:
//! Raft retransmits (heartbeats, probes), hellos repeat every heartbeat interval, and
//! state-sync sessions time out and re-ask. Waiting instead would let one slow peer stall
//! the whole group.

use super::raft::{AppendIdentity, Message};
use super::wire::{GroupFrame, Hello};
use crate::network::{LinkSender, TrySendError};
use crate::primitives::codec::{self, EncodeError};
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
    /// The last append encoded, reused for the next follower it goes to.
    appends: AppendFrames,
    /// Frames and bytes sent per peer.
    pub(crate) sent: super::metrics::PeerTraffic,
}

/// The bytes of the last `AppendEntries` frame encoded, kept so the same append sent to
/// several followers in step (the common case: one batch to every follower) is encoded
/// once, not once per follower. Appends are compared by [`AppendIdentity`], which costs
/// nothing however many entries they carry.
#[derive(Default)]
pub(crate) struct AppendFrames {
    last: Option<(AppendIdentity, Vec<u8>)>,
    /// Appends encoded.
    pub(crate) encoded: u64,
    /// Appends sent from the bytes of the one before.
    pub(crate) reused: u64,
}

impl AppendFrames {
    /// The frame bytes of `message`, encoded unless it is the append encoded last.
    pub(crate) fn frame(&mut self, message: Message) -> Result<Vec<u8>, EncodeError> {
        let identity = match &message {
            Message::AppendEntries(append) => append.identity(),
            _ => return codec::encode(&GroupFrame::Raft(message)),
        };
        if let Some((last, bytes)) = &self.last {
            if *last == identity {
                self.reused += 1;
                return Ok(bytes.clone());
            }
        }
        let bytes = codec::encode(&GroupFrame::Raft(message))?;
        self.encoded += 1;
        self.last = Some((identity, bytes.clone()));
        Ok(bytes)
    }
}

impl Bonds {
    /// Records a new link to `peer`, replacing the current one unless that one is newer
    /// (a larger [`Link::id`](crate::network::Link::id): the new link lost to it in the
    /// registry and is closing, but reached the group last). Returns whether the new
    /// link is now the one frames go to. Keeping the loser instead left the group
    /// without a bond to a peer whose live link stayed up (a one-way link: the loser's
    /// close removed the bond, and no new link came while the winner lived).
    pub(crate) fn insert(&mut self, peer: PeerId, link_id: u64, sender: LinkSender) -> bool {
        if self.links.get(&peer).is_some_and(|b| b.link_id > link_id) {
            return false;
        }
        self.links.insert(
            peer,
            Bond {
                link_id,
                sender,
                hello: None,
            },
        );
        true
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
        self.peer_ids().copied().collect()
    }

    /// The bonded peers, in id order, without collecting them.
    pub(crate) fn peer_ids(&self) -> impl Iterator<Item = &PeerId> {
        self.links.keys()
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
        let kind = super::metrics::frame_kind(frame);
        self.send_bytes(peer, bond.sender.clone(), bytes, kind)
    }

    /// Logs (debug) what was encoded, reused and dropped, when the group's worker ends.
    pub(crate) fn log_counts(&self, group: &crate::GroupId) {
        tracing::debug!(
            group = %crate::primitives::Short(group),
            appends_encoded = self.appends.encoded,
            appends_reused = self.appends.reused,
            frames_dropped_full = self.dropped_full,
            "group worker ends"
        );
    }

    /// Sends one consensus message to `peer`: an append that went to another follower
    /// just before is not encoded again (see [`AppendFrames`]).
    pub(crate) fn send_raft(&mut self, peer: PeerId, message: Message) -> bool {
        let Some(sender) = self.links.get(&peer).map(|b| b.sender.clone()) else {
            return false;
        };
        let kind = super::metrics::message_kind(&message);
        match self.appends.frame(message) {
            Ok(bytes) => self.send_bytes(peer, sender, bytes, kind),
            Err(err) => {
                tracing::error!(%err, "cannot encode a consensus message; dropped");
                false
            }
        }
    }

    /// Sends already encoded bytes.
    fn send_bytes(
        &mut self,
        peer: PeerId,
        sender: LinkSender,
        bytes: Vec<u8>,
        kind: &'static str,
    ) -> bool {
        let len = bytes.len();
        match sender.try_send(bytes) {
            Ok(()) => {
                self.sent.count(&peer, kind, len);
                true
            }
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
        let kind = super::metrics::frame_kind(frame);
        let targets: Vec<(PeerId, LinkSender)> = self
            .links
            .iter()
            .map(|(p, b)| (*p, b.sender.clone()))
            .collect();
        targets
            .into_iter()
            .filter(|(p, s)| self.send_bytes(*p, s.clone(), bytes.clone(), kind))
            .map(|(p, _)| p)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::raft::AppendEntriesResponse;
    use crate::groups::raft::{AppendEntries, Cursor, Entry, Index, Payload, Term, Vote};

    fn append(last: u64, commit: u64) -> Message {
        Message::AppendEntries(AppendEntries {
            term: Term(2),
            leader: PeerId([1; 32]),
            prev_log_position: Cursor(Term(2), Index(3)),
            entries: (4..=last)
                .map(|i| Entry {
                    term: Term(2),
                    index: Index(i),
                    payload: Payload::Command(vec![i as u8; 300]),
                })
                .collect(),
            leader_commit: Index(commit),
            seq: 7,
            catch_up: false,
        })
    }

    #[test]
    fn one_batch_to_several_followers_is_encoded_once_and_decodes_the_same() {
        let mut frames = AppendFrames::default();
        let first = frames.frame(append(9, 3)).unwrap();
        let second = frames.frame(append(9, 3)).unwrap();
        assert_eq!(first, second);
        assert_eq!((frames.encoded, frames.reused), (1, 1));
        let decoded: GroupFrame = codec::decode(&second).unwrap();
        assert_eq!(decoded, GroupFrame::Raft(append(9, 3)));
    }

    #[test]
    fn a_different_append_or_another_message_is_encoded_anew() {
        let mut frames = AppendFrames::default();
        frames.frame(append(9, 3)).unwrap();
        let longer = frames.frame(append(10, 3)).unwrap();
        let decoded: GroupFrame = codec::decode(&longer).unwrap();
        assert_eq!(decoded, GroupFrame::Raft(append(10, 3)));
        frames.frame(append(10, 4)).unwrap();
        let response = Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(2),
            last_log_index: Index(9),
            vote: Vote::Granted,
            rejected: Index(0),
            seq: 7,
        });
        let bytes = frames.frame(response.clone()).unwrap();
        assert_eq!(
            codec::decode::<GroupFrame>(&bytes).unwrap(),
            GroupFrame::Raft(response)
        );
        assert_eq!((frames.encoded, frames.reused), (3, 0));
        // The response did not evict the last append.
        frames.frame(append(10, 4)).unwrap();
        assert_eq!(frames.reused, 1);
    }
}
