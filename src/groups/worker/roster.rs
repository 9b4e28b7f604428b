//! What the worker knows of its members beyond the configuration: when each peer was last
//! heard from and what it announced, for [`Roster`] answers.

use super::Worker;
use crate::groups::machine::StateMachine;
use crate::groups::raft::LearnerKind;
use crate::groups::roster::{MemberRole, Roster, RosterEntry, MAX_CONTACT_BYTES};
use crate::groups::Storage;
use crate::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What was heard from each peer since this node started (bounded by the peers that
/// linked to this group: admitted or not, one entry each).
#[derive(Default)]
pub(super) struct Heard {
    peers: HashMap<PeerId, HeardFrom>,
}

#[derive(Default)]
struct HeardFrom {
    at: Option<Instant>,
    contact: Option<String>,
}

impl Heard {
    /// A frame from `peer` arrived now.
    pub(super) fn frame(&mut self, peer: PeerId, now: Instant) {
        self.peers.entry(peer).or_default().at = Some(now);
    }

    /// `peer` announced `contact` (kept unless longer than [`MAX_CONTACT_BYTES`]).
    pub(super) fn contact(&mut self, peer: PeerId, contact: Option<&str>) {
        let kept = contact
            .filter(|c| c.len() <= MAX_CONTACT_BYTES)
            .map(str::to_owned);
        self.peers.entry(peer).or_default().contact = kept;
    }

    fn since(&self, peer: &PeerId, now: Instant) -> Option<Duration> {
        self.peers
            .get(peer)
            .and_then(|h| h.at)
            .map(|at| now.saturating_duration_since(at))
    }

    fn contact_of(&self, peer: &PeerId) -> Option<String> {
        self.peers.get(peer).and_then(|h| h.contact.clone())
    }
}

impl<M: StateMachine, S: Storage> Worker<M, S> {
    /// The members as this node sees them now.
    pub(super) fn roster(&self) -> Roster {
        let now = Instant::now();
        let membership = self.node.membership();
        let known = self.network.known_peers();
        let roles = membership
            .voters()
            .iter()
            .map(|p| (*p, MemberRole::Voter))
            .chain(membership.learners().iter().map(|(p, kind)| {
                let role = match kind {
                    LearnerKind::CatchingUp => MemberRole::Learner,
                    LearnerKind::Observer => MemberRole::Observer,
                };
                (*p, role)
            }));
        let members = roles
            .map(|(peer, role)| {
                let is_self = peer == self.me;
                RosterEntry {
                    peer,
                    role,
                    is_self,
                    addr: if is_self {
                        Some(self.network.local_addr().addr)
                    } else {
                        known.iter().find(|a| a.id == peer).map(|a| a.addr)
                    },
                    contact: if is_self {
                        self.contact.clone()
                    } else {
                        self.heard.contact_of(&peer)
                    },
                    bonded: is_self || self.bonds.get(&peer).is_some(),
                    // Quiesced, a peer sends nothing, but a live link means its node answers
                    // the network's heartbeats (the link closes when it stops): it counts
                    // as heard now rather than looking dead.
                    last_heard: if is_self
                        || (self.node.is_quiesced() && self.bonds.get(&peer).is_some())
                    {
                        Some(Duration::ZERO)
                    } else {
                        self.heard.since(&peer, now)
                    },
                    matched: if is_self && self.node.is_leader() {
                        Some(self.node.last().index())
                    } else {
                        self.node.progress_of(&peer).map(|(matched, _)| matched)
                    },
                }
            })
            .collect();
        Roster {
            me: self.me,
            leader: self.node.leader(),
            members,
        }
    }
}
