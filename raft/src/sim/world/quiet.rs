//! Quiescence in the simulator (`quiesce.rs` in the core): which seeds quiesce, the quiet
//! windows in which clients pause so groups go idle, and the driver's rule that stands in
//! for the network's link watchdog: a node that loses contact with a peer (the peer
//! crashed, or a partition cut them apart) is woken at once, as the worker wakes its core
//! when a link closes. Nothing else wakes a quiesced node from outside. The driver also
//! tells every node which peers it can reach (`Node::set_reachable`: down, or cut off
//! either way), as the worker does when every link to a peer closed or one came up.

use super::{Scenario, World};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Clients pause for this many ticks out of every `3 * QUIET_WINDOW`.
const QUIET_WINDOW: u64 = 50;

/// The quiesce setting of a seed: three seeds in four of the standard scenario quiesce,
/// after 3 to 12 idle ticks (heartbeats every 2). Drawn from its own RNG so the other
/// draws of a seed stay as they were before quiescence existed. The rule-switch scenarios
/// run without it: each is tuned to show its own rule's violation first.
pub(super) fn quiesce_after(seed: u64, scenario: &Scenario) -> u32 {
    if scenario.name != "standard" {
        return 0;
    }
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5155_4945_5343_4500);
    if rng.random_bool(0.75) {
        rng.random_range(3..=12)
    } else {
        0
    }
}

impl World {
    /// Whether clients pause now (only in seeds that quiesce).
    pub(super) fn quiet_window(&self) -> bool {
        self.quiesce_after > 0 && (self.tick / QUIET_WINDOW) % 3 == 2
    }

    /// The driver's rule: every live node in `nodes` lost contact with a peer and is woken.
    pub(super) fn lost_contact(&mut self, nodes: &[usize]) -> Result<(), String> {
        for &j in nodes {
            let Some(node) = self.nodes[j].node.as_mut() else {
                continue;
            };
            if node.is_quiesced() {
                node.wake();
                self.stats.wakes += 1;
                self.note(format!("node {j} lost contact: woken"));
                self.drive(j)?;
            }
        }
        Ok(())
    }

    /// The driver's reachability rule, once per tick: every live node hears which peers it
    /// can reach now (a crashed peer, or a partition either way, is unreachable). A leader
    /// woken by a peer back is driven at once (its heartbeat goes out).
    pub(super) fn reachability(&mut self) -> Result<(), String> {
        let n = self.nodes.len();
        for j in 0..n {
            let reach: Vec<bool> = (0..n)
                .map(|k| {
                    !self.nodes[k].down
                        && !self.blocked.contains(&(j, k))
                        && !self.blocked.contains(&(k, j))
                })
                .collect();
            let sn = &mut self.nodes[j];
            let Some(node) = sn.node.as_mut() else {
                continue;
            };
            let was_quiesced = node.is_quiesced();
            for (k, reachable) in reach.into_iter().enumerate() {
                if k != j {
                    node.set_reachable(super::peer(k), reachable);
                }
            }
            if was_quiesced && !node.is_quiesced() {
                self.note(format!("node {j} reaches a peer again: woken"));
                self.drive(j)?;
            }
        }
        Ok(())
    }

    /// Every live node but `i` (which crashed).
    pub(super) fn peers_of(&self, i: usize) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&j| j != i).collect()
    }

    /// Counts the nodes quiesced after a tick.
    pub(super) fn count_quiesced(&mut self) {
        let n = self
            .nodes
            .iter()
            .filter(|sn| sn.node.as_ref().is_some_and(|n| n.is_quiesced()))
            .count();
        self.stats.quiesced_node_ticks += n as u64;
    }
}
