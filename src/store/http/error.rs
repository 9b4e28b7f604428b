//! Error answers: one line of JSON naming what was wrong ([`ErrorBody`]), a word for
//! programs ([`ErrorKind`]), and the mapping from group failures to statuses.

use crate::groups::raft::ClientError;
use crate::groups::GroupError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// Every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One line for people.
    pub error: String,
    /// One word for programs.
    pub kind: ErrorKind,
    /// 412: the key's current `mod_index` (0 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mod_index: Option<u64>,
    /// 410: the oldest revision a watch may start from on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<u64>,
    /// The store revision the answer was made at, when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// What went wrong, for programs (the `kind` field of [`ErrorBody`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 404: the key is absent.
    NotFound,
    /// 404: no such route.
    NoRoute,
    /// 404: no member has that id.
    NotMember,
    /// 401: the node requires a token and none, or an unknown one, was given.
    Unauthorized,
    /// 403: the token may not do this (a read-only token on a write).
    Forbidden,
    /// 400: bad key, parameter or body.
    BadRequest,
    /// 413: the value or the transaction is too large.
    TooLarge,
    /// 412: a compare-and-swap's comparison failed; nothing changed.
    CompareFailed,
    /// 410: the watch's start revision is older than the history this node holds.
    Compacted,
    /// 503: no leader is known, or none took the call in time. Retry later.
    NoLeader,
    /// 503: the call did not complete in time; a write may still be applied.
    Timeout,
    /// 503: the write lost its log slot to another leader's entry; it will never apply.
    /// Safe to retry.
    Overwritten,
    /// 503: outcome unknown (the leader it was forwarded to was replaced, or a catch-up
    /// installed state past it); the write may or may not be applied.
    Unknown,
    /// 503: this node has not applied the revision the request waits for (a blocking
    /// read with an `index` above what it holds): retry here later or on another node.
    Behind,
    /// 503: this node serves as many watches as it takes.
    Busy,
    /// 409: a membership change conflicts with the current configuration.
    Conflict,
    /// 503: a leadership transfer's target did not take over in time.
    TransferFailed,
    /// 507: the leader's disk is below its free-space reserve (`--min-free-mib`): it takes
    /// no writes until space is freed. Nothing was applied; reads still work.
    NoSpace,
    /// 500: the group stopped (shutdown or a fatal storage error).
    Stopped,
    /// 500: anything else.
    Internal,
}

/// An error answer: status, kind and message.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: ErrorBody,
}

impl ApiError {
    /// An answer with `status`, `kind` and the one-line `error`.
    pub fn new(status: StatusCode, kind: ErrorKind, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                kind,
                mod_index: None,
                oldest: None,
                revision: None,
            },
        }
    }

    /// 400 with `error`.
    pub fn bad(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::BadRequest, error)
    }

    /// Adds the revision the answer was made at (also as the revision header).
    pub fn at(mut self, revision: u64) -> Self {
        self.body.revision = Some(revision);
        self
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
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
                ClientError::ForwardTimeout { leader: None, .. } => Self::new(
                    unavailable,
                    ErrorKind::NoLeader,
                    "no leader took the write within the forward timeout; it may or may not be applied",
                ),
                // The core counts in ticks; people read words.
                ClientError::ForwardTimeout {
                    leader: Some(leader),
                    ..
                } => Self::new(
                    unavailable,
                    ErrorKind::Timeout,
                    format!("the leader {leader} did not acknowledge the write within the forward timeout; it may or may not be applied"),
                ),
                ClientError::ReadTimeout { .. } => Self::new(
                    unavailable,
                    ErrorKind::Timeout,
                    "no leader confirmed the read index within the query timeout; retry",
                ),
                ClientError::Overwritten { .. } => {
                    Self::new(unavailable, ErrorKind::Overwritten, msg)
                }
                ClientError::SyncedPast { .. } | ClientError::LeaderLost { .. } => {
                    Self::new(unavailable, ErrorKind::Unknown, msg)
                }
                ClientError::ChangePending { .. }
                | ClientError::Membership(_)
                | ClientError::TransferToLearner { .. }
                | ClientError::NoTransferTarget => {
                    Self::new(StatusCode::CONFLICT, ErrorKind::Conflict, msg)
                }
                // A write waits out a transfer (the group retries it); what reaches here
                // outlived the call's deadline.
                ClientError::TransferInProgress { .. } => {
                    Self::new(unavailable, ErrorKind::NoLeader, msg)
                }
                ClientError::NoSpace { .. } => Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    ErrorKind::NoSpace,
                    format!("{msg} (its data directory is below --min-free-mib; reads still work)"),
                ),
                ClientError::TransferToUnknown { .. } => {
                    Self::new(StatusCode::NOT_FOUND, ErrorKind::NotMember, msg)
                }
            },
            GroupError::TransferFailed { .. } => {
                Self::new(unavailable, ErrorKind::TransferFailed, msg)
            }
            GroupError::Timeout { .. } if !leader_known => Self::new(
                unavailable,
                ErrorKind::NoLeader,
                format!("no leader: {msg}"),
            ),
            GroupError::Timeout { .. } => Self::new(unavailable, ErrorKind::Timeout, msg),
            GroupError::Stopped { .. } => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Stopped, msg)
            }
            GroupError::Encode { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorKind::TooLarge, msg)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let revision = self.body.revision;
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(r) = revision {
            response
                .headers_mut()
                .insert(super::REVISION_HEADER, HeaderValue::from(r));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                cause: crate::groups::StopCause::ShutDown,
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

    #[test]
    fn optional_fields_stay_out_of_the_json_unless_set() {
        let e = ApiError::bad("unknown parameter \"x\"");
        let json = serde_json::to_string(&e.body).expect("json");
        assert_eq!(
            json,
            r#"{"error":"unknown parameter \"x\"","kind":"bad_request"}"#
        );
        let e = ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            ErrorKind::CompareFailed,
            "x",
        );
        let mut body = e.body;
        body.mod_index = Some(7);
        let json = serde_json::to_string(&body).expect("json");
        assert!(json.contains(r#""mod_index":7"#), "{json}");
    }
}
