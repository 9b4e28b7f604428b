//! Helpers shared by the integration tests (each test file is its own crate and uses
//! the part it needs).
#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;
use tessera::data_dir::DataDir;
use tessera::groups::ConsensusConfig;
use tessera::network::{Network, NetworkId, PeerAddr};
pub use tessera_testkit::ports::free_port;

/// Every wait in the tests is bounded: a hang fails with the step's name.
pub async fn bounded<F: Future>(what: &str, secs: u64, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// Consensus timing for three nodes on loopback (`bootstrap_expect` 3): fast heartbeats
/// and elections; forwarded commands and queries give up after `call_timeout`.
pub fn loopback_consensus(call_timeout: Duration) -> ConsensusConfig {
    ConsensusConfig::builder()
        .with_heartbeat_interval(Duration::from_millis(50))
        .with_heartbeat_jitter(Duration::from_millis(10))
        .with_election_timeout(Duration::from_millis(400))
        .with_election_timeout_jitter(Duration::from_millis(200))
        .with_bootstrap_delay(Duration::from_millis(200))
        .with_forward_timeout(call_timeout)
        .with_query_timeout(call_timeout)
        .with_bootstrap_expect(3)
        .build()
        .expect("valid config")
}

/// Binds a node of the network `name` on loopback `port`, durable in `dir`,
/// bootstrapping from `peers` and reconnecting quickly. Port 0 means a free port below
/// the ephemeral range ([`free_port`]), so a node restarted on the same port never finds
/// it taken by some other socket's ephemeral port in between.
pub async fn bind_loopback(name: &str, dir: &Path, port: u16, peers: &[PeerAddr]) -> Network {
    let port = match port {
        0 => free_port(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("a free loopback port"),
        port => port,
    };
    Network::builder(NetworkId::named(name))
        .data_dir(DataDir::open(dir).expect("open the data directory"))
        .bind_addr(([127, 0, 0, 1], port).into())
        .bootstrap(peers.iter().copied())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .bind()
        .await
        .expect("bind")
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=tessera::groups=debug`).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Deterministic filler bytes (xorshift): incompressible, so a snapshot is as large on
/// the wire as in memory.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
