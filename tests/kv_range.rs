//! A range read under concurrent writes is one revision's state: three `tessera node`
//! processes, four writers putting, deleting and writing three keys per transaction over
//! forty shared keys, and a reader ranging over them on every node in turn, stale and
//! linearizable, while they write. Afterwards the whole history (a watch from revision 1)
//! is replayed: each page must equal, key for key (value, `create_index`, `mod_index`,
//! `version`), the state after every event up to the page's revision and none after.

mod kv_support;

use kv_support::{bounded, client_of_all, run, three_nodes, BOUND};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera::store::client::{ReadOptions, WatchOptions};
use tessera::store::http::{KvJson, OpJson, TxnJson, WatchLine};
use tessera::store::Client;

const WRITERS: usize = 4;
const OPS_EACH: u64 = 400;
const KEYS: u64 = 40;

fn key(k: u64) -> String {
    format!("r/{k:02}")
}

async fn writer(w: usize, client: Client) -> Result<(), String> {
    for n in 0..OPS_EACH {
        let k = (n * 7 + w as u64 * 13) % KEYS;
        let value = format!("w{w} n{n}");
        let done = match n % 6 {
            0 => client.delete(&key(k)).await.map(|_| ()),
            1 => {
                let txn = TxnJson {
                    success: (0..3)
                        .map(|j| OpJson::put(&key((k + j * 11) % KEYS), value.as_bytes()))
                        .collect(),
                    ..TxnJson::default()
                };
                client.txn(&txn).await.map(|_| ())
            }
            _ => client.put(&key(k), value).await.map(|_| ()),
        };
        done.map_err(|e| format!("writer {w} op {n}: {e}"))?;
    }
    Ok(())
}

/// Ranges until `stop`, on each node in turn, alternating stale and linearizable reads.
async fn reader(
    clients: Vec<Client>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<(u64, Vec<KvJson>)>, String> {
    let mut pages = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let options = ReadOptions {
            stale: n % 2 == 1,
            ..ReadOptions::default()
        };
        let page = clients[n % clients.len()]
            .range("r/", None, None, options)
            .await
            .map_err(|e| format!("range {n}: {e}"))?;
        if page.more {
            return Err("the range needs more than one page".into());
        }
        pages.push((page.revision, page.kvs));
        n += 1;
    }
    Ok(pages)
}

#[test]
fn a_range_under_concurrent_writes_is_one_revisions_state() {
    run("kv-range", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let clients: Vec<Client> = (0..3)
            .map(|i| cluster.client(i, Duration::from_secs(10)))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let reading = tokio::spawn(reader(clients.clone(), stop.clone()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(w, clients[w % 3].clone())))
            .collect();
        for w in writers {
            bounded("a writer", Duration::from_secs(120), w)
                .await?
                .map_err(|e| format!("writer panicked: {e}"))??;
        }
        stop.store(true, Ordering::SeqCst);
        let mut pages = bounded("the reader", BOUND, reading)
            .await?
            .map_err(|e| format!("reader panicked: {e}"))??;
        pages.sort_by_key(|(revision, _)| *revision);

        // The history, every event from revision 1 to the last page's revision.
        let all = client_of_all(&cluster, Duration::from_secs(10));
        let end = all
            .range("r/", None, None, ReadOptions::default())
            .await
            .map_err(|e| e.to_string())?
            .revision;
        let mut watch = all.watch(
            "r/",
            WatchOptions {
                from: Some(1),
                progress: Some(Duration::from_millis(200)),
                ..WatchOptions::default()
            },
        );
        let mut events = Vec::new();
        loop {
            match bounded("a watch line", BOUND, watch.next())
                .await?
                .map_err(|e| e.to_string())?
            {
                WatchLine::Progress { revision } if revision >= end => break,
                line @ (WatchLine::Put { .. } | WatchLine::Delete { .. }) => events.push(line),
                _ => {}
            }
        }

        // Replay, checking each page against the state at its revision.
        let mut state: BTreeMap<String, KvJson> = BTreeMap::new();
        let mut next = events.iter().peekable();
        let mut revisions = std::collections::BTreeSet::new();
        for (revision, kvs) in &pages {
            while let Some(e) = next.next_if(|e| e.mod_index().is_some_and(|m| m <= *revision)) {
                match e.clone() {
                    WatchLine::Put {
                        key,
                        value,
                        mod_index,
                        create_index,
                        version,
                        ..
                    } => {
                        let kv = KvJson {
                            key: key.clone(),
                            value,
                            create_index,
                            mod_index,
                            version,
                        };
                        state.insert(key, kv);
                    }
                    WatchLine::Delete { key, .. } => {
                        state.remove(&key);
                    }
                    _ => {}
                }
            }
            let expected: Vec<&KvJson> = state.values().collect();
            let got: Vec<&KvJson> = kvs.iter().collect();
            if expected != got {
                let diff = expected.iter().zip(&got).find(|(a, b)| a != b);
                return Err(format!(
                    "the page at revision {revision} is not that revision's state: {} keys, the history says {}; first difference {diff:?}",
                    got.len(),
                    expected.len()
                ));
            }
            revisions.insert(*revision);
        }
        if revisions.len() < 10 {
            return Err(format!(
                "only {} distinct revisions read: the reads did not overlap the writes",
                revisions.len()
            ));
        }
        for i in 0..3 {
            cluster.terminate(i, Duration::from_secs(10))?;
        }
        Ok(format!(
            "{} pages at {} distinct revisions, each equal to the replayed history ({} events up to {end})",
            pages.len(),
            revisions.len(),
            events.len()
        ))
    });
}
