//! The watch and no-lost-write checks. Every watcher covers a span of revisions (from its
//! start to the last progress it got); within its span it must have seen:
//! - each change once, in revision order (no revision goes backwards, no key twice at one
//!   revision);
//! - exactly the changes every other watcher saw at the same revisions;
//! - every acknowledged put and compare-and-swap, at the index the node answered, with its
//!   value: an acknowledged write missing from a watch that covers its index is a lost
//!   write (or a watch that skipped it);
//! - no value that no client tried to write to that key.

use super::checker::{Input, Operation, Output};
use super::workload::{key_number, Change, WatchLog};
use std::collections::{BTreeMap, HashSet};

/// The outcome of the checks.
#[derive(Clone, Debug, Default)]
pub struct WatchVerdict {
    /// Changes seen, summed over the watchers.
    pub changes: usize,
    /// Acknowledged writes checked against the watches.
    pub acknowledged: usize,
    /// Stream breaks resumed, summed over the watchers.
    pub reconnects: u64,
    /// What is wrong, one line per finding (empty: every check passed).
    pub problems: Vec<String>,
}

/// Checks the watchers' logs against each other and against the history.
pub fn check(logs: &[WatchLog], ops: &[Operation]) -> WatchVerdict {
    let mut verdict = WatchVerdict {
        changes: logs.iter().map(|l| l.changes.len()).sum(),
        reconnects: logs.iter().map(|l| l.reconnects).sum(),
        ..WatchVerdict::default()
    };
    let problems = &mut verdict.problems;
    for (w, log) in logs.iter().enumerate() {
        if let Some(e) = &log.error {
            problems.push(format!("watcher {w} ended early: {e}"));
        }
        let mut last: Option<&Change> = None;
        let mut seen = HashSet::new();
        for c in &log.changes {
            if c.revision < log.from {
                problems.push(format!(
                    "watcher {w}: change at revision {} before its start {}",
                    c.revision, log.from
                ));
            }
            if let Some(l) = last {
                if c.revision < l.revision {
                    problems.push(format!(
                        "watcher {w}: revision {} after {} (out of order)",
                        c.revision, l.revision
                    ));
                }
            }
            if !seen.insert((c.revision, c.key)) {
                problems.push(format!(
                    "watcher {w}: key k{} at revision {} delivered twice",
                    c.key, c.revision
                ));
            }
            last = Some(c);
        }
    }

    // Every watcher agrees with the first one on the revisions both cover.
    let by_revision: Vec<BTreeMap<u64, Vec<Change>>> = logs
        .iter()
        .map(|log| {
            let mut map: BTreeMap<u64, Vec<Change>> = BTreeMap::new();
            for c in &log.changes {
                map.entry(c.revision).or_default().push(*c);
            }
            map
        })
        .collect();
    for w in 1..logs.len() {
        let lo = logs[0].from.max(logs[w].from);
        let hi = logs[0].progress.min(logs[w].progress);
        if lo > hi {
            continue;
        }
        let a: Vec<_> = by_revision[0].range(lo..=hi).collect();
        let b: Vec<_> = by_revision[w].range(lo..=hi).collect();
        if a != b {
            let first = a
                .iter()
                .zip(&b)
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("watcher 0 has {x:?}, watcher {w} has {y:?}"))
                .unwrap_or_else(|| {
                    format!(
                        "watcher 0 saw {} revisions, watcher {w} {}",
                        a.len(),
                        b.len()
                    )
                });
            problems.push(format!(
                "watchers 0 and {w} disagree between revisions {lo} and {hi}: {first}"
            ));
        }
    }

    // Every acknowledged put or compare-and-swap is in every watch covering its index.
    let mut tried = HashSet::new();
    for op in ops {
        let key = key_number(&op.key);
        let value = match op.input {
            Input::Put { value } | Input::Cas { value, .. } => value,
            Input::Get | Input::Delete => continue,
        };
        tried.insert((key, value));
        let Output::Written { index } = op.output else {
            continue;
        };
        verdict.acknowledged += 1;
        let want = Change {
            revision: index,
            key,
            value: Some(value),
        };
        for (w, log) in logs.iter().enumerate() {
            if index < log.from || index > log.progress {
                continue;
            }
            let found = by_revision[w]
                .get(&index)
                .is_some_and(|cs| cs.contains(&want));
            if !found {
                problems.push(format!(
                    "acknowledged write lost or skipped: {} = {value} at index {index} (client {}, answered at {:.3} s) is not in watcher {w}'s changes at that revision ({:?})",
                    op.key,
                    op.client,
                    op.ret.unwrap_or(0) as f64 / 1e9,
                    by_revision[w].get(&index)
                ));
            }
        }
    }
    for (w, log) in logs.iter().enumerate() {
        for c in &log.changes {
            if let Some(v) = c.value {
                if !tried.contains(&(c.key, v)) {
                    problems.push(format!(
                        "watcher {w}: k{} = {v} at revision {} was never written by any client",
                        c.key, c.revision
                    ));
                }
            }
        }
    }
    problems.truncate(20);
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: u64, index: u64) -> Operation {
        Operation {
            client: 0,
            key: key.into(),
            call: index * 10,
            ret: Some(index * 10 + 5),
            input: Input::Put { value },
            output: Output::Written { index },
        }
    }

    fn log(from: u64, progress: u64, changes: &[(u64, u64, u64)]) -> WatchLog {
        WatchLog {
            from,
            progress,
            changes: changes
                .iter()
                .map(|&(revision, key, value)| Change {
                    revision,
                    key,
                    value: Some(value),
                })
                .collect(),
            ..WatchLog::default()
        }
    }

    #[test]
    fn agreeing_complete_watches_pass() {
        let ops = [put("chaos/k1", 7, 3), put("chaos/k2", 8, 4)];
        let logs = [
            log(1, 4, &[(3, 1, 7), (4, 2, 8)]),
            log(2, 5, &[(3, 1, 7), (4, 2, 8)]),
        ];
        let v = check(&logs, &ops);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.acknowledged, 2);
    }

    #[test]
    fn a_lost_write_a_duplicate_a_disagreement_and_a_phantom_are_found() {
        let ops = [put("chaos/k1", 7, 3), put("chaos/k2", 8, 4)];
        let logs = [
            log(1, 4, &[(3, 1, 7), (3, 1, 7)]),
            log(1, 4, &[(3, 1, 7), (4, 2, 9)]),
        ];
        let v = check(&logs, &ops);
        let all = v.problems.join("\n");
        assert!(all.contains("delivered twice"), "{all}");
        assert!(all.contains("disagree"), "{all}");
        assert!(all.contains("acknowledged write lost"), "{all}");
        assert!(all.contains("never written"), "{all}");
    }

    #[test]
    fn out_of_order_changes_are_found() {
        let logs = [log(1, 9, &[(5, 1, 7), (4, 2, 8)])];
        let v = check(&logs, &[]);
        assert!(v.problems.iter().any(|p| p.contains("out of order")));
    }
}
