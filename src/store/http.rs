//! The node's HTTP API over its key-value group, and the JSON shapes it answers with.
//!
//! | method and path | answer |
//! |---|---|
//! | `PUT /v1/kv/{key}` (body = value) | 200 `{"index":N}` once the write is committed and applied on this node |
//! | `GET /v1/kv/{key}[?consistent]` | 200 with the value bytes (header `x-tessera-index`: the applied index it was read at); 404 when absent |
//! | `DELETE /v1/kv/{key}` | 200 `{"index":N}` (also when the key was absent) |
//! | `GET /v1/status` | 200 [`NodeStatus`] |
//!
//! Keys are any non-empty UTF-8 path (slashes allowed: `/v1/kv/app/db/url` is key
//! `app/db/url`) of at most [`MAX_KEY_BYTES`]; values at most [`MAX_BODY_BYTES`].
//!
//! Any node serves every call. A write sent to a follower is forwarded to the leader
//! through raft (`Group::execute` on a follower), so clients need not find the leader.
//! A plain `GET` is a weak read (this node's state now, possibly stale); `?consistent` is a
//! linearizable read (a read index confirmed by a majority, served once applied here).
//!
//! Errors are JSON [`ErrorBody`] `{"error": "...", "kind": "..."}`: 400 bad key or
//! request, 404 absent key or unknown route, 409 conflicting membership change, 413 value
//! too large, 503 no leader / timeout / write overwritten (retry), 500 group stopped or
//! internal error.

use super::kv::{KvCommand, KvMachine, KvQuery, KvResult};
use crate::groups::raft::{ClientError, Role};
use crate::groups::snapshot::SnapshotStats;
use crate::groups::{Consistency, Group, GroupError, GroupStatus, Index};
use crate::network::PeerAddr;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest value a `PUT` accepts (1 MiB); larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The response header carrying the applied index a read was served at.
pub const INDEX_HEADER: &str = "x-tessera-index";

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
            stopped: s.stopped.clone(),
            log_start: s.log_start.0,
            snapshots: Vec::new(),
            transfer: None,
            chunks_served: 0,
            chunks_fetched: 0,
        }
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

/// The answer to a write: the log index the command was committed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The command's log index.
    pub index: u64,
}

/// Every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One line for people.
    pub error: String,
    /// One word for programs.
    pub kind: ErrorKind,
}

/// What went wrong, for programs (the `kind` field of [`ErrorBody`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 404: the key is absent.
    NotFound,
    /// 404: no such route.
    NoRoute,
    /// 400: bad key or request.
    BadRequest,
    /// 413: the value is larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// 503: no leader is known, or none took the call in time. Retry later.
    NoLeader,
    /// 503: the call did not complete in time; a write may still be applied.
    Timeout,
    /// 503: the write lost its log slot to another leader's entry; it will never apply.
    /// Safe to retry.
    Overwritten,
    /// 503: a catch-up installed state past the write; whether it is included is unknown.
    Unknown,
    /// 409: a membership change conflicts with the current configuration.
    Conflict,
    /// 500: the group stopped (shutdown or a fatal storage error).
    Stopped,
    /// 500: anything else.
    Internal,
}

/// An error answer: status, kind and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, kind: ErrorKind, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                kind,
            },
        }
    }

    /// Maps a group call's failure; `leader_known` (whether this node knows a leader now)
    /// tells "no leader" from "slow" when a call timed out.
    pub fn from_group(err: GroupError, leader_known: bool) -> Self {
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        let msg = err.to_string();
        match &err {
            GroupError::Client(c) => match c {
                ClientError::NotLeader { .. } | ClientError::LeaderNotReady { .. } => {
                    Self::new(unavailable, ErrorKind::NoLeader, msg)
                }
                ClientError::ForwardTimeout { leader: None, .. } => {
                    Self::new(unavailable, ErrorKind::NoLeader, msg)
                }
                ClientError::ForwardTimeout {
                    leader: Some(_), ..
                }
                | ClientError::ReadTimeout { .. } => {
                    Self::new(unavailable, ErrorKind::Timeout, msg)
                }
                ClientError::Overwritten { .. } => {
                    Self::new(unavailable, ErrorKind::Overwritten, msg)
                }
                ClientError::SyncedPast { .. } | ClientError::LeaderLost { .. } => {
                    Self::new(unavailable, ErrorKind::Unknown, msg)
                }
                ClientError::ChangePending { .. } | ClientError::Membership(_) => {
                    Self::new(StatusCode::CONFLICT, ErrorKind::Conflict, msg)
                }
            },
            GroupError::Timeout { .. } if !leader_known => Self::new(
                unavailable,
                ErrorKind::NoLeader,
                format!("no leader: {msg}"),
            ),
            GroupError::Timeout { .. } => Self::new(unavailable, ErrorKind::Timeout, msg),
            GroupError::Stopped { .. } => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Stopped, msg)
            }
            GroupError::Encode { .. } | GroupError::Decode { .. } => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal, msg)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

#[derive(Clone)]
struct Api {
    group: Group<KvMachine>,
    addr: PeerAddr,
    snapshots: Arc<SnapshotStats>,
}

impl Api {
    fn fail(&self, err: GroupError) -> ApiError {
        ApiError::from_group(err, self.group.leader().is_some())
    }
}

/// The API's routes over `group`, for the node at `addr`.
pub fn router(group: Group<KvMachine>, addr: PeerAddr, snapshots: Arc<SnapshotStats>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/kv/{*key}", get(read).put(write).delete(remove))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Api {
            group,
            addr,
            snapshots,
        })
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorKind::NoRoute, "no such route")
}

async fn status(State(api): State<Api>) -> Json<NodeStatus> {
    Json(NodeStatus::new(&api.group.status(), &api.addr).with_snapshots(&api.snapshots))
}

fn key_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(key) = path.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            e.body_text(),
        )
    })?;
    if key.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            "empty key",
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            format!("key of {} bytes exceeds {MAX_KEY_BYTES}", key.len()),
        ));
    }
    Ok(key)
}

/// `consistent` present (any value but `false` or `0`): a strong read.
fn consistency(query: Option<&str>) -> Consistency {
    let strong = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == "consistent").then_some(value)
        })
        .any(|value| value != "false" && value != "0");
    if strong {
        Consistency::Strong
    } else {
        Consistency::Weak
    }
}

async fn read(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let key = key_of(path)?;
    let (result, at) = api
        .group
        .query(
            KvQuery::Get { key: key.clone() },
            consistency(query.as_deref()),
        )
        .await
        .map_err(|e| api.fail(e))?;
    match result {
        KvResult::Value(Some(value)) => Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (
                    header::HeaderName::from_static(INDEX_HEADER),
                    index_header(at),
                ),
            ],
            value,
        )
            .into_response()),
        KvResult::Value(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            format!("key {key:?} not found (read at index {at})"),
        )),
        KvResult::Len(_) | KvResult::Revision(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Internal,
            "the map answered a get with a count",
        )),
    }
}

fn index_header(at: Index) -> HeaderValue {
    HeaderValue::from(at.0)
}

async fn write(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Written>, ApiError> {
    let key = key_of(path)?;
    let value = body.map_err(|e| {
        let status = e.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorKind::TooLarge
        } else {
            ErrorKind::BadRequest
        };
        let error = if kind == ErrorKind::TooLarge {
            format!("value exceeds {MAX_BODY_BYTES} bytes")
        } else {
            e.body_text()
        };
        ApiError::new(status, kind, error)
    })?;
    let command = KvCommand::Put {
        key,
        value: value.to_vec(),
    };
    let index = api.group.execute(command).await.map_err(|e| api.fail(e))?;
    Ok(Json(Written { index: index.0 }))
}

async fn remove(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Written>, ApiError> {
    let key = key_of(path)?;
    let index = api
        .group
        .execute(KvCommand::Delete { key })
        .await
        .map_err(|e| api.fail(e))?;
    Ok(Json(Written { index: index.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_parameter() {
        assert_eq!(consistency(None), Consistency::Weak);
        assert_eq!(consistency(Some("")), Consistency::Weak);
        assert_eq!(consistency(Some("consistent")), Consistency::Strong);
        assert_eq!(consistency(Some("consistent=")), Consistency::Strong);
        assert_eq!(
            consistency(Some("x=1&consistent=true")),
            Consistency::Strong
        );
        assert_eq!(consistency(Some("consistent=false")), Consistency::Weak);
        assert_eq!(consistency(Some("consistent=0")), Consistency::Weak);
        assert_eq!(consistency(Some("inconsistent")), Consistency::Weak);
    }

    #[test]
    fn group_errors_map_to_statuses() {
        let timeout = GroupError::Timeout {
            what: "execute",
            after: std::time::Duration::from_secs(1),
        };
        let e = ApiError::from_group(timeout.clone(), false);
        assert_eq!(
            (e.status, e.body.kind),
            (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::NoLeader)
        );
        let e = ApiError::from_group(timeout, true);
        assert_eq!(
            (e.status, e.body.kind),
            (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Timeout)
        );
        let e = ApiError::from_group(
            GroupError::Stopped {
                reason: "shutdown".into(),
            },
            true,
        );
        assert_eq!(
            (e.status, e.body.kind),
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Stopped)
        );
        let e = ApiError::from_group(
            GroupError::Client(ClientError::NotLeader { leader: None }),
            false,
        );
        assert_eq!(e.body.kind, ErrorKind::NoLeader);
    }
}
