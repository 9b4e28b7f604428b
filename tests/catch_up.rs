//! Catch-up that cannot livelock (issue 17), on `tessera node` processes.
//!
//! A group of three writes steadily, cuts a snapshot every 300 entries (a few seconds) and
//! keeps only 50 entries of log behind the newest one, and two snapshots. A fourth node
//! joins behind a link limited to 1 Mbit/s (`tc` on `lo`, both directions of its QUIC
//! port): the snapshot it needs (about 2 MB compressed) takes several snapshot periods to
//! ship. Without the retention pins (`src/groups/snapshot/retention.rs`) the group deletes
//! the snapshot being fetched and prunes the log after it long before the transfer ends,
//! and the node starts over for ever (etcd #7162, Consul #6186, openraft #1719). With them
//! it must converge: apply the leader's commit index while the writes go on, and then
//! serve every acknowledged write, byte for byte, and nothing that was never written.
//!
//! Asserted: the node converges within a generous bound, the leader held a pin for it
//! while it fetched and dropped it once it caught up, every acknowledged write reads back
//! from it unchanged, a write whose
//! outcome was unknown reads back unchanged or not at all, and no key appears that was
//! never written. Printed (not asserted): the figures of `/v1/status` `retention`.
//!
//! Needs root (or CAP_NET_ADMIN) and `tc`; skipped with the reason otherwise. It owns
//! `lo`'s root queue while it runs, like every slow-link test.

mod kv_support;

use kv_support::{client_of, run, BOUND};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera::store::client::{Client, ReadOptions};
use tessera::store::http::NodeStatus;
use tessera_testkit::cluster::{fast_timings, LocalCluster};
use tessera_testkit::slow_link::{self, SlowLink};

/// The new node's link, both directions together.
const LINK_KBIT: u32 = 1_000;
/// Keys written before the new node joins, each `PRELOAD_BYTES` of hard-to-compress text:
/// the snapshot it fetches.
const PRELOAD_KEYS: usize = 300;
const PRELOAD_BYTES: usize = 8 << 10;
/// Steady writers while it joins, each pausing this long between writes.
const WRITERS: usize = 4;
const WRITE_PAUSE: Duration = Duration::from_millis(40);
/// Generous: the transfer takes about 20 s on an idle machine.
const CONVERGE_BOUND: Duration = Duration::from_secs(180);

/// What the writers sent: acknowledged (must be there) and unknown outcome (may be).
#[derive(Default)]
struct Written {
    acked: BTreeMap<String, Vec<u8>>,
    unknown: BTreeMap<String, Vec<u8>>,
}

/// `len` bytes of letters and digits from a seed (xorshift): zstd gets little out of it,
/// so the snapshot's size is about its raw size.
fn text(seed: u64, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize]
        })
        .collect()
}

async fn put(client: &Client, written: &Mutex<Written>, key: String, value: Vec<u8>) {
    let outcome = client.put(&key, value.clone()).await;
    let mut w = written.lock().unwrap_or_else(|e| e.into_inner());
    match outcome {
        Ok(_) => w.acked.insert(key, value),
        Err(_) => w.unknown.insert(key, value),
    };
}

/// One steady writer: unique keys, small values, until `stop`.
async fn writer(client: Client, written: Arc<Mutex<Written>>, stop: Arc<AtomicBool>, n: usize) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("steady/{n}/{i:08}");
        let value = text((n as u64) << 40 | i, 100);
        put(&client, &written, key, value).await;
        i += 1;
        tokio::time::sleep(WRITE_PAUSE).await;
    }
}

/// Every key under `prefix` on `client`'s node, from its own copy (`?stale`: the new node
/// is a learner; what it serves is what it holds).
async fn read_all(client: &Client, prefix: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let options = ReadOptions {
            stale: true,
            ..ReadOptions::default()
        };
        let page = client
            .range(prefix, after.as_deref(), Some(1_000), options)
            .await
            .map_err(|e| format!("reading {prefix}: {e}"))?;
        for kv in page.kvs {
            let value = kv
                .value
                .ok_or_else(|| format!("{} read without its value", kv.key))?;
            out.insert(kv.key, value);
        }
        match (page.more, page.next) {
            (true, Some(next)) => after = Some(next),
            _ => return Ok(out),
        }
    }
}

/// The leader's status, then the new node's (in that order: the new node converged once
/// it applied what the leader had committed before it was asked).
async fn leader_then(
    cluster: &mut LocalCluster,
    new: usize,
) -> Option<(usize, NodeStatus, NodeStatus)> {
    let statuses = cluster.statuses(Duration::from_secs(2)).await;
    let leader = statuses
        .iter()
        .position(|s| s.as_ref().is_some_and(NodeStatus::is_leader))?;
    let l = cluster
        .client(leader, Duration::from_secs(2))
        .status()
        .await
        .ok()?;
    let n = cluster
        .client(new, Duration::from_secs(2))
        .status()
        .await
        .ok()?;
    Some((leader, l, n))
}

#[test]
fn a_node_behind_a_slow_link_converges_while_the_group_keeps_writing() {
    if let Err(why) = slow_link::available() {
        println!("skipped: cannot slow a link on this machine: {why}");
        return;
    }
    run("catch-up", |root| async move {
        let mut args = fast_timings();
        for flag in [
            "--snapshot-every-entries",
            "300",
            "--keep-log-tail",
            "50",
            "--snapshot-chunk-kib",
            "32",
        ] {
            args.push(flag.to_string());
        }
        let mut cluster = LocalCluster::loopback(env!("CARGO_BIN_EXE_tessera"), &root, args)?;
        cluster.start_all()?;
        cluster.wait_leader(BOUND).await?;
        let client = client_of(&cluster, &[0, 1, 2], Duration::from_secs(10));
        let written = Arc::new(Mutex::new(Written::default()));

        // The state the new node will fetch.
        let mut loads = Vec::new();
        for t in 0..8 {
            let (client, written) = (client.clone(), written.clone());
            loads.push(tokio::spawn(async move {
                for k in (t..PRELOAD_KEYS).step_by(8) {
                    let key = format!("preload/{k:05}");
                    put(&client, &written, key, text(k as u64, PRELOAD_BYTES)).await;
                }
            }));
        }
        for l in loads {
            l.await.map_err(|e| format!("preload task: {e}"))?;
        }

        // Steady writes from now to the end.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|n| tokio::spawn(writer(client.clone(), written.clone(), stop.clone(), n)))
            .collect();

        // The new node, behind the slow link from its first packet.
        let new = cluster.add_node(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let port = cluster.node(new).listen.port();
        let link = SlowLink::slow_udp_port(port, Duration::from_millis(20), LINK_KBIT)?;
        let first = cluster.node(0).addr.ok_or("node 0 has an address")?;
        let joined = Instant::now();
        cluster.start(new, &[first])?;
        let new_id = cluster.node(new).id().ok_or("the new node has an id")?;

        // Until it applied what the leader had committed, the writes going on.
        let mut saw_pin = false;
        let mut anchors_during_fetch = BTreeSet::new();
        let mut fetched_anchor = None;
        let converged = loop {
            if joined.elapsed() > CONVERGE_BOUND {
                stop.store(true, Ordering::Relaxed);
                return Err(format!(
                    "the new node did not converge within {CONVERGE_BOUND:?} \
                     (pin seen: {saw_pin}; snapshots cut meanwhile: {anchors_during_fetch:?}); \
                     its log:\n{}",
                    cluster.log_tail(new, 40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Some((_, l, n)) = leader_then(&mut cluster, new).await else {
                continue;
            };
            let pins = l.retention.as_ref().map(|r| &r.pins);
            saw_pin |= pins.is_some_and(|p| p.contains_key(&new_id));
            if let Some(t) = n.transfer.as_ref().filter(|t| t.index > 0) {
                fetched_anchor = Some(t.index);
                anchors_during_fetch.extend(l.snapshots.iter().map(|s| s.index));
            }
            if let Some(stopped) = &n.stopped {
                return Err(format!("the new node stopped: {stopped}"));
            }
            if n.leader.is_some() && n.applied >= l.commit && n.transfer.is_none() {
                break (l, n);
            }
        };
        let took = joined.elapsed();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.map_err(|e| format!("writer task: {e}"))?;
        }
        if !saw_pin {
            return Err("the leader never held a pin for the fetching node".into());
        }

        // Everything acknowledged, from the new node itself.
        let (leader_index, leader) = cluster.wait_leader(BOUND).await?;
        cluster.wait_caught_up(new, leader.commit, BOUND).await?;

        // Caught up, it keeps nothing pinned on the leader any more.
        let released = Instant::now();
        loop {
            let status = cluster
                .client(leader_index, Duration::from_secs(2))
                .status()
                .await
                .map_err(|e| format!("leader status: {e}"))?;
            let pins = status.retention.map(|r| r.pins).unwrap_or_default();
            if !pins.contains_key(&new_id) {
                break;
            }
            if released.elapsed() > BOUND {
                return Err(format!(
                    "the caught-up node still pins {pins:?} on the leader"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let reader = cluster.client(new, Duration::from_secs(10));
        let mut held = read_all(&reader, "preload/").await?;
        held.extend(read_all(&reader, "steady/").await?);
        let w = written.lock().unwrap_or_else(|e| e.into_inner());
        for (key, value) in &w.acked {
            match held.get(key) {
                Some(v) if v == value => {}
                Some(v) => {
                    return Err(format!(
                        "{key}: the new node serves {} bytes that differ from the {} acknowledged",
                        v.len(),
                        value.len()
                    ))
                }
                None => return Err(format!("{key}: acknowledged, missing on the new node")),
            }
        }
        for (key, value) in &held {
            let sent = w.acked.get(key).or_else(|| w.unknown.get(key));
            if sent != Some(value) {
                return Err(format!("{key}: served by the new node, never written so"));
            }
        }

        let (l, n) = converged;
        let r = l.retention.unwrap_or_default();
        let own = n.retention.unwrap_or_default();
        let cut_meanwhile = anchors_during_fetch
            .iter()
            .filter(|a| fetched_anchor.is_some_and(|f| **a > f))
            .count();
        link.heal()?;
        Ok(format!(
            "converged in {:.1} s behind {LINK_KBIT} kbit/s: applied {} = leader commit {}; \
             snapshot at {} shipped in {} ms, installed in {} ms, {cut_meanwhile} newer \
             snapshot(s) cut meanwhile; leader: write rate {} entries/s, tail kept {}, \
             ship/install as reported {:?}/{:?} ms; {} acknowledged writes ({} unknown) \
             read back from the new node",
            took.as_secs_f64(),
            n.applied,
            l.commit,
            fetched_anchor.unwrap_or(0),
            own.own_ship_ms,
            own.own_install_ms,
            r.write_rate,
            r.tail_kept,
            r.ship_ms,
            r.install_ms,
            w.acked.len(),
            w.unknown.len(),
        ))
    });
}
