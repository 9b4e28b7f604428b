//! State Machine Safety (Raft §5.4.3, Figure 3): if a server has applied a log entry at a
//! given index, no other server will ever apply a different log entry for the same index.
//! Also: every node applies indices in order, without gaps.

use std::collections::BTreeMap;

#[derive(Default)]
pub struct StateMachineSafety {
    /// index -> (term, digest) of the entry applied there (by anyone, ever).
    pub applied: BTreeMap<u64, (u64, u64)>,
}

impl StateMachineSafety {
    pub fn apply(
        &mut self,
        node: usize,
        previous: u64,
        index: u64,
        term: u64,
        digest: u64,
    ) -> Result<(), String> {
        if index != previous + 1 {
            return Err(format!(
                "state machine safety: node {node} applied {index} right after {previous}"
            ));
        }
        match self.applied.get(&index) {
            Some(&(t, d)) if (t, d) != (term, digest) => Err(format!(
                "state machine safety: node {node} applied {index}@{term} (digest {digest:x}) \
                 but {index}@{t} (digest {d:x}) was applied elsewhere"
            )),
            Some(_) => Ok(()),
            None => {
                self.applied.insert(index, (term, digest));
                Ok(())
            }
        }
    }

    pub fn max_committed(&self) -> u64 {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }
}
