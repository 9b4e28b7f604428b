//! `PUT` and `DELETE /v1/kv/{key}`: writes, compare-and-swap (`?cas=N`) and prefix
//! deletes (`?recurse`).
//!
//! A plain put is one `Put` command. Everything whose answer depends on the state when it
//! applies (a compare-and-swap, a delete and how many keys it removed) is a transaction
//! with a ticket, answered from its outcome. `cas=N` holds when the key's `mod_index` is
//! N; `cas=0` when the key is absent (create only). A failed comparison changes nothing
//! and answers 412 with the key's current `mod_index`.

use super::error::{ApiError, ErrorKind};
use super::params::Params;
use super::shapes::Written;
use super::{key_of, Served, MAX_BODY_BYTES};
use crate::store::kv::{CmpOp, Compare, KvCommand, Op, OpResult, Target, Txn, TxnOutcome};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `PUT /v1/kv/{key}` (body = value).
pub async fn put(
    State(api): State<Arc<Served>>,
    path: Result<Path<String>, PathRejection>,
    query: Pairs,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Written>, ApiError> {
    let key = key_of(path, false)?;
    let params = Params::parse(query, &["cas"])?;
    let cas = params.number("cas")?;
    let value = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                ErrorKind::TooLarge,
                format!("value exceeds {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(status, ErrorKind::BadRequest, e.body_text())
        }
    })?;
    let Some(expected) = cas else {
        let index = api
            .group
            .execute(KvCommand::Put {
                key,
                value: value.to_vec(),
            })
            .await
            .map_err(|e| api.fail(e))?;
        return Ok(Json(Written {
            index: index.0,
            deleted: None,
        }));
    };
    let txn = Txn {
        compare: vec![cas_compare(&key, expected)],
        success: vec![Op::Put {
            key: key.clone(),
            value: value.to_vec(),
        }],
        failure: Vec::new(),
    };
    let (index, outcome) = api.execute_txn(txn).await?;
    check_cas(&key, expected, index, &outcome)?;
    Ok(Json(Written {
        index,
        deleted: None,
    }))
}

/// `DELETE /v1/kv/{key}`.
pub async fn delete(
    State(api): State<Arc<Served>>,
    path: Result<Path<String>, PathRejection>,
    query: Pairs,
) -> Result<Json<Written>, ApiError> {
    let key = key_of(path, true)?;
    remove(api, key, query).await
}

/// `DELETE /v1/kv/?recurse`: every key.
pub async fn delete_root(
    State(api): State<Arc<Served>>,
    query: Pairs,
) -> Result<Json<Written>, ApiError> {
    remove(api, String::new(), query).await
}

async fn remove(api: Arc<Served>, key: String, query: Pairs) -> Result<Json<Written>, ApiError> {
    let params = Params::parse(query, &["cas", "recurse"])?;
    let cas = params.number("cas")?;
    let recurse = params.flag("recurse")?;
    let txn = match (recurse, cas) {
        (true, Some(_)) => return Err(ApiError::bad(
            "cas and recurse exclude each other (a transaction can compare and delete a prefix)",
        )),
        (true, None) => Txn {
            success: vec![Op::DeletePrefix {
                prefix: key.clone(),
            }],
            ..Txn::default()
        },
        (false, _) if key.is_empty() => {
            return Err(ApiError::bad("empty key (add recurse to delete every key)"))
        }
        (false, Some(0)) => {
            return Err(ApiError::bad(
                "cas=0 holds only for an absent key: there is nothing to delete",
            ))
        }
        (false, cas) => Txn {
            compare: cas.map(|n| cas_compare(&key, n)).into_iter().collect(),
            success: vec![Op::Delete { key: key.clone() }],
            ..Txn::default()
        },
    };
    let (index, outcome) = api.execute_txn(txn).await?;
    if let Some(expected) = cas {
        check_cas(&key, expected, index, &outcome)?;
    }
    let deleted = match outcome.results.first() {
        Some(OpResult::Delete { deleted }) => *deleted,
        _ => 0,
    };
    Ok(Json(Written {
        index,
        deleted: Some(deleted),
    }))
}

fn cas_compare(key: &str, expected: u64) -> Compare {
    Compare {
        key: key.to_string(),
        target: Target::ModIndex(expected),
        op: CmpOp::Eq,
    }
}

/// 412 when the comparison failed.
fn check_cas(key: &str, expected: u64, index: u64, outcome: &TxnOutcome) -> Result<(), ApiError> {
    if outcome.succeeded {
        return Ok(());
    }
    let found = outcome.compared.first().copied().unwrap_or(0);
    let what = if found == 0 {
        "is absent".to_string()
    } else {
        format!("has mod_index {found}")
    };
    let wanted = if expected == 0 {
        "absent".to_string()
    } else {
        format!("mod_index {expected}")
    };
    let mut err = ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        ErrorKind::CompareFailed,
        format!("compare failed: key {key:?} {what}, not {wanted}; nothing changed"),
    )
    .at(index);
    err.body.mod_index = Some(found);
    Err(err)
}
