//! A disk failing under a running node (storage fault injection, compiled only into test
//! builds: `tessera_storage::faults`). Three `tessera node` processes take writes through
//! every node; one node's fsync starts failing (EIO on the leader, ENOSPC on a follower).
//! That node's group must stop with an error naming the failure and its data directory
//! (the node exits with it), and never acknowledge what it could not make durable; the other
//! two go on. Restarted with a working disk it comes back with everything: every write
//! any node acknowledged is on all three nodes, with its value.
//!
//! A flipped bit in a log record, on one node of three: across a restart (the record
//! damaged on disk while the node is down) and while it runs (a read of the record from
//! RocksDB sees a bit flipped, `flip-log-record`). It is detected, never served or applied,
//! and repaired from the peers: the node's log is cut at the damaged record, its vote
//! withheld until it holds that much again, and the rest comes back from the leader. The
//! other nodes never take the damaged data: every node ends with the same keys and values,
//! and every acknowledged write is among them.

mod kv_support;

use hyper::{Method, StatusCode};
use kv_support::{client_of_all, http, run, three_nodes, BOUND};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera::store::client::ReadOptions;
use tessera_storage::faults::FAULT_FILE;
use tessera_storage::{ColumnFamily, Store};
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

/// Every `disk/` key on node `i`, read from its own copy (`?stale`): key and value.
async fn local_keys(cluster: &LocalCluster, i: usize) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let client = cluster.client(i, Duration::from_secs(5));
    let mut all = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = client
            .range(
                "disk/",
                after.as_deref(),
                None,
                ReadOptions {
                    stale: true,
                    ..ReadOptions::default()
                },
            )
            .await
            .map_err(|e| format!("n{i} range: {e}"))?;
        for kv in page.kvs {
            all.insert(kv.key, kv.value.unwrap_or_default());
        }
        match (page.more, page.next) {
            (true, Some(next)) => after = Some(next),
            _ => return Ok(all),
        }
    }
}

/// All three nodes caught up with the leader's commit, holding the same keys and values,
/// with every acknowledged write among them. Returns how many keys they hold.
async fn all_agree(
    cluster: &mut LocalCluster,
    acknowledged: &[(String, String)],
) -> Result<usize, String> {
    let (_, status) = cluster.wait_leader(BOUND).await?;
    for i in 0..3 {
        cluster.wait_caught_up(i, status.commit, BOUND).await?;
    }
    let reference = local_keys(cluster, 0).await?;
    for i in 1..3 {
        let theirs = local_keys(cluster, i).await?;
        if theirs != reference {
            let differ: Vec<&String> = reference
                .keys()
                .chain(theirs.keys())
                .filter(|k| reference.get(*k) != theirs.get(*k))
                .take(5)
                .collect();
            return Err(format!("n0 and n{i} disagree, e.g. on {differ:?}"));
        }
    }
    for (key, value) in acknowledged {
        if reference.get(key).map(Vec::as_slice) != Some(value.as_bytes()) {
            return Err(format!(
                "acknowledged {key} = {value:?} reads {:?}",
                reference
                    .get(key)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            ));
        }
    }
    Ok(reference.len())
}

/// The group in a stopped node's store with the longest log, and its last index.
fn busiest_group(store: &Store) -> Result<([u8; 32], u64), String> {
    let mut best = None;
    for group in store.groups().map_err(|e| e.to_string())? {
        let log = store.group_log(group).map_err(|e| e.to_string())?;
        let last = log.last().index().0;
        if best.is_none_or(|(_, l)| last > l) {
            best = Some((group, last));
        }
    }
    best.ok_or_else(|| "no group in the store".to_string())
}

/// Waits until node `i`'s log has a line containing every one of `needles`; returns it.
async fn log_line(cluster: &LocalCluster, i: usize, needles: &[&str]) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&cluster.node(i).log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return Ok(line.to_string());
        }
        if started.elapsed() > BOUND {
            return Err(format!(
                "n{i}'s log has no line with {needles:?}:\n{}",
                cluster.log_tail(i, 40)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A field `name=VALUE` of a log line, as a number.
fn field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A follower's stored log record flipped while it is down. `extra`: node flags;
/// `while_down`: writes the others take meanwhile (with frequent snapshots, enough for the
/// leader to prune what the follower will need, so it is caught up by a snapshot).
async fn flipped_on_disk(
    root: std::path::PathBuf,
    extra: &[&str],
    while_down: usize,
) -> Result<String, String> {
    let mut cluster = three_nodes(&root, extra).await?;
    let (leader, _) = cluster.wait_leader(BOUND).await?;
    let victim = (leader + 1) % 3;
    let stop = Arc::new(AtomicBool::new(false));
    let (task, acked) = writer(&cluster, stop.clone());
    let mut task = Some(task);
    until_more_acked(&acked, 300).await?;
    if while_down == 0 {
        stop.store(true, Ordering::Relaxed);
        if let Some(task) = task.take() {
            task.await.map_err(|e| e.to_string())?;
        }
        let (_, status) = cluster.wait_leader(BOUND).await?;
        cluster.wait_caught_up(victim, status.commit, BOUND).await?;
    }

    // The follower stops; one bit of a committed record near its log's end (after any
    // snapshot, so the restart reads it) flips on its disk.
    cluster.kill(victim)?;
    if let Some(task) = task.take() {
        until_more_acked(&acked, while_down).await?;
        stop.store(true, Ordering::Relaxed);
        task.await.map_err(|e| e.to_string())?;
    }
    let dir = cluster.node(victim).dir.clone();
    let (last, index) = {
        let store = Store::open(&dir).map_err(|e| e.to_string())?;
        let (group, last) = busiest_group(&store)?;
        // After frequent snapshots the newest local one may be a few entries back only:
        // the newest record (a damaged tail) is the one surely read at restart.
        let index = if while_down > 0 {
            last
        } else {
            last.saturating_sub(20).max(1)
        };
        let key = Store::log_key(&group, index);
        let mut value = store
            .get_raw(ColumnFamily::Log, &key)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no log record at {index}"))?;
        let at = value.len() / 2;
        value[at] ^= 0x10;
        store
            .put_raw(ColumnFamily::Log, &key, &value, true)
            .map_err(|e| e.to_string())?;
        (last, index)
    };
    let started = Instant::now();
    cluster.start(victim, &[])?;
    let line = log_line(
        &cluster,
        victim,
        &["damaged log record", "repairing from peers"],
    )
    .await?;
    if field(&line, "index") != Some(index) || !line.contains("crc mismatch") {
        return Err(format!(
            "the repair names another record than {index}: {line}"
        ));
    }
    println!("n{victim} restarted: {line}");
    let acknowledged = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let keys = all_agree(&mut cluster, &acknowledged).await?;
    let repaired_in = started.elapsed();
    let text = std::fs::read_to_string(&cluster.node(victim).log).unwrap_or_default();
    let how = if text.contains("snapshot shipped") {
        "by a snapshot (the leader had pruned the entries)"
    } else {
        "from the leader's log"
    };
    if while_down > 0 && !text.contains("snapshot shipped") {
        return Err(format!(
            "n{victim} was expected to catch up by a snapshot:\n{}",
            cluster.log_tail(victim, 40)
        ));
    }
    Ok(format!(
        "bit flipped in n{victim}'s log record {index} (of {last}) on disk: repaired at restart (log cut at {index}, {} entries discarded, caught up {how} {:.1} s after the restart), {} acknowledged writes, {keys} keys identical on the three nodes",
        last - index + 1,
        repaired_in.as_secs_f64(),
        acknowledged.len()
    ))
}

async fn flipped_while_running(root: std::path::PathBuf) -> Result<String, String> {
    let mut cluster = three_nodes(&root, &[]).await?;
    let (leader, _) = cluster.wait_leader(BOUND).await?;
    let behind = (leader + 1) % 3;
    let stop = Arc::new(AtomicBool::new(false));
    let (task, acked) = writer(&cluster, stop.clone());
    until_more_acked(&acked, 50).await?;

    // A follower stops; the leader writes on, past its in-memory tail (the newest 256
    // entries), so replicating to the follower later reads its records from RocksDB.
    cluster.kill(behind)?;
    let status = cluster
        .client(leader, Duration::from_secs(5))
        .status()
        .await
        .map_err(|e| format!("leader status: {e}"))?;
    let target = status.last.index + 3;
    until_more_acked(&acked, 400).await?;
    stop.store(true, Ordering::Relaxed);
    task.await.map_err(|e| e.to_string())?;

    // The leader's next read of that record from disk sees a bit flipped.
    let fault_file = cluster.node(leader).dir.join(FAULT_FILE);
    std::fs::write(&fault_file, format!("flip-log-record {target}\n"))
        .map_err(|e| format!("{}: {e}", fault_file.display()))?;
    cluster.start(behind, &[])?;
    let started = Instant::now();
    while cluster.is_running(leader) {
        if started.elapsed() > BOUND {
            return Err(format!(
                "n{leader} read the damaged record {target} and goes on running:\n{}",
                cluster.log_tail(leader, 30)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match cluster.exit_status(leader) {
        Some(status) if !status.success() => {}
        other => {
            return Err(format!(
                "n{leader} should exit with an error, got {other:?}"
            ))
        }
    }
    let entry = format!("(entry {target})");
    let stopped = log_line(
        &cluster,
        leader,
        &[
            "group stopped",
            "corrupt record in log",
            &entry,
            "crc mismatch",
        ],
    )
    .await?;
    // The two others go on: a new leader, writes acknowledged, the follower caught up.
    let stop = Arc::new(AtomicBool::new(false));
    let (task, more) = writer(&cluster, stop.clone());
    until_more_acked(&more, 50).await?;
    stop.store(true, Ordering::Relaxed);
    task.await.map_err(|e| e.to_string())?;
    let mut acknowledged = acked.lock().map(|a| a.clone()).unwrap_or_default();
    // The second writer starts its numbering again: its keys overwrite the first ones.
    let later = more.lock().map(|a| a.clone()).unwrap_or_default();
    let mut latest: BTreeMap<String, String> = acknowledged.drain(..).collect();
    latest.extend(later);
    let acknowledged: Vec<(String, String)> = latest.into_iter().collect();

    // The old leader restarts with a sound disk: the record its read found damaged is
    // discarded with what follows and fetched again.
    std::fs::remove_file(&fault_file).map_err(|e| e.to_string())?;
    let restarted = Instant::now();
    cluster.start(leader, &[])?;
    let line = log_line(
        &cluster,
        leader,
        &["damaged log record", "repairing from peers"],
    )
    .await?;
    if field(&line, "index") != Some(target) {
        return Err(format!(
            "the repair names another record than {target}: {line}"
        ));
    }
    let refetched = field(&line, "withheld_until").map_or(0, |l| l + 1 - target);
    let keys = all_agree(&mut cluster, &acknowledged).await?;
    println!("n{leader} stopped: {stopped}\nn{leader} restarted: {line}");
    Ok(format!(
        "bit flipped in the leader n{leader}'s read of log record {target} while replicating to n{behind}: the group stopped naming the record, nothing of it sent; restarted, n{leader} cut its log at {target}, re-fetched {refetched} entries and caught up in {:.1} s; {} acknowledged writes, {keys} keys identical on the three nodes",
        restarted.elapsed().as_secs_f64(),
        acknowledged.len()
    ))
}

#[test]
fn a_bit_flipped_on_disk_is_repaired_from_peers_at_restart() {
    run("log-flip-disk", |root| flipped_on_disk(root, &[], 0));
}

#[test]
fn a_bit_flipped_on_disk_is_repaired_by_a_snapshot_when_the_leader_pruned() {
    let flags = ["--snapshot-every-entries", "100", "--keep-log-tail", "20"];
    run("log-flip-snapshot", |root| {
        flipped_on_disk(root, &flags, 400)
    });
}

#[test]
fn a_bit_flipped_in_a_read_stops_the_group_and_the_restart_repairs_it() {
    run("log-flip-read", flipped_while_running);
}
