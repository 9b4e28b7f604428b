//! Failover without waiting out timeouts: real `tessera node` processes on 127.0.0.1.
//!
//! Each test sets the timeout its point is about far above anything it waits for (30 s
//! client-call timeouts, a 60 s link timeout), so it can only pass if the mechanism under
//! test acts on its own:
//! - a write and a strong read in flight on a follower when the leader dies finish once a
//!   new leader is elected (the read with its value, the write with success or "outcome
//!   unknown"), never with a timeout;
//! - a follower killed and restarted at once, on a new port, links to both peers again
//!   (its new process replaces the links its peers still hold to the dead one), so the
//!   group survives a second fault right after. On a new port nothing at the transport
//!   level ends the old links (packets to the old port reach nobody), so only the
//!   incarnation rule can.
//!
//! On failure the nodes' logs are kept and their path printed.

use std::path::Path;
use std::time::{Duration, Instant};
use tessera::groups::Consistency;
use tessera::store::client::ClientError;
use tessera::store::http::ErrorKind;
use tessera_testkit::cluster::LocalCluster;

/// Bound on the waits of the harness (a leader, a status); none of them is what a test is
/// about.
const BOUND: Duration = Duration::from_secs(30);

/// Runs `scenario` in a fresh directory on a multi-threaded runtime; keeps the logs on
/// failure.
fn run<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let root = tempfile::Builder::new()
        .prefix(&format!("tessera-{name}-"))
        .tempdir()
        .expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(scenario(root.path().to_path_buf())) {
        Ok(summary) => println!("{summary}"),
        Err(reason) => {
            let kept = root.keep();
            panic!("{reason}\nnode logs kept in {}", kept.display());
        }
    }
}

fn cluster(root: &Path, extra: &[&str]) -> Result<LocalCluster, String> {
    let args = extra.iter().map(|s| s.to_string()).collect();
    let mut cluster = LocalCluster::loopback(env!("CARGO_BIN_EXE_tessera"), root, args)?;
    cluster.start_all()?;
    Ok(cluster)
}

/// The other two nodes of a three-node cluster.
fn others(of: usize) -> (usize, usize) {
    match of {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

/// Puts `key` through node `i` until it succeeds (retrying what may be retried).
async fn put_until_ok(
    cluster: &LocalCluster,
    i: usize,
    key: &str,
    value: &str,
) -> Result<u64, String> {
    let client = cluster.client(i, Duration::from_secs(5));
    let started = Instant::now();
    loop {
        match client.put(key, value).await {
            Ok(index) => return Ok(index),
            Err(e) if e.is_retryable() && started.elapsed() < BOUND => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(format!("put {key} through n{i}: {e}")),
        }
    }
}

#[test]
fn a_write_and_a_strong_read_in_flight_on_a_follower_finish_when_the_leader_is_killed() {
    run("inflight", |root| async move {
        let mut cluster = cluster(
            &root,
            &[
                "--forward-timeout-ms",
                "30000",
                "--query-timeout-ms",
                "30000",
            ],
        )?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        let (follower, _) = others(leader);
        put_until_ok(&cluster, leader, "config/a", "before").await?;
        cluster.wait_caught_up(follower, 0, BOUND).await?;
        // The leader hangs: what the follower forwards to it now gets no answer.
        cluster.pause(leader)?;
        let client = cluster.client(follower, Duration::from_secs(60));
        let started = Instant::now();
        let write = tokio::spawn({
            let client = client.clone();
            async move { client.put("config/b", "in flight").await }
        });
        let read = tokio::spawn({
            let client = client.clone();
            async move { client.get("config/a", Consistency::Strong).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        if write.is_finished() || read.is_finished() {
            let write_done = write.is_finished();
            let read_done = read.is_finished();
            let write = if write_done {
                format!("{:?}", write.await.map_err(|e| e.to_string())?)
            } else {
                "in flight".into()
            };
            let read = if read_done {
                format!("{:?}", read.await.map_err(|e| e.to_string())?)
            } else {
                "in flight".into()
            };
            return Err(format!(
                "the calls finished while the leader was paused: nothing was in flight (write: {write}; read: {read})"
            ));
        }
        cluster.kill(leader)?;
        let write = write.await.map_err(|e| e.to_string())?;
        let read = read.await.map_err(|e| e.to_string())?;
        let took = started.elapsed();
        match &read {
            Ok(Some(value)) if value == b"before" => {}
            other => return Err(format!("strong read: expected \"before\", got {other:?}")),
        }
        match &write {
            Ok(_) => {}
            Err(ClientError::Unavailable {
                kind: ErrorKind::Unknown,
                ..
            }) => {}
            Err(e) => {
                return Err(format!(
                    "write: expected success or 'outcome unknown', got {e} (a timeout means the \
                     forward waited out its 30 s instead of failing over)"
                ))
            }
        }
        // The group goes on under the new leader, and the write's outcome is one or the
        // other, the same on both survivors.
        let (new_leader, status) = cluster.wait_leader(BOUND).await?;
        put_until_ok(&cluster, new_leader, "config/c", "after").await?;
        let (x, y) = others(leader);
        let mut seen = Vec::new();
        for i in [x, y] {
            let c = cluster.client(i, Duration::from_secs(10));
            let v = c
                .get("config/b", Consistency::Strong)
                .await
                .map_err(|e| format!("n{i}: {e}"))?;
            seen.push(v);
        }
        if seen[0] != seen[1] || seen[0].as_deref().is_some_and(|v| v != b"in flight") {
            return Err(format!("the in-flight write reads differently: {seen:?}"));
        }
        Ok(format!(
            "leader n{leader} paused and killed; the follower's write ({}) and strong read \
             finished after {:.2} s (timeouts 30 s); n{new_leader} leads term {}",
            if write.is_ok() {
                "acknowledged"
            } else {
                "outcome unknown"
            },
            took.as_secs_f64(),
            status.term
        ))
    });
}

#[test]
fn a_follower_restarted_after_sigkill_relinks_at_once_and_the_group_survives_a_second_fault() {
    run("relink", |root| async move {
        // Links and connections would take 60 s to notice the dead process on their own.
        let mut cluster = cluster(
            &root,
            &[
                "--max-missed-heartbeats",
                "600",
                "--quic-idle-timeout-ms",
                "60000",
            ],
        )?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        let (follower, third) = others(leader);
        let index = put_until_ok(&cluster, leader, "k/1", "one").await?;
        cluster.wait_caught_up(follower, index, BOUND).await?;
        cluster.kill(follower)?;
        cluster.move_to_new_port(follower)?;
        cluster.start(follower, &[])?;
        let restarted = Instant::now();
        // Linked to both peers, and fed by the leader over its new link.
        let index = put_until_ok(&cluster, leader, "k/2", "two").await?;
        let status = cluster.wait_caught_up(follower, index, BOUND).await?;
        let peers = [leader, third].map(|i| cluster.node(i).id().unwrap_or_default());
        let wait = Instant::now();
        let client = cluster.client(follower, Duration::from_secs(2));
        let mut bonded = status.bonded;
        while !peers.iter().all(|p| bonded.contains(p)) {
            if wait.elapsed() > BOUND {
                return Err(format!(
                    "the restarted n{follower} is bonded to {bonded:?} only"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            bonded = client.status().await.map_err(|e| e.to_string())?.bonded;
        }
        let relinked = restarted.elapsed();
        // The second fault: the leader dies. The restarted follower and the third node
        // must now form a quorum together, which needs the link between them.
        cluster.kill(leader)?;
        let killed = Instant::now();
        let (new_leader, status) = cluster.wait_leader(BOUND).await?;
        put_until_ok(&cluster, new_leader, "k/3", "three").await?;
        for i in [follower, third] {
            let c = cluster.client(i, Duration::from_secs(10));
            let v = c
                .get("k/3", Consistency::Strong)
                .await
                .map_err(|e| format!("n{i}: {e}"))?;
            if v.as_deref() != Some(&b"three"[..]) {
                return Err(format!("n{i} reads k/3 as {v:?}"));
            }
        }
        Ok(format!(
            "n{follower} restarted and linked to both peers in {:.2} s (link timeout 60 s); \
             after the leader n{leader} was killed, n{new_leader} leads term {} and took a \
             write {:.2} s later",
            relinked.as_secs_f64(),
            status.term,
            killed.elapsed().as_secs_f64()
        ))
    });
}
