//! Who a group's members are, as one node sees them: the answer to
//! [`Group::roster`](super::Group::roster), behind an operator's member list
//! (`GET /v1/members`, `tessera member list`).
//!
//! The configuration itself is replicated; everything else here is local knowledge: where
//! a member was last dialled, what it announced (its contact, e.g. a node's HTTP URL),
//! when a frame from it last arrived, and, on the leader only, how far its log matches.

use super::Index;
use crate::PeerId;
use std::net::SocketAddr;
use std::time::Duration;

/// The longest contact a member may announce; a longer one is not announced (and a
/// peer's longer one is ignored): it is an address, not a payload.
pub const MAX_CONTACT_BYTES: usize = 256;

/// What a member is in the current configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberRole {
    /// Votes and may lead.
    Voter,
    /// Catching up; promoted to voter by the leader (or by an operator).
    Learner,
    /// A learner that never votes or leads (a reader).
    Observer,
}

impl MemberRole {
    /// The role in one word (`voter`, `learner`, `observer`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
            MemberRole::Observer => "observer",
        }
    }
}

/// One member, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    /// The member.
    pub peer: PeerId,
    /// Voter, learner or observer.
    pub role: MemberRole,
    /// Whether it is this node.
    pub is_self: bool,
    /// The address this node dials it at, if it knows one.
    pub addr: Option<SocketAddr>,
    /// What it announced for clients (a `tessera node`: its HTTP URL), if heard.
    pub contact: Option<String>,
    /// A link to it is up.
    pub bonded: bool,
    /// Time since the last frame from it (since this node started; `None`: never). Zero
    /// for this node.
    pub last_heard: Option<Duration>,
    /// How far its log matches the leader's: known on the leader only.
    pub matched: Option<Index>,
}

/// The members of a group as one node sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    /// The node answering.
    pub me: PeerId,
    /// The leader it knows, if any.
    pub leader: Option<PeerId>,
    /// The members, voters first, each set in id order.
    pub members: Vec<RosterEntry>,
}

impl Roster {
    /// The entry of `peer`, if it is a member.
    pub fn get(&self, peer: &PeerId) -> Option<&RosterEntry> {
        self.members.iter().find(|m| m.peer == *peer)
    }

    /// The leader's contact, when the leader is known and announced one.
    pub fn leader_contact(&self) -> Option<&str> {
        let leader = self.leader?;
        self.get(&leader)?.contact.as_deref()
    }
}
