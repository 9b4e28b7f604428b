//! A shared connection: one QUIC connection per pair of nodes carries every group's links
//! between them, each link one bidirectional stream (issue 18: thousands of groups per
//! node must not mean thousands of connections and heartbeat streams).
//!
//! What the connection owns, so that links do not:
//! - **Liveness.** Any frame read on any stream of the connection is life ([`Liveness`]).
//!   Each side opens one unidirectional *control stream* and writes a `Heartbeat` on it
//!   only when nothing went out on the connection for half a heartbeat interval: idle links
//!   cost nothing, a thousand idle groups between two nodes make one heartbeat per
//!   interval. The watchdog closes the connection once nothing arrived for `max_missed`
//!   intervals (a dead or paused peer) and every link on it ends with
//!   [`CloseReason::HeartbeatTimeout`]. A link reader waiting for this node's application
//!   to take a message counts as life, as it did per link: frames may be queued behind it.
//! - **Peer exchange.** Once a link on the connection passed its handshake (the peer proved
//!   a group key), each side sends the peers it knows on its control stream, again when a
//!   later link starts (coalesced) and every [`PEER_EXCHANGE_TICKS`] intervals. Peers
//!   received before that are held until then: a peer without any group key learns
//!   nothing and teaches nothing.
//! - **Incoming streams.** Either side opens link streams; each one the peer opens is
//!   handshaked on its own task (`accept.rs`), at most [`MAX_HANDSHAKES`] at once per
//!   connection, each bounded by the handshake timeout.
//! - **Lingering.** A connection without links or handshakes for [`LINGER`] is closed.

use super::close::{cut, CloseReason};
use super::frame::{read_message, write_message, FrameError};
use super::link::PeerExchange;
use super::message::Message;
use super::network::{guard, Inner};
use super::peer_addr::PeerAddr;
use crate::primitives::{PeerId, Short};
use iroh::endpoint::{Connection, ConnectionError, VarInt};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Peer exchange is repeated every this many heartbeat intervals on each connection.
pub const PEER_EXCHANGE_TICKS: u32 = 64;

/// At most this many addresses are accepted in one peer exchange message; more is a
/// protocol violation.
pub const MAX_EXCHANGED_PEERS: usize = 1024;

/// Handshakes of incoming streams running at once on one connection; more streams wait
/// (QUIC's stream limit then holds the peer back), so a peer opening streams in a loop
/// costs a bounded number of tasks.
pub const MAX_HANDSHAKES: usize = 64;

/// A connection that carried no link and no handshake for this long is closed.
pub const LINGER: Duration = Duration::from_secs(10);

/// The connection-level heartbeat: how often, and how many silent intervals end it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    /// Nothing sent for half of this: a heartbeat goes out. At least 1 ms.
    pub interval: Duration,
    /// Nothing heard for this many intervals: the connection is closed. At least 1.
    pub max_missed: u32,
}

impl Heartbeat {
    pub(crate) fn new(interval: Duration, max_missed: u32) -> Self {
        Self {
            interval: interval.max(Duration::from_millis(1)),
            max_missed: max_missed.max(1),
        }
    }

    fn limit(&self) -> Duration {
        self.interval.saturating_mul(self.max_missed)
    }
}

/// When the connection last heard and sent a frame, shared by its links and its control
/// stream.
#[derive(Debug)]
pub(crate) struct Liveness {
    start: Instant,
    /// Milliseconds since `start` of the last frame read on any stream.
    heard: AtomicU64,
    /// Milliseconds since `start` of the last frame written on any stream.
    sent: AtomicU64,
    /// Link readers waiting for this node's application to take a message.
    blocked: AtomicUsize,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            heard: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            blocked: AtomicUsize::new(0),
        }
    }
}

/// Counts one link reader as blocked on the application while it lives.
pub(crate) struct Blocked<'a>(&'a Liveness);

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.0.blocked.fetch_sub(1, Ordering::Relaxed);
        self.0.heard();
    }
}

impl Liveness {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A frame arrived.
    pub(crate) fn heard(&self) {
        self.heard.store(self.now(), Ordering::Relaxed);
    }

    /// A frame went out.
    pub(crate) fn sent(&self) {
        self.sent.store(self.now(), Ordering::Relaxed);
    }

    /// Marks a link reader as waiting for the application until the guard drops.
    pub(crate) fn blocked(&self) -> Blocked<'_> {
        self.blocked.fetch_add(1, Ordering::Relaxed);
        Blocked(self)
    }

    /// How long nothing arrived; zero while a reader waits for the application (frames
    /// may be queued behind it, and our own slowness is not the peer's silence).
    pub(crate) fn silent_for(&self) -> Duration {
        if self.blocked.load(Ordering::Relaxed) > 0 {
            self.heard();
            return Duration::ZERO;
        }
        let since = self
            .now()
            .saturating_sub(self.heard.load(Ordering::Relaxed));
        Duration::from_millis(since)
    }

    /// How long nothing went out.
    fn quiet_for(&self) -> Duration {
        Duration::from_millis(self.now().saturating_sub(self.sent.load(Ordering::Relaxed)))
    }
}

/// Peer exchange state: held until a link on the connection is authenticated.
#[derive(Default)]
struct Exchange {
    authenticated: bool,
    pending: Option<Vec<PeerAddr>>,
}

/// One live QUIC connection to a peer and what its links share.
pub(crate) struct SharedConn {
    /// Tells this connection from another to the same peer.
    pub(crate) id: u64,
    pub(crate) conn: Connection,
    pub(crate) peer: PeerId,
    /// Which side opened it.
    pub(crate) dialer: PeerId,
    pub(crate) life: Liveness,
    /// The peer's process incarnation, from the first handshake on this connection.
    pub(crate) incarnation: OnceLock<u64>,
    /// Links and handshakes on this connection now.
    users: AtomicUsize,
    /// Milliseconds (of `life`'s clock) when `users` last dropped to zero.
    idle_since: AtomicU64,
    exchange: Mutex<Exchange>,
    peers_due: Notify,
    /// Why this side closed the connection, for the links on it.
    closing: OnceLock<CloseReason>,
    /// Cancelled once the connection is closed (by either side) and its task ended.
    pub(crate) dead: CancellationToken,
    pub(crate) handshakes: Arc<Semaphore>,
}

impl std::fmt::Debug for SharedConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConn")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("dialer", &self.dialer)
            .finish()
    }
}

/// Counts a link or handshake on a connection while it lives.
pub(crate) struct User(Arc<SharedConn>);

impl Drop for User {
    fn drop(&mut self) {
        if self.0.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = self.0.life.now();
            self.0.idle_since.store(now, Ordering::Relaxed);
        }
    }
}

impl SharedConn {
    pub(crate) fn new(id: u64, conn: Connection, peer: PeerId, dialer: PeerId) -> Arc<Self> {
        Arc::new(Self {
            id,
            conn,
            peer,
            dialer,
            life: Liveness::default(),
            incarnation: OnceLock::new(),
            users: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            exchange: Mutex::new(Exchange::default()),
            peers_due: Notify::new(),
            closing: OnceLock::new(),
            dead: CancellationToken::new(),
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
        })
    }

    /// Whether the connection is still usable for new links.
    pub(crate) fn is_live(&self) -> bool {
        !self.dead.is_cancelled() && self.conn.close_reason().is_none()
    }

    /// Counts a link or handshake until the returned guard drops.
    pub(crate) fn user(self: &Arc<Self>) -> User {
        self.users.fetch_add(1, Ordering::AcqRel);
        User(self.clone())
    }

    /// Closes the whole connection (every link on it) with `reason`; the first reason
    /// given is the one the links report.
    pub(crate) fn close(&self, reason: &CloseReason) {
        let _ = self.closing.set(reason.clone());
        let text = cut(&reason.to_string());
        self.conn
            .close(VarInt::from_u32(reason.code()), text.as_bytes());
    }

    /// Why the connection ended, as its links report it.
    pub(crate) fn reason(&self) -> CloseReason {
        if let Some(reason) = self.closing.get() {
            return reason.clone();
        }
        match self.conn.close_reason() {
            Some(ConnectionError::ApplicationClosed(close)) => CloseReason::ByPeer {
                code: close.error_code.into_inner(),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            Some(err) => CloseReason::Transport(err.to_string()),
            None => CloseReason::Transport("connection closed".into()),
        }
    }

    /// A link on this connection passed its handshake: peer exchange may flow.
    pub(crate) fn authenticated(&self, exchange: &dyn PeerExchange) {
        let pending = {
            let mut state = guard(&self.exchange);
            state.authenticated = true;
            state.pending.take()
        };
        if let Some(peers) = pending {
            exchange.learned(self.peer, peers);
        }
        self.peers_due.notify_one();
    }

    fn is_authenticated(&self) -> bool {
        guard(&self.exchange).authenticated
    }

    fn received_peers(&self, peers: Vec<PeerAddr>, exchange: &dyn PeerExchange) {
        let mut state = guard(&self.exchange);
        if state.authenticated {
            drop(state);
            exchange.learned(self.peer, peers);
        } else {
            state.pending = Some(peers);
        }
    }

    /// How long the connection has had no link and no handshake (zero while it has).
    fn unused_for(&self) -> Duration {
        if self.users.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let since = self.idle_since.load(Ordering::Relaxed);
        Duration::from_millis(self.life.now().saturating_sub(since))
    }
}

/// Runs a connection until it ends (see the module docs), then forgets it.
pub(super) async fn run(inner: Arc<Inner>, shared: Arc<SharedConn>) {
    let beat = inner.heartbeat;
    let exchange: Arc<dyn PeerExchange> = inner.clone();
    let max = inner.max_frame;
    let reason = tokio::select! {
        _ = shared.conn.closed() => None,
        reason = watchdog(&shared, beat) => Some(reason),
        reason = control_out(&shared, beat, &*exchange, max, &inner.heartbeats_sent) => reason,
        reason = control_in(&shared, &*exchange, max) => reason,
        () = super::accept::accept_streams(&inner, &shared) => None,
        reason = linger(&shared) => Some(reason),
        _ = inner.shutdown.cancelled() => Some(CloseReason::Shutdown),
    };
    if let Some(reason) = &reason {
        match reason {
            CloseReason::HeartbeatTimeout { .. } | CloseReason::Protocol(_) => {
                tracing::warn!(peer = %Short(&shared.peer), %reason, "connection closed")
            }
            _ => tracing::debug!(peer = %Short(&shared.peer), %reason, "connection closed"),
        }
        shared.close(reason);
    } else {
        tracing::debug!(peer = %Short(&shared.peer), reason = %shared.reason(), "connection ended");
    }
    shared.dead.cancel();
    inner.conns.remove(&shared);
}

async fn watchdog(shared: &SharedConn, beat: Heartbeat) -> CloseReason {
    loop {
        tokio::time::sleep(beat.interval).await;
        if shared.life.silent_for() > beat.limit() {
            return CloseReason::HeartbeatTimeout {
                missed: beat.max_missed,
                interval: beat.interval,
            };
        }
    }
}

async fn linger(shared: &SharedConn) -> CloseReason {
    loop {
        tokio::time::sleep(LINGER / 4).await;
        if shared.unused_for() >= LINGER {
            return CloseReason::Unused(LINGER);
        }
    }
}

/// Maps a failed write or read on the control stream: nothing to add when the connection
/// is gone anyway, else the peer broke the control stream.
fn control_failed(shared: &SharedConn, err: FrameError) -> Option<CloseReason> {
    if shared.conn.close_reason().is_some() {
        return None;
    }
    Some(CloseReason::Protocol(format!("control stream: {err}")))
}

/// This side's control stream: heartbeats when nothing else went out, peer exchange.
async fn control_out(
    shared: &SharedConn,
    beat: Heartbeat,
    exchange: &dyn PeerExchange,
    max: u32,
    heartbeats: &AtomicU64,
) -> Option<CloseReason> {
    let mut send = shared.conn.open_uni().await.ok()?;
    // The first frame makes the stream visible to the peer at once.
    if let Err(err) = write_message(&mut send, &Message::Heartbeat, max).await {
        return control_failed(shared, err);
    }
    shared.life.sent();
    let half = (beat.interval / 2).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(half);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        let msg = tokio::select! {
            _ = ticker.tick() => {
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(2 * PEER_EXCHANGE_TICKS) && shared.is_authenticated() {
                    Message::Peers(exchange.known(shared.peer))
                } else if shared.life.quiet_for() >= half {
                    Message::Heartbeat
                } else {
                    continue;
                }
            }
            () = shared.peers_due.notified() => Message::Peers(exchange.known(shared.peer)),
        };
        if let Err(err) = write_message(&mut send, &msg, max).await {
            return control_failed(shared, err);
        }
        shared.life.sent();
        if msg == Message::Heartbeat {
            heartbeats.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The peer's control stream (the first unidirectional stream it opens; any other is
/// stopped at once).
async fn control_in(
    shared: &SharedConn,
    exchange: &dyn PeerExchange,
    max: u32,
) -> Option<CloseReason> {
    let mut recv = shared.conn.accept_uni().await.ok()?;
    let others = async {
        while let Ok(mut extra) = shared.conn.accept_uni().await {
            tracing::debug!(peer = %Short(&shared.peer), "refusing a second control stream");
            let _ = extra.stop(VarInt::from_u32(super::close::CODE_PROTOCOL));
        }
        None
    };
    let read = async {
        loop {
            let msg = match read_message::<Message, _>(&mut recv, max).await {
                Ok(Some(msg)) => msg,
                Ok(None) => {
                    return Some(CloseReason::Protocol(
                        "peer finished its control stream".into(),
                    ))
                }
                Err(err) => return control_failed(shared, err),
            };
            shared.life.heard();
            match msg {
                Message::Heartbeat => {}
                Message::Peers(peers) if peers.len() > MAX_EXCHANGED_PEERS => {
                    return Some(CloseReason::Protocol(format!(
                        "peer exchange of {} addresses exceeds the limit of {MAX_EXCHANGED_PEERS}",
                        peers.len()
                    )))
                }
                Message::Peers(peers) => shared.received_peers(peers, exchange),
                other => {
                    return Some(CloseReason::Protocol(format!(
                        "unexpected {} on the control stream",
                        other.kind()
                    )))
                }
            }
        }
    };
    tokio::select! {
        reason = read => reason,
        reason = others => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_measured_from_the_last_frame_and_not_while_blocked() {
        let life = Liveness::default();
        std::thread::sleep(Duration::from_millis(20));
        assert!(life.silent_for() >= Duration::from_millis(20));
        life.heard();
        assert!(life.silent_for() < Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(20));
        let blocked = life.blocked();
        assert_eq!(life.silent_for(), Duration::ZERO);
        drop(blocked);
        assert!(life.silent_for() < Duration::from_millis(20));
    }

    #[test]
    fn heartbeat_settings_have_floors() {
        let beat = Heartbeat::new(Duration::ZERO, 0);
        assert_eq!(beat.interval, Duration::from_millis(1));
        assert_eq!(beat.max_missed, 1);
        assert_eq!(
            Heartbeat::new(Duration::from_millis(500), 10).limit(),
            Duration::from_secs(5)
        );
    }
}
