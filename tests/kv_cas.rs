//! Compare-and-swap under contention: three `tessera node` processes, eight clients (each
//! through another node first) incrementing one counter with read, then `PUT ?cas=` on
//! the `mod_index` read. Every increment that the store acknowledged must be in the
//! counter, and no other: the final counter equals the number of successful CAS calls,
//! and the key's `version` counts the create plus each of them, on every node.

mod kv_support;

use kv_support::{bounded, run, three_nodes, BOUND};
use std::time::Duration;
use tessera::store::client::{ClientError, ReadOptions};
use tessera::store::Client;

const CLIENTS: usize = 8;
const SUCCESSES_EACH: u64 = 40;

/// What one client did.
#[derive(Debug, Default)]
struct Tally {
    succeeded: u64,
    refused: u64,
}

/// Increments `counter` until `SUCCESSES_EACH` of its CAS calls succeeded. Without faults
/// every outcome is known; an unknown one fails the test (it could not be counted).
async fn incrementer(c: usize, client: Client) -> Result<Tally, String> {
    let mut tally = Tally::default();
    while tally.succeeded < SUCCESSES_EACH {
        let entry = client
            .get_entry("counter", ReadOptions::default())
            .await
            .map_err(|e| format!("client {c}: read: {e}"))?
            .ok_or(format!("client {c}: the counter is absent"))?;
        let n: u64 = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(format!("client {c}: counter {:?}", entry.value))?;
        match client
            .put_cas("counter", (n + 1).to_string(), entry.mod_index)
            .await
        {
            Ok(_) => tally.succeeded += 1,
            Err(ClientError::CompareFailed { mod_index, .. }) => {
                if mod_index <= entry.mod_index {
                    return Err(format!(
                        "client {c}: refused with mod_index {mod_index}, read {}",
                        entry.mod_index
                    ));
                }
                tally.refused += 1;
            }
            Err(e) => return Err(format!("client {c}: CAS with an unknown outcome: {e}")),
        }
    }
    Ok(tally)
}

#[test]
fn concurrent_cas_increments_end_with_the_counter_equal_to_the_successes() {
    run("kv-cas-counter", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let first = cluster.client(0, Duration::from_secs(10));
        let created = first
            .put_cas("counter", "0", 0)
            .await
            .map_err(|e| format!("create the counter: {e}"))?;
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let order: Vec<String> = (0..3)
                    .map(|k| cluster.node((c + k) % 3).endpoint())
                    .collect();
                let client = Client::with_endpoints(&order, Duration::from_secs(10))
                    .expect("local endpoints");
                tokio::spawn(incrementer(c, client))
            })
            .collect();
        let (mut succeeded, mut refused) = (0, 0);
        for task in tasks {
            let tally = bounded("an incrementer", Duration::from_secs(120), task)
                .await?
                .map_err(|e| format!("incrementer panicked: {e}"))??;
            succeeded += tally.succeeded;
            refused += tally.refused;
        }
        // Every node, once it applied the last increment, holds the same counter.
        let last = first
            .get_entry("counter", ReadOptions::default())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the counter vanished")?;
        for i in 0..3 {
            let options = ReadOptions {
                stale: true,
                ..ReadOptions::default()
            };
            let client = cluster.client(i, Duration::from_secs(10));
            let entry = bounded("a node's counter", BOUND, async {
                loop {
                    match client.get_entry("counter", options).await {
                        Ok(Some(e)) if e.revision >= last.revision => return Ok(e),
                        Ok(_) | Err(ClientError::Unavailable { .. }) => {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        Err(e) => return Err(format!("n{i}: {e}")),
                    }
                }
            })
            .await??;
            let value = String::from_utf8_lossy(&entry.value).into_owned();
            if value != succeeded.to_string()
                || entry.version != succeeded + 1
                || entry.create_index != created
            {
                return Err(format!(
                    "n{i}: counter {value}, version {}, create_index {} after {succeeded} successful CAS calls (created at {created})",
                    entry.version, entry.create_index
                ));
            }
        }
        for i in 0..3 {
            cluster.terminate(i, Duration::from_secs(10))?;
        }
        Ok(format!(
            "{CLIENTS} clients: {succeeded} successful CAS increments, {refused} refused; the counter is {succeeded} on every node"
        ))
    });
}
