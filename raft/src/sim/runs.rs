//! The simulator's test entry points.
//!
//! - `seeds`: runs `SIM_SEEDS` seeds (default 2,000) from `SIM_SEED_START` (default 0)
//!   of the standard scenario, on as many threads as there are CPUs.
//! - `replay`: runs one seed (`SIM_SEED`, scenario `SIM_SCENARIO`) with the trace printed.
//! - `*_is_caught`: each switches off one safety rule through a test-only knob and asserts
//!   that the simulator finds the violation within a bounded number of seeds.

use super::{run_seed, Scenario};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `count` seeds from `start` in parallel; returns the first failure (lowest seed
/// among those seen) and the number of seeds run.
fn run_many(
    start: u64,
    count: u64,
    scenario: &Scenario,
    stop_at_first: bool,
    accept: &(dyn Fn(&str) -> bool + Sync),
) -> (Option<(u64, String)>, u64) {
    let next = AtomicU64::new(start);
    let ran = AtomicU64::new(0);
    let failure: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= start + count {
                    break;
                }
                if stop_at_first && failure.lock().unwrap().is_some() {
                    break;
                }
                let result = run_seed(seed, scenario);
                ran.fetch_add(1, Ordering::Relaxed);
                if let Err(report) = result {
                    if !accept(&report) {
                        continue;
                    }
                    let mut f = failure.lock().unwrap();
                    if f.as_ref().is_none_or(|(s, _)| seed < *s) {
                        *f = Some((seed, report));
                    }
                }
            });
        }
    });
    (failure.into_inner().unwrap(), ran.load(Ordering::Relaxed))
}

#[test]
fn seeds() {
    let start = env_u64("SIM_SEED_START", 0);
    let count = env_u64("SIM_SEEDS", 2000);
    let scenario = Scenario::standard();
    let began = Instant::now();
    let (failure, ran) = run_many(start, count, &scenario, false, &|_| true);
    eprintln!(
        "simulation: {ran} seeds ({start}..{}) in {:.1?}",
        start + count,
        began.elapsed()
    );
    if let Some((_, report)) = failure {
        panic!("{report}");
    }
}

#[test]
fn replay() {
    let Ok(seed) = std::env::var("SIM_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("SIM_SEED is a number");
    let name = std::env::var("SIM_SCENARIO").unwrap_or_else(|_| "standard".into());
    let mut scenario = Scenario::by_name(&name).expect("known SIM_SCENARIO");
    scenario.trace = true;
    match run_seed(seed, &scenario) {
        Ok(stats) => println!("seed {seed} passed: {stats:?}"),
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn standard_runs_make_progress() {
    // Guards against a simulator that passes because nothing happens.
    let scenario = Scenario::standard();
    let mut elections = 0;
    let mut acked = 0;
    let mut reads = 0;
    let mut crashes = 0;
    let mut repairs = 0;
    let mut changes = 0;
    let (mut sessions, mut caught_up, mut replayed) = (0, 0, 0);
    let (mut transfers, mut completed, mut refused) = (0, 0, 0);
    let (mut quiesced, mut wakes) = (0, 0);
    for seed in 0..20 {
        let stats = run_seed(seed, &scenario).unwrap_or_else(|r| panic!("{r}"));
        elections += stats.elections;
        acked += stats.acked;
        reads += stats.reads_served;
        crashes += stats.crashes;
        repairs += stats.log_repairs;
        changes += stats.membership_changes;
        sessions += stats.replay_sessions;
        caught_up += stats.replay_caught_up;
        replayed += stats.replayed;
        transfers += stats.transfers;
        completed += stats.transfers_completed;
        refused += stats.transfers_refused;
        quiesced += stats.quiesced_node_ticks;
        wakes += stats.wakes;
    }
    eprintln!("quiesced node-ticks {quiesced}, woken by lost contact {wakes}, transfers {transfers} (won {completed}, refused {refused})");
    assert!(elections >= 20, "elections {elections}");
    assert!(acked >= 500, "acknowledged commands {acked}");
    assert!(reads >= 100, "strong reads served {reads}");
    assert!(crashes >= 20, "crashes {crashes}");
    assert!(repairs >= 5, "crashes that damaged a log {repairs}");
    assert!(changes >= 5, "membership changes {changes}");
    assert!(sessions >= 20, "log-replay sessions {sessions}");
    assert!(
        caught_up >= 10,
        "log-replay sessions that caught up {caught_up}"
    );
    assert!(replayed >= 200, "entries caught up by replay {replayed}");
    assert!(transfers >= 20, "leadership transfers {transfers}");
    assert!(completed >= 10, "transfers won by their target {completed}");
    assert!(refused >= 5, "refused transfers {refused}");
    assert!(quiesced >= 2000, "quiesced node-ticks {quiesced}");
    assert!(wakes >= 5, "quiesced nodes woken by lost contact {wakes}");
}

/// The safety properties the checkers report (each report starts with one of them).
const SAFETY: [&str; 7] = [
    "election safety",
    "log matching",
    "leader completeness",
    "state machine safety",
    "durability",
    "linearizable reads",
    "exactly once",
];

/// Asserts the simulator finds a *safety* violation (not merely a stall) when the rule
/// `scenario` switches off, within `budget` seeds, and that the report names one of
/// `properties` and the replay command.
fn assert_caught(name: &str, budget: u64, properties: &[&str]) {
    let scenario = Scenario::by_name(name).expect("scenario");
    let is_safety = |r: &str| SAFETY.iter().any(|p| r.contains(&format!("): {p}:")));
    let (failure, ran) = run_many(0, budget, &scenario, true, &is_safety);
    let (seed, report) =
        failure.unwrap_or_else(|| panic!("{name}: no violation found in {ran} seeds"));
    eprintln!(
        "{name}: caught at seed {seed}:\n{}",
        report.lines().next().unwrap_or("")
    );
    assert!(
        properties
            .iter()
            .any(|p| report.contains(&format!("): {p}:"))),
        "{name}: expected a violation of one of {properties:?}, got:\n{report}"
    );
    assert!(
        report.contains("SIM_SCENARIO="),
        "the report names the replay command"
    );
}

#[test]
fn commit_of_old_term_entries_is_caught() {
    assert_caught(
        "commit_any_term",
        3000,
        &["leader completeness", "state machine safety", "durability"],
    );
}

/// Two leaders of one term: the checks see it as two leaders, or first as two different
/// entries of that term at one index (whichever the schedule shows first).
#[test]
fn forgetting_the_vote_is_caught() {
    assert_caught("forget_vote", 3000, &["election safety", "log matching"]);
}

#[test]
fn acknowledging_before_sync_is_caught() {
    assert_caught(
        "ack_before_sync",
        3000,
        &["leader completeness", "state machine safety", "durability"],
    );
}
