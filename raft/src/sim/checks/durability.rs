//! Durability of acknowledged writes: no command whose `execute` returned `Ok` is ever
//! lost or replaced, whatever crashes happen (a crash keeps what was synced, so a majority
//! of voters' disks always survives in this simulator).
//!
//! Every `Ok((term, index))` must match what was applied at that index, and at the end the
//! leader's log must still hold every acknowledged entry.

use std::collections::BTreeMap;

#[derive(Default)]
pub struct Durability {
    /// index -> (term, command id) of every acknowledged command.
    pub acked: BTreeMap<u64, (u64, u64)>,
}

impl Durability {
    pub fn acknowledged(
        &mut self,
        node: usize,
        index: u64,
        term: u64,
        command: u64,
        applied: &BTreeMap<u64, (u64, u64)>,
    ) -> Result<(), String> {
        if let Some(&(t, _)) = applied.get(&index) {
            if t != term {
                return Err(format!(
                    "durability: node {node} acknowledged command {command} at {index}@{term}, \
                     but {index}@{t} was applied"
                ));
            }
        }
        self.acked.insert(index, (term, command));
        Ok(())
    }

    /// After the run: `term_at` reads the final leader's log.
    pub fn all_present(&self, mut term_at: impl FnMut(u64) -> Option<u64>) -> Result<(), String> {
        for (&index, &(term, command)) in &self.acked {
            let found = term_at(index);
            if found != Some(term) {
                return Err(format!(
                    "durability: acknowledged command {command} at {index}@{term} is lost: \
                     the final leader holds {found:?} there"
                ));
            }
        }
        Ok(())
    }
}
