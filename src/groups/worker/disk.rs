//! The worker's side of the disk-space alarm ([`crate::data_dir::space`]): it reads the
//! node's free space every tick (a cached reading: one `statvfs` per node per 250 ms),
//! tells the core, moves leadership off a node that is low, and holds back the entries a
//! leader sends while the node is low.
//!
//! Why entries are dropped rather than refused: an answer that says "not taken" would
//! send the leader probing backwards; a dropped append is resent by the leader at most
//! once per heartbeat (its flow control), and the heartbeats themselves (empty appends)
//! are taken, so the node keeps following, votes and serves reads, and catches up from
//! the leader once the alarm clears.

use super::{Worker, WorkerError};
use crate::groups::machine::StateMachine;
use crate::groups::raft::Message;
use crate::groups::Storage;
use crate::primitives::Short;

impl<M: StateMachine, S: Storage> Worker<M, S> {
    /// Reads the free space (when the group lives in a data directory) and acts on the
    /// alarm: the core refuses client commands while it leads, and a leader with another
    /// active voter hands leadership over (tried again every two election timeouts while
    /// the alarm lasts).
    pub(super) fn check_disk(&mut self) -> Result<(), WorkerError> {
        let Some(dir) = self.network.data_dir() else {
            return Ok(());
        };
        let low = dir.space().check().low;
        if low != self.node.low_space() {
            self.node.set_low_space(low);
            self.space_transfer_at = self.ticks;
        }
        if !low
            || !self.node.is_leader()
            || self.node.transfer_target().is_some()
            || self.ticks < self.space_transfer_at
        {
            return Ok(());
        }
        self.space_transfer_at = self.ticks + 2 * self.election_ticks.max(1);
        match self.node.transfer_leadership(None, &self.store)? {
            Ok(to) if to != self.me => tracing::warn!(
                group = %Short(&self.group),
                to = %Short(&to),
                "disk space low: handing leadership over"
            ),
            Ok(_) => {}
            Err(why) => tracing::warn!(
                group = %Short(&self.group),
                %why,
                "disk space low and leadership cannot move: writes are refused until space is freed"
            ),
        }
        Ok(())
    }

    /// Whether `message` is held back because the disk is low: an append that carries
    /// entries (heartbeats pass).
    pub(super) fn held_back(&self, message: &Message) -> bool {
        self.node.low_space()
            && matches!(message, Message::AppendEntries(append) if !append.entries.is_empty())
    }
}
