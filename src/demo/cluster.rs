//! The cluster demo behind `make demo`: three `tessera node` processes form a group, the
//! leader is killed with SIGKILL, a new one takes over, the old one restarts from its data
//! directory and catches up; then 96 MiB of state and a fourth node that joins by snapshot.

use crate::kit::cluster::{fast_timings, short, HarnessError, LocalCluster};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tessera::groups::Consistency;
use tessera::network::PeerAddr;

/// The demo's node flags: fast timings, and a snapshot every 100 entries with only 20
/// entries of log kept behind it, so the fourth node can only join by snapshot.
fn demo_args() -> Vec<String> {
    let mut args = fast_timings();
    args.extend(["--snapshot-every-entries", "100", "--keep-log-tail", "20"].map(String::from));
    args
}

/// Runs the cluster demo with `exe` as the node binary, keeping data under `root`.
pub async fn run(exe: PathBuf, root: &Path) -> Result<(), HarnessError> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut cluster = LocalCluster::new(exe, root, &[ip, ip, ip, ip], demo_args())?;
    let result = script(&mut cluster).await;
    if result.is_err() {
        for i in 0..cluster.len() {
            eprintln!("--- last lines of {}:", cluster.node(i).log.display());
            eprintln!("{}", cluster.log_tail(i, 15));
        }
    }
    // Clean stop of whatever still runs (Drop kills anything left on any path).
    for i in 0..cluster.len() {
        cluster.terminate(i, Duration::from_secs(10))?;
    }
    result
}

/// The demo's founding nodes; a fourth joins later by snapshot.
const FOUNDERS: usize = 3;

async fn script(cluster: &mut LocalCluster) -> Result<(), HarnessError> {
    let bound = Duration::from_secs(30);
    let t0 = Instant::now();
    println!(
        "1. Starting three `tessera node` processes on 127.0.0.1 (data in {}):",
        short_root(cluster)
    );
    cluster.start_first(FOUNDERS)?;
    for n in cluster.nodes().iter().take(FOUNDERS) {
        println!(
            "   {}  peer {}  quic {}  http {}",
            n.name,
            short(&n.id().unwrap_or_default()),
            n.listen,
            n.endpoint()
        );
    }
    println!(
        "   n0 started alone; n1 and n2 were given n0's address and learned each other from it."
    );

    let (leader, status) = cluster.wait_leader(bound).await?;
    println!(
        "2. They formed one raft group and elected {} as leader (term {}) after {:.1} s.",
        cluster.node(leader).name,
        status.term,
        t0.elapsed().as_secs_f64()
    );

    let mut written = Vec::new();
    for k in 0..10 {
        let via = k % FOUNDERS;
        let key = format!("demo/key-{k:02}");
        let value = format!("value {k} (before the crash)");
        let index = cluster
            .client(via, Duration::from_secs(10))
            .put(&key, value.clone())
            .await
            .map_err(|e| format!("put {key} via n{via}: {e}"))?;
        written.push((key, value, index));
    }
    println!(
        "3. Wrote 10 keys, sending them in turn to every node (followers forward writes to the leader); \
         each was acknowledged only once committed by a majority, last at index {}.",
        written.last().map_or(0, |w| w.2)
    );

    let old = leader;
    let killed_at = Instant::now();
    cluster.kill(old)?;
    println!(
        "4. Killed the leader {} with SIGKILL: no shutdown, no flush, the process is simply gone.",
        cluster.node(old).name
    );

    let (leader, status) = cluster.wait_leader(bound).await?;
    println!(
        "5. The two survivors noticed the silence and elected {} (term {}) {:.1} s after the kill.",
        cluster.node(leader).name,
        status.term,
        killed_at.elapsed().as_secs_f64()
    );

    let others: Vec<usize> = (0..FOUNDERS).filter(|&i| i != old).collect();
    for k in 10..20 {
        let via = others[k % others.len()];
        let key = format!("demo/key-{k:02}");
        let value = format!("value {k} (while {} was down)", cluster.node(old).name);
        let index = cluster
            .client(via, Duration::from_secs(10))
            .put(&key, value.clone())
            .await
            .map_err(|e| format!("put {key} via n{via}: {e}"))?;
        written.push((key, value, index));
    }
    let leader_status = cluster
        .client(leader, Duration::from_secs(5))
        .status()
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "6. Wrote 10 more keys with one node down (two of three is a majority); the leader's commit index is now {}.",
        leader_status.commit
    );

    let restarted_at = Instant::now();
    cluster.start(old, &[])?;
    println!(
        "7. Restarted {} from its data directory with no --peer: same peer id {}, peers read from its peers file.",
        cluster.node(old).name,
        short(&cluster.node(old).id().unwrap_or_default())
    );
    let caught = cluster
        .wait_caught_up(old, leader_status.commit, bound)
        .await?;
    println!(
        "8. {} rejoined as a {} and caught up to index {} in {:.1} s (it missed 10 writes while down).",
        cluster.node(old).name,
        caught.role,
        caught.applied,
        restarted_at.elapsed().as_secs_f64()
    );

    let client = cluster.client(old, Duration::from_secs(10));
    for (key, value, _) in &written {
        let got = client
            .get(key, Consistency::Weak)
            .await
            .map_err(|e| format!("get {key} on {}: {e}", cluster.node(old).name))?;
        if got.as_deref() != Some(value.as_bytes()) {
            return Err(format!(
                "{} answered {key} = {:?}, expected {value:?}",
                cluster.node(old).name,
                got.map(|g| String::from_utf8_lossy(&g).into_owned())
            ));
        }
    }
    let sample = &written[written.len() - 1];
    let strong = client
        .get(&sample.0, Consistency::Strong)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    println!(
        "9. Reading all 20 keys from {}'s own copy: every value is there. A strong read of {} gives {:?}.",
        cluster.node(old).name,
        sample.0,
        String::from_utf8_lossy(&strong)
    );

    let statuses = cluster.statuses(Duration::from_secs(5)).await;
    println!("10. Every node's view now:");
    for (i, s) in statuses.iter().enumerate().take(FOUNDERS) {
        match s {
            Some(s) => println!(
                "    {}  {:<9} term {}  commit {}  applied {}  voters {}",
                cluster.node(i).name,
                s.role,
                s.term,
                s.commit,
                s.applied,
                s.members.voters.len()
            ),
            None => println!("    {}  not answering", cluster.node(i).name),
        }
    }
    let commits: Vec<u64> = statuses.iter().flatten().map(|s| s.commit).collect();
    let equal = commits.len() == FOUNDERS && commits.windows(2).all(|w| w[0] == w[1]);
    let (leader, _) = cluster.wait_leader(bound).await?;
    let joined = join_by_snapshot(cluster, leader).await?;
    println!();
    println!(
        "What happened: three nodes formed a replicated key-value store. The leader was killed"
    );
    println!("with SIGKILL; the other two elected a new leader within seconds and kept accepting");
    println!(
        "writes. The killed node was restarted from its data directory alone, found its peers,"
    );
    println!(
        "replayed the entries it missed and now holds the same 20 keys{}.",
        if equal {
            " at the same commit index as the others"
        } else {
            " (its commit index was still moving when read)"
        }
    );
    println!("No acknowledged write was lost. {joined}");
    println!("Stopping the nodes with SIGTERM.");
    Ok(())
}

/// A config-like JSON document of about `len` bytes (compresses like real config).
fn config_blob(n: usize, len: usize) -> String {
    let mut s = format!("{{\"service\":\"svc-{n}\",\"entries\":[");
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"key\":\"svc-{n}/setting-{i}\",\"value\":\"{}\",\"ttl\":{},\"enabled\":{}}},",
            (i * 7919 + n) % 100_003,
            (i * 31) % 3600,
            i % 3 == 0
        ));
        i += 1;
    }
    s.push_str("{}]}");
    s
}

/// Steps 11–13: bulk state, snapshots and pruning on the three, then a fourth node that
/// can only join by snapshot, with a progress bar of its transfer.
async fn join_by_snapshot(
    cluster: &mut LocalCluster,
    leader: usize,
) -> Result<String, HarnessError> {
    const BLOBS: usize = 192;
    const BLOB_BYTES: usize = 512 << 10;
    let bound = Duration::from_secs(60);
    let loaded_at = Instant::now();
    let client = cluster.client(leader, Duration::from_secs(30));
    let mut last = 0;
    for n in 0..BLOBS {
        last = client
            .put(&format!("config/svc-{n:03}"), config_blob(n, BLOB_BYTES))
            .await
            .map_err(|e| format!("put config/svc-{n:03}: {e}"))?;
    }
    println!(
        "11. Loaded {} config documents of 512 KiB ({} MiB) through the leader in {:.1} s.",
        BLOBS,
        (BLOBS * BLOB_BYTES) >> 20,
        loaded_at.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let status = loop {
        let s = cluster
            .client(leader, Duration::from_secs(5))
            .status()
            .await
            .map_err(|e| e.to_string())?;
        let big = s
            .snapshots
            .last()
            .is_some_and(|h| h.raw_bytes >= (BLOBS * BLOB_BYTES) as u64 * 9 / 10);
        if big && s.log_start > 1 {
            break s;
        }
        if started.elapsed() > bound {
            return Err(format!(
                "no large snapshot on the leader within {bound:?}: {s:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let snap = status.snapshots.last().cloned().unwrap_or_default();
    println!(
        "12. Every node cut a snapshot at index {} ({} MiB raw, {} MiB stored as zstd chunks) and pruned its log to index {}.",
        snap.index,
        snap.raw_bytes >> 20,
        snap.stored_bytes >> 20,
        status.log_start
    );

    let founders: Vec<PeerAddr> = (0..FOUNDERS).filter_map(|i| cluster.node(i).addr).collect();
    let joined_at = Instant::now();
    cluster.start(3, &founders)?;
    println!(
        "13. Started a fourth node, {}, given the three nodes' addresses. The entries it needs are pruned from every log, so it fetches the snapshot's chunks from the nodes holding it, spread over every node that serves them (the count per node, leader marked, follows):",
        cluster.node(3).name
    );
    let bar = indicatif::ProgressBar::new(snap.stored_bytes.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "    [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let fourth = cluster.client(3, Duration::from_secs(2));
    let done = loop {
        if let Ok(s) = fourth.status().await {
            if let Some(t) = &s.transfer {
                bar.set_length(t.bytes_total.max(1));
                bar.set_position(t.bytes_verified);
                bar.set_message(format!("{} from {} peers", t.phase, t.providers));
            }
            if s.applied >= last && s.leader.is_some() {
                bar.set_position(bar.length().unwrap_or(0));
                break s;
            }
        }
        if joined_at.elapsed() > bound {
            bar.abandon();
            return Err(format!(
                "{} did not catch up within {bound:?}",
                cluster.node(3).name
            ));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    bar.finish_with_message("installed");
    let statuses = cluster.statuses(Duration::from_secs(5)).await;
    let serving: Vec<String> = statuses
        .iter()
        .enumerate()
        .take(3)
        .filter_map(|(i, s)| {
            s.as_ref().filter(|s| s.chunks_served > 0).map(|s| {
                let leader = if s.is_leader() { " (leader)" } else { "" };
                format!("{}{leader} {}", cluster.node(i).name, s.chunks_served)
            })
        })
        .collect();
    let seconds = joined_at.elapsed().as_secs_f64();
    let sample = fourth_sample(cluster).await?;
    println!(
        "    {} applied index {} after {:.1} s: {} chunks fetched (chunks served: {}); {sample}",
        cluster.node(3).name,
        done.applied,
        seconds,
        done.chunks_fetched,
        serving.join(", ")
    );
    Ok(format!(
        "A fourth node joined by snapshot: {} MiB of state from {} peers in {:.1} s.",
        snap.raw_bytes >> 20,
        serving.len(),
        seconds
    ))
}

/// Reads one bulk key and one early key back from the fourth node's own copy.
async fn fourth_sample(cluster: &LocalCluster) -> Result<String, HarnessError> {
    let client = cluster.client(3, Duration::from_secs(10));
    let blob = client
        .get("config/svc-007", Consistency::Weak)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("config/svc-007 is missing on the fourth node")?;
    if blob != config_blob(7, 512 << 10).into_bytes() {
        return Err("config/svc-007 differs on the fourth node".into());
    }
    let early = client
        .get("demo/key-03", Consistency::Weak)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("demo/key-03 is missing on the fourth node")?;
    Ok(format!(
        "its own copy has config/svc-007 intact and demo/key-03 = {:?}",
        String::from_utf8_lossy(&early)
    ))
}

fn short_root(cluster: &LocalCluster) -> String {
    cluster
        .nodes()
        .first()
        .and_then(|n| n.dir.parent())
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}
