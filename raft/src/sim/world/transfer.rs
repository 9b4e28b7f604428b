//! Leadership transfers as a random action of the fault phase, interleaved with crashes,
//! partitions, slow disks and membership changes, so every checker runs across them.
//!
//! Now and then the leader is asked to hand over: to "any voter" half the time, else to a
//! node drawn from the whole cluster (a voter, a learner, an outsider, itself), so the
//! refusals run too. The outcomes reported in `Ready`s are counted, and a command refused
//! because of a transfer must never be applied (`checks/exactly_once.rs`).

use super::{index_of, peer, World};
use crate::TransferOutcome;
use rand::Rng;

impl World {
    /// Maybe asks the leader for a leadership transfer.
    pub(super) fn transfer(&mut self) -> Result<(), String> {
        if !self.rng.random_bool(self.sc.transfer_rate) {
            return Ok(());
        }
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let target = if self.rng.random_bool(0.5) {
            None
        } else {
            Some(peer(self.rng.random_range(0..self.nodes.len())))
        };
        let sn = &mut self.nodes[l];
        let Some(node) = sn.node.as_mut() else {
            return Ok(());
        };
        let result = node
            .transfer_leadership(target, &sn.store)
            .map_err(|e| format!("node {l} transfer_leadership: {e}"))
            .map_err(|e| self.fail(e))?;
        let asked = target.map(|t| index_of(&t));
        match result {
            Ok(to) if Some(to) != Some(peer(l)) => {
                self.stats.transfers += 1;
                self.note(format!(
                    "leader {l} transfers to {} (asked {asked:?})",
                    index_of(&to)
                ));
            }
            Ok(_) => {}
            Err(e) => {
                self.stats.transfers_refused += 1;
                self.note(format!("leader {l} refuses a transfer to {asked:?}: {e}"));
            }
        }
        self.drive(l)
    }

    /// A transfer node `i` ran as leader ended.
    pub(super) fn transfer_ended(&mut self, i: usize, outcome: TransferOutcome) {
        match outcome {
            TransferOutcome::SteppedDown { to, term } => {
                self.stats.transfers_stepped_down += 1;
                self.transfer_ends.push((term.0, index_of(&to)));
            }
            TransferOutcome::TimedOut { .. } | TransferOutcome::TargetRemoved { .. } => {
                self.stats.transfers_abandoned += 1
            }
        }
        self.note(format!("node {i}: transfer ended: {outcome:?}"));
    }

    /// Transfers whose target led the term its old leader stepped down to.
    pub(super) fn completed_transfers(&self) -> u32 {
        let won = |&&(term, to): &&(u64, usize)| self.checks.election.leader_of(term) == Some(to);
        self.transfer_ends.iter().filter(won).count() as u32
    }
}
