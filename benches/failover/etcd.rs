//! etcd's side of the comparison: a 3-member etcd cluster as child processes on 127.0.0.1
//! ([`Etcd`]) and a small client of its JSON gateway ([`EtcdClient`]): `POST
//! /v3/kv/put`, `/v3/kv/range` and `/v3/maintenance/status`, keys and values in base64,
//! 64-bit numbers as JSON strings (the gateway's encoding; plain numbers are accepted too).

use crate::system::{Failure, Probe, System, Target, PROBE_TIMEOUT};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::fs::OpenOptions;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The etcd executable: `FAILOVER_ETCD`, else `etcd` on the `PATH`.
pub fn find_etcd() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FAILOVER_ETCD") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

/// `etcd --version`'s first line.
pub fn version(exe: &Path) -> Result<String, String> {
    let out = Command::new(exe)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} --version: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(str::to_string)
        .ok_or_else(|| format!("{} --version printed nothing", exe.display()))
}

/// One member: its addresses, data directory, log, and process while it runs.
struct Member {
    name: String,
    dir: PathBuf,
    client: SocketAddr,
    peer: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

/// etcd members as child processes, killed when dropped (and, on Linux, when the thread
/// that started them dies).
pub struct Etcd {
    exe: PathBuf,
    members: Vec<Member>,
    /// Flags every member gets (cluster, timings).
    common: Vec<String>,
    probes: Vec<EtcdClient>,
}

impl Etcd {
    /// Starts `n` members on 127.0.0.1 under `root` with these timings (etcd's
    /// `--heartbeat-interval` and `--election-timeout`, in ms).
    pub fn start(
        exe: &Path,
        root: &Path,
        n: usize,
        heartbeat_ms: u64,
        election_ms: u64,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut members = Vec::new();
        for i in 0..n {
            // Ports below the ephemeral range, as tessera's harness picks them.
            let client = SocketAddr::new(ip, tessera_testkit::ports::free_port(ip)?);
            let peer = SocketAddr::new(ip, tessera_testkit::ports::free_port(ip)?);
            members.push(Member {
                name: format!("e{i}"),
                dir: root.join(format!("e{i}")),
                client,
                peer,
                log: root.join(format!("e{i}.log")),
                child: None,
            });
        }
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect();
        let common = vec![
            "--initial-cluster".into(),
            initial.join(","),
            "--initial-cluster-state".into(),
            "new".into(),
            "--initial-cluster-token".into(),
            "tessera-failover".into(),
            "--heartbeat-interval".into(),
            heartbeat_ms.to_string(),
            "--election-timeout".into(),
            election_ms.to_string(),
            "--logger".into(),
            "zap".into(),
        ];
        let probes = members
            .iter()
            .map(|m| EtcdClient::new(m.client, PROBE_TIMEOUT))
            .collect();
        let mut etcd = Etcd {
            exe: exe.to_path_buf(),
            members,
            common,
            probes,
        };
        for i in 0..n {
            etcd.spawn(i)?;
        }
        Ok(etcd)
    }

    /// Starts member `i` (a restart reads the data directory; the cluster flags are then
    /// ignored by etcd).
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let m = &mut self.members[i];
        if m.child.is_some() {
            return Err(format!("{} is already running", m.name));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| format!("{}: {e}", m.log.display()))?;
        let client_url = format!("http://{}", m.client);
        let peer_url = format!("http://{}", m.peer);
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .args(&self.common)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        // The machine's ETCD_* settings would override the flags.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(key);
            }
        }
        tessera_testkit::cluster::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("start {} ({}): {e}", m.name, self.exe.display()))?;
        m.child = Some(child);
        Ok(())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
    }
}

impl System for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn len(&self) -> usize {
        self.members.len()
    }

    fn target(&self, i: usize, timeout: Duration) -> Target {
        Target::Etcd(EtcdClient::new(self.members[i].client, timeout))
    }

    fn probe(&self, i: usize) -> impl Future<Output = Option<Probe>> + Send + 'static {
        let client = self.probes[i].clone();
        async move { client.status().await }
    }

    fn running(&mut self) -> Vec<bool> {
        self.members
            .iter_mut()
            .map(|m| match &mut m.child {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                None => false,
            })
            .collect()
    }

    fn kill(&mut self, i: usize) -> Result<(), String> {
        let m = &mut self.members[i];
        if let Some(mut child) = m.child.take() {
            child.kill().map_err(|e| format!("kill {}: {e}", m.name))?;
            child.wait().map_err(|e| format!("reap {}: {e}", m.name))?;
        }
        Ok(())
    }

    fn restart(&mut self, i: usize) -> Result<(), String> {
        self.spawn(i)
    }

    fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A client of one member's JSON gateway; every request gives up after its timeout.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    base: String,
    timeout: Duration,
}

impl EtcdClient {
    /// A client of the member listening for clients on `addr`.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        EtcdClient {
            http,
            base: format!("http://{addr}"),
            timeout,
        }
    }

    /// Posts a JSON body; the status and whole answer, all within the timeout.
    async fn post(&self, path: &str, body: Value) -> Result<(StatusCode, Bytes), Failure> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| Failure::Refused)?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|_| Failure::Unreachable)?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Unreachable)?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Failure::NoAnswer)?
    }

    /// `PUT key value`: `POST /v3/kv/put`.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Failure> {
        let body = json!({ "key": base64(key), "value": base64(value) });
        let (status, answer) = self.post("/v3/kv/put", body).await?;
        match status {
            s if s.is_success() => {
                // A put answers its header (with the new revision); anything else is not
                // an acknowledgement.
                let parsed: Value =
                    serde_json::from_slice(&answer).map_err(|_| Failure::Refused)?;
                if parsed.get("header").is_some() {
                    Ok(())
                } else {
                    Err(Failure::Refused)
                }
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                Err(Failure::Unavailable)
            }
            _ => Err(Failure::Refused),
        }
    }

    /// Whether a linearizable read of `key` (`POST /v3/kv/range`) gives `value`.
    pub async fn holds(&self, key: &[u8], value: &[u8]) -> Result<bool, String> {
        let body = json!({ "key": base64(key) });
        let (status, answer) = self
            .post("/v3/kv/range", body)
            .await
            .map_err(|f| format!("range on {}: {}", self.base, f.name()))?;
        if !status.is_success() {
            return Err(format!(
                "range on {} answered {status}: {}",
                self.base,
                String::from_utf8_lossy(&answer)
            ));
        }
        let parsed: Value = serde_json::from_slice(&answer)
            .map_err(|e| format!("range on {}: bad JSON: {e}", self.base))?;
        let found = parsed
            .get("kvs")
            .and_then(|kvs| kvs.get(0))
            .and_then(|kv| kv.get("value"))
            .and_then(Value::as_str);
        Ok(found == Some(base64(value).as_str()))
    }

    /// The member's status (`POST /v3/maintenance/status`), `None` when it does not answer.
    pub async fn status(&self) -> Option<Probe> {
        let (status, answer) = self.post("/v3/maintenance/status", json!({})).await.ok()?;
        if !status.is_success() {
            return None;
        }
        let s: Value = serde_json::from_slice(&answer).ok()?;
        let id = number(s.get("header")?.get("member_id")?)?;
        // Leader 0 (or absent: the gateway leaves zero values out) means none known.
        let leader = s.get("leader").and_then(number).filter(|&l| l != 0);
        let applied = s.get("raftAppliedIndex").and_then(number).unwrap_or(0);
        let term = s.get("raftTerm").and_then(number).unwrap_or(0);
        Some(Probe {
            id: id.to_string(),
            leads: leader == Some(id),
            term,
            linked: leader.is_some(),
            leader: leader.map(|l| l.to_string()),
            // etcd's status `raftIndex` is the member's commit index.
            commit: s.get("raftIndex").and_then(number).unwrap_or(0),
            applied,
        })
    }
}

/// A u64 the gateway sends as a JSON string ("123"), or as a number.
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        v => v.as_u64(),
    }
}

/// Standard base64 with padding (RFC 4648 §4), what the gateway expects for bytes.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
