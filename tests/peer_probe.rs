//! The id probe in one process, over loopback: a node given a peer as `HOST:PORT` without
//! an id learns the id (and bonds); a node with another group key learns nothing; garbage
//! sent to the probe's TCP port gets an error answer and the node keeps answering.
//!
//! Timeouts here are only upper bounds against hangs; no assertion depends on timing.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tessera::network::{GroupAccess, LinkKey, Network, NetworkId, PeerSpec};
use tessera::{Digest, GroupId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {BOUND:?}"),
    }
}

fn access(key: &[u8]) -> GroupAccess {
    GroupAccess::new(GroupId(Digest::of(b"probe group")), LinkKey::derive(key))
}

async fn node(port: u16, peers: Vec<PeerSpec>) -> Network {
    Network::builder(NetworkId::named("tessera-probe-tests"))
        .bind_addr(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .bootstrap_specs(peers)
        .connect_timeout(Duration::from_secs(3))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(300))
        .bind()
        .await
        .expect("bind on loopback")
}

#[tokio::test]
async fn an_idless_peer_is_learned_only_with_the_group_key() {
    let port = tessera_testkit::ports::free_port(Ipv4Addr::LOCALHOST.into()).expect("port");
    let a = node(port, Vec::new()).await;
    let _ga = a.join(access(b"key")).expect("join");

    // Garbage on the probe port: an error answer of the fixed size, then the node serves on.
    let mut raw = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .expect("the probe listens on the peer port number");
    raw.write_all(&[0x55; 101]).await.expect("write");
    let mut answer = Vec::new();
    bounded("garbage answered", raw.read_to_end(&mut answer))
        .await
        .expect("read");
    assert_eq!(answer.len(), 70, "{answer:?}");
    assert_eq!(answer[5], 3, "status: bad request");

    let by_name: PeerSpec = format!("localhost:{port}").parse().expect("spec");
    let b = node(0, vec![by_name.clone()]).await;
    assert_eq!(b.unresolved_peers(), vec![by_name.to_string()]);
    let _gb = b.join(access(b"key")).expect("join");
    bounded("b learns a's id", async {
        while !b.named_peers().contains(&a.peer_id()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(b.unresolved_peers().is_empty());
    assert!(b.known_peers().iter().any(|p| p.id == a.peer_id()));

    let stranger = node(0, vec![by_name.clone()]).await;
    let _gs = stranger.join(access(b"another key")).expect("join");
    // The stranger asks over and over (back-off up to 300 ms); a's answers never verify.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stranger.unresolved_peers(), vec![by_name.to_string()]);
    assert!(stranger.named_peers().is_empty());
    assert!(!stranger.known_peers().iter().any(|p| p.id == a.peer_id()));

    for n in [a, b, stranger] {
        n.shutdown().await;
    }
}
