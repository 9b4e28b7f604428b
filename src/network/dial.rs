//! Dialing: one attempt ([`dial`]): a new stream on the connection shared with the peer
//! (connecting first only when there is none, see `conns.rs`), and the bond that keeps a
//! link to a peer up ([`maintain`]).
//!
//! # Bonds
//! [`GroupLinks::maintain`](super::GroupLinks::maintain) keeps a link to a peer up: it
//! dials (address from the peer table), waits while a link exists, and redials with
//! bounded exponential back-off after a failure or a close. Links it makes, and every link
//! accepted for the group, come out of
//! [`GroupLinks::next_link`](super::GroupLinks::next_link). A peer that answers "I do not
//! host this group" is remembered as absent until a dial succeeds.

use super::backoff::Backoff;
use super::close::{CloseReason, CODE_REFUSED, CODE_UNKNOWN_GROUP};
use super::connection::SharedConn;
use super::error::BondError;
use super::group_links::GroupAccess;
use super::handshake::{self, HandshakeError};
use super::link::Link;
use super::link_setup::{binding, our_ticket, refusal_code, refuse_stream, reset_stream, side};
use super::names::{self, Every};
use super::network::{guard, Inner};
use super::peer_addr::PeerAddr;
use super::peers::Source;
use super::registry::start_link;
use crate::primitives::{GroupId, PeerId, Short};
use iroh::endpoint::{ConnectionError, RecvStream, SendStream};
use std::sync::Arc;

/// Dials `addr` for `access`'s group and runs the handshake on a new stream of the
/// connection to the peer (made now only if there is none); registers the link.
pub(super) async fn dial(
    inner: &Arc<Inner>,
    access: &GroupAccess,
    addr: PeerAddr,
) -> Result<Link, BondError> {
    let peer = addr.id;
    if peer == inner.local.id {
        return Err(BondError::SelfBond);
    }
    // A live link that a new one would not replace (see the registry): do not even dial.
    if inner.links.held_against(access.group, peer, inner.local.id) {
        return Err(BondError::Duplicate {
            peer,
            group: access.group,
        });
    }
    let (ticket, ours) = our_ticket(inner, access.group).ok_or(BondError::Shutdown)?;
    let shared = inner.conns.connection(inner, addr).await?;
    // Keeps the connection from lingering out while the handshake runs.
    let _user = shared.user();
    let conn = &shared.conn;
    let (mut send, mut recv) =
        match tokio::time::timeout(inner.handshake_timeout, conn.open_bi()).await {
            Ok(Ok(streams)) => streams,
            Ok(Err(source)) => {
                return Err(BondError::Connection {
                    peer,
                    source: Box::new(source),
                })
            }
            Err(_) => {
                return Err(BondError::Timeout {
                    peer,
                    what: "opening a stream",
                    after: inner.handshake_timeout,
                })
            }
        };
    let handshake = async {
        let binding = binding(conn, access.group)?;
        let side = side(inner, access, &ticket, peer, binding);
        handshake::dial(&mut send, &mut recv, &side).await
    };
    let remote = match tokio::time::timeout(inner.handshake_timeout, handshake).await {
        Ok(Ok(remote)) => remote,
        Ok(Err(err)) => {
            let err = refused_or(inner, &shared, send, recv, err).await;
            if !matches!(err, BondError::Refused { .. }) {
                tracing::warn!(peer = %Short(&peer), group = %Short(&access.group), reason = %err, "bond refused");
            }
            return Err(err);
        }
        Err(_) => {
            reset_stream(&mut send, &mut recv, CODE_REFUSED);
            // Nothing at all from the peer for that long, heartbeats included: the
            // connection goes to a dead process; close it so the next dial connects anew.
            let silent = shared.life.silent_for();
            if silent >= inner.handshake_timeout.max(inner.heartbeat.interval * 2) {
                shared.close(&CloseReason::Transport(format!(
                    "nothing from the peer for {silent:?}, a handshake unanswered"
                )));
            }
            return Err(BondError::Timeout {
                peer,
                what: "handshake",
                after: inner.handshake_timeout,
            });
        }
    };
    {
        let mut table = guard(&inner.peers);
        table.insert(addr, Source::Direct);
        if let Some(listen) = remote.listen {
            table.insert(PeerAddr::new(peer, listen), Source::Direct);
        }
    }
    start_link(
        inner,
        &shared,
        send,
        recv,
        access,
        peer,
        inner.local.id,
        remote,
        ours,
    )
    .ok_or(BondError::Duplicate {
        peer,
        group: access.group,
    })
}

/// The error for a failed dialer handshake: the peer's refusal if it sent one (a `Close`
/// frame on the stream, or the connection's close), else our own complaint, sent to the
/// peer on the stream as we end it.
async fn refused_or(
    inner: &Inner,
    shared: &SharedConn,
    send: SendStream,
    recv: RecvStream,
    err: HandshakeError,
) -> BondError {
    let peer = shared.peer;
    if let HandshakeError::Closed { code, reason } = err {
        return BondError::Refused { peer, code, reason };
    }
    if let Some(ConnectionError::ApplicationClosed(close)) = shared.conn.close_reason() {
        return BondError::Refused {
            peer,
            code: close.error_code.into_inner(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        };
    }
    refuse_stream(
        send,
        recv,
        refusal_code(&err),
        &err.to_string(),
        inner.max_frame,
    )
    .await;
    BondError::Handshake { peer, source: err }
}

/// How long a peer may answer that it does not host a group before it is warned about
/// (see `maintain`).
pub(super) const ABSENT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Says, on this node's side, that `peer` refused it and why (the first refusal, then
/// every [`WARN_EVERY`](super::names::WARN_EVERY) while they go on): a node with the wrong
/// group key or settings would otherwise wait for ever in silence.
fn warn_refused(
    inner: &Inner,
    group: GroupId,
    peer: PeerId,
    addr: Option<PeerAddr>,
    code: u64,
    reason: &str,
) {
    let at = addr.map(|a| a.addr.to_string()).unwrap_or_default();
    if code == u64::from(CODE_UNKNOWN_GROUP) {
        tracing::warn!(
            peer = %Short(&peer), %at, group = %Short(&group), %reason,
            "peer {} refused this node: it does not host this node's group {}. If it is a \
             member of the group this node should join, this node's settings differ from \
             the group's. {}",
            Short(&peer), Short(&group), inner.mismatch_hint
        );
    } else if code == u64::from(CODE_REFUSED) {
        tracing::warn!(
            peer = %Short(&peer), %at, group = %Short(&group), %reason,
            "peer {} refused this node: {reason}", Short(&peer)
        );
    }
}

/// Keeps a link to `peer` for `group` up until the group is left (see the module docs).
pub(super) async fn maintain(inner: Arc<Inner>, group: GroupId, peer: PeerId) {
    let mut backoff = Backoff::new(inner.backoff.0, inner.backoff.1);
    let mut refused = Every::default();
    // Since when the peer has answered "I do not host this group" without a break.
    let mut absent_since: Option<std::time::Instant> = None;
    loop {
        if let Some(control) = inner.links.control(group, peer) {
            control.closed().await;
            tokio::time::sleep(backoff.next_jittered()).await;
            continue;
        }
        let Some(access) = guard(&inner.groups).get(&group).map(|g| g.access.clone()) else {
            return;
        };
        let addr = match names::resolve_for_dial(&inner, peer).await {
            Some(addr) => Some(addr),
            None => guard(&inner.peers).get(&peer),
        };
        let result = match addr {
            // Boxed: a maintained bond waits on its link for most of its life, and the
            // dial's state (handshake futures, ~5 KB) would otherwise sit in every one of
            // them (2,000 per node with 1,000 groups and two peers).
            Some(addr) => Box::pin(dial(&inner, &access, addr)).await,
            None => Err(BondError::UnknownPeer { peer }),
        };
        let absent = matches!(
            result,
            Err(BondError::Refused { code, .. }) if code == u64::from(CODE_UNKNOWN_GROUP)
        );
        if let Some(entry) = guard(&inner.groups).get(&group) {
            let mut set = guard(&entry.absent);
            if absent {
                set.insert(peer);
            } else if result.is_ok() {
                set.remove(&peer);
            }
        }
        if absent {
            absent_since.get_or_insert_with(std::time::Instant::now);
        } else {
            absent_since = None;
        }
        if let Err(BondError::Refused { code, reason, .. }) = &result {
            // A peer that does not host the group *yet* is normal while nodes start (the
            // other node is still opening its groups; with a thousand groups that was a
            // thousand lines): said at debug until it lasts `ABSENT_GRACE`.
            let starting = absent_since.is_some_and(|t| t.elapsed() < ABSENT_GRACE);
            if starting {
                tracing::debug!(peer = %Short(&peer), group = %Short(&group), %reason, "peer does not host the group (yet)");
            } else if refused.due() {
                warn_refused(&inner, group, peer, addr, *code, reason);
            }
        }
        match result {
            Ok(link) => {
                backoff.reset();
                refused.reset();
                let control = inner.links.control(group, peer);
                let tx = guard(&inner.groups).get(&group).map(|g| g.links.clone());
                let Some(tx) = tx else { return };
                if tx.send(link).await.is_err() {
                    return;
                }
                if let Some(control) = control {
                    control.closed().await;
                }
                tokio::time::sleep(backoff.next_jittered()).await;
            }
            Err(err) => {
                let delay = backoff.next_jittered();
                tracing::debug!(peer = %Short(&peer), group = %Short(&group), error = %err, retry_in = ?delay, "bond attempt failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
