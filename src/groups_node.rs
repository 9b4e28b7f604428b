//! `tessera groups-node` (hidden, a developer tool): one node hosting many groups of the
//! key-value machine over one network, driven by commands on standard input. The
//! many-groups benchmark and the many-groups crash test start three of these and measure
//! or kill them; a real deployment runs `tessera node`.
//!
//! Output: the first line is `addr ID@IP:PORT`, the second `opened GROUPS MILLIS` once
//! every group is joined (its storage opened: the restart cost). Then one JSON line
//! answers each command:
//! - `status`: groups, leaders known, groups led here, quiesced groups, QUIC connections
//!   and group links open, WAL syncs and the batches they carried.
//! - `leaderless`: the status of every group that knows no leader (role, term, members,
//!   peers bonded, cluster), to see why it did not form.
//! - `wait-leaders SECS [NOT_ID]`: waits until every group knows a leader (other than
//!   the peer NOT_ID, a node that was killed).
//! - `led FIRST COUNT`: how many of groups FIRST..FIRST+COUNT this node leads.
//! - `write SECS CLIENTS FIRST COUNT led|all quiet|acks`: CLIENTS tasks write 256-byte
//!   values for SECS seconds to groups FIRST..FIRST+COUNT (only those led here with `led`;
//!   through forwarding with `all`); each client keeps to its share of the groups. With
//!   `acks` every acknowledged write is printed first as `ack GROUP KEY`.
//! - `check FILE`: strong reads of every `GROUP KEY` line of FILE; answers how many are
//!   missing.
//! - `quit`: shuts the groups and the network down and exits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::data_dir::DataDir;
use tessera::groups::{ConsensusConfig, Consistency, Group, GroupBuilder, GroupKey};
use tessera::network::{Network, NetworkId, PeerAddr};
use tessera::store::{KvCommand, KvMachine, KvQuery, KvResult};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Bytes of each value written.
const VALUE_BYTES: usize = 256;

#[derive(clap::Args)]
pub struct GroupsNodeArgs {
    /// Data directory (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Loopback UDP port for QUIC (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// A peer to bond with, `ID@IP:PORT`; repeat for more.
    #[arg(long = "peer")]
    peers: Vec<PeerAddr>,
    /// Groups hosted.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    groups: u64,
    /// Heartbeat interval of every group, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    heartbeat_ms: u64,
    /// Nodes a fresh group waits for before it forms.
    #[arg(long, default_value_t = 3)]
    expect: usize,
}

/// Runs the node until `quit` or the end of standard input.
pub fn run(args: GroupsNodeArgs) -> Result<(), String> {
    // Warnings and errors to stderr; RUST_LOG (e.g. `tessera=debug`) shows more.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| format!("RUST_LOG={filter:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(args))
}

fn consensus(args: &GroupsNodeArgs) -> Result<ConsensusConfig, String> {
    let beat = Duration::from_millis(args.heartbeat_ms);
    ConsensusConfig::builder()
        .with_heartbeat_interval(beat)
        .with_heartbeat_jitter(beat / 5)
        .with_election_timeout(beat * 4)
        .with_election_timeout_jitter(beat)
        .with_bootstrap_delay(beat)
        .with_forward_timeout(Duration::from_secs(10))
        .with_query_timeout(Duration::from_secs(10))
        .with_bootstrap_expect(args.expect)
        .build()
        .map_err(|e| format!("consensus settings: {e}"))
}

async fn serve(args: GroupsNodeArgs) -> Result<(), String> {
    let config = consensus(&args)?;
    let data_dir = DataDir::open(&args.data_dir)
        .map_err(|e| format!("data directory {}: {e}", args.data_dir.display()))?;
    let network = Network::builder(NetworkId::named("tessera-groups-node"))
        .data_dir(data_dir)
        .bind_addr(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .bootstrap(args.peers.iter().copied())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .heartbeat_interval(config.heartbeat_interval)
        .max_missed_heartbeats(config.max_missed_heartbeats)
        .bind()
        .await
        .map_err(|e| format!("cannot bind port {}: {e}", args.port))?;
    let mut out = tokio::io::stdout();
    say(&mut out, &format!("addr {}", network.local_addr())).await?;
    let started = Instant::now();
    let mut groups = Vec::with_capacity(args.groups as usize);
    for i in 0..args.groups {
        let group = GroupBuilder::new(&network)
            .with_key(GroupKey::from_secret(format!("groups-node {i}")))
            .with_state_machine(KvMachine::default())
            .with_consensus_config(config.clone())
            .join()
            .map_err(|e| format!("group {i}: {e}"))?;
        groups.push(group);
    }
    let node = Arc::new(Node {
        network,
        groups,
        seq: AtomicU64::new(0),
    });
    say(
        &mut out,
        &format!("opened {} {}", args.groups, started.elapsed().as_millis()),
    )
    .await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| format!("standard input: {e}"))?
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["status"] => node.status(),
            ["leaderless"] => node.leaderless(),
            ["wait-leaders", secs] => node.wait_leaders(number(secs)?, None).await,
            ["wait-leaders", secs, not] => node.wait_leaders(number(secs)?, Some(not)).await,
            ["led", first, count] => node.led(number(first)? as usize, number(count)? as usize),
            ["write", secs, clients, first, count, scope, acks] => {
                let plan = WritePlan {
                    secs: number(secs)?,
                    clients: number(clients)?,
                    first: number(first)? as usize,
                    count: number(count)? as usize,
                    led_only: *scope == "led",
                    acks: *acks == "acks",
                };
                node.clone().write(plan).await?
            }
            ["check", file] => node.check(file).await?,
            ["quit"] => break,
            [] => continue,
            _ => serde_json::json!({ "error": format!("unknown command {line:?}") }),
        };
        say(&mut out, &answer.to_string()).await?;
    }
    for group in &node.groups {
        group.shutdown().await;
    }
    node.network.shutdown().await;
    Ok(())
}

fn number(word: &str) -> Result<u64, String> {
    word.parse()
        .map_err(|_| format!("{word:?} is not a number"))
}

async fn say(out: &mut tokio::io::Stdout, line: &str) -> Result<(), String> {
    out.write_all(format!("{line}\n").as_bytes())
        .await
        .and(out.flush().await)
        .map_err(|e| format!("standard output: {e}"))
}

struct Node {
    network: Network,
    groups: Vec<Group<KvMachine>>,
    seq: AtomicU64,
}

struct WritePlan {
    secs: u64,
    clients: u64,
    first: usize,
    count: usize,
    led_only: bool,
    acks: bool,
}

impl Node {
    fn leaderless(&self) -> serde_json::Value {
        let groups: Vec<serde_json::Value> = self
            .groups
            .iter()
            .map(|g| g.status())
            .filter(|s| s.leader.is_none())
            .map(|s| {
                serde_json::json!({
                    "group": s.group.to_string(),
                    "role": format!("{:?}", s.role),
                    "term": s.term.0,
                    "last": format!("{:?}", s.last),
                    "members": format!("{:?}", s.members),
                    "bonded": s.bonded.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "cluster": format!("{:?}", s.cluster),
                    "conflicts": s.conflicts.len(),
                    "online": s.online,
                })
            })
            .collect();
        serde_json::json!({ "leaderless": groups })
    }

    fn status(&self) -> serde_json::Value {
        let me = self.network.local_addr().id;
        let mut known = 0;
        let mut led = 0;
        let mut stopped = 0;
        let mut quiesced = 0;
        for group in &self.groups {
            let status = group.status();
            quiesced += usize::from(status.quiesced);
            known += usize::from(status.leader.is_some());
            led += usize::from(status.leader == Some(me));
            stopped += usize::from(status.stopped.is_some());
        }
        let syncs = self
            .network
            .data_dir()
            .map(|d| d.store().sync_counts())
            .unwrap_or_default();
        serde_json::json!({
            "groups": self.groups.len(),
            "leaders_known": known,
            "led": led,
            "stopped": stopped,
            "quiesced": quiesced,
            "connections": self.network.open_connections(),
            "links": self.network.live_links(),
            "syncs": syncs.syncs,
            "synced_batches": syncs.batches,
        })
    }

    fn led(&self, first: usize, count: usize) -> serde_json::Value {
        let me = self.network.local_addr().id;
        let led = self
            .groups
            .iter()
            .skip(first)
            .take(count)
            .filter(|g| g.leader() == Some(me))
            .count();
        serde_json::json!({ "led": led })
    }

    async fn wait_leaders(&self, secs: u64, not: Option<&str>) -> serde_json::Value {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(secs);
        loop {
            let missing = self
                .groups
                .iter()
                .filter(|g| match g.leader() {
                    None => true,
                    Some(leader) => not.is_some_and(|not| leader.to_string() == not),
                })
                .count();
            if missing == 0 || Instant::now() >= deadline {
                return serde_json::json!({
                    "ok": missing == 0,
                    "without_leader": missing,
                    "millis": started.elapsed().as_millis() as u64,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn write(self: Arc<Self>, plan: WritePlan) -> Result<serde_json::Value, String> {
        let me = self.network.local_addr().id;
        let last = (plan.first + plan.count).min(self.groups.len());
        let targets: Vec<usize> = (plan.first..last)
            .filter(|&g| !plan.led_only || self.groups[g].leader() == Some(me))
            .collect();
        let before = self.status();
        if targets.is_empty() || plan.clients == 0 {
            return Ok(serde_json::json!({ "commits": 0, "errors": 0, "groups": 0 }));
        }
        let (acks_tx, mut acks_rx) = tokio::sync::mpsc::channel::<String>(4096);
        let deadline = Instant::now() + Duration::from_secs(plan.secs);
        let mut tasks = Vec::new();
        for client in 0..plan.clients as usize {
            // Client c writes the targets c, c + clients, ... (or target c mod n when
            // there are more clients than targets).
            let mine: Vec<usize> = if plan.clients as usize >= targets.len() {
                vec![targets[client % targets.len()]]
            } else {
                targets
                    .iter()
                    .skip(client)
                    .step_by(plan.clients as usize)
                    .copied()
                    .collect()
            };
            let node = self.clone();
            let acks = plan.acks.then(|| acks_tx.clone());
            tasks.push(tokio::spawn(async move {
                let value = vec![b'v'; VALUE_BYTES];
                let (mut commits, mut errors) = (0u64, 0u64);
                let mut turn = 0usize;
                while Instant::now() < deadline {
                    let g = mine[turn % mine.len()];
                    turn += 1;
                    let key = format!("c{client}-{}", node.seq.fetch_add(1, Ordering::Relaxed));
                    let command = KvCommand::Put {
                        key: key.clone(),
                        value: value.clone(),
                    };
                    match node.groups[g].execute(command).await {
                        Ok(_) => {
                            commits += 1;
                            if let Some(acks) = &acks {
                                let _ = acks.send(format!("ack {g} {key}")).await;
                            }
                        }
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (commits, errors)
            }));
        }
        drop(acks_tx);
        let mut out = tokio::io::stdout();
        while let Some(line) = acks_rx.recv().await {
            say(&mut out, &line).await?;
        }
        let (mut commits, mut errors) = (0u64, 0u64);
        for task in tasks {
            let (c, e) = task.await.map_err(|e| format!("client task: {e}"))?;
            commits += c;
            errors += e;
        }
        let after = self.status();
        let delta =
            |field: &str| after[field].as_u64().unwrap_or(0) - before[field].as_u64().unwrap_or(0);
        Ok(serde_json::json!({
            "commits": commits,
            "errors": errors,
            "groups": targets.len(),
            "secs": plan.secs,
            "syncs": delta("syncs"),
            "synced_batches": delta("synced_batches"),
        }))
    }

    async fn check(&self, file: &str) -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        let mut by_group: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if let (Some(g), Some(key)) = (words.next(), words.next()) {
                let g: usize = g
                    .parse()
                    .map_err(|_| format!("{file}: bad group in {line:?}"))?;
                by_group.entry(g).or_default().push(key.to_string());
            }
        }
        let (mut checked, mut missing, mut failed) = (0u64, Vec::new(), 0u64);
        for (g, keys) in by_group {
            let Some(group) = self.groups.get(g) else {
                return Err(format!("{file}: no group {g} here"));
            };
            for key in keys {
                checked += 1;
                // A read may fail while a group elects; it is asked again a few times.
                let mut answer = None;
                for _ in 0..50 {
                    let query = KvQuery::Get { key: key.clone() };
                    match group.query(query, Consistency::Strong).await {
                        Ok((result, _)) => {
                            answer = Some(matches!(result, KvResult::Value(Some(_))));
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                match answer {
                    Some(true) => {}
                    Some(false) => missing.push(format!("{g} {key}")),
                    None => failed += 1,
                }
            }
        }
        Ok(serde_json::json!({
            "checked": checked,
            "missing": missing.len(),
            "first_missing": missing.iter().take(10).collect::<Vec<_>>(),
            "failed_reads": failed,
        }))
    }
}
