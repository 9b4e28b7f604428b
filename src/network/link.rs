//! `Link`: an established, authenticated link to one peer for one group.
//!
//! A link is one bidirectional stream of the connection shared with its peer (see
//! [`connection`](super::connection), which owns heartbeats, the watchdog and peer
//! exchange for all the links on it). Its task runs three loops:
//! - the reader decodes frames: `Data` goes to the link's inbound channel, `Ticket` (the
//!   peer renewed its ticket) to the validator, `Close` ends the link with the peer's code
//!   and reason; anything else (a handshake message, a malformed or oversized frame)
//!   closes this link, and only it, with a logged protocol reason;
//! - the writer sends the application's `Data` and this node's ticket again when renewed;
//! - the ticket check asks the group's validator (if it has one) about the peer's ticket
//!   every `ticket_recheck_interval` and closes the link once it is refused
//!   ([`CloseReason::TicketRevoked`]; see [`TicketValidator`](super::TicketValidator)).
//!
//! A link that ends on this side's decision writes a last `Close{code, reason}` frame so
//! the peer learns why; the stream is then finished (or reset with the code when the frame
//! could not be written whole), and the connection stays up for the other links.
//!
//! # Channels and what happens when they are full
//! Both channels are bounded ([`LinkConfig`]).
//! - Outbound full (the peer or the network is slower than the application):
//!   [`LinkSender::send`] waits for room, [`LinkSender::try_send`] returns
//!   [`TrySendError::Full`] at once. Nothing is dropped silently.
//! - Inbound full (the application reads slower than the peer sends): the reader stops
//!   reading the stream until there is room, so QUIC flow control pushes back on the peer's
//!   sender. Time spent waiting on our own application does not count as the peer's
//!   silence (see [`Liveness`](super::connection)).
//!
//! Dropping the [`Link`] closes it; [`LinkSender`] clones alone do not keep it open.

use super::close::{cut, CloseReason};
use super::connection::Liveness;
use super::frame::{read_message, write_message, FrameError};
use super::message::Message;
use super::peer_addr::PeerAddr;
use super::ticket::{PeerTicket, DEFAULT_TICKET_RECHECK};
use crate::primitives::{GroupId, PeerId, Short};
use iroh::endpoint::{ReadError, WriteError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

pub use super::connection::{MAX_EXCHANGED_PEERS, PEER_EXCHANGE_TICKS};

/// Bound on writing a link's last `Close` frame; past it the stream is reset instead.
const CLOSE_WRITE: Duration = Duration::from_secs(1);

/// After a write fails (the peer stopped the stream), how long the reader may still
/// deliver the peer's `Close` frame, which names the reason better than the stop code.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Per-link settings; a group takes them from its consensus configuration.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Not used by links any more: liveness is per connection, shared by every group's
    /// links to a peer, and set on the network
    /// ([`NetworkBuilder::heartbeat_interval`](super::NetworkBuilder::heartbeat_interval)).
    /// Kept so existing configurations build.
    pub heartbeat_interval: Duration,
    /// Not used by links any more; see
    /// [`NetworkBuilder::max_missed_heartbeats`](super::NetworkBuilder::max_missed_heartbeats).
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
    /// This link's number on this node, given when it was registered (see [`Link::id`]).
    id: u64,
    peer: PeerId,
    group: GroupId,
    dialer: PeerId,
    sender: LinkSender,
    inbound: mpsc::Receiver<Vec<u8>>,
    control: Arc<LinkControl>,
    ticket: Arc<PeerTicket>,
}

impl Link {
    /// This link's number on this node, in the order links were registered: of two links
    /// to one peer for one group, the one with the larger id replaced the other (a
    /// duplicate or a restarted peer's link loses to it). Links reach their group from
    /// several tasks (accepted and dialled), so they may arrive out of that order; the
    /// group keeps the one with the larger id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Numbers a link once the registry accepted it.
    pub(super) fn set_id(&mut self, id: u64) {
        self.id = id;
    }

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

    /// Polls for the next message from the peer (for a caller that polls many links
    /// itself); `Ready(None)` once the link is closed and drained.
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Vec<u8>>> {
        self.inbound.poll_recv(cx)
    }

    /// The next message if one is queued already: `Ok(None)` when none is, `Err` once the
    /// link is closed and drained.
    pub fn try_recv(&mut self) -> Result<Option<Vec<u8>>, LinkClosed> {
        match self.inbound.try_recv() {
            Ok(bytes) => Ok(Some(bytes)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(LinkClosed {
                peer: self.peer,
                group: self.group,
            }),
        }
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

/// What a connection needs from the node for peer exchange: the peers to tell and where
/// to put the peers learned.
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

/// A link to `peer` with no task behind it (what is sent stays in its channel), for the
/// group worker's tests.
#[cfg(test)]
pub(crate) fn detached_link(peer: PeerId, group: GroupId) -> (Link, LinkParts) {
    let (_ours_tx, ours) = watch::channel(Vec::new());
    let tickets = LinkTickets {
        peer: super::ticket::PeerTicket::new(peer, None, Vec::new()),
        ours,
    };
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let (mut link, parts) = new_link(peer, group, peer, &LinkConfig::default(), tickets);
    link.set_id(NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    (link, parts)
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
        id: 0,
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

/// How a link's task ended.
#[derive(Debug)]
pub(crate) struct LinkEnd {
    /// Why.
    pub reason: CloseReason,
    /// Whether our `Close` frame went out whole: the stream may then be finished; if not
    /// (and the reason is ours to tell) it must be reset with the code.
    pub close_sent: bool,
}

/// The peer's code when it reset or stopped the stream instead of sending `Close`.
fn stream_code(err: &FrameError) -> Option<(u64, &'static str)> {
    let FrameError::Io { source, .. } = err else {
        return None;
    };
    let inner = source.get_ref()?;
    if let Some(ReadError::Reset(code)) = inner.downcast_ref::<ReadError>() {
        return Some((code.into_inner(), "stream reset by peer"));
    }
    if let Some(WriteError::Stopped(code)) = inner.downcast_ref::<WriteError>() {
        return Some((code.into_inner(), "stream stopped by peer"));
    }
    None
}

fn frame_reason(err: FrameError) -> CloseReason {
    if let Some((code, reason)) = stream_code(&err) {
        return CloseReason::ByPeer {
            code,
            reason: reason.into(),
        };
    }
    match err {
        FrameError::Io { .. } => CloseReason::Transport(err.to_string()),
        other => CloseReason::Protocol(other.to_string()),
    }
}

/// Runs a link over an established stream pair until it closes; returns why, after
/// writing the last `Close` frame when the reason is this side's to tell.
///
/// The caller finishes (or resets) the stream and records the reason in the control.
pub(crate) async fn run_link<W, R>(
    mut send: W,
    mut recv: R,
    peer: PeerId,
    config: &LinkConfig,
    max_frame: u32,
    parts: LinkParts,
    life: &Liveness,
) -> LinkEnd
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
    // Set while a frame is being written: a `Close` after a cut frame would be garbage.
    let mid_frame = AtomicBool::new(false);

    let reader = async {
        loop {
            let msg = match read_message::<Message, _>(&mut recv, max_frame).await {
                Ok(Some(msg)) => msg,
                Ok(None) => return CloseReason::Transport("peer finished its stream".into()),
                Err(err) => return frame_reason(err),
            };
            life.heard();
            match msg {
                Message::Data(bytes) => {
                    let _waiting = life.blocked();
                    if inbound.send(bytes).await.is_err() {
                        return CloseReason::Local;
                    }
                }
                Message::Ticket(ticket) => match peer_ticket.renew(ticket) {
                    Ok(()) => tracing::debug!(peer = %Short(&peer), "peer renewed its ticket"),
                    Err(err) => return CloseReason::TicketRevoked { reason: err.reason },
                },
                Message::Close { code, reason } => {
                    return CloseReason::ByPeer {
                        code: code.into(),
                        reason,
                    }
                }
                other => {
                    return CloseReason::Protocol(format!(
                        "unexpected {} after the handshake",
                        other.kind()
                    ))
                }
            }
        }
    };
    tokio::pin!(reader);

    let writer = async {
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
            };
            mid_frame.store(true, Ordering::Relaxed);
            if let Err(err) = write_message(&mut send, &msg, max_frame).await {
                return frame_reason(err);
            }
            mid_frame.store(false, Ordering::Relaxed);
            life.sent();
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

    let reason = tokio::select! {
        reason = &mut reader => reason,
        reason = writer => {
            // The peer may have stopped the stream right after its `Close`: prefer that.
            match tokio::time::timeout(CLOSE_GRACE, &mut reader).await {
                Ok(by_peer @ CloseReason::ByPeer { .. }) => by_peer,
                _ => reason,
            }
        }
        reason = recheck => reason,
        reason = control.requested() => reason,
    };
    let ours = !matches!(
        reason,
        CloseReason::ByPeer { .. } | CloseReason::Transport(_) | CloseReason::Shutdown
    );
    let mut close_sent = false;
    if ours && !mid_frame.load(Ordering::Relaxed) {
        let close = Message::Close {
            code: reason.code(),
            reason: cut(&reason.to_string()),
        };
        let write = write_message(&mut send, &close, max_frame);
        close_sent = matches!(tokio::time::timeout(CLOSE_WRITE, write).await, Ok(Ok(())));
    }
    LinkEnd { reason, close_sent }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::frame::{write_frame, DEFAULT_MAX_FRAME_LEN};
    use crate::network::ticket::TicketError;
    use tokio::io::{duplex, split, AsyncWriteExt};

    const MAX: u32 = DEFAULT_MAX_FRAME_LEN;

    /// Runs a link over pipe halves with a liveness of its own; returns why it ended.
    async fn run<W, R>(send: W, recv: R, peer: PeerId, parts: LinkParts) -> LinkEnd
    where
        W: AsyncWrite + Unpin + Send,
        R: AsyncRead + Unpin + Send,
    {
        run_link(send, recv, peer, &cfg(), MAX, parts, &Liveness::default()).await
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

    /// Two links over a pipe exchange data both ways; one side closes and the other
    /// gets its code and reason in the `Close` frame.
    #[tokio::test]
    async fn data_flows_both_ways_and_the_close_reaches_the_peer() {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let g = GroupId::default();
        let (pa, pb) = (PeerId([1; 32]), PeerId([2; 32]));
        let (mut la, parts_a) = new_link(pb, g, pa, &cfg(), unchecked(pb));
        let (mut lb, parts_b) = new_link(pa, g, pa, &cfg(), unchecked(pa));
        let task_a = tokio::spawn(async move { run(aw, ar, pb, parts_a).await });
        let task_b = tokio::spawn(async move { run(bw, br, pa, parts_b).await });
        la.send(b"ping".to_vec()).await.expect("send");
        assert_eq!(lb.recv().await, Some(b"ping".to_vec()));
        lb.send(b"pong".to_vec()).await.expect("send");
        assert_eq!(la.recv().await, Some(b"pong".to_vec()));
        la.close();
        let end_a = task_a.await.expect("join");
        assert_eq!(end_a.reason, CloseReason::Local);
        assert!(end_a.close_sent, "an idle link writes its Close whole");
        let end_b = task_b.await.expect("join");
        assert_eq!(
            end_b.reason,
            CloseReason::ByPeer {
                code: 0,
                reason: "closed locally".into()
            }
        );
        assert!(!end_b.close_sent, "a close by the peer is not answered");
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
        let reason = run(aw, ar, PeerId([2; 32]), parts).await.reason;
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
        let reason = run(aw, ar, PeerId([2; 32]), parts).await.reason;
        assert_eq!(
            reason,
            CloseReason::Protocol("unexpected Welcome after the handshake".into())
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
        let task_a = tokio::spawn(async move { run(aw, ar, pb, parts_a).await.reason });
        let task_b = tokio::spawn(async move { run(bw, br, pa, parts_b).await.reason });
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
        let task_a = tokio::spawn(async move { run(aw, ar, pb, parts_a).await.reason });
        let task_b = tokio::spawn(async move { run(bw, br, pa, parts_b).await.reason });
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
