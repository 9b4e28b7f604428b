//! The nemesis suite (`tessera_testkit::chaos`) as tests: a short run with every nemesis
//! this machine allows, checked for linearizability, watch exactness and lost writes; and
//! the suite's own test: builds with a deliberate bug must be flagged.
//!
//! `make chaos` runs the first test longer: `CHAOS_SECS` (default here 40), `CHAOS_NEMESES`
//! (a comma-separated list or `all`, the default), `CHAOS_SEED` (replays a run: the
//! schedule and the clients' choices; default: from the clock, printed), `CHAOS_NODES`
//! (3 or 5), `CHAOS_CLIENTS`.

use std::sync::Mutex;
use std::time::Duration;
use tessera_testkit::chaos::nemesis::Nemesis;
use tessera_testkit::chaos::run::{run, Config, Report};
use tessera_testkit::{partition, slow_link};

/// One run at a time: the runs share `lo`'s iptables rules and queue, and the CPU.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The nemeses asked for, without those this machine cannot run (said once).
fn nemeses(list: &str) -> Vec<Nemesis> {
    let asked = Nemesis::parse_list(list).unwrap_or_else(|e| panic!("CHAOS_NEMESES: {e}"));
    let iptables = partition::available();
    let tc = slow_link::available();
    asked
        .into_iter()
        .filter(|n| {
            let why = match n {
                Nemesis::Partition | Nemesis::OneWay => iptables.as_ref().err(),
                Nemesis::Slow => tc.as_ref().err(),
                _ => None,
            };
            if let Some(why) = why {
                println!("nemesis {} left out: {why}", n.name());
            }
            why.is_none()
        })
        .collect()
}

fn seed() -> u64 {
    env_or(
        "CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    )
}

/// Runs `config` on a fresh runtime in a temporary directory (kept when a run expected to
/// pass fails).
fn run_once(name: &str, expect_pass: bool, configure: impl FnOnce(&mut Config)) -> Report {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::Builder::new()
        .prefix(&format!("tessera-chaos-{name}-"))
        .tempdir()
        .expect("temporary directory");
    let mut config = Config::new(env!("CARGO_BIN_EXE_tessera"), root.path(), seed());
    configure(&mut config);
    println!("{name}: seed {} (CHAOS_SEED replays it)", config.seed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime
        .block_on(run(config))
        .unwrap_or_else(|e| panic!("{name}: the cluster did not start: {e}"));
    println!("{report}");
    if expect_pass && report.kept.is_some() {
        let _ = root.keep();
    }
    report
}

#[test]
fn nemesis_run_is_linearizable_and_loses_nothing() {
    let report = run_once("run", true, |c| {
        c.duration = Duration::from_secs(env_or("CHAOS_SECS", 40));
        c.nemeses = nemeses(&std::env::var("CHAOS_NEMESES").unwrap_or_else(|_| "all".into()));
        c.nodes = env_or("CHAOS_NODES", 3);
        c.workload.clients = env_or("CHAOS_CLIENTS", c.workload.clients);
    });
    assert!(report.passed(), "the nemesis run failed:\n{report}");
    assert!(
        report.counts.writes > 100 && report.counts.reads > 100,
        "too little load to check anything:\n{report}"
    );
    assert!(
        report.watches.acknowledged > 0 && report.watches.changes > 0,
        "the watches saw nothing:\n{report}"
    );
}

#[test]
fn a_read_served_locally_as_linearizable_is_flagged() {
    let report = run_once("bug-local-read", false, |c| {
        c.recovery_bound = Duration::from_secs(20);
        c.duration = Duration::from_secs(15);
        c.nemeses = nemeses("partition,pause");
        c.node_env = vec![("TESSERA_DELIBERATE_BUG".into(), "local-read".into())];
    });
    assert!(
        report.violation_found(),
        "a build serving local reads as linearizable was not flagged:\n{report}"
    );
}

#[test]
fn an_acknowledgement_before_fsync_is_flagged() {
    let report = run_once("bug-lazy-fsync", false, |c| {
        c.recovery_bound = Duration::from_secs(15);
        c.duration = Duration::from_secs(20);
        c.nemeses = vec![Nemesis::KillAll];
        c.fault_time = (Duration::from_millis(500), Duration::from_secs(1));
        c.quiet_time = (Duration::from_secs(1), Duration::from_secs(2));
        c.node_env = vec![("TESSERA_DELIBERATE_BUG".into(), "lazy-fsync".into())];
    });
    assert!(
        report.violation_found(),
        "a build acknowledging writes before their fsync was not flagged:\n{report}"
    );
}
