//! `/metrics` on `tessera node` processes, scraped and parsed as Prometheus would: every
//! metric the operations guide lists is present, and each moves under load (writes, a
//! watch, a node that catches up from a snapshot served by the others).

mod kv_support;

use hyper::{Method, StatusCode};
use kv_support::{http, run, three_nodes, BOUND};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tessera::store::client::WatchOptions;
use tessera_testkit::cluster::LocalCluster;

/// One scrape: each sample's name with its labels, and its value.
type Samples = BTreeMap<String, f64>;

async fn scrape(cluster: &LocalCluster, i: usize) -> Result<Samples, String> {
    let answer = http(
        Method::GET,
        &format!("{}/metrics", cluster.node(i).endpoint()),
        "",
    )
    .await?;
    if answer.status != StatusCode::OK {
        return Err(format!("/metrics: {} {}", answer.status, answer.text()));
    }
    let text = answer.text();
    if !text.trim_end().ends_with("# EOF") {
        return Err("an OpenMetrics answer ends with # EOF".into());
    }
    let mut samples = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("not a sample: {line}"))?;
        let value: f64 = value
            .parse()
            .map_err(|e| format!("{line}: value {value:?}: {e}"))?;
        samples.insert(name.to_string(), value);
    }
    Ok(samples)
}

/// The sum of every sample of `name` (any labels).
fn total(samples: &Samples, name: &str) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Every name the README's metrics table lists, and whether it must grow under load on
/// the node the writes go to (false: present, and checked otherwise).
const LISTED: &[(&str, bool)] = &[
    ("tessera_server_has_leader", false),
    ("tessera_server_is_leader", false),
    ("tessera_server_leader_changes_seen_total", false),
    ("tessera_server_term", false),
    ("tessera_server_commit_index", true),
    ("tessera_server_applied_index", true),
    ("tessera_server_proposals_committed_total", true),
    ("tessera_server_proposals_failed_total", false),
    ("tessera_server_proposals_pending", false),
    ("tessera_disk_sync_duration_seconds_count", true),
    ("tessera_disk_free_bytes", false),
    ("tessera_disk_reserve_bytes", false),
    ("tessera_disk_space_alarm", false),
    ("tessera_storage_write_stops_total", false),
    ("tessera_storage_write_delays_total", false),
    ("tessera_storage_bulk_write_wait_seconds_total", false),
    ("tessera_server_apply_duration_seconds_count", true),
    ("tessera_network_peer_sent_bytes_total", true),
    ("tessera_network_peer_sent_frames_total", true),
    ("tessera_network_peer_received_bytes_total", true),
    ("tessera_network_peer_received_frames_total", true),
    ("tessera_snapshot_cuts_total", true),
    ("tessera_snapshot_chunks_served_total", false),
    ("tessera_snapshot_bytes_served_total", false),
    ("tessera_snapshot_chunks_fetched_total", false),
    ("tessera_snapshot_bytes_fetched_total", false),
    ("tessera_snapshot_chunks_damaged_total", false),
    ("tessera_snapshot_chunks_damaged_not_served_total", false),
    ("tessera_log_entries", false),
    ("tessera_log_first_index", false),
    ("tessera_log_write_rate", false),
    ("tessera_log_tail_kept", false),
    ("tessera_log_pins", false),
    ("tessera_log_pinned_from", false),
    ("tessera_snapshot_ship_milliseconds", false),
    ("tessera_snapshot_install_milliseconds", false),
    ("tessera_http_requests_total", true),
    ("tessera_http_request_duration_seconds_count", true),
    ("tessera_watch_open", false),
    ("tessera_store_revision", true),
    ("tessera_store_keys", true),
];

#[test]
fn every_listed_metric_is_present_and_moves_under_load() {
    run("metrics", |root| async move {
        let timings = [
            "--snapshot-every-entries",
            "50",
            "--keep-log-tail",
            "10",
            "--snapshot-chunk-kib",
            "1",
        ];
        let mut cluster = three_nodes(&root, &timings).await?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        // A follower is down during the load: it must catch up from a snapshot after.
        let late = (leader + 2) % 3;
        let writer = (leader + 1) % 3;
        cluster.kill(late)?;
        let before = scrape(&cluster, writer).await?;
        for (name, _) in LISTED {
            if total(&before, name).is_none() {
                return Err(format!("{name} missing from /metrics before the load"));
            }
        }

        let client = cluster.client(writer, BOUND);
        let mut watch = client.watch("", WatchOptions::default());
        for i in 0..300 {
            client
                .put(&format!("k/{i:04}"), vec![b'v'; 200])
                .await
                .map_err(|e| format!("put {i}: {e}"))?;
        }
        watch.next().await.map_err(|e| format!("watch: {e}"))?;
        let during = scrape(&cluster, writer).await?;
        for (name, grows) in LISTED {
            let (b, a) = (total(&before, name), total(&during, name));
            if *grows && a <= b {
                return Err(format!("{name} did not grow under load: {b:?} -> {a:?}"));
            }
        }
        let open = total(&during, "tessera_watch_open").unwrap_or(0.0);
        let has_leader = total(&during, "tessera_server_has_leader").unwrap_or(0.0);
        if open < 1.0 || has_leader != 1.0 {
            return Err(format!("watch_open {open}, has_leader {has_leader}"));
        }
        if total(&during, "tessera_log_first_index").unwrap_or(0.0) <= 1.0 {
            return Err("the log was not pruned behind a snapshot".into());
        }
        watch.disconnect();

        // The late follower comes back behind the pruned log: chunks move.
        let peers = [cluster.node(leader).addr.ok_or("leader address")?];
        cluster.start(late, &peers)?;
        let start = Instant::now();
        loop {
            let fetched = total(
                &scrape(&cluster, late).await?,
                "tessera_snapshot_chunks_fetched_total",
            );
            let mut served = 0.0;
            for i in [leader, writer] {
                served += total(
                    &scrape(&cluster, i).await?,
                    "tessera_snapshot_chunks_served_total",
                )
                .unwrap_or(0.0);
            }
            if fetched.unwrap_or(0.0) > 0.0 && served > 0.0 {
                return Ok(format!(
                    "{} metrics present and moving; {} chunks fetched by the late node, {served} served",
                    LISTED.len(),
                    fetched.unwrap_or(0.0)
                ));
            }
            if start.elapsed() > BOUND {
                return Err(format!(
                    "no snapshot chunks moved: fetched {fetched:?}, served {served}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
