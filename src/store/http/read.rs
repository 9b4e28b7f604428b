//! `GET /v1/kv/{key}`: one key's value and revisions, a page of the keys under a prefix
//! (`?recurse`, `?keys`), and blocking reads (`?index=N&wait=DUR`).
//!
//! **Consistency.** Linearizable by default: a read index confirmed by a majority, then
//! this node's state once it has applied that index. `?stale` serves this node's state as
//! it is (no round trip; possibly behind). `?consistent` is accepted and means the
//! default.
//!
//! **Blocking reads** (Consul's): with `?index=N` the answer waits until something under
//! the key (or the prefix) changed after revision N, or until `wait` (default 5 min,
//! at most 10 min, plus up to 1/16 of it at random so waiters spread out) has passed, and
//! then answers with the state at that moment. Pass the `x-tessera-revision` of an answer
//! as the next `index`. The answer's revision is never below N: a node that has not
//! applied N yet (a stale read on a lagging node) waits for it, and if the wait ends
//! before, answers 503 `behind` instead of an older state. A wake-up may be spurious
//! (the history no longer reaches back to N): the client then simply asks again with the
//! new revision.

use super::error::{ApiError, ErrorKind};
use super::params::Params;
use super::shapes::{next_of, KeysAnswer, KvJson, RangeAnswer};
use super::{
    key_of, Served, CREATE_INDEX_HEADER, MOD_INDEX_HEADER, REVISION_HEADER, VERSION_HEADER,
};
use crate::groups::Consistency;
use crate::store::kv::command::{DEFAULT_RANGE_LIMIT, MAX_PAGE_BYTES, MAX_RANGE_LIMIT};
use crate::store::kv::{KvQuery, KvState, RangeRequest};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A blocking read's wait when `wait` is not given (Consul's).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The longest `wait` (Consul's cap).
pub const MAX_WAIT: Duration = Duration::from_secs(600);

const PARAMS: &[&str] = &[
    "recurse",
    "keys",
    "limit",
    "after",
    "index",
    "wait",
    "stale",
    "consistent",
];

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// What one read asks.
struct ReadRequest {
    key: String,
    range: Option<RangeRequest>,
    stale: bool,
    index: Option<u64>,
    wait: Duration,
}

impl ReadRequest {
    fn parse(key: String, p: &Params) -> Result<Self, ApiError> {
        let recurse = p.flag("recurse")?;
        let keys = p.flag("keys")?;
        let stale = p.flag("stale")?;
        if stale && p.flag("consistent")? {
            return Err(ApiError::bad("stale and consistent exclude each other"));
        }
        let limit = p.number("limit")?;
        let after = p.string("after");
        let index = p.number("index")?;
        let wait = p.duration("wait", MAX_WAIT)?;
        if wait.is_some() && index.is_none() {
            return Err(ApiError::bad(
                "wait needs index (the revision to wait past)",
            ));
        }
        let range = if recurse || keys {
            let limit = match limit {
                None => DEFAULT_RANGE_LIMIT,
                Some(n) if (1..=u64::from(MAX_RANGE_LIMIT)).contains(&n) => n as u32,
                Some(n) => {
                    return Err(ApiError::bad(format!(
                        "limit {n} outside 1..={MAX_RANGE_LIMIT}"
                    )))
                }
            };
            Some(RangeRequest {
                prefix: key.clone(),
                after,
                limit,
                keys_only: keys,
            })
        } else {
            if limit.is_some() || after.is_some() {
                return Err(ApiError::bad(
                    "limit and after page a range: add recurse or keys",
                ));
            }
            if key.is_empty() {
                return Err(ApiError::bad(
                    "empty key (add recurse or keys to list every key)",
                ));
            }
            None
        };
        Ok(ReadRequest {
            key,
            range,
            stale,
            index,
            wait: wait.unwrap_or(DEFAULT_WAIT),
        })
    }
}

/// `GET /v1/kv/{key}`.
pub async fn get(
    State(api): State<Arc<Served>>,
    path: Result<Path<String>, PathRejection>,
    query: Pairs,
) -> Result<Response, ApiError> {
    let key = key_of(path, true)?;
    serve(api, key, query).await
}

/// `GET /v1/kv/`: the empty prefix.
pub async fn get_root(State(api): State<Arc<Served>>, query: Pairs) -> Result<Response, ApiError> {
    serve(api, String::new(), query).await
}

async fn serve(api: Arc<Served>, key: String, query: Pairs) -> Result<Response, ApiError> {
    let params = Params::parse(query, PARAMS)?;
    let request = ReadRequest::parse(key, &params)?;
    let (mut state, mut revision) = read_state(&api, request.stale).await?;
    if let Some(n) = request.index {
        let deadline = Instant::now() + with_jitter(request.wait);
        let exact = request.range.is_none();
        state = wait_past(&api, state, &request.key, exact, n, deadline).await;
        revision = revision.max(state.revision);
        if revision < n {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Behind,
                format!(
                    "this node has applied revision {revision}, not yet {n}: retry later or on another node"
                ),
            )
            .at(revision));
        }
    }
    Ok(answer(&state, revision, &request))
}

/// The state to read and its revision: after a read index unless `stale`.
pub(super) async fn read_state(api: &Served, stale: bool) -> Result<(Arc<KvState>, u64), ApiError> {
    let at = if stale || local_read_bug() {
        api.group.status().applied.0
    } else {
        let (_, at) = api
            .group
            .query(KvQuery::Revision, Consistency::Strong)
            .await
            .map_err(|e| api.fail(e))?;
        at.0
    };
    // Published before the worker answered (or before it published `applied`), so it
    // holds everything up to `at`: `at` itself may be a no-op entry past the last
    // command.
    let state = api.feed.latest();
    let revision = at.max(state.revision);
    Ok((state, revision))
}

/// The deliberate bug `TESSERA_DELIBERATE_BUG=local-read` (test builds only, see
/// `tessera_storage::faults`): every read served from this node's copy as if it were
/// linearizable, so the nemesis suite can prove it catches a stale read.
#[cfg(feature = "fault-injection")]
fn local_read_bug() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        let on = std::env::var(tessera_storage::faults::BUG_VAR).is_ok_and(|v| v == "local-read");
        if on {
            tracing::warn!("DELIBERATE BUG local-read: reads skip the read index");
        }
        on
    })
}

#[cfg(not(feature = "fault-injection"))]
fn local_read_bug() -> bool {
    false
}

/// `wait` plus up to a sixteenth of it, at random (Consul's spread).
fn with_jitter(wait: Duration) -> Duration {
    let sixteenth = wait.as_millis() as u64 / 16;
    let extra = match sixteenth {
        0 => 0,
        n => getrandom::u64().unwrap_or(0) % n,
    };
    wait + Duration::from_millis(extra)
}

/// Waits until the state shows a change under `prefix` (only `prefix` itself when
/// `exact`) after revision `since`, until `deadline`, or until the node stops; returns
/// the newest state seen.
pub(super) async fn wait_past(
    api: &Served,
    mut state: Arc<KvState>,
    prefix: &str,
    exact: bool,
    since: u64,
    deadline: Instant,
) -> Arc<KvState> {
    let mut rx = api.feed.waiter();
    // Events up to `checked` are known not to match.
    let mut checked = since;
    loop {
        match state.changed_since(prefix, exact, checked) {
            None | Some(true) => return state,
            Some(false) => checked = checked.max(state.revision),
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return state;
                }
                let next = rx.borrow_and_update().clone();
                if next.revision > state.revision {
                    state = next;
                }
            }
            () = tokio::time::sleep_until(deadline) => return state,
            () = api.stop.cancelled() => return state,
        }
    }
}

fn header_value(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

fn answer(state: &KvState, revision: u64, request: &ReadRequest) -> Response {
    let revision_header = (
        HeaderName::from_static(REVISION_HEADER),
        header_value(revision),
    );
    let Some(range) = &request.range else {
        return match state.get(&request.key) {
            Some(entry) => (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    ),
                    revision_header,
                    (
                        HeaderName::from_static(MOD_INDEX_HEADER),
                        header_value(entry.mod_index),
                    ),
                    (
                        HeaderName::from_static(CREATE_INDEX_HEADER),
                        header_value(entry.create_index),
                    ),
                    (
                        HeaderName::from_static(VERSION_HEADER),
                        header_value(entry.version),
                    ),
                ],
                entry.value.as_bytes().to_vec(),
            )
                .into_response(),
            None => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorKind::NotFound,
                format!(
                    "key {:?} not found (read at revision {revision})",
                    request.key
                ),
            )
            .at(revision)
            .into_response(),
        };
    };
    let page = state.range(range, MAX_PAGE_BYTES);
    let next = next_of(&page);
    let body = if range.keys_only {
        Json(KeysAnswer {
            revision,
            keys: page.records.iter().map(|r| r.key.to_string()).collect(),
            more: page.more,
            next,
        })
        .into_response()
    } else {
        Json(RangeAnswer {
            revision,
            kvs: page.records.iter().map(KvJson::from).collect(),
            more: page.more,
            next,
        })
        .into_response()
    };
    ([revision_header], body).into_response()
}
