//! Transactions are all or nothing, across a crash of the leader in the middle of the
//! load: three `tessera node` processes, six clients moving amounts between twelve
//! accounts. Each transfer is one transaction: compare both accounts' `mod_index` with
//! what the client read, then put both new balances and a record `xfer/{client}/{n}` =
//! "from to amount". The leader is SIGKILLed (and restarted) a third into the load.
//!
//! A transaction applied in part would show on some node as a record without its
//! balances or balances without their record. So on every node, once it applied
//! everything: the balances sum to the initial total, each balance equals its initial
//! amount plus what the records move in and out, every acknowledged transfer has its
//! record at its index, every record is of a transfer that was attempted (acknowledged,
//! or with an unknown outcome), and the nodes hold the same keys at the same revisions.

mod kv_support;

use kv_support::{bounded, client_of_all, run, three_nodes, BOUND};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera::store::client::{ClientError, ReadOptions};
use tessera::store::http::{CompareJson, KvJson, OpJson, TxnJson};
use tessera::store::Client;

const ACCOUNTS: u64 = 12;
const INITIAL: i64 = 1_000;
const WRITERS: usize = 6;
const TRANSFERS: u64 = 900;

fn account(i: u64) -> String {
    format!("acct/{i:02}")
}

/// What one writer did: acknowledged transfers (record key, index), and record keys of
/// transfers whose outcome it never learned.
#[derive(Default)]
struct Done {
    acked: Vec<(String, u64)>,
    unknown: Vec<String>,
    refused: u64,
}

fn balance(entry: &tessera::store::client::Entry) -> Result<i64, String> {
    std::str::from_utf8(&entry.value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(format!("a balance {:?}", entry.value))
}

async fn transfer_loop(w: usize, client: Client, acked: Arc<AtomicU64>) -> Result<Done, String> {
    let mut done = Done::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut n = 0u64;
    while acked.load(Ordering::Relaxed) < TRANSFERS {
        let from = next() % ACCOUNTS;
        let to = (from + 1 + next() % (ACCOUNTS - 1)) % ACCOUNTS;
        let amount = (next() % 10 + 1) as i64;
        let read = async {
            let a = client
                .get_entry(&account(from), ReadOptions::default())
                .await?;
            let b = client
                .get_entry(&account(to), ReadOptions::default())
                .await?;
            Ok::<_, ClientError>((a, b))
        };
        let (a, b) = match read.await {
            Ok((Some(a), Some(b))) => (a, b),
            Ok(_) => return Err(format!("writer {w}: an account vanished")),
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => return Err(format!("writer {w}: read: {e}")),
        };
        let record = format!("xfer/{w}/{n:05}");
        let txn = TxnJson {
            compare: vec![
                CompareJson::number(&account(from), "mod_index", "=", a.mod_index),
                CompareJson::number(&account(to), "mod_index", "=", b.mod_index),
            ],
            success: vec![
                OpJson::put(
                    &account(from),
                    (balance(&a)? - amount).to_string().as_bytes(),
                ),
                OpJson::put(&account(to), (balance(&b)? + amount).to_string().as_bytes()),
                OpJson::put(&record, format!("{from} {to} {amount}").as_bytes()),
            ],
            failure: vec![],
        };
        match client.txn(&txn).await {
            Ok(answer) if answer.succeeded => {
                acked.fetch_add(1, Ordering::Relaxed);
                done.acked.push((record, answer.index));
                n += 1;
            }
            Ok(_) => done.refused += 1,
            Err(e) if e.certainly_not_applied() => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) if e.is_retryable() => {
                done.unknown.push(record);
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("writer {w}: txn: {e}")),
        }
    }
    Ok(done)
}

/// Every key under `prefix` on node `client` (one page), once it applied `revision`.
async fn node_keys(client: &Client, prefix: &str, revision: u64) -> Result<Vec<KvJson>, String> {
    let stale = ReadOptions {
        stale: true,
        ..ReadOptions::default()
    };
    bounded("a node catches up", BOUND, async {
        loop {
            match client.range(prefix, None, Some(10_000), stale).await {
                Ok(page) if page.revision >= revision => {
                    if page.more {
                        return Err(format!("more than one page under {prefix}"));
                    }
                    return Ok(page.kvs);
                }
                Ok(_) => {}
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(format!("{}: {e}", client.endpoint())),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await?
}

fn text(kv: &KvJson) -> String {
    String::from_utf8_lossy(kv.value.as_deref().unwrap_or_default()).into_owned()
}

#[test]
fn transactions_apply_whole_or_not_at_all_across_a_leader_crash() {
    run("kv-txn", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let all = client_of_all(&cluster, Duration::from_secs(10));
        let open = TxnJson {
            success: (0..ACCOUNTS)
                .map(|i| OpJson::put(&account(i), INITIAL.to_string().as_bytes()))
                .collect(),
            ..TxnJson::default()
        };
        all.txn(&open)
            .await
            .map_err(|e| format!("open the accounts: {e}"))?;

        let acked = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let order: Vec<String> = (0..3)
                    .map(|k| cluster.node((w + k) % 3).endpoint())
                    .collect();
                let client = Client::with_endpoints(&order, Duration::from_secs(5))
                    .expect("local endpoints");
                tokio::spawn(transfer_loop(w, client, acked.clone()))
            })
            .collect();
        let a_third = {
            let acked = acked.clone();
            async move {
                while acked.load(Ordering::Relaxed) < TRANSFERS / 3 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        bounded(
            "a third of the transfers",
            Duration::from_secs(120),
            a_third,
        )
        .await?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        cluster.kill(leader)?;
        println!(
            "SIGKILL n{leader} (leader) at {} acknowledged transfers",
            acked.load(Ordering::Relaxed)
        );
        let (new_leader, _) = cluster.wait_leader(BOUND).await?;
        cluster.start(leader, &[])?;
        println!("n{new_leader} leads; n{leader} restarted");

        let mut done = Done::default();
        for w in writers {
            let d = bounded("a writer", Duration::from_secs(180), w)
                .await?
                .map_err(|e| format!("writer panicked: {e}"))??;
            done.acked.extend(d.acked);
            done.unknown.extend(d.unknown);
            done.refused += d.refused;
        }
        let end = all
            .range("acct/", None, None, ReadOptions::default())
            .await
            .map_err(|e| format!("the final read: {e}"))?
            .revision;
        let acked_at: HashMap<&str, u64> =
            done.acked.iter().map(|(k, i)| (k.as_str(), *i)).collect();
        let unknown: HashSet<&str> = done.unknown.iter().map(String::as_str).collect();

        let mut first: Option<(Vec<KvJson>, Vec<KvJson>)> = None;
        let mut applied_unknown = 0;
        for i in 0..3 {
            let client = cluster.client(i, Duration::from_secs(10));
            let accounts = node_keys(&client, "acct/", end).await?;
            let records = node_keys(&client, "xfer/", end).await?;
            let mut derived: BTreeMap<String, i64> =
                (0..ACCOUNTS).map(|a| (account(a), INITIAL)).collect();
            applied_unknown = 0;
            for kv in &records {
                let fields: Vec<u64> = text(kv)
                    .split(' ')
                    .map(|f| f.parse().map_err(|_| format!("n{i}: record {}", kv.key)))
                    .collect::<Result<_, _>>()?;
                let [from, to, amount] = fields[..] else {
                    return Err(format!("n{i}: record {} = {}", kv.key, text(kv)));
                };
                *derived.entry(account(from)).or_default() -= amount as i64;
                *derived.entry(account(to)).or_default() += amount as i64;
                match acked_at.get(kv.key.as_str()) {
                    Some(index) if *index == kv.mod_index => {}
                    Some(index) => {
                        return Err(format!(
                            "n{i}: {} at {}, acknowledged at {index}",
                            kv.key, kv.mod_index
                        ))
                    }
                    None if unknown.contains(kv.key.as_str()) => applied_unknown += 1,
                    None => return Err(format!("n{i}: a record never attempted: {}", kv.key)),
                }
            }
            if records.len() != done.acked.len() + applied_unknown {
                return Err(format!(
                    "n{i}: {} records for {} acknowledged transfers ({applied_unknown} of unknown outcome applied): some are missing",
                    records.len(),
                    done.acked.len()
                ));
            }
            let balances: BTreeMap<String, i64> = accounts
                .iter()
                .map(|kv| Ok((kv.key.clone(), text(kv).parse().map_err(|_| text(kv))?)))
                .collect::<Result<_, String>>()?;
            let total: i64 = balances.values().sum();
            if total != INITIAL * ACCOUNTS as i64 || balances != derived {
                return Err(format!(
                    "n{i}: balances {balances:?} (total {total}), the records say {derived:?}"
                ));
            }
            match &first {
                None => first = Some((accounts, records)),
                Some((a, r)) if *a == accounts && *r == records => {}
                Some(_) => return Err(format!("n{i} holds other keys or revisions than n0")),
            }
        }
        for i in 0..3 {
            cluster.terminate(i, Duration::from_secs(10))?;
        }
        Ok(format!(
            "{} transfers acknowledged, {} refused by their compares, {} of unknown outcome ({applied_unknown} applied); every node conserves the total and matches its records at revision {end}",
            done.acked.len(),
            done.refused,
            done.unknown.len()
        ))
    });
}
