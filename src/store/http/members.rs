//! Membership from the outside: `GET /v1/members`, `POST /v1/members` (add a learner),
//! `POST /v1/members/{id}/promote`, `DELETE /v1/members/{id}`.
//!
//! Any node takes every call. Changes are made by the leader: a node that is not the
//! leader relays the call to the leader's HTTP API (which every member announces in its
//! hellos) and passes its answer on, marked with [`FORWARDED_HEADER`] so it is relayed at
//! most once. `GET` is relayed too, because only the leader knows how far each member's
//! log matches; with `?local`, or when the leader cannot be reached, the node answers with
//! its own view (`from_leader: false`).
//!
//! A member is named by its id or a unique prefix of at least [`MIN_ID_PREFIX`] hex digits
//! (as `git` names commits). Refusals say what is wrong: an unknown or ambiguous id is 404
//! or 400, a change that conflicts with the configuration (a duplicate, promoting a voter,
//! removing the last voter, a change while another is in flight) is 409.

use super::auth::bearer;
use super::error::{ApiError, ErrorKind};
use super::params::Params;
use super::Served;
use crate::groups::raft::{ClientError, MembershipError};
use crate::groups::{GroupError, MemberRole, Roster};
use crate::network::PeerAddr;
use crate::store::client::{Client, ClientTls};
use crate::PeerId;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The request header a node sets when it relays a call to its leader.
pub const FORWARDED_HEADER: &str = "x-tessera-forwarded";

/// The shortest id prefix that names a member.
pub const MIN_ID_PREFIX: usize = 4;

/// Bound on a relayed call (the leader's own membership change is bounded by the
/// group's call deadline, a few seconds with the default timings).
const RELAY_TIMEOUT: Duration = Duration::from_secs(15);

/// One member in [`MembersAnswer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberJson {
    /// Peer id (hex).
    pub id: String,
    /// `voter`, `learner` (catching up, promoted when caught up) or `observer`.
    pub role: String,
    /// The peers' (QUIC) address the answering node dials it at.
    pub addr: Option<String>,
    /// Its HTTP API, as it announced it.
    pub http: Option<String>,
    /// Whether it is the leader.
    pub leader: bool,
    /// A link to it is up (always true for the answering node itself).
    pub online: bool,
    /// Milliseconds since the answering node last heard from it (`null`: not since that
    /// node started).
    pub last_contact_ms: Option<u64>,
    /// How far its log matches the leader's (known on the leader only).
    pub match_index: Option<u64>,
}

/// `GET /v1/members` and the answer to every change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersAnswer {
    /// The node that answered (peer id, hex).
    pub answered_by: String,
    /// Whether that node is the leader (match indexes are known).
    pub from_leader: bool,
    /// The leader, if known.
    pub leader: Option<String>,
    /// The leader's HTTP API, if known.
    pub leader_http: Option<String>,
    /// The members: voters first, then learners, each in id order.
    pub members: Vec<MemberJson>,
    /// After a change: the index of its configuration entry, committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

impl MembersAnswer {
    /// The JSON view of a roster.
    pub fn new(roster: &Roster) -> Self {
        let leader = roster.leader;
        MembersAnswer {
            answered_by: roster.me.to_string(),
            from_leader: leader == Some(roster.me),
            leader: leader.map(|l| l.to_string()),
            leader_http: roster.leader_contact().map(str::to_owned),
            members: roster
                .members
                .iter()
                .map(|m| MemberJson {
                    id: m.peer.to_string(),
                    role: m.role.as_str().to_string(),
                    addr: m.addr.map(|a| a.to_string()),
                    http: m.contact.clone(),
                    leader: leader == Some(m.peer),
                    online: m.bonded,
                    last_contact_ms: m.last_heard.map(|d| d.as_millis() as u64),
                    match_index: m.matched.map(|i| i.0),
                })
                .collect(),
            index: None,
        }
    }
}

/// `POST /v1/members`: the member to add.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// `ID@IP:PORT`: the new node's id and peers' address.
    pub peer: String,
    /// Add it as an observer (a learner that never votes) instead of a learner that is
    /// promoted once caught up.
    #[serde(default)]
    pub observer: bool,
}

/// `GET /v1/members`: `?local`, this node's own view, not relayed to the leader.
pub async fn list(
    State(api): State<Arc<Served>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let local = Params::parse(query, &["local"])?.flag("local")?;
    let roster = api.group.roster().await.map_err(|e| api.fail(e))?;
    let relayed = headers.contains_key(FORWARDED_HEADER);
    if !local && !relayed && roster.leader != Some(roster.me) {
        if let Some(leader) = roster.leader_contact() {
            let token = bearer(&headers);
            let relayed = relay(
                &api.relay_tls,
                leader,
                Method::GET,
                "/v1/members",
                Bytes::new(),
                token,
            );
            match relayed.await {
                Ok(answer) if answer.status().is_success() => return Ok(answer),
                Ok(_) | Err(_) => {
                    tracing::debug!(leader, "member list: leader unreachable; answering locally")
                }
            }
        }
    }
    Ok(Json(MembersAnswer::new(&roster)).into_response())
}

/// `POST /v1/members`.
pub async fn add(
    State(api): State<Arc<Served>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    let body = body.map_err(|e| ApiError::bad(e.body_text()))?;
    let add: AddMember = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"peer\": \"ID@IP:PORT\", \"observer\": false}}: {e}"
        ))
    })?;
    let peer: PeerAddr = add
        .peer
        .parse()
        .map_err(|e| ApiError::bad(format!("{e}")))?;
    let roster =
        match leader_or_relay(&api, &headers, Method::POST, "/v1/members", body.clone()).await? {
            Route::Lead(roster) => roster,
            Route::Relayed(answer) => return Ok(answer),
        };
    if let Some(m) = roster.get(&peer.id) {
        return Err(conflict(format!(
            "peer {} is already a member ({})",
            peer.id,
            m.role.as_str()
        )));
    }
    // Dialled from now on (and saved with the known peers), so the learner is reached.
    api.network.add_peer(peer);
    let index = api
        .group
        .add_learner(peer.id, add.observer)
        .await
        .map_err(|e| change_error(e, api.group.leader().is_some()))?;
    changed(&api, index.0).await
}

/// `POST /v1/members/{id}/promote`.
pub async fn promote(
    State(api): State<Arc<Served>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    let path = format!("/v1/members/{id}/promote");
    let roster = match leader_or_relay(&api, &headers, Method::POST, &path, Bytes::new()).await? {
        Route::Lead(roster) => roster,
        Route::Relayed(answer) => return Ok(answer),
    };
    let peer = resolve(&roster, &id)?;
    match roster.get(&peer).map(|m| m.role) {
        Some(MemberRole::Voter) => {
            return Err(conflict(format!("peer {peer} is already a voter")));
        }
        Some(MemberRole::Observer) => {
            return Err(conflict(format!(
                "peer {peer} is an observer: observers never vote (remove it and add it again as a learner)"
            )));
        }
        Some(MemberRole::Learner) | None => {}
    }
    let index = api
        .group
        .promote(peer)
        .await
        .map_err(|e| change_error(e, api.group.leader().is_some()))?;
    changed(&api, index.0).await
}

/// `DELETE /v1/members/{id}`.
pub async fn remove(
    State(api): State<Arc<Served>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    let path = format!("/v1/members/{id}");
    let roster = match leader_or_relay(&api, &headers, Method::DELETE, &path, Bytes::new()).await? {
        Route::Lead(roster) => roster,
        Route::Relayed(answer) => return Ok(answer),
    };
    let peer = resolve(&roster, &id)?;
    let index = api
        .group
        .remove_member(peer)
        .await
        .map_err(|e| change_error(e, api.group.leader().is_some()))?;
    changed(&api, index.0).await
}

/// The member list after a change committed at `index`.
async fn changed(api: &Served, index: u64) -> Result<Response, ApiError> {
    let roster = api.group.roster().await.map_err(|e| api.fail(e))?;
    let mut answer = MembersAnswer::new(&roster);
    answer.index = Some(index);
    Ok(Json(answer).into_response())
}

/// Where a membership or leadership call is made.
pub(super) enum Route {
    /// This node leads: the caller makes the change, with the roster read to decide.
    Lead(Roster),
    /// The leader's answer to the same call, relayed.
    Relayed(Response),
}

/// [`Route::Lead`] when this node leads; else the call relayed to the leader. 503 when
/// no leader is known, or when this call was already relayed once and this node does
/// not lead either (leadership moved meanwhile).
pub(super) async fn leader_or_relay(
    api: &Served,
    headers: &HeaderMap,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<Route, ApiError> {
    let roster = api.group.roster().await.map_err(|e| api.fail(e))?;
    if roster.leader == Some(roster.me) {
        return Ok(Route::Lead(roster));
    }
    let no_leader =
        |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::NoLeader, why);
    if headers.contains_key(FORWARDED_HEADER) {
        return Err(no_leader(
            "this node was relayed the call as the leader but no longer leads; retry".into(),
        ));
    }
    let Some(leader) = roster.leader else {
        return Err(no_leader(
            "no leader is known; retry once one is elected".into(),
        ));
    };
    let Some(contact) = roster.leader_contact() else {
        return Err(no_leader(format!(
            "the leader {leader} has not announced its HTTP address to this node yet; retry, or call it directly"
        )));
    };
    relay(&api.relay_tls, contact, method, path, body, bearer(headers))
        .await
        .map(Route::Relayed)
}

/// Sends the call to `leader` (an `http://HOST:PORT` or `https://HOST:PORT`, connecting
/// with `tls`) and returns its answer as it is.
async fn relay(
    tls: &ClientTls,
    leader: &str,
    method: Method,
    path: &str,
    body: Bytes,
    token: Option<&str>,
) -> Result<Response, ApiError> {
    let unreachable = |why: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::NoLeader,
            format!("relaying the call to the leader at {leader}: {why} (if the leader died, retry once the next one is elected)"),
        )
    };
    let client = Client::with_endpoints_and_tls(&[leader], RELAY_TIMEOUT, tls)
        .map_err(|e| unreachable(e.to_string()))?
        .relaying()
        .with_token(token);
    let answer = client
        .relay(method, path, body)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut response = (answer.status, answer.body).into_response();
    for name in [axum::http::header::CONTENT_TYPE] {
        if let Some(v) = answer.headers.get(&name) {
            response.headers_mut().insert(name, v.clone());
        }
    }
    Ok(response)
}

/// The member `id` names: a whole id or a unique prefix of at least [`MIN_ID_PREFIX`]
/// hex digits.
pub(super) fn resolve(roster: &Roster, id: &str) -> Result<PeerId, ApiError> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < MIN_ID_PREFIX || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad(format!(
            "member id {id:?}: expected a peer id or a prefix of at least {MIN_ID_PREFIX} hex digits"
        )));
    }
    let matching: Vec<PeerId> = roster
        .members
        .iter()
        .map(|m| m.peer)
        .filter(|p| p.to_string().starts_with(&id))
        .collect();
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::NotMember,
            format!("no member has id {id}"),
        )),
        many => Err(ApiError::bad(format!(
            "member id {id} is ambiguous: {} members start with it",
            many.len()
        ))),
    }
}

fn conflict(why: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, ErrorKind::Conflict, why)
}

/// A membership change's failure, in words; `leader_known` as for
/// [`ApiError::from_group`].
fn change_error(err: GroupError, leader_known: bool) -> ApiError {
    match &err {
        GroupError::Client(ClientError::Membership(m)) => match m {
            MembershipError::AlreadyMember(p) => conflict(format!("peer {p} is already a member")),
            MembershipError::NotPromotable(p) => conflict(format!(
                "peer {p} is not a learner catching up (a voter, or an observer)"
            )),
            MembershipError::NotMember(p) => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorKind::NotMember,
                format!("peer {p} is not a member"),
            ),
            MembershipError::LastVoter(p) => conflict(format!(
                "cannot remove {p}: it is the last voter, and a group without voters can never decide anything again"
            )),
        },
        GroupError::Client(ClientError::ChangePending { .. }) => conflict(format!(
            "another membership change is in flight; retry once it committed ({err})"
        )),
        _ => ApiError::from_group(err, leader_known),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::Index;

    #[test]
    fn conflicting_changes_are_409_and_unknown_members_404_in_words() {
        let peer = PeerId([7; 32]);
        let cases = [
            (
                ClientError::ChangePending { index: Index(9) },
                StatusCode::CONFLICT,
                "in flight",
            ),
            (
                ClientError::Membership(MembershipError::LastVoter(peer)),
                StatusCode::CONFLICT,
                "last voter",
            ),
            (
                ClientError::Membership(MembershipError::AlreadyMember(peer)),
                StatusCode::CONFLICT,
                "already a member",
            ),
            (
                ClientError::Membership(MembershipError::NotMember(peer)),
                StatusCode::NOT_FOUND,
                "not a member",
            ),
        ];
        for (err, status, words) in cases {
            let e = change_error(GroupError::Client(err), true);
            assert_eq!(e.status(), status, "{}", e.body().error);
            assert!(e.body().error.contains(words), "{}", e.body().error);
            assert!(!e.body().error.contains("PeerId("), "{}", e.body().error);
        }
    }
}
