//! One tessera process per data directory: a second `tessera node` on a live node's
//! directory fails with the owner's pid before it binds or writes anything, and the first
//! node goes on serving with its lock, key and data untouched. A node whose HTTP port is
//! busy leaves no half-created data directory behind.
//!
//! Every wait is bounded; the nodes' logs are kept on failure.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tessera::data_dir::{KEY_FILE_NAME, LOCK_FILE_NAME};
use tessera::groups::Consistency;
use tessera_testkit::cluster::{die_with_parent, fast_timings, LocalCluster};
use tessera_testkit::ports::free_port;

const BOUND: Duration = Duration::from_secs(30);

#[test]
fn a_second_process_on_a_live_data_directory_fails_and_leaves_the_first_untouched() {
    let root = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut args = fast_timings();
    args.extend(["--bootstrap-expect".to_string(), "1".to_string()]);
    let mut single = LocalCluster::new(
        env!("CARGO_BIN_EXE_tessera"),
        &root.path().join("single"),
        &[ip],
        args,
    )
    .expect("plan");
    single.start(0, &[]).expect("start");
    let result = runtime.block_on(scenario(&mut single, root.path()));
    if let Err(err) = result {
        let log = single.log_tail(0, 30);
        let kept = root.keep();
        panic!(
            "{err}\nlast lines of the first node:\n{log}\n(kept in {})",
            kept.display()
        );
    }
    single.terminate(0, BOUND).expect("stop the first node");
}

async fn scenario(single: &mut LocalCluster, root: &Path) -> Result<(), String> {
    single.wait_leader(BOUND).await?;
    let client = single.client(0, BOUND);
    client
        .put("before", "first")
        .await
        .map_err(|e| format!("put before: {e}"))?;
    let node = single.node(0);
    let dir = node.dir.clone();
    let pid = node.pid().ok_or("the first node has no pid")?;
    let key_before = std::fs::read(dir.join(KEY_FILE_NAME)).map_err(|e| e.to_string())?;
    let ip = node.listen.ip();

    // Free ports of its own, so only the directory stands in the second node's way.
    let listen = SocketAddr::new(ip, free_port(ip)?);
    let http = SocketAddr::new(ip, free_port(ip)?);
    let (code, stderr) = run_node(&dir, listen, http)?;
    let expected = format!("in use by another tessera process (pid {pid})");
    if code == 0 || !stderr.contains(&expected) {
        return Err(format!(
            "second node on {}: exit code {code}, expected a failure naming {expected:?}; stderr:\n{stderr}",
            dir.display()
        ));
    }
    // It bound nothing: both of its ports are still free.
    std::net::UdpSocket::bind(listen)
        .map_err(|e| format!("the second node left its peers' port {listen} bound: {e}"))?;
    std::net::TcpListener::bind(http)
        .map_err(|e| format!("the second node left its HTTP port {http} bound: {e}"))?;

    // The first node is untouched: running, same lock owner, same key, still serving.
    if !single.is_running(0) {
        return Err("the first node exited".into());
    }
    let owner = std::fs::read_to_string(dir.join(LOCK_FILE_NAME)).map_err(|e| e.to_string())?;
    if owner.trim() != pid.to_string() {
        return Err(format!("lock file names {owner:?}, expected pid {pid}"));
    }
    let key_after = std::fs::read(dir.join(KEY_FILE_NAME)).map_err(|e| e.to_string())?;
    if key_after != key_before {
        return Err("the node key changed".into());
    }
    client
        .put("after", "still serving")
        .await
        .map_err(|e| format!("put after: {e}"))?;
    for (key, value) in [("before", "first"), ("after", "still serving")] {
        let got = client
            .get(key, Consistency::Strong)
            .await
            .map_err(|e| format!("get {key}: {e}"))?;
        if got.as_deref() != Some(value.as_bytes()) {
            return Err(format!("{key}: expected {value:?}, got {got:?}"));
        }
    }

    // A node whose HTTP port is busy (the first node's) creates no data directory.
    let fresh = root.join("fresh");
    let busy_http = single.node(0).http;
    let listen = SocketAddr::new(ip, free_port(ip)?);
    let (code, stderr) = run_node(&fresh, listen, busy_http)?;
    if code == 0 || !stderr.contains(&busy_http.to_string()) {
        return Err(format!(
            "a node on the busy HTTP port {busy_http}: exit code {code}; stderr:\n{stderr}"
        ));
    }
    if fresh.exists() {
        return Err(format!(
            "a failed start left the data directory {} behind",
            fresh.display()
        ));
    }
    Ok(())
}

/// Runs `tessera node` on `dir` until it exits (bounded); its exit code and stderr.
fn run_node(dir: &Path, listen: SocketAddr, http: SocketAddr) -> Result<(i32, String), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("node")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--http")
        .arg(http.to_string())
        .args(fast_timings())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start tessera node: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > BOUND => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "tessera node on {} still runs after {BOUND:?}",
                    dir.display()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("wait for tessera node: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("read tessera node's stderr: {e}"))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
