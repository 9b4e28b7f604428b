//! `tessera inspect` on the data directory of a real `tessera node` process (one node,
//! loopback): beside the running node it sees the snapshot being cut; after the node
//! stopped it reports the node's own id (the one the node printed), one view per thing
//! (no `complete_snapshots` or `transfers_in_progress` beside `snapshots` and
//! `transfers`), and a key-level summary — keys, data bytes and largest values equal to
//! what the store serves, the revision within what was written — computed from the
//! newest snapshot plus the committed log after it. A missing path, a file and a
//! directory without a store each give their own one-line error and exit code 1.

mod kv_support;

use kv_support::{run, BOUND};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tessera::groups::Consistency;
use tessera::store::client::ReadOptions;
use tessera::store::Client;
use tessera_testkit::cluster::{fast_timings, LocalCluster};

/// Runs `tessera inspect ARGS`; returns (exit code, stdout, stderr).
fn inspect(args: &[&str]) -> Result<(i32, String, String), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("inspect")
        .args(args)
        .output()
        .map_err(|e| format!("tessera inspect {args:?}: {e}"))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `tessera inspect DIR` as JSON.
fn inspect_json(dir: &Path) -> Result<serde_json::Value, String> {
    let dir = dir.to_string_lossy();
    let (code, out, err) = inspect(&[&dir])?;
    if code != 0 {
        return Err(format!("tessera inspect {dir} exited {code}: {err}"));
    }
    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
}

/// Every key with its value, read linearizably, and the revision of the read.
async fn everything(client: &Client) -> Result<(u64, BTreeMap<String, Vec<u8>>), String> {
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
            all.insert(kv.key, kv.value.unwrap_or_default());
        }
        if !page.more {
            return Ok((revision, all));
        }
        after = page.next;
    }
}

#[test]
fn inspect_shows_the_node_one_view_per_thing_and_the_keys() {
    run("inspect", |root| async move {
        let mut args = fast_timings();
        args.extend(
            ["--bootstrap-expect", "1", "--snapshot-every-entries", "20"].map(String::from),
        );
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut single = LocalCluster::new(
            env!("CARGO_BIN_EXE_tessera"),
            &root.join("single"),
            &[ip],
            args,
        )?;
        let printed = single.start(0, &[])?.id.to_string();
        let result = scenario(&mut single, &root, &printed).await;
        // Stopped on every path (dropping the cluster would kill it too).
        let stopped = single.terminate(0, BOUND).map(|_| ());
        result.and(stopped.map(|()| "inspect: node id, views, keys, errors".to_string()))
    });
}

async fn scenario(single: &mut LocalCluster, root: &Path, printed: &str) -> Result<(), String> {
    single.wait_leader(BOUND).await?;
    let client = single.client(0, BOUND);
    let mut last_write = 0;
    for i in 0..30 {
        last_write = client
            .put(&format!("small/{i:02}"), format!("v{i}"))
            .await
            .map_err(|e| format!("put: {e}"))?;
    }
    for i in 0..5 {
        last_write = client
            .put(&format!("small/{i:02}"), format!("again{i}"))
            .await
            .map_err(|e| format!("overwrite: {e}"))?;
    }
    for i in 28..30 {
        last_write = client
            .delete(&format!("small/{i:02}"))
            .await
            .map_err(|e| format!("delete: {e}"))?;
    }
    let sizes = [("big/a", 40_000), ("big/b", 30_000), ("big/c", 20_000)];
    let more = [("big/d", 10_000), ("big/e", 5_000), ("big/f", 1_000)];
    for (key, size) in sizes.iter().chain(&more) {
        last_write = client
            .put(key, vec![b'x'; *size])
            .await
            .map_err(|e| format!("put {key}: {e}"))?;
    }
    // The same value again: the state's keys and sizes stay, and the sync of this entry
    // records a commit index that covers every write above (the stored commit index
    // lags the last entry until the next sync).
    client
        .put("small/00", "again0")
        .await
        .map_err(|e| format!("put the same value: {e}"))?;

    // Beside the running node: the snapshot every 20 entries appears.
    let dir = single.node(0).dir.clone();
    let start = Instant::now();
    loop {
        let live = inspect_json(&dir)?;
        let snapshots = live["groups"][0]["snapshots"]
            .as_array()
            .map_or(0, Vec::len);
        if snapshots > 0 {
            break;
        }
        if start.elapsed() > BOUND {
            return Err(format!("no snapshot within {BOUND:?}: {live:#}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (served_revision, served) = everything(&client).await?;
    single.terminate(0, BOUND)?;

    let report = inspect_json(&dir)?;
    // The node's own id, as it printed it; no peers for a lone node.
    if report["node"]["id"] != printed {
        return Err(format!(
            "node id {} but the node printed {printed}",
            report["node"]
        ));
    }
    if report["peers"] != serde_json::json!([]) {
        return Err(format!("peers of a lone node: {}", report["peers"]));
    }
    let groups = report["groups"].as_array().ok_or("no groups array")?;
    if groups.len() != 1 {
        return Err(format!("{} groups, expected 1", groups.len()));
    }
    let group = &groups[0];
    // One view per thing: exactly these fields (leftover chunks only when there are any).
    let fields: Vec<&str> = group
        .as_object()
        .ok_or("group is not an object")?
        .keys()
        .map(String::as_str)
        .collect();
    let expected = [
        "entries",
        "group",
        "hard_state",
        "kv",
        "log",
        "snapshots",
        "transfers",
    ];
    if fields != expected {
        return Err(format!("group fields {fields:?}, expected {expected:?}"));
    }
    let snapshots = group["snapshots"].as_array().ok_or("no snapshots")?;
    for s in snapshots {
        let fields: Vec<&String> = s.as_object().ok_or("snapshot")?.keys().collect();
        let want = [
            "anchor_index",
            "anchor_term",
            "chunk_size",
            "chunks",
            "digest",
            "items",
            "raw_bytes",
            "stored_bytes",
        ];
        if fields != want {
            return Err(format!("snapshot fields {fields:?}, expected {want:?}"));
        }
    }
    let newest = snapshots
        .iter()
        .filter_map(|s| s["anchor_index"].as_u64())
        .max()
        .ok_or("no snapshot after the stop")?;

    // The key-level summary equals what the store served.
    let kv = &group["kv"];
    let num = |v: &serde_json::Value, name: &str| {
        v[name]
            .as_u64()
            .ok_or_else(|| format!("kv.{name} missing: {kv}"))
    };
    if num(kv, "keys")? != served.len() as u64 {
        return Err(format!("{} keys served, inspect says {kv}", served.len()));
    }
    let data: u64 = served.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    if num(kv, "data_bytes")? != data {
        return Err(format!(
            "{data} bytes of keys and values served, inspect says {kv}"
        ));
    }
    let largest: Vec<(String, u64)> = kv["largest_values"]
        .as_array()
        .ok_or("no largest_values")?
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap_or("").to_string(),
                v["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = sizes
        .iter()
        .chain(&more)
        .take(5)
        .map(|(k, n)| (k.to_string(), *n as u64))
        .collect();
    if largest != want {
        return Err(format!("largest values {largest:?}, expected {want:?}"));
    }
    let revision = num(kv, "revision")?;
    if revision < last_write || revision > served_revision {
        return Err(format!(
            "revision {revision}, expected between the last write {last_write} and the served revision {served_revision}"
        ));
    }
    let computed = num(kv, "computed_at")?;
    if computed != group["hard_state"]["commit"] || computed < last_write {
        return Err(format!(
            "computed at {computed}, commit {}",
            group["hard_state"]["commit"]
        ));
    }
    let last = group["log"]["last"]["index"].as_u64().ok_or("log.last")?;
    if computed + num(kv, "entries_after_commit")? != last {
        return Err(format!(
            "computed at {computed} + entries after commit != log end {last}"
        ));
    }
    if kv["from_snapshot"] != newest {
        return Err(format!(
            "from snapshot {}, newest is {newest}",
            kv["from_snapshot"]
        ));
    }

    // The text form says the same in a few lines.
    let dir_s = dir.to_string_lossy().to_string();
    let (code, text, err) = inspect(&[&dir_s, "--format", "text"])?;
    let keys_line = format!("{} keys, revision {revision}", served.len());
    if code != 0 || !text.contains(printed) || !text.contains(&keys_line) || !text.contains("big/a")
    {
        return Err(format!("text form (exit {code}, {err}):\n{text}"));
    }

    // The three refusals, each its own line and exit code 1.
    let missing = root.join("missing");
    let file = root.join("a-file");
    std::fs::write(&file, b"not a directory").map_err(|e| e.to_string())?;
    let empty = root.join("empty");
    std::fs::create_dir(&empty).map_err(|e| e.to_string())?;
    for (path, says) in [
        (
            &missing,
            format!("{}: no such directory", missing.display()),
        ),
        (
            &file,
            format!("{} is a file, not a data directory", file.display()),
        ),
        (
            &empty,
            format!("{}: not a tessera data directory", empty.display()),
        ),
    ] {
        let (code, out, err) = inspect(&[&path.to_string_lossy()])?;
        if code != 1 || !out.is_empty() || err.lines().count() != 1 || !err.contains(&says) {
            return Err(format!(
                "inspect {}: exit {code}, stdout {out:?}, stderr {err:?}; expected {says:?}",
                path.display()
            ));
        }
    }
    Ok(())
}
