//! Process tests: three `tessera node` processes on 127.0.0.1, 127.0.0.2 and 127.0.0.3.
//!
//! Writers put unique keys over HTTP to every node in turn and record each write the
//! cluster acknowledged. Meanwhile the test SIGKILLs a node (the leader about half the
//! time) at random moments, at least ten times, restarting each from its data directory
//! without `--peer`. At the end every acknowledged write must be readable with a strong
//! read from every node, and no write that failed may show a value it never had.
//!
//! The schedule comes from a seed printed at the start; replay with
//! `TESSERA_PROCESS_SEED=N cargo test --test process -- --nocapture`. Every wait is bounded.
//! On failure the nodes' logs are kept and their path printed (set `RUST_LOG` for more).

use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::groups::Consistency;
use tessera::store::client::{Client, ClientError};
use tessera::store::http::ErrorKind;
use tessera_testkit::cluster::{fast_timings, short, LocalCluster};

const KILLS: usize = 12;
const WRITERS: usize = 3;
/// Pause between one writer's writes, keeping the final read-back short.
const WRITE_PAUSE: Duration = Duration::from_millis(15);
const LEADER_BOUND: Duration = Duration::from_secs(30);

/// One attempted write: key, value, and the index when acknowledged.
#[derive(Clone, Debug)]
struct Attempt {
    key: String,
    value: String,
    acked: Option<u64>,
    /// Why it failed, in a word (for the summary).
    failure: Option<&'static str>,
}

#[test]
fn acknowledged_writes_survive_random_sigkills() {
    let seed = std::env::var("TESSERA_PROCESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("seed {seed}: replay with TESSERA_PROCESS_SEED={seed} cargo test --test process -- --nocapture");
    let root = tempfile::Builder::new()
        .prefix("tessera-process-")
        .tempdir()
        .expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let result = runtime.block_on(scenario(root.path(), seed));
    match result {
        Ok(summary) => println!("{summary} in {:.1} s", started.elapsed().as_secs_f64()),
        Err(reason) => {
            let kept = root.keep();
            panic!(
                "seed {seed}: {reason}\nnode logs kept in {} (n0.log, n1.log, n2.log)",
                kept.display()
            );
        }
    }
}

async fn scenario(root: &Path, seed: u64) -> Result<String, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let ips: Vec<IpAddr> = (1..=3)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let mut cluster = LocalCluster::new(env!("CARGO_BIN_EXE_tessera"), root, &ips, fast_timings())?;
    cluster.start_all()?;
    let (leader, status) = cluster.wait_leader(LEADER_BOUND).await?;
    println!("n{leader} leads term {}", status.term);

    let endpoints: Vec<String> = cluster.nodes().iter().map(|n| n.endpoint()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(w, endpoints.clone(), stop.clone())))
        .collect();

    let mut leader_kills = 0;
    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        let statuses = cluster.statuses(Duration::from_secs(2)).await;
        let leader = statuses
            .iter()
            .flatten()
            .find(|s| s.is_leader())
            .and_then(|s| cluster.index_of(&s.id));
        let victim = match leader {
            Some(l) if rng.random_bool(0.5) => l,
            _ => rng.random_range(0..cluster.len()),
        };
        let was_leader = leader == Some(victim);
        leader_kills += usize::from(was_leader);
        cluster.kill(victim)?;
        let down = Duration::from_millis(rng.random_range(100..1500));
        println!(
            "round {round}: SIGKILL n{victim}{} ({}), down for {} ms",
            if was_leader { " (leader)" } else { "" },
            short(&cluster.node(victim).id().unwrap_or_default()),
            down.as_millis()
        );
        tokio::time::sleep(down).await;
        cluster.start(victim, &[])?;
        let (l, s) = cluster
            .wait_leader(LEADER_BOUND)
            .await
            .map_err(|e| format!("round {round}, after restarting n{victim}: {e}"))?;
        println!(
            "round {round}: n{l} leads term {} at commit {}",
            s.term, s.commit
        );
    }

    stop.store(true, Ordering::SeqCst);
    let mut attempts = Vec::new();
    for w in writers {
        attempts.extend(w.await.map_err(|e| format!("writer panicked: {e}"))?);
    }
    let acked = attempts.iter().filter(|a| a.acked.is_some()).count();
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    for f in attempts.iter().filter_map(|a| a.failure) {
        *failures.entry(f).or_default() += 1;
    }
    println!(
        "{} writes attempted, {acked} acknowledged, {} failed (outcome unknown): {failures:?}",
        attempts.len(),
        attempts.len() - acked
    );
    if acked < 100 {
        return Err(format!(
            "only {acked} writes were acknowledged: the cluster barely made progress"
        ));
    }

    let (l, s) = cluster.wait_leader(LEADER_BOUND).await?;
    println!("final leader n{l}, term {}, commit {}", s.term, s.commit);
    let attempts = Arc::new(attempts);
    for node in 0..cluster.len() {
        let client = cluster.client(node, Duration::from_secs(10));
        let checked = check_node(node, client, attempts.clone()).await?;
        println!("n{node}: all {checked} acknowledged writes read back with --strong");
    }
    for i in 0..cluster.len() {
        match cluster.terminate(i, Duration::from_secs(10))? {
            Some(status) if status.success() => {}
            other => {
                return Err(format!(
                    "n{i} did not stop cleanly on SIGTERM ({other:?}); log:\n{}",
                    cluster.log_tail(i, 20)
                ))
            }
        }
    }
    Ok(format!(
        "{KILLS} SIGKILLs ({leader_kills} of the leader), {acked} acknowledged writes, all present on 3 nodes"
    ))
}

/// Puts unique keys, one node after the other, until told to stop.
async fn writer(w: usize, endpoints: Vec<String>, stop: Arc<AtomicBool>) -> Vec<Attempt> {
    let clients: Vec<Client> = endpoints
        .iter()
        .map(|e| Client::with_timeout(e, Duration::from_secs(5)).expect("endpoint"))
        .collect();
    let mut attempts = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("w{w}/k{n:06}");
        let value = format!("value {n} of writer {w}");
        let client = &clients[(n + w) % clients.len()];
        let (acked, failure) = match client.put(&key, value.clone()).await {
            Ok(index) => (Some(index), None),
            Err(ClientError::Unreachable { .. }) => (None, Some("unreachable")),
            Err(ClientError::NoAnswer { .. }) => (None, Some("no answer")),
            Err(ClientError::Unavailable { kind, .. }) => (None, Some(kind_name(kind))),
            Err(e) => panic!("writer {w}: put {key}: unexpected failure: {e}"),
        };
        attempts.push(Attempt {
            key,
            value,
            acked,
            failure,
        });
        n += 1;
        tokio::time::sleep(WRITE_PAUSE).await;
    }
    attempts
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NoLeader => "503 no_leader",
        ErrorKind::Timeout => "503 timeout",
        ErrorKind::Overwritten => "503 overwritten",
        ErrorKind::Unknown => "503 unknown",
        _ => "503 other",
    }
}

/// Strong-reads every attempted key from one node: acknowledged ones must hold their
/// value; failed ones may be absent or hold theirs, never anything else.
async fn check_node(
    node: usize,
    client: Client,
    attempts: Arc<Vec<Attempt>>,
) -> Result<usize, String> {
    let lanes = 16;
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let client = client.clone();
            let attempts = attempts.clone();
            tokio::spawn(async move {
                let mut checked = 0;
                for a in attempts.iter().skip(lane).step_by(lanes) {
                    let got = strong_read(&client, &a.key)
                        .await
                        .map_err(|e| format!("n{node}: {e}"))?;
                    match (&a.acked, got) {
                        (_, Some(v)) if v == a.value.as_bytes() => {}
                        (None, None) => {}
                        (Some(index), None) => {
                            return Err(format!(
                                "n{node}: acknowledged write {} (index {index}) is missing",
                                a.key
                            ))
                        }
                        (_, Some(v)) => {
                            return Err(format!(
                                "n{node}: {} holds {:?}, never written (expected {:?})",
                                a.key,
                                String::from_utf8_lossy(&v),
                                a.value
                            ))
                        }
                    }
                    checked += usize::from(a.acked.is_some());
                }
                Ok::<usize, String>(checked)
            })
        })
        .collect();
    let mut checked = 0;
    for t in tasks {
        checked += t.await.map_err(|e| format!("reader panicked: {e}"))??;
    }
    Ok(checked)
}

/// A strong read, retried a few times while the cluster is briefly unavailable.
async fn strong_read(client: &Client, key: &str) -> Result<Option<Vec<u8>>, String> {
    let mut last: Option<ClientError> = None;
    for _ in 0..5 {
        match client.get(key, Consistency::Strong).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("strong read of {key}: {e}")),
        }
    }
    Err(format!(
        "strong read of {key} kept failing: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Runs `tessera ARGS` against `endpoint`; returns exit code, stdout and stderr.
fn cli(endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_ENDPOINT", endpoint)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tessera");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The client command line's exit codes and the HTTP API's error answers, on a one-node
/// group and on a node that waits for peers that never come (no leader).
#[test]
fn cli_exit_codes_and_http_errors() {
    let root = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut args = fast_timings();
    args.extend(["--bootstrap-expect".to_string(), "1".to_string()]);
    let mut single = LocalCluster::new(
        env!("CARGO_BIN_EXE_tessera"),
        &root.path().join("single"),
        &[ip],
        args,
    )
    .expect("plan");
    single.start(0, &[]).expect("start");
    runtime
        .block_on(single.wait_leader(LEADER_BOUND))
        .expect("a one-node group elects itself");
    let ep = single.node(0).endpoint();

    let (code, out, _) = cli(&ep, &["put", "app/db url", "postgres://db"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("index "), "{out}");
    assert_eq!(
        cli(&ep, &["get", "app/db url"]),
        (0, "postgres://db".into(), String::new())
    );
    assert_eq!(
        cli(&ep, &["get", "app/db url", "--strong"]).1,
        "postgres://db"
    );
    let (code, _, err) = cli(&ep, &["get", "absent"]);
    assert_eq!(code, 3, "not found: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // A listing cut by --limit says where it goes on; one read to the end says it does not.
    for key in ["app/a", "app/b", "app/c"] {
        assert_eq!(cli(&ep, &["put", key, "v"]).0, 0);
    }
    let (code, out, err) = cli(
        &ep,
        &[
            "get",
            "app/",
            "--keys-only",
            "--limit",
            "2",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let page: serde_json::Value = serde_json::from_str(&out).expect("listing JSON");
    assert_eq!(page["keys"], serde_json::json!(["app/a", "app/b"]), "{out}");
    assert_eq!(page["more"], serde_json::json!(true), "{out}");
    assert_eq!(page["next"], serde_json::json!("app/b"), "{out}");
    let (code, out, err) = cli(&ep, &["get", "app/", "--keys-only", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let all: serde_json::Value = serde_json::from_str(&out).expect("listing JSON");
    assert_eq!(
        all["keys"],
        serde_json::json!(["app/a", "app/b", "app/c", "app/db url"]),
        "{out}"
    );
    assert_eq!(all["more"], serde_json::json!(false), "{out}");
    assert_eq!(all["next"], serde_json::Value::Null, "{out}");
    assert_eq!(cli(&ep, &["del", "app/db url"]).0, 0);
    assert_eq!(cli(&ep, &["get", "app/db url", "--strong"]).0, 3);
    let (code, out, _) = cli(&ep, &["status"]);
    assert_eq!(code, 0);
    let status: tessera::store::http::NodeStatus = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status.role, "leader");
    assert_eq!(status.members.voters, vec![status.id.clone()]);
    let (code, _, err) = cli("http://127.0.0.1:1", &["get", "x"]);
    assert_eq!(code, 4, "unreachable: {err}");
    assert_eq!(cli(&ep, &["get", "x", "--endpoint", "nonsense"]).0, 2);
    assert_eq!(cli(&ep, &["get"]).0, 2, "clap usage error");

    runtime.block_on(async {
        let client = single.client(0, Duration::from_secs(10));
        let too_big = vec![b'x'; tessera::store::http::MAX_BODY_BYTES + 1];
        match client.put("big", too_big).await {
            Err(ClientError::Refused { status: 413, .. }) => {}
            other => panic!("expected 413, got {other:?}"),
        }
        let long_key = "k".repeat(tessera::store::http::MAX_KEY_BYTES + 1);
        match client.put(&long_key, "v").await {
            Err(ClientError::Refused { status: 400, .. }) => {}
            other => panic!("expected 400, got {other:?}"),
        }
        let exact = vec![b'y'; tessera::store::http::MAX_BODY_BYTES];
        client
            .put("exact", exact.clone())
            .await
            .expect("1 MiB fits");
        assert_eq!(
            client.get("exact", Consistency::Strong).await.expect("get"),
            Some(exact)
        );
    });
    assert!(matches!(single.terminate(0, Duration::from_secs(10)), Ok(Some(s)) if s.success()));

    // A node expecting three founders, alone: no leader, so writes fail with exit code 5.
    let mut lonely = LocalCluster::new(
        env!("CARGO_BIN_EXE_tessera"),
        &root.path().join("lonely"),
        &[ip],
        fast_timings(),
    )
    .expect("plan");
    lonely.start(0, &[]).expect("start");
    let started = Instant::now();
    let (code, _, err) = cli(&lonely.node(0).endpoint(), &["put", "k", "v"]);
    assert_eq!(code, 5, "no leader: {err}");
    assert!(
        err.contains("no_leader") || err.contains("NoLeader"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "answered in {:?}",
        started.elapsed()
    );
}
