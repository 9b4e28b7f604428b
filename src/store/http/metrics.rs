//! `GET /metrics`: the node's measurements in the Prometheus (OpenMetrics) text format,
//! every name prefixed `tessera_`.
//!
//! Three sources: what the group's worker counts as it runs ([`GroupMetrics`]: sync and
//! apply durations, proposals, leader changes, traffic per peer); what is read from the
//! group's status, the snapshot counters and the store at scrape time ([`StateCollector`]:
//! leader, term, indices, log range, snapshots, watches); and the HTTP requests this API
//! served, counted by the API's [`super::gate`] per route, method and status, with their
//! latency.

use super::Served;
use crate::groups::snapshot::SnapshotStats;
use crate::groups::Group;
use crate::store::feed::Feed;
use crate::store::kv::KvMachine;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

/// The content type of the answer (OpenMetrics text, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's pattern (`/v1/kv/{*key}`), never the key: bounded.
    pub route: &'static str,
    /// The method (any but the standard ones is `other`).
    pub method: &'static str,
    /// The status code.
    pub status: u16,
}

/// Labels of one HTTP route's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteMethod {
    /// The route's pattern.
    pub route: &'static str,
    /// The method.
    pub method: &'static str,
}

/// The node's registry and the HTTP measurements the middleware records.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    latency: Family<RouteMethod, Histogram>,
}

impl NodeMetrics {
    /// A registry of the group's, the state's and the API's measurements.
    pub fn new(
        group: &Group<KvMachine>,
        snapshots: Arc<SnapshotStats>,
        feed: Feed,
        dir: Option<crate::data_dir::DataDir>,
    ) -> Self {
        let mut registry = Registry::with_prefix("tessera");
        group.metrics().register(&mut registry);
        let requests = Family::<RouteLabels, Counter>::default();
        let latency = Family::<RouteMethod, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 2.0, 17))) as fn() -> Histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, per route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency (to the response head), per route and method",
            latency.clone(),
        );
        registry.register_collector(Box::new(StateCollector {
            group: group.clone(),
            snapshots,
            feed,
            dir,
        }));
        NodeMetrics {
            registry,
            requests,
            latency,
        }
    }

    /// The text a scrape gets.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Counts one request (the API's [`super::gate`] calls it for every routed request,
    /// refused ones included), with its latency to the response head (a watch's stream is
    /// not waited for).
    pub fn record(
        &self,
        route: &'static str,
        method: &'static str,
        status: StatusCode,
        started: Instant,
    ) {
        self.latency
            .get_or_create(&RouteMethod { route, method })
            .observe(started.elapsed().as_secs_f64());
        self.requests
            .get_or_create(&RouteLabels {
                route,
                method,
                status: status.as_u16(),
            })
            .inc();
    }
}

/// `GET /metrics`.
pub async fn get(State(api): State<Arc<Served>>) -> Response {
    match api.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        )
            .into_response(),
    }
}

/// Reads state at scrape time: what a gauge of it would show, without the worker setting
/// gauges every turn.
#[derive(Debug)]
struct StateCollector {
    group: Group<KvMachine>,
    snapshots: Arc<SnapshotStats>,
    feed: Feed,
    /// The node's data directory, for its free space.
    dir: Option<crate::data_dir::DataDir>,
}

impl StateCollector {
    /// Encodes one value read at scrape time (a `ConstGauge` or `ConstCounter`).
    fn constant(
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        metric: impl EncodeMetric,
    ) -> Result<(), std::fmt::Error> {
        let encoder = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
        metric.encode(encoder)
    }

    fn gauge(
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: i64,
    ) -> Result<(), std::fmt::Error> {
        Self::constant(encoder, name, help, ConstGauge::new(value))
    }

    fn counter(
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: &AtomicU64,
    ) -> Result<(), std::fmt::Error> {
        let value = SnapshotStats::get(value);
        Self::constant(encoder, name, help, ConstCounter::new(value))
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.group.status();
        let e = &mut encoder;
        let flag = |b: bool| i64::from(b);
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self::gauge(
            e,
            "server_has_leader",
            "1 when a leader is known",
            flag(s.leader.is_some()),
        )?;
        Self::gauge(
            e,
            "server_is_leader",
            "1 when this node leads",
            flag(s.role == crate::groups::raft::Role::Leader),
        )?;
        Self::gauge(e, "server_term", "The current term", int(s.term.0))?;
        if let Some(dir) = &self.dir {
            let space = dir.space().check();
            Self::gauge(
                e,
                "disk_free_bytes",
                "Bytes free on the data directory's file system",
                int(space.free),
            )?;
            Self::gauge(
                e,
                "disk_reserve_bytes",
                "Free space kept (--min-free-mib): below it the node takes no writes",
                int(space.reserve),
            )?;
            Self::constant(
                e,
                "storage_bulk_write_wait_seconds",
                "Time snapshot chunk writes (cuts, transfers) waited for RocksDB to flush, so as never to stall the log's writes",
                ConstCounter::new(dir.store().bulk_write_wait().as_secs_f64()),
            )?;
            // A scrape that cannot read RocksDB's statistics leaves the two counters out.
            if let Ok(stalls) = dir.store().write_stalls() {
                Self::constant(
                    e,
                    "storage_write_stops",
                    "Times RocksDB stopped every write of the node until a flush or compaction caught up",
                    ConstCounter::new(stalls.stops),
                )?;
                Self::constant(
                    e,
                    "storage_write_delays",
                    "Times RocksDB slowed every write of the node to its delayed write rate",
                    ConstCounter::new(stalls.delays),
                )?;
            }
        }
        Self::gauge(
            e,
            "disk_space_alarm",
            "1 while the data directory's disk is below its reserve: no writes or new entries taken",
            flag(s.disk_low),
        )?;
        Self::gauge(
            e,
            "server_commit_index",
            "The commit index this node knows",
            int(s.commit.0),
        )?;
        Self::gauge(
            e,
            "server_applied_index",
            "The last index applied to the store",
            int(s.applied.0),
        )?;
        Self::gauge(
            e,
            "server_catching_up",
            "1 while a catch-up (log replay or snapshot install) runs",
            flag(s.syncing),
        )?;
        Self::gauge(
            e,
            "server_voters",
            "Voters in the current configuration",
            int(s.members.voters().len() as u64),
        )?;
        Self::gauge(
            e,
            "server_learners",
            "Learners in the current configuration",
            int(s.members.learners().len() as u64),
        )?;
        Self::gauge(
            e,
            "network_peers_bonded",
            "Peers with a live link for the group",
            int(s.bonded.len() as u64),
        )?;
        Self::gauge(
            e,
            "log_first_index",
            "The first index still in the log (older ones are pruned behind snapshots)",
            int(s.log_start.0),
        )?;
        Self::gauge(
            e,
            "log_last_index",
            "The last index in the log",
            int(s.last.index().0),
        )?;
        let entries = s
            .last
            .index()
            .0
            .saturating_sub(s.log_start.0.saturating_sub(1));
        Self::gauge(e, "log_entries", "Entries in the log", int(entries))?;
        let snaps = &self.snapshots;
        Self::counter(
            e,
            "snapshot_cuts",
            "Snapshots cut on this node",
            &snaps.snapshots_cut,
        )?;
        Self::counter(
            e,
            "snapshot_chunks_served",
            "Snapshot chunks served to other nodes",
            &snaps.chunks_served,
        )?;
        Self::counter(
            e,
            "snapshot_bytes_served",
            "Snapshot bytes served to other nodes (compressed)",
            &snaps.bytes_served,
        )?;
        Self::counter(
            e,
            "snapshot_chunks_fetched",
            "Snapshot chunks fetched from other nodes",
            &snaps.chunks_fetched,
        )?;
        Self::counter(
            e,
            "snapshot_bytes_fetched",
            "Snapshot bytes fetched from other nodes (compressed)",
            &snaps.bytes_fetched,
        )?;
        Self::counter(
            e,
            "snapshot_chunks_rejected",
            "Snapshot chunks refused (bad checksum or size)",
            &snaps.chunks_rejected,
        )?;
        Self::counter(
            e,
            "snapshot_chunks_damaged",
            "Stored snapshot chunks found damaged at start, fetched again from peers",
            &snaps.damaged_chunks,
        )?;
        Self::counter(
            e,
            "snapshot_chunks_damaged_not_served",
            "Stored snapshot chunks found damaged when a peer asked for them, and not served",
            &snaps.damaged_not_served,
        )?;
        Self::counter(
            e,
            "snapshot_installs",
            "Snapshots installed from other nodes",
            &snaps.installs,
        )?;
        let r = snaps.retention();
        Self::gauge(
            e,
            "snapshot_ship_milliseconds",
            "How long the latest snapshot transfer a member reported took to ship",
            int(r.shipped.map_or(0, |s| s.ship_ms)),
        )?;
        Self::gauge(
            e,
            "snapshot_install_milliseconds",
            "How long that transfer took from its last chunk to the state installed",
            int(r.shipped.map_or(0, |s| s.install_ms)),
        )?;
        Self::gauge(
            e,
            "log_write_rate",
            "Entries committed per second, over about the last 30 seconds",
            int(r.write_rate),
        )?;
        Self::gauge(
            e,
            "log_tail_kept",
            "Entries kept behind the newest snapshot (keep_tail, or as measured transfers need)",
            int(r.tail_kept),
        )?;
        Self::gauge(
            e,
            "log_pins",
            "Catching-up members whose log this node keeps (pins)",
            int(r.pins.len() as u64),
        )?;
        Self::gauge(
            e,
            "log_pinned_from",
            "The lowest index a catching-up member pinned (0: none)",
            int(r.pinned_from.unwrap_or(0)),
        )?;
        let state = self.feed.latest();
        Self::gauge(
            e,
            "store_revision",
            "The store revision this node serves",
            int(state.revision),
        )?;
        Self::gauge(e, "store_keys", "Live keys", int(state.keys.len() as u64))?;
        Self::gauge(
            e,
            "watch_open",
            "Watches and blocking reads open on this node",
            int(self.feed.watchers()),
        )?;
        Ok(())
    }
}
