//! Failover, tessera beside etcd: how long writes stop when a member is SIGKILLed.
//!
//! Run: `cargo bench --profile dev --bench failover` (or `make failover`, which installs
//! etcd first when it is missing). Knobs:
//! - `FAILOVER_ROUNDS=N` (default 5): rounds of one leader kill and one follower kill;
//! - `FAILOVER_WRITERS=N` (default 4): concurrent writer tasks;
//! - `FAILOVER_CLIENT_TIMEOUT_MS=N` (default 500): one write's client timeout;
//! - `FAILOVER_PACE_MS=N` (default 50; 0 = none): the paced writer's spacing;
//! - `FAILOVER_ONLY=tessera|etcd`: run one system only;
//! - `FAILOVER_ETCD=PATH`: the etcd executable (default: `etcd` on the `PATH`);
//! - `FAILOVER_KEEP=1`: keep the directory (data, `nN.log`, `eN.log`) instead of removing it.
//!
//! What it does, for tessera and then for etcd:
//! 1. Three members on 127.0.0.1: `tessera node` processes (this package's binary, through
//!    `LocalCluster`) with **no timing flags**, so the node's defaults; the bench reads them
//!    from `tessera node --help` (the status JSON does not carry them). Then three etcd 3.4
//!    members with the same `--election-timeout` and the same `--heartbeat-interval`, except
//!    that etcd refuses an election timeout under five heartbeats: its heartbeat is then
//!    `election / 5` and the bench says so. etcd's other settings are its defaults (3.4:
//!    no pre-vote).
//! 2. `FAILOVER_WRITERS` writer tasks put unique 100-byte values over HTTP (tessera: its
//!    client, `PUT /v1/kv/{key}`; etcd: its JSON gateway, `POST /v3/kv/put`), each to every
//!    member in turn; a write that fails or passes the client timeout is retried at once on
//!    the next member. Beside them a paced writer starts one write every `FAILOVER_PACE_MS`
//!    whatever the answers (each in its own task, members in turn, same timeout): after a
//!    leader kill the closed-loop writers all hang on the dead leader and retry together
//!    once per client timeout, which alone would measure the first new write to the
//!    nearest 500 ms. Every attempt is recorded (start, end, member, outcome). A quiet
//!    stretch of 3 s with no fault comes first, as the baseline.
//! 3. `FAILOVER_ROUNDS` rounds of: SIGKILL the leader; poll status every 20 ms until another
//!    member says it leads; wait until a write sent after the kill is acknowledged; leave it
//!    down 1 s more; restart it from its data directory; poll it until it is linked again.
//!    Then SIGKILL a follower (the two take turns) and restart it at once; poll it until
//!    linked. 2 s of quiet writes follow each fault.
//! 4. A read-back: each writer's last acknowledged key is read linearizably from every
//!    member and must hold its value.
//!
//! Per fault (from the attempts and the polls):
//! - **first new write**: from the kill to the acknowledgement of the first write *sent
//!   after* the kill;
//! - **longest gap**: the longest time without any acknowledgement in the fault's window
//!   (from the last acknowledgement before the kill up to the next fault's kill);
//! - **new leader**: from the kill to the first status in which another member leads;
//! - **relink**: from the restart command (process spawn) to the first status of the
//!   restarted member that shows it linked (tessera: `online` and bonded to both others;
//!   etcd: a leader known), knowing a leader, and applied up to the commit index the leader
//!   reported just before the restart (just before the kill for a follower).
//!
//! Printed: a line per fault as it happens, a table per system, then one summary table
//! (median and max per system and fault kind, and tessera / etcd), the timings, and the
//! issue's targets marked met / not met. Nothing is asserted on timings. Every process is
//! a child of this one, killed on any exit (guards, and SIGKILL when this thread dies).

// The crate root is this file, so its modules are named by path.
#[path = "failover/etcd.rs"]
mod etcd;
#[path = "failover/faults.rs"]
mod faults;
#[path = "failover/report.rs"]
mod report;
#[path = "failover/system.rs"]
mod system;
#[path = "failover/writers.rs"]
mod writers;

use faults::{Kind, Schedule};
use report::{Figures, Row, Run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use system::System;
use writers::{Clock, Progress};

/// Bound on every wait for the clusters (a leader, a write, a relink).
const BOUND: Duration = Duration::from_secs(60);
/// Writes before the quiet stretch starts (connections, first elections settle).
const WARM_UP: Duration = Duration::from_secs(1);
/// The quiet stretch measured as the baseline.
const QUIET: Duration = Duration::from_secs(3);
/// How long a killed leader stays down after the first new write.
const DOWN: Duration = Duration::from_secs(1);
/// Quiet writing after each fault.
const SETTLE: Duration = Duration::from_secs(2);
/// The target for a restarted follower.
const RELINK_TARGET: Duration = Duration::from_secs(1);

/// Settings from the environment.
struct Config {
    rounds: usize,
    writers: usize,
    client_timeout: Duration,
    /// A paced write every this often (`None`: closed-loop writers only).
    pace: Option<Duration>,
    keep: bool,
    only: Option<String>,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let only = std::env::var("FAILOVER_ONLY")
            .ok()
            .filter(|s| !s.is_empty());
        if let Some(o) = &only {
            if o != "tessera" && o != "etcd" {
                return Err(format!("FAILOVER_ONLY={o:?}: expected tessera or etcd"));
            }
        }
        Ok(Config {
            rounds: env_number("FAILOVER_ROUNDS", 5, 1)? as usize,
            writers: env_number("FAILOVER_WRITERS", 4, 1)? as usize,
            client_timeout: Duration::from_millis(env_number(
                "FAILOVER_CLIENT_TIMEOUT_MS",
                500,
                1,
            )?),
            pace: match env_number("FAILOVER_PACE_MS", 50, 0)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            keep: std::env::var("FAILOVER_KEEP").is_ok_and(|v| v == "1"),
            only,
        })
    }

    fn runs(&self, system: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == system)
    }
}

/// A whole number from the environment, at least `min`, or `default` when unset.
fn env_number(name: &str, default: u64, min: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(format!("{name}={text:?}: expected a whole number >= {min}")),
        },
    }
}

/// The node's default heartbeat and election timeout (ms), from `tessera node --help`.
fn node_defaults(exe: &Path) -> Result<(u64, u64), String> {
    let out = Command::new(exe)
        .args(["node", "--help"])
        .output()
        .map_err(|e| format!("{} node --help: {e}", exe.display()))?;
    let help = String::from_utf8_lossy(&out.stdout);
    Ok((
        default_of(&help, "--heartbeat-ms")?,
        default_of(&help, "--election-timeout-ms")?,
    ))
}

/// The `[default: N]` clap prints in `flag`'s entry of a long help text.
fn default_of(help: &str, flag: &str) -> Result<u64, String> {
    let mut lines = help
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some(flag));
    let first = lines
        .next()
        .ok_or_else(|| format!("`tessera node --help` has no {flag}"))?;
    let entry = std::iter::once(first)
        .chain(lines.take_while(|l| !l.trim_start().starts_with('-')))
        .collect::<Vec<_>>()
        .join(" ");
    let text = entry
        .split("[default: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .ok_or_else(|| format!("`tessera node --help` shows no default for {flag}"))?;
    text.trim()
        .parse()
        .map_err(|e| format!("`tessera node --help`: default of {flag} {text:?}: {e}"))
}

fn main() {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("failover: {e}");
            std::process::exit(2);
        }
    };
    let root = match tempfile::Builder::new()
        .prefix("tessera-failover-")
        .tempdir()
    {
        Ok(root) => root,
        Err(e) => {
            eprintln!("failover: a temporary directory: {e}");
            std::process::exit(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("failover: tokio runtime: {e}");
            drop(root);
            std::process::exit(1);
        }
    };
    // The clusters live and die inside this call (their guards kill every child), before
    // the directory goes.
    let outcome = runtime.block_on(run_all(&config, root.path()));
    drop(runtime);
    if config.keep {
        let kept = root.keep();
        println!("kept {} (FAILOVER_KEEP=1)", kept.display());
    } else {
        drop(root);
    }
    if let Err(e) = outcome {
        eprintln!("failover: {e}");
        std::process::exit(1);
    }
}

async fn run_all(config: &Config, root: &Path) -> Result<(), String> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_tessera"));
    let (heartbeat, election) = node_defaults(&exe)?;
    let etcd_heartbeat = heartbeat.min(election / 5);
    println!(
        "failover: 3 members each on 127.0.0.1, {} writers and {} (client timeout {} ms, every member in turn), {} rounds of a leader SIGKILL and a follower SIGKILL; data in {}",
        config.writers,
        pace_text(config.pace),
        config.client_timeout.as_millis(),
        config.rounds,
        root.display()
    );
    let timings = format!(
        "tessera: node defaults, heartbeat {heartbeat} ms, election timeout {election} ms (read from `tessera node --help`; no timing flags given)"
    );
    println!("{timings}");
    let clock = Clock::start();
    let mut runs = Vec::new();

    if config.runs("tessera") {
        println!("\ntessera: starting 3 `tessera node` processes");
        let started = clock.now();
        let mut sys = system::Tessera::start(&exe, &root.join("tessera"))?;
        runs.push(run_system(&mut sys, config, clock, started).await?);
    }

    let mut etcd_timings = None;
    if config.runs("etcd") {
        match etcd::find_etcd() {
            None => println!(
                "\netcd: not found (set FAILOVER_ETCD or install etcd-server; `make failover` does): etcd half skipped"
            ),
            Some(etcd_exe) => {
                let version = etcd::version(&etcd_exe)?;
                let line = format!(
                    "etcd: {version}, --heartbeat-interval {etcd_heartbeat} --election-timeout {election}{}; etcd draws each election timeout from [1x, 2x)",
                    if etcd_heartbeat != heartbeat {
                        format!(" (etcd refuses an election timeout under 5 heartbeats, so heartbeat = election / 5, not {heartbeat})")
                    } else {
                        " (the same as tessera's)".into()
                    }
                );
                println!("\n{line}");
                let started = clock.now();
                let mut sys =
                    etcd::Etcd::start(&etcd_exe, &root.join("etcd"), 3, etcd_heartbeat, election)?;
                runs.push(run_system(&mut sys, config, clock, started).await?);
                etcd_timings = Some(line);
            }
        }
    }

    let mut rows = Vec::new();
    let mut all = Vec::new();
    for run in &runs {
        let figures = report::figures(run);
        report::print_faults(run, &figures);
        rows.push(report::row(run.name, Kind::Leader, &figures));
        rows.push(report::row(run.name, Kind::Follower, &figures));
        all.push((run, figures));
    }
    println!("\nSummary");
    println!("{timings}");
    if let Some(line) = &etcd_timings {
        println!("{line}");
    }
    println!(
        "{} writers and {}, client timeout {} ms, {} rounds\n",
        config.writers,
        pace_text(config.pace),
        config.client_timeout.as_millis(),
        config.rounds
    );
    report::print_summary(&rows);
    print_targets(&rows, &all, (heartbeat, election), config.pace);
    Ok(())
}

fn pace_text(pace: Option<Duration>) -> String {
    match pace {
        Some(p) => format!("a paced write every {} ms", p.as_millis()),
        None => "no paced writes".into(),
    }
}

/// One system from a running cluster to its run record; on failure, the members' logs.
async fn run_system<S: System>(
    sys: &mut S,
    config: &Config,
    clock: Clock,
    started: Duration,
) -> Result<Run, String> {
    let result = drive(sys, config, clock, started).await;
    if result.is_err() {
        for i in 0..sys.len() {
            eprintln!("--- last lines of {} member #{i}:", sys.name());
            eprintln!("{}", sys.log_tail(i, 20));
        }
    }
    result
}

/// `started`: when the members were started (for the first leader's line).
async fn drive<S: System>(
    sys: &mut S,
    config: &Config,
    clock: Clock,
    started: Duration,
) -> Result<Run, String> {
    let name = sys.name();
    let (leader, _) = faults::find_leader(sys, BOUND).await?;
    println!(
        "  {name}: #{leader} leads, {:.1} s after the start",
        clock.now().saturating_sub(started).as_secs_f64()
    );
    let progress = Progress::new();
    let targets = |sys: &S| -> Vec<system::Target> {
        (0..sys.len())
            .map(|i| sys.target(i, config.client_timeout))
            .collect()
    };
    let mut handles: Vec<_> = (0..config.writers)
        .map(|w| tokio::spawn(writers::writer(w, targets(sys), clock, progress.clone())))
        .collect();
    if let Some(pace) = config.pace {
        // Enough permits that a write every `pace` never waits while each may take up to
        // the client timeout.
        let in_flight = (config.client_timeout.as_millis() / pace.as_millis().max(1)) as usize + 2;
        handles.push(tokio::spawn(writers::paced(
            config.writers,
            targets(sys),
            pace,
            in_flight,
            clock,
            progress.clone(),
        )));
    }
    tokio::time::sleep(WARM_UP).await;
    let quiet_from = clock.now();
    tokio::time::sleep(QUIET).await;
    let quiet = (quiet_from, clock.now());
    let schedule = Schedule {
        rounds: config.rounds,
        down: DOWN,
        settle: SETTLE,
        bound: BOUND,
    };
    let result = faults::run(sys, clock, &progress, schedule).await;
    progress
        .stop
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut attempts = Vec::new();
    for h in handles {
        attempts.extend(
            h.await
                .map_err(|e| format!("{name}: a writer panicked: {e}"))?,
        );
    }
    let faults = result?;
    read_back(sys, &attempts).await?;
    Ok(Run {
        name,
        faults,
        attempts,
        quiet,
    })
}

/// Each writer's last acknowledged key, read linearizably from every member, must hold
/// its value: the figures count writes that really landed.
async fn read_back<S: System>(sys: &mut S, attempts: &[writers::Attempt]) -> Result<(), String> {
    let name = sys.name();
    faults::find_leader(sys, BOUND).await?;
    let mut last: std::collections::BTreeMap<usize, (u64, &str)> = Default::default();
    for a in attempts.iter().filter(|a| a.failure.is_none()) {
        if let Some((w, n)) = writers::parse_key(&a.key) {
            let e = last.entry(w).or_insert((n, &a.key));
            if n >= e.0 {
                *e = (n, &a.key);
            }
        }
    }
    let mut checked = 0;
    for (&w, &(n, key)) in &last {
        let value = writers::value_of(w, n);
        for i in 0..sys.len() {
            let target = sys.target(i, Duration::from_secs(5));
            let mut outcome = Err(String::new());
            for _ in 0..10 {
                outcome = target.holds(key, &value).await;
                if outcome.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match outcome {
                Ok(true) => checked += 1,
                Ok(false) => {
                    return Err(format!(
                        "{name}: member #{i} does not hold acknowledged {key}"
                    ))
                }
                Err(e) => return Err(format!("{name}: reading {key} from #{i}: {e}")),
            }
        }
    }
    if checked == 0 {
        return Err(format!("{name}: no acknowledged write to read back"));
    }
    println!(
        "  {name}: read back {} writers' last acknowledged keys from every member ({checked} reads)",
        last.len()
    );
    Ok(())
}

/// The targets, from the figures (met / not met; never asserted).
fn print_targets(
    rows: &[Row],
    all: &[(&Run, Vec<Figures>)],
    timings: (u64, u64),
    pace: Option<Duration>,
) {
    let (heartbeat, election) = timings;
    let cell = |system: &str, kind: Kind, col: usize| {
        rows.iter()
            .find(|r| r.system == system && r.kind == kind)
            .and_then(|r| r.cells[col])
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\nTargets (issue 12), read from the figures above:");
    let limit = Duration::from_millis(election + 2 * heartbeat);
    let t_first = cell("tessera", Kind::Leader, 0);
    let t_first_max = cell("tessera", Kind::Leader, 1);
    if let Some(t) = t_first {
        println!(
            "- leader SIGKILL, median first new write within election + 2 heartbeats ({} ms): {} ms, {}",
            limit.as_millis(),
            t.as_millis(),
            verdict(t <= limit)
        );
    }
    if let (Some(t), Some(tm), Some(e), Some(em)) = (
        t_first,
        t_first_max,
        cell("etcd", Kind::Leader, 0),
        cell("etcd", Kind::Leader, 1),
    ) {
        println!(
            "- leader SIGKILL, first new write never later than etcd's: median {} vs {} ms, max {} vs {} ms, {}",
            t.as_millis(),
            e.as_millis(),
            tm.as_millis(),
            em.as_millis(),
            verdict(t <= e && tm <= em)
        );
    }
    if let Some(t) = cell("tessera", Kind::Follower, 6) {
        println!(
            "- restarted follower linked again within {} ms: max {} ms, {}",
            RELINK_TARGET.as_millis(),
            t.as_millis(),
            verdict(t <= RELINK_TARGET)
        );
    }
    for (run, figures) in all {
        let (quiet_gap, _) = report::quiet(run);
        let followers: Vec<&Figures> = figures
            .iter()
            .filter(|f| f.kind == Kind::Follower)
            .collect();
        if followers.is_empty() {
            continue;
        }
        let failed: usize = followers.iter().map(|f| f.failed_elsewhere.len()).sum();
        let worst = followers
            .iter()
            .map(|f| f.longest_gap)
            .max()
            .unwrap_or_default();
        println!(
            "- {}: no write outage after a follower SIGKILL (every write sent to the other members acknowledged): {failed} failed, {}; longest gap {} ms (quiet stretch {} ms{})",
            run.name,
            verdict(failed == 0),
            worst.as_millis(),
            quiet_gap.as_millis(),
            match pace {
                Some(p) => format!(
                    "; while one member of three does not answer, paced writes alone leave gaps up to 2 x {} ms",
                    p.as_millis()
                ),
                None => String::new(),
            }
        );
    }
}
