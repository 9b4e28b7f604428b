//! What one group's worker measures as it runs, for `/metrics` (Prometheus): storage sync
//! and apply durations, proposals committed and failed, leader changes, and the frames and
//! bytes sent to and received from each peer.
//!
//! The worker updates these as it goes (atomic counters and histograms, shared with the
//! handle by [`Group::metrics`](super::Group::metrics)); gauges that are a read of state
//! (term, commit, applied, log range) are taken from the group's status at scrape time
//! instead. Names follow etcd's where the meaning is the same (`*_fsync_duration_seconds`,
//! `*_proposals_committed_total`, `*_peer_sent_bytes_total`).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// One peer and one kind of frame: the labels of the traffic counters. Bounded: peers
/// that linked to this group times a dozen kinds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerFrame {
    /// The peer's id, its first 16 hex digits.
    pub peer: PeerLabel,
    /// `append` (AppendEntries, heartbeats included), `append_response`, `vote`,
    /// `hello`, `sync` (state sync), or the consensus message's name.
    pub kind: &'static str,
}

/// The first 8 bytes of a peer's id, written as 16 hex digits: `Copy`, so counting a frame
/// allocates nothing (the label is only formatted at scrape time).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct PeerLabel([u8; 8]);

impl From<&crate::PeerId> for PeerLabel {
    fn from(peer: &crate::PeerId) -> Self {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&peer.0[..8]);
        PeerLabel(prefix)
    }
}

impl EncodeLabelValue for PeerLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for byte in self.0 {
            write!(encoder, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// One stage of a write (see `worker/trace.rs`): the label of the stage histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteStage {
    /// `queue`, `propose`, `leader_sync`, `follower_ack`, `commit`, `apply`, `total` (on
    /// the leader) or `follower_append` (on a follower).
    pub stage: &'static str,
}

/// A group's measurements (cheap to clone: every part is shared).
#[derive(Clone, Debug)]
pub struct GroupMetrics {
    /// Seconds per storage sync (one RocksDB write batch and fsync).
    pub sync_seconds: Histogram,
    /// Seconds per batch of committed commands applied to the state machine.
    pub apply_seconds: Histogram,
    /// Proposals made on this node (its own, or forwarded from it) that committed.
    pub proposals_committed: Counter,
    /// Proposals made on this node that failed (not leader, overwritten, timed out).
    pub proposals_failed: Counter,
    /// Proposals and strong reads waiting for an outcome.
    pub proposals_pending: Gauge,
    /// Times this node saw the leader change to a known leader.
    pub leader_changes: Counter,
    /// Times the group quiesced here (went idle: see `Node::is_quiesced`).
    pub quiesces: Counter,
    /// Frames sent, per peer and kind.
    pub sent_frames: Family<PeerFrame, Counter>,
    /// Bytes sent, per peer and kind.
    pub sent_bytes: Family<PeerFrame, Counter>,
    /// Frames received, per peer and kind.
    pub received_frames: Family<PeerFrame, Counter>,
    /// Bytes received, per peer and kind.
    pub received_bytes: Family<PeerFrame, Counter>,
    /// Seconds per stage of the writes traced one at a time (`worker/trace.rs`).
    pub write_stages: Family<WriteStage, Histogram>,
}

impl Default for GroupMetrics {
    fn default() -> Self {
        // 100 µs to about 6.5 s, doubling: an fsync of a virtual disk and a stalled one.
        let seconds = || Histogram::new(exponential_buckets(0.0001, 2.0, 17));
        GroupMetrics {
            sync_seconds: seconds(),
            apply_seconds: seconds(),
            proposals_committed: Counter::default(),
            proposals_failed: Counter::default(),
            proposals_pending: Gauge::default(),
            leader_changes: Counter::default(),
            quiesces: Counter::default(),
            sent_frames: Family::default(),
            sent_bytes: Family::default(),
            received_frames: Family::default(),
            received_bytes: Family::default(),
            // 10 µs to about 5 s, doubling: most stages of a write are far under a
            // millisecond on a local disk.
            write_stages: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.00001, 2.0, 20))) as fn() -> Histogram,
            ),
        }
    }
}

impl GroupMetrics {
    /// Registers every measurement in `registry` (names without the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "disk_sync_duration_seconds",
            "Storage syncs (one write batch and fsync) by duration",
            self.sync_seconds.clone(),
        );
        registry.register(
            "server_apply_duration_seconds",
            "Batches of committed commands applied to the state machine, by duration",
            self.apply_seconds.clone(),
        );
        registry.register(
            "server_proposals_committed",
            "Proposals made on this node that committed",
            self.proposals_committed.clone(),
        );
        registry.register(
            "server_proposals_failed",
            "Proposals made on this node that failed",
            self.proposals_failed.clone(),
        );
        registry.register(
            "server_proposals_pending",
            "Proposals and linearizable reads waiting for an outcome",
            self.proposals_pending.clone(),
        );
        registry.register(
            "server_leader_changes_seen",
            "Times this node saw a new leader",
            self.leader_changes.clone(),
        );
        registry.register(
            "server_quiesces",
            "Times the group went idle here (quiesced: no heartbeats, slow ticks)",
            self.quiesces.clone(),
        );
        registry.register(
            "network_peer_sent_frames",
            "Group frames sent, per peer and kind",
            self.sent_frames.clone(),
        );
        registry.register(
            "network_peer_sent_bytes",
            "Bytes of group frames sent, per peer and kind",
            self.sent_bytes.clone(),
        );
        registry.register(
            "network_peer_received_frames",
            "Group frames received, per peer and kind",
            self.received_frames.clone(),
        );
        registry.register(
            "write_stage_duration_seconds",
            "Stages of the writes traced one at a time (leader: queue, propose, leader_sync, \
             follower_ack, commit, apply, total; follower: follower_append), by duration",
            self.write_stages.clone(),
        );
        registry.register(
            "network_peer_received_bytes",
            "Bytes of group frames received, per peer and kind",
            self.received_bytes.clone(),
        );
    }

    /// One stage of a traced write took `seconds`.
    pub(crate) fn write_stage(&self, stage: &'static str, seconds: f64) {
        self.write_stages
            .get_or_create(&WriteStage { stage })
            .observe(seconds);
    }

    /// Test view: how many writes `stage` recorded.
    #[cfg(test)]
    pub(crate) fn write_stage_count(&self, stage: &str) -> u64 {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let line = format!("write_stage_duration_seconds_count{{stage=\"{stage}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// One storage sync took `took`.
    pub(crate) fn synced(&self, took: Duration) {
        self.sync_seconds.observe(took.as_secs_f64());
    }

    /// The counters of the frames this group sends, per peer and kind.
    pub(crate) fn sent_traffic(&self) -> PeerTraffic {
        PeerTraffic::new(self.sent_frames.clone(), self.sent_bytes.clone())
    }

    /// The counters of the frames this group receives, per peer and kind.
    pub(crate) fn received_traffic(&self) -> PeerTraffic {
        PeerTraffic::new(self.received_frames.clone(), self.received_bytes.clone())
    }
}

/// At most this many label sets keep their counters at hand in a [`PeerTraffic`]; more
/// (peers coming and going for a long time) are looked up in the families each time.
const TRAFFIC_HANDLES: usize = 256;

/// One direction of a group's traffic counters, with the handles of the labels seen so
/// far kept by their owner (the worker's bonds or readers): counting a frame is two
/// atomic adds after a short scan, not two locked, hashed look-ups in the families, which
/// took 2-4% of a node's CPU with 100 groups written at once (`benches/many_groups.rs`).
#[derive(Debug, Default)]
pub(crate) struct PeerTraffic {
    frames: Family<PeerFrame, Counter>,
    bytes: Family<PeerFrame, Counter>,
    /// Label sets seen, with their frame and byte counters.
    handles: Vec<(PeerFrame, Counter, Counter)>,
}

impl PeerTraffic {
    fn new(frames: Family<PeerFrame, Counter>, bytes: Family<PeerFrame, Counter>) -> Self {
        PeerTraffic {
            frames,
            bytes,
            handles: Vec::new(),
        }
    }

    /// One frame of `bytes` went to or came from `peer`.
    pub(crate) fn count(&mut self, peer: &crate::PeerId, kind: &'static str, bytes: usize) {
        let labels = PeerFrame {
            peer: PeerLabel::from(peer),
            kind,
        };
        if let Some((_, frames, sizes)) = self.handles.iter().find(|(l, _, _)| *l == labels) {
            frames.inc();
            sizes.inc_by(bytes as u64);
            return;
        }
        let frames = self.frames.get_or_create(&labels).clone();
        let sizes = self.bytes.get_or_create(&labels).clone();
        frames.inc();
        sizes.inc_by(bytes as u64);
        if self.handles.len() < TRAFFIC_HANDLES {
            self.handles.push((labels, frames, sizes));
        }
    }
}

/// The kind label of a consensus message.
pub(crate) fn message_kind(message: &super::raft::Message) -> &'static str {
    use super::raft::Message;
    match message {
        Message::AppendEntries(_) => "append",
        Message::AppendEntriesResponse(_) => "append_response",
        Message::RequestVote(_) | Message::PreVote(_) => "vote",
        Message::RequestVoteResponse(_) | Message::PreVoteResponse(_) => "vote_response",
        Message::ReadIndex(_) | Message::ReadIndexResponse(_) => "read_index",
        Message::Forward(_) => "forward",
        Message::TimeoutNow(_) => "timeout_now",
        Message::Quiesce(_) => "quiesce",
        Message::Wake(_) => "wake",
    }
}

/// The kind label of a group frame.
pub(crate) fn frame_kind(frame: &super::wire::GroupFrame) -> &'static str {
    use super::wire::GroupFrame;
    match frame {
        GroupFrame::Raft(m) => message_kind(m),
        GroupFrame::Hello(_) => "hello",
        GroupFrame::ToProvider(_) | GroupFrame::ToSession(_) => "sync",
    }
}
