//! The node's HTTP API over its key-value group (the README's "HTTP API" section is the
//! reference: every call, parameter, status and JSON shape).
//!
//! | method and path | module |
//! |---|---|
//! | `GET /v1/kv/{key}` (value and revisions; `?recurse`/`?keys` ranges; `?index`/`?wait` blocking) | [`read`] |
//! | `PUT /v1/kv/{key}` (`?cas=N`), `DELETE /v1/kv/{key}` (`?cas=N`, `?recurse`) | [`write`] |
//! | `POST /v1/txn` | [`txn`] |
//! | `GET /v1/watch/{prefix}` (`?from=REV`, `?prev`, `?exact`, `?progress=DUR`) | [`watch`] |
//! | `GET /v1/status` | [`status`] |
//! | `GET /healthz`, `GET /readyz` (probes: 200 or 503) | [`health`] |
//! | `GET /v1/members`, `POST /v1/members`, `POST /v1/members/{id}/promote`, `DELETE /v1/members/{id}` | [`members`] |
//! | `POST /v1/leader/transfer` | [`leader`] |
//! | `GET /metrics` (Prometheus text) | [`metrics`] |
//! | `GET /v1/snapshot` (a consistent backup, streamed) | [`backup`] |
//!
//! Any node serves every call. A write sent to a follower is forwarded to the leader
//! through raft, so clients need not find the leader. Reads are served from the state the
//! machine publishes after every batch ([`crate::store::feed`]): linearizable by default
//! (a read index confirmed by a majority, then this node's state once it applied it),
//! `?stale` reads this node's state as it is. Every answer carries the store revision it
//! was read at in [`REVISION_HEADER`] (and in its JSON when it has a body of JSON).
//! Errors are one line of JSON ([`ErrorBody`]).

pub mod auth;
pub mod backup;
mod error;
pub mod gate;
pub mod health;
pub mod leader;
pub mod members;
pub mod metrics;
pub mod params;
pub mod read;
pub mod routes;
pub mod shapes;
pub mod status;
pub mod txn;
pub mod watch;
pub mod write;

pub use error::{ApiError, ErrorBody, ErrorKind};
pub use leader::{TransferAnswer, TransferRequest};
pub use members::{AddMember, MemberJson, MembersAnswer, FORWARDED_HEADER};
pub use shapes::{
    CompareJson, KeysAnswer, KvJson, OpAnswer, OpJson, RangeAnswer, TxnAnswer, TxnJson, WatchLine,
    Written,
};
pub use status::{
    ClusterConflict, LogPosition, MemberAddrs, Members, NodeStatus, RetentionView, SnapshotView,
    StoreView, TransferView,
};

use super::feed::Feed;
use super::kv::command::{check_key, MAX_VALUE_BYTES};
use super::kv::{KvCommand, KvMachine, Outcomes, Txn, TxnOutcome};
use crate::groups::snapshot::SnapshotStats;
use crate::groups::{Group, GroupError};
use crate::network::{Network, PeerAddr};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use super::kv::command::MAX_KEY_BYTES;

/// Largest value a `PUT` accepts (1 MiB); larger bodies get 413.
pub const MAX_BODY_BYTES: usize = MAX_VALUE_BYTES;

/// Largest transaction body (8 MiB: 4 MiB of values in base64, and the rest).
pub const MAX_TXN_BODY_BYTES: usize = 8 << 20;

/// The response header carrying the store revision an answer was read at.
pub const REVISION_HEADER: &str = "x-tessera-revision";

/// The response header carrying a key's `mod_index`.
pub const MOD_INDEX_HEADER: &str = "x-tessera-mod-index";

/// The response header carrying a key's `create_index`.
pub const CREATE_INDEX_HEADER: &str = "x-tessera-create-index";

/// The response header carrying a key's version.
pub const VERSION_HEADER: &str = "x-tessera-version";

/// Set on every answer while the node drains before a clean stop: a client that knows
/// other nodes sends its next call to one of them, so it is not mid-request on this node
/// when the server stops (see [`gate::mark_draining`]).
pub const DRAINING_HEADER: &str = "x-tessera-draining";

/// What the API serves.
#[derive(Clone)]
pub struct Served {
    /// The key-value group.
    pub group: Group<KvMachine>,
    /// This node's address.
    pub addr: PeerAddr,
    /// Its network (members added through the API are dialled from it).
    pub network: Network,
    /// Its `/metrics` registry and the HTTP measurements.
    pub metrics: Arc<metrics::NodeMetrics>,
    /// The bearer tokens it takes (none: the API is open).
    pub tokens: Arc<auth::Tokens>,
    /// How it connects to the leader's API when it relays a call there (trusted CAs, its
    /// own certificate; see [`crate::store::tls`]).
    pub relay_tls: crate::store::client::ClientTls,
    /// Its snapshot counters.
    pub snapshots: Arc<SnapshotStats>,
    /// The states its machine publishes.
    pub feed: Feed,
    /// Its registrations of transaction outcomes.
    pub outcomes: Outcomes,
    /// Cancelled when the node stops: watches and blocking reads end.
    pub stop: CancellationToken,
    /// Cancelled when the node starts draining before a clean stop: every answer from
    /// then on closes its connection (see [`gate::mark_draining`]).
    pub draining: CancellationToken,
}

impl Served {
    fn fail(&self, err: GroupError) -> ApiError {
        ApiError::from_group(err, self.group.leader().is_some())
    }

    /// Replicates `txn` with a ticket and returns its index and outcome.
    async fn execute_txn(&self, txn: Txn) -> Result<(u64, TxnOutcome), ApiError> {
        let (ticket, pending) = self.outcomes.register(self.addr.id);
        let index = self
            .group
            .execute(KvCommand::Txn {
                txn,
                ticket: Some(ticket),
            })
            .await
            .map_err(|e| self.fail(e))?;
        let outcome = pending.take().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Unknown,
                format!(
                    "the transaction committed at index {} but this node installed state past it before applying it: its outcome is unknown",
                    index.0
                ),
            )
        })?;
        Ok((index.0, outcome))
    }
}

/// The API's routes, each behind the [`gate`]. The handlers and the gate share `served`
/// behind one `Arc`: axum clones the state for each of them on every request, and a clone of
/// `Served` itself is a dozen reference counts and two cancellation tokens (each a locked
/// tree node), about 3% of a node's CPU at 64 connections.
pub fn router(served: Served) -> Router {
    let served = Arc::new(served);
    Router::new()
        .route(routes::STATUS, get(status))
        .route(routes::HEALTHZ, get(health::healthz))
        .route(routes::READYZ, get(health::readyz))
        .route(routes::MEMBERS, get(members::list).post(members::add))
        .route(routes::MEMBER, axum::routing::delete(members::remove))
        .route(routes::PROMOTE, post(members::promote))
        .route(routes::TRANSFER, post(leader::transfer))
        .route(routes::METRICS, get(metrics::get))
        .route(routes::SNAPSHOT, get(backup::get))
        .route(
            routes::KV,
            get(read::get).put(write::put).delete(write::delete),
        )
        // The empty prefix: every key (ranges, prefix deletes, watches of everything).
        .route(
            routes::KV_ROOT,
            get(read::get_root).delete(write::delete_root),
        )
        .route(
            routes::TXN,
            post(txn::post).layer(DefaultBodyLimit::max(MAX_TXN_BODY_BYTES)),
        )
        .route(routes::WATCH, get(watch::get))
        .route(routes::WATCH_ROOT, get(watch::get_root))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(gate::GateLayer::new(served.clone()))
        .with_state(served)
}

/// Not behind the [`gate`] (the router adds route layers to its routes only): marks the
/// answer itself while draining.
async fn no_route(State(api): State<Arc<Served>>) -> axum::response::Response {
    let mut response = axum::response::IntoResponse::into_response(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::NoRoute,
        "no such route",
    ));
    gate::mark_draining(&api, &mut response);
    response
}

async fn no_method(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::NoRoute,
        format!("method {method} is not allowed on this path"),
    )
}

async fn status(State(api): State<Arc<Served>>) -> Json<NodeStatus> {
    let group = api.group.status();
    let mut status = NodeStatus::new(&group, &api.addr)
        .with_snapshots(&api.snapshots)
        .with_store(&api.feed.latest(), api.feed.watchers());
    if let Some(dir) = api.network.data_dir() {
        status = status.with_disk(dir.space().check(), group.disk_low);
    }
    // The status must answer even when the worker is busy or stopped: the addresses come
    // from the worker, so they are left out when it does not answer at once.
    let roster = tokio::time::timeout(std::time::Duration::from_millis(500), api.group.roster());
    if let Ok(Ok(roster)) = roster.await {
        status = status.with_roster(&roster);
    }
    Json(status)
}

/// The key of a `{*key}` route, checked (`prefix`: may be empty).
fn key_of(path: Result<Path<String>, PathRejection>, prefix: bool) -> Result<String, ApiError> {
    let Path(key) = path.map_err(|e| ApiError::bad(e.body_text()))?;
    check_key(&key, prefix).map_err(ApiError::bad)?;
    Ok(key)
}
