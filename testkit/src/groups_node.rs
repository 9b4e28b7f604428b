//! `tessera groups-node` processes (one node hosting many groups), for the many-groups
//! benchmark and crash test: started on a fixed loopback port, sent commands, measured
//! from `/proc` (CPU time, resident memory), killed with SIGKILL and started again.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How a node is started.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The `tessera` binary.
    pub binary: PathBuf,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its loopback UDP port (kept across restarts).
    pub port: u16,
    /// Groups hosted.
    pub groups: u64,
    /// Heartbeat interval of every group, in milliseconds.
    pub heartbeat_ms: u64,
}

impl NodeSpec {
    /// A node on a free loopback port.
    pub fn new(binary: &Path, dir: &Path, groups: u64, heartbeat_ms: u64) -> Result<Self, String> {
        Ok(NodeSpec {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            port: super::ports::free_port(IpAddr::V4(Ipv4Addr::LOCALHOST))?,
            groups,
            heartbeat_ms,
        })
    }
}

/// A running `tessera groups-node`. Dropping it kills the process.
pub struct GroupsNode {
    /// How it was started (to start it again).
    pub spec: NodeSpec,
    /// Its `ID@IP:PORT`.
    pub addr: String,
    /// Milliseconds it took to join (open) every group, as it reported.
    pub opened_ms: u64,
    /// From its spawn to its `opened` line.
    pub start_to_opened: Duration,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl GroupsNode {
    /// Starts a node bonding with `peers` (`ID@IP:PORT`) and waits until it opened every
    /// group.
    pub fn start(spec: &NodeSpec, peers: &[String]) -> Result<GroupsNode, String> {
        let started = Instant::now();
        let mut command = Command::new(&spec.binary);
        command
            .arg("groups-node")
            .arg("--data-dir")
            .arg(&spec.dir)
            .args(["--port", &spec.port.to_string()])
            .args(["--groups", &spec.groups.to_string()])
            .args(["--heartbeat-ms", &spec.heartbeat_ms.to_string()]);
        for peer in peers {
            command.args(["--peer", peer]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.binary.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("child without pipes".into());
        };
        let mut node = GroupsNode {
            spec: spec.clone(),
            addr: String::new(),
            opened_ms: 0,
            start_to_opened: Duration::ZERO,
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let first = node.line()?;
        node.addr = first
            .strip_prefix("addr ")
            .ok_or_else(|| format!("expected `addr ...`, got {first:?}"))?
            .to_string();
        let opened = node.line()?;
        node.opened_ms = opened
            .split_whitespace()
            .nth(2)
            .and_then(|ms| ms.parse().ok())
            .ok_or_else(|| format!("expected `opened N MS`, got {opened:?}"))?;
        node.start_to_opened = started.elapsed();
        Ok(node)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's peer id (the part of its address before `@`).
    pub fn id(&self) -> &str {
        self.addr.split('@').next().unwrap_or_default()
    }

    /// The next line the node prints (an `ack` line while a write with acks runs).
    pub fn next_line(&mut self) -> Result<String, String> {
        self.line()
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err(format!("node on port {} exited", self.spec.port)),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) => Err(format!("reading node on port {}: {e}", self.spec.port)),
        }
    }

    /// Sends one command without waiting for its answer.
    pub fn send(&mut self, command: &str) -> Result<(), String> {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("node on port {}: {e}", self.spec.port))
    }

    /// Reads the answer of a command sent with [`send`](Self::send); `ack` lines before
    /// it are handed to `on_ack`.
    pub fn answer(&mut self, mut on_ack: impl FnMut(&str)) -> Result<serde_json::Value, String> {
        loop {
            let line = self.line()?;
            if let Some(ack) = line.strip_prefix("ack ") {
                on_ack(ack);
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| format!("node on port {}: {e} in {line:?}", self.spec.port))?;
            if let Some(err) = value.get("error") {
                return Err(format!("node on port {}: {err}", self.spec.port));
            }
            return Ok(value);
        }
    }

    /// Sends a command and waits for its answer.
    pub fn command(&mut self, command: &str) -> Result<serde_json::Value, String> {
        self.send(command)?;
        self.answer(|_| {})
    }

    /// CPU time (user + system) the process used so far.
    pub fn cpu_time(&self) -> Result<Duration, String> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| format!("{path}: no command name"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<u64, String> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| format!("{path}: field {i}"))
        };
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let total = ticks(11)? + ticks(12)?;
        // SAFETY: sysconf has no preconditions; it only reads a system setting.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok(Duration::from_micros(total * 1_000_000 / hz))
    }

    /// Resident memory, in bytes.
    pub fn resident_bytes(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("{path}: no VmRSS"))
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the node to shut down and waits for it (killed after 30 s).
    pub fn quit(mut self) {
        let _ = self.send("quit");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GroupsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three nodes of `groups` groups each in `root`: the first started alone, the other two
/// bonding with it.
pub fn three_nodes(
    binary: &Path,
    root: &Path,
    groups: u64,
    heartbeat_ms: u64,
) -> Result<Vec<GroupsNode>, String> {
    let mut nodes = Vec::new();
    let mut peers = Vec::new();
    for i in 0..3 {
        let spec = NodeSpec::new(binary, &root.join(format!("n{i}")), groups, heartbeat_ms)?;
        let node = GroupsNode::start(&spec, &peers)?;
        if peers.is_empty() {
            peers.push(node.addr.clone());
        }
        nodes.push(node);
    }
    Ok(nodes)
}
