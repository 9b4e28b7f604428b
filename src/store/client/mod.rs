//! A client of the nodes' HTTP API ([`super::http`]): what `tessera get/put/del/txn/
//! watch/status`, the demo, the tests and the benches use.
//!
//! **Endpoints and failover.** A client knows one or more nodes ([`Client::with_endpoints`]).
//! A call goes to the node that answered last; when it fails in a way another node may
//! not, the call moves on to the next node, each node at most once per call:
//! - reads (and status) move on after any retryable failure: unreachable, no answer in
//!   time, 503 (no leader, timeout, behind, busy, ...);
//! - writes move on only when they certainly did not apply: the connection was refused
//!   before the request was sent, or the node answered 503 `overwritten`. A write that
//!   timed out or whose outcome is unknown is *not* sent again (it may have applied; a
//!   second compare-and-swap would then report a failure for a success): the error says
//!   so and the caller decides.
//!
//! **HTTPS.** Endpoints may be `https://HOST:PORT`; [`Client::with_tls`] sets the CAs
//! trusted and the client certificate ([`ClientTls`]; default: the system's roots, no
//! certificate). A TLS failure is [`ClientError::Tls`], in words: "certificate not
//! trusted: ... (pass --cacert ...)".
//!
//! A node that is draining before a clean stop says so on every answer
//! ([`super::http::DRAINING_HEADER`]); the client's next call then goes to the next node,
//! so a rolling restart does not catch it mid-request on a node that stops.
//!
//! With one endpoint nothing is retried. Every request has a timeout (default
//! [`DEFAULT_TIMEOUT`], above the group's own call deadline with the default timings, so
//! the node's 503 arrives before the client gives up). Failures say which kind they are,
//! and [`ClientError::exit_code`] gives the command line's exit code for each.

mod backup;
mod calls;
mod members;
mod tls;
mod watch;

pub use backup::{SaveError, SaveProgress};
pub use calls::{Entry, ReadOptions};
pub use tls::{ClientTls, TlsFlags, CLI_FLAGS};
pub use watch::{Watch, WatchOptions};

use super::http::{ErrorBody, ErrorKind};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The endpoint used when neither `--endpoints` nor `TESSERA_ENDPOINTS` is given.
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
/// Exit code: a comparison failed (compare-and-swap, or a transaction that ran its
/// failure branch); nothing was written by the compare-and-swap.
pub const EXIT_COMPARE_FAILED: u8 = 6;
/// Exit code: a watch's start revision is older than the history the nodes hold.
pub const EXIT_COMPACTED: u8 = 7;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not an `http://HOST:PORT` or `https://HOST:PORT` URL.
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
    /// No connection to the node, or it broke.
    #[error("node {endpoint} unreachable: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The transport's message.
        reason: String,
        /// Whether the connection failed before the request was sent (so a write
        /// certainly did not apply).
        before_sending: bool,
    },
    /// The TLS handshake failed: the node's certificate is not trusted, the node refused
    /// the client's certificate, or the node does not speak TLS. The node read no request.
    #[error("TLS with node {endpoint}: {reason}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// What failed, in words, with the flag that fixes it.
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
    /// A compare-and-swap's comparison failed (HTTP 412); nothing changed.
    #[error("{message}")]
    CompareFailed {
        /// The node's message.
        message: String,
        /// The key's `mod_index` (0 when absent).
        mod_index: u64,
    },
    /// A watch's start revision is older than the node's history (HTTP 410).
    #[error("{message}")]
    Compacted {
        /// The node's message.
        message: String,
        /// The oldest revision a watch may start from.
        oldest: u64,
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
        /// The node's error kind, when it gave one.
        kind: Option<ErrorKind>,
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
            ClientError::CompareFailed { .. } => EXIT_COMPARE_FAILED,
            ClientError::Compacted { .. } => EXIT_COMPACTED,
            ClientError::Refused { .. }
            | ClientError::BadResponse { .. }
            | ClientError::Tls { .. } => EXIT_FAILURE,
        }
    }

    /// Whether retrying (on this or another node) may succeed: unreachable, no answer, or
    /// unavailable, or a TLS failure (another node may have a certificate this client
    /// trusts). A write that failed this way may still have been applied (see
    /// [`certainly_not_applied`](Self::certainly_not_applied)).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::NoAnswer { .. }
                | ClientError::Unavailable { .. }
                | ClientError::Tls { .. }
        )
    }

    /// Whether a write that failed so certainly did not apply: the request never left,
    /// or the node says its entry lost its log slot. A TLS failure counts: a node that
    /// refuses the handshake (or whose certificate this client refuses) reads no request.
    pub fn certainly_not_applied(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable {
                before_sending: true,
                ..
            } | ClientError::Unavailable {
                kind: ErrorKind::Overwritten,
                ..
            } | ClientError::Tls { .. }
        )
    }
}

/// Which failures move a call on to the next endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failover {
    /// Any retryable failure (reads).
    Retryable,
    /// Only failures after which the call certainly did not apply (writes).
    NotApplied,
}

impl Failover {
    fn moves_on(self, e: &ClientError) -> bool {
        match self {
            Failover::Retryable => e.is_retryable(),
            Failover::NotApplied => e.certainly_not_applied(),
        }
    }
}

/// A client of one or more nodes.
#[derive(Clone, Debug)]
pub struct Client {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// How TLS connections are made (for `https://` endpoints).
    tls: ClientTls,
    /// `http://HOST:PORT` or `https://HOST:PORT`, no trailing slash, one per node.
    bases: Arc<[String]>,
    /// The node that answered last.
    current: Arc<AtomicUsize>,
    timeout: Duration,
    /// Marks every request as relayed by a node to its leader (see
    /// [`super::http::FORWARDED_HEADER`]), so the leader does not relay it again.
    relayed: bool,
    /// Sent as `Authorization: Bearer TOKEN` on every request.
    token: Option<Arc<str>>,
}

/// An answer: status, headers and whole body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Checks one endpoint; `http://HOST:PORT` or `https://HOST:PORT` without a trailing
/// slash.
fn base_of(endpoint: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = endpoint
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s,
        Some(_) => return Err(bad("only http:// and https:// are supported")),
        None => return Err(bad("expected http://HOST:PORT or https://HOST:PORT")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("expected http(s)://HOST:PORT with no path"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The connection pool, plain HTTP and HTTPS alike, with `tls` for `https://`.
fn pool(
    tls: &ClientTls,
    timeout: Duration,
) -> hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT.min(timeout)));
    connector.set_nodelay(true);
    // The TLS layer above takes the https:// URIs.
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls.config()).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

impl Client {
    /// A client of the node at `endpoint` (`http://IP:PORT`) with the default timeout.
    pub fn new(endpoint: &str) -> Result<Self, ClientError> {
        Self::with_timeout(endpoint, DEFAULT_TIMEOUT)
    }

    /// A client of one node whose requests each give up after `timeout`.
    pub fn with_timeout(endpoint: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::with_endpoints(&[endpoint], timeout)
    }

    /// A client of several nodes, failing over between them (see the module doc).
    pub fn with_endpoints<S: AsRef<str>>(
        endpoints: &[S],
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::with_endpoints_and_tls(endpoints, timeout, &ClientTls::default())
    }

    /// A client of several nodes that makes its TLS connections with `tls`.
    pub fn with_endpoints_and_tls<S: AsRef<str>>(
        endpoints: &[S],
        timeout: Duration,
        tls: &ClientTls,
    ) -> Result<Self, ClientError> {
        let bases = endpoints
            .iter()
            .map(|e| base_of(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if bases.is_empty() {
            return Err(ClientError::BadEndpoint {
                endpoint: String::new(),
                reason: "no endpoint given".into(),
            });
        }
        // Without an https:// endpoint no TLS connection is made: the system's roots
        // are not read for nothing.
        let http = if tls.is_system() && !bases.iter().any(|b| b.starts_with("https:")) {
            pool(&ClientTls::plain(), timeout)
        } else {
            pool(tls, timeout)
        };
        Ok(Client {
            http,
            tls: tls.clone(),
            bases: bases.into(),
            current: Arc::default(),
            timeout,
            relayed: false,
            token: None,
        })
    }

    /// This client with a bearer token sent on every request (a node with token files
    /// refuses calls without one).
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// This client with these TLS settings for `https://` endpoints (trusted CAs, client
    /// certificate) instead of the system's roots.
    pub fn with_tls(mut self, tls: &ClientTls) -> Self {
        self.http = pool(tls, self.timeout);
        self.tls = tls.clone();
        self
    }

    /// This client as a node's relay to its leader: requests carry
    /// [`super::http::FORWARDED_HEADER`], and a node that is not the leader either
    /// answers 503 instead of relaying again.
    pub(crate) fn relaying(mut self) -> Self {
        self.relayed = true;
        self
    }

    /// Sends one request to the first endpoint and returns its answer whatever its
    /// status (a node relaying a call to its leader passes the answer on as it is).
    pub(crate) async fn relay(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        self.send(0, method, path_and_query, body, self.timeout)
            .await
    }

    /// The endpoint calls go to first (the one that answered last), `http(s)://HOST:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> &[String] {
        &self.bases
    }

    /// The bound on one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `path_and_query` (starting with `/`) to the nodes in turn as `failover`
    /// allows, each bounded by `timeout`; returns the first 2xx answer, or the last
    /// failure.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        failover: Failover,
        timeout: Duration,
    ) -> Result<Answer, ClientError> {
        let n = self.bases.len();
        let first = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..n {
            let i = (first + attempt) % n;
            let result = self
                .send(i, method.clone(), path_and_query, body.clone(), timeout)
                .await
                .and_then(|a| self.check(i, a));
            match result {
                Ok(answer) => {
                    // A draining node is about to stop: the next call goes elsewhere.
                    let next = if answer.headers.contains_key(super::http::DRAINING_HEADER) {
                        (i + 1) % n
                    } else {
                        i
                    };
                    self.current.store(next, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(e) if failover.moves_on(&e) && attempt + 1 < n => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::BadEndpoint {
            endpoint: String::new(),
            reason: "no endpoint given".into(),
        }))
    }

    /// Starts a request to node `i` and returns its response head, the body unread (for
    /// streams).
    pub(crate) async fn open(
        &self,
        i: usize,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Response<Incoming>, ClientError> {
        let base = &self.bases[i % self.bases.len()];
        let uri: Uri = format!("{base}{path_and_query}").parse().map_err(
            |e: hyper::http::uri::InvalidUri| ClientError::BadEndpoint {
                endpoint: base.clone(),
                reason: e.to_string(),
            },
        )?;
        let mut request = Request::builder().method(method).uri(uri);
        if self.relayed {
            request = request.header(super::http::FORWARDED_HEADER, "1");
        }
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| self.bad_response(i, format!("request: {e}")))?;
        self.http.request(request).await.map_err(|e| {
            match tls::failure(&e, self.tls.flags(), e.is_connect()) {
                Some(reason) => ClientError::Tls {
                    endpoint: base.clone(),
                    reason,
                },
                None => ClientError::Unreachable {
                    endpoint: base.clone(),
                    reason: error_chain(&e),
                    before_sending: e.is_connect(),
                },
            }
        })
    }

    /// Sends one request to node `i` and reads the whole answer, within `timeout`.
    async fn send(
        &self,
        i: usize,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, ClientError> {
        let exchange = async {
            let response = self.open(i, method, path_and_query, body).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Unreachable {
                    endpoint: self.base(i).to_string(),
                    reason: error_chain(&e),
                    before_sending: false,
                })?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::NoAnswer {
                endpoint: self.base(i).to_string(),
                after: timeout,
            })?
    }

    pub(crate) fn base(&self, i: usize) -> &str {
        &self.bases[i % self.bases.len()]
    }

    pub(crate) fn current_index(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    pub(crate) fn set_current(&self, i: usize) {
        self.current.store(i % self.bases.len(), Ordering::Relaxed);
    }

    pub(crate) fn bad_response(&self, i: usize, reason: String) -> ClientError {
        ClientError::BadResponse {
            endpoint: self.base(i).to_string(),
            reason,
        }
    }

    /// A 2xx answer as it is; any other as its error.
    pub(crate) fn check(&self, i: usize, answer: Answer) -> Result<Answer, ClientError> {
        if answer.status.is_success() {
            return Ok(answer);
        }
        Err(self.error_of(i, answer.status, &answer.body))
    }

    /// The error an answer with `status` and `body` stands for.
    pub(crate) fn error_of(&self, _i: usize, status: StatusCode, body: &[u8]) -> ClientError {
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let message = match &parsed {
            Some(b) => b.error.clone(),
            None => String::from_utf8_lossy(body).trim().to_string(),
        };
        match (status, parsed) {
            (StatusCode::SERVICE_UNAVAILABLE, b) => ClientError::Unavailable {
                kind: b.map_or(ErrorKind::NoLeader, |b| b.kind),
                message,
            },
            (StatusCode::PRECONDITION_FAILED, b) => ClientError::CompareFailed {
                mod_index: b.and_then(|b| b.mod_index).unwrap_or(0),
                message,
            },
            (StatusCode::GONE, b) => ClientError::Compacted {
                oldest: b.and_then(|b| b.oldest).unwrap_or(0),
                message,
            },
            (_, b) => ClientError::Refused {
                status: status.as_u16(),
                kind: b.map(|b| b.kind),
                message,
            },
        }
    }
}

/// Percent-encodes a key for the path, keeping `/` as the separator (the node reads the
/// rest of the path as the key and decodes it).
pub fn encode_key(key: &str) -> String {
    encode(key, true)
}

/// Percent-encodes a query parameter's value.
pub fn encode_param(value: &str) -> String {
    encode(value, false)
}

fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The error and its sources on one line ("error sending request: connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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
        assert_eq!(encode_param("a/b&c"), "a%2Fb%26c");
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(Client::new("http://127.0.0.1:7070").is_ok());
        assert!(Client::new("http://127.0.0.1:7070/").is_ok());
        assert_eq!(
            Client::new("https://127.0.0.1:7070/")
                .expect("https")
                .endpoint(),
            "https://127.0.0.1:7070"
        );
        for bad in [
            "127.0.0.1:7070",
            "ftp://127.0.0.1:7070",
            "http://h:1/x",
            "foo",
        ] {
            let e = Client::new(bad).expect_err(bad);
            assert_eq!(e.exit_code(), EXIT_USAGE, "{bad}: {e}");
        }
        let none: [&str; 0] = [];
        assert!(Client::with_endpoints(&none, DEFAULT_TIMEOUT).is_err());
        let two = Client::with_endpoints(&["http://a:1", "http://b:2/"], DEFAULT_TIMEOUT)
            .expect("two endpoints");
        assert_eq!(two.endpoints(), ["http://a:1", "http://b:2"]);
    }

    #[tokio::test]
    async fn a_read_fails_over_to_the_next_endpoint_and_a_write_only_when_not_sent() {
        // Nothing listens on these ports of 127.0.0.1: connections are refused.
        let dead = |port| format!("http://127.0.0.1:{port}");
        let client = Client::with_endpoints(&[dead(9), dead(19)], Duration::from_secs(2))
            .expect("endpoints");
        let e = client.status().await.expect_err("both dead");
        assert!(
            matches!(
                e,
                ClientError::Unreachable {
                    before_sending: true,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.certainly_not_applied());
        assert_eq!(
            client.current_index(),
            0,
            "a failed call does not move the current endpoint"
        );
    }

    #[tokio::test]
    async fn an_answer_from_a_draining_node_moves_the_next_call_to_another() {
        async fn node(draining: bool) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let url = format!("http://{}", listener.local_addr().expect("address"));
            let app = axum::Router::new().route(
                "/x",
                axum::routing::get(move || async move {
                    let mut answer = axum::response::Response::new(axum::body::Body::from("{}"));
                    if draining {
                        answer.headers_mut().insert(
                            super::super::http::DRAINING_HEADER,
                            axum::http::HeaderValue::from_static("1"),
                        );
                    }
                    answer
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
            url
        }
        let (stopping, staying) = (node(true).await, node(false).await);
        let client =
            Client::with_endpoints(&[stopping, staying], Duration::from_secs(5)).expect("two");
        let call = || {
            client.call(
                Method::GET,
                "/x",
                Bytes::new(),
                Failover::Retryable,
                client.timeout(),
            )
        };
        call().await.expect("the draining node still answers");
        assert_eq!(client.current_index(), 1, "moved off the draining node");
        call().await.expect("the other node answers");
        assert_eq!(
            client.current_index(),
            1,
            "stays on a node that is not draining"
        );
    }
}
