//! Bearer tokens: who may read and who may write through the HTTP API.
//!
//! A node given token files (`--read-token-file`, `--write-token-file`: one token per line,
//! `#` comments) answers only requests that carry `Authorization: Bearer TOKEN`: without a
//! token, or with one it does not know, 401 (and `WWW-Authenticate: Bearer`); with a read
//! token on a call that changes something (any method but `GET` and `HEAD`), 403. Nothing
//! is done for a refused call. The probes and `/metrics` stay open unless
//! `--auth-probes` (a load balancer or Prometheus usually has no token). A node relays a
//! membership or leadership call to its leader with the caller's token, so every member
//! needs the same token files. Tokens are compared in constant time.
//!
//! Without token files the API is open, as before: keep it on a private network.

use super::error::{ApiError, ErrorKind};
use super::routes;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::Path;

/// The routes open to anyone unless probes need a token too.
const PROBES: [&str; 3] = [routes::HEALTHZ, routes::READYZ, routes::METRICS];

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `GET` and `HEAD`.
    Read,
    /// Everything.
    Write,
}

/// The tokens a node takes.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    tokens: Vec<(Vec<u8>, Access)>,
    /// Probes and `/metrics` need a token too.
    pub guard_probes: bool,
}

impl Tokens {
    /// No tokens: the API is open.
    pub fn open() -> Self {
        Tokens::default()
    }

    /// The tokens of the files given; an unreadable or empty file is an error naming it.
    pub fn from_files(
        read: Option<&Path>,
        write: Option<&Path>,
        guard_probes: bool,
    ) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for (file, access) in [(read, Access::Read), (write, Access::Write)] {
            let Some(file) = file else { continue };
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("token file {}: {e}", file.display()))?;
            let before = tokens.len();
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if line.chars().any(char::is_whitespace) {
                    return Err(format!(
                        "token file {}: a token holds whitespace (one token per line)",
                        file.display()
                    ));
                }
                tokens.push((line.as_bytes().to_vec(), access));
            }
            if tokens.len() == before {
                return Err(format!("token file {}: no token in it", file.display()));
            }
        }
        Ok(Tokens {
            tokens,
            guard_probes,
        })
    }

    /// Whether any token is required.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// What `token` may do, if it is one of ours.
    pub fn access(&self, token: &[u8]) -> Option<Access> {
        // Every token is compared, each in time independent of where it differs.
        let mut found = None;
        for (ours, access) in &self.tokens {
            if constant_time_eq(ours, token) {
                found = Some(*access);
            }
        }
        found
    }
}

/// Equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The answer refusing `request` when it lacks the token it needs (`None`: it may go on).
/// The API's [`super::gate`] asks before every routed call.
pub fn refusal(tokens: &Tokens, request: &Request) -> Option<Response> {
    if !tokens.enabled() || (!tokens.guard_probes && PROBES.contains(&request.uri().path())) {
        return None;
    }
    let Some(given) = bearer(request.headers()) else {
        return Some(unauthorized(
            "this node requires a token: Authorization: Bearer TOKEN",
        ));
    };
    match tokens.access(given.as_bytes()) {
        None => Some(unauthorized("unknown token")),
        Some(Access::Read) if !matches!(*request.method(), Method::GET | Method::HEAD) => Some(
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorKind::Forbidden,
                format!(
                    "a read-only token may not {} {}: this needs a read-write token",
                    request.method(),
                    request.uri().path()
                ),
            )
            .into_response(),
        ),
        Some(_) => None,
    }
}

/// The token of an `Authorization: Bearer TOKEN` header, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn unauthorized(why: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized, why).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_files_and_grant_what_their_file_says() {
        let dir = tempfile::tempdir().expect("dir");
        let read = dir.path().join("read");
        let write = dir.path().join("write");
        std::fs::write(&read, "# readers\nr-one\n\nr-two\n").expect("read file");
        std::fs::write(&write, "w-one\n").expect("write file");
        let tokens = Tokens::from_files(Some(&read), Some(&write), false).expect("tokens");
        assert!(tokens.enabled());
        assert_eq!(tokens.access(b"r-two"), Some(Access::Read));
        assert_eq!(tokens.access(b"w-one"), Some(Access::Write));
        assert_eq!(tokens.access(b"w-on"), None);
        assert_eq!(tokens.access(b""), None);

        std::fs::write(&read, "# nothing\n").expect("empty file");
        let err = Tokens::from_files(Some(&read), None, false).expect_err("empty");
        assert!(err.contains("no token"), "{err}");
        std::fs::write(&read, "two words\n").expect("bad file");
        assert!(Tokens::from_files(Some(&read), None, false).is_err());
        let missing = dir.path().join("missing");
        let err = Tokens::from_files(Some(&missing), None, false).expect_err("missing");
        assert!(err.contains("missing"), "{err}");
        assert!(!Tokens::open().enabled());
    }
}
