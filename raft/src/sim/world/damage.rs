//! Disk damage as a fault of the crash model: a crash that also leaves a damaged log
//! record, repaired at restart as `Storage::repair_from` does (see
//! `Scenario::damage_on_crash`).

use super::{EventKind, World};
use crate::{Index, Storage};
use rand::Rng;
use std::cmp::Reverse;

impl World {
    /// A crash that also damaged node `i`'s disk (see `Scenario::damage_on_crash`): its
    /// log loses the entries from a random index on, and its vote is withheld until the
    /// log reaches its old end again, as a restart's repair leaves it.
    pub(super) fn maybe_damage(&mut self, i: usize) {
        // One repair at a time, counting a marker lifted but not yet durable (a crash
        // brings it back): with two of three voters withholding their votes, no leader
        // can be elected and neither can catch up (a liveness limit of the design).
        let repairing = self.nodes.iter().any(|n| {
            Storage::vote_withheld(&n.store).is_some() || n.store.durable_vote_withheld().is_some()
        });
        // An even voter set needs every other voter to elect a leader while this one
        // abstains; one of them may refuse for good (a longer log on a node that removed
        // itself): a liveness limit of withholding the vote, kept out of the liveness check.
        let odd = self.nodes[i]
            .node
            .as_ref()
            .is_some_and(|n| n.membership().voters().len() % 2 == 1);
        if !odd {
            return;
        }
        if self.sc.damage_on_crash <= 0.0
            || !self.faults_on
            || repairing
            || !self.rng.random_bool(self.sc.damage_on_crash)
        {
            return;
        }
        let store = &mut self.nodes[i].store;
        let first = store.available().start().0 + 1;
        let last = Storage::last(store).index().0;
        if first > last {
            return;
        }
        let at = self.rng.random_range(first..=last);
        if let Err(e) = store.lose_from(Index(at)) {
            self.note(format!("damage node {i}: {e}"));
            return;
        }
        // Its messages still in flight die with it: acknowledgements of entries it no
        // longer holds, arriving after its restart was announced, would make a leader
        // believe it still holds them and never send them again (a liveness matter only:
        // safety never rests on them, and a real link's frames do not outlive the
        // restart's hello).
        self.events
            .retain(|Reverse(ev)| !matches!(ev.kind, EventKind::Deliver { from, .. } if from == i));
        self.stats.log_repairs += 1;
        self.note(format!(
            "damage node {i}: log cut at {at}, vote withheld until {last}"
        ));
    }
}
