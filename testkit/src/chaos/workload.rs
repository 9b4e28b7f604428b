//! The suite's load: register clients and watchers, as tasks on the run's runtime.
//!
//! **Clients.** Each client is bound to one node (client `c` to node `c mod N`, as Jepsen
//! binds its clients), sends one call at a time over a small set of keys and records it:
//! a linearizable get, a put of a value unique in the run, a delete, or a compare-and-swap
//! on the key's `mod_index` (through `PUT ?cas=` or through a `/v1/txn` with a compare,
//! a put, and a get on failure). A write whose failure says it certainly did not apply is
//! left out of the history (counted); any other failed write is recorded with an unknown
//! outcome (it may apply at any later time, or never). A failed read is left out: it
//! changed nothing.
//!
//! **Watchers.** One per node at first (each fails over to the others, resuming where it
//! stopped, as the library's watch does), from the revision the run started at, until
//! they have seen the final revision.

use super::checker::{Input, Operation, Output};
use super::history::History;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tessera::store::client::{Client, ClientError, ReadOptions, WatchOptions};
use tessera::store::http::{CompareJson, OpAnswer, OpJson, TxnJson, WatchLine};

/// Every key the suite writes is under this prefix.
pub const PREFIX: &str = "chaos/";

/// A client's pause after a failed call.
const FAILED_CALL_PAUSE: Duration = Duration::from_millis(50);

/// What the clients do.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Concurrent register clients.
    pub clients: usize,
    /// Keys they share (`chaos/k0` ...).
    pub keys: usize,
    /// A call that has not answered by then has an unknown outcome.
    pub call_timeout: Duration,
    /// Pause between a client's calls (keeps histories checkable in long runs).
    pub think: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 6,
            keys: 8,
            call_timeout: Duration::from_secs(3),
            think: Duration::from_millis(3),
        }
    }
}

/// What clients and watchers share with the run.
#[derive(Debug)]
pub struct Shared {
    /// The calls.
    pub history: History,
    /// Every node's HTTP endpoint, by node index (a replaced node's slot gets its
    /// successor's).
    pub endpoints: RwLock<Vec<String>>,
    /// Set when the clients should stop.
    pub stop: AtomicBool,
    /// The revision the watchers must reach before they stop (0: not yet known).
    pub final_revision: AtomicU64,
}

impl Shared {
    /// Shared state for nodes at `endpoints`.
    pub fn new(endpoints: Vec<String>) -> Shared {
        Shared {
            history: History::new(),
            endpoints: RwLock::new(endpoints),
            stop: AtomicBool::new(false),
            final_revision: AtomicU64::new(0),
        }
    }

    /// Node `i`'s endpoint now.
    pub fn endpoint(&self, i: usize) -> Option<String> {
        let endpoints = self.endpoints.read().ok()?;
        endpoints.get(i % endpoints.len().max(1)).cloned()
    }

    /// Every endpoint, starting at node `i`'s.
    pub fn endpoints_from(&self, i: usize) -> Vec<String> {
        let endpoints = self.endpoints.read().map(|e| e.clone()).unwrap_or_default();
        let n = endpoints.len().max(1);
        (0..endpoints.len())
            .map(|k| endpoints[(i + k) % n].clone())
            .collect()
    }
}

/// The value of a put as stored: decimal text, so a node's answer is readable as is.
fn encode(value: u64) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// A stored value as the suite wrote it; a value no client wrote reads as `u64::MAX`,
/// which matches no write (the checker then reports it).
pub fn decode(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// One register client: calls until `shared.stop`, recording each.
pub async fn client(id: usize, shared: Arc<Shared>, workload: Workload, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9E37_79B9));
    let mut clients: HashMap<String, Client> = HashMap::new();
    // The mod_index this client last saw per key: what its compare-and-swaps expect.
    let mut known: HashMap<String, u64> = HashMap::new();
    let mut counter: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(endpoint) = shared.endpoint(id) else {
            return;
        };
        let client = match clients.get(&endpoint) {
            Some(c) => c.clone(),
            None => match Client::with_timeout(&endpoint, workload.call_timeout) {
                Ok(c) => {
                    clients.insert(endpoint.clone(), c.clone());
                    c
                }
                Err(_) => return,
            },
        };
        let key = format!("{PREFIX}k{}", rng.random_range(0..workload.keys.max(1)));
        counter += 1;
        let value = ((id as u64 + 1) << 40) | counter;
        let expect = known.get(&key).copied().unwrap_or(0);
        let pick = rng.random_range(0..100);
        let input = match pick {
            0..45 => Input::Get,
            45..75 => Input::Put { value },
            75..80 => Input::Delete,
            _ => Input::Cas { expect, value },
        };
        let via_txn = pick >= 90;
        let call = shared.history.now();
        let result = call_once(&client, &key, input, via_txn).await;
        let ret = shared.history.now();
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                // A node that is down refuses at once: do not spin on it.
                tokio::time::sleep(FAILED_CALL_PAUSE).await;
                if matches!(input, Input::Get) {
                    continue;
                }
                if e.certainly_not_applied() {
                    shared.history.refused();
                    continue;
                }
                Output::Unknown
            }
        };
        match output {
            Output::Read(Some((_, m))) | Output::CasFailed { current: m } => {
                known.insert(key.clone(), m);
            }
            Output::Read(None) => {
                known.insert(key.clone(), 0);
            }
            Output::Written { index } if !matches!(input, Input::Delete) => {
                known.insert(key.clone(), index);
            }
            Output::Written { .. } => {
                known.insert(key.clone(), 0);
            }
            Output::Unknown => {}
        }
        shared.history.record(Operation {
            client: id,
            key,
            call,
            ret: (output != Output::Unknown).then_some(ret),
            input,
            output,
        });
        if !workload.think.is_zero() {
            tokio::time::sleep(workload.think).await;
        }
    }
}

/// One call; `Err` only for failures (a failed comparison is an output).
async fn call_once(
    client: &Client,
    key: &str,
    input: Input,
    via_txn: bool,
) -> Result<Output, ClientError> {
    match input {
        Input::Get => {
            let entry = client.get_entry(key, ReadOptions::default()).await?;
            Ok(Output::Read(entry.map(|e| (decode(&e.value), e.mod_index))))
        }
        Input::Put { value } => Ok(Output::Written {
            index: client.put(key, encode(value)).await?,
        }),
        Input::Delete => Ok(Output::Written {
            index: client.delete(key).await?,
        }),
        Input::Cas { expect, value } if via_txn => {
            let txn = TxnJson {
                compare: vec![CompareJson {
                    key: key.to_string(),
                    target: "mod_index".into(),
                    op: "=".into(),
                    value: serde_json::json!(expect),
                }],
                success: vec![OpJson::put(key, &encode(value))],
                failure: vec![OpJson::Get {
                    key: key.to_string(),
                }],
            };
            let answer = client.txn(&txn).await?;
            if answer.succeeded {
                return Ok(Output::Written {
                    index: answer.index,
                });
            }
            let current = match answer.results.first() {
                Some(OpAnswer::Get { kv }) => kv.as_ref().map_or(0, |kv| kv.mod_index),
                _ => 0,
            };
            Ok(Output::CasFailed { current })
        }
        Input::Cas { expect, value } => match client.put_cas(key, encode(value), expect).await {
            Ok(index) => Ok(Output::Written { index }),
            Err(ClientError::CompareFailed { mod_index, .. }) => {
                Ok(Output::CasFailed { current: mod_index })
            }
            Err(e) => Err(e),
        },
    }
}

/// One change a watcher saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Its revision (the write's log index).
    pub revision: u64,
    /// The key's number (`chaos/k7` is 7; `u64::MAX` for a key the suite never writes).
    pub key: u64,
    /// The value put, `None` for a delete.
    pub value: Option<u64>,
}

/// What one watcher saw.
#[derive(Clone, Debug, Default)]
pub struct WatchLog {
    /// The revision it started from.
    pub from: u64,
    /// The changes, in the order they arrived.
    pub changes: Vec<Change>,
    /// The highest progress revision it got.
    pub progress: u64,
    /// How many times its stream broke and was resumed.
    pub reconnects: u64,
    /// Why it ended early, if it did.
    pub error: Option<String>,
}

/// The key number of a suite key.
pub fn key_number(key: &str) -> u64 {
    key.strip_prefix(PREFIX)
        .and_then(|k| k.strip_prefix('k'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// A watcher of [`PREFIX`] from `from`, failing over across every node (starting at node
/// `id`'s), until it has seen `shared.final_revision` or `give_up` passed after the
/// clients stopped.
pub async fn watcher(id: usize, shared: Arc<Shared>, from: u64, give_up: Duration) -> WatchLog {
    let mut log = WatchLog {
        from,
        ..WatchLog::default()
    };
    let endpoints = shared.endpoints_from(id);
    let client = match Client::with_endpoints(&endpoints, Duration::from_secs(3)) {
        Ok(c) => c,
        Err(e) => {
            log.error = Some(format!("watcher {id}: {e}"));
            return log;
        }
    };
    let mut watch = client.watch(
        PREFIX,
        WatchOptions {
            from: Some(from),
            progress: Some(Duration::from_millis(500)),
            ..WatchOptions::default()
        },
    );
    let mut stopped_at: Option<tokio::time::Instant> = None;
    loop {
        let target = shared.final_revision.load(Ordering::Acquire);
        if target > 0 && log.progress >= target {
            break;
        }
        if shared.stop.load(Ordering::Relaxed) {
            let since = *stopped_at.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > give_up {
                log.error = Some(format!(
                    "watcher {id} reached revision {} of {target} within {give_up:?} after the clients stopped",
                    log.progress
                ));
                break;
            }
        }
        match tokio::time::timeout(Duration::from_secs(1), watch.next()).await {
            Err(_) => {}
            Ok(Err(e)) => {
                log.error = Some(format!("watcher {id}: {e}"));
                break;
            }
            Ok(Ok(line)) => match line {
                WatchLine::Put {
                    key,
                    value,
                    mod_index,
                    ..
                } => log.changes.push(Change {
                    revision: mod_index,
                    key: key_number(&key),
                    value: Some(value.as_deref().map_or(u64::MAX, decode)),
                }),
                WatchLine::Delete { key, mod_index, .. } => log.changes.push(Change {
                    revision: mod_index,
                    key: key_number(&key),
                    value: None,
                }),
                WatchLine::Progress { revision } => log.progress = log.progress.max(revision),
                WatchLine::Closed { .. } => {}
            },
        }
    }
    log.reconnects = watch.reconnects();
    log
}
