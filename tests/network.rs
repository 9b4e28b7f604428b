//! The network layer over loopback: links, identity, peer exchange, reconnection, and
//! hostile input (garbage, huge lengths, wrong keys, wrong networks, bad tickets), each
//! refused while the node keeps serving good peers.
//!
//! Timeouts here are only upper bounds against hangs; no assertion depends on timing.

use std::future::Future;
use std::time::Duration;

use iroh::endpoint::presets;
use iroh::Endpoint;
use tessera::data_dir::{DataDir, DataDirError, IdentityError, KEY_FILE_NAME};
use tessera::network::read_close;
use tessera::network::{
    BondError, GroupAccess, GroupLinks, HandshakeError, Link, LinkConfig, LinkKey, Network,
    NetworkError, NetworkId, PeerAddr, TicketError, ALPN, CODE_PROTOCOL, CODE_REFUSED,
};
use tessera::{Digest, GroupId, PeerId};

/// Upper bound on any single step, so a broken build fails instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {BOUND:?}"),
    }
}

fn net() -> NetworkId {
    NetworkId::named("tessera-tests")
}

fn group() -> GroupId {
    GroupId(Digest::of(b"test group"))
}

fn access(key: &[u8]) -> GroupAccess {
    GroupAccess::new(group(), LinkKey::derive(key)).with_link_config(LinkConfig {
        heartbeat_interval: Duration::from_millis(200),
        ..LinkConfig::default()
    })
}

async fn node(network: NetworkId) -> Network {
    Network::builder(network)
        .connect_timeout(Duration::from_secs(3))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .bind()
        .await
        .expect("bind on loopback")
}

async fn member(key: &[u8]) -> (Network, GroupLinks) {
    let n = node(net()).await;
    let g = n.join(access(key)).expect("join");
    (n, g)
}

/// Sends one message each way over a fresh pair of links.
async fn ping_pong(a: &mut Link, b: &mut Link) {
    a.send(b"ping".to_vec()).await.expect("send ping");
    assert_eq!(bounded("recv ping", b.recv()).await, Some(b"ping".to_vec()));
    b.send(b"pong".to_vec()).await.expect("send pong");
    assert_eq!(bounded("recv pong", a.recv()).await, Some(b"pong".to_vec()));
}

/// `dialer` bonds with `server` and both exchange a frame: proof the server still serves.
/// Returns both ends (dropping a `Link` closes it).
async fn bond_and_ping(
    dialer: &GroupLinks,
    server: &Network,
    server_links: &mut GroupLinks,
) -> (Link, Link) {
    let mut out = bounded("connect", dialer.connect_addr(server.local_addr()))
        .await
        .expect("good peer bonds");
    let mut inc = bounded("accept", server_links.next_link())
        .await
        .expect("server delivers the link");
    assert_eq!(inc.peer(), out.dialer());
    assert_eq!(out.peer(), server.peer_id());
    ping_pong(&mut out, &mut inc).await;
    (out, inc)
}

/// A raw QUIC client speaking tessera's ALPN, for sending bytes no node would send.
async fn raw_client() -> Endpoint {
    Endpoint::builder(presets::Minimal)
        .clear_ip_transports()
        .bind_addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("addr")
        .alpns(vec![ALPN.to_vec()])
        .bind()
        .await
        .expect("raw endpoint")
}

/// Sends `bytes` on a fresh stream to `server` and returns how the server closed that
/// stream: its last `Close` frame. The connection itself stays up (it could carry other
/// groups' links), which is checked too.
async fn send_raw(server: &Network, bytes: &[u8]) -> (u64, String) {
    let client = raw_client().await;
    let target = server.local_addr().to_endpoint_addr().expect("valid id");
    let conn = bounded("raw connect", client.connect(target, ALPN))
        .await
        .expect("raw connect");
    let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
    send.write_all(bytes).await.expect("write raw bytes");
    let close = bounded("server refuses the stream", read_close(&mut recv, 1 << 20))
        .await
        .expect("a well-formed answer")
        .expect("a Close frame");
    assert!(
        conn.close_reason().is_none(),
        "a bad stream closes only itself: {:?}",
        conn.close_reason()
    );
    client.close().await;
    (u64::from(close.0), close.1)
}

#[tokio::test]
async fn two_nodes_exchange_frames() {
    let (a, ga) = member(b"key").await;
    let (b, mut gb) = member(b"key").await;
    let (mut out, mut inc) = bond_and_ping(&ga, &b, &mut gb).await;
    // Many frames, in order, both ways at once.
    let sender = out.sender();
    let back = inc.sender();
    let push = tokio::spawn(async move {
        for i in 0u32..500 {
            sender.send(i.to_be_bytes().to_vec()).await.expect("send");
        }
    });
    let echo = async {
        for i in 0u32..500 {
            let got = bounded("recv", inc.recv()).await.expect("frame");
            assert_eq!(got, i.to_be_bytes().to_vec());
            back.send(got).await.expect("echo");
        }
    };
    let check = async {
        for i in 0u32..500 {
            let got = bounded("recv echo", out.recv()).await.expect("echo");
            assert_eq!(got, i.to_be_bytes().to_vec());
        }
    };
    tokio::join!(echo, check);
    push.await.expect("pusher");
    // One link per peer and group: a second dial while the first is up is refused.
    let again = bounded("second dial", ga.connect(b.peer_id())).await;
    assert!(
        matches!(again, Err(BondError::Duplicate { .. })),
        "one link per peer and group: {again:?}"
    );
    // The first link is unaffected.
    ping_pong(&mut out, &mut inc).await;
    // Closing one end closes the other.
    out.close();
    let reason = bounded("peer sees the close", inc.closed()).await;
    assert!(
        !matches!(reason, tessera::network::CloseReason::Protocol(_)),
        "{reason}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn identity_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Network::builder(net())
        .data_dir(DataDir::open(dir.path()).expect("open"))
        .bind()
        .await
        .expect("first start");
    let id = first.peer_id();
    first.shutdown().await;
    drop(first); // the data directory stays locked while the network lives
    let second = Network::builder(net())
        .data_dir(DataDir::open(dir.path()).expect("reopen"))
        .bind()
        .await
        .expect("restart");
    assert_eq!(second.peer_id(), id, "same data dir, same peer id");
    second.shutdown().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = Network::builder(net())
        .data_dir(DataDir::open(other_dir.path()).expect("open"))
        .bind()
        .await
        .expect("other node");
    assert_ne!(other.peer_id(), id);
    other.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_key_file_is_a_clear_error_and_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(KEY_FILE_NAME);
    std::fs::write(&path, b"not a key").expect("write garbage");
    let err = DataDir::open(dir.path()).expect_err("corrupt key must not start");
    assert!(
        matches!(
            &err,
            DataDirError::Identity(IdentityError::WrongLength { found: 9, .. })
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("corrupt") && text.contains(KEY_FILE_NAME),
        "{text}"
    );
    assert_eq!(std::fs::read(&path).expect("still there"), b"not a key");

    // A flipped bit in an otherwise well-formed file is caught by the crc.
    let good = tempfile::tempdir().expect("tempdir");
    let n = Network::builder(net())
        .data_dir(DataDir::open(good.path()).expect("open"))
        .bind()
        .await
        .expect("fresh");
    n.shutdown().await;
    drop(n);
    let path = good.path().join(KEY_FILE_NAME);
    let mut bytes = std::fs::read(&path).expect("read key");
    bytes[10] ^= 0x40;
    std::fs::write(&path, &bytes).expect("corrupt it");
    let err = DataDir::open(good.path()).expect_err("bit flip");
    assert!(
        matches!(err, DataDirError::Identity(IdentityError::BadCrc { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn a_node_given_one_peer_learns_a_third_through_peer_exchange() {
    let (a, mut ga) = member(b"key").await;
    let (b, mut gb) = member(b"key").await;
    // A bonds with B: B now knows A's address from A's hello.
    let _ab = bond_and_ping(&ga, &b, &mut gb).await;
    // C knows only B.
    let c = Network::builder(net())
        .bootstrap([b.local_addr()])
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .bind()
        .await
        .expect("c");
    let mut gc = c.join(access(b"key")).expect("join");
    assert!(!c.known_peers().iter().any(|p| p.id == a.peer_id()));
    // C keeps bonds to B and to A; A's address is unknown until B tells it.
    gc.maintain(b.peer_id());
    gc.maintain(a.peer_id());
    let mut seen = Vec::new();
    let mut kept = Vec::new();
    while seen.len() < 2 {
        let link = bounded("maintained links", gc.next_link())
            .await
            .expect("link");
        if !seen.contains(&link.peer()) {
            seen.push(link.peer());
        }
        kept.push(link);
    }
    assert!(seen.contains(&a.peer_id()) && seen.contains(&b.peer_id()));
    assert!(c
        .known_peers()
        .contains(&PeerAddr::new(a.peer_id(), a.local_addr().addr)));
    // A accepted C's link.
    let from_c = bounded("A accepts C", ga.next_link()).await.expect("link");
    assert_eq!(from_c.peer(), c.peer_id());
    drop(gb);
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn garbage_bytes_are_refused_and_the_node_keeps_serving() {
    let (b, mut gb) = member(b"key").await;
    let (code, reason) = send_raw(&b, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(code, u64::from(CODE_PROTOCOL));
    assert!(reason.contains("frame version 71"), "{reason}");
    let (a, ga) = member(b"key").await;
    let _links = bond_and_ping(&ga, &b, &mut gb).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_frame_claiming_a_huge_length_is_refused_and_the_node_keeps_serving() {
    let (b, mut gb) = member(b"key").await;
    let (code, reason) = send_raw(&b, &[1, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 0]).await;
    assert_eq!(code, u64::from(CODE_PROTOCOL));
    assert!(reason.contains("exceeds the cap"), "{reason}");
    // A well-formed frame that is not a message is refused too.
    let (code, reason) = send_raw(&b, &[1, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF]).await;
    assert_eq!(code, u64::from(CODE_PROTOCOL));
    assert!(reason.contains("does not decode"), "{reason}");
    let (a, ga) = member(b"key").await;
    let _links = bond_and_ping(&ga, &b, &mut gb).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_wrong_group_key_is_refused_and_the_node_keeps_serving() {
    let (b, mut gb) = member(b"right key").await;
    let (m, gm) = member(b"wrong key").await;
    let err = bounded("bad dial", gm.connect_addr(b.local_addr()))
        .await
        .expect_err("wrong key must be refused");
    // The acceptor proves first; the dialer finds the proof wrong and hangs up.
    assert!(
        matches!(
            &err,
            BondError::Handshake { source: HandshakeError::BadProof { peer }, .. } if *peer == b.peer_id()
        ),
        "{err}"
    );
    let (a, ga) = member(b"right key").await;
    let _links = bond_and_ping(&ga, &b, &mut gb).await;
    for n in [a, b, m] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_wrong_network_is_refused_and_the_node_keeps_serving() {
    let (b, mut gb) = member(b"key").await;
    let other = node(NetworkId::named("another network")).await;
    let go = other.join(access(b"key")).expect("join");
    let err = bounded("bad dial", go.connect_addr(b.local_addr()))
        .await
        .expect_err("other network must be refused");
    assert!(
        matches!(&err, BondError::Refused { code, reason, .. }
            if *code == u64::from(CODE_REFUSED) && reason.contains("wrong network")),
        "{err}"
    );
    let (a, ga) = member(b"key").await;
    let _links = bond_and_ping(&ga, &b, &mut gb).await;
    for n in [a, b, other] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn tickets_and_unknown_groups_are_refused() {
    let b = node(net()).await;
    let mut gb = b
        .join(
            access(b"key").require_ticket(|_peer: PeerId, ticket: &[u8]| {
                if ticket == b"let me in" {
                    Ok(())
                } else {
                    Err(TicketError::new("ticket is not 'let me in'"))
                }
            }),
        )
        .expect("join");
    let (m, gm) = member(b"key").await;
    let err = bounded("no ticket", gm.connect_addr(b.local_addr()))
        .await
        .expect_err("no ticket must be refused");
    assert!(
        matches!(&err, BondError::Refused { reason, .. } if reason.contains("ticket is not")),
        "{err}"
    );
    // A node without the group at all.
    let lonely = node(net()).await;
    let err = bounded("unknown group", gm.connect_addr(lonely.local_addr()))
        .await
        .expect_err("unknown group");
    assert!(
        matches!(&err, BondError::Refused { reason, .. } if reason.contains("unknown group")),
        "{err}"
    );
    let a = node(net()).await;
    let ga = a
        .join(access(b"key").with_ticket(b"let me in".to_vec()))
        .expect("join");
    let _links = bond_and_ping(&ga, &b, &mut gb).await;
    for n in [a, b, m, lonely] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_maintained_bond_reconnects_after_the_peer_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start_b = |addr: std::net::SocketAddr| {
        Network::builder(net())
            .data_dir(DataDir::open(dir.path()).expect("open"))
            .bind_addr(addr)
            .bind()
    };
    // A port below the ephemeral range, so no other socket takes it while b is down.
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    let port = tessera_testkit::ports::free_port(localhost.into()).expect("free port");
    let b = start_b((localhost, port).into()).await.expect("b");
    let b_addr = b.local_addr();
    let mut gb = b.join(access(b"key")).expect("join");
    let (a, mut ga) = member(b"key").await;
    a.add_peer(b_addr);
    ga.maintain(b.peer_id());
    let mut first = bounded("first link", ga.next_link()).await.expect("link");
    let mut first_b = bounded("b accepts", gb.next_link()).await.expect("link");
    ping_pong(&mut first, &mut first_b).await;
    drop(first_b);
    drop(gb);
    b.shutdown().await;
    let reason = bounded("link closes with the peer", first.closed()).await;
    assert!(
        !matches!(reason, tessera::network::CloseReason::Protocol(_)),
        "{reason}"
    );
    drop(b);
    // Same data dir and port: same identity, same address. The old socket is released
    // when its last handle is gone; retry briefly in case the OS is slower than us.
    let b = bounded("b restarts", async {
        loop {
            match start_b(b_addr.addr).await {
                Ok(b) => break b,
                Err(NetworkError::Bind { .. }) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(err) => panic!("restart: {err}"),
            }
        }
    })
    .await;
    assert_eq!(b.local_addr(), b_addr);
    let mut gb = b.join(access(b"key")).expect("join");
    let mut second = bounded("reconnected link", ga.next_link())
        .await
        .expect("link");
    assert_eq!(second.peer(), b.peer_id());
    let mut second_b = bounded("b accepts again", gb.next_link())
        .await
        .expect("link");
    ping_pong(&mut second, &mut second_b).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn peer_addr_parses_and_names_bad_parts() {
    let id = tessera::network::peer_id(&iroh::SecretKey::generate().public());
    let text = format!("{id}@127.0.0.1:7000");
    let parsed: PeerAddr = text.parse().expect("valid");
    assert_eq!(parsed.to_string(), text);
    let err = format!("{id}@localhost:7000")
        .parse::<PeerAddr>()
        .expect_err("hostnames are not addresses");
    assert!(
        err.to_string()
            .contains("bad socket address \"localhost:7000\""),
        "{err}"
    );
}
