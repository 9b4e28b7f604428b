//! Backup and restore, on `tessera node` processes and the `tessera snapshot` commands:
//! a backup saved from a follower while the cluster runs, every node stopped and wiped,
//! the backup restored into one new data directory, two fresh nodes added; the new cluster
//! holds exactly the backup's state, key by key (value, create and mod index, version)
//! and revision, and nothing written after the backup. A damaged or cut backup is refused
//! by `status` and `restore`, and `restore` never writes into a non-empty directory.
//!
//! Quorum loss (`--force-new-cluster`) is the second scenario: two of three nodes lost for
//! good, the survivor forced, two fresh nodes added, every write the survivor had applied
//! still there; a second start with the flag is refused.

mod kv_support;

use kv_support::{client_of, run, BOUND};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};
use tessera::groups::Consistency;
use tessera::store::client::ReadOptions;
use tessera::store::http::KvJson;
use tessera::store::Client;
use tessera_testkit::cluster::LocalCluster;

/// Runs the `tessera` binary; returns (exit code, stdout, stderr).
fn tessera(args: &[&str]) -> Result<(i32, String, String), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .map_err(|e| format!("tessera {args:?}: {e}"))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn tessera_ok(args: &[&str]) -> Result<String, String> {
    let (code, out, err) = tessera(args)?;
    if code != 0 {
        return Err(format!("tessera {args:?} exited {code}: {err}"));
    }
    Ok(out)
}

/// Bytes that do not compress (so a backup spans several chunks).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every key under "" with its value and indices, read linearizably from `client`, and
/// the revision of the read.
async fn everything(client: &Client) -> Result<(u64, BTreeMap<String, KvJson>), String> {
    let mut all = BTreeMap::new();
    let mut after: Option<String> = None;
    let mut revision = 0;
    loop {
        let page = client
            .range(
                "",
                after.as_deref(),
                Some(500),
                ReadOptions::consistency(Consistency::Strong),
            )
            .await
            .map_err(|e| format!("range: {e}"))?;
        revision = revision.max(page.revision);
        for kv in page.kvs {
            all.insert(kv.key.clone(), kv);
        }
        if !page.more {
            return Ok((revision, all));
        }
        after = page.next;
    }
}

/// Waits until `client` (one node) serves a linearizable read, within `bound`.
async fn serving(client: &Client, bound: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match client.get("probe", Consistency::Strong).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > bound => return Err(format!("not serving: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until node `i` of `cluster` reports `n` voters.
async fn voters(
    cluster: &mut LocalCluster,
    i: usize,
    n: usize,
    bound: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let client = client_of(cluster, &[i], BOUND);
    loop {
        if let Ok(status) = client.status().await {
            if status.members.voters.len() == n {
                return Ok(());
            }
            if start.elapsed() > bound {
                return Err(format!(
                    "{n} voters not within {bound:?}: {:?}",
                    status.members
                ));
            }
        } else if start.elapsed() > bound {
            return Err(format!("no status from node {i}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn same(expected: &BTreeMap<String, KvJson>, got: &BTreeMap<String, KvJson>) -> Result<(), String> {
    if expected.len() != got.len() {
        let missing: Vec<&String> = expected
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(5)
            .collect();
        let extra: Vec<&String> = got
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .take(5)
            .collect();
        return Err(format!(
            "{} keys expected, {} found (missing {missing:?}, extra {extra:?})",
            expected.len(),
            got.len()
        ));
    }
    for (key, want) in expected {
        let have = &got[key];
        if have.value != want.value
            || have.create_index != want.create_index
            || have.mod_index != want.mod_index
            || have.version != want.version
        {
            return Err(format!(
                "{key}: expected create {} mod {} version {} ({} bytes), found create {} mod {} version {} ({} bytes)",
                want.create_index,
                want.mod_index,
                want.version,
                want.value.as_ref().map_or(0, Vec::len),
                have.create_index,
                have.mod_index,
                have.version,
                have.value.as_ref().map_or(0, Vec::len)
            ));
        }
    }
    Ok(())
}

#[test]
fn backup_wipe_every_node_restore_identical_state() {
    run("backup-restore", |root| async move {
        let mut cluster = kv_support::three_nodes(&root, &[]).await?;
        let all = kv_support::client_of_all(&cluster, BOUND);
        // Small keys written several times (versions), some deleted, and large values of
        // noise so the backup spans several chunks.
        for round in 0..3 {
            for i in 0..150 {
                all.put(&format!("small/{i:03}"), format!("r{round}-{i}"))
                    .await
                    .map_err(|e| format!("put: {e}"))?;
            }
        }
        for i in (0..150).step_by(7) {
            all.delete(&format!("small/{i:03}"))
                .await
                .map_err(|e| format!("delete: {e}"))?;
        }
        for i in 0..24u64 {
            all.put(&format!("big/{i:02}"), noise(i, 128 << 10))
                .await
                .map_err(|e| format!("put big: {e}"))?;
        }
        let (revision, expected) = everything(&all).await?;

        // Saved from a follower.
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        let follower = (0..3).find(|i| *i != leader).ok_or("no follower")?;
        let file = root.join("backup.tsb");
        let file_s = file.to_string_lossy().to_string();
        let endpoint = cluster.node(follower).endpoint();
        tessera_ok(&["snapshot", "save", &file_s, "--endpoints", &endpoint])?;
        let status = tessera_ok(&["snapshot", "status", &file_s, "--format", "json"])?;
        let status: serde_json::Value =
            serde_json::from_str(&status).map_err(|e| format!("{e}: {status}"))?;
        if status["revision"] != revision || status["keys"] != expected.len() as u64 {
            return Err(format!(
                "status says revision {} keys {}, expected {revision} and {}",
                status["revision"],
                status["keys"],
                expected.len()
            ));
        }
        let chunks = status["chunks"].as_u64().unwrap_or(0);
        if chunks < 2 {
            return Err(format!("expected several chunks, the backup has {chunks}"));
        }

        // Written after the backup: must not come back.
        all.put("after/backup", "x")
            .await
            .map_err(|e| format!("put: {e}"))?;

        // A damaged copy and a cut copy are refused, naming what is wrong.
        let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
        let mut flipped = bytes.clone();
        let at = bytes.len() / 2;
        flipped[at] ^= 0x40;
        let damaged = root.join("damaged.tsb");
        std::fs::write(&damaged, &flipped).map_err(|e| e.to_string())?;
        let (code, _, err) = tessera(&["snapshot", "status", &damaged.to_string_lossy()])?;
        if code != 8
            || !(err.contains("crc32") || err.contains("digest") || err.contains("damaged"))
        {
            return Err(format!("a flipped bit: exit {code}: {err}"));
        }
        let cut = root.join("cut.tsb");
        std::fs::write(&cut, &bytes[..bytes.len() - 100]).map_err(|e| e.to_string())?;
        let (code, _, err) = tessera(&["snapshot", "status", &cut.to_string_lossy()])?;
        if code != 8 || !(err.contains("cut short") || err.contains("incomplete")) {
            return Err(format!("a cut file: exit {code}: {err}"));
        }
        let (code, _, err) = tessera(&[
            "snapshot",
            "restore",
            &damaged.to_string_lossy(),
            "--data-dir",
            &root.join("never").to_string_lossy(),
        ])?;
        if code == 0 || root.join("never").exists() {
            return Err(format!("a damaged backup was restored: {err}"));
        }

        // Every node stopped and wiped.
        for i in 0..3 {
            cluster.terminate(i, BOUND)?;
        }
        let (code, _, err) = tessera(&[
            "snapshot",
            "restore",
            &file_s,
            "--data-dir",
            &cluster.node(0).dir.to_string_lossy(),
        ])?;
        if code == 0 || !err.contains("not empty") {
            return Err(format!(
                "restore into a live data directory: exit {code}: {err}"
            ));
        }
        for i in 0..3 {
            cluster.wipe(i)?;
        }
        let dir0 = cluster.node(0).dir.to_string_lossy().to_string();
        tessera_ok(&["snapshot", "restore", &file_s, "--data-dir", &dir0])?;

        // The restored node leads alone; two fresh nodes join it.
        let first = cluster.start(0, &[])?;
        let restored = client_of(&cluster, &[0], BOUND);
        serving(&restored, BOUND).await?;
        cluster.start(1, &[first])?;
        cluster.start(2, &[first])?;
        voters(&mut cluster, 0, 3, BOUND * 2).await?;

        for i in 0..3 {
            let one = client_of(&cluster, &[i], BOUND);
            serving(&one, BOUND).await?;
            let (now, got) = everything(&one).await?;
            same(&expected, &got).map_err(|e| format!("node {i}: {e}"))?;
            if now < revision {
                return Err(format!(
                    "node {i} is at revision {now}, below the backup's {revision}"
                ));
            }
        }
        let next = all
            .put("after/restore", "y")
            .await
            .map_err(|e| format!("put after restore: {e}"))?;
        if next <= revision {
            return Err(format!(
                "a write after the restore got revision {next}, not above the backup's {revision}"
            ));
        }
        for i in 0..3 {
            cluster.terminate(i, BOUND)?;
        }
        Ok(format!(
            "backup of {} keys at revision {revision} in {chunks} chunks ({} bytes), restored into one node, two fresh nodes added: all three hold exactly it; a flipped bit, a cut file and a non-empty directory refused",
            expected.len(),
            bytes.len()
        ))
    });
}

#[test]
fn force_new_cluster_after_losing_two_of_three() {
    run("force-new-cluster", |root| async move {
        let mut cluster = kv_support::three_nodes(&root, &[]).await?;
        let all = kv_support::client_of_all(&cluster, BOUND);
        for i in 0..200 {
            all.put(&format!("k/{i:03}"), format!("v{i}"))
                .await
                .map_err(|e| format!("put: {e}"))?;
        }
        let (revision, expected) = everything(&all).await?;
        // The survivor has applied everything (a strong read from it waits for that).
        let survivor = client_of(&cluster, &[0], BOUND);
        let (_, seen) = everything(&survivor).await?;
        same(&expected, &seen)?;

        // Nodes 1 and 2 lost for good; node 0 alone has no quorum.
        cluster.kill(1)?;
        cluster.kill(2)?;
        cluster.wipe(1)?;
        cluster.wipe(2)?;
        cluster.terminate(0, BOUND)?;
        let first = cluster.start_with(0, &[], &["--force-new-cluster"])?;
        let forced = client_of(&cluster, &[0], BOUND);
        serving(&forced, BOUND).await?;
        let (_, got) = everything(&forced).await?;
        same(&expected, &got).map_err(|e| format!("after forcing: {e}"))?;
        let next = forced
            .put("after/force", "z")
            .await
            .map_err(|e| format!("put: {e}"))?;
        if next <= revision {
            return Err(format!("revision went back: {next} <= {revision}"));
        }

        cluster.start(1, &[first])?;
        cluster.start(2, &[first])?;
        voters(&mut cluster, 0, 3, BOUND * 2).await?;
        for i in 1..3 {
            let one = client_of(&cluster, &[i], BOUND);
            serving(&one, BOUND).await?;
            let (_, got) = everything(&one).await?;
            if got.len() != expected.len() + 1 {
                return Err(format!(
                    "node {i} holds {} keys, expected {}",
                    got.len(),
                    expected.len() + 1
                ));
            }
        }

        // The flag left on for the next start is refused, and nothing changes.
        cluster.terminate(0, BOUND)?;
        let refused = cluster.start_with(0, &[], &["--force-new-cluster"]);
        let log = cluster.log_tail(0, 5);
        if refused.is_ok() || !log.contains("already forced") {
            return Err(format!(
                "a second --force-new-cluster was not refused: {log}"
            ));
        }
        cluster.start(0, &[])?;
        voters(&mut cluster, 0, 3, BOUND).await?;
        for i in 0..3 {
            cluster.terminate(i, BOUND)?;
        }
        Ok(format!(
            "{} keys at revision {revision} kept through a forced new cluster; two fresh nodes joined; a second forcing refused",
            expected.len()
        ))
    });
}
