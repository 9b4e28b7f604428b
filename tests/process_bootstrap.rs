//! A fourth `tessera node` process joins by snapshot and is killed with SIGKILL in the
//! middle of the transfer; restarted from its data directory, it fetches only the chunks
//! it had not stored (its `/v1/status` counters say how many it fetched in each life).
//!
//! Three nodes hold about 48 MiB of incompressible values in 64 KiB chunks (about 770 of
//! them), cut a snapshot every 60 entries and keep 10 entries of log, so the new node can
//! only join by snapshot. Every wait is bounded; the nodes' logs are kept on failure.

mod common;
use common::noise;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};
use tessera::groups::Consistency;
use tessera::network::PeerAddr;
use tessera_testkit::cluster::{fast_timings, LocalCluster};

const VALUES: usize = 96;
const VALUE_BYTES: usize = 512 << 10;
const BOUND: Duration = Duration::from_secs(60);

#[test]
fn a_node_killed_mid_transfer_fetches_only_the_missing_chunks_after_restart() {
    let root = tempfile::Builder::new()
        .prefix("tessera-bootstrap-")
        .tempdir()
        .expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(scenario(root.path())) {
        Ok(summary) => println!("{summary}"),
        Err(err) => {
            let kept = root.keep();
            panic!("{err}\n(node logs kept in {})", kept.display());
        }
    }
}

async fn scenario(root: &Path) -> Result<String, String> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut args = fast_timings();
    args.extend(
        [
            "--snapshot-every-entries",
            "60",
            "--keep-log-tail",
            "10",
            "--snapshot-chunk-kib",
            "64",
        ]
        .map(String::from),
    );
    let mut cluster = LocalCluster::new(env!("CARGO_BIN_EXE_tessera"), root, &[ip; 4], args)?;
    cluster.start_first(3)?;
    let (leader, _) = cluster.wait_leader(BOUND).await?;
    let client = cluster.client(leader, Duration::from_secs(30));
    let mut commit = 0;
    for n in 0..VALUES {
        commit = client
            .put(&format!("blob/{n:03}"), noise(n as u64, VALUE_BYTES))
            .await
            .map_err(|e| format!("put blob/{n:03}: {e}"))?;
    }

    // Wait for a snapshot holding nearly everything, and a pruned log.
    let started = Instant::now();
    let snapshot = loop {
        let s = client.status().await.map_err(|e| e.to_string())?;
        if let Some(h) = s.snapshots.last() {
            if h.raw_bytes >= (VALUES * VALUE_BYTES) as u64 / 2 && s.log_start > 1 {
                break h.clone();
            }
        }
        if started.elapsed() > BOUND {
            return Err(format!("no snapshot and pruned log on the leader: {s:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let total = u64::from(snapshot.chunks);

    // The fourth node: killed once a quarter of the chunks are stored.
    let founders: Vec<PeerAddr> = (0..3).filter_map(|i| cluster.node(i).addr).collect();
    cluster.start(3, &founders)?;
    let fourth = cluster.client(3, Duration::from_secs(2));
    let started = Instant::now();
    let before = loop {
        if let Ok(s) = fourth.status().await {
            if s.chunks_fetched >= total / 4 {
                break s.chunks_fetched;
            }
            if s.applied >= commit {
                return Err(format!(
                    "the transfer finished before the kill ({} of {total} chunks seen)",
                    s.chunks_fetched
                ));
            }
        }
        if started.elapsed() > BOUND {
            return Err("the fourth node fetched no quarter of the chunks in time".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    cluster.kill(3)?;

    // Restarted from its directory alone (its peers file knows the others).
    cluster.start(3, &[])?;
    let caught = cluster.wait_caught_up(3, commit, BOUND).await?;
    let after = caught.chunks_fetched;
    if after + before > total {
        return Err(format!(
            "after the restart {after} chunks were fetched, but {before} of {total} were stored before the kill"
        ));
    }
    if after == 0 {
        return Err("nothing fetched after the restart: the kill came too late".into());
    }
    let check = cluster.client(3, Duration::from_secs(10));
    for n in [0, VALUES / 2, VALUES - 1] {
        let got = check
            .get(&format!("blob/{n:03}"), Consistency::Weak)
            .await
            .map_err(|e| e.to_string())?;
        if got.as_deref() != Some(&noise(n as u64, VALUE_BYTES)[..]) {
            return Err(format!("blob/{n:03} differs on the fourth node"));
        }
    }
    // Idle now, with every member up: the group quiesces, and `/v1/status` says so.
    let started = Instant::now();
    loop {
        let s = client.status().await.map_err(|e| e.to_string())?;
        if s.quiesced {
            break;
        }
        if started.elapsed() > BOUND {
            return Err(format!("the idle group never said it quiesced: {s:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..4 {
        cluster.terminate(i, Duration::from_secs(10))?;
    }
    Ok(format!(
        "snapshot at {} with {total} chunks: {before} fetched before SIGKILL, {after} after the restart",
        snapshot.index
    ))
}
