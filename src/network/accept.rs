//! Accepting: the loop that takes incoming connections, and the handshake of each.
//!
//! Incoming connections are handled each on its own task, bounded by the handshake
//! timeout, so a slow or hostile peer holds nothing else up; every refusal closes that
//! connection with a code and a reason and logs them. An accepted link goes to its group's
//! queue of new links ([`GroupLinks::next_link`](super::GroupLinks::next_link)); when that
//! queue is full the link is dropped (a group that does not take links is stuck anyway,
//! and the peer's bond retries).

use super::frame::FrameError;
use super::handshake::{self, HandshakeError};
use super::identity;
use super::link_setup::{binding, close, our_ticket, refusal_code, side};
use super::network::{guard, Inner};
use super::peer_addr::PeerAddr;
use super::peers::Source;
use super::registry::start_link;
use crate::primitives::Short;
use iroh::endpoint::Connection;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Accepts connections until the network shuts down.
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
                let conn = match incoming.accept() {
                    Ok(accepting) => match accepting.await {
                        Ok(conn) => conn,
                        Err(err) => {
                            tracing::debug!(error = %err, "incoming connection failed");
                            return;
                        }
                    },
                    Err(err) => {
                        tracing::debug!(error = %err, "incoming connection refused by QUIC");
                        return;
                    }
                };
                accept_link(&inner, conn).await;
            };
            tokio::select! {
                r = tokio::time::timeout(bound, work) => if r.is_err() {
                    tracing::warn!(after = ?bound, "refused incoming link: handshake timed out");
                },
                _ = inner.shutdown.cancelled() => {}
            }
        });
    }
}

/// Runs the accepting side of the handshake on `conn` and hands the link to its group.
async fn accept_link(inner: &Arc<Inner>, conn: Connection) {
    let peer = identity::peer_id(&conn.remote_id());
    let result = async {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|err| {
            HandshakeError::Frame(FrameError::Io {
                action: "accept stream",
                source: std::io::Error::other(err),
            })
        })?;
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
        let (ticket, ours) = our_ticket(inner, access.group)
            .ok_or(HandshakeError::UnknownGroup { group: hello.group })?;
        let binding = binding(&conn, access.group)?;
        let side = side(inner, &access, &ticket, peer, binding);
        let remote = handshake::accept(&mut send, &mut recv, hello, &side).await?;
        Ok::<_, HandshakeError>((send, recv, access, remote, ours))
    }
    .await;
    let (send, recv, access, remote, ours) = match result {
        Ok(parts) => parts,
        Err(err) => {
            let code = refusal_code(&err);
            if guard(&inner.refusals).due(peer, code) {
                if let HandshakeError::UnknownGroup { group } = &err {
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
            close(&conn, code, &err.to_string());
            return;
        }
    };
    if let Some(listen) = remote.listen {
        guard(&inner.peers).insert(PeerAddr::new(peer, listen), Source::Direct);
    }
    let group = access.group;
    let Some(link) = start_link(inner, conn, send, recv, &access, peer, peer, remote, ours) else {
        return;
    };
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
