//! A disk failing under a running node (storage fault injection, compiled only into test
//! builds: `tessera_storage::faults`). Three `tessera node` processes take writes through
//! every node; one node's fsync starts failing (EIO on the leader, ENOSPC on a follower).
//! That node's group must stop with an error naming the failure and its data directory
//! (the node exits with it), and never acknowledge what it could not make durable; the other
//! two go on. Restarted with a working disk it comes back with everything: every write
//! any node acknowledged is on all three nodes, with its value.

mod kv_support;

use hyper::{Method, StatusCode};
use kv_support::{client_of_all, http, run, three_nodes, BOUND};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera::store::client::ReadOptions;
use tessera_storage::faults::FAULT_FILE;
use tessera_testkit::cluster::LocalCluster;

/// The acknowledged writes: key and value.
type Acked = Arc<Mutex<Vec<(String, String)>>>;

/// Writes `disk/NNNNN` keys through every node until `stop`; returns the acknowledged ones.
fn writer(cluster: &LocalCluster, stop: Arc<AtomicBool>) -> (tokio::task::JoinHandle<()>, Acked) {
    let client = client_of_all(cluster, Duration::from_secs(3));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let acked = acknowledged.clone();
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let key = format!("disk/{n:05}");
            let value = format!("value {n}");
            if client.put(&key, value.clone()).await.is_ok() {
                if let Ok(mut a) = acked.lock() {
                    a.push((key, value));
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (task, acknowledged)
}

fn acked_count(acked: &Mutex<Vec<(String, String)>>) -> usize {
    acked.lock().map(|a| a.len()).unwrap_or(0)
}

async fn until_more_acked(acked: &Mutex<Vec<(String, String)>>, more: usize) -> Result<(), String> {
    let target = acked_count(acked) + more;
    let started = Instant::now();
    while acked_count(acked) < target {
        if started.elapsed() > BOUND {
            return Err(format!(
                "writes stalled: {} acknowledged, waited for {target}",
                acked_count(acked)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn scenario(
    root: std::path::PathBuf,
    fault: &str,
    on_leader: bool,
) -> Result<String, String> {
    let mut cluster = three_nodes(&root, &[]).await?;
    let (leader, _) = cluster.wait_leader(BOUND).await?;
    let victim = if on_leader { leader } else { (leader + 1) % 3 };
    let stop = Arc::new(AtomicBool::new(false));
    let (task, acked) = writer(&cluster, stop.clone());
    until_more_acked(&acked, 100).await?;

    // The disk breaks.
    let fault_file = cluster.node(victim).dir.join(FAULT_FILE);
    std::fs::write(&fault_file, fault).map_err(|e| format!("{}: {e}", fault_file.display()))?;
    let endpoint = cluster.node(victim).endpoint();
    let errno = if fault == "sync-eio" { "EIO" } else { "ENOSPC" };
    let started = Instant::now();
    // The group stops; the node process exits with the error (a supervisor restarts
    // it), or, while it is stopping, answers /healthz 503 naming the failure.
    loop {
        if !cluster.is_running(victim) {
            break;
        }
        if let Ok(answer) = http(Method::GET, &format!("{endpoint}/healthz"), "").await {
            if answer.status == StatusCode::SERVICE_UNAVAILABLE {
                let health = answer.text();
                if !health.contains(errno) || !health.contains(FAULT_FILE) {
                    return Err(format!("/healthz does not name the failure: {health}"));
                }
            }
        }
        if started.elapsed() > BOUND {
            return Err(format!("{fault} on n{victim}: the node goes on running"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = cluster.log_tail(victim, 50);
    if !log.contains(errno) || !log.contains(&cluster.node(victim).dir.display().to_string()) {
        return Err(format!(
            "n{victim}'s log does not name the failure and its directory:\n{log}"
        ));
    }
    // The two others go on (a new leader when the victim led).
    until_more_acked(&acked, 100).await?;
    stop.store(true, Ordering::Relaxed);
    task.await.map_err(|e| e.to_string())?;

    // A working disk again: the node restarts and catches up.
    std::fs::remove_file(&fault_file).map_err(|e| e.to_string())?;
    cluster.kill(victim)?;
    cluster.start(victim, &[])?;
    let (_, status) = cluster.wait_leader(BOUND).await?;
    for i in 0..3 {
        cluster.wait_caught_up(i, status.commit, BOUND).await?;
    }
    let acknowledged = acked.lock().map(|a| a.clone()).unwrap_or_default();
    for i in 0..3 {
        let client = cluster.client(i, Duration::from_secs(5));
        for (key, value) in &acknowledged {
            let entry = client
                .get_entry(
                    key,
                    ReadOptions {
                        stale: true,
                        ..ReadOptions::default()
                    },
                )
                .await
                .map_err(|e| format!("n{i} get {key}: {e}"))?;
            match entry {
                Some(e) if e.value == value.as_bytes() => {}
                other => {
                    return Err(format!(
                        "n{i}: acknowledged {key} = {value:?} reads {:?}",
                        other.map(|e| String::from_utf8_lossy(&e.value).into_owned())
                    ))
                }
            }
        }
    }
    Ok(format!(
        "{fault} on n{victim} ({}): group stopped and the node exited naming {errno}, {} acknowledged writes all on the three nodes after its restart",
        if on_leader { "leader" } else { "follower" },
        acknowledged.len()
    ))
}

#[test]
fn a_failing_fsync_on_the_leader_stops_its_group_and_loses_nothing() {
    run("disk-eio", |root| scenario(root, "sync-eio", true));
}

#[test]
fn a_full_disk_on_a_follower_stops_its_group_and_loses_nothing() {
    run("disk-enospc", |root| scenario(root, "sync-enospc", false));
}
