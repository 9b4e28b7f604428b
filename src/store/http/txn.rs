//! `POST /v1/txn`: compares, then the success or the failure operations, applied
//! atomically as one log entry (body: [`TxnJson`], answer: [`TxnAnswer`]).
//!
//! The transaction is checked before it is proposed ([`TxnJson::parse`]): malformed
//! JSON, an unknown field, compare target or operator, a value that is not base64, too
//! many operations (more than 128 compares, or 128 operations in a branch), a key
//! written twice in one branch, or more than 4 MiB of values are a 400 naming the
//! problem, and nothing is proposed. A transaction whose compares do not hold is not an
//! error: it runs its failure branch and answers 200 with `"succeeded": false`.

use super::error::{ApiError, ErrorKind};
use super::params::Params;
use super::shapes::{TxnAnswer, TxnJson};
use super::{Served, MAX_TXN_BODY_BYTES};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

/// `POST /v1/txn`.
pub async fn post(
    State(api): State<Arc<Served>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TxnAnswer>, ApiError> {
    Params::parse(query, &[])?;
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                ErrorKind::TooLarge,
                format!("transaction body exceeds {MAX_TXN_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(status, ErrorKind::BadRequest, e.body_text())
        }
    })?;
    let json: TxnJson = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("malformed transaction: {e}")))?;
    let txn = json
        .parse()
        .map_err(|e| ApiError::bad(format!("bad transaction: {e}")))?;
    let (index, outcome) = api.execute_txn(txn).await?;
    Ok(Json(TxnAnswer::new(index, &outcome)))
}
