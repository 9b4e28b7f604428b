//! Linearizable reads (dissertation §6.4): a strong read must observe every write that
//! completed before it began, and more: the read index it is served at must be at least
//! the highest commit index any node knew when the read was invoked (a read never goes
//! back in time). Weak reads are not checked.

use std::collections::HashMap;

#[derive(Default)]
pub struct LinearizableReads {
    /// (node, ctx) -> the lowest index the read may be served at.
    required: HashMap<(usize, u64), u64>,
    pub served: u64,
}

impl LinearizableReads {
    pub fn invoked(&mut self, node: usize, ctx: u64, max_commit_known: u64) {
        self.required.insert((node, ctx), max_commit_known);
    }

    pub fn abandoned(&mut self, node: usize, ctx: u64) {
        self.required.remove(&(node, ctx));
    }

    /// The read is served from a state that has applied `applied` (>= its read index).
    pub fn served(
        &mut self,
        node: usize,
        ctx: u64,
        read_index: u64,
        applied: u64,
    ) -> Result<(), String> {
        let Some(required) = self.required.remove(&(node, ctx)) else {
            return Ok(());
        };
        self.served += 1;
        if read_index < required || applied < read_index {
            return Err(format!(
                "linearizable reads: node {node} served read {ctx} at read index {read_index} (applied {applied}), \
                 but index {required} was already committed when it was invoked"
            ));
        }
        Ok(())
    }
}
