//! One nemesis run: start the nodes, start the clients and watchers, inject faults on a
//! seeded schedule until the time is up, heal everything, read every key back from every
//! node, and check the history. [`run`] returns a [`Report`] that prints the operations,
//! the faults with the unavailability each caused, and the verdict; a failed run keeps
//! its history (`history.jsonl`) and the node logs, and the report names the directory
//! and the seed that replays the schedule.

use super::checker::{self, Input, Operation, Output, Verdict};
use super::history::{self, FaultRecord};
use super::nemesis::{Active, Nemesis, Nodes};
use super::watches::{self, WatchVerdict};
use super::workload::{self, Shared, Workload, PREFIX};
use crate::cluster::LocalCluster;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::store::client::{Client, ReadOptions};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `tessera` executable.
    pub exe: PathBuf,
    /// Where the nodes' data directories and logs go.
    pub root: PathBuf,
    /// Seeds the schedule and the clients' choices.
    pub seed: u64,
    /// How long faults are injected (the run takes longer: start, heal, checks).
    pub duration: Duration,
    /// The nemeses to draw from (none: a run without faults).
    pub nemeses: Vec<Nemesis>,
    /// Whether a step may apply two faults at once.
    pub combine: bool,
    /// Nodes (3 or 5).
    pub nodes: usize,
    /// The clients' load.
    pub workload: Workload,
    /// How long a fault lasts: drawn between these bounds.
    pub fault_time: (Duration, Duration),
    /// The pause between two faults: drawn between these bounds.
    pub quiet_time: (Duration, Duration),
    /// Environment for every node (a deliberate bug: `TESSERA_DELIBERATE_BUG`).
    pub node_env: Vec<(String, String)>,
    /// The search budget of the linearizability checker, per key.
    pub check_budget: Duration,
    /// How long the healed cluster may take to elect, catch up and let the watchers
    /// finish (each).
    pub recovery_bound: Duration,
}

impl Config {
    /// A run of `duration` with every nemesis, 3 nodes and the default load.
    pub fn new(exe: impl Into<PathBuf>, root: impl Into<PathBuf>, seed: u64) -> Config {
        Config {
            exe: exe.into(),
            root: root.into(),
            seed,
            duration: Duration::from_secs(30),
            nemeses: Nemesis::ALL.to_vec(),
            combine: true,
            nodes: 3,
            workload: Workload::default(),
            fault_time: (Duration::from_secs(2), Duration::from_secs(5)),
            quiet_time: (Duration::from_secs(1), Duration::from_secs(3)),
            node_env: Vec::new(),
            check_budget: Duration::from_secs(10),
            recovery_bound: Duration::from_secs(60),
        }
    }
}

/// One fault and what it cost.
#[derive(Clone, Debug)]
pub struct FaultOutcome {
    /// The fault.
    pub fault: FaultRecord,
    /// From the fault's start to the first write that was sent after it began and
    /// succeeded (`None`: none before the next fault or the end).
    pub first_write: Option<Duration>,
    /// The longest time without any successful write, from the fault's start to the next
    /// fault (or the end).
    pub longest_gap: Duration,
}

/// Counts of the calls.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Linearizable reads answered.
    pub reads: usize,
    /// Writes acknowledged (puts, deletes, successful compare-and-swaps).
    pub writes: usize,
    /// Compare-and-swaps whose comparison failed.
    pub cas_failed: usize,
    /// Writes with an unknown outcome.
    pub unknown: usize,
    /// Writes refused before they could apply (left out of the history).
    pub refused: u64,
}

/// The result of a run.
#[derive(Debug)]
pub struct Report {
    /// The seed (replays the schedule and the clients' choices).
    pub seed: u64,
    /// The nemeses drawn from.
    pub nemeses: Vec<Nemesis>,
    /// How long the run took, end to end.
    pub elapsed: Duration,
    /// The calls.
    pub counts: Counts,
    /// Every fault, in order.
    pub faults: Vec<FaultOutcome>,
    /// The linearizability verdict.
    pub linearizability: checker::Report,
    /// The watch and no-lost-write verdict.
    pub watches: WatchVerdict,
    /// Anything else that failed: a fault that could not be applied or healed, no leader
    /// after healing, nodes that disagree at the end.
    pub problems: Vec<String>,
    /// Where the history and logs were kept (a failed run).
    pub kept: Option<PathBuf>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        matches!(self.linearizability.verdict, Verdict::Linearizable)
            && self.watches.problems.is_empty()
            && self.problems.is_empty()
    }

    /// Whether the checks found a safety violation (not just an inconclusive search or a
    /// liveness problem): what a deliberate bug must produce.
    pub fn violation_found(&self) -> bool {
        matches!(self.linearizability.verdict, Verdict::Violation(_))
            || self
                .watches
                .problems
                .iter()
                .any(|p| !p.contains("ended early"))
            || self.problems.iter().any(|p| p.contains("disagree"))
    }

    /// Per nemesis: faults, and the longest time without a successful write after one.
    pub fn by_nemesis(&self) -> BTreeMap<&'static str, (usize, Duration)> {
        let mut out: BTreeMap<&'static str, (usize, Duration)> = BTreeMap::new();
        for f in &self.faults {
            let e = out.entry(f.fault.nemesis).or_default();
            e.0 += 1;
            e.1 = e.1.max(f.longest_gap);
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.nemeses.iter().map(|n| n.name()).collect();
        writeln!(
            f,
            "nemesis run: seed {} nemeses {} in {:.1} s",
            self.seed,
            if names.is_empty() {
                "none".into()
            } else {
                names.join(",")
            },
            self.elapsed.as_secs_f64()
        )?;
        let c = &self.counts;
        writeln!(
            f,
            "operations: {} reads, {} writes acknowledged, {} compare failed, {} unknown outcome, {} refused before applying",
            c.reads, c.writes, c.cas_failed, c.unknown, c.refused
        )?;
        for o in &self.faults {
            writeln!(
                f,
                "  fault at {:>6.1} s for {:>4.1} s: {:<55} first new write after {:>6}  longest without a write {:.2} s",
                o.fault.start as f64 / 1e9,
                o.fault.healed.saturating_sub(o.fault.start) as f64 / 1e9,
                o.fault.what,
                o.first_write
                    .map(|d| format!("{:.2} s", d.as_secs_f64()))
                    .unwrap_or_else(|| "never".into()),
                o.longest_gap.as_secs_f64()
            )?;
        }
        for (name, (n, gap)) in self.by_nemesis() {
            writeln!(
                f,
                "  {name:<10} {n:>3} faults, longest without a successful write {:.2} s",
                gap.as_secs_f64()
            )?;
        }
        writeln!(
            f,
            "linearizability ({} keys, {} operations; Porcupine's algorithm): {}",
            self.linearizability.keys,
            self.linearizability.operations,
            self.linearizability.verdict
        )?;
        writeln!(
            f,
            "watches: {} changes seen, {} acknowledged writes checked, {} resumes: {}",
            self.watches.changes,
            self.watches.acknowledged,
            self.watches.reconnects,
            if self.watches.problems.is_empty() {
                "every change once, in order, none lost".to_string()
            } else {
                self.watches.problems.join("\n  ")
            }
        )?;
        for p in &self.problems {
            writeln!(f, "problem: {p}")?;
        }
        write!(
            f,
            "verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )?;
        if let Some(dir) = &self.kept {
            write!(
                f,
                " (history and node logs kept in {}; replay with CHAOS_SEED={})",
                dir.display(),
                self.seed
            )?;
        }
        Ok(())
    }
}

fn between(rng: &mut SmallRng, (lo, hi): (Duration, Duration)) -> Duration {
    if hi <= lo {
        return lo;
    }
    lo + Duration::from_millis(rng.random_range(0..=(hi - lo).as_millis() as u64))
}

/// Runs the suite once. `Err` only when the cluster could not be started at all.
pub async fn run(config: Config) -> Result<Report, String> {
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut cluster = LocalCluster::new(
        &config.exe,
        &config.root,
        &vec![ip; config.nodes],
        crate::cluster::fast_timings(),
    )?;
    for (k, v) in &config.node_env {
        cluster = cluster.with_env(k, v);
    }
    cluster.start_all()?;
    cluster.wait_leader(Duration::from_secs(60)).await?;
    let mut nodes = Nodes {
        cluster,
        slots: (0..config.nodes).collect(),
    };
    let endpoints = (0..config.nodes)
        .map(|i| nodes.cluster.node(i).endpoint())
        .collect();
    let shared = Arc::new(Shared::new(endpoints));
    let start_revision = nodes
        .cluster
        .client(0, Duration::from_secs(5))
        .status()
        .await
        .map_err(|e| format!("status of n0: {e}"))?
        .applied;

    let mut clients = Vec::new();
    for id in 0..config.workload.clients {
        clients.push(tokio::spawn(workload::client(
            id,
            shared.clone(),
            config.workload.clone(),
            config.seed,
        )));
    }
    let give_up = config.recovery_bound;
    let watchers: Vec<_> = (0..config.nodes)
        .map(|i| {
            tokio::spawn(workload::watcher(
                i,
                shared.clone(),
                start_revision + 1,
                give_up,
            ))
        })
        .collect();

    let mut problems = Vec::new();
    let mut faults: Vec<FaultRecord> = Vec::new();
    let deadline = Instant::now() + config.duration;
    while Instant::now() < deadline {
        tokio::time::sleep(between(&mut rng, config.quiet_time)).await;
        if config.nemeses.is_empty() || Instant::now() >= deadline {
            continue;
        }
        let first = config.nemeses[rng.random_range(0..config.nemeses.len())];
        let mut step = vec![first];
        if config.combine && rng.random_bool(0.3) {
            let second = config.nemeses[rng.random_range(0..config.nemeses.len())];
            if first.combines_with(second) {
                step.push(second);
            }
        }
        let mut active: Vec<(Active, usize)> = Vec::new();
        let mut busy = Vec::new();
        for nemesis in step {
            let before = shared.history.now();
            match nodes.apply(nemesis, &mut rng, &busy, &shared).await {
                Ok((fault, what, touched)) => {
                    // A fault counts from when it took effect; a replacement from its kill.
                    let start = match nemesis {
                        Nemesis::Replace => before,
                        _ => shared.history.now(),
                    };
                    busy.extend(touched);
                    faults.push(FaultRecord {
                        what,
                        nemesis: nemesis.name(),
                        start,
                        healed: shared.history.now(),
                    });
                    active.push((fault, faults.len() - 1));
                }
                Err(e) => problems.push(format!("{} could not be applied: {e}", nemesis.name())),
            }
        }
        tokio::time::sleep(between(&mut rng, config.fault_time)).await;
        for (fault, record) in active {
            if let Err(e) = nodes.heal(fault) {
                problems.push(format!("{} could not be healed: {e}", faults[record].what));
            }
            faults[record].healed = shared.history.now();
        }
    }

    // Stop the load; every fault is healed. The cluster must recover on its own.
    shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let ended = shared.history.now();
    let mut final_revision = 0;
    match nodes.cluster.wait_leader(config.recovery_bound).await {
        Err(e) => problems.push(format!("after healing: {e}")),
        Ok((_, leader)) => {
            let commit = leader.commit;
            for &index in &nodes.slots {
                match nodes
                    .cluster
                    .wait_caught_up(index, commit, config.recovery_bound)
                    .await
                {
                    Ok(s) => final_revision = final_revision.max(s.applied),
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    final_reads(&nodes, &shared, &config.workload, &mut problems).await;
    shared
        .final_revision
        .store(final_revision.max(1), Ordering::Release);
    let mut logs = Vec::new();
    for w in watchers {
        match w.await {
            Ok(log) => logs.push(log),
            Err(e) => problems.push(format!("a watcher panicked: {e}")),
        }
    }

    let ops = shared.history.operations();
    let counts = count(&ops, shared.history.refused_count());
    let outcomes = outcomes(&faults, &ops, ended);
    let linearizability = checker::check(&ops, config.check_budget);
    let watches = watches::check(&logs, &ops);
    let mut report = Report {
        seed: config.seed,
        nemeses: config.nemeses.clone(),
        elapsed: started.elapsed(),
        counts,
        faults: outcomes,
        linearizability,
        watches,
        problems,
        kept: None,
    };
    if !report.passed() {
        let path = config.root.join("history.jsonl");
        match history::save(&path, &ops, &faults) {
            Ok(()) => report.kept = Some(config.root.clone()),
            Err(e) => report.problems.push(format!(
                "could not save the history to {}: {e}",
                path.display()
            )),
        }
    }
    drop(nodes);
    Ok(report)
}

/// A key's value and mod_index as one node holds it (`None`: absent).
type KeyState = Option<(u64, u64)>;

/// Reads every key linearizably through every node (into the history, checked with the
/// rest), and from every node's own copy: all nodes must hold the same state.
async fn final_reads(
    nodes: &Nodes,
    shared: &Arc<Shared>,
    workload: &Workload,
    problems: &mut Vec<String>,
) {
    let mut copies: Vec<(String, Vec<KeyState>)> = Vec::new();
    for (slot, &index) in nodes.slots.iter().enumerate() {
        let node = nodes.cluster.node(index);
        let client = match Client::with_timeout(&node.endpoint(), Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("client of {}: {e}", node.name));
                continue;
            }
        };
        let mut copy = Vec::new();
        for k in 0..workload.keys {
            let key = format!("{PREFIX}k{k}");
            let call = shared.history.now();
            match client.get_entry(&key, ReadOptions::default()).await {
                Ok(entry) => shared.history.record(Operation {
                    client: 1_000 + slot,
                    key: key.clone(),
                    call,
                    ret: Some(shared.history.now()),
                    input: Input::Get,
                    output: Output::Read(entry.map(|e| (workload::decode(&e.value), e.mod_index))),
                }),
                Err(e) => problems.push(format!("final read of {key} on {}: {e}", node.name)),
            }
            match client
                .get_entry(
                    &key,
                    ReadOptions {
                        stale: true,
                        ..ReadOptions::default()
                    },
                )
                .await
            {
                Ok(entry) => copy.push(entry.map(|e| (workload::decode(&e.value), e.mod_index))),
                Err(e) => problems.push(format!("stale read of {key} on {}: {e}", node.name)),
            }
        }
        copies.push((node.name.clone(), copy));
    }
    if let Some((first, reference)) = copies.first() {
        for (name, copy) in &copies[1..] {
            if copy != reference {
                problems.push(format!(
                    "nodes disagree at the end: {first} holds {reference:?}, {name} holds {copy:?}"
                ));
            }
        }
    }
}

fn count(ops: &[Operation], refused: u64) -> Counts {
    let mut c = Counts {
        refused,
        ..Counts::default()
    };
    for op in ops {
        match op.output {
            Output::Read(_) => c.reads += 1,
            Output::Written { .. } => c.writes += 1,
            Output::CasFailed { .. } => c.cas_failed += 1,
            Output::Unknown => c.unknown += 1,
        }
    }
    c
}

/// The unavailability after each fault, from the successful writes in the history.
fn outcomes(faults: &[FaultRecord], ops: &[Operation], end: u64) -> Vec<FaultOutcome> {
    let mut done: Vec<(u64, u64)> = ops
        .iter()
        .filter(|op| matches!(op.output, Output::Written { .. }))
        .filter_map(|op| op.ret.map(|r| (op.call, r)))
        .collect();
    done.sort_by_key(|&(_, r)| r);
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let until = faults
                .get(i + 1)
                .map(|n| n.start)
                .unwrap_or(end)
                .max(f.healed);
            let first_write = done
                .iter()
                .filter(|&&(call, ret)| call >= f.start && ret <= until)
                .map(|&(_, ret)| ret)
                .min()
                .map(|r| Duration::from_nanos(r - f.start));
            let mut gap = 0;
            let mut last = f.start;
            for &(_, ret) in done.iter().filter(|&&(_, r)| r >= f.start && r <= until) {
                gap = gap.max(ret - last);
                last = ret;
            }
            gap = gap.max(until.saturating_sub(last));
            FaultOutcome {
                fault: f.clone(),
                first_write,
                longest_gap: Duration::from_nanos(gap),
            }
        })
        .collect()
}
