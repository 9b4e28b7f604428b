//! `Link`: an established, authenticated link to one peer for one group.
//!
//! A link is a task that owns the QUIC stream pair and four loops:
//! - the reader decodes frames: `Data` goes to the link's inbound channel, `Peers` to the
//!   peer table, `Ticket` (the peer renewed its ticket) to the validator, `Heartbeat` only
//!   proves liveness; anything else (a handshake message, a malformed or oversized frame)
//!   closes the link with a logged protocol reason;
//! - the writer sends the application's `Data`, this node's ticket again when it is
//!   renewed, a `Heartbeat` every heartbeat interval, and the peers this node knows at the
//!   start and every [`PEER_EXCHANGE_TICKS`] beats;
//! - the watchdog closes the link once nothing arrived for `max_missed_heartbeats`
//!   intervals;
//! - the ticket check asks the group's validator (if it has one) about the peer's ticket
//!   every `ticket_recheck_interval` and closes the link once it is refused
//!   ([`CloseReason::TicketRevoked`]; see [`TicketValidator`](super::TicketValidator)).
//!
//! # Channels and what happens when they are full
//! Both channels are bounded ([`LinkConfig`]).
//! - Outbound full (the peer or the network is slower than the application):
//!   [`LinkSender::send`] waits for room, [`LinkSender::try_send`] returns
//!   [`TrySendError::Full`] at once. Nothing is dropped silently.
//! - Inbound full (the application reads slower than the peer sends): the reader stops
//!   reading the stream until there is room, so QUIC flow control pushes back on the peer's
//!   sender. Time spent waiting on our own application does not count as missed heartbeats.
//!
//! Dropping the [`Link`] closes it; [`LinkSender`] clones alone do not keep it open.

use super::close::CloseReason;
use super::frame::{read_message, write_message, FrameError};
use super::message::Message;
use super::peer_addr::PeerAddr;
use super::ticket::{PeerTicket, DEFAULT_TICKET_RECHECK};
use crate::primitives::{GroupId, PeerId, Short};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

/// Peer exchange is repeated every this many heartbeats (after the first, at link start).
pub const PEER_EXCHANGE_TICKS: u32 = 64;

/// At most this many addresses are accepted in one peer exchange message; more is a
/// protocol violation.
pub const MAX_EXCHANGED_PEERS: usize = 1024;

/// Per-link settings; a group takes them from its consensus configuration.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// A heartbeat is sent this often (the seed default is 500 ms). Raised to 1 ms if zero.
    pub heartbeat_interval: Duration,
    /// The link closes after this many intervals without any frame (seed default 10).
    /// Raised to 1 if zero.
    pub max_missed_heartbeats: u32,
    /// Capacity of the inbound channel, in messages.
    pub inbound_capacity: usize,
    /// Capacity of the outbound channel, in messages.
    pub outbound_capacity: usize,
    /// How often the peer's ticket is checked again while the link lives, when the group
    /// requires tickets (default [`DEFAULT_TICKET_RECHECK`], 1 s): a ticket the validator
    /// starts refusing (expired) ends the link within this. Raised to 1 ms if zero.
    pub ticket_recheck_interval: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(500),
            max_missed_heartbeats: 10,
            inbound_capacity: 1024,
            outbound_capacity: 1024,
            ticket_recheck_interval: DEFAULT_TICKET_RECHECK,
        }
    }
}

impl LinkConfig {
    fn interval(&self) -> Duration {
        self.heartbeat_interval.max(Duration::from_millis(1))
    }

    fn max_missed(&self) -> u32 {
        self.max_missed_heartbeats.max(1)
    }

    fn recheck(&self) -> Duration {
        self.ticket_recheck_interval.max(Duration::from_millis(1))
    }
}

/// The tickets of one link: the peer's (checked again while the link lives) and a
/// subscription to ours (sent again when renewed).
pub(crate) struct LinkTickets {
    /// The ticket the peer presented, with the group's validator.
    pub peer: Arc<PeerTicket>,
    /// This node's ticket for the group; its current value is the one the handshake sent.
    pub ours: watch::Receiver<Vec<u8>>,
}

/// Sending on a closed link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("link to {peer} for group {group} is closed")]
pub struct LinkClosed {
    /// The peer.
    pub peer: PeerId,
    /// The group.
    pub group: GroupId,
}

/// [`LinkSender::try_send`] failed; the message is given back.
#[derive(Debug, thiserror::Error)]
pub enum TrySendError {
    /// The outbound channel is full.
    #[error("link outbound channel is full")]
    Full(Vec<u8>),
    /// The link is closed.
    #[error(transparent)]
    Closed(LinkClosed),
}

/// Shared state of one link: the close request and the final reason.
#[derive(Debug)]
pub(crate) struct LinkControl {
    request: watch::Sender<Option<CloseReason>>,
    done: watch::Sender<Option<CloseReason>>,
}

impl LinkControl {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            request: watch::channel(None).0,
            done: watch::channel(None).0,
        })
    }

    /// Asks the link's task to close with `reason` (the first request wins).
    pub(crate) fn request_close(&self, reason: CloseReason) {
        self.request.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Records the final reason; called once by the link's task.
    pub(crate) fn finish(&self, reason: CloseReason) {
        self.done.send_replace(Some(reason));
    }

    /// The final reason, once closed.
    pub(crate) fn reason(&self) -> Option<CloseReason> {
        self.done.borrow().clone()
    }

    /// Waits until the link's task ended; returns why.
    pub(crate) async fn closed(&self) -> CloseReason {
        let mut done = self.done.subscribe();
        loop {
            if let Some(reason) = done.borrow_and_update().clone() {
                return reason;
            }
            if done.changed().await.is_err() {
                return CloseReason::Local;
            }
        }
    }

    async fn requested(&self) -> CloseReason {
        let mut request = self.request.subscribe();
        loop {
            if let Some(reason) = request.borrow_and_update().clone() {
                return reason;
            }
            if request.changed().await.is_err() {
                return CloseReason::Local;
            }
        }
    }
}

/// A cloneable handle for sending on a link.
#[derive(Clone, Debug)]
pub struct LinkSender {
    tx: mpsc::Sender<Vec<u8>>,
    peer: PeerId,
    group: GroupId,
}

impl LinkSender {
    fn closed(&self) -> LinkClosed {
        LinkClosed {
            peer: self.peer,
            group: self.group,
        }
    }

    /// Queues `bytes` for the peer, waiting while the outbound channel is full.
    pub async fn send(&self, bytes: Vec<u8>) -> Result<(), LinkClosed> {
        self.tx.send(bytes).await.map_err(|_| self.closed())
    }

    /// Queues `bytes` without waiting.
    pub fn try_send(&self, bytes: Vec<u8>) -> Result<(), TrySendError> {
        self.tx.try_send(bytes).map_err(|err| match err {
            mpsc::error::TrySendError::Full(bytes) => TrySendError::Full(bytes),
            mpsc::error::TrySendError::Closed(_) => TrySendError::Closed(self.closed()),
        })
    }
}

/// An established link to a peer for one group. Dropping it closes the link.
#[derive(Debug)]
pub struct Link {
    peer: PeerId,
    group: GroupId,
    dialer: PeerId,
    sender: LinkSender,
    inbound: mpsc::Receiver<Vec<u8>>,
    control: Arc<LinkControl>,
    ticket: Arc<PeerTicket>,
}

impl Link {
    /// The peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The group this link is for.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Which side opened the connection.
    pub fn dialer(&self) -> PeerId {
        self.dialer
    }

    /// The ticket the peer presents: the one from its hello, or its last renewal that
    /// passed this side's validator.
    pub fn peer_ticket(&self) -> Vec<u8> {
        self.ticket.current()
    }

    /// A handle for sending from other tasks.
    pub fn sender(&self) -> LinkSender {
        self.sender.clone()
    }

    /// Queues `bytes` for the peer, waiting while the outbound channel is full.
    pub async fn send(&self, bytes: Vec<u8>) -> Result<(), LinkClosed> {
        self.sender.send(bytes).await
    }

    /// The next message from the peer; `None` once the link is closed and drained.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.inbound.recv().await
    }

    /// Why the link closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.control.reason()
    }

    /// Waits until the link is closed; returns why.
    pub async fn closed(&self) -> CloseReason {
        self.control.closed().await
    }

    /// Closes the link (the peer sees a normal close).
    pub fn close(&self) {
        self.control.request_close(CloseReason::Local);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.control.request_close(CloseReason::Local);
    }
}

/// What a link needs from the node: the peers to tell and where to put the peers learned.
pub(crate) trait PeerExchange: Send + Sync + 'static {
    /// Addresses to tell `peer`.
    fn known(&self, peer: PeerId) -> Vec<PeerAddr>;
    /// `from` told us these addresses.
    fn learned(&self, from: PeerId, peers: Vec<PeerAddr>);
}

/// The task side of a link: channels and control, built together with its [`Link`].
pub(crate) struct LinkParts {
    pub control: Arc<LinkControl>,
    inbound: mpsc::Sender<Vec<u8>>,
    outbound: mpsc::Receiver<Vec<u8>>,
    tickets: LinkTickets,
}

/// Builds a link handle and the parts its task runs on.
pub(crate) fn new_link(
    peer: PeerId,
    group: GroupId,
    dialer: PeerId,
    config: &LinkConfig,
    tickets: LinkTickets,
) -> (Link, LinkParts) {
    let control = LinkControl::new();
    let (in_tx, in_rx) = mpsc::channel(config.inbound_capacity.max(1));
    let (out_tx, out_rx) = mpsc::channel(config.outbound_capacity.max(1));
    let link = Link {
        peer,
        group,
        dialer,
        sender: LinkSender {
            tx: out_tx,
            peer,
            group,
        },
        inbound: in_rx,
        control: control.clone(),
        ticket: tickets.peer.clone(),
    };
    let parts = LinkParts {
        control,
        inbound: in_tx,
        outbound: out_rx,
        tickets,
    };
    (link, parts)
}

/// Marks when the reader last heard from the peer; [`BLOCKED`] while it waits on us.
struct LastHeard {
    start: Instant,
    millis: AtomicU64,
}

const BLOCKED: u64 = u64::MAX;

impl LastHeard {
    fn touch(&self) {
        let ms = self
            .start
            .elapsed()
            .as_millis()
            .min(u128::from(BLOCKED - 1)) as u64;
        self.millis.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Option<Duration> {
        match self.millis.load(Ordering::Relaxed) {
            BLOCKED => None,
            ms => Some(
                self.start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }
}

fn frame_reason(err: FrameError) -> CloseReason {
    match err {
        FrameError::Io { .. } => CloseReason::Transport(err.to_string()),
        other => CloseReason::Protocol(other.to_string()),
    }
}

/// Runs a link over an established stream pair until it closes; returns why.
///
/// The caller closes the connection with the reason and records it in the control.
pub(crate) async fn run_link<W, R>(
    mut send: W,
    mut recv: R,
    peer: PeerId,
    config: &LinkConfig,
    max_frame: u32,
    parts: LinkParts,
    exchange: Arc<dyn PeerExchange>,
) -> CloseReason
where
    W: AsyncWrite + Unpin + Send,
    R: AsyncRead + Unpin + Send,
{
    let LinkParts {
        control,
        inbound,
        mut outbound,
        tickets,
    } = parts;
    let LinkTickets {
        peer: peer_ticket,
        ours: mut our_ticket,
    } = tickets;
    let interval = config.interval();
    let max_missed = config.max_missed();
    let heard = LastHeard {
        start: Instant::now(),
        millis: AtomicU64::new(0),
    };

    let reader = async {
        loop {
            let msg = match read_message::<Message, _>(&mut recv, max_frame).await {
                Ok(Some(msg)) => msg,
                Ok(None) => return CloseReason::Transport("peer finished its stream".into()),
                Err(err) => return frame_reason(err),
            };
            heard.touch();
            match msg {
                Message::Heartbeat => {}
                Message::Peers(peers) => {
                    if peers.len() > MAX_EXCHANGED_PEERS {
                        return CloseReason::Protocol(format!(
                            "peer exchange of {} addresses exceeds the limit of {MAX_EXCHANGED_PEERS}",
                            peers.len()
                        ));
                    }
                    exchange.learned(peer, peers);
                }
                Message::Data(bytes) => {
                    heard.millis.store(BLOCKED, Ordering::Relaxed);
                    if inbound.send(bytes).await.is_err() {
                        return CloseReason::Local;
                    }
                    heard.touch();
                }
                Message::Ticket(ticket) => match peer_ticket.renew(ticket) {
                    Ok(()) => tracing::debug!(peer = %Short(&peer), "peer renewed its ticket"),
                    Err(err) => return CloseReason::TicketRevoked { reason: err.reason },
                },
                other => {
                    return CloseReason::Protocol(format!(
                        "unexpected {} after the handshake",
                        other.kind()
                    ))
                }
            }
        }
    };

    let writer = async {
        let peers = Message::Peers(exchange.known(peer));
        if let Err(err) = write_message(&mut send, &peers, max_frame).await {
            return frame_reason(err);
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u32 = 0;
        // Until the group's ticket sender is gone (the group left): then nothing to renew.
        let mut renewals = true;
        loop {
            let msg = tokio::select! {
                biased;
                changed = our_ticket.changed(), if renewals => match changed {
                    Ok(()) => Message::Ticket(our_ticket.borrow_and_update().clone()),
                    Err(_) => {
                        renewals = false;
                        continue;
                    }
                },
                bytes = outbound.recv() => match bytes {
                    Some(bytes) => Message::Data(bytes),
                    None => return CloseReason::Local,
                },
                _ = ticker.tick() => {
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(PEER_EXCHANGE_TICKS) {
                        Message::Peers(exchange.known(peer))
                    } else {
                        Message::Heartbeat
                    }
                }
            };
            if let Err(err) = write_message(&mut send, &msg, max_frame).await {
                return frame_reason(err);
            }
        }
    };

    let watchdog = async {
        let limit = interval.saturating_mul(max_missed);
        loop {
            tokio::time::sleep(interval).await;
            if heard.silent_for().is_some_and(|silent| silent > limit) {
                return CloseReason::HeartbeatTimeout {
                    missed: max_missed,
                    interval,
                };
            }
        }
    };

    let recheck = async {
        if !peer_ticket.is_checked() {
            return std::future::pending().await;
        }
        let period = config.recheck();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = peer_ticket.check() {
                return CloseReason::TicketRevoked { reason: err.reason };
            }
        }
    };

    tokio::select! {
        reason = reader => reason,
        reason = writer => reason,
        reason = watchdog => reason,
        reason = recheck => reason,
        reason = control.requested() => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::frame::{write_frame, DEFAULT_MAX_FRAME_LEN};
    use crate::network::ticket::TicketError;
    use std::sync::Mutex;
    use tokio::io::{duplex, split, AsyncWriteExt};

    const MAX: u32 = DEFAULT_MAX_FRAME_LEN;

    #[derive(Default)]
    struct Table(Mutex<Vec<PeerAddr>>);

    impl PeerExchange for Table {
        fn known(&self, _peer: PeerId) -> Vec<PeerAddr> {
            self.0.lock().map(|t| t.clone()).unwrap_or_default()
        }
        fn learned(&self, _from: PeerId, peers: Vec<PeerAddr>) {
            if let Ok(mut t) = self.0.lock() {
                t.extend(peers);
            }
        }
    }

    fn cfg() -> LinkConfig {
        LinkConfig {
            heartbeat_interval: Duration::from_millis(20),
            max_missed_heartbeats: 3,
            inbound_capacity: 4,
            outbound_capacity: 4,
            ticket_recheck_interval: Duration::from_millis(20),
        }
    }

    /// Tickets of a link in a group without a validator, whose own ticket never changes.
    fn unchecked(peer: PeerId) -> LinkTickets {
        LinkTickets {
            peer: PeerTicket::new(peer, None, Vec::new()),
            ours: watch::channel(Vec::new()).1,
        }
    }

    /// Two links over a pipe exchange data and peers, then one side closes.
    #[tokio::test]
    async fn data_and_peers_flow_both_ways() {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let g = GroupId::default();
        let (pa, pb) = (PeerId([1; 32]), PeerId([2; 32]));
        let (mut la, parts_a) = new_link(pb, g, pa, &cfg(), unchecked(pb));
        let (mut lb, parts_b) = new_link(pa, g, pa, &cfg(), unchecked(pa));
        let told = PeerAddr::new(PeerId([9; 32]), ([127, 0, 0, 1], 9).into());
        let ta = Arc::new(Table(Mutex::new(vec![told])));
        let tb = Arc::new(Table::default());
        let c = cfg();
        let task_a = tokio::spawn({
            let ta = ta.clone();
            let c = c.clone();
            async move { run_link(aw, ar, pb, &c, MAX, parts_a, ta).await }
        });
        let task_b = tokio::spawn({
            let tb = tb.clone();
            async move { run_link(bw, br, pa, &c, MAX, parts_b, tb).await }
        });
        la.send(b"ping".to_vec()).await.expect("send");
        assert_eq!(lb.recv().await, Some(b"ping".to_vec()));
        lb.send(b"pong".to_vec()).await.expect("send");
        assert_eq!(la.recv().await, Some(b"pong".to_vec()));
        // The first frame on a link is the peer exchange, so it arrived before "ping".
        assert_eq!(tb.known(pa), vec![told]);
        la.close();
        assert_eq!(task_a.await.expect("join"), CloseReason::Local);
        // B's stream ends (A's task dropped its halves) or B misses heartbeats: either way
        // B ends, and it does not count as a protocol violation.
        let reason_b = task_b.await.expect("join");
        assert!(
            !matches!(reason_b, CloseReason::Protocol(_)),
            "{reason_b:?}"
        );
    }

    #[tokio::test]
    async fn garbage_after_handshake_is_a_protocol_close() {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = split(a);
        let (_br, mut bw) = split(b);
        let (_la, parts) = new_link(
            PeerId([2; 32]),
            GroupId::default(),
            PeerId([1; 32]),
            &cfg(),
            unchecked(PeerId([2; 32])),
        );
        bw.write_all(b"\x01\x00\x00\x00\x02\xff\xff")
            .await
            .expect("write");
        let reason = run_link(
            aw,
            ar,
            PeerId([2; 32]),
            &cfg(),
            MAX,
            parts,
            Arc::new(Table::default()),
        )
        .await;
        assert!(
            matches!(&reason, CloseReason::Protocol(why) if why.contains("decode")),
            "{reason:?}"
        );
    }

    #[tokio::test]
    async fn handshake_message_after_handshake_is_refused() {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = split(a);
        let (_br, mut bw) = split(b);
        let (_la, parts) = new_link(
            PeerId([2; 32]),
            GroupId::default(),
            PeerId([1; 32]),
            &cfg(),
            unchecked(PeerId([2; 32])),
        );
        let payload = crate::primitives::codec::encode(&Message::Welcome).expect("encode");
        write_frame(&mut bw, &payload, MAX).await.expect("write");
        let reason = run_link(
            aw,
            ar,
            PeerId([2; 32]),
            &cfg(),
            MAX,
            parts,
            Arc::new(Table::default()),
        )
        .await;
        assert_eq!(
            reason,
            CloseReason::Protocol("unexpected Welcome after the handshake".into())
        );
    }

    /// A peer that stays silent (but keeps the stream open) is closed by the watchdog.
    #[tokio::test]
    async fn silent_peer_misses_heartbeats() {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = split(a);
        let (_br, _bw) = split(b);
        let (_la, parts) = new_link(
            PeerId([2; 32]),
            GroupId::default(),
            PeerId([1; 32]),
            &cfg(),
            unchecked(PeerId([2; 32])),
        );
        let reason = run_link(
            aw,
            ar,
            PeerId([2; 32]),
            &cfg(),
            MAX,
            parts,
            Arc::new(Table::default()),
        )
        .await;
        assert!(
            matches!(reason, CloseReason::HeartbeatTimeout { missed: 3, .. }),
            "{reason:?}"
        );
    }

    /// A accepts tickets starting with "good". B renews its ticket on the live link: a
    /// good one replaces the hello's on A's side, a bad one ends the link on A's side with
    /// the validator's reason.
    #[tokio::test]
    async fn a_renewed_ticket_is_kept_if_it_passes_and_ends_the_link_if_not() {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let g = GroupId::default();
        let (pa, pb) = (PeerId([1; 32]), PeerId([2; 32]));
        let validator = |_peer: PeerId, ticket: &[u8]| {
            if ticket.starts_with(b"good") {
                Ok(())
            } else {
                Err(TicketError::new("not good"))
            }
        };
        let a_tickets = LinkTickets {
            peer: PeerTicket::new(pb, Some(Arc::new(validator)), b"good 1".to_vec()),
            ours: watch::channel(Vec::new()).1,
        };
        let (b_ticket, b_ours) = watch::channel(b"good 1".to_vec());
        let b_tickets = LinkTickets {
            peer: PeerTicket::new(pa, None, Vec::new()),
            ours: b_ours,
        };
        let (mut la, parts_a) = new_link(pb, g, pa, &cfg(), a_tickets);
        let (lb, parts_b) = new_link(pa, g, pa, &cfg(), b_tickets);
        let c = cfg();
        let task_a = tokio::spawn({
            let c = c.clone();
            async move { run_link(aw, ar, pb, &c, MAX, parts_a, Arc::new(Table::default())).await }
        });
        let task_b = tokio::spawn(async move {
            run_link(bw, br, pa, &c, MAX, parts_b, Arc::new(Table::default())).await
        });
        b_ticket.send_replace(b"good 2".to_vec());
        // Frames on one stream arrive in order: once B's next data is read, the renewal
        // before it has been handled.
        lb.send(b"after renewal".to_vec()).await.expect("send");
        assert_eq!(la.recv().await, Some(b"after renewal".to_vec()));
        assert_eq!(la.peer_ticket(), b"good 2".to_vec());
        b_ticket.send_replace(b"bad 3".to_vec());
        let reason = task_a.await.expect("join");
        assert_eq!(
            reason,
            CloseReason::TicketRevoked {
                reason: "not good".into()
            }
        );
        assert_eq!(
            la.peer_ticket(),
            b"good 2".to_vec(),
            "the refused one is not kept"
        );
        lb.close();
        let _ = task_b.await.expect("join");
    }

    /// The validator starts refusing the ticket the peer presented (it expired): the
    /// periodic check ends the link.
    #[tokio::test]
    async fn the_periodic_check_ends_a_link_whose_ticket_stopped_passing() {
        use std::sync::atomic::AtomicBool;
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let (pa, pb) = (PeerId([1; 32]), PeerId([2; 32]));
        let expired = Arc::new(AtomicBool::new(false));
        let flag = expired.clone();
        let validator = move |_peer: PeerId, _ticket: &[u8]| {
            if flag.load(Ordering::SeqCst) {
                Err(TicketError::new("expired"))
            } else {
                Ok(())
            }
        };
        let a_tickets = LinkTickets {
            peer: PeerTicket::new(pb, Some(Arc::new(validator)), b"t".to_vec()),
            ours: watch::channel(Vec::new()).1,
        };
        let (la, parts_a) = new_link(pb, GroupId::default(), pa, &cfg(), a_tickets);
        let (mut lb, parts_b) = new_link(pa, GroupId::default(), pa, &cfg(), unchecked(pa));
        let c = cfg();
        let task_a = tokio::spawn({
            let c = c.clone();
            async move { run_link(aw, ar, pb, &c, MAX, parts_a, Arc::new(Table::default())).await }
        });
        let task_b = tokio::spawn(async move {
            run_link(bw, br, pa, &c, MAX, parts_b, Arc::new(Table::default())).await
        });
        // Live and checked, still passing.
        la.send(b"x".to_vec()).await.expect("send");
        assert_eq!(lb.recv().await, Some(b"x".to_vec()));
        expired.store(true, Ordering::SeqCst);
        assert_eq!(
            task_a.await.expect("join"),
            CloseReason::TicketRevoked {
                reason: "expired".into()
            }
        );
        drop(la);
        let _ = task_b.await.expect("join");
    }
}
