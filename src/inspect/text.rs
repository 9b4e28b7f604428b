//! The human form of a [`Report`]: the node and its peers first (what an operator most
//! often looks for), then a few lines per group. Everything here is also in the JSON;
//! the column families are left to it.

use super::{GroupView, KvView, Report};
use indicatif::HumanBytes;
use std::fmt::Write;

/// Renders `report` as text, one line per fact.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "data directory {} (format {})",
        report.path, report.format
    ));
    match &report.node.id {
        Some(id) => {
            line(format!("node      {id}"));
            line(format!(
                "          others reach it as --peer {id}@HOST:PORT (its --advertise or --listen address)"
            ));
        }
        None => line(format!(
            "node      id unknown: {}",
            report.node.reason.as_deref().unwrap_or("no key file")
        )),
    }
    if report.peers.is_empty() {
        line("peers     none saved".to_string());
    } else {
        for (i, peer) in report.peers.iter().enumerate() {
            let label = if i == 0 { "peers" } else { "" };
            line(format!("{label:<9} {peer}"));
        }
    }
    let sum = &report.summary;
    if sum.groups == 0 {
        line("groups    none".to_string());
    } else if sum.omitted > 0 || sum.groups > super::SHOW_ALL_UP_TO {
        line(format!(
            "groups    {} ({} log entries, {} snapshots of {} bytes, {} transfers, {} with problems)",
            sum.groups,
            sum.entries,
            sum.snapshots,
            sum.snapshot_stored_bytes,
            sum.transfers,
            sum.groups_with_problems
        ));
    }
    for group in &report.groups {
        group_lines(group, &mut line);
    }
    if sum.omitted > 0 {
        line(format!(
            "({} of {} groups shown: those with problems and the largest logs; --all lists every group, --group PREFIX picks some)",
            sum.shown, sum.groups
        ));
    }
    out
}

fn group_lines(g: &GroupView, line: &mut impl FnMut(String)) {
    line(format!("group     {}", g.group));
    line(format!(
        "  log       entries {}..={} ({}), term {}, commit {}",
        g.log.anchor.index + 1,
        g.log.last.index,
        g.entries,
        g.hard_state.term,
        g.hard_state.commit
    ));
    match &g.kv {
        KvView::Summary(kv) => {
            let source = match kv.from_snapshot {
                Some(s) => format!("snapshot {s} + {} log entries", kv.log_entries_applied),
                None => format!("{} log entries", kv.log_entries_applied),
            };
            line(format!(
                "  kv        {} keys, revision {}, {} in keys and values, {} history events",
                kv.keys,
                kv.revision,
                HumanBytes(kv.data_bytes),
                kv.history_events
            ));
            let mut at = format!("at commit {} ({source})", kv.computed_at);
            if kv.entries_after_commit > 0 {
                let _ = write!(
                    at,
                    "; {} not counted: the node records its commit index with its next write",
                    plural(kv.entries_after_commit, "later entry", "later entries")
                );
            }
            line(format!("            {at}"));
            if !kv.largest_values.is_empty() {
                let list: Vec<String> = kv
                    .largest_values
                    .iter()
                    .map(|v| format!("{} ({})", v.key, HumanBytes(v.bytes)))
                    .collect();
                line(format!("  largest   {}", list.join(", ")));
            }
        }
        KvView::Unavailable { unavailable } => line(format!("  kv        {unavailable}")),
    }
    if g.snapshots.is_empty() {
        line("  snapshot  none".to_string());
    }
    for s in &g.snapshots {
        let mut text = format!(
            "  snapshot  at {} (term {}): {} items, {} raw, {} stored in {}",
            s.anchor_index,
            s.anchor_term,
            s.items,
            HumanBytes(s.raw_bytes),
            HumanBytes(s.stored_bytes),
            plural(u64::from(s.chunks), "chunk", "chunks")
        );
        if let Some(missing) = s.chunks_missing {
            let _ = write!(text, ", {missing} MISSING");
        }
        line(text);
    }
    for t in &g.transfers {
        line(format!(
            "  transfer  at {} (term {}): {} of {} chunks, {} of {}",
            t.anchor_index,
            t.anchor_term,
            t.chunks_received,
            t.chunks_total,
            HumanBytes(t.stored_bytes_received),
            HumanBytes(t.stored_bytes_total)
        ));
    }
    for p in &g.problems {
        line(format!("  PROBLEM   {p}"));
    }
    for l in &g.leftover_chunks {
        line(format!(
            "  leftover  at {}: {}, {} (no manifest, no transfer)",
            l.anchor_index,
            plural(l.chunks, "chunk", "chunks"),
            HumanBytes(l.stored_bytes)
        ));
    }
}

/// `1 chunk`, `3 chunks`.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
