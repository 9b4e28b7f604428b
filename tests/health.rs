//! The probes a load balancer or Kubernetes points at a node: three `tessera node`
//! processes; `/healthz` and `/readyz` answer 200 on each; with two nodes SIGKILLed the
//! survivor (cut off from a majority) answers `/readyz` 503 naming the missing leader while
//! `/healthz` stays 200; once the two are back it is ready again. And with the processes
//! alive: the leader partitioned from the others (iptables on `lo`, dropping its QUIC
//! packets) is 503 while the majority elects a new leader and stays 200; healed, all three
//! are 200 under one leader.

mod kv_support;

use hyper::{Method, StatusCode};
use kv_support::{http, run, three_nodes, Answer, BOUND};
use std::time::{Duration, Instant};
use tessera::store::http::health::Probe;
use tessera_testkit::cluster::LocalCluster;
use tessera_testkit::partition::Partition;

async fn probe(cluster: &LocalCluster, i: usize, path: &str) -> Result<Answer, String> {
    http(
        Method::GET,
        &format!("{}{path}", cluster.node(i).endpoint()),
        "",
    )
    .await
}

/// Polls until `path` on node `i` answers `want`, within `bound`; returns the body.
async fn until(
    cluster: &LocalCluster,
    i: usize,
    path: &str,
    want: StatusCode,
    bound: Duration,
) -> Result<Probe, String> {
    let start = Instant::now();
    loop {
        let answer = probe(cluster, i, path).await?;
        if answer.status == want {
            let body: Probe = serde_json::from_slice(&answer.body)
                .map_err(|e| format!("{path}: {e}: {}", answer.text()))?;
            if body.ok != (want == StatusCode::OK) {
                return Err(format!("{path}: {} with ok={}", answer.status, body.ok));
            }
            return Ok(body);
        }
        if start.elapsed() > bound {
            return Err(format!(
                "node {i} {path}: still {} after {bound:?}: {}",
                answer.status,
                answer.text()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn readyz_follows_the_leader_and_healthz_the_process() {
    run("health-probes", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        for i in 0..3 {
            let ready = until(&cluster, i, "/readyz", StatusCode::OK, BOUND).await?;
            if ready.leader.is_none() || !ready.reasons.is_empty() {
                return Err(format!("node {i} ready without a leader: {ready:?}"));
            }
            until(&cluster, i, "/healthz", StatusCode::OK, BOUND).await?;
        }

        // Node 2 alone: it loses its leader (or, leading, steps down) within an election
        // timeout and is not ready, though alive.
        cluster.kill(0)?;
        cluster.kill(1)?;
        let cut_off = until(
            &cluster,
            2,
            "/readyz",
            StatusCode::SERVICE_UNAVAILABLE,
            BOUND,
        )
        .await?;
        if !cut_off.reasons.iter().any(|r| r.contains("no leader")) {
            return Err(format!("503 for another reason: {cut_off:?}"));
        }
        let alive = probe(&cluster, 2, "/healthz").await?;
        if alive.status != StatusCode::OK {
            return Err(format!(
                "healthz of a live node: {} {}",
                alive.status,
                alive.text()
            ));
        }

        // Healed: the two come back from their data directories.
        let peers = [cluster
            .node(2)
            .addr
            .ok_or_else(|| "node 2's address".to_string())?];
        cluster.start(0, &peers)?;
        cluster.start(1, &peers)?;
        let ready = until(&cluster, 2, "/readyz", StatusCode::OK, BOUND).await?;
        if ready.leader.is_none() {
            return Err(format!("ready again without a leader: {ready:?}"));
        }
        Ok(format!(
            "probes: ready x3, cut off -> 503 ({}), healed -> 200",
            cut_off.reasons.join("; ")
        ))
    });
}

#[test]
fn readyz_is_503_on_a_partitioned_minority_and_200_after_healing() {
    if let Err(why) = tessera_testkit::partition::available() {
        println!("skipped: cannot partition nodes on this machine: {why}");
        return;
    }
    run("health-partition", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        for i in 0..3 {
            until(&cluster, i, "/readyz", StatusCode::OK, BOUND).await?;
        }
        let port = cluster.node(leader).listen.port();
        let partition = Partition::isolate_udp_port(port)?;
        // The old leader, alone, steps down: not ready, though alive and answering HTTP.
        let cut_off = until(
            &cluster,
            leader,
            "/readyz",
            StatusCode::SERVICE_UNAVAILABLE,
            BOUND,
        )
        .await?;
        let alive = probe(&cluster, leader, "/healthz").await?;
        if alive.status != StatusCode::OK {
            return Err(format!(
                "healthz of the partitioned node: {} {}",
                alive.status,
                alive.text()
            ));
        }
        // The majority side has a leader of its own and is ready.
        let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        for &i in &others {
            let ready = until(&cluster, i, "/readyz", StatusCode::OK, BOUND).await?;
            if ready.leader.is_none()
                || ready.leader.as_deref() == cluster.node(leader).id().as_deref()
            {
                return Err(format!("node {i} on the majority side: {ready:?}"));
            }
        }
        partition.heal()?;
        // Healed: all three ready, agreeing on one leader (the healed node hears of it
        // within a heartbeat or two).
        let start = Instant::now();
        loop {
            let mut leaders = Vec::new();
            for i in 0..3 {
                leaders.push(
                    until(&cluster, i, "/readyz", StatusCode::OK, BOUND)
                        .await?
                        .leader,
                );
            }
            if leaders.iter().all(|l| l.is_some() && *l == leaders[0]) {
                break;
            }
            if start.elapsed() > BOUND {
                return Err(format!(
                    "after healing the nodes disagree on the leader: {leaders:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for i in 0..3 {
            cluster.terminate(i, BOUND)?;
        }
        Ok(format!(
            "leader {leader} partitioned -> 503 ({}), majority ready under a new leader; healed -> 200 on all three",
            cut_off.reasons.join("; ")
        ))
    });
}
