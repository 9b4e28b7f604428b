//! Many groups per node: three `tessera groups-node` processes on loopback, each hosting
//! the same 1,000 groups (`MANY_GROUPS`), durable in a directory under the target
//! directory. Prints, per node:
//! - idle: CPU time as a share of one core over `IDLE_SECS` (default 20) once every group
//!   elected and went quiet, resident memory (total and per group), QUIC connections open;
//! - active: 100 groups (`ACTIVE_GROUPS`) written at once by 100 clients (one per group,
//!   each on the node leading its group) against one group written by the same 100
//!   clients, and one group written by one client: commits/s, WAL fsyncs/s (all nodes)
//!   and commits per fsync, over `BENCH_SECS` (default 10);
//! - restart: a node killed with SIGKILL and started again: time to open every group, and
//!   until every group knows a leader again.
//!
//! `cargo bench --bench many_groups`. Not a test: nothing is asserted on the figures; the
//! targets of issue 18 are printed beside them.

use std::path::Path;
use std::time::{Duration, Instant};
use tessera_testkit::groups_node::{three_nodes, GroupsNode};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Err(err) = run() {
        eprintln!("many_groups: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let groups = env_u64("MANY_GROUPS", 1000);
    let active = env_u64("ACTIVE_GROUPS", 100).min(groups);
    let idle_secs = env_u64("IDLE_SECS", 20);
    let secs = env_u64("BENCH_SECS", 10);
    let binary = Path::new(env!("CARGO_BIN_EXE_tessera"));
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("bench-many-groups-")
        .tempdir_in(base)
        .map_err(|e| format!("bench directory: {e}"))?;

    println!("many_groups: {groups} groups on each of 3 nodes (heartbeat 500 ms)");
    let started = Instant::now();
    let mut nodes = three_nodes(binary, dir.path(), groups, 500)?;
    let opened: Vec<u64> = nodes.iter().map(|n| n.opened_ms).collect();
    for node in nodes.iter_mut() {
        let answer = node.command("wait-leaders 600")?;
        if answer["ok"] != true {
            // What each node knows of those groups, to see why they did not form.
            for (i, node) in nodes.iter_mut().enumerate() {
                eprintln!("node {i}: {}", node.command("leaderless")?);
            }
            return Err(format!("groups without a leader: {answer}"));
        }
    }
    println!(
        "formed: every group has a leader {:.1} s after the first start (groups opened in {opened:?} ms)",
        started.elapsed().as_secs_f64()
    );

    // Idle: let the groups settle (elections done, quiet), then measure.
    std::thread::sleep(Duration::from_secs(10));
    let before: Vec<Duration> = nodes
        .iter()
        .map(|n| n.cpu_time())
        .collect::<Result<_, _>>()?;
    let idle_started = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let window = idle_started.elapsed();
    let after: Vec<Duration> = nodes
        .iter()
        .map(|n| n.cpu_time())
        .collect::<Result<_, _>>()?;
    println!();
    println!("| idle, {groups} groups | CPU (share of one core) | resident | per group | connections | links | quiesced groups |");
    println!("|---|---|---|---|---|---|---|");
    for (i, node) in nodes.iter_mut().enumerate() {
        let cpu = (after[i] - before[i]).as_secs_f64() / window.as_secs_f64();
        let rss = node.resident_bytes()?;
        let status = node.command("status")?;
        println!(
            "| node {i} | {:.2}% (target < 5%) | {:.1} MB (target < 100 MB) | {:.1} KB | {} | {} | {} |",
            cpu * 100.0,
            rss as f64 / 1e6,
            rss as f64 / groups as f64 / 1e3,
            field(&status, "connections"),
            field(&status, "links"),
            field(&status, "quiesced"),
        );
    }

    // Active: `active` groups, one client per group on the node leading it.
    let mut led = Vec::new();
    for node in nodes.iter_mut() {
        led.push(
            node.command(&format!("led 0 {active}"))?["led"]
                .as_u64()
                .unwrap_or(0),
        );
    }
    let synced = total_syncs(&mut nodes)?;
    for (node, &clients) in nodes.iter_mut().zip(&led) {
        node.send(&format!("write {secs} {clients} 0 {active} led quiet"))?;
    }
    let mut many = collect(&mut nodes)?;
    many.syncs = total_syncs(&mut nodes)? - synced;
    // One group, the same total number of clients, on the node leading group 0; and
    // one group with one client (what each of the many groups has).
    let one = one_group(&mut nodes, secs, active)?;
    let alone = one_group(&mut nodes, secs, 1)?;
    println!();
    println!("| written at once ({active} clients, {secs} s) | commits/s | WAL fsyncs/s (3 nodes) | commits per fsync |");
    println!("|---|---|---|---|");
    for (name, t) in [
        (format!("{active} groups, 1 client each"), &many),
        (format!("1 group, {active} clients"), &one),
        ("1 group, 1 client".to_string(), &alone),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} | {:.1} |",
            t.commits as f64 / secs as f64,
            t.syncs as f64 / secs as f64,
            t.commits as f64 / t.syncs.max(1) as f64,
        );
    }
    println!(
        "ratio {active} groups / 1 group with {active} clients: {:.2}x (target >= 3x); / 1 group with 1 client: {:.1}x; failed writes: {}, {}, {}",
        many.commits as f64 / one.commits.max(1) as f64,
        many.commits as f64 / alone.commits.max(1) as f64,
        many.errors,
        one.errors,
        alone.errors
    );

    // Restart: SIGKILL the last node and start it again.
    let victim = nodes.pop().ok_or("no node")?;
    let spec = victim.spec.clone();
    let peers: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    victim.kill();
    let restarted_at = Instant::now();
    let mut node = GroupsNode::start(&spec, &peers)?;
    let opened_in = restarted_at.elapsed();
    let answer = node.command("wait-leaders 600")?;
    let leaders_in = restarted_at.elapsed();
    println!();
    println!(
        "restart after SIGKILL of a node with {groups} groups: groups opened in {:.2} s (node's own figure {} ms), every group knows a leader {:.2} s after the start ({answer})",
        opened_in.as_secs_f64(),
        node.opened_ms,
        leaders_in.as_secs_f64()
    );
    nodes.push(node);
    for node in nodes {
        node.quit();
    }
    Ok(())
}

fn field(status: &serde_json::Value, name: &str) -> String {
    status
        .get(name)
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

#[derive(Default)]
struct Totals {
    commits: u64,
    errors: u64,
    syncs: u64,
}

impl Totals {
    fn add(&mut self, answer: &serde_json::Value) {
        self.commits += answer["commits"].as_u64().unwrap_or(0);
        self.errors += answer["errors"].as_u64().unwrap_or(0);
    }
}

/// `clients` clients writing group 0 on the node leading it; the WAL syncs of all nodes.
fn one_group(nodes: &mut [GroupsNode], secs: u64, clients: u64) -> Result<Totals, String> {
    let mut totals = Totals::default();
    let synced = total_syncs(nodes)?;
    for node in nodes.iter_mut() {
        if node.command("led 0 1")?["led"] == 1 {
            node.send(&format!("write {secs} {clients} 0 1 led quiet"))?;
            totals.add(&node.answer(|_| {})?);
        }
    }
    totals.syncs = total_syncs(nodes)? - synced;
    Ok(totals)
}

/// WAL syncs of every node so far.
fn total_syncs(nodes: &mut [GroupsNode]) -> Result<u64, String> {
    let mut total = 0;
    for node in nodes.iter_mut() {
        total += node.command("status")?["syncs"].as_u64().unwrap_or(0);
    }
    Ok(total)
}

fn collect(nodes: &mut [GroupsNode]) -> Result<Totals, String> {
    let mut totals = Totals::default();
    for node in nodes.iter_mut() {
        totals.add(&node.answer(|_| {})?);
    }
    Ok(totals)
}
