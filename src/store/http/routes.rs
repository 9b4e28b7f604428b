//! The API's route patterns: the router registers them, and the request metrics label
//! each request with one of them. Held as `&'static str` so that labelling a request
//! allocates nothing (it is done on every request).

/// `GET /v1/status`.
pub const STATUS: &str = "/v1/status";
/// `GET /healthz`.
pub const HEALTHZ: &str = "/healthz";
/// `GET /readyz`.
pub const READYZ: &str = "/readyz";
/// `GET`, `POST /v1/members`.
pub const MEMBERS: &str = "/v1/members";
/// `DELETE /v1/members/{id}`.
pub const MEMBER: &str = "/v1/members/{id}";
/// `POST /v1/members/{id}/promote`.
pub const PROMOTE: &str = "/v1/members/{id}/promote";
/// `POST /v1/leader/transfer`.
pub const TRANSFER: &str = "/v1/leader/transfer";
/// `GET /metrics`.
pub const METRICS: &str = "/metrics";
/// `GET /v1/snapshot`.
pub const SNAPSHOT: &str = "/v1/snapshot";
/// `GET`, `PUT`, `DELETE /v1/kv/{key}`.
pub const KV: &str = "/v1/kv/{*key}";
/// `GET`, `DELETE /v1/kv/` (the empty prefix).
pub const KV_ROOT: &str = "/v1/kv/";
/// `POST /v1/txn`.
pub const TXN: &str = "/v1/txn";
/// `GET /v1/watch/{prefix}`.
pub const WATCH: &str = "/v1/watch/{*prefix}";
/// `GET /v1/watch/` (every key).
pub const WATCH_ROOT: &str = "/v1/watch/";

/// Every pattern the router registers.
pub const ALL: [&str; 14] = [
    STATUS, HEALTHZ, READYZ, MEMBERS, MEMBER, PROMOTE, TRANSFER, METRICS, SNAPSHOT, KV, KV_ROOT,
    TXN, WATCH, WATCH_ROOT,
];

/// The label of a request the router matched to `pattern` (`"unmatched"` for a pattern
/// that is not one of ours, which the router cannot produce).
pub fn label(pattern: Option<&str>) -> &'static str {
    pattern
        .and_then(|p| ALL.iter().copied().find(|r| *r == p))
        .unwrap_or("unmatched")
}

/// The label of a request's method: the standard ones by name, any other `"other"` (a
/// client choosing methods must not grow the metrics without bound).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_labels_as_itself_and_others_do_not() {
        for pattern in ALL {
            assert_eq!(label(Some(pattern)), pattern);
        }
        assert_eq!(label(Some("/v1/kv/a")), "unmatched");
        assert_eq!(label(None), "unmatched");
        let custom = axum::http::Method::from_bytes(b"PURGE").expect("method");
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&axum::http::Method::PUT), "PUT");
    }
}
