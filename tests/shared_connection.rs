//! One QUIC connection per pair of nodes (issue 18): many groups' links share it, one
//! link's close or refusal leaves the others up, and a stopped or paused peer ends every
//! link of the connection through one watchdog.
//!
//! Timeouts here are only upper bounds against hangs; no assertion depends on speed.

use std::future::Future;
use std::time::Duration;

use tessera::network::{
    BondError, CloseReason, GroupAccess, GroupLinks, HandshakeError, Link, LinkKey, Network,
    NetworkId, PeerAddr, CODE_NORMAL, CODE_UNKNOWN_GROUP,
};
use tessera::{Digest, GroupId};

const BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {BOUND:?}"),
    }
}

fn gid(i: usize) -> GroupId {
    GroupId(Digest::of(
        format!("shared connection group {i}").as_bytes(),
    ))
}

fn access(i: usize, key: &[u8]) -> GroupAccess {
    GroupAccess::new(gid(i), LinkKey::derive(key))
}

fn key(i: usize) -> Vec<u8> {
    format!("key {i}").into_bytes()
}

/// Fast connection heartbeats (100 ms, 5 missed) and a QUIC idle timeout far beyond
/// them, so a silent peer is caught by the watchdog, not by QUIC.
async fn node() -> Network {
    Network::builder(NetworkId::named("shared-connection-tests"))
        .connect_timeout(Duration::from_secs(3))
        .heartbeat_interval(Duration::from_millis(100))
        .max_missed_heartbeats(5)
        .idle_timeout(Duration::from_secs(60))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .bind()
        .await
        .expect("bind on loopback")
}

async fn ping_pong(a: &mut Link, b: &mut Link) {
    a.send(b"ping".to_vec()).await.expect("send ping");
    assert_eq!(bounded("recv ping", b.recv()).await, Some(b"ping".to_vec()));
    b.send(b"pong".to_vec()).await.expect("send pong");
    assert_eq!(bounded("recv pong", a.recv()).await, Some(b"pong".to_vec()));
}

/// Joins groups `range` on `n` with their own keys.
fn join_all(n: &Network, range: std::ops::Range<usize>) -> Vec<GroupLinks> {
    range
        .map(|i| n.join(access(i, &key(i))).expect("join"))
        .collect()
}

/// Dials `to` for every group of `from` at once (each on its own task); returns the
/// group handles and their links, in order.
async fn dial_all(from: Vec<GroupLinks>, addr: PeerAddr) -> (Vec<GroupLinks>, Vec<Link>) {
    let tasks: Vec<_> = from
        .into_iter()
        .map(|g| {
            tokio::spawn(async move {
                let link = g.connect_addr(addr).await;
                (g, link)
            })
        })
        .collect();
    let mut groups = Vec::new();
    let mut links = Vec::new();
    for task in tasks {
        let (g, link) = bounded("dial", task).await.expect("join");
        links.push(link.expect("bond"));
        groups.push(g);
    }
    (groups, links)
}

async fn accept_all(groups: &mut [GroupLinks]) -> Vec<Link> {
    let mut links = Vec::new();
    for g in groups {
        links.push(bounded("accept", g.next_link()).await.expect("link"));
    }
    links
}

/// Waits until `cond` holds, polling; panics after [`BOUND`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    bounded(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn many_groups_between_two_nodes_share_one_connection_and_idle_links_cost_nothing() {
    const GROUPS: usize = 60;
    let a = node().await;
    let b = node().await;
    let ga = join_all(&a, 0..GROUPS);
    let mut gb = join_all(&b, 0..GROUPS);
    // Every group dials at once: they share one connect.
    let (_ga, mut out) = dial_all(ga, b.local_addr()).await;
    let mut inc = accept_all(&mut gb).await;
    assert_eq!(
        a.open_connections(),
        1,
        "one connection for {GROUPS} groups"
    );
    assert_eq!(b.open_connections(), 1);
    assert_eq!(a.live_links(), GROUPS);
    assert_eq!(b.live_links(), GROUPS);
    for (o, i) in out.iter_mut().zip(inc.iter_mut()).step_by(7) {
        assert_eq!(o.group(), i.group());
        ping_pong(o, i).await;
    }
    // Idle: heartbeats are per connection. One per link and interval would be about
    // GROUPS × 10 in a second; the connection sends at most about 20 (one per half
    // interval), whatever the number of groups.
    let before = a.heartbeats_sent();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = a.heartbeats_sent() - before;
    assert!(
        sent <= 25,
        "{sent} heartbeats in 1 s for {GROUPS} idle links"
    );
    assert!(out.iter().all(|l| l.close_reason().is_none()));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn both_sides_dialing_at_once_make_at_most_two_connections() {
    const GROUPS: usize = 20;
    let a = node().await;
    let b = node().await;
    let mut ga = join_all(&a, 0..GROUPS);
    let mut gb = join_all(&b, 0..GROUPS);
    // A dials the first half, B the second half, at the same time.
    let gb_dial: Vec<GroupLinks> = gb.drain(GROUPS / 2..).collect();
    let ga_dial: Vec<GroupLinks> = ga.drain(..GROUPS / 2).collect();
    let (from_a, from_b) = tokio::join!(
        dial_all(ga_dial, b.local_addr()),
        dial_all(gb_dial, a.local_addr())
    );
    let (_ga_dial, mut a_out) = from_a;
    let (_gb_dial, mut b_out) = from_b;
    let mut b_in = accept_all(&mut gb).await;
    let mut a_in = accept_all(&mut ga).await;
    assert!(a.open_connections() <= 2, "{}", a.open_connections());
    assert!(b.open_connections() <= 2, "{}", b.open_connections());
    for (o, i) in a_out.iter_mut().zip(b_in.iter_mut()) {
        ping_pong(o, i).await;
    }
    for (o, i) in b_out.iter_mut().zip(a_in.iter_mut()) {
        ping_pong(o, i).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_link_closed_by_one_group_leaves_the_other_groups_up() {
    let a = node().await;
    let b = node().await;
    let ga = join_all(&a, 0..3);
    let mut gb = join_all(&b, 0..3);
    let (_ga, mut out) = dial_all(ga, b.local_addr()).await;
    let mut inc = accept_all(&mut gb).await;
    out[1].close();
    let reason = bounded("b sees group 1 close", inc[1].closed()).await;
    assert_eq!(
        reason,
        CloseReason::ByPeer {
            code: u64::from(CODE_NORMAL),
            reason: "closed locally".into()
        },
        "the peer gets the code and reason of a link's close"
    );
    for i in [0, 2] {
        assert!(out[i].close_reason().is_none() && inc[i].close_reason().is_none());
        ping_pong(&mut out[i], &mut inc[i]).await;
    }
    assert_eq!(a.open_connections(), 1);
    assert_eq!(b.open_connections(), 1);
    eventually("a counts two links", || a.live_links() == 2).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_stopped_peer_ends_every_link_of_the_connection() {
    let a = node().await;
    let b = node().await;
    let ga = join_all(&a, 0..5);
    let mut gb = join_all(&b, 0..5);
    let (_ga, out) = dial_all(ga, b.local_addr()).await;
    let _inc = accept_all(&mut gb).await;
    b.shutdown().await;
    drop(gb);
    for link in &out {
        let reason = bounded("link ends with its peer", link.closed()).await;
        assert!(!matches!(reason, CloseReason::Protocol(_)), "{reason}");
    }
    eventually("a forgets the connection", || a.open_connections() == 0).await;
    assert_eq!(a.live_links(), 0);
    a.shutdown().await;
}

/// B runs on its own runtime thread, which then blocks: B answers nothing (not even QUIC
/// acks) while its connection stays open. A's one watchdog ends every link to B.
#[tokio::test]
async fn a_paused_peer_ends_every_link_of_the_connection_through_the_watchdog() {
    const GROUPS: usize = 5;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (pause_tx, pause_rx) = std::sync::mpsc::channel::<()>();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let b = node().await;
            let mut gb = join_all(&b, 0..GROUPS);
            let _ = addr_tx.send(b.local_addr());
            let _inc = accept_all(&mut gb).await;
            let _ = tokio::task::spawn_blocking(move || pause_rx.recv()).await;
            // Blocks this runtime's only thread: B is paused.
            let _ = resume_rx.recv();
            b.shutdown().await;
        });
    });
    let a = node().await;
    let addr = bounded("b starts", addr_rx).await.expect("b's address");
    let ga = join_all(&a, 0..GROUPS);
    let (_ga, out) = dial_all(ga, addr).await;
    assert_eq!(a.open_connections(), 1);
    pause_tx.send(()).expect("pause b");
    for link in &out {
        let reason = bounded("the watchdog ends the link", link.closed()).await;
        assert!(
            matches!(reason, CloseReason::HeartbeatTimeout { missed: 5, .. }),
            "{reason}"
        );
    }
    eventually("a forgets the connection", || a.open_connections() == 0).await;
    resume_tx.send(()).expect("resume b");
    peer.join().expect("b's thread");
    a.shutdown().await;
}

#[tokio::test]
async fn a_peer_with_one_groups_key_is_refused_for_another_on_the_shared_connection() {
    let server = node().await;
    let mut served = join_all(&server, 0..3);
    // The client holds group 0's key only; it tries that key for group 1.
    let client = node().await;
    let c0 = client.join(access(0, &key(0))).expect("join");
    let c1 = client.join(access(1, &key(0))).expect("join");
    let mut out0 = bounded("bond group 0", c0.connect_addr(server.local_addr()))
        .await
        .expect("group 0 bonds");
    let mut in0 = bounded("accept group 0", served[0].next_link())
        .await
        .expect("link");
    ping_pong(&mut out0, &mut in0).await;
    // The client dials group 1 on the same connection: the server's proof (made with
    // group 1's key) fails on the client's side, which refuses.
    let err = bounded("dial group 1", c1.connect_addr(server.local_addr()))
        .await
        .expect_err("no key for group 1");
    assert!(
        matches!(&err, BondError::Handshake { source: HandshakeError::BadProof { peer }, .. } if *peer == server.peer_id()),
        "{err}"
    );
    // The server dials the client for group 1: the client's proof (group 0's key) fails
    // on the server's side, with a reason that says so.
    let err = bounded(
        "server dials group 1",
        served[1].connect_addr(client.local_addr()),
    )
    .await
    .expect_err("the client has no key for group 1");
    assert!(
        matches!(&err, BondError::Handshake { source: HandshakeError::BadProof { peer }, .. } if *peer == client.peer_id()),
        "{err}"
    );
    assert!(
        err.to_string().contains("failed the group key proof"),
        "{err}"
    );
    // A group the server does not host is refused with its code, on a stream alone.
    let c9 = client.join(access(9, &key(0))).expect("join");
    let err = bounded("dial group 9", c9.connect_addr(server.local_addr()))
        .await
        .expect_err("unknown group");
    assert!(
        matches!(&err, BondError::Refused { code, reason, .. }
            if *code == u64::from(CODE_UNKNOWN_GROUP) && reason.contains("unknown group")),
        "{err}"
    );
    // Group 0's link lives on, on the one connection.
    ping_pong(&mut out0, &mut in0).await;
    assert!(out0.close_reason().is_none() && in0.close_reason().is_none());
    assert_eq!(client.open_connections(), 1);
    assert_eq!(server.open_connections(), 1);
    assert_eq!(client.live_links(), 1);
    client.shutdown().await;
    server.shutdown().await;
}
