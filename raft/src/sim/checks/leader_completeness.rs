//! Leader Completeness (Raft §5.4, Figure 3): if an entry is committed in a term, it is
//! present in the logs of the leaders of all higher terms.
//!
//! "Committed" here is what some node applied (the state-machine checker's record): when a
//! node becomes leader, its log must hold every such entry with the same term.

use std::collections::BTreeMap;

#[derive(Default)]
pub struct LeaderCompleteness;

impl LeaderCompleteness {
    /// `term_at` reads the new leader's log.
    pub fn new_leader(
        &self,
        node: usize,
        term: u64,
        committed: &BTreeMap<u64, (u64, u64)>,
        mut term_at: impl FnMut(u64) -> Option<u64>,
    ) -> Result<(), String> {
        for (&index, &(entry_term, _)) in committed {
            if entry_term > term {
                continue;
            }
            let found = term_at(index);
            if found != Some(entry_term) {
                return Err(format!(
                    "leader completeness: node {node} leads term {term} but holds {found:?} at index {index}, \
                     where entry {index}@{entry_term} was committed"
                ));
            }
        }
        Ok(())
    }
}
