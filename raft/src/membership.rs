//! Group membership: the voter and learner sets, the single changes the leader may make,
//! and the history of configuration entries a node's log holds.
//!
//! Rules (dissertation §4.1–4.2): configurations are log entries; a node uses the latest
//! one in its log, committed or not; a leader proposes one change at a time, only after its
//! previous change and an entry of its own term are committed (the §4.1 fix to the
//! single-server change bug). A change never touches the live value: it returns a new one.

use crate::log::LogReader;
use crate::message::Payload;
use crate::Index;
use crate::PeerId;
use crate::RaftError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What kind of learner a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LearnerKind {
    /// Catching up; the leader promotes it to voter while voters < `max_voters`.
    CatchingUp,
    /// An observer (a reader that never campaigns): stays a learner for good.
    Observer,
}

/// Which founding of a group this is, fixed when the group is founded (etcd's cluster id).
///
/// The group id names *what* a group is (its key, settings, machine); nodes that founded
/// it separately (each alone, or two sets that never saw each other) run groups with the
/// same id that Raft cannot merge. The cluster id tells them apart: it is in the founding
/// configuration entry and in every later one, members announce it, and a member refuses
/// the traffic of a peer of another founding. `ClusterId(0)` means "none yet" (a fresh node).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ClusterId(pub u64);

impl ClusterId {
    /// The id a founding set derives from the random formation nonces its members
    /// announced (the same on every founder, different for every founding); never 0.
    pub fn derive(members: impl IntoIterator<Item = (PeerId, u64)>) -> ClusterId {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"tessera/cluster-id/v1");
        let mut sorted: Vec<(PeerId, u64)> = members.into_iter().collect();
        sorted.sort();
        for (peer, nonce) in sorted {
            hasher.update(peer.as_bytes());
            hasher.update(&nonce.to_le_bytes());
        }
        let bytes = hasher.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes.as_bytes()[..8]);
        ClusterId(u64::from_le_bytes(id).max(1))
    }

    /// Whether this is a real id (not "none yet").
    pub fn is_known(self) -> bool {
        self.0 != 0
    }
}

impl std::fmt::Display for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The voter and learner sets from one configuration entry on, and the founding they
/// belong to.
///
/// Invariant: a peer is in at most one of the two sets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    voters: BTreeSet<PeerId>,
    learners: BTreeMap<PeerId, LearnerKind>,
    /// Set at founding and kept by every change.
    cluster: ClusterId,
}

/// One change of a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Adds a learner (an observer when `observer`).
    AddLearner {
        /// The new peer.
        peer: PeerId,
        /// Whether it stays a learner for good.
        observer: bool,
    },
    /// Makes a catching-up learner a voter.
    Promote(PeerId),
    /// Removes a voter or learner.
    Remove(PeerId),
}

/// A change that cannot be applied to a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The peer is already a member.
    #[error("peer {0} is already a member")]
    AlreadyMember(PeerId),
    /// The peer is not a learner that may be promoted.
    #[error("peer {0} is not a catching-up learner")]
    NotPromotable(PeerId),
    /// The peer is not a member.
    #[error("peer {0} is not a member")]
    NotMember(PeerId),
    /// Removing the last voter would leave no quorum at all.
    #[error("cannot remove {0}: it is the last voter")]
    LastVoter(PeerId),
}

impl Membership {
    /// A configuration of voters only, of no founding yet (tests; founders use
    /// [`Membership::founding`]).
    pub fn with_voters(voters: impl IntoIterator<Item = PeerId>) -> Self {
        Self::founding(voters, ClusterId::default())
    }

    /// The founding configuration of cluster `cluster` (what bootstrapping peers all
    /// compute).
    pub fn founding(voters: impl IntoIterator<Item = PeerId>, cluster: ClusterId) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            learners: BTreeMap::new(),
            cluster,
        }
    }

    /// A configuration as stored (see `entry_bytes`); the caller checked that no peer is
    /// in both sets.
    pub(crate) fn from_parts(
        voters: BTreeSet<PeerId>,
        learners: BTreeMap<PeerId, LearnerKind>,
        cluster: ClusterId,
    ) -> Self {
        Membership {
            voters,
            learners,
            cluster,
        }
    }

    /// The founding this configuration belongs to.
    pub fn cluster(&self) -> ClusterId {
        self.cluster
    }

    /// The voters.
    pub fn voters(&self) -> &BTreeSet<PeerId> {
        &self.voters
    }

    /// The learners and their kinds.
    pub fn learners(&self) -> &BTreeMap<PeerId, LearnerKind> {
        &self.learners
    }

    /// Whether `peer` votes.
    pub fn is_voter(&self, peer: &PeerId) -> bool {
        self.voters.contains(peer)
    }

    /// Whether `peer` is a voter or learner.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.voters.contains(peer) || self.learners.contains_key(peer)
    }

    /// Every member, voters first.
    pub fn members(&self) -> impl Iterator<Item = &PeerId> {
        self.voters.iter().chain(self.learners.keys())
    }

    /// The configuration after `change`, leaving `self` untouched.
    pub fn apply(&self, change: MembershipChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner { peer, observer } => {
                if self.contains(&peer) {
                    return Err(MembershipError::AlreadyMember(peer));
                }
                let kind = if observer {
                    LearnerKind::Observer
                } else {
                    LearnerKind::CatchingUp
                };
                next.learners.insert(peer, kind);
            }
            MembershipChange::Promote(peer) => {
                if self.learners.get(&peer) != Some(&LearnerKind::CatchingUp) {
                    return Err(MembershipError::NotPromotable(peer));
                }
                next.learners.remove(&peer);
                next.voters.insert(peer);
            }
            MembershipChange::Remove(peer) => {
                if self.voters.contains(&peer) {
                    if self.voters.len() == 1 {
                        return Err(MembershipError::LastVoter(peer));
                    }
                    next.voters.remove(&peer);
                } else if next.learners.remove(&peer).is_none() {
                    return Err(MembershipError::NotMember(peer));
                }
            }
        }
        Ok(next)
    }
}

/// The configurations a node's log holds: the latest one at or below the commit index and
/// every later (uncommitted) one, oldest first.
///
/// Invariant: never empty; indices strictly increase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MembershipLog {
    configs: Vec<(Index, Membership)>,
}

impl MembershipLog {
    /// Reads the configurations a log holds by scanning it back from `last` to the latest
    /// configuration entry at or below `committed` (or to the log's anchor, starting from
    /// `base` when a snapshot gave one); see [`Node::restart`](crate::Node::restart).
    pub(crate) fn scan(
        store: &dyn LogReader,
        last: Index,
        committed: Index,
        base: Option<(Index, Membership)>,
    ) -> Result<MembershipLog, RaftError> {
        let mut anchor = store.anchor()?.index();
        if let Some((at, _)) = &base {
            anchor = anchor.max(*at);
        }
        let mut found: Vec<(Index, Membership)> = Vec::new();
        let mut hi = last;
        'scan: while hi > anchor {
            let lo = Index(hi.0.saturating_sub(255).max(anchor.0 + 1));
            let chunk = store.entries(lo, hi)?;
            for e in chunk.into_iter().rev() {
                if let Payload::Config(m) = e.payload {
                    let done = e.index <= committed;
                    found.push((e.index, m));
                    if done {
                        break 'scan;
                    }
                }
            }
            hi = lo.prev();
        }
        found.reverse();
        let mut iter = found.into_iter();
        let mut members = match (base, iter.next()) {
            (Some((at, base)), first) => {
                let mut members = MembershipLog::new(at, base);
                if let Some((i, m)) = first {
                    members.push(i, m);
                }
                members
            }
            (None, Some((i, m))) => MembershipLog::new(i, m),
            (None, None) => MembershipLog::new(Index(0), Membership::default()),
        };
        for (i, m) in iter {
            members.push(i, m);
        }
        Ok(members)
    }

    /// Starts from one configuration (the empty one at index 0 for a node that has none).
    pub(crate) fn new(index: Index, membership: Membership) -> Self {
        MembershipLog {
            configs: vec![(index, membership)],
        }
    }

    /// The configuration in force: the latest in the log.
    pub(crate) fn current(&self) -> &Membership {
        &self.configs[self.configs.len() - 1].1
    }

    /// The configuration before the latest, while it is kept (it is, as long as the latest
    /// is above the commit index: see [`compact`](Self::compact)).
    pub(crate) fn previous(&self) -> Option<&Membership> {
        let n = self.configs.len();
        (n >= 2).then(|| &self.configs[n - 2].1)
    }

    /// The index of the latest configuration entry.
    pub(crate) fn current_index(&self) -> Index {
        self.configs[self.configs.len() - 1].0
    }

    /// Records a configuration entry appended at `index`.
    pub(crate) fn push(&mut self, index: Index, membership: Membership) {
        self.truncate_from(index);
        self.configs.push((index, membership));
    }

    /// Forgets configurations at `index` and above (their entries were overwritten);
    /// keeps at least the oldest.
    pub(crate) fn truncate_from(&mut self, index: Index) {
        while self.configs.len() > 1 && self.configs[self.configs.len() - 1].0 >= index {
            self.configs.pop();
        }
    }

    /// Drops configurations made obsolete by a commit index: keeps the latest at or below
    /// `commit` and everything above it.
    pub(crate) fn compact(&mut self, commit: Index) {
        let keep_from = self
            .configs
            .iter()
            .rposition(|(i, _)| *i <= commit)
            .unwrap_or(0);
        self.configs.drain(..keep_from);
    }

    /// Replaces everything with one configuration (a state-sync install).
    pub(crate) fn reset(&mut self, index: Index, membership: Membership) {
        self.configs = vec![(index, membership)];
    }
}

/// The configuration entries among `entries`, with their indices (a follower records them
/// once the entries are written).
pub(crate) fn config_entries(entries: &[super::message::Entry]) -> Vec<(crate::Index, Membership)> {
    entries
        .iter()
        .filter_map(|e| match &e.payload {
            super::message::Payload::Config(c) => Some((e.index, c.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    #[test]
    fn changes_return_new_values() {
        let m = Membership::with_voters([p(1), p(2), p(3)]);
        let added = m
            .apply(MembershipChange::AddLearner {
                peer: p(4),
                observer: false,
            })
            .unwrap();
        assert!(!m.contains(&p(4)));
        assert!(added.contains(&p(4)) && !added.is_voter(&p(4)));
        let promoted = added.apply(MembershipChange::Promote(p(4))).unwrap();
        assert!(promoted.is_voter(&p(4)));
        let removed = promoted.apply(MembershipChange::Remove(p(1))).unwrap();
        assert_eq!(removed.voters().len(), 3);
    }

    #[test]
    fn bad_changes_are_refused() {
        let m = Membership::with_voters([p(1)]);
        assert_eq!(
            m.apply(MembershipChange::Remove(p(1))),
            Err(MembershipError::LastVoter(p(1)))
        );
        assert_eq!(
            m.apply(MembershipChange::Promote(p(2))),
            Err(MembershipError::NotPromotable(p(2)))
        );
        let obs = m
            .apply(MembershipChange::AddLearner {
                peer: p(2),
                observer: true,
            })
            .unwrap();
        assert!(obs.apply(MembershipChange::Promote(p(2))).is_err());
        assert!(obs
            .apply(MembershipChange::AddLearner {
                peer: p(1),
                observer: false
            })
            .is_err());
    }

    #[test]
    fn log_truncates_and_compacts() {
        let mut log = MembershipLog::new(Index(1), Membership::with_voters([p(1)]));
        log.push(Index(5), Membership::with_voters([p(1), p(2)]));
        log.push(Index(9), Membership::with_voters([p(1), p(2), p(3)]));
        assert_eq!(log.current().voters().len(), 3);
        log.truncate_from(Index(7));
        assert_eq!(log.current_index(), Index(5));
        log.compact(Index(6));
        assert_eq!(log.configs.len(), 1);
        log.truncate_from(Index(1));
        assert_eq!(log.current_index(), Index(5), "the oldest is always kept");
    }
}
