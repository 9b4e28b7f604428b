//! The node's live connections by peer, and connecting at most once at a time per peer.
//!
//! # One connection per pair of nodes
//! A dial for any group reuses a live connection to the peer, whichever side opened it, and
//! opens a new stream on it; only when there is none does it connect, and concurrent dials
//! to the same peer wait for that one attempt and share its outcome.
//!
//! When both nodes connect at the same instant, two connections exist, one each way; never
//! more, since a node connects only when it has no live connection to the peer, so a newer
//! connection in the same direction replaces the older one (the side that opened it found
//! the old one gone). New links then go on the connection dialed by the smaller peer id,
//! on both sides, and the other one closes once unused
//! ([`LINGER`](super::connection::LINGER)).
//!
//! # Restarts
//! Each handshake tells the peer's process incarnation. When a connection shows another
//! incarnation than an older connection to the same peer, the older one goes to a process
//! that is gone: it is closed at once ([`CloseReason::Replaced`]) with every link on it,
//! instead of waiting for its watchdog.

use super::close::CloseReason;
use super::connection::{self, SharedConn};
use super::error::BondError;
use super::identity;
use super::network::{guard, Inner, ALPN};
use super::peer_addr::PeerAddr;
use crate::primitives::{PeerId, Short};
use iroh::endpoint::Connection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The outcome of one connect attempt, as the dials that waited for it see it.
type Attempt = Result<Arc<SharedConn>, Failed>;

/// Why a shared connect attempt failed (cloneable, unlike iroh's error).
#[derive(Clone, Debug)]
enum Failed {
    Timeout(Duration),
    Shutdown,
    Other(String),
}

impl Failed {
    fn into_bond(self, peer: PeerId) -> BondError {
        match self {
            Failed::Timeout(after) => BondError::Timeout {
                peer,
                what: "connect",
                after,
            },
            Failed::Shutdown => BondError::Shutdown,
            Failed::Other(reason) => BondError::ConnectFailed { peer, reason },
        }
    }
}

#[derive(Default)]
struct PeerConns {
    /// At most two: one each way.
    live: Vec<Arc<SharedConn>>,
    /// The attempt in progress (its id, and where its outcome will appear).
    connecting: Option<(u64, watch::Receiver<Option<Attempt>>)>,
}

/// Live connections by peer.
pub(super) struct ConnTable {
    me: PeerId,
    peers: Mutex<HashMap<PeerId, PeerConns>>,
    next_id: AtomicU64,
}

/// Clears a connect attempt from the table when its dial ends, even when cancelled, so
/// the dials waiting for it try again instead of waiting for ever.
struct Clear<'a> {
    table: &'a ConnTable,
    peer: PeerId,
    id: u64,
}

impl Drop for Clear<'_> {
    fn drop(&mut self) {
        let mut peers = guard(&self.table.peers);
        if let Some(entry) = peers.get_mut(&self.peer) {
            if entry
                .connecting
                .as_ref()
                .is_some_and(|(id, _)| *id == self.id)
            {
                entry.connecting = None;
            }
            if entry.live.is_empty() && entry.connecting.is_none() {
                peers.remove(&self.peer);
            }
        }
    }
}

impl ConnTable {
    pub(super) fn new(me: PeerId) -> Self {
        Self {
            me,
            peers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// The connection new links to `peer` go on: the live one dialed by the smaller peer
    /// id if there is one (both sides pick the same), else any live one.
    fn best(&self, peer: PeerId, live: &[Arc<SharedConn>]) -> Option<Arc<SharedConn>> {
        let low = self.me.min(peer);
        live.iter()
            .filter(|c| c.is_live())
            .min_by_key(|c| (c.dialer != low, c.id))
            .cloned()
    }

    /// QUIC connections open now.
    pub(super) fn open(&self) -> usize {
        guard(&self.peers)
            .values()
            .map(|p| p.live.iter().filter(|c| c.is_live()).count())
            .sum()
    }

    /// Takes `conn` (dialed by `dialer`) into the table and starts its task.
    pub(super) fn insert(
        &self,
        inner: &Arc<Inner>,
        conn: Connection,
        dialer: PeerId,
    ) -> Arc<SharedConn> {
        let peer = identity::peer_id(&conn.remote_id());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = SharedConn::new(id, conn, peer, dialer);
        let replaced: Vec<Arc<SharedConn>> = {
            let mut peers = guard(&self.peers);
            let entry = peers.entry(peer).or_default();
            let (old, keep): (Vec<_>, Vec<_>) =
                entry.live.drain(..).partition(|c| c.dialer == dialer);
            entry.live = keep;
            entry.live.push(shared.clone());
            old
        };
        for old in replaced {
            if old.is_live() {
                tracing::debug!(peer = %Short(&peer), "a newer connection the same way replaces the old one");
                old.close(&CloseReason::Replaced);
            }
        }
        inner
            .tasks
            .spawn(connection::run(inner.clone(), shared.clone()));
        shared
    }

    /// Forgets `shared` (its task ended).
    pub(super) fn remove(&self, shared: &SharedConn) {
        let mut peers = guard(&self.peers);
        if let Some(entry) = peers.get_mut(&shared.peer) {
            entry.live.retain(|c| c.id != shared.id);
            if entry.live.is_empty() && entry.connecting.is_none() {
                peers.remove(&shared.peer);
            }
        }
    }

    /// A handshake on `shared` told the peer's incarnation: closes the connections to the
    /// same peer known to go to another incarnation (see the module docs).
    pub(super) fn learned_incarnation(&self, shared: &SharedConn, incarnation: u64) {
        let _ = shared.incarnation.set(incarnation);
        let stale: Vec<Arc<SharedConn>> = guard(&self.peers)
            .get(&shared.peer)
            .map(|entry| {
                entry
                    .live
                    .iter()
                    .filter(|c| c.id != shared.id)
                    .filter(|c| c.incarnation.get().is_some_and(|i| *i != incarnation))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for old in stale {
            tracing::info!(peer = %Short(&shared.peer), "peer restarted: closing the connection to its old process");
            old.close(&CloseReason::Replaced);
        }
    }

    /// A live connection to `addr`'s peer, connecting if there is none (once for all the
    /// dials that ask meanwhile).
    pub(super) async fn connection(
        &self,
        inner: &Arc<Inner>,
        addr: PeerAddr,
    ) -> Result<Arc<SharedConn>, BondError> {
        let peer = addr.id;
        loop {
            // Decided under the lock, acted on after it (no guard across an await).
            let step = {
                let mut peers = guard(&self.peers);
                let entry = peers.entry(peer).or_default();
                if let Some(conn) = self.best(peer, &entry.live) {
                    return Ok(conn);
                }
                match &entry.connecting {
                    Some((_, rx)) => Err(rx.clone()),
                    None => {
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = watch::channel(None);
                        entry.connecting = Some((id, rx));
                        Ok((id, tx))
                    }
                }
            };
            let mut waiting = match step {
                Ok((id, tx)) => {
                    let _clear = Clear {
                        table: self,
                        peer,
                        id,
                    };
                    let result = self.connect(inner, addr).await;
                    let shared = match &result {
                        Ok(conn) => Ok(conn.clone()),
                        Err(BondError::Timeout { after, .. }) => Err(Failed::Timeout(*after)),
                        Err(BondError::Shutdown) => Err(Failed::Shutdown),
                        Err(err) => Err(Failed::Other(err.to_string())),
                    };
                    tx.send_replace(Some(shared));
                    return result;
                }
                Err(waiting) => waiting,
            };
            loop {
                let seen = waiting.borrow_and_update().clone();
                if let Some(attempt) = seen {
                    return attempt.map_err(|failed| failed.into_bond(peer));
                }
                if waiting.changed().await.is_err() {
                    // That dial was dropped before it finished: look again.
                    break;
                }
            }
        }
    }

    /// One QUIC connect to `addr`, bounded by the connect timeout.
    async fn connect(
        &self,
        inner: &Arc<Inner>,
        addr: PeerAddr,
    ) -> Result<Arc<SharedConn>, BondError> {
        let peer = addr.id;
        let target = addr.to_endpoint_addr()?;
        let connect =
            tokio::time::timeout(inner.connect_timeout, inner.endpoint.connect(target, ALPN));
        let conn = tokio::select! {
            result = connect => match result {
                Ok(Ok(conn)) => conn,
                Ok(Err(source)) => return Err(BondError::Connect { peer: addr, source: Box::new(source) }),
                Err(_) => return Err(BondError::Timeout { peer, what: "connect", after: inner.connect_timeout }),
            },
            _ = inner.shutdown.cancelled() => return Err(BondError::Shutdown),
        };
        tracing::debug!(peer = %Short(&peer), "connected");
        Ok(self.insert(inner, conn, self.me))
    }
}
