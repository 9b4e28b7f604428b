//! A local cluster of `tessera node` processes ([`LocalCluster`]): what the process tests,
//! the failover bench and the cluster demo (`tessera demo`) drive.
//!
//! It picks free ports, starts each
//! node as a child process of a given `tessera` executable, reads the `ID@IP:PORT` line
//! the node prints, kills (SIGKILL) or stops (SIGTERM) it, restarts it from its data
//! directory without `--peer`, and asks the nodes' HTTP APIs who leads. Each node's stderr
//! (its log) is appended to `ROOT/nN.log`. Children are killed when the cluster is
//! dropped, and on Linux also when the thread that started them dies (`PR_SET_PDEATHSIG`),
//! so drive a cluster from one long-lived thread.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tessera::network::PeerAddr;
use tessera::store::client::{Client, ClientTls};
use tessera::store::http::NodeStatus;

/// How long a starting node may take to print its address.
const START_BOUND: Duration = Duration::from_secs(30);

/// One node of a [`LocalCluster`].
#[derive(Debug)]
pub struct LocalNode {
    /// `n0`, `n1`, ...
    pub name: String,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its QUIC (UDP) address.
    pub listen: SocketAddr,
    /// Its HTTP (TCP) address.
    pub http: SocketAddr,
    /// Its `ID@IP:PORT`, known once it started.
    pub addr: Option<PeerAddr>,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// `http`, or `https` for nodes started with a certificate
    /// ([`LocalCluster::with_tls`]).
    pub scheme: &'static str,
    child: Option<Child>,
}

impl LocalNode {
    /// Its HTTP endpoint, `http://IP:PORT` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.http)
    }

    /// Whether its process is running (started and not yet seen to exit).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// How its process ended, once it has (`None` while it runs or when never started).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Its peer id (hex), once started.
    pub fn id(&self) -> Option<String> {
        self.addr.map(|a| a.id.to_string())
    }

    /// Its process id, while it runs (started and not yet reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Child processes of `tessera node` on local addresses.
#[derive(Debug)]
pub struct LocalCluster {
    exe: PathBuf,
    args: Vec<String>,
    nodes: Vec<LocalNode>,
    /// The bearer token the harness's own calls carry (nodes with token files).
    token: Option<String>,
    /// Environment variables every node process gets.
    env: Vec<(String, String)>,
    /// How the harness's own calls make TLS connections (nodes serving HTTPS).
    tls: Option<ClientTls>,
}

/// A harness failure, in words (with the node's log tail where it helps).
pub type HarnessError = String;

impl LocalCluster {
    /// Plans one node per address in `ips`, data in `root/nN`; `args` are added to every
    /// node's command line (timings, group key). Each node gets two ports, free for UDP
    /// and TCP now and outside the ephemeral range ([`super::ports`]): its peer port (QUIC
    /// over UDP, the id probe over TCP), and its HTTP port.
    pub fn new(
        exe: impl Into<PathBuf>,
        root: &Path,
        ips: &[IpAddr],
        args: Vec<String>,
    ) -> Result<Self, HarnessError> {
        std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let mut nodes = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            // The peer port takes QUIC over UDP and the id probe over TCP; HTTP has its own.
            let listen = SocketAddr::new(*ip, super::ports::free_port(*ip)?);
            let http = SocketAddr::new(*ip, super::ports::free_port(*ip)?);
            nodes.push(LocalNode {
                name: format!("n{i}"),
                dir: root.join(format!("n{i}")),
                listen,
                http,
                addr: None,
                log: root.join(format!("n{i}.log")),
                scheme: "http",
                child: None,
            });
        }
        Ok(LocalCluster {
            exe: exe.into(),
            args,
            nodes,
            token: None,
            env: Vec::new(),
            tls: None,
        })
    }

    /// Three nodes on 127.0.0.1.
    pub fn loopback(
        exe: impl Into<PathBuf>,
        root: &Path,
        args: Vec<String>,
    ) -> Result<Self, HarnessError> {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Self::new(exe, root, &[ip, ip, ip], args)
    }

    /// Plans one more node on `ip` (data in `ROOT/nN`, a free port), not started; returns
    /// its index. A replacement node, or one to add through the membership API.
    pub fn add_node(&mut self, ip: IpAddr) -> Result<usize, HarnessError> {
        let i = self.nodes.len();
        let root = self
            .nodes
            .first()
            .and_then(|n| n.dir.parent())
            .map(Path::to_path_buf)
            .ok_or("a cluster planned with no nodes has no root")?;
        self.nodes.push(LocalNode {
            name: format!("n{i}"),
            dir: root.join(format!("n{i}")),
            listen: SocketAddr::new(ip, super::ports::free_port(ip)?),
            http: SocketAddr::new(ip, super::ports::free_port(ip)?),
            addr: None,
            log: root.join(format!("n{i}.log")),
            scheme: self.scheme(),
            child: None,
        });
        Ok(i)
    }

    /// Deletes the stopped node `i`'s data directory (a disk lost for good); its next
    /// start is a new node with a new id.
    pub fn wipe(&mut self, i: usize) -> Result<(), HarnessError> {
        if self.nodes[i].is_running() {
            return Err(format!("{} is running", self.nodes[i].name));
        }
        let node = &mut self.nodes[i];
        match std::fs::remove_dir_all(&node.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("wipe {}: {e}", node.dir.display())),
        }
        node.addr = None;
        Ok(())
    }

    /// The nodes.
    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &LocalNode {
        &self.nodes[i]
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// How node `i`'s process ended, once it has (see [`LocalNode::exit_status`]).
    pub fn exit_status(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.nodes[i].exit_status()
    }

    /// Whether node `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// Every node process started from now on gets the environment variable `key`.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The harness's own calls (status, leader) carry `token`: for nodes started with
    /// token files.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The nodes serve HTTPS (the node arguments given to [`new`](Self::new) carry
    /// `--http-cert` and `--http-key`): endpoints are `https://`, and the harness's own
    /// calls connect with `tls` (trusting the nodes' CA, with a client certificate for
    /// nodes that require one).
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        for node in &mut self.nodes {
            node.scheme = "https";
        }
        self
    }

    fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }

    /// A client of node `i` whose requests give up after `timeout`.
    pub fn client(&self, i: usize, timeout: Duration) -> Client {
        let tls = self.tls.clone().unwrap_or_default();
        Client::with_endpoints_and_tls(&[self.nodes[i].endpoint()], timeout, &tls)
            .expect("a local http(s)://IP:PORT endpoint is valid")
            .with_token(self.token.as_deref())
    }

    /// The index of the node with peer id `id` (hex).
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.id().as_deref() == Some(id))
    }

    /// Starts node 0 alone, then every other node with node 0 as its only `--peer`.
    pub fn start_all(&mut self) -> Result<(), HarnessError> {
        self.start_first(self.nodes.len())
    }

    /// Starts the first `n` planned nodes: node 0 alone, the others with node 0's address.
    pub fn start_first(&mut self, n: usize) -> Result<(), HarnessError> {
        let first = self.start(0, &[])?;
        for i in 1..n.min(self.nodes.len()) {
            self.start(i, &[first])?;
        }
        Ok(())
    }

    /// Starts node `i` (from its data directory, which may hold state) with these
    /// bootstrap peers; returns its `ID@IP:PORT` once printed.
    pub fn start(&mut self, i: usize, peers: &[PeerAddr]) -> Result<PeerAddr, HarnessError> {
        self.start_with(i, peers, &[])
    }

    /// [`LocalCluster::start`] with `extra` flags for this start only (after the
    /// cluster's own), e.g. `--force-new-cluster`.
    pub fn start_with(
        &mut self,
        i: usize,
        peers: &[PeerAddr],
        extra: &[&str],
    ) -> Result<PeerAddr, HarnessError> {
        let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
        self.start_with_peers_and(i, &peers, extra)
    }

    /// As [`start`](Self::start), with `--peer` values as written: `HOST:PORT` without
    /// an id, `ID@NAME:PORT`.
    pub fn start_with_peers(
        &mut self,
        i: usize,
        peers: &[String],
    ) -> Result<PeerAddr, HarnessError> {
        self.start_with_peers_and(i, peers, &[])
    }

    fn start_with_peers_and(
        &mut self,
        i: usize,
        peers: &[String],
        extra: &[&str],
    ) -> Result<PeerAddr, HarnessError> {
        let exe = self.exe.clone();
        let mut args = self.args.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        let node = &mut self.nodes[i];
        if node.is_running() {
            return Err(format!("{} is already running", node.name));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| format!("{}: {e}", node.log.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .arg("--data-dir")
            .arg(&node.dir)
            .arg("--listen")
            .arg(node.listen.to_string())
            .arg("--http")
            .arg(node.http.to_string());
        for p in peers {
            cmd.arg("--peer").arg(p);
        }
        // Disk faults are switched on by a file in the data directory (`disk_faults.rs`).
        cmd.env(tessera_storage::DISK_FAULTS_VAR, "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("start {} ({}): {e}", node.name, exe.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        node.child = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the node never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(START_BOUND) {
            Ok(Some(Ok(line))) => line,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = self.kill(i);
                return Err(format!(
                    "{} exited before printing its address; log:\n{}",
                    self.nodes[i].name,
                    self.log_tail(i, 30)
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.kill(i);
                return Err(format!(
                    "{} printed no address within {START_BOUND:?}; log:\n{}",
                    self.nodes[i].name,
                    self.log_tail(i, 30)
                ));
            }
        };
        let addr: PeerAddr = line
            .parse()
            .map_err(|e| format!("{} printed {line:?}: {e}", self.nodes[i].name))?;
        let node = &mut self.nodes[i];
        if let Some(before) = node.addr {
            if before.id != addr.id {
                return Err(format!(
                    "{} came back as {} (was {}): identity not kept",
                    node.name, addr.id, before.id
                ));
            }
        }
        node.addr = Some(addr);
        Ok(addr)
    }

    /// Kills node `i` with SIGKILL and reaps it (no-op when not running).
    pub fn kill(&mut self, i: usize) -> Result<(), HarnessError> {
        if let Some(mut child) = self.nodes[i].child.take() {
            child
                .kill()
                .map_err(|e| format!("kill {}: {e}", self.nodes[i].name))?;
            child
                .wait()
                .map_err(|e| format!("reap {}: {e}", self.nodes[i].name))?;
        }
        Ok(())
    }

    /// Gives the stopped node `i` a new free port (QUIC and HTTP), as a node rescheduled
    /// to a new address: packets to its old port now reach nobody.
    pub fn move_to_new_port(&mut self, i: usize) -> Result<(), HarnessError> {
        if self.nodes[i].is_running() {
            return Err(format!("{} is running", self.nodes[i].name));
        }
        let ip = self.nodes[i].listen.ip();
        let listen = SocketAddr::new(ip, super::ports::free_port(ip)?);
        let http = SocketAddr::new(ip, super::ports::free_port(ip)?);
        let node = &mut self.nodes[i];
        node.listen = listen;
        node.http = http;
        Ok(())
    }

    /// Pauses node `i` with SIGSTOP (a hung process: its sockets stay open, nothing
    /// answers); [`resume`](Self::resume) or [`kill`](Self::kill) ends the pause.
    pub fn pause(&mut self, i: usize) -> Result<(), HarnessError> {
        self.signal(i, libc::SIGSTOP)
    }

    /// Resumes node `i` after [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&mut self, i: usize) -> Result<(), HarnessError> {
        self.signal(i, libc::SIGCONT)
    }

    fn signal(&mut self, i: usize, signal: libc::c_int) -> Result<(), HarnessError> {
        let node = &self.nodes[i];
        let Some(child) = &node.child else {
            return Err(format!("{} is not running", node.name));
        };
        let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet (`child` is still
        // held, so its pid cannot have been reused).
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(format!(
                "signal {signal} to {}: {}",
                node.name,
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// Sends SIGTERM to node `i` and waits up to `bound` for it to exit (then SIGKILL).
    /// Returns its exit status, `None` when it had to be killed or was not running.
    pub fn terminate(
        &mut self,
        i: usize,
        bound: Duration,
    ) -> Result<Option<ExitStatus>, HarnessError> {
        let Some(mut child) = self.nodes[i].child.take() else {
            return Ok(None);
        };
        let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < bound {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(None)
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Asks every running node for its status (each bounded by `timeout`); `None` for a
    /// node that is down or did not answer.
    pub async fn statuses(&mut self, timeout: Duration) -> Vec<Option<NodeStatus>> {
        let mut asks = Vec::new();
        for i in 0..self.nodes.len() {
            let running = self.nodes[i].is_running();
            let client = self.client(i, timeout);
            asks.push(async move {
                if running {
                    client.status().await.ok()
                } else {
                    None
                }
            });
        }
        join_all(asks).await
    }

    /// Waits until every running node answers and names the same leader, which is one of
    /// them and says it leads. Returns the leader's index and status.
    pub async fn wait_leader(
        &mut self,
        bound: Duration,
    ) -> Result<(usize, NodeStatus), HarnessError> {
        let started = Instant::now();
        let mut last = Vec::new();
        while started.elapsed() < bound {
            let statuses = self.statuses(Duration::from_secs(2)).await;
            if let Some(found) = self.agreed_leader(&statuses) {
                return Ok(found);
            }
            last = statuses;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "no leader all running nodes agree on within {bound:?}; last statuses: {}",
            describe(&last)
        ))
    }

    fn agreed_leader(&mut self, statuses: &[Option<NodeStatus>]) -> Option<(usize, NodeStatus)> {
        let mut leader: Option<&str> = None;
        for (i, s) in statuses.iter().enumerate() {
            match s {
                Some(s) => {
                    let l = s.leader.as_deref()?;
                    if leader.is_some_and(|x| x != l) {
                        return None;
                    }
                    leader = Some(l);
                }
                None if self.nodes[i].is_running() => return None,
                None => {}
            }
        }
        let li = self.index_of(leader?)?;
        let status = statuses[li].clone()?;
        status.is_leader().then_some((li, status))
    }

    /// Waits until node `i` has applied at least `commit` and knows a leader.
    pub async fn wait_caught_up(
        &mut self,
        i: usize,
        commit: u64,
        bound: Duration,
    ) -> Result<NodeStatus, HarnessError> {
        let started = Instant::now();
        let client = self.client(i, Duration::from_secs(2));
        let mut last = None;
        while started.elapsed() < bound {
            if let Ok(s) = client.status().await {
                if s.applied >= commit && s.leader.is_some() {
                    return Ok(s);
                }
                last = Some(s);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "{} did not apply index {commit} within {bound:?}; last status: {last:?}",
            self.nodes[i].name
        ))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.kill(i);
        }
    }
}

/// Children get SIGKILL when the thread that started them dies (Linux). Public so other
/// harnesses of child processes (the failover bench's etcd members) get the same guard.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Runs futures concurrently and collects their outputs in order.
async fn join_all<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("status task panicked"));
    }
    out
}

fn describe(statuses: &[Option<NodeStatus>]) -> String {
    statuses
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Some(s) => format!(
                "n{i}: {} term {} leader {} commit {} applied {}",
                s.role,
                s.term,
                s.leader.as_deref().map(short).unwrap_or("none"),
                s.commit,
                s.applied
            ),
            None => format!("n{i}: down"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first 10 characters of an id.
pub fn short(id: &str) -> &str {
    id.get(..10).unwrap_or(id)
}

/// Timings the demo and tests give their nodes: heartbeat 100 ms, election 1 s, so a
/// failover takes about a second instead of the defaults' few seconds.
pub fn fast_timings() -> Vec<String> {
    ["--heartbeat-ms", "100", "--election-timeout-ms", "1000"]
        .map(String::from)
        .to_vec()
}
