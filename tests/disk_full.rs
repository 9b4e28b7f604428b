//! A disk that fills up, for real: a node's data directory on a small tmpfs, filled by a
//! file beside it until free space is below the node's reserve (`--min-free-mib`).
//!
//! - Three nodes, the full one leading: it raises the alarm (`/v1/status` `disk.low`,
//!   `tessera_disk_space_alarm 1`), hands leadership over, takes no new entries (it falls
//!   behind) and still serves reads; the other two keep taking writes. The filler is
//!   deleted: the alarm clears by itself, the node catches up without a restart and holds
//!   every acknowledged write.
//! - One node alone: a write is refused with 507 `no_space` naming the cause, reads still
//!   work, nothing acknowledged is lost, and writes are taken again once space is freed.
//!
//! Needs root to mount a tmpfs; skipped with the reason otherwise.

mod kv_support;

use hyper::{Method, StatusCode};
use kv_support::{client_of, client_of_all, http, run, url, BOUND};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera::groups::Consistency;
use tessera::store::http::NodeStatus;
use tessera::store::kv::Retention;
use tessera_testkit::cluster::LocalCluster;

/// The tmpfs's size, and the reserve the node keeps on it.
const TMPFS_MIB: u64 = 256;
const RESERVE_MIB: u64 = 64;
/// Free space the filler leaves: below the reserve, room for what RocksDB still writes.
const LEFT_MIB: u64 = 40;

/// A tmpfs mounted for the test; unmounted (lazily, so a still-open file cannot stop it)
/// when dropped.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, mib: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| format!("{}: {e}", at.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            at: at.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Whether this machine lets the test mount a tmpfs.
fn tmpfs_available() -> Result<(), String> {
    let probe = tempfile::tempdir().map_err(|e| e.to_string())?;
    Tmpfs::mount(&probe.path().join("probe"), 1).map(drop)
}

/// Bytes available on the file system holding `path`.
fn free_bytes(path: &Path) -> Result<u64, String> {
    let stat = rustix::fs::statvfs(path).map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    Ok(stat.f_bavail * stat.f_frsize.max(1))
}

/// Writes a file at `path` until `leave` bytes are free on its file system.
fn fill(path: &Path, leave: u64) -> Result<u64, String> {
    let dir = path.parent().ok_or("filler without a directory")?;
    let want = free_bytes(dir)?.saturating_sub(leave);
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0;
    while written < want {
        let n = chunk.len().min((want - written) as usize);
        file.write_all(&chunk[..n])
            .map_err(|e| format!("filling {}: {e}", path.display()))?;
        written += n as u64;
    }
    file.sync_all()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(written)
}

/// Polls `probe` every 100 ms until it returns `Some`, for at most [`BOUND`].
async fn until<T, F, Fut>(what: &str, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if started.elapsed() > BOUND {
            return Err(format!("timed out after {BOUND:?}: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls every node's status every 100 ms until `check` finds what it waits for, for at
/// most [`BOUND`].
async fn until_status<T>(
    cluster: &mut LocalCluster,
    what: &str,
    mut check: impl FnMut(&[Option<NodeStatus>]) -> Option<T>,
) -> Result<T, String> {
    let started = Instant::now();
    loop {
        let statuses = cluster.statuses(Duration::from_secs(2)).await;
        if let Some(v) = check(&statuses) {
            return Ok(v);
        }
        if started.elapsed() > BOUND {
            return Err(format!("timed out after {BOUND:?}: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the metric line starting with `name ` in `base`'s `/metrics`.
async fn metric(base: &str, name: &str) -> Result<Option<f64>, String> {
    let answer = http(Method::GET, &format!("{base}/metrics"), "").await?;
    Ok(answer
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok()))
}

type Acked = Arc<Mutex<Vec<(String, String)>>>;

#[test]
fn a_full_disk_on_the_leader_moves_leadership_and_the_node_catches_up_once_freed() {
    if let Err(why) = tmpfs_available() {
        println!("skipped: cannot mount a tmpfs on this machine: {why}");
        return;
    }
    run("disk-full-cluster", |root| async move {
        const SMALL: usize = 2;
        let _tmpfs = Tmpfs::mount(&root.join("n2"), TMPFS_MIB)?;
        let reserve = RESERVE_MIB.to_string();
        let args = vec!["--min-free-mib".to_string(), reserve];
        let mut cluster = LocalCluster::loopback(env!("CARGO_BIN_EXE_tessera"), &root, args)?;
        cluster.start_all()?;
        cluster.wait_leader(BOUND).await?;
        let small = cluster.node(SMALL).endpoint();
        let small_id = until("the small node's id", || async { cluster.node(SMALL).id() }).await?;
        // The node on the small disk leads.
        let moved = http(
            Method::POST,
            &format!("{small}/v1/leader/transfer"),
            format!(r#"{{"to":"{small_id}"}}"#),
        )
        .await?;
        if moved.status != StatusCode::OK {
            return Err(format!(
                "transfer to the small node: {} {}",
                moved.status,
                moved.text()
            ));
        }

        let stop = Arc::new(AtomicBool::new(false));
        let acked: Acked = Arc::default();
        let failed = Arc::new(Mutex::new(Vec::<String>::new()));
        let writer = {
            let client = client_of_all(&cluster, Duration::from_secs(10));
            let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let (key, value) = (format!("full/{n:05}"), format!("value {n}"));
                    match client.put(&key, value.clone()).await {
                        Ok(_) => acked.lock().expect("lock").push((key, value)),
                        Err(e) => failed.lock().expect("lock").push(format!("{key}: {e}")),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let count = |a: &Acked| a.lock().expect("lock").len();
        until("100 writes", || async {
            (count(&acked) >= 100).then_some(())
        })
        .await?;

        // The disk fills up.
        let filler = root.join("n2").join("filler");
        let filled = fill(&filler, LEFT_MIB << 20)?;
        let alarm_at = Instant::now();
        let statuses = until_status(&mut cluster, "the alarm on the full node", |s| {
            let low = s[SMALL].as_ref()?.disk.as_ref()?.low;
            low.then(|| s.to_vec())
        })
        .await?;
        let alarm_ms = alarm_at.elapsed().as_millis();
        let disk = statuses[SMALL]
            .as_ref()
            .and_then(|s| s.disk.clone())
            .ok_or("no disk in the status")?;
        if disk.reserve_bytes != RESERVE_MIB << 20 || disk.free_bytes >= disk.reserve_bytes {
            return Err(format!("disk view: {disk:?}"));
        }
        if metric(&small, "tessera_disk_space_alarm").await? != Some(1.0) {
            return Err("tessera_disk_space_alarm is not 1 on the full node".into());
        }
        let leader = until_status(&mut cluster, "leadership off the full node", |s| {
            s.iter()
                .position(|s| s.as_ref().is_some_and(|s| s.is_leader()))
                .filter(|l| *l != SMALL)
        })
        .await?;
        let handover_ms = alarm_at.elapsed().as_millis();

        // Writes go on through the other two; the full node takes no new entries.
        let before = count(&acked);
        until("200 writes while the disk is full", || async {
            (count(&acked) >= before + 200).then_some(())
        })
        .await?;
        let s = cluster.statuses(Duration::from_secs(2)).await;
        let (small_applied, leader_commit) = (
            s[SMALL].as_ref().map_or(0, |s| s.applied),
            s[leader].as_ref().map_or(0, |s| s.commit),
        );
        if small_applied + 100 > leader_commit {
            return Err(format!(
                "the full node kept taking entries: applied {small_applied}, leader's commit {leader_commit}"
            ));
        }
        // Reads on the full node still work (a linearizable read of something it holds).
        let reader = client_of(&cluster, &[SMALL], Duration::from_secs(10));
        let (first_key, first_value) = acked.lock().expect("lock")[0].clone();
        let got = reader
            .get(&first_key, Consistency::Weak)
            .await
            .map_err(|e| format!("read on the full node: {e}"))?;
        if got != Some(first_value.into_bytes()) {
            return Err(format!("read {first_key} on the full node: wrong value"));
        }

        // Space is freed: the alarm clears by itself and the node catches up.
        std::fs::remove_file(&filler).map_err(|e| format!("{}: {e}", filler.display()))?;
        let freed_at = Instant::now();
        until_status(&mut cluster, "the alarm to clear", |s| {
            let low = s[SMALL].as_ref()?.disk.as_ref()?.low;
            (!low).then_some(())
        })
        .await?;
        let (_, status) = cluster.wait_leader(BOUND).await?;
        cluster.wait_caught_up(SMALL, status.commit, BOUND).await?;
        let caught_up_ms = freed_at.elapsed().as_millis();
        stop.store(true, Ordering::Relaxed);
        writer.await.map_err(|e| format!("writer: {e}"))?;

        // Every acknowledged write is on the node that was full, with its value.
        let acked = acked.lock().expect("lock").clone();
        for (key, value) in &acked {
            let got = reader
                .get(key, Consistency::Strong)
                .await
                .map_err(|e| format!("get {key} on the node that was full: {e}"))?;
            if got != Some(value.clone().into_bytes()) {
                return Err(format!(
                    "acknowledged write {key} missing or wrong on the node that was full"
                ));
            }
        }
        let failed = failed.lock().expect("lock").clone();
        Ok(format!(
            "filler {} MiB; alarm seen after {alarm_ms} ms, leadership moved after {handover_ms} ms; \
             full node at applied {small_applied} while the leader committed {leader_commit}; \
             freed: caught up in {caught_up_ms} ms; {} writes acknowledged, all on the node \
             that was full; {} failed while leadership moved: {:?}",
            filled >> 20,
            acked.len(),
            failed.len(),
            &failed[..failed.len().min(3)],
        ))
    });
}

#[test]
fn a_full_disk_on_a_lone_node_refuses_writes_keeps_reads_and_resumes_once_freed() {
    if let Err(why) = tmpfs_available() {
        println!("skipped: cannot mount a tmpfs on this machine: {why}");
        return;
    }
    run("disk-full-single", |root| async move {
        let dir = root.join("node");
        let _tmpfs = Tmpfs::mount(&dir, TMPFS_MIB)?;
        let mut config = kv_support::single_node_config(&dir, Retention::default())?;
        config.min_free_bytes = RESERVE_MIB << 20;
        let node = kv_support::start_single(config).await?;
        let base = url(&node);
        for n in 0..50 {
            let put = http(
                Method::PUT,
                &format!("{base}/v1/kv/before/{n}"),
                format!("v{n}"),
            )
            .await?;
            if put.status != StatusCode::OK {
                return Err(format!("put before/{n}: {} {}", put.status, put.text()));
            }
        }

        let filler = dir.join("filler");
        fill(&filler, LEFT_MIB << 20)?;
        // Refused with 507 once the alarm is up (at most one reading, 250 ms, after).
        // Each try its own key: those before the alarm rose were taken.
        let tries = std::sync::atomic::AtomicU64::new(0);
        let (refused, refused_key) = until("a write refused for lack of space", || async {
            let key = format!("during/{}", tries.fetch_add(1, Ordering::Relaxed));
            let put = http(Method::PUT, &format!("{base}/v1/kv/{key}"), "x")
                .await
                .ok()?;
            (put.status == StatusCode::INSUFFICIENT_STORAGE).then_some((put, key))
        })
        .await?;
        let body = refused.json()?;
        let message = body["error"].as_str().unwrap_or_default().to_string();
        if body["kind"] != "no_space" || !message.contains("disk space") {
            return Err(format!("refusal: {}", refused.text()));
        }
        if metric(&base, "tessera_disk_space_alarm").await? != Some(1.0) {
            return Err("tessera_disk_space_alarm is not 1".into());
        }
        // Reads work, linearizable ones too; the refused write did not apply.
        for n in 0..50 {
            let got = http(Method::GET, &format!("{base}/v1/kv/before/{n}"), "").await?;
            if got.status != StatusCode::OK || got.text() != format!("v{n}") {
                return Err(format!(
                    "read before/{n} while full: {} {}",
                    got.status,
                    got.text()
                ));
            }
        }
        let absent = http(Method::GET, &format!("{base}/v1/kv/{refused_key}"), "").await?;
        if absent.status != StatusCode::NOT_FOUND {
            return Err(format!("the refused write is there: {}", absent.status));
        }

        std::fs::remove_file(&filler).map_err(|e| format!("{}: {e}", filler.display()))?;
        let freed_at = Instant::now();
        until("a write taken again after freeing space", || async {
            let put = http(Method::PUT, &format!("{base}/v1/kv/after"), "y")
                .await
                .ok()?;
            (put.status == StatusCode::OK).then_some(())
        })
        .await?;
        let resumed_ms = freed_at.elapsed().as_millis();
        if metric(&base, "tessera_disk_space_alarm").await? != Some(0.0) {
            return Err("tessera_disk_space_alarm is not back to 0".into());
        }
        node.stop().await;
        Ok(format!(
            "refused with 507: {message:?}; 50 keys read while full; writes taken again {resumed_ms} ms after freeing"
        ))
    });
}
