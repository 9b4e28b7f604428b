//! Accepting: the loop that takes incoming connections into the connection table, and the
//! handshake of each stream a peer opens on any connection (`accept_streams`, run by
//! every connection's task, since either side may open a link's stream).
//!
//! Each stream's handshake runs on its own task, bounded by the handshake timeout, at most
//! [`MAX_HANDSHAKES`](super::connection::MAX_HANDSHAKES) at once per connection, so a slow
//! or hostile peer holds nothing else up. A refusal ends that stream alone with a `Close`
//! frame (code and reason) and is logged; the connection and its other links stay. An
//! accepted link goes to its group's queue of new links
//! ([`GroupLinks::next_link`](super::GroupLinks::next_link)); when that queue is full the
//! link is dropped (a group that does not take links is stuck anyway, and the peer's bond
//! retries).

use super::close::CODE_REFUSED;
use super::connection::SharedConn;
use super::handshake::{self, HandshakeError};
use super::link_setup::{binding, our_ticket, refusal_code, refuse_stream, reset_stream, side};
use super::network::{guard, Inner};
use super::peer_addr::PeerAddr;
use super::peers::Source;
use super::registry::start_link;
use crate::primitives::Short;
use iroh::endpoint::{RecvStream, SendStream};
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// Accepts connections until the network shuts down; each joins the connection table.
pub(super) async fn accept_loop(inner: Arc<Inner>) {
    loop {
        let incoming = tokio::select! {
            incoming = inner.endpoint.accept() => incoming,
            _ = inner.shutdown.cancelled() => return,
        };
        let Some(incoming) = incoming else { return };
        let inner = inner.clone();
        let tasks = inner.tasks.clone();
        tasks.spawn(async move {
            let bound = inner.handshake_timeout;
            let work = async {
                match incoming.accept() {
                    Ok(accepting) => match accepting.await {
                        Ok(conn) => Some(conn),
                        Err(err) => {
                            tracing::debug!(error = %err, "incoming connection failed");
                            None
                        }
                    },
                    Err(err) => {
                        tracing::debug!(error = %err, "incoming connection refused by QUIC");
                        None
                    }
                }
            };
            let conn = tokio::select! {
                r = tokio::time::timeout(bound, work) => match r {
                    Ok(conn) => conn,
                    Err(_) => {
                        tracing::warn!(after = ?bound, "incoming connection: QUIC handshake timed out");
                        None
                    }
                },
                _ = inner.shutdown.cancelled() => None,
            };
            if let Some(conn) = conn {
                let peer = super::identity::peer_id(&conn.remote_id());
                tracing::debug!(peer = %Short(&peer), "accepted a connection");
                inner.conns.insert(&inner, conn, peer);
            }
        });
    }
}

/// Takes every stream the peer opens on `shared` and runs its handshake on its own task;
/// returns when the connection ends.
pub(super) async fn accept_streams(inner: &Arc<Inner>, shared: &Arc<SharedConn>) {
    loop {
        let Ok(permit) = shared.handshakes.clone().acquire_owned().await else {
            return;
        };
        let Ok((send, recv)) = shared.conn.accept_bi().await else {
            return;
        };
        let inner = inner.clone();
        let shared = shared.clone();
        let tasks = inner.tasks.clone();
        tasks.spawn(accept_stream(inner, shared, send, recv, permit));
    }
}

/// Runs the accepting side of the handshake on one stream and hands the link to its group.
async fn accept_stream(
    inner: Arc<Inner>,
    shared: Arc<SharedConn>,
    mut send: SendStream,
    mut recv: RecvStream,
    permit: OwnedSemaphorePermit,
) {
    let peer = shared.peer;
    let user = shared.user();
    let bound = inner.handshake_timeout;
    let handshake = async {
        let hello = handshake::read_hello(&mut recv, inner.max_frame).await?;
        if hello.network != inner.network {
            return Err(HandshakeError::WrongNetwork {
                ours: inner.network,
                theirs: hello.network,
            });
        }
        let access = guard(&inner.groups)
            .get(&hello.group)
            .map(|g| g.access.clone())
            .ok_or(HandshakeError::UnknownGroup { group: hello.group })?;
        let (ticket, ours) = our_ticket(&inner, access.group)
            .ok_or(HandshakeError::UnknownGroup { group: hello.group })?;
        let binding = binding(&shared.conn, access.group)?;
        let side = side(&inner, &access, &ticket, peer, binding);
        let remote = handshake::accept(&mut send, &mut recv, hello, &side).await?;
        Ok::<_, HandshakeError>((access, remote, ours))
    };
    let result = tokio::select! {
        r = tokio::time::timeout(bound, handshake) => r,
        _ = inner.shutdown.cancelled() => return,
    };
    drop(permit);
    let (access, remote, ours) = match result {
        Ok(Ok(parts)) => parts,
        Ok(Err(err)) => {
            log_refusal(&inner, &shared, &err);
            if !matches!(err, HandshakeError::Closed { .. }) {
                let code = refusal_code(&err);
                refuse_stream(send, recv, code, &err.to_string(), inner.max_frame).await;
            }
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %Short(&peer), after = ?bound, "refused incoming link: handshake timed out");
            reset_stream(&mut send, &mut recv, CODE_REFUSED);
            return;
        }
    };
    if let Some(listen) = remote.listen {
        guard(&inner.peers).insert(PeerAddr::new(peer, listen), Source::Direct);
    }
    let group = access.group;
    let link = start_link(
        &inner, &shared, send, recv, &access, peer, peer, remote, ours,
    );
    drop(user);
    let Some(link) = link else { return };
    let tx = guard(&inner.groups).get(&group).map(|g| g.links.clone());
    let delivered = match tx {
        Some(tx) => tx.try_send(link).map_err(|err| match err {
            mpsc::error::TrySendError::Full(link) => ("group link queue full", link),
            mpsc::error::TrySendError::Closed(link) => ("group left", link),
        }),
        None => Ok(()),
    };
    if let Err((why, link)) = delivered {
        tracing::warn!(peer = %Short(&peer), group = %Short(&group), why, "dropping accepted link");
        drop(link);
    }
}

/// Logs a refused incoming link (the first of a kind per peer, then rate-limited).
fn log_refusal(inner: &Inner, shared: &SharedConn, err: &HandshakeError) {
    let peer = shared.peer;
    let code = refusal_code(err);
    // A group asked for in this node's first moments may just not be opened yet (a node
    // with a thousand groups opens them after its network is up): debug, not a warning.
    // So may a group it left a moment ago (a node shutting down leaves its groups first).
    let grace = super::dial::ABSENT_GRACE;
    let expected = match err {
        HandshakeError::UnknownGroup { group } => {
            inner.started.elapsed() < grace || guard(&inner.refusals).just_left(group, grace)
        }
        _ => false,
    };
    if expected {
        tracing::debug!(peer = %Short(&peer), reason = %err, "refused incoming link for a group not opened yet or just left");
    } else if guard(&inner.refusals).due(peer, code) {
        if let HandshakeError::UnknownGroup { group } = err {
            tracing::warn!(peer = %Short(&peer), group = %Short(group),
                "refused incoming link: peer {} asked for group {}, which this node does \
                 not host. If it should be a member of this node's group, its settings \
                 differ. {}", Short(&peer), Short(group), inner.mismatch_hint);
        } else {
            tracing::warn!(peer = %Short(&peer), reason = %err, "refused incoming link");
        }
    } else {
        tracing::debug!(peer = %Short(&peer), reason = %err, "refused incoming link (again)");
    }
}
