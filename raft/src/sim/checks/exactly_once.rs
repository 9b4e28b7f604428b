//! Exactly once: a client command (every command the simulator proposes carries a unique
//! id) is applied at one index only. A forwarded command the network duplicated, or that a
//! follower re-sent after its acknowledgement was lost, must not be appended twice. And a
//! command refused because of a leadership transfer ("nothing was appended") is never
//! applied at all: its client may retry it elsewhere.

use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub struct ExactlyOnce {
    /// command id -> the index it was applied at.
    at: HashMap<u64, u64>,
    /// Commands refused during a leadership transfer.
    refused: HashSet<u64>,
}

impl ExactlyOnce {
    /// Node `node` reported `command` refused during a leadership transfer.
    pub fn refused(&mut self, node: usize, command: u64) -> Result<(), String> {
        self.refused.insert(command);
        match self.at.get(&command) {
            Some(index) => Err(format!(
                "exactly once: node {node} reported command {command} refused during a \
                 leadership transfer, but it was applied at {index}"
            )),
            None => Ok(()),
        }
    }

    pub fn applied(&mut self, node: usize, index: u64, command: u64) -> Result<(), String> {
        if self.refused.contains(&command) {
            return Err(format!(
                "exactly once: node {node} applied command {command} at {index}, \
                 but it was refused during a leadership transfer"
            ));
        }
        match self.at.insert(command, index) {
            Some(first) if first != index => Err(format!(
                "exactly once: node {node} applied command {command} at {index}, \
                 but it was applied at {first} too"
            )),
            _ => Ok(()),
        }
    }
}
