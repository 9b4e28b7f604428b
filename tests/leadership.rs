//! Leadership from the outside, on `tessera node` processes: `tessera leader transfer`
//! (to the most caught-up voter, to a named one, refused for a learner-free stranger id),
//! and a rolling restart of every node under a steady write load with not one failed
//! write, because a leader stopped with SIGTERM hands leadership over first.

mod kv_support;

use hyper::{Method, StatusCode};
use kv_support::{client_of_all, http, run, three_nodes, BOUND};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera::groups::Consistency;
use tessera::store::http::{ErrorBody, ErrorKind, TransferAnswer};

#[test]
fn transfer_to_the_most_caught_up_or_a_named_voter() {
    run("leader-transfer", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        let follower = (leader + 1) % 3;
        let f_url = cluster.node(follower).endpoint();

        // Asked of a follower: relayed to the leader, which hands over to another voter.
        let answer = http(Method::POST, &format!("{f_url}/v1/leader/transfer"), "").await?;
        if answer.status != StatusCode::OK {
            return Err(format!("transfer: {} {}", answer.status, answer.text()));
        }
        let moved: TransferAnswer =
            serde_json::from_slice(&answer.body).map_err(|e| format!("{e}: {}", answer.text()))?;
        let old = cluster.node(leader).id().ok_or("id")?;
        if moved.previous != old || moved.leader == old {
            return Err(format!("leadership did not move: {moved:?}"));
        }
        let (now, _) = cluster.wait_leader(BOUND).await?;
        if cluster.node(now).id().as_deref() != Some(moved.leader.as_str()) {
            return Err(format!(
                "the cluster agrees on another leader than {moved:?}"
            ));
        }

        // Back to the first leader by a prefix of its id.
        let to = format!(r#"{{"to":"{}"}}"#, &old[..8]);
        let back = http(Method::POST, &format!("{f_url}/v1/leader/transfer"), to).await?;
        let back: TransferAnswer =
            serde_json::from_slice(&back.body).map_err(|e| format!("{e}: {}", back.text()))?;
        if back.leader != old {
            return Err(format!("named transfer went elsewhere: {back:?}"));
        }

        // Refused: a stranger, a malformed body.
        let stranger = http(
            Method::POST,
            &format!("{f_url}/v1/leader/transfer"),
            r#"{"to":"ffffffff"}"#,
        )
        .await?;
        let body: ErrorBody = serde_json::from_slice(&stranger.body)
            .map_err(|e| format!("{e}: {}", stranger.text()))?;
        if stranger.status != StatusCode::NOT_FOUND || body.kind != ErrorKind::NotMember {
            return Err(format!("stranger: {} {}", stranger.status, stranger.text()));
        }
        let bad = http(
            Method::POST,
            &format!("{f_url}/v1/leader/transfer"),
            r#"{"target":"x"}"#,
        )
        .await?;
        if bad.status != StatusCode::BAD_REQUEST {
            return Err(format!("unknown field: {} {}", bad.status, bad.text()));
        }
        Ok(format!(
            "leader {} -> {} -> {} (by prefix); stranger 404, bad body 400",
            &old[..8],
            &moved.leader[..8],
            &back.leader[..8]
        ))
    });
}

#[test]
fn rolling_restart_under_load_fails_no_write() {
    run("rolling-restart", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut writers = Vec::new();
        for w in 0..2 {
            let client = client_of_all(&cluster, BOUND);
            let (stop, acknowledged, failures) =
                (stop.clone(), acknowledged.clone(), failures.clone());
            writers.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}/{n:06}");
                    match client.put(&key, format!("{n}")).await {
                        Ok(_) => acknowledged.lock().expect("lock").push(key),
                        Err(e) => failures.lock().expect("lock").push(format!("{key}: {e}")),
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }

        // Each node in turn, the leader included: SIGTERM, restart, caught up.
        let mut leaders = Vec::new();
        for i in 0..3 {
            let (leader, status) = cluster.wait_leader(BOUND).await?;
            leaders.push(leader);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let exited = cluster.terminate(i, Duration::from_secs(20))?;
            if !exited.is_some_and(|s| s.success()) {
                return Err(format!(
                    "node {i} did not stop cleanly on SIGTERM ({exited:?}); log:\n{}",
                    cluster.log_tail(i, 20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster.start(i, &[])?;
            cluster.wait_caught_up(i, status.commit, BOUND).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.map_err(|e| format!("writer: {e}"))?;
        }
        let failures = failures.lock().expect("lock").clone();
        if !failures.is_empty() {
            return Err(format!(
                "{} writes failed during the rolling restart: {:?}",
                failures.len(),
                &failures[..failures.len().min(5)]
            ));
        }
        let acknowledged = acknowledged.lock().expect("lock").clone();
        if acknowledged.len() < 100 {
            return Err(format!("too little load: {} writes", acknowledged.len()));
        }
        let client = client_of_all(&cluster, BOUND);
        for key in &acknowledged {
            if client
                .get(key, Consistency::Strong)
                .await
                .map_err(|e| format!("get {key}: {e}"))?
                .is_none()
            {
                return Err(format!("acknowledged write {key} lost"));
            }
        }
        Ok(format!(
            "3 nodes restarted one by one (leaders before each: {leaders:?}), {} writes, 0 failed, all read back",
            acknowledged.len()
        ))
    });
}
