//! The worker's side of peers and membership: hellos (refusing peers of another founding,
//! noticing restarts), new links, founding a fresh group once every known peer answered,
//! adding fresh peers as learners, and keeping a bond to every peer it should reach.

use super::{Worker, WorkerError};
use crate::groups::formation::Decision;
use crate::groups::machine::StateMachine;
use crate::groups::raft::MembershipChange;
use crate::groups::wire::{GroupFrame, Hello};
use crate::groups::{Cursor, Storage, Term};
use crate::network::Link;
use crate::primitives::Short;
use crate::PeerId;
use std::collections::BTreeSet;

impl<M: StateMachine, S: Storage> Worker<M, S> {
    /// A peer's announcement: refuses a peer of another founding, feeds formation, and
    /// tells the core when the peer restarted (its state incarnation changed).
    pub(super) fn on_hello(&mut self, peer: PeerId, hello: Hello) -> Result<(), WorkerError> {
        let mine = self.node.membership().cluster();
        match hello.cluster {
            Some(theirs) if mine.is_known() && theirs != mine => {
                if self.conflicts.insert(peer, theirs).is_none() {
                    tracing::error!(
                        group = %Short(&self.group),
                        peer = %Short(&peer),
                        ours = %mine,
                        theirs = %theirs,
                        "peer belongs to another founding of this group (cluster {theirs}, ours \
                         {mine}): the two were founded apart and cannot merge, so its messages are \
                         refused. To move a node into this cluster, stop it, wipe its data \
                         directory and start it with --peer set to a member of this cluster"
                    );
                    self.publish();
                }
                if let Some(bond) = self.bonds.get_mut(&peer) {
                    bond.hello = Some(hello);
                }
                return Ok(());
            }
            _ => {
                if self.conflicts.remove(&peer).is_some() {
                    tracing::info!(peer = %Short(&peer), "peer of another founding now announces this one");
                }
            }
        }
        if let Some(f) = &mut self.formation {
            f.hello(peer, hello.clone());
        }
        let previous = self.peer_states.insert(peer, hello.state);
        if previous.is_some_and(|state| state != hello.state) {
            tracing::debug!(peer = %Short(&peer), durable = %hello.durable, "peer restarted");
            self.node
                .on_peer_restarted(peer, hello.durable.index(), &self.store)?;
        }
        if let Some(bond) = self.bonds.get_mut(&peer) {
            bond.hello = Some(hello);
        }
        Ok(())
    }

    /// A new link to a peer. Links come from the accepting and the dialling side's tasks,
    /// so one that already lost to a newer link (and is closing) may arrive after it: it
    /// is read until it closes, but frames keep going to the newer one (`Bonds::insert`).
    pub(super) fn on_link(&mut self, link: Link) {
        let peer = link.peer();
        let link_id = link.id();
        let bonded = self.bonds.insert(peer, link_id, link.sender());
        self.readers.add(peer, link_id, link);
        if !bonded {
            tracing::debug!(peer = %Short(&peer), group = %Short(&self.group), "link superseded before it arrived; kept the newer one");
            return;
        }
        tracing::debug!(peer = %Short(&peer), group = %Short(&self.group), "bonded");
        // A quiesced leader wakes for a member it could not reach, to catch it up.
        self.node.set_reachable(peer, true);
        let hello = GroupFrame::Hello(self.hello());
        self.bonds.send(peer, &hello);
        self.network.save_peers();
    }

    pub(super) fn is_fresh(&self) -> bool {
        self.node.term() == Term(0) && self.node.last() == Cursor::zero()
    }

    pub(super) fn hello(&self) -> Hello {
        let fresh = self.is_fresh();
        let cluster = self.node.membership().cluster();
        Hello {
            fresh,
            observer: self.observer,
            proposal: if fresh {
                self.formation.as_ref().and_then(|f| f.proposal())
            } else {
                None
            },
            nonce: self.nonce,
            cluster: cluster.is_known().then_some(cluster),
            state: self.state_incarnation,
            durable: self.node.durable(),
            contact: self.contact.clone(),
        }
    }

    /// Broadcasts this node's hello; while quiesced, only when it changed or
    /// `QUIET_HELLO` passed since the last one.
    pub(super) fn announce(&mut self) {
        let hello = self.hello();
        let now = std::time::Instant::now();
        if self.node.is_quiesced()
            && self.last_hello.as_ref().is_some_and(|(last, at)| {
                *last == hello && now.saturating_duration_since(*at) < super::QUIET_HELLO
            })
        {
            return;
        }
        self.bonds.broadcast(&GroupFrame::Hello(hello.clone()));
        self.last_hello = Some((hello, now));
    }

    pub(super) fn maybe_found(&mut self) -> Result<(), WorkerError> {
        if !self.is_fresh() {
            self.formation = None;
            return Ok(());
        }
        let Some(formation) = &self.formation else {
            return Ok(());
        };
        // Every peer this node knows of must have answered first: it announced itself on
        // a link of this group, or said it does not host the group.
        let absent = self.links.absent();
        let mut unanswered: Vec<PeerId> = self
            .network
            .known_peers()
            .into_iter()
            .map(|a| a.id)
            .chain(self.network.named_peers())
            .filter(|p| *p != self.me && !formation.heard(p) && !absent.contains(p))
            .collect();
        unanswered.sort();
        unanswered.dedup();
        // A peer given without an id may hold the group too: learn who it is first.
        let nameless = self.network.unresolved_peers();
        if !nameless.is_empty() && !matches!(formation.decide(&unanswered), Decision::JoinExisting)
        {
            let every = (10_000 / self.tick.as_millis().max(1)) as u64;
            if self
                .asked_logged
                .is_none_or(|t| self.ticks.saturating_sub(t) >= every)
            {
                self.asked_logged = Some(self.ticks);
                tracing::info!(
                    group = %Short(&self.group),
                    waiting_for = %nameless.join(", "),
                    "not founding the group yet: the ids of peers given without one are not learned yet"
                );
            }
            return Ok(());
        }
        match formation.decide(&unanswered) {
            Decision::Found(proposal) => {
                tracing::info!(
                    group = %Short(&self.group),
                    voters = proposal.voters.len(),
                    cluster = %proposal.cluster,
                    "founding the group"
                );
                self.node
                    .bootstrap(proposal.voters, proposal.cluster, &self.store)?;
                self.formation = None;
            }
            Decision::AskFirst(peers) => {
                // Logged when the wait starts and then every ~10 s.
                let every = (10_000 / self.tick.as_millis().max(1)) as u64;
                if self
                    .asked_logged
                    .is_none_or(|t| self.ticks.saturating_sub(t) >= every)
                {
                    self.asked_logged = Some(self.ticks);
                    let names: Vec<String> = peers.iter().map(|p| Short(p).to_string()).collect();
                    tracing::info!(
                        group = %Short(&self.group),
                        waiting_for = %names.join(", "),
                        "not founding the group yet: known peers have not answered and may hold it"
                    );
                }
            }
            Decision::JoinExisting | Decision::Wait => {}
        }
        Ok(())
    }

    /// The leader adds bonded *fresh* peers that are not members as learners (one change
    /// at a time; the core promotes caught-up learners while voters < `max_voters`). A
    /// peer with state that is not a member was removed (or its addition was lost): it is
    /// never re-added on its own, so an explicit removal sticks; `add_learner` brings it
    /// back.
    ///
    /// A peer's last hello may still say fresh after it got entries (its next hello comes
    /// a hello interval later, and a removal can be quicker): a peer this leader removed
    /// is not re-added while it announces the same start (`nonce`). Announcing at once
    /// when freshness ends was tried and dropped: fresh peers still deciding whether to
    /// found then see a non-fresh peer sooner and join instead of founding.
    pub(super) fn maybe_add_members(&mut self) -> Result<(), WorkerError> {
        if !self.node.is_leader() {
            return Ok(());
        }
        let members = self.node.membership().clone();
        let candidate = self
            .bonds
            .hellos()
            .find(|(p, h)| h.fresh && !members.contains(p) && self.removed.get(p) != Some(&h.nonce))
            .map(|(p, h)| (*p, h.observer));
        if let Some((peer, observer)) = candidate {
            match self
                .node
                .propose_membership(MembershipChange::AddLearner { peer, observer }, &self.store)?
            {
                Ok(at) => tracing::info!(
                    peer = %Short(&peer),
                    index = at.index().0,
                    "adding a learner"
                ),
                Err(err) => tracing::debug!(peer = %Short(&peer), %err, "learner not added yet"),
            }
        }
        Ok(())
    }

    /// Keeps a bond to every known peer and member (dialled with back-off by the network).
    pub(super) fn maintain_bonds(&mut self) {
        let mut want: BTreeSet<PeerId> = self
            .network
            .known_peers()
            .into_iter()
            .map(|a| a.id)
            .collect();
        want.extend(self.network.named_peers());
        want.extend(self.node.membership().members().copied());
        want.remove(&self.me);
        for peer in want {
            if self.maintained.insert(peer) {
                self.links.maintain(peer);
            }
        }
    }
}
