//! `POST /v1/leader/transfer`: hand leadership to a named voter, or to the most caught-up
//! one (body `{"to": "ID"}`, or empty). Any node takes it and relays it to the leader
//! (see [`super::members`]). Answers once the new leader is known, with its id and HTTP
//! API; refused with a 4xx when the target is a learner (409), no member (404), or when
//! another transfer runs (409); 503 when the target did not take over within an election
//! timeout (the leader then still leads).

use super::error::{ApiError, ErrorKind};
use super::members::{leader_or_relay, resolve, Route};
use super::params::Params;
use super::Served;
use crate::groups::raft::ClientError;
use crate::groups::GroupError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `POST /v1/leader/transfer`: the body, all optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The voter to hand leadership to: an id or a unique prefix of at least 4 hex
    /// digits. Absent: the most caught-up voter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The answer of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferAnswer {
    /// The leader before (peer id, hex).
    pub previous: String,
    /// The leader now.
    pub leader: String,
    /// The new leader's HTTP API, if it announced one.
    pub leader_http: Option<String>,
}

/// `POST /v1/leader/transfer`.
pub async fn transfer(
    State(api): State<Arc<Served>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    let body = body.map_err(|e| ApiError::bad(e.body_text()))?;
    let request: TransferRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TransferRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad(format!("expected an empty body or {{\"to\": \"ID\"}}: {e}"))
        })?
    };
    let path = "/v1/leader/transfer";
    let roster = match leader_or_relay(&api, &headers, Method::POST, path, body).await? {
        Route::Lead(roster) => roster,
        Route::Relayed(answer) => return Ok(answer),
    };
    let target = match &request.to {
        Some(id) => Some(resolve(&roster, id)?),
        None => None,
    };
    let previous = roster.me;
    let leader = api
        .group
        .transfer_leadership(target)
        .await
        .map_err(|e| match e {
            GroupError::Client(ClientError::TransferInProgress { to }) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorKind::Conflict,
                format!("a leadership transfer to {to} is already running"),
            ),
            other => api.fail(other),
        })?;
    let roster = api.group.roster().await.map_err(|e| api.fail(e))?;
    Ok(Json(TransferAnswer {
        previous: previous.to_string(),
        leader: leader.to_string(),
        leader_http: roster.get(&leader).and_then(|m| m.contact.clone()),
    })
    .into_response())
}
