//! Leader Completeness (Raft §5.4, Figure 3): if an entry is committed in a term, it is
//! present in the logs of the leaders of all higher terms.
//!
//! "Committed" here is what some node applied (the state-machine checker's record): when a
//! node becomes leader, its log must hold every such entry with the same term that was
//! committed in a lower term than the new leader's.
//!
//! The term an entry was committed in is that of the leader whose commit index first
//! covered it, not the entry's own term: a leader of term 7 may commit an entry of term 5,
//! and a leader of term 6 elected after that (its voters had not heard of term 7 yet)
//! legitimately lacks it; it can commit nothing, as those voters moved on. The checker
//! does not see who committed an entry; it bounds that term from above by the highest
//! term any leader was seen in (or the applying node's own term, if higher) when the
//! entry was first applied. That can only skip leaders the property covers, never check
//! one it does not: no false alarms.

use std::collections::BTreeMap;

#[derive(Default)]
pub struct LeaderCompleteness {
    /// index -> the bound above on the term its entry was committed in.
    committed_by: BTreeMap<u64, u64>,
}

impl LeaderCompleteness {
    /// The entry at `index` was applied for the first time, when leaders were seen up to
    /// `term` (see the module doc); later applications change nothing.
    pub fn applied(&mut self, index: u64, term: u64) {
        self.committed_by.entry(index).or_insert(term);
    }

    /// `term_at` reads the new leader's log.
    pub fn new_leader(
        &self,
        node: usize,
        term: u64,
        committed: &BTreeMap<u64, (u64, u64)>,
        mut term_at: impl FnMut(u64) -> Option<u64>,
    ) -> Result<(), String> {
        for (&index, &(entry_term, _)) in committed {
            let committed_in = self
                .committed_by
                .get(&index)
                .copied()
                .unwrap_or(entry_term)
                .max(entry_term);
            if committed_in >= term {
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
