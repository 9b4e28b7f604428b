//! Figures from a run: per fault (time to the first new write, longest gap without an
//! acknowledged write, time to a new leader, relink time), per system and fault kind
//! (medians and maxima), and tessera beside etcd.

use crate::faults::{Fault, Kind};
use crate::system::Failure;
use crate::writers::Attempt;
use std::collections::BTreeMap;
use std::time::Duration;

/// One system's run.
pub struct Run {
    /// `tessera` or `etcd`.
    pub name: &'static str,
    /// The faults in order.
    pub faults: Vec<Fault>,
    /// Every writer's attempts.
    pub attempts: Vec<Attempt>,
    /// A quiet stretch with the writers running and no fault, for comparison.
    pub quiet: (Duration, Duration),
}

/// What one fault did to the writes.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Leader or follower.
    pub kind: Kind,
    /// The member killed.
    pub member: usize,
    /// From the kill to the acknowledgement of the first write sent after it.
    pub first_new_write: Option<Duration>,
    /// The longest time without an acknowledgement in the fault's window.
    pub longest_gap: Duration,
    /// From the kill to a status showing a new leader (leader kills).
    pub new_leader: Option<Duration>,
    /// From the restart to a status showing the member linked and caught up.
    pub relink: Option<Duration>,
    /// Failed attempts sent to the members that were not killed, sent and failed within
    /// the window: how each failed and when it was sent, from the kill.
    pub failed_elsewhere: Vec<(Failure, Duration)>,
    /// All attempts in the window (sent within it).
    pub attempts: usize,
}

/// Acknowledgement times, sorted.
fn ok_ends(attempts: &[Attempt]) -> Vec<Duration> {
    let mut ends: Vec<Duration> = attempts
        .iter()
        .filter(|a| a.failure.is_none())
        .map(|a| a.end)
        .collect();
    ends.sort();
    ends
}

/// The longest time in `[from, to]` without an acknowledgement, counted from the last one
/// before `from` (or `from`) and up to `to` at most: a fault's window ends at the next
/// kill, whose own gap belongs to the next fault.
fn longest_gap(ends: &[Duration], from: Duration, to: Duration) -> Duration {
    let first_inside = ends.partition_point(|&e| e <= from);
    let first_after = ends.partition_point(|&e| e <= to);
    let mut points = Vec::new();
    points.push(first_inside.checked_sub(1).map_or(from, |i| ends[i]));
    points.extend_from_slice(&ends[first_inside..first_after]);
    points.push(to);
    points
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or_default()
}

/// The figures of every fault of a run.
pub fn figures(run: &Run) -> Vec<Figures> {
    let ends = ok_ends(&run.attempts);
    run.faults
        .iter()
        .map(|f| {
            let first_new_write = run
                .attempts
                .iter()
                .filter(|a| a.failure.is_none() && a.start >= f.killed_at)
                .map(|a| a.end.saturating_sub(f.killed_at))
                .min();
            let in_window: Vec<&Attempt> = run
                .attempts
                .iter()
                .filter(|a| a.start >= f.killed_at && a.start < f.window_end)
                .collect();
            Figures {
                kind: f.kind,
                member: f.member,
                first_new_write,
                longest_gap: longest_gap(&ends, f.killed_at, f.window_end),
                new_leader: f.new_leader_at.map(|t| t.saturating_sub(f.killed_at)),
                relink: f.relink.done.map(|t| t.saturating_sub(f.restarted_at)),
                // A failure that ended after the next kill may be that fault's doing.
                failed_elsewhere: in_window
                    .iter()
                    .filter(|a| a.member != f.member && a.end <= f.window_end)
                    .filter_map(|a| Some((a.failure?, a.start.saturating_sub(f.killed_at))))
                    .collect(),
                attempts: in_window.len(),
            }
        })
        .collect()
}

/// The quiet stretch: longest gap and median write latency.
pub fn quiet(run: &Run) -> (Duration, Duration) {
    let (from, to) = run.quiet;
    let gap = longest_gap(&ok_ends(&run.attempts), from, to);
    let lat: Vec<Duration> = run
        .attempts
        .iter()
        .filter(|a| a.failure.is_none() && a.start >= from && a.end <= to)
        .map(|a| a.end - a.start)
        .collect();
    (gap, median(&lat).unwrap_or_default())
}

/// Median (mean of the two middle values for an even count).
pub fn median(values: &[Duration]) -> Option<Duration> {
    let mut v = values.to_vec();
    v.sort();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2),
    }
}

/// Largest.
pub fn max(values: &[Duration]) -> Option<Duration> {
    values.iter().max().copied()
}

/// Milliseconds, or a dash.
pub fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{}", d.as_millis()))
}

/// One row of the summary: a system and a fault kind.
#[derive(Clone, Debug)]
pub struct Row {
    /// System.
    pub system: &'static str,
    /// Fault kind.
    pub kind: Kind,
    /// Faults counted.
    pub faults: usize,
    /// Faults whose first new write or relink never came (within the bound).
    pub missing: usize,
    /// Medians and maxima, in the table's column order.
    pub cells: [Option<Duration>; 7],
}

/// Column titles of [`Row::cells`].
pub const COLUMNS: [&str; 7] = [
    "first new write p50",
    "max",
    "longest gap p50",
    "max",
    "new leader p50",
    "relink p50",
    "relink max",
];

/// The summary row of `figures` of one kind.
pub fn row(system: &'static str, kind: Kind, figures: &[Figures]) -> Row {
    let of: Vec<&Figures> = figures.iter().filter(|f| f.kind == kind).collect();
    let first: Vec<Duration> = of.iter().filter_map(|f| f.first_new_write).collect();
    let gap: Vec<Duration> = of.iter().map(|f| f.longest_gap).collect();
    let leader: Vec<Duration> = of.iter().filter_map(|f| f.new_leader).collect();
    let relink: Vec<Duration> = of.iter().filter_map(|f| f.relink).collect();
    let missing = of
        .iter()
        .filter(|f| f.first_new_write.is_none() || f.relink.is_none())
        .count();
    Row {
        system,
        kind,
        faults: of.len(),
        missing,
        cells: [
            median(&first),
            max(&first),
            median(&gap),
            max(&gap),
            median(&leader),
            median(&relink),
            max(&relink),
        ],
    }
}

/// Prints each fault's figures.
pub fn print_faults(run: &Run, figures: &[Figures]) {
    println!(
        "\n{}: per fault (ms; window = from the kill to the next fault)",
        run.name
    );
    println!("| # | fault | member | first new write | longest gap | new leader | relink | attempts | failed on other members |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, f) in figures.iter().enumerate() {
        println!(
            "| {i} | {} | #{} | {} | {} | {} | {} | {} | {} |",
            f.kind.name(),
            f.member,
            ms(f.first_new_write),
            f.longest_gap.as_millis(),
            ms(f.new_leader),
            ms(f.relink),
            f.attempts,
            describe_failures(&f.failed_elsewhere)
        );
    }
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &run.attempts {
        *outcomes
            .entry(a.failure.map_or("acknowledged", |f| f.name()))
            .or_default() += 1;
    }
    let (gap, lat) = quiet(run);
    println!(
        "{}: {} attempts {:?}; quiet stretch of {:.1} s before the first fault: longest gap {} ms, median write {:.1} ms",
        run.name,
        run.attempts.len(),
        outcomes,
        run.quiet.1.saturating_sub(run.quiet.0).as_secs_f64(),
        gap.as_millis(),
        lat.as_secs_f64() * 1e3
    );
}

/// "0", or "3: client timeout sent +0.01 s, ..." (the first three).
fn describe_failures(failed: &[(Failure, Duration)]) -> String {
    if failed.is_empty() {
        return "0".into();
    }
    let first: Vec<String> = failed
        .iter()
        .take(3)
        .map(|(f, t)| format!("{} sent +{:.2} s", f.name(), t.as_secs_f64()))
        .collect();
    let more = if failed.len() > 3 { ", ..." } else { "" };
    format!("{}: {}{more}", failed.len(), first.join(", "))
}

/// Prints the summary table: every row, then tessera / etcd per kind when both ran.
pub fn print_summary(rows: &[Row]) {
    println!(
        "| system | fault | faults | {} |",
        COLUMNS.map(|c| format!("{c} (ms)")).join(" | ")
    );
    println!("|---|---|---:|{}", "---:|".repeat(COLUMNS.len()));
    for r in rows {
        let faults = if r.missing > 0 {
            format!("{} ({} incomplete)", r.faults, r.missing)
        } else {
            r.faults.to_string()
        };
        println!(
            "| {} | {} | {faults} | {} |",
            r.system,
            r.kind.name(),
            r.cells.map(ms).join(" | ")
        );
    }
    for kind in [Kind::Leader, Kind::Follower] {
        let t = rows
            .iter()
            .find(|r| r.system == "tessera" && r.kind == kind);
        let e = rows.iter().find(|r| r.system == "etcd" && r.kind == kind);
        if let (Some(t), Some(e)) = (t, e) {
            let ratios: Vec<String> = t
                .cells
                .iter()
                .zip(&e.cells)
                .map(|(t, e)| match (t, e) {
                    (Some(t), Some(e)) if !e.is_zero() => {
                        format!("{:.2}x", t.as_secs_f64() / e.as_secs_f64())
                    }
                    _ => "-".into(),
                })
                .collect();
            println!(
                "| tessera / etcd | {} | | {} |",
                kind.name(),
                ratios.join(" | ")
            );
        }
    }
}
