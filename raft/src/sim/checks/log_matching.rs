//! Log Matching (Raft §5.3, Figure 3): if two logs contain an entry with the same index and
//! term, the logs are identical in all entries up through that index.
//!
//! Checked inductively and cheaply: every entry any node writes is recorded by (index,
//! term) with its payload digest and the term of the entry before it in that node's log.
//! Two writes of the same (index, term) must agree on both; by induction on the index the
//! whole prefixes agree.

use std::collections::HashMap;

#[derive(Default)]
pub struct LogMatching {
    seen: HashMap<(u64, u64), (u64, u64)>,
}

impl LogMatching {
    pub fn written(
        &mut self,
        node: usize,
        index: u64,
        term: u64,
        digest: u64,
        prev_term: u64,
    ) -> Result<(), String> {
        match self.seen.get(&(index, term)) {
            Some(&(d, p)) if d != digest || p != prev_term => Err(format!(
                "log matching: node {node} wrote entry {index}@{term} (digest {digest:x}, prev term {prev_term}) \
                 but another node holds {index}@{term} with digest {d:x}, prev term {p}"
            )),
            Some(_) => Ok(()),
            None => {
                self.seen.insert((index, term), (digest, prev_term));
                Ok(())
            }
        }
    }
}
