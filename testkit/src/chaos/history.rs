//! What happened in a run: every client call and every fault, on one clock (nanoseconds
//! since the run started), kept in memory and written out as JSON lines when a run fails.

use super::checker::{Input, Operation, Output};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The run's clock and its records, shared by every client task.
#[derive(Debug)]
pub struct History {
    start: Instant,
    operations: Mutex<Vec<Operation>>,
    /// Writes whose outcome is known to have failed before anything was sent (dropped from
    /// the checked history), by kind: for the report.
    refused: Mutex<u64>,
}

/// One fault as it was applied.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// What was done, e.g. `kill n1 (leader)`.
    pub what: String,
    /// The nemesis that did it (`kill`, `pause`, ...).
    pub nemesis: &'static str,
    /// When it began.
    pub start: u64,
    /// When it was healed (the node restarted or resumed, the link restored).
    pub healed: u64,
}

impl History {
    /// A new history whose clock starts now.
    pub fn new() -> History {
        History {
            start: Instant::now(),
            operations: Mutex::new(Vec::new()),
            refused: Mutex::new(0),
        }
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records a completed (or indeterminate) call.
    pub fn record(&self, op: Operation) {
        if let Ok(mut ops) = self.operations.lock() {
            ops.push(op);
        }
    }

    /// Counts a write that certainly did not apply (left out of the checked history).
    pub fn refused(&self) {
        if let Ok(mut n) = self.refused.lock() {
            *n += 1;
        }
    }

    /// Writes refused before they were sent.
    pub fn refused_count(&self) -> u64 {
        self.refused.lock().map(|n| *n).unwrap_or(0)
    }

    /// Every operation recorded so far, sorted by call time.
    pub fn operations(&self) -> Vec<Operation> {
        let mut ops = self
            .operations
            .lock()
            .map(|ops| ops.clone())
            .unwrap_or_default();
        ops.sort_by_key(|op| op.call);
        ops
    }
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

/// Writes the operations and faults to `path` as JSON lines (one object per line), for a
/// failed run's post-mortem.
pub fn save(path: &Path, ops: &[Operation], faults: &[FaultRecord]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for f in faults {
        let line = serde_json::json!({
            "fault": f.what, "nemesis": f.nemesis, "start_ns": f.start, "healed_ns": f.healed,
        });
        writeln!(out, "{line}")?;
    }
    for op in ops {
        let (input, value, expect) = match op.input {
            Input::Get => ("get", None, None),
            Input::Put { value } => ("put", Some(value), None),
            Input::Delete => ("delete", None, None),
            Input::Cas { expect, value } => ("cas", Some(value), Some(expect)),
        };
        let output = match op.output {
            Output::Unknown => serde_json::json!("unknown"),
            Output::Read(None) => serde_json::json!({"read": null}),
            Output::Read(Some((v, m))) => serde_json::json!({"read": v, "mod_index": m}),
            Output::Written { index } => serde_json::json!({"written": index}),
            Output::CasFailed { current } => serde_json::json!({"cas_failed": current}),
        };
        let line = serde_json::json!({
            "client": op.client, "key": op.key, "call_ns": op.call, "ret_ns": op.ret,
            "op": input, "value": value, "expect": expect, "output": output,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()
}
