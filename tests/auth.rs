//! Bearer tokens on three `tessera node` processes started with a read-only and a
//! read-write token file: without a token (or with an unknown one) every call is 401 and
//! changes nothing; a read token reads and is 403 on writes and membership changes; a
//! write token does everything, also through a follower that relays to the leader; the
//! probes and `/metrics` stay open.

mod kv_support;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kv_support::{bounded, run, BOUND};
use tessera::store::http::{ErrorBody, ErrorKind};
use tessera_testkit::cluster::LocalCluster;

const READ: &str = "read-token-0123456789";
const WRITE: &str = "write-token-9876543210";

/// One request with an optional bearer token: status, `WWW-Authenticate`, body.
async fn call(
    method: Method,
    url: &str,
    body: &'static str,
    token: Option<&str>,
) -> Result<(StatusCode, bool, Bytes), String> {
    let client: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder().method(method.clone()).uri(url);
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let request = request
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let challenge = response.headers().contains_key("www-authenticate");
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, challenge, body))
    };
    bounded(&format!("{method} {url}"), BOUND, exchange).await?
}

fn kind(body: &Bytes) -> Option<ErrorKind> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.kind)
}

#[test]
fn tokens_gate_reads_and_writes_and_leave_probes_open() {
    run("auth-tokens", |root| async move {
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        let read_file = root.join("read-tokens");
        let write_file = root.join("write-tokens");
        std::fs::write(&read_file, format!("# readers\n{READ}\n")).map_err(|e| e.to_string())?;
        std::fs::write(&write_file, format!("{WRITE}\n")).map_err(|e| e.to_string())?;
        let args = vec![
            "--read-token-file".to_string(),
            read_file.to_string_lossy().into_owned(),
            "--write-token-file".to_string(),
            write_file.to_string_lossy().into_owned(),
        ];
        let mut cluster =
            LocalCluster::loopback(env!("CARGO_BIN_EXE_tessera"), &root.join("nodes"), args)?
                .with_token(WRITE);
        cluster.start_all()?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        let f = cluster.node((leader + 1) % 3).endpoint();
        let key = format!("{f}/v1/kv/guarded");

        // No token, an unknown one: 401 with a challenge, nothing written.
        for token in [None, Some("not-a-token")] {
            let (status, challenge, body) = call(Method::PUT, &key, "x", token).await?;
            if status != StatusCode::UNAUTHORIZED
                || !challenge
                || kind(&body) != Some(ErrorKind::Unauthorized)
            {
                return Err(format!(
                    "PUT with {token:?}: {status} challenge={challenge}"
                ));
            }
            let (status, _, _) = call(Method::GET, &key, "", token).await?;
            if status != StatusCode::UNAUTHORIZED {
                return Err(format!("GET with {token:?}: {status}"));
            }
        }
        // A read token reads (the key is absent: nothing was written) and may not write.
        let (status, _, _) = call(Method::GET, &key, "", Some(READ)).await?;
        if status != StatusCode::NOT_FOUND {
            return Err(format!("read token GET of an unwritten key: {status}"));
        }
        let (status, _, body) = call(Method::PUT, &key, "x", Some(READ)).await?;
        if status != StatusCode::FORBIDDEN || kind(&body) != Some(ErrorKind::Forbidden) {
            return Err(format!("read token PUT: {status}"));
        }
        let (status, _, _) = call(
            Method::DELETE,
            &format!("{f}/v1/members/ffffffff"),
            "",
            Some(READ),
        )
        .await?;
        if status != StatusCode::FORBIDDEN {
            return Err(format!("read token member removal: {status}"));
        }
        // The member list through a follower: relayed to the leader with the token.
        let (status, _, body) =
            call(Method::GET, &format!("{f}/v1/members"), "", Some(READ)).await?;
        let relayed: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("{status}: {e}"))?;
        if status != StatusCode::OK || relayed["from_leader"] != serde_json::Value::Bool(true) {
            return Err(format!("member list with a read token: {status} {relayed}"));
        }

        // A write token writes, and its membership calls pass both nodes' checks.
        let (status, _, _) = call(Method::PUT, &key, "v", Some(WRITE)).await?;
        if status != StatusCode::OK {
            return Err(format!("write token PUT: {status}"));
        }
        let (status, _, body) = call(Method::GET, &key, "", Some(READ)).await?;
        if status != StatusCode::OK || body.as_ref() != b"v" {
            return Err(format!("read back: {status} {body:?}"));
        }
        let (status, _, body) = call(
            Method::DELETE,
            &format!("{f}/v1/members/ffffffff"),
            "",
            Some(WRITE),
        )
        .await?;
        if status != StatusCode::NOT_FOUND || kind(&body) != Some(ErrorKind::NotMember) {
            return Err(format!("write token removal of a stranger: {status}"));
        }

        // Probes and metrics stay open.
        for path in ["/healthz", "/readyz", "/metrics"] {
            let (status, _, _) = call(Method::GET, &format!("{f}{path}"), "", None).await?;
            if status != StatusCode::OK {
                return Err(format!("{path} without a token: {status}"));
            }
        }
        Ok("401 without or with an unknown token, 403 for a read token on writes, relayed calls carry the token, probes open".into())
    });
}
