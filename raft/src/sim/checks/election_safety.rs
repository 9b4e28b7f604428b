//! Election Safety (Raft §5.2, Figure 3): at most one leader can be elected in a given term.

use std::collections::BTreeMap;

#[derive(Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<u64, usize>,
}

impl ElectionSafety {
    /// Node `node` is leader in `term`.
    pub fn leader(&mut self, term: u64, node: usize) -> Result<bool, String> {
        match self.leaders.get(&term) {
            Some(&other) if other != node => Err(format!(
                "election safety: nodes {other} and {node} both lead term {term}"
            )),
            Some(_) => Ok(false),
            None => {
                self.leaders.insert(term, node);
                Ok(true)
            }
        }
    }

    /// The node that led `term`, if one was seen.
    pub fn leader_of(&self, term: u64) -> Option<usize> {
        self.leaders.get(&term).copied()
    }

    /// The highest term a leader was seen in (0 before any).
    pub fn max_term(&self) -> u64 {
        self.leaders.keys().next_back().copied().unwrap_or(0)
    }

    pub fn elections(&self) -> usize {
        self.leaders.len()
    }
}
