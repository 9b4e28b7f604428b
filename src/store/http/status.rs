//! `GET /v1/status`: what a node knows of itself, its group and its store, as JSON.

use crate::groups::raft::Role;
use crate::groups::snapshot::SnapshotStats;
use crate::groups::GroupStatus;
use crate::network::PeerAddr;
use crate::store::kv::KvState;
use serde::{Deserialize, Serialize};

/// `GET /v1/status`: what this node knows of itself and its group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node's peer id (hex).
    pub id: String,
    /// This node's `ID@IP:PORT`, as peers dial it.
    pub addr: String,
    /// The group id (hex).
    pub group: String,
    /// `follower`, `pre_candidate`, `candidate` or `leader`.
    pub role: String,
    /// The current term.
    pub term: u64,
    /// The leader of this term, if known (peer id, hex).
    pub leader: Option<String>,
    /// The commit index this node knows.
    pub commit: u64,
    /// The last index applied to this node's map.
    pub applied: u64,
    /// The last log entry.
    pub last: LogPosition,
    /// The last entry known durable on this node's disk.
    pub durable: LogPosition,
    /// The current configuration.
    pub members: Members,
    /// Peers with a live link for this group.
    pub bonded: Vec<String>,
    /// A leader is known and no catch-up is running.
    pub online: bool,
    /// A catch-up (log replay) is running.
    pub syncing: bool,
    /// The group is idle here: no heartbeats or election timer until a write, a read
    /// or a lost link wakes it (see "Many groups per node" in the README).
    #[serde(default)]
    pub quiesced: bool,
    /// Set when the group stopped, with the reason.
    pub stopped: Option<String>,
    /// The first index still in the log (it is pruned behind snapshots).
    #[serde(default)]
    pub log_start: u64,
    /// Complete snapshots this node holds, oldest first.
    #[serde(default)]
    pub snapshots: Vec<SnapshotView>,
    /// The snapshot transfer in progress, if any.
    #[serde(default)]
    pub transfer: Option<TransferView>,
    /// Snapshot chunks this node served to others.
    #[serde(default)]
    pub chunks_served: u64,
    /// Snapshot chunks this node fetched from others.
    #[serde(default)]
    pub chunks_fetched: u64,
    /// How much log this node keeps for members catching up, and the figures it is sized
    /// by (absent from nodes that predate it).
    #[serde(default)]
    pub retention: Option<RetentionView>,
    /// The founding this node belongs to (cluster id, hex), once it has one.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Linked peers of another founding of this group, refused (see the README's
    /// "Joining a node to an existing group").
    #[serde(default)]
    pub conflicts: Vec<ClusterConflict>,
    /// The store on this node (absent from nodes that predate it).
    #[serde(default)]
    pub store: Option<StoreView>,
    /// The leader's HTTP API, as it announced it, when known.
    #[serde(default)]
    pub leader_http: Option<String>,
    /// Where each member is reached, by id: its peers' address and HTTP API as this node
    /// knows them (`GET /v1/members` has the rest).
    #[serde(default)]
    pub member_addrs: std::collections::BTreeMap<String, MemberAddrs>,
    /// The data directory's disk (absent from nodes that predate it or keep no data
    /// directory).
    #[serde(default)]
    pub disk: Option<DiskView>,
}

/// The data directory's disk in [`NodeStatus`]: what the free-space alarm acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskView {
    /// Bytes free on its file system.
    pub free_bytes: u64,
    /// The file system's size.
    pub total_bytes: u64,
    /// The reserve (`--min-free-mib`).
    pub reserve_bytes: u64,
    /// The alarm as the group acts on it: no writes or new entries taken while true.
    pub low: bool,
}

/// A member's addresses in [`NodeStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddrs {
    /// The peers' (QUIC) address this node dials it at.
    pub addr: Option<String>,
    /// Its HTTP API, as it announced it.
    pub http: Option<String>,
}

/// A peer of another founding, in [`NodeStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConflict {
    /// The peer (hex).
    pub peer: String,
    /// Its cluster id (hex).
    pub cluster: String,
}

/// The store in [`NodeStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreView {
    /// The revision of the state this node serves (the index of the last command applied).
    pub revision: u64,
    /// Live keys.
    pub keys: u64,
    /// The oldest revision a watch may start from here.
    pub history_oldest: u64,
    /// Events in the history.
    pub history_events: u64,
    /// Bytes of the history (keys, values and previous values, plus a fixed overhead per
    /// event).
    pub history_bytes: u64,
    /// Watches open on this node.
    pub watchers: u64,
}

/// A snapshot in [`NodeStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotView {
    /// Anchor index (the marker entry it was cut after).
    pub index: u64,
    /// Anchor term.
    pub term: u64,
    /// Raw bytes of the state.
    pub raw_bytes: u64,
    /// Bytes stored (zstd).
    pub stored_bytes: u64,
    /// Chunks.
    pub chunks: u32,
}

/// Log retention for catching-up members in [`NodeStatus`] (see the README's "SnapshotSync
/// and log compaction").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionView {
    /// Milliseconds the latest snapshot transfer a member reported took to ship (choosing
    /// the snapshot to its last chunk stored); absent before any.
    pub ship_ms: Option<u64>,
    /// Milliseconds that transfer took from its last chunk to the state swapped in.
    pub install_ms: Option<u64>,
    /// Entries committed per second, over about the last 30 seconds.
    pub write_rate: u64,
    /// Entries kept behind the newest snapshot: `keep_tail`, or `write_rate × (ship_ms +
    /// install_ms) × 2` when that is more (at most the `max_retained` setting).
    pub tail_kept: u64,
    /// The lowest index a catching-up member pinned: no entry after it is pruned here.
    pub pinned_from: Option<u64>,
    /// Live pins: member (peer id, hex) and the index it needs the log after.
    pub pins: std::collections::BTreeMap<String, u64>,
    /// Live pins ignored: they reach more than `max_retained` entries back.
    pub pins_ignored: u64,
    /// This node's own last install: milliseconds to ship and to install (0 before one).
    pub own_ship_ms: u64,
    /// See `own_ship_ms`.
    pub own_install_ms: u64,
}

/// A transfer in [`NodeStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    /// Anchor index of the snapshot being fetched (0 while discovering).
    pub index: u64,
    /// `discovering`, `fetching` or `installing`.
    pub phase: String,
    /// Chunks verified and stored.
    pub chunks_verified: u32,
    /// Chunks in the snapshot.
    pub chunks_total: u32,
    /// Compressed bytes verified and stored.
    pub bytes_verified: u64,
    /// Compressed bytes in the snapshot.
    pub bytes_total: u64,
    /// Raw bytes of the snapshot's state.
    pub raw_bytes: u64,
    /// Recent rate, compressed bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Peers serving it.
    pub providers: usize,
}

/// A log position in [`NodeStatus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    /// The entry's index.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
}

/// The configuration in [`NodeStatus`] (peer ids, hex).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// The voters.
    pub voters: Vec<String>,
    /// The learners (catching up or observers).
    pub learners: Vec<String>,
}

impl NodeStatus {
    /// The JSON view of a group status, for the node at `addr`.
    pub fn new(s: &GroupStatus, addr: &PeerAddr) -> Self {
        NodeStatus {
            id: s.id.to_string(),
            addr: addr.to_string(),
            group: s.group.to_string(),
            role: role_name(s.role).to_string(),
            term: s.term.0,
            leader: s.leader.map(|l| l.to_string()),
            commit: s.commit.0,
            applied: s.applied.0,
            last: LogPosition {
                index: s.last.1 .0,
                term: s.last.0 .0,
            },
            durable: LogPosition {
                index: s.durable.1 .0,
                term: s.durable.0 .0,
            },
            members: Members {
                voters: s.members.voters().iter().map(|p| p.to_string()).collect(),
                learners: s.members.learners().keys().map(|p| p.to_string()).collect(),
            },
            bonded: s.bonded.iter().map(|p| p.to_string()).collect(),
            online: s.online,
            syncing: s.syncing,
            quiesced: s.quiesced,
            stopped: s.stopped.as_ref().map(ToString::to_string),
            log_start: s.log_start.0,
            snapshots: Vec::new(),
            transfer: None,
            chunks_served: 0,
            chunks_fetched: 0,
            retention: None,
            cluster: s.cluster.map(|c| c.to_string()),
            conflicts: s
                .conflicts
                .iter()
                .map(|(p, c)| ClusterConflict {
                    peer: p.to_string(),
                    cluster: c.to_string(),
                })
                .collect(),
            store: None,
            leader_http: None,
            member_addrs: Default::default(),
            disk: None,
        }
    }

    /// Adds the data directory's disk; `low` is the alarm as the group acts on it.
    pub fn with_disk(mut self, space: crate::data_dir::space::SpaceState, low: bool) -> Self {
        self.disk = Some(DiskView {
            free_bytes: space.free,
            total_bytes: space.total,
            reserve_bytes: space.reserve,
            low,
        });
        self
    }

    /// Adds the leader's HTTP API and every member's addresses.
    pub fn with_roster(mut self, roster: &crate::groups::Roster) -> Self {
        self.leader_http = roster.leader_contact().map(str::to_owned);
        self.member_addrs = roster
            .members
            .iter()
            .map(|m| {
                let addrs = MemberAddrs {
                    addr: m.addr.map(|a| a.to_string()),
                    http: m.contact.clone(),
                };
                (m.peer.to_string(), addrs)
            })
            .collect();
        self
    }

    /// Adds the store's figures.
    pub fn with_store(mut self, state: &KvState, watchers: u64) -> Self {
        self.store = Some(StoreView {
            revision: state.revision,
            keys: state.keys.len() as u64,
            history_oldest: state.history.oldest(),
            history_events: state.history.len() as u64,
            history_bytes: state.history.bytes(),
            watchers,
        });
        self
    }

    /// Adds the snapshots held and the transfer in progress.
    pub fn with_snapshots(mut self, stats: &SnapshotStats) -> Self {
        self.snapshots = stats
            .held()
            .into_iter()
            .map(|h| SnapshotView {
                index: h.anchor.index().0,
                term: h.anchor.term().0,
                raw_bytes: h.raw_bytes,
                stored_bytes: h.compressed_bytes,
                chunks: h.chunks,
            })
            .collect();
        self.chunks_served = SnapshotStats::get(&stats.chunks_served);
        self.chunks_fetched = SnapshotStats::get(&stats.chunks_fetched);
        self.transfer = stats.transfer().map(|t| TransferView {
            index: t.anchor.index().0,
            phase: t.phase.to_string(),
            chunks_verified: t.chunks_verified,
            chunks_total: t.chunks_total,
            bytes_verified: t.bytes_verified,
            bytes_total: t.bytes_total,
            raw_bytes: t.raw_bytes,
            rate_bytes_per_sec: t.rate_bytes_per_sec,
            providers: t.providers,
        });
        let r = stats.retention();
        self.retention = Some(RetentionView {
            ship_ms: r.shipped.map(|s| s.ship_ms),
            install_ms: r.shipped.map(|s| s.install_ms),
            write_rate: r.write_rate,
            tail_kept: r.tail_kept,
            pinned_from: r.pinned_from,
            pins: r.pins.iter().map(|(p, a)| (p.to_string(), *a)).collect(),
            pins_ignored: r.pins_ignored,
            own_ship_ms: SnapshotStats::get(&stats.last_ship_ms),
            own_install_ms: SnapshotStats::get(&stats.last_install_ms),
        });
        self
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}
