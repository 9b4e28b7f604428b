//! Forming a new group: which fresh peers found it, decided the same way on each of them.
//!
//! DESIGN.md: "a new group forms once `bootstrap_expect` fresh peers see each other (all
//! compute the same initial voter set)". Every fresh peer announces (in its [`Hello`]) the
//! set it would found with: the `expect` smallest ids among itself and the fresh,
//! non-observer peers it has links to. A peer founds the group with set `S` only when its
//! own proposal is `S` *and* every other member of `S` announced `S` too. With exactly
//! `expect` fresh peers that see each other, all of them agree; when more start, those
//! whose views differ wait until they agree (views only grow while fresh), and a fresh peer
//! that hears from a member of an existing group (not fresh) never founds anything: it
//! waits to be added as a learner.
//!
//! Pure and synchronous: the worker feeds hellos in and asks [`Formation::decide`].
//!
//! [`Hello`]: super::wire::Hello

use super::wire::Hello;
use crate::PeerId;
use std::collections::{BTreeMap, BTreeSet};

/// What a fresh node knows about its peers' readiness to found the group.
#[derive(Debug)]
pub struct Formation {
    me: PeerId,
    expect: usize,
    observer: bool,
    peers: BTreeMap<PeerId, Hello>,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Found the group with these voters (this node included).
    Found(BTreeSet<PeerId>),
    /// A peer already has state: wait to be added by its leader.
    JoinExisting,
    /// Not yet.
    Wait,
}

impl Formation {
    /// For node `me` expecting `expect` founders (at least 1).
    pub fn new(me: PeerId, expect: usize, observer: bool) -> Self {
        Formation {
            me,
            expect: expect.max(1),
            observer,
            peers: BTreeMap::new(),
        }
    }

    /// A hello from a linked peer (replaces its previous one).
    pub fn hello(&mut self, peer: PeerId, hello: Hello) {
        if peer != self.me {
            self.peers.insert(peer, hello);
        }
    }

    /// The link to `peer` closed: its announcements no longer count.
    pub fn gone(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// The founding set this node proposes now, if it sees enough fresh peers.
    pub fn proposal(&self) -> Option<BTreeSet<PeerId>> {
        if self.observer {
            return None;
        }
        let mut view: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, h)| h.fresh && !h.observer)
            .map(|(p, _)| *p)
            .chain(std::iter::once(self.me))
            .collect();
        view.sort();
        if view.len() < self.expect {
            return None;
        }
        let set: BTreeSet<PeerId> = view.into_iter().take(self.expect).collect();
        set.contains(&self.me).then_some(set)
    }

    /// Whether to found the group now, join an existing one, or wait.
    pub fn decide(&self) -> Decision {
        if self.peers.values().any(|h| !h.fresh) {
            return Decision::JoinExisting;
        }
        let Some(mine) = self.proposal() else {
            return Decision::Wait;
        };
        let agreed = mine.iter().filter(|p| **p != self.me).all(|p| {
            self.peers
                .get(p)
                .is_some_and(|h| h.proposal.as_ref() == Some(&mine))
        });
        if agreed {
            Decision::Found(mine)
        } else {
            Decision::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    fn fresh(proposal: Option<BTreeSet<PeerId>>) -> Hello {
        Hello {
            fresh: true,
            observer: false,
            proposal,
        }
    }

    /// Runs announcement rounds among `nodes` (each sees all others) until stable.
    fn converge(nodes: &mut [Formation]) {
        for _ in 0..4 {
            let hellos: Vec<(PeerId, Hello)> =
                nodes.iter().map(|n| (n.me, fresh(n.proposal()))).collect();
            for n in nodes.iter_mut() {
                for (peer, h) in &hellos {
                    n.hello(*peer, h.clone());
                }
            }
        }
    }

    #[test]
    fn a_single_expected_founder_founds_at_once() {
        let f = Formation::new(p(1), 1, false);
        assert_eq!(f.decide(), Decision::Found([p(1)].into()));
    }

    #[test]
    fn three_fresh_peers_agree_on_the_same_set() {
        let mut nodes: Vec<Formation> = (1..=3).map(|i| Formation::new(p(i), 3, false)).collect();
        assert_eq!(nodes[0].decide(), Decision::Wait);
        converge(&mut nodes);
        let want: BTreeSet<PeerId> = [p(1), p(2), p(3)].into();
        for n in &nodes {
            assert_eq!(n.decide(), Decision::Found(want.clone()));
        }
    }

    #[test]
    fn a_peer_outside_the_agreed_set_does_not_found() {
        let mut nodes: Vec<Formation> = (1..=4).map(|i| Formation::new(p(i), 3, false)).collect();
        converge(&mut nodes);
        let want: BTreeSet<PeerId> = [p(1), p(2), p(3)].into();
        for n in &nodes[..3] {
            assert_eq!(n.decide(), Decision::Found(want.clone()));
        }
        assert_eq!(nodes[3].decide(), Decision::Wait, "p4 waits to be added");
    }

    #[test]
    fn no_founding_without_every_founder_agreeing() {
        let mut f = Formation::new(p(1), 3, false);
        f.hello(p(2), fresh(Some([p(1), p(2), p(3)].into())));
        f.hello(p(3), fresh(None));
        assert_eq!(f.decide(), Decision::Wait);
        f.hello(p(3), fresh(Some([p(1), p(2), p(3)].into())));
        assert!(matches!(f.decide(), Decision::Found(_)));
        f.gone(&p(2));
        assert_eq!(f.decide(), Decision::Wait);
    }

    #[test]
    fn a_member_with_state_means_join_and_observers_never_found() {
        let mut f = Formation::new(p(1), 1, false);
        f.hello(
            p(9),
            Hello {
                fresh: false,
                observer: false,
                proposal: None,
            },
        );
        assert_eq!(f.decide(), Decision::JoinExisting);
        let o = Formation::new(p(2), 1, true);
        assert_eq!(o.decide(), Decision::Wait);
        let mut f = Formation::new(p(1), 2, false);
        f.hello(
            p(3),
            Hello {
                fresh: true,
                observer: true,
                proposal: None,
            },
        );
        assert_eq!(f.decide(), Decision::Wait, "observers are not founders");
    }
}
