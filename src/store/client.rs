//! A client of a node's HTTP API ([`super::http`]): what `tessera put/get/del/status`, the
//! demo and the process tests use.
//!
//! Every call has a timeout (default [`DEFAULT_TIMEOUT`], above the group's own call
//! deadline with the default timings, so the node's 503 arrives before the client gives
//! up). Failures say which kind they are, and [`ClientError::exit_code`] gives the command
//! line's exit code for each.

use super::http::{ErrorBody, ErrorKind, NodeStatus, Written};
use crate::groups::Consistency;
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The endpoint used when neither `--endpoint` nor `TESSERA_ENDPOINT` is given.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7070";

/// Default bound on one request, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Bound on establishing the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Exit code: any other failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad usage (clap's).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the key is absent.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: the node cannot be reached or did not answer in time.
pub const EXIT_UNREACHABLE: u8 = 4;
/// Exit code: the node answered but its group has no leader or the call timed out there.
pub const EXIT_UNAVAILABLE: u8 = 5;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not an `http://HOST:PORT` URL.
    #[error("bad endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        /// What was given.
        endpoint: String,
        /// Why it is refused.
        reason: String,
    },
    /// The key cannot be sent (empty).
    #[error("bad key {key:?}: {reason}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// No connection to the node.
    #[error("node {endpoint} unreachable: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The transport's message.
        reason: String,
    },
    /// Connected, but no answer in time.
    #[error("node {endpoint} did not answer within {after:?}")]
    NoAnswer {
        /// The endpoint.
        endpoint: String,
        /// The bound.
        after: Duration,
    },
    /// The key is absent.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The node answered 503: no leader, a timeout, or a write that must be retried.
    #[error("unavailable ({kind:?}): {message}")]
    Unavailable {
        /// The node's error kind.
        kind: ErrorKind,
        /// The node's message.
        message: String,
    },
    /// The node refused the request (4xx) or failed (5xx).
    #[error("node answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The node's message.
        message: String,
    },
    /// The answer did not parse.
    #[error("unexpected answer from {endpoint}: {reason}")]
    BadResponse {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
}

impl ClientError {
    /// The command line's exit code for this failure (see the README).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NotFound { .. } => EXIT_NOT_FOUND,
            ClientError::Unreachable { .. } | ClientError::NoAnswer { .. } => EXIT_UNREACHABLE,
            ClientError::Unavailable { .. } => EXIT_UNAVAILABLE,
            ClientError::BadEndpoint { .. } | ClientError::BadKey { .. } => EXIT_USAGE,
            ClientError::Refused { .. } | ClientError::BadResponse { .. } => EXIT_FAILURE,
        }
    }

    /// Whether retrying (on this or another node) may succeed: unreachable, no answer, or
    /// unavailable. A write that failed this way may still have been applied.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::NoAnswer { .. }
                | ClientError::Unavailable { .. }
        )
    }
}

/// A client of one node.
#[derive(Clone, Debug)]
pub struct Client {
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    /// `http://HOST:PORT`, no trailing slash.
    base: String,
    timeout: Duration,
}

/// An answer: status and whole body.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Client {
    /// A client of the node at `endpoint` (`http://IP:PORT`) with the default timeout.
    pub fn new(endpoint: &str) -> Result<Self, ClientError> {
        Self::with_timeout(endpoint, DEFAULT_TIMEOUT)
    }

    /// A client whose requests each give up after `timeout`.
    pub fn with_timeout(endpoint: &str, timeout: Duration) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadEndpoint {
            endpoint: endpoint.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = endpoint
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(bad("only http:// is supported")),
            None => return Err(bad("expected http://HOST:PORT")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("expected http://HOST:PORT with no path"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT.min(timeout)));
        connector.set_nodelay(true);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Client {
            http,
            base: format!("http://{authority}"),
            timeout,
        })
    }

    /// The endpoint, `http://HOST:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// Sets `key` to `value`; returns the commit index of the write.
    pub async fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<u64, ClientError> {
        let uri = self.key_uri(key, false)?;
        let answer = self.send(Method::PUT, uri, value.into().into()).await?;
        self.written(answer)
    }

    /// Removes `key` (no error when absent); returns the commit index of the delete.
    pub async fn delete(&self, key: &str) -> Result<u64, ClientError> {
        let uri = self.key_uri(key, false)?;
        let answer = self.send(Method::DELETE, uri, Bytes::new()).await?;
        self.written(answer)
    }

    /// The value of `key`, `None` when absent.
    pub async fn get(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let uri = self.key_uri(key, consistency == Consistency::Strong)?;
        let answer = self.send(Method::GET, uri, Bytes::new()).await?;
        let absent = answer.status == StatusCode::NOT_FOUND
            && serde_json::from_slice::<ErrorBody>(&answer.body)
                .is_ok_and(|b| b.kind == ErrorKind::NotFound);
        if absent {
            return Ok(None);
        }
        self.check(answer).map(|body| Some(body.to_vec()))
    }

    /// The node's status.
    pub async fn status(&self) -> Result<NodeStatus, ClientError> {
        let uri = self.uri(format!("{}/v1/status", self.base))?;
        let answer = self.send(Method::GET, uri, Bytes::new()).await?;
        let body = self.check(answer)?;
        serde_json::from_slice(&body).map_err(|e| self.bad_response(format!("status: {e}")))
    }

    fn key_uri(&self, key: &str, strong: bool) -> Result<Uri, ClientError> {
        if key.is_empty() {
            return Err(ClientError::BadKey {
                key: key.into(),
                reason: "keys are not empty",
            });
        }
        let query = if strong { "?consistent" } else { "" };
        self.uri(format!("{}/v1/kv/{}{query}", self.base, encode_key(key)))
    }

    fn uri(&self, text: String) -> Result<Uri, ClientError> {
        text.parse()
            .map_err(|e: hyper::http::uri::InvalidUri| ClientError::BadEndpoint {
                endpoint: self.base.clone(),
                reason: e.to_string(),
            })
    }

    /// Sends one request and reads the whole answer, all within the timeout.
    async fn send(&self, method: Method, uri: Uri, body: Bytes) -> Result<Answer, ClientError> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| self.bad_response(format!("request: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| self.transport(&e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| self.transport(&e))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::NoAnswer {
                endpoint: self.base.clone(),
                after: self.timeout,
            })?
    }

    fn transport(&self, e: &(dyn std::error::Error + 'static)) -> ClientError {
        ClientError::Unreachable {
            endpoint: self.base.clone(),
            reason: error_chain(e),
        }
    }

    fn bad_response(&self, reason: String) -> ClientError {
        ClientError::BadResponse {
            endpoint: self.base.clone(),
            reason,
        }
    }

    /// The body of a 2xx answer; any other answer as its error.
    fn check(&self, answer: Answer) -> Result<Bytes, ClientError> {
        let Answer { status, body } = answer;
        if status.is_success() {
            return Ok(body);
        }
        let (kind, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => (Some(b.kind), b.error),
            Err(_) => (None, String::from_utf8_lossy(&body).trim().to_string()),
        };
        Err(match (status, kind) {
            (StatusCode::SERVICE_UNAVAILABLE, kind) => ClientError::Unavailable {
                kind: kind.unwrap_or(ErrorKind::NoLeader),
                message,
            },
            _ => ClientError::Refused {
                status: status.as_u16(),
                message,
            },
        })
    }

    fn written(&self, answer: Answer) -> Result<u64, ClientError> {
        let body = self.check(answer)?;
        serde_json::from_slice::<Written>(&body)
            .map(|w| w.index)
            .map_err(|e| self.bad_response(format!("write answer: {e}")))
    }
}

/// Percent-encodes a key for the path, keeping `/` as the separator (the node reads the
/// rest of the path as the key and decodes it).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The error and its sources on one line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_but_keep_slashes() {
        assert_eq!(encode_key("app/db/url"), "app/db/url");
        assert_eq!(encode_key("a b?c#d%"), "a%20b%3Fc%23d%25");
        assert_eq!(encode_key("é"), "%C3%A9");
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(Client::new("http://127.0.0.1:7070").is_ok());
        assert!(Client::new("http://127.0.0.1:7070/").is_ok());
        for bad in [
            "127.0.0.1:7070",
            "https://127.0.0.1:7070",
            "http://h:1/x",
            "foo",
        ] {
            let e = Client::new(bad).expect_err(bad);
            assert_eq!(e.exit_code(), EXIT_USAGE, "{bad}: {e}");
        }
    }
}
