//! Peers given by host name and without an id, and nodes refused by their group, with real
//! `tessera node` processes on loopback.
//!
//! - Three nodes form a group from `--peer localhost:PORT` (no id: each learns the id with
//!   the id probe), elect a leader and replicate a write. A node restarted without
//!   `--peer` finds its group again through the name kept in its peers file, resolved
//!   again at the new start.
//! - A node started with another `--group-key`, and one with another snapshot setting and
//!   an id-less `--peer`, each say on their own side that the group refused them and which
//!   settings must match; the refusing node says it too. Each line is logged once (then at
//!   most every five minutes), not once per retry.
//!
//! Every wait is bounded; every process is killed when its cluster is dropped; the logs
//! are kept on failure.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};
use tessera::groups::Consistency;
use tessera_testkit::cluster::{fast_timings, LocalCluster};

const BOUND: Duration = Duration::from_secs(60);

fn run(prefix: &str, scenario: impl AsyncFnOnce(&Path) -> Result<(), String>) {
    let root = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(err) = runtime.block_on(scenario(root.path())) {
        let kept = root.keep();
        panic!("{err}\n(node logs kept in {})", kept.display());
    }
}

/// Waits until node `i`'s log holds a line with every one of `parts`; returns that line.
async fn wait_log(
    cluster: &LocalCluster,
    i: usize,
    parts: &[&str],
    bound: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(&cluster.node(i).log).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return Ok(line.to_string());
        }
        if started.elapsed() > bound {
            return Err(format!(
                "{}'s log has no line with {parts:?} within {bound:?}; its tail:\n{}",
                cluster.node(i).name,
                cluster.log_tail(i, 30)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn count_lines(cluster: &LocalCluster, i: usize, parts: &[&str]) -> usize {
    std::fs::read_to_string(&cluster.node(i).log)
        .unwrap_or_default()
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

#[test]
fn three_nodes_form_from_localhost_names_without_ids() {
    run("tessera-names-", async |root| {
        let mut cluster =
            LocalCluster::loopback(env!("CARGO_BIN_EXE_tessera"), root, fast_timings())?;
        cluster.start(0, &[])?;
        let by_name = format!("localhost:{}", cluster.node(0).listen.port());
        cluster.start_with_peers(1, std::slice::from_ref(&by_name))?;
        cluster.start_with_peers(2, std::slice::from_ref(&by_name))?;
        for i in [1, 2] {
            wait_log(
                &cluster,
                i,
                &["learned the id of a peer given without one", &by_name],
                BOUND,
            )
            .await?;
        }
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        let index = cluster
            .client(leader, Duration::from_secs(10))
            .put("named/a", b"1".to_vec())
            .await
            .map_err(|e| format!("put: {e}"))?;
        for i in 0..3 {
            cluster.wait_caught_up(i, index, BOUND).await?;
            let value = cluster
                .client(i, Duration::from_secs(10))
                .get("named/a", Consistency::Strong)
                .await
                .map_err(|e| format!("get on n{i}: {e}"))?;
            if value.as_deref() != Some(b"1".as_slice()) {
                return Err(format!("n{i} reads {value:?} for named/a"));
            }
        }

        // n1 keeps n0 by name in its peers file, and finds it again after a restart
        // without --peer by resolving the name anew.
        let id0 = cluster.node(0).id().ok_or("n0 has no id")?;
        let peers_file = cluster.node(1).dir.join("peers");
        let text = std::fs::read_to_string(&peers_file)
            .map_err(|e| format!("{}: {e}", peers_file.display()))?;
        let kept = format!("{id0}@{by_name}");
        if !text.lines().any(|l| l == kept) {
            return Err(format!(
                "n1's peers file does not keep n0 by name ({kept}):\n{text}"
            ));
        }
        cluster.kill(1)?;
        cluster.start(1, &[])?;
        let restarted = count_lines(&cluster, 1, &["network up"]);
        if restarted != 2 {
            return Err(format!("n1 logged {restarted} starts, expected 2"));
        }
        wait_log(&cluster, 1, &["peer name resolved", &by_name], BOUND).await?;
        let index = cluster
            .client(leader, Duration::from_secs(10))
            .put("named/b", b"2".to_vec())
            .await
            .map_err(|e| format!("put after the restart: {e}"))?;
        cluster.wait_caught_up(1, index, BOUND).await?;
        Ok(())
    });
}

#[test]
fn a_node_with_other_group_settings_says_its_peers_refused_it() {
    run("tessera-refused-", async |root| {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut group = LocalCluster::loopback(
            env!("CARGO_BIN_EXE_tessera"),
            &root.join("group"),
            fast_timings(),
        )?;
        group.start_all()?;
        group.wait_leader(BOUND).await?;
        let n0 = group.node(0).addr.ok_or("n0 has no address")?;

        // Another group key, n0 given with its id.
        let mut args = fast_timings();
        args.extend(["--group-key", "not-the-group's-key"].map(String::from));
        let mut wrong_key = LocalCluster::new(
            env!("CARGO_BIN_EXE_tessera"),
            &root.join("key"),
            &[ip],
            args,
        )?;
        wrong_key.start(0, &[n0])?;
        let line = wait_log(
            &wrong_key,
            0,
            &[
                "refused this node",
                "--group-key",
                "--heartbeat-ms",
                "--snapshot-every-entries",
            ],
            BOUND,
        )
        .await?;
        if !line.contains("WARN") {
            return Err(format!("the refusal is not a warning: {line}"));
        }
        // The refusing side says it too.
        wait_log(
            &group,
            0,
            &["refused incoming link", "does not host", "--group-key"],
            BOUND,
        )
        .await?;

        // Another snapshot setting, n0 given without its id: the id probe is refused.
        let mut args = fast_timings();
        args.extend(["--snapshot-every-entries", "77"].map(String::from));
        let mut wrong_setting = LocalCluster::new(
            env!("CARGO_BIN_EXE_tessera"),
            &root.join("setting"),
            &[ip],
            args,
        )?;
        wrong_setting.start_with_peers(0, &[n0.addr.to_string()])?;
        wait_log(
            &wrong_setting,
            0,
            &[
                "refused this node",
                "does not host",
                "--snapshot-every-entries",
            ],
            BOUND,
        )
        .await?;

        // Retries go on, but each side said it once (the next line is due in minutes).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let said = count_lines(&wrong_key, 0, &["refused this node"]);
        if said != 1 {
            return Err(format!(
                "the refused node said it {said} times, expected once:\n{}",
                wrong_key.log_tail(0, 20)
            ));
        }
        let said = count_lines(&wrong_setting, 0, &["refused this node"]);
        if said != 1 {
            return Err(format!(
                "the id-less node said it {said} times, expected once:\n{}",
                wrong_setting.log_tail(0, 20)
            ));
        }
        Ok(())
    });
}
