//! Exactly once: a client command (every command the simulator proposes carries a unique
//! id) is applied at one index only. A forwarded command the network duplicated, or that a
//! follower re-sent after its acknowledgement was lost, must not be appended twice.

use std::collections::HashMap;

#[derive(Default)]
pub struct ExactlyOnce {
    /// command id -> the index it was applied at.
    at: HashMap<u64, u64>,
}

impl ExactlyOnce {
    pub fn applied(&mut self, node: usize, index: u64, command: u64) -> Result<(), String> {
        match self.at.insert(command, index) {
            Some(first) if first != index => Err(format!(
                "exactly once: node {node} applied command {command} at {index}, \
                 but it was applied at {first} too"
            )),
            _ => Ok(()),
        }
    }
}
