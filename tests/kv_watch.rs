//! A watch that resumes exactly where it stopped: three `tessera node` processes, a watch
//! opened on a follower before 10,000 writes from eight concurrent writers, the leader
//! SIGKILLed in the middle of the load, then the watch's own node SIGKILLed and restarted.
//! The watch (the library's client, given every node) reconnects to another node and
//! resumes from its last revision. It must see every acknowledged write exactly once, in
//! revision order, with no gap: its events must be exactly the history a fresh watch from
//! the same start revision reads at the end, which holds every acknowledged write at its
//! index; a write whose outcome was unknown to its writer shows at most once.

mod kv_support;

use kv_support::{bounded, client_of_all, run, three_nodes, BOUND};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera::store::client::{ClientError, ReadOptions, Watch, WatchOptions};
use tessera::store::http::WatchLine;
use tessera::store::Client;

const WRITERS: usize = 8;
const WRITES: u64 = 10_000;

/// One event as the watch saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    revision: u64,
    key: String,
    value: Vec<u8>,
}

/// What one writer did: acknowledged writes (value, index) and failed attempts (value).
#[derive(Default)]
struct Writes {
    acked: Vec<(String, Vec<u8>, u64)>,
    failed: Vec<(String, Vec<u8>)>,
}

/// Puts unique keys until `WRITES` are acknowledged in all, through one node per attempt
/// in turn; a failed attempt is retried with a new value, so every attempt's event is
/// its own.
async fn writer(w: usize, clients: Vec<Client>, acked: Arc<AtomicU64>) -> Result<Writes, String> {
    let mut out = Writes::default();
    let mut attempt = 0usize;
    let mut n = 0u64;
    while acked.load(Ordering::Relaxed) < WRITES {
        let key = format!("load/{w}/{n:05}");
        let value = format!("writer {w} write {n} attempt {attempt}").into_bytes();
        let client = &clients[(attempt + w) % clients.len()];
        attempt += 1;
        match client.put(&key, value.clone()).await {
            Ok(index) => {
                acked.fetch_add(1, Ordering::Relaxed);
                out.acked.push((key, value, index));
                n += 1;
            }
            Err(e) if e.is_retryable() => {
                out.failed.push((key, value));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("writer {w}: put {key}: {e}")),
        }
    }
    Ok(out)
}

/// Collects events until a progress line at `until` or later arrives (or the receiver of
/// the target says to stop: `until` is read at every line).
async fn collect(watch: &mut Watch, until: Arc<AtomicU64>) -> Result<Vec<Seen>, String> {
    let mut seen = Vec::new();
    loop {
        let line = bounded("a watch line", Duration::from_secs(60), watch.next())
            .await?
            .map_err(|e| format!("the watch failed: {e}"))?;
        match line {
            WatchLine::Put {
                key,
                value,
                mod_index,
                ..
            } => seen.push(Seen {
                revision: mod_index,
                key,
                value: value.unwrap_or_default(),
            }),
            WatchLine::Delete { key, .. } => return Err(format!("an unexpected delete of {key}")),
            WatchLine::Progress { revision } if revision >= until.load(Ordering::SeqCst) => {
                return Ok(seen)
            }
            WatchLine::Progress { .. } | WatchLine::Closed { .. } => {}
        }
    }
}

#[test]
fn a_watch_sees_every_write_once_in_order_across_a_leader_kill_and_its_node_restarting() {
    run("kv-watch", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        // The watch starts on a follower, with the other nodes to fail over to.
        let watched = (leader + 1) % 3;
        let order: Vec<String> = (0..3)
            .map(|k| cluster.node((watched + k) % 3).endpoint())
            .collect();
        let watch_client =
            Client::with_endpoints(&order, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let mut watch = watch_client.watch(
            "load/",
            WatchOptions {
                progress: Some(Duration::from_millis(500)),
                ..WatchOptions::default()
            },
        );
        let start = match bounded("the watch opens", BOUND, watch.next()).await? {
            Ok(WatchLine::Progress { revision }) => revision + 1,
            other => return Err(format!("the watch's first line: {other:?}")),
        };
        let until = Arc::new(AtomicU64::new(u64::MAX));
        let watcher = tokio::spawn({
            let until = until.clone();
            async move {
                let seen = collect(&mut watch, until).await;
                (
                    seen,
                    watch.reconnects(),
                    watch.endpoint().map(str::to_string),
                )
            }
        });

        let acked = Arc::new(AtomicU64::new(0));
        let clients: Vec<Client> = (0..3)
            .map(|i| cluster.client(i, Duration::from_secs(5)))
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(w, clients.clone(), acked.clone())))
            .collect();

        // The leader dies a quarter into the load; the watch's node at half.
        let wait_for = |n: u64| {
            let acked = acked.clone();
            async move {
                while acked.load(Ordering::Relaxed) < n {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        bounded(
            "a quarter of the load",
            Duration::from_secs(120),
            wait_for(WRITES / 4),
        )
        .await?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        cluster.kill(leader)?;
        println!(
            "SIGKILL n{leader} (leader) at {} acknowledged writes",
            acked.load(Ordering::Relaxed)
        );
        let (new_leader, _) = cluster.wait_leader(BOUND).await?;
        cluster.start(leader, &[])?;
        println!("n{new_leader} leads; n{leader} restarted");
        bounded(
            "half of the load",
            Duration::from_secs(120),
            wait_for(WRITES / 2),
        )
        .await?;
        cluster.kill(watched)?;
        println!(
            "SIGKILL n{watched} (the watch's node) at {} acknowledged writes",
            acked.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.start(watched, &[])?;
        println!("n{watched} restarted");

        let mut writes = Writes::default();
        for w in writers {
            let done = bounded("a writer", Duration::from_secs(180), w)
                .await?
                .map_err(|e| format!("writer panicked: {e}"))??;
            writes.acked.extend(done.acked);
            writes.failed.extend(done.failed);
        }
        // Everything is in once the watch passes the revision of a linearizable read.
        let all = client_of_all(&cluster, Duration::from_secs(10));
        let end = all
            .keys("load/", None, Some(1), ReadOptions::default())
            .await
            .map_err(|e| format!("the final read: {e}"))?
            .revision;
        until.store(end, Ordering::SeqCst);
        let (seen, reconnects, endpoint) =
            bounded("the watch catches up", Duration::from_secs(120), watcher)
                .await?
                .map_err(|e| format!("watch task: {e}"))?;
        let seen = seen?;

        // A fresh watch from the same start reads the history as every node holds it.
        let mut fresh = all.watch(
            "load/",
            WatchOptions {
                from: Some(start),
                progress: Some(Duration::from_millis(500)),
                ..WatchOptions::default()
            },
        );
        let history = collect(&mut fresh, Arc::new(AtomicU64::new(end))).await?;

        // In order, each once.
        if let Some(pair) = seen.windows(2).find(|p| p[0].revision >= p[1].revision) {
            return Err(format!(
                "out of order or repeated: {:?} then {:?}",
                pair[0], pair[1]
            ));
        }
        // No gap: exactly the history.
        if seen != history {
            let first_diff = seen.iter().zip(&history).position(|(a, b)| a != b);
            return Err(format!(
                "the resumed watch saw {} events, the history holds {}; first difference at {first_diff:?}",
                seen.len(),
                history.len()
            ));
        }
        // Every acknowledged write at its index; nothing that was never written.
        let by_value: HashMap<&[u8], &Seen> =
            seen.iter().map(|s| (s.value.as_slice(), s)).collect();
        for (key, value, index) in &writes.acked {
            match by_value.get(value.as_slice()) {
                Some(s) if s.revision == *index && &s.key == key => {}
                other => {
                    return Err(format!(
                        "acknowledged write {key} at {index}: seen as {other:?}"
                    ))
                }
            }
        }
        let attempted: HashMap<&[u8], ()> = writes
            .acked
            .iter()
            .map(|(_, v, _)| (v.as_slice(), ()))
            .chain(writes.failed.iter().map(|(_, v)| (v.as_slice(), ())))
            .collect();
        if let Some(stray) = seen
            .iter()
            .find(|s| !attempted.contains_key(s.value.as_slice()))
        {
            return Err(format!("an event no writer attempted: {stray:?}"));
        }
        let unknown_applied = seen.len() - writes.acked.len();
        if reconnects == 0 {
            return Err("the watch never reconnected: its node's restart went unnoticed".into());
        }
        // The final state agrees with the last event of each key.
        let mut last: BTreeMap<&str, &[u8]> = BTreeMap::new();
        for s in &seen {
            last.insert(&s.key, &s.value);
        }
        let mut after = None;
        let mut keys = 0usize;
        loop {
            let page = all
                .range(
                    "load/",
                    after.as_deref(),
                    Some(10_000),
                    ReadOptions::default(),
                )
                .await
                .map_err(|e: ClientError| e.to_string())?;
            for kv in &page.kvs {
                keys += 1;
                if last.get(kv.key.as_str()).copied() != kv.value.as_deref() {
                    return Err(format!("{}: the store and the last event differ", kv.key));
                }
            }
            if !page.more {
                break;
            }
            after = page.next;
        }
        if keys != last.len() {
            return Err(format!(
                "{keys} keys in the store, {} in the events",
                last.len()
            ));
        }
        for i in 0..3 {
            cluster.terminate(i, Duration::from_secs(10))?;
        }
        Ok(format!(
            "{} acknowledged writes ({} attempts failed, {unknown_applied} of them applied) seen once each in order from revision {start} to {end}; the watch reconnected {reconnects} times, last on {endpoint:?}",
            writes.acked.len(),
            writes.failed.len()
        ))
    });
}
