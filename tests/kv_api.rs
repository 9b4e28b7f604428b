//! The config store's HTTP API on one in-process node: every bad input gets its 4xx with
//! a one-line JSON error naming what was wrong, and changes nothing; compare-and-swap;
//! blocking reads; a watch from a pruned revision gets 410 and the documented recovery
//! (re-list, watch from the list's revision + 1) ends with the same state as the store.

mod kv_support;

use hyper::{Method, StatusCode};
use kv_support::{bounded, http, run, single_node, url, BOUND};
use std::collections::BTreeMap;
use std::time::Duration;
use tessera::store::client::{ClientError, ReadOptions, WatchOptions};
use tessera::store::http::{ErrorKind, WatchLine, DRAINING_HEADER, REVISION_HEADER};
use tessera::store::kv::Retention;
use tessera::store::Client;

/// One request whose body the node may refuse before reading all of it (a 413 on a 9 MiB
/// transaction): the node answers and closes while the client is still uploading, and hyper's
/// client then reports the cut upload (`SendRequest`) instead of the answer, where curl would read
/// the answer. Only that error is retried, a few times; any answer the node sends is returned.
async fn http_refused_early(
    method: Method,
    url: &str,
    body: String,
) -> Result<kv_support::Answer, String> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match http(method.clone(), url, body.clone()).await {
            Err(e) if e.contains("SendRequest") && attempts < 5 => continue,
            other => return other,
        }
    }
}

/// The whole store as `key -> (value, mod_index)`, and the revision of the read.
async fn everything(client: &Client) -> Result<(BTreeMap<String, (Vec<u8>, u64)>, u64), String> {
    let page = client
        .range("", None, Some(10_000), ReadOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    if page.more {
        return Err("more than one page".into());
    }
    let map = page
        .kvs
        .into_iter()
        .map(|kv| (kv.key, (kv.value.unwrap_or_default(), kv.mod_index)))
        .collect();
    Ok((map, page.revision))
}

#[test]
fn every_bad_input_gets_its_4xx_and_changes_nothing() {
    run("kv-bad-input", |root| async move {
        let node = single_node(&root.join("n"), Retention::default()).await?;
        let base = url(&node);
        let client = Client::new(&base).map_err(|e| e.to_string())?;
        client.put("app/a", "1").await.map_err(|e| e.to_string())?;
        client.put("p/x", "2").await.map_err(|e| e.to_string())?;
        let (before, revision) = everything(&client).await?;

        let key_1025 = "k".repeat(1025);
        let value_too_large = vec![b'v'; (1 << 20) + 1];
        let txn_ops = |n: usize| {
            let ops: Vec<serde_json::Value> = (0..n)
                .map(|i| serde_json::json!({"op": "put", "key": format!("t/{i}"), "value": ""}))
                .collect();
            serde_json::json!({ "success": ops }).to_string()
        };
        let txn_compares = |n: usize| {
            let c: Vec<serde_json::Value> = (0..n)
                .map(|i| serde_json::json!({"key": format!("t/{i}"), "target": "version", "op": "=", "value": 0}))
                .collect();
            serde_json::json!({ "compare": c }).to_string()
        };
        let big_values = {
            let v = tessera::store::http::shapes::b64(&vec![0u8; 1 << 20]);
            let ops: Vec<serde_json::Value> = (0..5)
                .map(|i| serde_json::json!({"op": "put", "key": format!("big/{i}"), "value": v}))
                .collect();
            serde_json::json!({ "success": ops }).to_string()
        };
        let huge_body = format!(
            "{{\"success\": [{{\"op\": \"put\", \"key\": \"h\", \"value\": \"{}\"}}]}}",
            "A".repeat(9 << 20)
        );
        let get = |path: &str| (Method::GET, path.to_string(), String::new());
        let cases: Vec<((Method, String, String), u16, &str)> = vec![
            // Reads.
            (get("/v1/kv/app/a?index=-1"), 400, "index must be a non-negative integer, got \"-1\""),
            (get("/v1/kv/app/a?index=ten"), 400, "index must be a non-negative integer, got \"ten\""),
            (get("/v1/kv/app/a?index=1&wait=11m"), 400, "wait 11m exceeds the cap of 10m"),
            (get("/v1/kv/app/a?index=1&wait=soon"), 400, "wait: expected a duration"),
            (get("/v1/kv/app/a?wait=5s"), 400, "wait needs index"),
            (get("/v1/kv/app/a?recursive"), 400, "unknown parameter \"recursive\""),
            (get("/v1/kv/app/a?recurse=maybe"), 400, "parameter recurse takes no value, true or false"),
            (get("/v1/kv/app/a?stale&stale"), 400, "given twice"),
            (get("/v1/kv/app/?recurse&limit=0"), 400, "limit 0 outside 1..=10000"),
            (get("/v1/kv/app/?recurse&limit=10001"), 400, "limit 10001 outside 1..=10000"),
            (get("/v1/kv/app/a?limit=5"), 400, "limit and after page a range"),
            (get("/v1/kv/app/a?stale&consistent"), 400, "stale and consistent exclude each other"),
            (get("/v1/kv/"), 400, "empty key"),
            (get(&format!("/v1/kv/{key_1025}")), 400, "key of 1025 bytes exceeds 1024"),
            (get("/v1/nothing"), 404, "no such route"),
            // Watches.
            (get("/v1/watch/app/?from=-1"), 400, "from must be a non-negative integer"),
            (get("/v1/watch/app/?from=x"), 400, "from must be a non-negative integer"),
            (get("/v1/watch/app/?progress=10ms"), 400, "below the minimum of 100ms"),
            (get("/v1/watch/app/?progress=11m"), 400, "exceeds the cap of 10m"),
            (get("/v1/watch/?exact"), 400, "exact needs a key"),
            (get("/v1/watch/app/?since=3"), 400, "unknown parameter \"since\""),
            // Writes.
            ((Method::PUT, "/v1/kv/app/a?cas=-1".into(), "x".into()), 400, "cas must be a non-negative integer"),
            ((Method::PUT, "/v1/kv/app/a?recurse".into(), "x".into()), 400, "unknown parameter \"recurse\""),
            ((Method::PUT, format!("/v1/kv/{key_1025}"), "x".into()), 400, "exceeds 1024"),
            ((Method::PUT, "/v1/kv/".into(), "x".into()), 405, "method PUT is not allowed on this path"),
            ((Method::POST, "/v1/kv/app/a".into(), "x".into()), 405, "method POST is not allowed"),
            ((Method::DELETE, "/v1/kv/app/a?cas=0".into(), String::new()), 400, "cas=0 holds only for an absent key"),
            ((Method::DELETE, "/v1/kv/app/?cas=1&recurse".into(), String::new()), 400, "cas and recurse exclude each other"),
            ((Method::DELETE, "/v1/kv/".into(), String::new()), 400, "empty key (add recurse"),
            // Transactions.
            ((Method::POST, "/v1/txn".into(), "{\"compare\": [".into()), 400, "malformed transaction"),
            ((Method::POST, "/v1/txn".into(), "{\"sucess\": []}".into()), 400, "unknown field `sucess`"),
            ((Method::POST, "/v1/txn".into(), r#"{"compare": [{"key": "app/a", "target": "size", "op": "=", "value": 1}]}"#.into()), 400, "unknown compare target \"size\""),
            ((Method::POST, "/v1/txn".into(), r#"{"compare": [{"key": "app/a", "target": "version", "op": "==", "value": 1}]}"#.into()), 400, "unknown compare operator \"==\""),
            ((Method::POST, "/v1/txn".into(), r#"{"compare": [{"key": "app/a", "target": "mod_index", "op": "=", "value": -4}]}"#.into()), 400, "mod_index compares with a non-negative integer, got -4"),
            ((Method::POST, "/v1/txn".into(), r#"{"compare": [{"key": "app/a", "target": "value", "op": "=", "value": 7}]}"#.into()), 400, "value compares with a base64 string"),
            ((Method::POST, "/v1/txn".into(), r#"{"success": [{"op": "upsert", "key": "a"}]}"#.into()), 400, "unknown variant `upsert`"),
            ((Method::POST, "/v1/txn".into(), r#"{"success": [{"op": "put", "key": "a", "value": "not base64!"}]}"#.into()), 400, "success operation 0: value: not base64"),
            ((Method::POST, "/v1/txn".into(), r#"{"success": [{"op": "put", "key": "a", "value": ""}, {"op": "delete", "key": "a"}]}"#.into()), 400, "both write \"a\""),
            ((Method::POST, "/v1/txn".into(), r#"{"failure": [{"op": "range", "prefix": "", "limit": 0}]}"#.into()), 400, "failure operation 0: range limit 0"),
            ((Method::POST, "/v1/txn".into(), r#"{"success": [{"op": "delete", "key": ""}]}"#.into()), 400, "success operation 0: empty key"),
            ((Method::POST, "/v1/txn".into(), txn_ops(129)), 400, "too many operations: 129 success operations (at most 128)"),
            ((Method::POST, "/v1/txn".into(), txn_compares(129)), 400, "too many operations: 129 compares"),
            ((Method::POST, "/v1/txn".into(), big_values), 400, "bytes of values, above 4194304"),
            ((Method::POST, "/v1/txn?dry".into(), "{}".into()), 400, "unknown parameter \"dry\" (this call takes no parameters)"),
            ((Method::POST, "/v1/txn".into(), huge_body), 413, "transaction body exceeds"),
        ];
        let mut checked = 0;
        for ((method, path, body), status, needle) in cases {
            let answer = http_refused_early(method.clone(), &format!("{base}{path}"), body).await?;
            let what = format!("{method} {}", path.chars().take(80).collect::<String>());
            if answer.status.as_u16() != status {
                return Err(format!(
                    "{what}: {} (wanted {status}): {}",
                    answer.status,
                    answer.text()
                ));
            }
            let json = answer
                .json()
                .map_err(|e| format!("{what}: not JSON: {e}"))?;
            let error = json["error"]
                .as_str()
                .ok_or(format!("{what}: no error field: {json}"))?;
            if error.contains('\n') || !error.contains(needle) || json["kind"].as_str().is_none() {
                return Err(format!(
                    "{what}: error {error:?} (wanted one line with {needle:?})"
                ));
            }
            checked += 1;
        }
        // A value above 1 MiB: 413 before anything is proposed.
        let answer = http(
            Method::PUT,
            &format!("{base}/v1/kv/app/big"),
            value_too_large,
        )
        .await?;
        if answer.status != StatusCode::PAYLOAD_TOO_LARGE || !answer.text().contains("too_large") {
            return Err(format!(
                "a 1 MiB + 1 value: {} {}",
                answer.status,
                answer.text()
            ));
        }
        let (after, revision_after) = everything(&client).await?;
        if after != before || revision_after != revision {
            return Err(format!(
                "bad inputs changed the store: revision {revision} -> {revision_after}, {before:?} -> {after:?}"
            ));
        }
        node.stop().await;
        Ok(format!(
            "{} bad inputs refused, nothing changed",
            checked + 1
        ))
    });
}

#[test]
fn compare_and_swap_creates_updates_and_refuses_with_the_current_mod_index() {
    run("kv-cas", |root| async move {
        let node = single_node(&root.join("n"), Retention::default()).await?;
        let client = Client::new(&url(&node)).map_err(|e| e.to_string())?;
        let created = client
            .put_cas("c", "1", 0)
            .await
            .map_err(|e| e.to_string())?;
        match client.put_cas("c", "x", 0).await {
            Err(ClientError::CompareFailed { mod_index, .. }) if mod_index == created => {}
            other => return Err(format!("create over an existing key: {other:?}")),
        }
        let updated = client
            .put_cas("c", "2", created)
            .await
            .map_err(|e| e.to_string())?;
        match client.delete_with("c", Some(created), false).await {
            Err(ClientError::CompareFailed { mod_index, .. }) if mod_index == updated => {}
            other => return Err(format!("delete with a stale mod_index: {other:?}")),
        }
        let entry = client
            .get_entry("c", ReadOptions::default())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("c vanished")?;
        if (
            entry.value.as_slice(),
            entry.version,
            entry.create_index,
            entry.mod_index,
        ) != (b"2".as_slice(), 2, created, updated)
        {
            return Err(format!("after two swaps: {entry:?}"));
        }
        let gone = client
            .delete_with("c", Some(updated), false)
            .await
            .map_err(|e| e.to_string())?;
        if gone.deleted != Some(1) {
            return Err(format!("the matching delete: {gone:?}"));
        }
        // The 412 answer itself.
        let answer = http(Method::PUT, &format!("{}/v1/kv/c?cas=5", url(&node)), "v").await?;
        let json = answer.json()?;
        if answer.status != StatusCode::PRECONDITION_FAILED
            || json["kind"] != "compare_failed"
            || json["mod_index"] != 0
        {
            return Err(format!("412: {} {json}", answer.status));
        }
        node.stop().await;
        Ok("compare-and-swap: create, update, refuse, delete".into())
    });
}

#[test]
fn blocking_reads_answer_on_a_change_or_at_the_deadline_never_below_the_index() {
    run("kv-blocking", |root| async move {
        let node = single_node(&root.join("n"), Retention::default()).await?;
        let client = Client::new(&url(&node)).map_err(|e| e.to_string())?;
        client
            .put("cfg/a", "old")
            .await
            .map_err(|e| e.to_string())?;
        let at = client
            .get_entry("cfg/a", ReadOptions::default())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("cfg/a")?
            .revision;
        let waiting = tokio::spawn({
            let client = client.clone();
            async move {
                let options = ReadOptions {
                    index: Some(at),
                    wait: Some(Duration::from_secs(20)),
                    ..ReadOptions::default()
                };
                client.get_entry("cfg/a", options).await
            }
        });
        // A change elsewhere does not answer the wait on cfg/a; the write to cfg/a does.
        client
            .put("cfg/b", "other")
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let written = client
            .put("cfg/a", "new")
            .await
            .map_err(|e| e.to_string())?;
        let got = bounded("the blocking read", BOUND, waiting)
            .await?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .ok_or("cfg/a absent")?;
        if got.value != b"new" || got.revision < written {
            return Err(format!("woke with {got:?}, wanted the write at {written}"));
        }

        // A prefix wait; then a wait that times out answers the current state.
        let prefix_wait = tokio::spawn({
            let client = client.clone();
            async move {
                let options = ReadOptions {
                    index: Some(written),
                    wait: Some(Duration::from_secs(20)),
                    ..ReadOptions::default()
                };
                client.range("cfg/", None, None, options).await
            }
        });
        client.delete("cfg/b").await.map_err(|e| e.to_string())?;
        let page = bounded("the prefix wait", BOUND, prefix_wait)
            .await?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if page.kvs.len() != 1 || page.revision <= written {
            return Err(format!("the prefix wait woke with {page:?}"));
        }
        let quiet = client
            .get_entry(
                "cfg/a",
                ReadOptions {
                    index: Some(page.revision),
                    wait: Some(Duration::from_millis(200)),
                    ..ReadOptions::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?
            .ok_or("cfg/a")?;
        if quiet.revision < page.revision {
            return Err(format!("the deadline answer went back: {quiet:?}"));
        }
        // An index this node has not reached: 503 behind, never an older state.
        for stale in [true, false] {
            let options = ReadOptions {
                stale,
                index: Some(quiet.revision + 1000),
                wait: Some(Duration::from_millis(200)),
            };
            match client.get_entry("cfg/a", options).await {
                Err(ClientError::Unavailable {
                    kind: ErrorKind::Behind,
                    ..
                }) => {}
                other => return Err(format!("an index ahead (stale {stale}): {other:?}")),
            }
        }
        node.stop().await;
        Ok("blocking reads".into())
    });
}

/// Reads watch lines until a progress line at `revision` or later; the events seen.
async fn events_until(
    watch: &mut tessera::store::client::Watch,
    revision: u64,
) -> Result<Vec<WatchLine>, String> {
    let mut events = Vec::new();
    loop {
        let line = bounded("a watch line", BOUND, watch.next())
            .await?
            .map_err(|e| e.to_string())?;
        match line {
            WatchLine::Progress { revision: r } if r >= revision => return Ok(events),
            WatchLine::Progress { .. } => {}
            other => events.push(other),
        }
    }
}

#[test]
fn a_watch_from_a_pruned_revision_gets_410_and_the_documented_recovery_works() {
    run("kv-compacted", |root| async move {
        let retention = Retention {
            events: 30,
            bytes: 1 << 20,
        };
        let node = single_node(&root.join("n"), retention).await?;
        let base = url(&node);
        let client = Client::new(&base).map_err(|e| e.to_string())?;
        for i in 0..50 {
            client
                .put(&format!("w/{i:02}"), format!("v{i}"))
                .await
                .map_err(|e| e.to_string())?;
        }
        let answer = http(Method::GET, &format!("{base}/v1/watch/w/?from=1"), "").await?;
        let json = answer.json()?;
        let oldest = json["oldest"]
            .as_u64()
            .ok_or(format!("410 without oldest: {json}"))?;
        if answer.status != StatusCode::GONE || json["kind"] != "compacted" || oldest <= 1 {
            return Err(format!("a watch from 1: {} {json}", answer.status));
        }
        // The client says the same.
        let mut old = client.watch(
            "w/",
            WatchOptions {
                from: Some(oldest - 1),
                ..WatchOptions::default()
            },
        );
        match bounded("a compacted watch", BOUND, old.next()).await? {
            Err(ClientError::Compacted { oldest: o, .. }) if o == oldest => {}
            other => return Err(format!("the client's watch from {}: {other:?}", oldest - 1)),
        }
        // The oldest revision itself is served.
        let mut first = client.watch(
            "w/",
            WatchOptions {
                from: Some(oldest),
                progress: Some(Duration::from_millis(200)),
                ..WatchOptions::default()
            },
        );
        match bounded("the oldest revision", BOUND, first.next()).await? {
            Ok(WatchLine::Put { mod_index, .. }) if mod_index == oldest => {}
            other => {
                return Err(format!(
                    "a watch from the oldest revision {oldest}: {other:?}"
                ))
            }
        }

        // Recovery: re-list, then watch from the list's revision + 1.
        let listed = client
            .range("w/", None, None, ReadOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let mut state: BTreeMap<String, Vec<u8>> = listed
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
            .collect();
        let mut watch = client.watch(
            "w/",
            WatchOptions {
                from: Some(listed.revision + 1),
                progress: Some(Duration::from_millis(200)),
                ..WatchOptions::default()
            },
        );
        // The first line, once the watch has caught up, is a progress line: it is open.
        match bounded("the watch opens", BOUND, watch.next()).await? {
            Ok(WatchLine::Progress { revision }) if revision == listed.revision => {}
            other => return Err(format!("the watch's first line: {other:?}")),
        }
        for i in 0..10 {
            client
                .put(&format!("w/{i:02}"), format!("again {i}"))
                .await
                .map_err(|e| e.to_string())?;
        }
        client
            .delete_with("w/4", None, true)
            .await
            .map_err(|e| e.to_string())?;
        let last = client.put("w/new", "n").await.map_err(|e| e.to_string())?;
        for line in events_until(&mut watch, last).await? {
            match line {
                WatchLine::Put { key, value, .. } => {
                    state.insert(key, value.unwrap_or_default());
                }
                WatchLine::Delete { key, .. } => {
                    state.remove(&key);
                }
                other => return Err(format!("unexpected line {other:?}")),
            }
        }
        let now: BTreeMap<String, Vec<u8>> = client
            .range("w/", None, None, ReadOptions::default())
            .await
            .map_err(|e| e.to_string())?
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value.unwrap_or_default()))
            .collect();
        if state != now {
            return Err(format!("list + events: {state:?}\nstore: {now:?}"));
        }
        let answer = http(Method::GET, &format!("{base}/v1/kv/w/new"), "").await?;
        if answer.header(REVISION_HEADER).is_none_or(|r| r < last) {
            return Err(format!("revision header {:?}", answer.headers));
        }
        node.stop().await;
        Ok(format!(
            "410 from 1 (oldest {oldest}); re-listed at {} and followed to {last}",
            listed.revision
        ))
    });
}

/// The API's one middleware (`store::http::gate`): every routed answer is counted under
/// its route pattern and method (a method the API does not know is counted as `other`,
/// so clients cannot grow the metrics), and once the node drains every answer — routed,
/// 405, or 404 outside every route — closes its connection and says it drains.
#[test]
fn every_answer_is_counted_by_route_and_marked_while_draining() {
    run("kv-gate", |root| async move {
        let node = single_node(&root.join("n"), Retention::default()).await?;
        let base = url(&node);
        let draining = |a: &kv_support::Answer| {
            a.headers.get(DRAINING_HEADER).is_some()
                && a.headers.get("connection").and_then(|v| v.to_str().ok()) == Some("close")
        };
        let put = http(Method::PUT, &format!("{base}/v1/kv/app/a"), "1").await?;
        let purge = Method::from_bytes(b"PURGE").map_err(|e| e.to_string())?;
        let odd = http(purge.clone(), &format!("{base}/v1/kv/app/a"), "").await?;
        let lost = http(Method::GET, &format!("{base}/nowhere"), "").await?;
        if put.status != StatusCode::OK
            || odd.status != StatusCode::METHOD_NOT_ALLOWED
            || lost.status != StatusCode::NOT_FOUND
        {
            return Err(format!(
                "PUT {}, PURGE {}, GET /nowhere {}",
                put.status, odd.status, lost.status
            ));
        }
        if [&put, &odd, &lost].into_iter().any(draining) {
            return Err("an answer says the node drains before it does".into());
        }
        let metrics = http(Method::GET, &format!("{base}/metrics"), "")
            .await?
            .text();
        for series in [
            r#"tessera_http_requests_total{route="/v1/kv/{*key}",method="PUT",status="200"} 1"#,
            r#"tessera_http_requests_total{route="/v1/kv/{*key}",method="other",status="405"} 1"#,
            r#"tessera_http_request_duration_seconds_count{route="/v1/kv/{*key}",method="PUT"} 1"#,
        ] {
            if !metrics.lines().any(|l| l == series) {
                return Err(format!("/metrics lacks {series}:\n{metrics}"));
            }
        }
        if metrics.contains("PURGE") {
            return Err("a client's own method became a label".into());
        }

        // Draining starts at once; its wait before the stop is cut short here.
        let _ = tokio::time::timeout(Duration::from_millis(50), node.drain_http()).await;
        let get = http(Method::GET, &format!("{base}/v1/kv/app/a"), "").await?;
        let odd = http(purge, &format!("{base}/v1/kv/app/a"), "").await?;
        let lost = http(Method::GET, &format!("{base}/nowhere"), "").await?;
        for (what, answer) in [("GET", &get), ("PURGE", &odd), ("GET /nowhere", &lost)] {
            if !draining(answer) {
                return Err(format!(
                    "{what} while draining: {} {:?}",
                    answer.status, answer.headers
                ));
            }
        }
        if get.status != StatusCode::OK || get.body.as_ref() != b"1" {
            return Err(format!("GET while draining: {} {}", get.status, get.text()));
        }
        node.stop().await;
        Ok("counted by route; 200, 405 and 404 marked while draining".into())
    });
}
