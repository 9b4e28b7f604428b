//! Forming a new group: which fresh peers found it, decided the same way on each of them,
//! and never beside a group that already exists.
//!
//! DESIGN.md: "a new group forms once `bootstrap_expect` fresh peers see each other (all
//! compute the same initial voter set)". Every fresh peer announces (in its [`Hello`]) the
//! set it would found with: the `expect` smallest ids among itself and the fresh,
//! non-observer peers it has links to, and the cluster id that founding would have
//! ([`ClusterId::derive`] over the random formation nonces the set's members announced). A
//! peer founds the group with proposal `P` only when its own proposal is `P` *and* every
//! other member of the set announced `P` too. With exactly `expect` fresh peers that see
//! each other, all of them agree; when more start, those whose views differ wait until
//! they agree (views only grow while fresh).
//!
//! **Ask first.** A fresh peer that hears from a member of an existing group (not fresh)
//! never founds anything: it waits to be added as a learner. And it founds nothing while
//! a peer it knows of (given with `--peer`, learned from others, or kept in the peers
//! file) has not answered yet, since that peer may hold the group: only peers that
//! announced themselves, or said they do not host this group, are out of the way. So a
//! node started with `bootstrap_expect = 1` and a `--peer` joins that peer's group instead
//! of founding one of its own beside it; only a node that knows no peer founds alone.
//!
//! **A co-founder that went first.** Founders decide on their own ticks, so one may found
//! (and announce itself no longer fresh) before another has decided. A peer whose own
//! proposal is exactly the founding a peer now announces (same cluster id, which derives
//! from the same voters and nonces) founds it too instead of waiting to be added: a
//! fresh node abstains from voting (it may be a member that lost its state), so a founder
//! whose co-founders all joined instead could never be elected. The proposals this node
//! held lately are remembered for it ([`RECENT_PROPOSALS`]): its view may have changed
//! since it agreed (a link to a co-founder replaced at start drops that peer's hello until
//! the new link's arrives), and the founding is still the one it agreed to.
//!
//! Pure and synchronous: the worker feeds hellos in and asks [`Formation::decide`].
//!
//! [`Hello`]: super::wire::Hello

use super::raft::ClusterId;
use super::wire::{Hello, Proposal};
use crate::PeerId;
use std::collections::{BTreeMap, BTreeSet};

/// What a fresh node knows about its peers' readiness to found the group.
#[derive(Debug)]
pub struct Formation {
    me: PeerId,
    expect: usize,
    observer: bool,
    /// This node's formation nonce (random per start), announced in its hellos.
    nonce: u64,
    peers: BTreeMap<PeerId, Hello>,
    /// This node's proposal, once a peer announced it founded exactly that.
    co_founded: Option<Proposal>,
    /// The distinct proposals this node held lately, newest last (at most
    /// [`RECENT_PROPOSALS`]): what it may have announced.
    recent: Vec<Proposal>,
}

/// How many of its latest distinct proposals a node remembers (see the module doc).
pub const RECENT_PROPOSALS: usize = 8;

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Found the group with these voters (this node included) as this cluster.
    Found(Proposal),
    /// A peer already has state: wait to be added by its leader.
    JoinExisting,
    /// Known peers have not answered yet; one of them may hold the group.
    AskFirst(Vec<PeerId>),
    /// Not yet.
    Wait,
}

impl Formation {
    /// For node `me` expecting `expect` founders (at least 1), announcing `nonce`.
    pub fn new(me: PeerId, expect: usize, observer: bool, nonce: u64) -> Self {
        let mut formation = Formation {
            me,
            expect: expect.max(1),
            observer,
            nonce,
            peers: BTreeMap::new(),
            co_founded: None,
            recent: Vec::new(),
        };
        formation.note_proposal();
        formation
    }

    /// Remembers the current proposal (after every change of view).
    fn note_proposal(&mut self) {
        let Some(now) = self.proposal() else {
            return;
        };
        if self.recent.last() != Some(&now) {
            self.recent.retain(|p| *p != now);
            self.recent.push(now);
            if self.recent.len() > RECENT_PROPOSALS {
                self.recent.remove(0);
            }
        }
    }

    /// This node's formation nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// A hello from a linked peer (replaces its previous one).
    pub fn hello(&mut self, peer: PeerId, hello: Hello) {
        if peer == self.me {
            return;
        }
        // Looked up before the peer's hello counts as not fresh: it no longer counts in
        // the proposal once it founded (`recent` holds the proposals up to now).
        if !hello.fresh && self.co_founded.is_none() {
            let founded = self
                .recent
                .iter()
                .rev()
                .find(|p| hello.cluster == Some(p.cluster) && p.voters.contains(&peer));
            self.co_founded = founded.cloned();
        }
        self.peers.insert(peer, hello);
        self.note_proposal();
    }

    /// The link to `peer` closed: its announcements no longer count.
    pub fn gone(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        self.note_proposal();
    }

    /// Whether `peer` has announced itself.
    pub fn heard(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// The founding this node proposes now, if it sees enough fresh peers and is among the
    /// founders.
    pub fn proposal(&self) -> Option<Proposal> {
        if self.observer {
            return None;
        }
        let mut view: Vec<(PeerId, u64)> = self
            .peers
            .iter()
            .filter(|(_, h)| h.fresh && !h.observer)
            .map(|(p, h)| (*p, h.nonce))
            .chain(std::iter::once((self.me, self.nonce)))
            .collect();
        view.sort();
        if view.len() < self.expect {
            return None;
        }
        view.truncate(self.expect);
        let voters: BTreeSet<PeerId> = view.iter().map(|(p, _)| *p).collect();
        voters.contains(&self.me).then(|| Proposal {
            voters,
            cluster: ClusterId::derive(view),
        })
    }

    /// Whether to found the group now, join an existing one, or wait. `unanswered` are the
    /// known peers that have neither announced themselves nor said they do not host the
    /// group.
    pub fn decide(&self, unanswered: &[PeerId]) -> Decision {
        if let Some(founded) = &self.co_founded {
            return Decision::Found(founded.clone());
        }
        if self.peers.values().any(|h| !h.fresh) {
            return Decision::JoinExisting;
        }
        if !unanswered.is_empty() {
            return Decision::AskFirst(unanswered.to_vec());
        }
        let Some(mine) = self.proposal() else {
            return Decision::Wait;
        };
        let agreed = mine.voters.iter().filter(|p| **p != self.me).all(|p| {
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
    use crate::groups::Cursor;

    fn p(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    fn hello(fresh: bool, nonce: u64, proposal: Option<Proposal>) -> Hello {
        Hello {
            fresh,
            observer: false,
            proposal,
            nonce,
            cluster: None,
            state: 0,
            durable: Cursor::zero(),
            contact: None,
        }
    }

    /// Runs announcement rounds among `nodes` (each sees all others) until stable.
    fn converge(nodes: &mut [Formation]) {
        for _ in 0..4 {
            let hellos: Vec<(PeerId, Hello)> = nodes
                .iter()
                .map(|n| (n.me, hello(true, n.nonce, n.proposal())))
                .collect();
            for n in nodes.iter_mut() {
                for (peer, h) in &hellos {
                    n.hello(*peer, h.clone());
                }
            }
        }
    }

    fn voters(d: &Decision) -> Option<&BTreeSet<PeerId>> {
        match d {
            Decision::Found(p) => Some(&p.voters),
            _ => None,
        }
    }

    #[test]
    fn a_single_expected_founder_that_knows_no_peer_founds_at_once() {
        let f = Formation::new(p(1), 1, false, 7);
        assert_eq!(voters(&f.decide(&[])), Some(&[p(1)].into()));
    }

    #[test]
    fn a_single_expected_founder_asks_the_peers_it_knows_first() {
        let mut f = Formation::new(p(2), 1, false, 7);
        assert_eq!(f.decide(&[p(1)]), Decision::AskFirst(vec![p(1)]));
        // The known peer holds the group: join it instead of founding beside it.
        f.hello(p(1), hello(false, 3, None));
        assert_eq!(f.decide(&[]), Decision::JoinExisting);
    }

    #[test]
    fn two_lone_founders_that_see_each_other_found_one_group() {
        let mut nodes: Vec<Formation> = (1..=2)
            .map(|i| Formation::new(p(i), 1, false, u64::from(i) * 11))
            .collect();
        converge(&mut nodes);
        assert_eq!(voters(&nodes[0].decide(&[])), Some(&[p(1)].into()));
        assert_eq!(nodes[1].decide(&[]), Decision::Wait, "p2 is not a founder");
    }

    #[test]
    fn three_fresh_peers_agree_on_the_same_set_and_cluster() {
        let mut nodes: Vec<Formation> = (1..=3)
            .map(|i| Formation::new(p(i), 3, false, u64::from(i)))
            .collect();
        assert_eq!(nodes[0].decide(&[]), Decision::Wait);
        converge(&mut nodes);
        let want: BTreeSet<PeerId> = [p(1), p(2), p(3)].into();
        let decisions: Vec<Decision> = nodes.iter().map(|n| n.decide(&[])).collect();
        for d in &decisions {
            assert_eq!(voters(d), Some(&want));
        }
        assert!(
            decisions.windows(2).all(|w| w[0] == w[1]),
            "same cluster id"
        );
    }

    #[test]
    fn another_founding_of_the_same_set_has_another_cluster_id() {
        let mut a: Vec<Formation> = (1..=3)
            .map(|i| Formation::new(p(i), 3, false, u64::from(i)))
            .collect();
        let mut b: Vec<Formation> = (1..=3)
            .map(|i| Formation::new(p(i), 3, false, u64::from(i) + 100))
            .collect();
        converge(&mut a);
        converge(&mut b);
        assert_ne!(a[0].decide(&[]), b[0].decide(&[]));
    }

    /// Three fresh peers that agreed, and the founding p1 made of it.
    fn agreed_and_founded_by_p1() -> (Vec<Formation>, Proposal) {
        let mut nodes: Vec<Formation> = (1..=3)
            .map(|i| Formation::new(p(i), 3, false, u64::from(i)))
            .collect();
        converge(&mut nodes);
        let Decision::Found(founded) = nodes[0].decide(&[]) else {
            panic!("p1 founds");
        };
        (nodes, founded)
    }

    /// What a peer that founded `cluster` announces.
    fn founded_hello(cluster: ClusterId) -> Hello {
        let mut after = hello(false, 1, None);
        after.cluster = Some(cluster);
        after
    }

    #[test]
    fn a_co_founder_that_founded_first_is_followed_not_joined() {
        let (mut nodes, founded) = agreed_and_founded_by_p1();
        // p1 founded and now says so; p2 had not decided yet.
        nodes[1].hello(p(1), founded_hello(founded.cluster));
        assert_eq!(nodes[1].decide(&[]), Decision::Found(founded.clone()));
        assert_eq!(
            nodes[1].decide(&[p(9)]),
            Decision::Found(founded),
            "the founding exists already: nothing to ask first"
        );

        // A co-founder whose link was replaced meanwhile (its hello dropped until the new
        // link's arrives) still follows the founding it agreed to.
        let (mut nodes, founded) = agreed_and_founded_by_p1();
        nodes[1].gone(&p(3));
        assert_eq!(nodes[1].proposal(), None, "p2 sees too few fresh peers now");
        nodes[1].hello(p(1), founded_hello(founded.cluster));
        assert_eq!(nodes[1].decide(&[]), Decision::Found(founded));

        // A founding this node did not propose is joined, never copied.
        nodes[2].hello(p(1), founded_hello(ClusterId(12345)));
        assert_eq!(nodes[2].decide(&[]), Decision::JoinExisting);
    }

    #[test]
    fn a_peer_outside_the_agreed_set_does_not_found() {
        let mut nodes: Vec<Formation> = (1..=4)
            .map(|i| Formation::new(p(i), 3, false, u64::from(i)))
            .collect();
        converge(&mut nodes);
        let want: BTreeSet<PeerId> = [p(1), p(2), p(3)].into();
        for n in &nodes[..3] {
            assert_eq!(voters(&n.decide(&[])), Some(&want));
        }
        assert_eq!(nodes[3].decide(&[]), Decision::Wait, "p4 waits to be added");
    }

    #[test]
    fn no_founding_without_every_founder_agreeing() {
        let mut f = Formation::new(p(1), 3, false, 1);
        let mut other = Formation::new(p(2), 3, false, 2);
        for (peer, nonce) in [(p(2), 2), (p(3), 3)] {
            f.hello(peer, hello(true, nonce, None));
        }
        other.hello(p(1), hello(true, 1, None));
        other.hello(p(3), hello(true, 3, None));
        let agreed = f.proposal().expect("f proposes");
        f.hello(p(2), hello(true, 2, other.proposal()));
        assert_eq!(f.decide(&[]), Decision::Wait, "p3 proposed nothing yet");
        f.hello(p(3), hello(true, 3, Some(agreed.clone())));
        assert_eq!(f.decide(&[]), Decision::Found(agreed));
        f.gone(&p(2));
        assert_eq!(f.decide(&[]), Decision::Wait);
        // A restarted founder (new nonce) changes the proposal until everyone agrees again.
        f.hello(p(2), hello(true, 99, other.proposal()));
        assert_eq!(f.decide(&[]), Decision::Wait);
    }

    #[test]
    fn observers_never_found_nor_count_as_founders() {
        let o = Formation::new(p(2), 1, true, 1);
        assert_eq!(o.decide(&[]), Decision::Wait);
        let mut f = Formation::new(p(1), 2, false, 1);
        let mut h = hello(true, 3, None);
        h.observer = true;
        f.hello(p(3), h);
        assert_eq!(f.decide(&[]), Decision::Wait, "observers are not founders");
    }
}
