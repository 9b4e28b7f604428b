//! The API's calls: reads (a key, a page of a prefix, blocking), writes (plain,
//! compare-and-swap, prefix deletes), transactions and status.

use super::{encode_key, encode_param, Answer, Client, ClientError, Failover};
use crate::groups::Consistency;
use crate::store::http::{
    ErrorKind, KeysAnswer, NodeStatus, RangeAnswer, TxnAnswer, TxnJson, Written,
    CREATE_INDEX_HEADER, MOD_INDEX_HEADER, REVISION_HEADER, VERSION_HEADER,
};
use axum::body::Bytes;
use hyper::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How a read is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// This node's copy (`?stale`) instead of a linearizable read.
    pub stale: bool,
    /// Blocking: answer once something changed after this revision ...
    pub index: Option<u64>,
    /// ... or after this long (the node's default 5 min when `None`).
    pub wait: Option<Duration>,
}

impl ReadOptions {
    /// Reads with this consistency.
    pub fn consistency(c: Consistency) -> Self {
        ReadOptions {
            stale: c == Consistency::Weak,
            ..ReadOptions::default()
        }
    }

    fn query(&self, mut params: Vec<String>) -> String {
        if self.stale {
            params.push("stale".into());
        }
        if let Some(i) = self.index {
            params.push(format!("index={i}"));
        }
        if let Some(w) = self.wait {
            params.push(format!("wait={}ms", w.as_millis()));
        }
        if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        }
    }

    /// The request's timeout: the client's, plus the wait of a blocking read.
    fn timeout(&self, client: &Client) -> Duration {
        match self.index {
            Some(_) => {
                let wait = self.wait.unwrap_or(crate::store::http::read::DEFAULT_WAIT);
                client.timeout() + wait + wait / 16
            }
            None => client.timeout(),
        }
    }
}

/// A key's value and revisions, and the revision it was read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Vec<u8>,
    /// Index of the write that created the key.
    pub create_index: u64,
    /// Index of the write that last changed it.
    pub mod_index: u64,
    /// Writes since its creation.
    pub version: u64,
    /// The store revision of the read.
    pub revision: u64,
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

fn check_key(key: &str) -> Result<(), ClientError> {
    if key.is_empty() {
        return Err(ClientError::BadKey {
            key: key.into(),
            reason: "keys are not empty",
        });
    }
    Ok(())
}

impl Client {
    pub(super) fn json<T: DeserializeOwned>(
        &self,
        answer: &Answer,
        what: &str,
    ) -> Result<T, ClientError> {
        serde_json::from_slice(&answer.body).map_err(|e| ClientError::BadResponse {
            endpoint: self.endpoint().to_string(),
            reason: format!("{what}: {e}"),
        })
    }

    /// Sets `key` to `value`; returns the index of the write.
    pub async fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<u64, ClientError> {
        check_key(key)?;
        let path = format!("/v1/kv/{}", encode_key(key));
        self.write(Method::PUT, &path, value.into().into())
            .await
            .map(|w| w.index)
    }

    /// Sets `key` to `value` if its `mod_index` is `cas` (0: if absent); a failed
    /// comparison is [`ClientError::CompareFailed`] with the key's `mod_index`.
    pub async fn put_cas(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        cas: u64,
    ) -> Result<u64, ClientError> {
        check_key(key)?;
        let path = format!("/v1/kv/{}?cas={cas}", encode_key(key));
        self.write(Method::PUT, &path, value.into().into())
            .await
            .map(|w| w.index)
    }

    /// Removes `key` (no error when absent); returns the index of the delete.
    pub async fn delete(&self, key: &str) -> Result<u64, ClientError> {
        self.delete_with(key, None, false).await.map(|w| w.index)
    }

    /// Removes `key` if its `mod_index` is `cas` (when given), or every key under `key`
    /// when `prefix`; the answer says how many keys went.
    pub async fn delete_with(
        &self,
        key: &str,
        cas: Option<u64>,
        prefix: bool,
    ) -> Result<Written, ClientError> {
        if !prefix {
            check_key(key)?;
        }
        let mut path = format!("/v1/kv/{}", encode_key(key));
        if prefix {
            path.push_str("?recurse");
        } else if let Some(n) = cas {
            path.push_str(&format!("?cas={n}"));
        }
        self.write(Method::DELETE, &path, Bytes::new()).await
    }

    async fn write(&self, method: Method, path: &str, body: Bytes) -> Result<Written, ClientError> {
        let answer = self
            .call(method, path, body, Failover::NotApplied, self.timeout())
            .await?;
        self.json(&answer, "write answer")
    }

    /// The value of `key`, `None` when absent.
    pub async fn get(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self
            .get_entry(key, ReadOptions::consistency(consistency))
            .await?
            .map(|e| e.value))
    }

    /// The value and revisions of `key`, `None` when absent.
    pub async fn get_entry(
        &self,
        key: &str,
        options: ReadOptions,
    ) -> Result<Option<Entry>, ClientError> {
        check_key(key)?;
        let path = format!("/v1/kv/{}{}", encode_key(key), options.query(Vec::new()));
        let answer = self
            .call(
                Method::GET,
                &path,
                Bytes::new(),
                Failover::Retryable,
                options.timeout(self),
            )
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(ClientError::Refused {
                kind: Some(ErrorKind::NotFound),
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let h = &answer.headers;
        Ok(Some(Entry {
            value: answer.body.to_vec(),
            create_index: header_u64(h, CREATE_INDEX_HEADER).unwrap_or(0),
            mod_index: header_u64(h, MOD_INDEX_HEADER).unwrap_or(0),
            version: header_u64(h, VERSION_HEADER).unwrap_or(0),
            revision: header_u64(h, REVISION_HEADER).unwrap_or(0),
        }))
    }

    /// One page of the keys under `prefix` (after `after`, at most `limit` or the node's
    /// default of 1,000), with values, all read at one revision.
    pub async fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<u32>,
        options: ReadOptions,
    ) -> Result<RangeAnswer, ClientError> {
        let answer = self.page(prefix, "recurse", after, limit, options).await?;
        self.json(&answer, "range answer")
    }

    /// One page of the names of the keys under `prefix`.
    pub async fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<u32>,
        options: ReadOptions,
    ) -> Result<KeysAnswer, ClientError> {
        let answer = self.page(prefix, "keys", after, limit, options).await?;
        self.json(&answer, "keys answer")
    }

    async fn page(
        &self,
        prefix: &str,
        mode: &str,
        after: Option<&str>,
        limit: Option<u32>,
        options: ReadOptions,
    ) -> Result<Answer, ClientError> {
        let mut params = vec![mode.to_string()];
        if let Some(a) = after {
            params.push(format!("after={}", encode_param(a)));
        }
        if let Some(n) = limit {
            params.push(format!("limit={n}"));
        }
        let path = format!("/v1/kv/{}{}", encode_key(prefix), options.query(params));
        self.call(
            Method::GET,
            &path,
            Bytes::new(),
            Failover::Retryable,
            options.timeout(self),
        )
        .await
    }

    /// Runs a transaction.
    pub async fn txn(&self, txn: &TxnJson) -> Result<TxnAnswer, ClientError> {
        let body = serde_json::to_vec(txn).map_err(|e| ClientError::BadResponse {
            endpoint: self.endpoint().to_string(),
            reason: format!("encoding the transaction: {e}"),
        })?;
        self.txn_bytes(body).await
    }

    /// Runs a transaction given as JSON bytes (checked by the node).
    pub async fn txn_bytes(&self, json: Vec<u8>) -> Result<TxnAnswer, ClientError> {
        let answer = self
            .call(
                Method::POST,
                "/v1/txn",
                json.into(),
                Failover::NotApplied,
                self.timeout(),
            )
            .await?;
        self.json(&answer, "transaction answer")
    }

    /// The status of the node calls go to first (failing over as reads do).
    pub async fn status(&self) -> Result<NodeStatus, ClientError> {
        let answer = self
            .call(
                Method::GET,
                "/v1/status",
                Bytes::new(),
                Failover::Retryable,
                self.timeout(),
            )
            .await?;
        self.json(&answer, "status")
    }
}
