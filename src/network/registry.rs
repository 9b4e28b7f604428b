//! The link registry: at most one live link per (group, peer), the rules that choose it
//! when two come up, each link's task (and how its end reaches the peer without closing
//! the shared connection), and the re-check of every live link's ticket.
//!
//! # Duplicates and restarts
//! If two links for the same peer and group come up (both sides dialed at once), the one
//! dialed by the smaller peer id wins on both sides and the other is closed as duplicate.
//! A link from another *incarnation* of the peer (a random number each process draws at
//! start and tells in the handshake) always wins: the peer restarted, so the old link
//! goes to a dead process and is closed at once ([`CloseReason::Replaced`]) instead of
//! holding the place until its heartbeats run out.
//!
//! # Tickets
//! Each link keeps the ticket its peer presented and asks the group's validator again every
//! [`LinkConfig::ticket_recheck_interval`](super::LinkConfig::ticket_recheck_interval) and
//! on [`Network::revalidate_tickets`](super::Network::revalidate_tickets); a node renews
//! its own with [`Network::renew_ticket`](super::Network::renew_ticket), sent on its live
//! links of the group. A link whose ticket no longer passes closes with
//! [`CloseReason::TicketRevoked`]; see [`ticket`](super::ticket).

use super::close::{CloseReason, CODE_DUPLICATE, CODE_TICKET};
use super::connection::SharedConn;
use super::group_links::GroupAccess;
use super::handshake::Remote;
use super::link::{new_link, run_link, Link, LinkControl, LinkTickets, PeerExchange};
use super::link_setup::{refuse_stream, reset_stream};
use super::network::{guard, Inner};
use super::ticket::{PeerTicket, Revalidation};
use crate::primitives::{GroupId, PeerId, Short};
use iroh::endpoint::{RecvStream, SendStream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One registered link.
struct Registered {
    /// Tells this link from a later one to the same (group, peer).
    id: u64,
    dialer: PeerId,
    /// The peer's process incarnation on this link.
    incarnation: u64,
    control: Arc<LinkControl>,
    /// The ticket the peer presents on this link, for revalidation.
    ticket: Arc<PeerTicket>,
}

/// The node's links by (group, peer). A link stays registered until its task ends.
#[derive(Default)]
pub(super) struct LinkRegistry {
    links: Mutex<HashMap<(GroupId, PeerId), Registered>>,
    next_id: AtomicU64,
}

impl LinkRegistry {
    /// The control of the registered link to `peer` for `group` (live or closing).
    pub(super) fn control(&self, group: GroupId, peer: PeerId) -> Option<Arc<LinkControl>> {
        guard(&self.links)
            .get(&(group, peer))
            .map(|r| r.control.clone())
    }

    /// Links whose task has not ended (live or closing).
    pub(super) fn count(&self) -> usize {
        guard(&self.links)
            .values()
            .filter(|r| r.control.reason().is_none())
            .count()
    }

    /// Whether a live link to `peer` exists that a new one dialed by `me` would not
    /// replace (see the module docs): then dialing is pointless.
    pub(super) fn held_against(&self, group: GroupId, peer: PeerId, me: PeerId) -> bool {
        guard(&self.links)
            .get(&(group, peer))
            .is_some_and(|r| r.control.reason().is_none() && r.dialer <= me)
    }

    /// Asks each live link's validator about its peer's ticket again and closes the links
    /// whose ticket no longer passes. One validator call per live link, on the caller's
    /// thread, under no lock of the registry's.
    pub(super) fn revalidate(&self, group: GroupId) -> Revalidation {
        let live: Vec<(PeerId, Arc<PeerTicket>, Arc<LinkControl>)> = guard(&self.links)
            .iter()
            .filter(|((g, _), r)| *g == group && r.control.reason().is_none())
            .map(|((_, peer), r)| (*peer, r.ticket.clone(), r.control.clone()))
            .collect();
        let mut report = Revalidation::default();
        for (peer, ticket, control) in live {
            report.checked += 1;
            if let Err(err) = ticket.check() {
                control.request_close(CloseReason::TicketRevoked {
                    reason: err.reason.clone(),
                });
                report.refused.push((peer, err));
            }
        }
        report
    }

    /// Registers `link` for (group, peer) unless a live link there wins; closes the loser
    /// if it is the registered one. Returns the new link's registry id, `None` when the
    /// new link lost. Ids are drawn under the lock, so they follow registration order:
    /// the registered link of a (group, peer) has the largest id of those that won
    /// ([`Link::id`](super::Link::id), which the group relies on).
    fn register(&self, group: GroupId, peer: PeerId, mut link: Registered) -> Option<u64> {
        let mut links = guard(&self.links);
        if let Some(existing) = links.get(&(group, peer)) {
            let live = existing.control.reason().is_none();
            let restarted = existing.incarnation != link.incarnation;
            if live && restarted {
                tracing::info!(peer = %Short(&peer), group = %Short(&group), "peer restarted: replacing its old link");
                existing.control.request_close(CloseReason::Replaced);
            } else if live && link.dialer >= existing.dialer {
                return None;
            } else if live {
                existing.control.request_close(CloseReason::Duplicate);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        link.id = id;
        links.insert((group, peer), link);
        Some(id)
    }

    /// Forgets the link `id` of (group, peer), unless a newer one took its place.
    fn remove(&self, group: GroupId, peer: PeerId, id: u64) {
        let mut links = guard(&self.links);
        if links.get(&(group, peer)).is_some_and(|r| r.id == id) {
            links.remove(&(group, peer));
        }
    }
}

/// Registers a link for (group, peer) on `shared` and spawns its task; `None` if an
/// existing link wins (the new stream is then refused as duplicate, the connection stays).
/// `ours` is the subscription to this node's ticket whose current value the handshake sent.
#[allow(clippy::too_many_arguments)]
pub(super) fn start_link(
    inner: &Arc<Inner>,
    shared: &Arc<SharedConn>,
    send: SendStream,
    recv: RecvStream,
    access: &GroupAccess,
    peer: PeerId,
    dialer: PeerId,
    remote: Remote,
    ours: watch::Receiver<Vec<u8>>,
) -> Option<Link> {
    let group = access.group;
    inner.conns.learned_incarnation(shared, remote.incarnation);
    let ticket = PeerTicket::new(peer, access.validator.clone(), remote.ticket);
    let tickets = LinkTickets {
        peer: ticket.clone(),
        ours,
    };
    let (mut link, parts) = new_link(peer, group, dialer, &access.link, tickets);
    let registered = Registered {
        // Drawn by `register`.
        id: 0,
        dialer,
        incarnation: remote.incarnation,
        control: parts.control.clone(),
        ticket,
    };
    let Some(id) = inner.links.register(group, peer, registered) else {
        tracing::debug!(peer = %Short(&peer), group = %Short(&group), "closing duplicate link");
        let max = inner.max_frame;
        inner.tasks.spawn(refuse_stream(
            send,
            recv,
            CODE_DUPLICATE,
            "duplicate link for this peer and group",
            max,
        ));
        return None;
    };
    link.set_id(id);
    let exchange: Arc<dyn PeerExchange> = inner.clone();
    shared.authenticated(&*exchange);
    let user = shared.user();
    let config = access.link.clone();
    let task_inner = inner.clone();
    let shared = shared.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        let _user = user;
        let control = parts.control.clone();
        let (mut send, mut recv) = (send, recv);
        let ran = run_link(&mut send, &mut recv, peer, &config, inner.max_frame, parts, &shared.life);
        let end = tokio::select! {
            end = ran => Some(end),
            _ = shared.dead.cancelled() => None,
            _ = inner.shutdown.cancelled() => None,
        };
        let reason = match end {
            // The connection went down under the link: its reason is the link's.
            Some(end) if !shared.is_live() => {
                drop(end);
                shared.reason()
            }
            Some(end) => {
                if end.close_sent {
                    let _ = send.finish();
                } else if !matches!(end.reason, CloseReason::ByPeer { .. }) {
                    reset_stream(&mut send, &mut recv, end.reason.code());
                }
                end.reason
            }
            None if inner.shutdown.is_cancelled() => CloseReason::Shutdown,
            None => shared.reason(),
        };
        match &reason {
            CloseReason::Protocol(_)
            | CloseReason::HeartbeatTimeout { .. }
            | CloseReason::TicketRevoked { .. } => {
                tracing::warn!(peer = %Short(&peer), group = %Short(&group), %reason, "link closed")
            }
            CloseReason::ByPeer { code, .. } if *code == u64::from(CODE_TICKET) => {
                tracing::warn!(peer = %Short(&peer), group = %Short(&group), %reason, "link closed")
            }
            _ => tracing::debug!(peer = %Short(&peer), group = %Short(&group), %reason, "link closed"),
        }
        drop((send, recv));
        control.finish(reason);
        inner.links.remove(group, peer, id);
    });
    tracing::debug!(peer = %Short(&peer), group = %Short(&group), dialer = %Short(&dialer), "link up");
    Some(link)
}
