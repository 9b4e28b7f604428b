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
pub mod health;
pub mod leader;
pub mod members;
pub mod metrics;
pub mod params;
pub mod read;
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
/// when the server stops (see [`close_when_draining`]).
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
    /// then on closes its connection (see [`close_when_draining`]).
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

/// The API's routes. The handlers and the three middlewares share `served` behind one
/// `Arc`: axum clones the state for each of them on every request, and a clone of
/// `Served` itself is a dozen reference counts and two cancellation tokens (each a locked
/// tree node), about 3% of a node's CPU at 64 connections.
pub fn router(served: Served) -> Router {
    let served = Arc::new(served);
    Router::new()
        .route("/v1/status", get(status))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/members", get(members::list).post(members::add))
        .route("/v1/members/{id}", axum::routing::delete(members::remove))
        .route("/v1/members/{id}/promote", post(members::promote))
        .route("/v1/leader/transfer", post(leader::transfer))
        .route("/metrics", get(metrics::get))
        .route("/v1/snapshot", get(backup::get))
        .route(
            "/v1/kv/{*key}",
            get(read::get).put(write::put).delete(write::delete),
        )
        // The empty prefix: every key (ranges, prefix deletes, watches of everything).
        .route("/v1/kv/", get(read::get_root).delete(write::delete_root))
        .route(
            "/v1/txn",
            post(txn::post).layer(DefaultBodyLimit::max(MAX_TXN_BODY_BYTES)),
        )
        .route("/v1/watch/{*prefix}", get(watch::get))
        .route("/v1/watch/", get(watch::get_root))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(
            served.clone(),
            auth::check,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            served.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            served.clone(),
            close_when_draining,
        ))
        .with_state(served)
}

/// While the node drains before a clean stop, every answer carries `Connection: close`,
/// so clients stop reusing their kept-alive connections and open new ones (to this node,
/// still serving, or another). When the server then stops, no active client has a pooled
/// connection left to send a request on just as it closes: HTTP/1 cannot tell such a
/// client whether its write was read, and it could not safely retry. The answer also
/// carries [`DRAINING_HEADER`], so a client with other endpoints moves to one of them
/// instead of opening a new connection here that the stop could cut mid-request.
async fn close_when_draining(
    State(api): State<Arc<Served>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if api.draining.is_cancelled() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        response.headers_mut().insert(
            axum::http::HeaderName::from_static(DRAINING_HEADER),
            axum::http::HeaderValue::from_static("1"),
        );
    }
    response
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorKind::NoRoute, "no such route")
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
