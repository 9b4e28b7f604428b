//! Helpers of the config-store tests (`tests/kv_*.rs`): a scenario runner that keeps the
//! logs of a failure, an in-process single node, a three-process cluster, and raw HTTP.
#![allow(dead_code)]

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tessera::store::http::NodeStatus;
use tessera::store::kv::Retention;
use tessera::store::{Client, Server, ServerConfig};
use tessera_testkit::cluster::LocalCluster;

/// Bound on the harness's own waits (a leader, a status, a read-back).
pub const BOUND: Duration = Duration::from_secs(30);

/// Runs `scenario` in a fresh directory on a two-thread runtime; prints its summary, or
/// panics with its reason and keeps the directory (node logs) for a look.
pub fn run<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let root = tempfile::Builder::new()
        .prefix(&format!("tessera-{name}-"))
        .tempdir()
        .expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    match runtime.block_on(scenario(root.path().to_path_buf())) {
        Ok(summary) => println!("{summary} ({:.1} s)", started.elapsed().as_secs_f64()),
        Err(reason) => {
            let kept = root.keep();
            panic!("{reason}\nkept in {}", kept.display());
        }
    }
}

/// Every wait is bounded: a hang fails with the step's name.
pub async fn bounded<F: Future>(what: &str, bound: Duration, fut: F) -> Result<F::Output, String> {
    tokio::time::timeout(bound, fut)
        .await
        .map_err(|_| format!("timed out after {bound:?}: {what}"))
}

/// A one-node group in this process, serving HTTP on a free loopback port, with
/// `retention` of history; returns once it leads.
pub async fn single_node(dir: &Path, retention: Retention) -> Result<Server, String> {
    start_single(single_node_config(dir, retention)?).await
}

/// The configuration [`single_node`] starts with (free loopback ports, one member).
pub fn single_node_config(dir: &Path, retention: Retention) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::new(
        dir,
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
    );
    config.bootstrap_expect = 1;
    config.watch_history = retention;
    Ok(config)
}

/// Starts a one-member node from `config`; returns once it leads.
pub async fn start_single(config: ServerConfig) -> Result<Server, String> {
    let node = Server::start(config).await.map_err(|e| e.to_string())?;
    bounded(
        "the single node leads",
        BOUND,
        node.group().when().leader_elected(),
    )
    .await?
    .map_err(|e| e.to_string())?;
    Ok(node)
}

/// The node's base URL.
pub fn url(node: &Server) -> String {
    format!("http://{}", node.http_addr())
}

/// Three `tessera node` processes on 127.0.0.1 with `extra` flags, started, with a leader.
pub async fn three_nodes(root: &Path, extra: &[&str]) -> Result<LocalCluster, String> {
    let args = extra.iter().map(|s| s.to_string()).collect();
    let mut cluster = LocalCluster::loopback(env!("CARGO_BIN_EXE_tessera"), root, args)?;
    cluster.start_all()?;
    cluster.wait_leader(BOUND).await?;
    Ok(cluster)
}

/// A client of every node of `cluster` (failing over between them).
pub fn client_of_all(cluster: &LocalCluster, timeout: Duration) -> Client {
    let endpoints: Vec<String> = cluster.nodes().iter().map(|n| n.endpoint()).collect();
    Client::with_endpoints(&endpoints, timeout).expect("local endpoints")
}

/// A client of the nodes `which` of `cluster` (failing over between them).
pub fn client_of(cluster: &LocalCluster, which: &[usize], timeout: Duration) -> Client {
    let endpoints: Vec<String> = which.iter().map(|i| cluster.node(*i).endpoint()).collect();
    Client::with_endpoints(&endpoints, timeout).expect("local endpoints")
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("{e}: {}", self.text()))
    }

    /// A numeric header.
    pub fn header(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }
}

/// One raw request, whole answer, bounded.
pub async fn http(method: Method, url: &str, body: impl Into<Bytes>) -> Result<Answer, String> {
    let client: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let request = Request::builder()
        .method(method.clone())
        .uri(url)
        .body(Full::new(body.into()))
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {url}: body: {e}"))?
            .to_bytes();
        Ok::<_, String>(Answer {
            status,
            headers,
            body,
        })
    };
    bounded(&format!("{method} {url}"), BOUND, exchange).await?
}

/// The store revision a node's status shows.
pub async fn revision(client: &Client) -> Result<u64, String> {
    let status: NodeStatus = client.status().await.map_err(|e| e.to_string())?;
    status
        .store
        .map(|s| s.revision)
        .ok_or_else(|| "a status without its store".to_string())
}
