//! Probes for load balancers and Kubernetes, usable as they are: only the status code
//! matters to them (200 or 503); the JSON body says why, for people.
//!
//! - `GET /healthz` (liveness): the process answers and its key-value group runs. The
//!   group's worker stops on any storage failure (a failed write or fsync, corruption), so
//!   a node whose disk broke answers 503 here and should be restarted.
//! - `GET /readyz` (readiness): this node can serve a linearizable read now: its group
//!   runs, a leader is known, no catch-up (log replay or snapshot install) is running, and
//!   it has applied at most [`READY_MAX_APPLY_LAG`] entries fewer than it knows committed.
//!   A node cut off with a minority loses its leader within an election timeout and
//!   answers 503 until it hears a leader again.

use super::Served;
use crate::groups::GroupStatus;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most committed entries a ready node may have left to apply.
pub const READY_MAX_APPLY_LAG: u64 = 1_000;

/// The body of both probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Whether the probe passed (the status code is 200 exactly then).
    pub ok: bool,
    /// Why it did not, in words (empty when it passed).
    pub reasons: Vec<String>,
    /// The leader's id in hex, if one is known.
    pub leader: Option<String>,
    /// The commit index this node knows.
    pub commit: u64,
    /// The last index it applied.
    pub applied: u64,
}

fn answer(status: &GroupStatus, reasons: Vec<String>) -> (StatusCode, Json<Probe>) {
    let ok = reasons.is_empty();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Probe {
            ok,
            reasons,
            leader: status.leader.map(|l| l.to_string()),
            commit: status.commit.0,
            applied: status.applied.0,
        }),
    )
}

fn stopped(status: &GroupStatus) -> Option<String> {
    status
        .stopped
        .as_ref()
        .map(|cause| format!("the key-value group stopped: {cause}"))
}

/// `GET /healthz`.
pub async fn healthz(State(served): State<Arc<Served>>) -> (StatusCode, Json<Probe>) {
    let status = served.group.status();
    answer(&status, stopped(&status).into_iter().collect())
}

/// `GET /readyz`.
pub async fn readyz(State(served): State<Arc<Served>>) -> (StatusCode, Json<Probe>) {
    let status = served.group.status();
    let mut reasons: Vec<String> = stopped(&status).into_iter().collect();
    if status.leader.is_none() {
        reasons.push(
            "no leader is known (an election is running, or this node is cut off from a majority)"
                .into(),
        );
    }
    if status.syncing {
        reasons.push("this node is catching up (log replay or snapshot install)".into());
    }
    let lag = status.commit.0.saturating_sub(status.applied.0);
    if lag > READY_MAX_APPLY_LAG {
        reasons.push(format!(
            "{lag} committed entries are not applied yet (ready at most {READY_MAX_APPLY_LAG})"
        ));
    }
    answer(&status, reasons)
}
