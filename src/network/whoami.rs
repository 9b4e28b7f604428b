//! Learning a peer's id from its address: the "who are you" probe behind
//! `--peer HOST:PORT` without an id.
//!
//! # Why a probe beside QUIC
//! iroh's `Endpoint::connect` takes the remote's `EndpointId` and its TLS verifier checks
//! the server's raw public key against it (`iroh::tls::verifier`); iroh 1.x has no way to
//! connect without the id, nor to read the key of a server that failed that check. So the
//! id is asked first, on a small TCP listener on the **same IP and port number** as the
//! node's QUIC (UDP) socket: open both protocols on that port. Nothing is trusted from the
//! answer alone: the QUIC handshake then checks the id (TLS) and the link handshake proves
//! the group key both ways, as for any dial.
//!
//! # Exchange (fixed sizes, one round trip, then the connection closes)
//! ```text
//! asker                                           node
//!   MAGIC "TSWH" | 1 | network (32) | group (32) | nonce (32)   ─►
//!                                                ◄─  MAGIC | 1 | status | id (32) | mac (32)
//! ```
//! `status` is 0 (answered), 1 (another network), 2 (this node does not host the group)
//! or 3 (bad request); id and mac are zero unless 0. `mac = blake3::keyed_hash(K,
//! "tessera/whoami/v1" | network | group | nonce | id)` with `K` derived from the group's
//! link key: only a holder of the group key can answer, and an answer recorded for one
//! nonce fails for any other, so a stranger cannot plant a wrong id in the peer table.
//! Every read is bounded (the sizes above, a timeout per connection) and at most
//! [`MAX_CONCURRENT`] probes are served at once; bad input gets status 3 and a debug line.

use super::handshake::LinkKey;
use super::network::{guard, Inner};
use super::network_id::NetworkId;
use crate::primitives::{GroupId, PeerId, Short};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const MAGIC: &[u8; 4] = b"TSWH";
const VERSION: u8 = 1;
const REQUEST_LEN: usize = 4 + 1 + 32 + 32 + 32;
const ANSWER_LEN: usize = 4 + 1 + 1 + 32 + 32;
/// Probes served at once; more wait for a slot (each is bounded by [`SERVE_TIMEOUT`]).
pub const MAX_CONCURRENT: usize = 32;
/// Bound on serving one probe, from accept to the answer written.
const SERVE_TIMEOUT: Duration = Duration::from_secs(3);
const KEY_CONTEXT: &str = "tessera 2026 whoami probe answer key v1";

const OK: u8 = 0;
const WRONG_NETWORK: u8 = 1;
const UNKNOWN_GROUP: u8 = 2;
const BAD_REQUEST: u8 = 3;

/// Asking a node for its id failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No TCP connection to the address (nothing listens, or the port is closed).
    #[error("cannot ask {addr} for its id over TCP (the node serves it on its peer port number): {source}")]
    Connect {
        /// The address asked.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// No answer within the bound.
    #[error("{addr} did not say its id within {after:?}")]
    Timeout {
        /// The address asked.
        addr: SocketAddr,
        /// The bound.
        after: Duration,
    },
    /// The answer broke the exchange (short, wrong magic or version).
    #[error("{addr} answered the id probe with garbage: {why}")]
    Garbage {
        /// The address asked.
        addr: SocketAddr,
        /// What was wrong.
        why: String,
    },
    /// The node is in another network.
    #[error("{addr} is a tessera node of another network")]
    WrongNetwork {
        /// The address asked.
        addr: SocketAddr,
    },
    /// The node does not host the group: a node of another group, or one whose group
    /// key or group-id settings differ from ours.
    #[error("{addr} does not host this node's group {group}")]
    UnknownGroup {
        /// The address asked.
        addr: SocketAddr,
        /// Our group.
        group: GroupId,
    },
    /// The node hosts the group id but its answer does not verify with our key.
    #[error("{addr} answered with a proof that does not verify with this node's group key")]
    BadProof {
        /// The address asked.
        addr: SocketAddr,
    },
}

fn probe_key(key: &LinkKey) -> [u8; 32] {
    blake3::derive_key(KEY_CONTEXT, key.as_bytes())
}

fn mac(key: &LinkKey, network: NetworkId, group: GroupId, nonce: &[u8], id: &PeerId) -> [u8; 32] {
    let mut mac = blake3::Hasher::new_keyed(&probe_key(key));
    for part in [
        b"tessera/whoami/v1".as_slice(),
        network.as_bytes(),
        group.as_bytes(),
        nonce,
        id.as_bytes(),
    ] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    *mac.finalize().as_bytes()
}

/// Asks the node at `addr` for its id in `group`, proving nothing ourselves; the answer
/// is checked against `key`. Bounded by `timeout` in all.
pub(super) async fn ask(
    addr: SocketAddr,
    network: NetworkId,
    group: GroupId,
    key: &LinkKey,
    timeout: Duration,
) -> Result<PeerId, ProbeError> {
    let mut nonce = [0u8; 32];
    // Without randomness, a fixed nonce only weakens replay protection of a hint that
    // QUIC and the link handshake check again anyway.
    let _ = getrandom::fill(&mut nonce);
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ProbeError::Connect { addr, source })?;
        let mut request = Vec::with_capacity(REQUEST_LEN);
        request.extend_from_slice(MAGIC);
        request.push(VERSION);
        request.extend_from_slice(network.as_bytes());
        request.extend_from_slice(group.as_bytes());
        request.extend_from_slice(&nonce);
        let io = |e: std::io::Error| ProbeError::Garbage {
            addr,
            why: e.to_string(),
        };
        stream.write_all(&request).await.map_err(io)?;
        let mut answer = [0u8; ANSWER_LEN];
        stream.read_exact(&mut answer).await.map_err(io)?;
        Ok::<_, ProbeError>(answer)
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::Timeout {
            addr,
            after: timeout,
        })??;
    if &answer[..4] != MAGIC || answer[4] != VERSION {
        return Err(ProbeError::Garbage {
            addr,
            why: "not a tessera id answer (magic or version)".to_string(),
        });
    }
    match answer[5] {
        OK => {}
        WRONG_NETWORK => return Err(ProbeError::WrongNetwork { addr }),
        UNKNOWN_GROUP => return Err(ProbeError::UnknownGroup { addr, group }),
        other => {
            return Err(ProbeError::Garbage {
                addr,
                why: format!("status {other}"),
            })
        }
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&answer[6..38]);
    let id = PeerId(id);
    let mut theirs = [0u8; 32];
    theirs.copy_from_slice(&answer[38..70]);
    let ours = mac(key, network, group, &nonce, &id);
    if blake3::Hash::from_bytes(ours) != blake3::Hash::from_bytes(theirs) {
        return Err(ProbeError::BadProof { addr });
    }
    Ok(id)
}

/// Binds the probe's TCP listener on `addr` (the QUIC socket's address).
pub(super) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers probes on `listener` until the network shuts down.
pub(super) async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = inner.shutdown.cancelled() => return,
        };
        let (stream, from) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(%err, "id probe: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let inner = inner.clone();
        inner.tasks.clone().spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(SERVE_TIMEOUT, answer(&inner, stream)).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => tracing::debug!(%from, why, "id probe: bad request"),
                Err(_) => tracing::debug!(%from, after = ?SERVE_TIMEOUT, "id probe: timed out"),
            }
        });
    }
}

/// Reads one request and writes its answer.
async fn answer(inner: &Inner, mut stream: TcpStream) -> Result<(), String> {
    let mut request = [0u8; REQUEST_LEN];
    let mut reply = [0u8; ANSWER_LEN];
    reply[..4].copy_from_slice(MAGIC);
    reply[4] = VERSION;
    let read = stream.read_exact(&mut request).await;
    let outcome = match read {
        Err(err) => Err(format!("short request: {err}")),
        Ok(_) if &request[..4] != MAGIC || request[4] != VERSION => {
            Err("not a tessera id probe (magic or version)".to_string())
        }
        Ok(_) => Ok(()),
    };
    if let Err(why) = outcome {
        reply[5] = BAD_REQUEST;
        let _ = stream.write_all(&reply).await;
        return Err(why);
    }
    let mut network = [0u8; 32];
    network.copy_from_slice(&request[5..37]);
    let mut group = [0u8; 32];
    group.copy_from_slice(&request[37..69]);
    let nonce = &request[69..101];
    let group = GroupId(crate::primitives::Digest(group));
    let key = guard(&inner.groups)
        .get(&group)
        .map(|g| g.access.key.clone());
    if network != *inner.network.as_bytes() {
        reply[5] = WRONG_NETWORK;
    } else if let Some(key) = key {
        let me = inner.local.id;
        reply[5] = OK;
        reply[6..38].copy_from_slice(me.as_bytes());
        reply[38..70].copy_from_slice(&mac(&key, inner.network, group, nonce, &me));
    } else {
        tracing::debug!(group = %Short(&group), "id probe for a group this node does not host");
        reply[5] = UNKNOWN_GROUP;
    }
    stream
        .write_all(&reply)
        .await
        .map_err(|e| format!("writing the answer: {e}"))
}
