//! Tickets on live bonds, over real networks on loopback: a bond ends when the validator
//! starts refusing the peer's ticket (a revocation and a revalidation call; an expiry
//! caught by the periodic check), a renewed ticket that passes keeps the bond and one that
//! fails ends it, a refused peer cannot bond again while refused and bonds again once its
//! ticket passes; and in a group, a revoked member is unbonded and stops receiving entries
//! until its ticket passes again.
//!
//! Timeouts here are only upper bounds against hangs; no assertion depends on timing.

mod common;
use common::bounded;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera::groups::{ConsensusConfig, Group, GroupBuilder, GroupKey, Index};
use tessera::network::{
    BondError, CloseReason, GroupAccess, GroupLinks, Link, LinkConfig, LinkKey, Network, NetworkId,
    TicketError, TicketValidator, CODE_REFUSED, CODE_TICKET,
};
use tessera::store::{KvCommand, KvMachine};
use tessera::{Digest, GroupId, PeerId};

/// Bound on one step, in seconds.
const BOUND: u64 = 30;

fn net() -> NetworkId {
    NetworkId::named("tessera-ticket-tests")
}

fn group() -> GroupId {
    GroupId(Digest::of(b"ticket test group"))
}

/// Re-checks every 100 ms, so an expiry ends a bond soon.
const QUICK_RECHECK: Duration = Duration::from_millis(100);

/// Re-checks once an hour: within a test only an explicit revalidation (or a renewal)
/// asks the validator again, so it is the one that ends the bond.
const NO_RECHECK: Duration = Duration::from_secs(3600);

fn access(recheck: Duration) -> GroupAccess {
    GroupAccess::new(group(), LinkKey::derive(b"key")).with_link_config(LinkConfig {
        heartbeat_interval: Duration::from_millis(200),
        ticket_recheck_interval: recheck,
        ..LinkConfig::default()
    })
}

async fn node() -> Network {
    Network::builder(net())
        .connect_timeout(Duration::from_secs(3))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(300))
        .bind()
        .await
        .expect("bind on loopback")
}

/// An application's revocation list: tickets are names, a revoked name is refused.
/// Counts refusals, so a test can see redials being refused.
#[derive(Clone, Default)]
struct Revocations {
    revoked: Arc<Mutex<HashSet<Vec<u8>>>>,
    refusals: Arc<AtomicUsize>,
}

impl Revocations {
    fn revoke(&self, ticket: &[u8]) {
        self.revoked.lock().expect("list").insert(ticket.to_vec());
    }

    fn restore(&self, ticket: &[u8]) {
        self.revoked.lock().expect("list").remove(ticket);
    }

    fn refusals(&self) -> usize {
        self.refusals.load(Ordering::SeqCst)
    }
}

impl TicketValidator for Revocations {
    fn validate(&self, _peer: PeerId, ticket: &[u8]) -> Result<(), TicketError> {
        let refused = if ticket.is_empty() {
            Some("no ticket".to_string())
        } else if self.revoked.lock().expect("list").contains(ticket) {
            Some(format!(
                "ticket {} is revoked",
                String::from_utf8_lossy(ticket)
            ))
        } else {
            None
        };
        match refused {
            Some(reason) => {
                self.refusals.fetch_add(1, Ordering::SeqCst);
                Err(TicketError::new(reason))
            }
            None => Ok(()),
        }
    }
}

/// Waits for `links` to deliver a link from `peer` (older ones from it are dropped).
async fn link_from(links: &mut GroupLinks, peer: PeerId) -> Link {
    bounded("link from the peer", BOUND, async {
        loop {
            let link = links.next_link().await.expect("network up");
            if link.peer() == peer {
                return link;
            }
        }
    })
    .await
}

async fn ping(from: &Link, to: &mut Link) {
    from.send(b"ping".to_vec()).await.expect("send");
    assert_eq!(
        bounded("recv", BOUND, to.recv()).await,
        Some(b"ping".to_vec())
    );
}

/// The close a refused peer sees: the validator side's code and reason.
fn assert_closed_by_ticket(reason: &CloseReason, validator_reason: &str) {
    match reason {
        CloseReason::ByPeer { code, reason } => {
            assert_eq!(*code, u64::from(CODE_TICKET), "{reason}");
            assert_eq!(
                reason,
                &format!("ticket no longer accepted: {validator_reason}")
            );
        }
        other => panic!("expected the peer's ticket close, got {other}"),
    }
}

#[tokio::test]
async fn revocation_ends_a_live_bond_and_the_peer_bonds_again_once_restored() {
    let list = Revocations::default();
    let b = node().await;
    let mut gb = b
        .join(access(NO_RECHECK).require_ticket(list.clone()))
        .expect("join b");
    let a = node().await;
    let mut ga = a
        .join(access(NO_RECHECK).with_ticket(b"alice".to_vec()))
        .expect("join a");
    a.add_peer(b.local_addr());
    ga.maintain(b.peer_id());
    let out = link_from(&mut ga, b.peer_id()).await;
    let mut inc = link_from(&mut gb, a.peer_id()).await;
    assert_eq!(
        inc.peer_ticket(),
        b"alice".to_vec(),
        "the link keeps the ticket"
    );
    ping(&out, &mut inc).await;

    // Nothing revoked yet: revalidation checks the link and keeps it.
    let report = b.revalidate_tickets(group()).expect("joined");
    assert_eq!((report.checked, report.refused.len()), (1, 0));
    ping(&out, &mut inc).await;

    list.revoke(b"alice");
    let report = b.revalidate_tickets(group()).expect("joined");
    assert_eq!(report.checked, 1);
    assert_eq!(
        report.refused,
        vec![(a.peer_id(), TicketError::new("ticket alice is revoked"))]
    );
    assert_eq!(
        bounded("b closes", BOUND, inc.closed()).await,
        CloseReason::TicketRevoked {
            reason: "ticket alice is revoked".into()
        }
    );
    assert_closed_by_ticket(
        &bounded("a sees the close", BOUND, out.closed()).await,
        "ticket alice is revoked",
    );

    // A's maintained bond redials with back-off and is refused in the handshake.
    let before = list.refusals();
    bounded("redials are refused", BOUND, async {
        while list.refusals() < before + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let err = bounded("explicit dial", BOUND, ga.connect_addr(b.local_addr()))
        .await
        .expect_err("a revoked ticket is refused");
    assert!(
        matches!(&err, BondError::Refused { code, reason, .. }
            if *code == u64::from(CODE_REFUSED) && reason.contains("ticket alice is revoked")),
        "{err}"
    );

    // Restored: the maintained bond comes back by itself.
    list.restore(b"alice");
    let out = link_from(&mut ga, b.peer_id()).await;
    let mut inc = link_from(&mut gb, a.peer_id()).await;
    ping(&out, &mut inc).await;
    a.shutdown().await;
    b.shutdown().await;
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// Tickets `exp=<unix ms>`, refused once the time is past (a JWT's `exp`, in small).
fn expiring(_peer: PeerId, ticket: &[u8]) -> Result<(), TicketError> {
    let exp: u128 = std::str::from_utf8(ticket)
        .ok()
        .and_then(|t| t.strip_prefix("exp="))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| TicketError::new("malformed ticket"))?;
    if now_ms() >= exp {
        return Err(TicketError::new(format!("ticket expired at {exp}")));
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_ticket_ends_the_bond_through_the_periodic_check() {
    let b = node().await;
    let mut gb = b
        .join(access(QUICK_RECHECK).require_ticket(expiring))
        .expect("join b");
    let a = node().await;
    // Valid for three seconds: long enough to bond, short enough to wait for.
    let exp = now_ms() + 3000;
    let ga = a
        .join(access(QUICK_RECHECK).with_ticket(format!("exp={exp}").into_bytes()))
        .expect("join a");
    let out = bounded("connect", BOUND, ga.connect_addr(b.local_addr()))
        .await
        .expect("a ticket not yet expired bonds");
    let mut inc = link_from(&mut gb, a.peer_id()).await;
    ping(&out, &mut inc).await;
    // No call from anyone: the periodic check notices the expiry.
    let why = format!("ticket expired at {exp}");
    assert_eq!(
        bounded("b closes on expiry", BOUND, inc.closed()).await,
        CloseReason::TicketRevoked {
            reason: why.clone()
        }
    );
    assert_closed_by_ticket(&bounded("a sees it", BOUND, out.closed()).await, &why);
    let err = bounded("redial", BOUND, ga.connect_addr(b.local_addr()))
        .await
        .expect_err("an expired ticket is refused in the handshake");
    assert!(
        matches!(&err, BondError::Refused { reason, .. } if reason.contains(&why)),
        "{err}"
    );
    // A fresh ticket bonds again.
    a.renew_ticket(group(), format!("exp={}", now_ms() + 60_000).into_bytes())
        .expect("joined");
    let out = bounded("connect", BOUND, ga.connect_addr(b.local_addr()))
        .await
        .expect("a renewed ticket bonds");
    let mut inc = link_from(&mut gb, a.peer_id()).await;
    ping(&out, &mut inc).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// B accepts tickets that start with "good".
fn good(_peer: PeerId, ticket: &[u8]) -> Result<(), TicketError> {
    if ticket.starts_with(b"good") {
        Ok(())
    } else {
        Err(TicketError::new(format!(
            "{:?} is not good",
            String::from_utf8_lossy(ticket)
        )))
    }
}

#[tokio::test]
async fn a_renewed_ticket_keeps_the_bond_if_it_passes_and_ends_it_if_not() {
    let b = node().await;
    let mut gb = b
        .join(access(QUICK_RECHECK).require_ticket(good))
        .expect("join b");
    let a = node().await;
    let ga = a
        .join(access(QUICK_RECHECK).with_ticket(b"good 1".to_vec()))
        .expect("join a");
    let out = bounded("connect", BOUND, ga.connect_addr(b.local_addr()))
        .await
        .expect("bond");
    let mut inc = link_from(&mut gb, a.peer_id()).await;
    assert_eq!(inc.peer_ticket(), b"good 1".to_vec());

    a.renew_ticket(group(), b"good 2".to_vec()).expect("joined");
    // The renewal goes out before any later data on the link, so once this ping is read
    // the renewal was handled.
    ping(&out, &mut inc).await;
    assert_eq!(
        inc.peer_ticket(),
        b"good 2".to_vec(),
        "the bond kept, ticket replaced"
    );
    assert!(inc.close_reason().is_none() && out.close_reason().is_none());
    let report = b.revalidate_tickets(group()).expect("joined");
    assert_eq!((report.checked, report.refused.len()), (1, 0));

    a.renew_ticket(group(), b"bad 3".to_vec()).expect("joined");
    let why = "\"bad 3\" is not good";
    assert_eq!(
        bounded("b refuses the renewal", BOUND, inc.closed()).await,
        CloseReason::TicketRevoked { reason: why.into() }
    );
    assert_closed_by_ticket(&bounded("a sees it", BOUND, out.closed()).await, why);
    // New links present the renewed ticket: refused while it fails.
    let err = bounded("redial", BOUND, ga.connect_addr(b.local_addr()))
        .await
        .expect_err("a bad ticket is refused");
    assert!(
        matches!(&err, BondError::Refused { reason, .. } if reason.contains(why)),
        "{err}"
    );
    a.renew_ticket(group(), b"good 4".to_vec()).expect("joined");
    let out = bounded("connect", BOUND, ga.connect_addr(b.local_addr()))
        .await
        .expect("a good ticket bonds");
    let mut inc = link_from(&mut gb, a.peer_id()).await;
    assert_eq!(inc.peer_ticket(), b"good 4".to_vec());
    ping(&out, &mut inc).await;
    // Neither call works for a group this node has not joined.
    let other = GroupId(Digest::of(b"not joined"));
    assert!(a.renew_ticket(other, b"x".to_vec()).is_err());
    assert!(b.revalidate_tickets(other).is_err());
    a.shutdown().await;
    b.shutdown().await;
}

fn consensus() -> ConsensusConfig {
    common::loopback_consensus(Duration::from_secs(2))
}

struct Member {
    network: Network,
    group: Group<KvMachine>,
}

async fn member(name: &str, list: &Revocations, peers: &[tessera::network::PeerAddr]) -> Member {
    let network = Network::builder(net())
        .bootstrap(peers.iter().copied())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(300))
        .bind()
        .await
        .expect("bind");
    let group = GroupBuilder::new(&network)
        .with_key(GroupKey::from_secret("ticket group test"))
        .with_state_machine(KvMachine::default())
        .with_consensus_config(consensus())
        .require_ticket(list.clone())
        .with_ticket(name.as_bytes().to_vec())
        .with_ticket_recheck_interval(NO_RECHECK)
        .in_memory()
        .join()
        .expect("join");
    Member { network, group }
}

async fn put(group: &Group<KvMachine>, key: &str) -> Index {
    bounded("write", BOUND, async {
        loop {
            let cmd = KvCommand::Put {
                key: key.into(),
                value: b"v".to_vec(),
            };
            match group.execute(cmd).await {
                Ok(index) => return index,
                // A new leader may still be taking over: retry.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
}

async fn applied(m: &Member, index: Index) {
    bounded("applied", BOUND, m.group.when().applied_reaches(index))
        .await
        .expect("group running");
}

#[tokio::test]
async fn a_revoked_member_is_unbonded_and_gets_no_entries_until_restored() {
    // One revocation list for the whole deployment (each node consults it).
    let list = Revocations::default();
    let first = member("a", &list, &[]).await;
    let seed = [first.network.local_addr()];
    let members = vec![
        first,
        member("b", &list, &seed).await,
        member("c", &list, &seed).await,
    ];
    let ids: Vec<PeerId> = members.iter().map(|m| m.network.peer_id()).collect();
    let index = put(&members[0].group, "before").await;
    for m in &members {
        applied(m, index).await;
    }

    // The application revokes c's ticket and asks every node to re-check its bonds.
    list.revoke(b"c");
    let mut refused = Vec::new();
    for m in &members {
        let report = m.group.revalidate_tickets().expect("joined");
        refused.extend(report.refused.into_iter().map(|(peer, _)| peer));
    }
    assert!(
        refused.contains(&ids[2]),
        "a and b refuse c's ticket: {refused:?}"
    );
    assert!(!refused.contains(&ids[0]) && !refused.contains(&ids[1]));
    let (a, b, c) = (&members[0], &members[1], &members[2]);
    bounded("c is unbonded everywhere", BOUND, async {
        loop {
            let c_alone = c.group.status().bonded.is_empty();
            let others = [a, b]
                .iter()
                .all(|m| !m.group.status().bonded.contains(&ids[2]));
            if c_alone && others {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // a and b carry on (a majority of three); c has no bond, and every redial is refused
    // by the validators on both ends, so it cannot receive this entry.
    let index = put(&a.group, "during").await;
    applied(a, index).await;
    applied(b, index).await;
    let status = c.group.status();
    assert!(status.bonded.is_empty(), "{:?}", status.bonded);
    assert!(
        status.applied < index,
        "c applied {:?} while revoked (entry at {index:?})",
        status.applied
    );

    // Restored: c's maintained bonds come back and it catches up.
    list.restore(b"c");
    applied(c, index).await;
    for m in members {
        m.group.shutdown().await;
        m.network.shutdown().await;
    }
}
