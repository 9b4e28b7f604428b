//! What the fault schedule needs from a cluster under test ([`System`]), whatever the
//! system: probe a member's status, kill one, restart it, and a write target per member.
//! tessera's side is here ([`Tessera`], over [`LocalCluster`]); etcd's is in `etcd.rs`.

use crate::etcd::EtcdClient;
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tessera::store::client::{Client, ClientError};
use tessera_testkit::cluster::LocalCluster;

/// One member's view, reduced to what both systems report.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The member's own id (tessera: peer id hex; etcd: member id, decimal).
    pub id: String,
    /// The leader it knows, if any (same id space).
    pub leader: Option<String>,
    /// Whether it says it leads.
    pub leads: bool,
    /// Its current term.
    pub term: u64,
    /// The commit index it knows.
    pub commit: u64,
    /// The last index it applied.
    pub applied: u64,
    /// Whether it is linked to the group. tessera: `online` and bonded to every other
    /// member. etcd reports no links: it is linked once it knows a leader.
    pub linked: bool,
}

/// Why a write failed, in the words both clients can say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// No connection (refused, reset): the member is down or just restarting.
    Unreachable,
    /// Connected, no answer within the client timeout.
    NoAnswer,
    /// The member answered 503/504: no leader, or the call timed out there.
    Unavailable,
    /// Any other answer (a 4xx or 5xx that retrying should not fix).
    Refused,
}

impl Failure {
    /// A word for the summary.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::NoAnswer => "client timeout",
            Failure::Unavailable => "unavailable",
            Failure::Refused => "refused",
        }
    }
}

/// Where a writer sends one member's writes.
#[derive(Clone, Debug)]
pub enum Target {
    /// tessera's own client (`PUT /v1/kv/{key}`).
    Tessera(Client),
    /// etcd's JSON gateway (`POST /v3/kv/put`).
    Etcd(EtcdClient),
}

impl Target {
    /// Puts `key` = `value`; each client gives up after its own timeout.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), Failure> {
        match self {
            Target::Tessera(client) => {
                client
                    .put(key, value.to_vec())
                    .await
                    .map(|_| ())
                    .map_err(|e| match e {
                        ClientError::Unreachable { .. } => Failure::Unreachable,
                        ClientError::NoAnswer { .. } => Failure::NoAnswer,
                        ClientError::Unavailable { .. } => Failure::Unavailable,
                        _ => Failure::Refused,
                    })
            }
            Target::Etcd(client) => client.put(key.as_bytes(), value).await,
        }
    }

    /// Whether a linearizable read of `key` from this member gives `value` (a sanity check
    /// that acknowledged writes landed).
    pub async fn holds(&self, key: &str, value: &[u8]) -> Result<bool, String> {
        match self {
            Target::Tessera(client) => client
                .get(key, tessera::groups::Consistency::Strong)
                .await
                .map(|got| got.as_deref() == Some(value))
                .map_err(|e| e.to_string()),
            Target::Etcd(client) => client.holds(key.as_bytes(), value).await,
        }
    }
}

/// A cluster of members on this machine that the fault schedule can drive. Every member
/// is a child process; implementations kill them all when dropped.
pub trait System {
    /// `tessera` or `etcd`.
    fn name(&self) -> &'static str;
    /// Members.
    fn len(&self) -> usize;
    /// A write target for member `i` whose requests give up after `timeout`.
    fn target(&self, i: usize, timeout: Duration) -> Target;
    /// Member `i`'s status, `None` when it is down or did not answer in a short bound.
    /// The future owns what it needs, so probes of all members run at once.
    fn probe(&self, i: usize) -> impl Future<Output = Option<Probe>> + Send + 'static;
    /// Which members run (started and not killed since).
    fn running(&mut self) -> Vec<bool>;
    /// SIGKILL member `i`.
    fn kill(&mut self, i: usize) -> Result<(), String>;
    /// Starts member `i` again from its data directory. May block until the process is
    /// up enough to say so (tessera prints its address first).
    fn restart(&mut self, i: usize) -> Result<(), String>;
    /// The last lines of member `i`'s log.
    fn log_tail(&self, i: usize, lines: usize) -> String;
}

/// How long one status probe may take: a member that is starting or stuck counts as not
/// answering rather than holding the poll loop.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Three `tessera node` processes with the node's default timings.
pub struct Tessera {
    cluster: LocalCluster,
    probes: Vec<Client>,
}

impl Tessera {
    /// Plans three nodes on 127.0.0.1 under `root` (no flags: the node's defaults) and
    /// starts them: node 0 alone, the others with node 0 as their `--peer`.
    pub fn start(exe: &Path, root: &Path) -> Result<Self, String> {
        let mut cluster = LocalCluster::loopback(exe, root, Vec::new())?;
        cluster.start_all()?;
        let probes = (0..cluster.len())
            .map(|i| cluster.client(i, PROBE_TIMEOUT))
            .collect();
        Ok(Tessera { cluster, probes })
    }
}

impl System for Tessera {
    fn name(&self) -> &'static str {
        "tessera"
    }

    fn len(&self) -> usize {
        self.cluster.len()
    }

    fn target(&self, i: usize, timeout: Duration) -> Target {
        Target::Tessera(self.cluster.client(i, timeout))
    }

    fn probe(&self, i: usize) -> impl Future<Output = Option<Probe>> + Send + 'static {
        let client = self.probes[i].clone();
        let others = self.cluster.len().saturating_sub(1);
        async move {
            let s = client.status().await.ok()?;
            Some(Probe {
                leads: s.is_leader(),
                term: s.term,
                linked: s.online && s.bonded.len() >= others,
                id: s.id,
                leader: s.leader,
                commit: s.commit,
                applied: s.applied,
            })
        }
    }

    fn running(&mut self) -> Vec<bool> {
        (0..self.cluster.len())
            .map(|i| self.cluster.is_running(i))
            .collect()
    }

    fn kill(&mut self, i: usize) -> Result<(), String> {
        self.cluster.kill(i)
    }

    fn restart(&mut self, i: usize) -> Result<(), String> {
        self.cluster.start(i, &[]).map(|_| ())
    }

    fn log_tail(&self, i: usize, lines: usize) -> String {
        self.cluster.log_tail(i, lines)
    }
}
