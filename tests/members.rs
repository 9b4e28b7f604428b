//! Membership from the outside, on `tessera node` processes: the member list (relayed to
//! the leader from any node, or local), every refusal a clear 4xx, and the documented
//! procedure to replace a dead node (`tessera member remove`, a fresh node, `tessera
//! member add`) with no acknowledged write lost.

mod kv_support;

use hyper::{Method, StatusCode};
use kv_support::{client_of_all, http, run, three_nodes, Answer, BOUND};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};
use tessera::store::http::{ErrorBody, ErrorKind, MembersAnswer};
use tessera_testkit::cluster::LocalCluster;

fn members_of(answer: &Answer) -> Result<MembersAnswer, String> {
    if answer.status != StatusCode::OK {
        return Err(format!("member list: {} {}", answer.status, answer.text()));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("{e}: {}", answer.text()))
}

/// Expects `status` and `kind`; returns the error line.
fn refused(answer: &Answer, status: StatusCode, kind: ErrorKind) -> Result<String, String> {
    let body: ErrorBody = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("not an error body ({e}): {}", answer.text()))?;
    if answer.status != status || body.kind != kind {
        return Err(format!(
            "expected {status} {kind:?}, got {} {}",
            answer.status,
            answer.text()
        ));
    }
    Ok(body.error)
}

/// Runs the `tessera` binary with `args`; returns stdout, or the failure with stderr.
fn tessera(args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .map_err(|e| format!("tessera {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tessera {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `GET /v1/members` on `endpoint` until `done` holds, within `bound`.
async fn members_until(
    endpoint: &str,
    bound: Duration,
    what: &str,
    done: impl Fn(&MembersAnswer) -> bool,
) -> Result<MembersAnswer, String> {
    let start = Instant::now();
    loop {
        let answer = http(Method::GET, &format!("{endpoint}/v1/members"), "").await?;
        if let Ok(members) = members_of(&answer) {
            if done(&members) {
                return Ok(members);
            }
            if start.elapsed() > bound {
                return Err(format!("{what}: not within {bound:?}: {members:?}"));
            }
        } else if start.elapsed() > bound {
            return Err(format!("{what}: {} {}", answer.status, answer.text()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn member_list_and_refusals() {
    run("members-api", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        let follower = (leader + 1) % 3;
        let f_url = cluster.node(follower).endpoint();

        // Asked of a follower, the list is the leader's: three voters with their
        // addresses, HTTP endpoints, links and match indexes.
        let members = members_until(&f_url, BOUND, "three voters matched", |m| {
            m.members.len() == 3 && m.members.iter().all(|x| x.match_index.is_some())
        })
        .await?;
        if !members.from_leader || members.leader_http != Some(cluster.node(leader).endpoint()) {
            return Err(format!("not the leader's view: {members:?}"));
        }
        for node in cluster.nodes() {
            let id = node.id().ok_or("a started node has an id")?;
            let m = members
                .members
                .iter()
                .find(|m| m.id == id)
                .ok_or_else(|| format!("{} missing: {members:?}", node.name))?;
            if m.role != "voter"
                || m.http.as_deref() != Some(node.endpoint().as_str())
                || m.addr.as_deref() != Some(node.listen.to_string().as_str())
                || !m.online
            {
                return Err(format!("{} listed as {m:?}", node.name));
            }
        }
        // `?local`: the follower's own view, no match indexes.
        let local =
            members_of(&http(Method::GET, &format!("{f_url}/v1/members?local"), "").await?)?;
        if local.from_leader || local.members.iter().any(|m| m.match_index.is_some()) {
            return Err(format!("?local answered as the leader: {local:?}"));
        }

        // Refusals, each asked of the follower (relayed to the leader where it applies).
        let voter = cluster.node(leader).id().ok_or("id")?;
        let mut seen = Vec::new();
        let promote = http(
            Method::POST,
            &format!("{f_url}/v1/members/{}/promote", &voter[..8]),
            "",
        )
        .await?;
        seen.push(refused(
            &promote,
            StatusCode::CONFLICT,
            ErrorKind::Conflict,
        )?);
        let duplicate = format!(
            r#"{{"peer":"{}"}}"#,
            cluster.node(leader).addr.ok_or("addr")?
        );
        let add = http(Method::POST, &format!("{f_url}/v1/members"), duplicate).await?;
        seen.push(refused(&add, StatusCode::CONFLICT, ErrorKind::Conflict)?);
        for (body, what) in [
            (r#"{"peer":"nonsense"}"#, "a bad address"),
            (r#"{"peer":"x","extra":1}"#, "an unknown field"),
            ("", "no body"),
        ] {
            let bad = http(Method::POST, &format!("{f_url}/v1/members"), body).await?;
            seen.push(
                refused(&bad, StatusCode::BAD_REQUEST, ErrorKind::BadRequest)
                    .map_err(|e| format!("{what}: {e}"))?,
            );
        }
        let unknown = http(Method::DELETE, &format!("{f_url}/v1/members/ffffffff"), "").await?;
        seen.push(refused(
            &unknown,
            StatusCode::NOT_FOUND,
            ErrorKind::NotMember,
        )?);
        let short = http(Method::DELETE, &format!("{f_url}/v1/members/ab"), "").await?;
        seen.push(refused(
            &short,
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
        )?);
        let param = http(Method::GET, &format!("{f_url}/v1/members?verbose"), "").await?;
        seen.push(refused(
            &param,
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
        )?);
        let after = members_of(&http(Method::GET, &format!("{f_url}/v1/members"), "").await?)?;
        if after.members.len() != 3 || after.members.iter().any(|m| m.role != "voter") {
            return Err(format!("a refused call changed the members: {after:?}"));
        }
        drop(cluster);

        // The last voter of a one-node group cannot be removed.
        let mut alone = LocalCluster::new(
            env!("CARGO_BIN_EXE_tessera"),
            &root.join("alone"),
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            vec!["--bootstrap-expect".into(), "1".into()],
        )?;
        alone.start_all()?;
        alone.wait_leader(BOUND).await?;
        let only = alone.node(0).id().ok_or("id")?;
        let url = alone.node(0).endpoint();
        let last = http(Method::DELETE, &format!("{url}/v1/members/{only}"), "").await?;
        seen.push(refused(&last, StatusCode::CONFLICT, ErrorKind::Conflict)?);
        if !seen.last().is_some_and(|e| e.contains("last voter")) {
            return Err(format!("last-voter refusal in other words: {seen:?}"));
        }
        Ok(format!("members listed; refusals: {}", seen.join(" | ")))
    });
}

#[test]
fn replace_a_dead_node_loses_no_write() {
    run("members-replace", |root| async move {
        let mut cluster = three_nodes(&root, &[]).await?;
        let client = client_of_all(&cluster, BOUND);
        let mut acknowledged = Vec::new();
        for i in 0..100 {
            let key = format!("before/{i:03}");
            client
                .put(&key, format!("v{i}"))
                .await
                .map_err(|e| format!("put {key}: {e}"))?;
            acknowledged.push(key);
        }

        // Node 2's disk is lost for good.
        cluster.kill(2)?;
        let dead = cluster.node(2).id().ok_or("id")?;
        cluster.wipe(2)?;
        // Node 2 may have led: removals go through the leader, so wait for the next one.
        cluster.wait_leader(BOUND).await?;
        let e0 = cluster.node(0).endpoint();
        let removed = tessera(&["member", "remove", &dead[..12], "--endpoints", &e0])?;
        if removed.contains(&dead) {
            return Err(format!("still listed after remove:\n{removed}"));
        }

        // A fresh node on a new address, added by its ID@IP:PORT.
        let fresh = cluster.add_node(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let addr = cluster.start(fresh, &[])?;
        let added = tessera(&["member", "add", &addr.to_string(), "--endpoints", &e0])?;
        if !added.contains(&addr.id.to_string()) {
            return Err(format!("not listed after add:\n{added}"));
        }
        let new_id = addr.id.to_string();
        let members = members_until(&e0, BOUND * 2, "the new node promoted", |m| {
            m.members.len() == 3
                && m.members.iter().all(|x| x.role == "voter")
                && m.members.iter().any(|x| x.id == new_id)
        })
        .await?;
        for i in 0..100 {
            let key = format!("after/{i:03}");
            client
                .put(&key, format!("w{i}"))
                .await
                .map_err(|e| format!("put {key}: {e}"))?;
            acknowledged.push(key);
        }

        // The new node is needed now: with node 0 gone too, nodes 1 and 3 are the quorum.
        cluster.kill(0)?;
        cluster.wait_leader(BOUND).await?;
        let survivors = kv_support::client_of(&cluster, &[1, fresh], BOUND);
        for key in &acknowledged {
            let value = survivors
                .get(key, tessera::groups::Consistency::Strong)
                .await
                .map_err(|e| format!("get {key}: {e}"))?;
            if value.is_none() {
                return Err(format!("acknowledged write {key} lost"));
            }
        }
        Ok(format!(
            "dead {} removed, {} added and promoted ({} voters), {} acknowledged writes all read back from the new quorum",
            &dead[..10],
            &new_id[..10],
            members.members.len(),
            acknowledged.len()
        ))
    });
}
