//! The group's links, read by the worker itself.
//!
//! Each link's task (in the network) queues the peer's frames in the link's bounded
//! inbound channel; the worker polls every link's channel in its own loop and decodes the
//! frames in place. A reader task per link used to sit between the two: one more task
//! wake-up on every frame's way in, and a task (~1.5 KB) kept alive per link, 2,000 per
//! node with 1,000 groups of three.
//!
//! Back-pressure is the links': while the worker is busy (a turn, a sync) frames wait in
//! each link's channel (`LinkConfig::inbound_capacity`); once one is full its task stops
//! reading the stream and QUIC flow control slows that peer down. Links are polled
//! round-robin from the one after the link served last, so a busy peer cannot starve the
//! others.

use super::super::metrics::{frame_kind, GroupMetrics, PeerTraffic};
use super::super::wire::GroupFrame;
use crate::network::Link;
use crate::primitives::{codec, Short};
use crate::PeerId;
use std::task::{Context, Poll};

/// What a link gives the worker.
pub(super) enum Inbound {
    /// A decoded frame from `peer`.
    Frame { peer: PeerId, frame: GroupFrame },
    /// The link `link_id` to `peer` closed (by either side, or on a frame that did not
    /// decode).
    Closed { peer: PeerId, link_id: u64 },
}

struct Reader {
    peer: PeerId,
    link_id: u64,
    link: Link,
}

/// Every open link of the group. Dropping a link here closes it.
pub(super) struct LinkReaders {
    readers: Vec<Reader>,
    /// Where the next poll starts.
    next: usize,
    /// Frames and bytes received per peer.
    received: PeerTraffic,
}

impl LinkReaders {
    pub(super) fn new(metrics: GroupMetrics) -> Self {
        LinkReaders {
            readers: Vec::new(),
            next: 0,
            received: metrics.received_traffic(),
        }
    }

    /// Reads `link` from now on.
    pub(super) fn add(&mut self, peer: PeerId, link_id: u64, link: Link) {
        self.readers.push(Reader {
            peer,
            link_id,
            link,
        });
    }

    /// Waits for the next frame or close from any link (pending for ever while there is
    /// no link: a new one comes through another input of the worker's loop).
    pub(super) async fn next(&mut self) -> Inbound {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Inbound> {
        let n = self.readers.len();
        for step in 0..n {
            let at = (self.next + step) % n;
            if let Poll::Ready(bytes) = self.readers[at].link.poll_recv(cx) {
                return Poll::Ready(self.take(at, bytes));
            }
        }
        Poll::Pending
    }

    /// A frame or close already queued on some link, without waiting.
    pub(super) fn try_next(&mut self) -> Option<Inbound> {
        let n = self.readers.len();
        for step in 0..n {
            let at = (self.next + step) % n;
            match self.readers[at].link.try_recv() {
                Ok(None) => {}
                Ok(Some(bytes)) => return Some(self.take(at, Some(bytes))),
                Err(_) => return Some(self.take(at, None)),
            }
        }
        None
    }

    /// What link `at` gave: a decoded frame, or its close (the link is dropped then).
    fn take(&mut self, at: usize, bytes: Option<Vec<u8>>) -> Inbound {
        let (peer, link_id) = (self.readers[at].peer, self.readers[at].link_id);
        self.next = at + 1;
        if let Some(bytes) = bytes {
            match codec::decode::<GroupFrame>(&bytes) {
                Ok(frame) => {
                    self.received.count(&peer, frame_kind(&frame), bytes.len());
                    return Inbound::Frame { peer, frame };
                }
                Err(err) => {
                    tracing::warn!(peer = %Short(&peer), %err, "undecodable group frame; closing the link");
                    self.readers[at].link.close();
                }
            }
        }
        self.readers.swap_remove(at);
        Inbound::Closed { peer, link_id }
    }
}
