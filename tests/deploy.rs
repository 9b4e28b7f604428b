//! The deployment recipes in `deploy/`, checked as far as this machine allows: the systemd
//! unit passes `systemd-analyze verify` (when systemd-analyze exists) and its command line
//! with the example `node.toml` starts a node; the container recipe is built when a
//! container daemon answers and `TESSERA_CONTAINER_BUILD=1` asks for it (it compiles
//! tessera from source: as long as a fresh `make test`), otherwise the test says why not
//! and checks what it can without a builder.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tessera_testkit::cluster::die_with_parent;
use tessera_testkit::ports::free_port;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// The unit's `ExecStart=` words.
fn exec_start(unit: &str) -> Vec<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_systemd_unit_verifies_and_its_command_starts_a_node() {
    let unit = std::fs::read_to_string(deploy("tessera.service")).expect("deploy/tessera.service");
    let words = exec_start(&unit);
    assert_eq!(words[0], "/usr/local/bin/tessera");
    assert_eq!(&words[1..3], ["node", "--config"]);
    let root = tempfile::tempdir().expect("temporary directory");
    let exe = env!("CARGO_BIN_EXE_tessera");
    let config = deploy("node.toml");

    // The unit as installed, pointed at this build and this checkout's node.toml.
    let installed = unit
        .replace("/usr/local/bin/tessera", exe)
        .replace("/etc/tessera/node.toml", &config.to_string_lossy());
    let copy = root.path().join("tessera.service");
    std::fs::write(&copy, installed).expect("unit copy");
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
    {
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // Lines about other units on this machine (or its missing systemd as PID 1)
            // are not ours; anything naming our unit is.
            let ours: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("tessera.service"))
                .collect();
            assert!(
                out.status.success() && ours.is_empty(),
                "systemd-analyze verify: {}\n{stderr}",
                out.status
            );
        }
        Err(e) => {
            println!("systemd-analyze not run ({e}): the unit is checked only by its command line")
        }
    }

    // Its command line with the example settings starts a node (data directory and ports
    // moved to this test's, as an operator's flags would).
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let port = free_port(ip).expect("free port").to_string();
    let mut cmd = Command::new(exe);
    cmd.args(&words[1..3])
        .arg(&config)
        .args(["--data-dir", &root.path().join("data").to_string_lossy()])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--http",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--bootstrap-expect", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA_") {
            cmd.env_remove(key);
        }
    }
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("tessera node");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first = BufReader::new(stdout).lines().next();
        let _ = tx.send(first);
    });
    let first = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    match first {
        Ok(Some(Ok(line))) => assert!(line.ends_with(&format!("@127.0.0.1:{port}")), "{line}"),
        other => panic!("the unit's command printed no address: {other:?}"),
    }
}

#[test]
fn the_container_recipe_builds_where_a_builder_exists() {
    let recipe = std::fs::read_to_string(deploy("Containerfile")).expect("deploy/Containerfile");
    for needed in [
        "ENTRYPOINT [\"/usr/local/bin/tessera\", \"node\"]",
        "STOPSIGNAL SIGTERM",
        "TESSERA_DATA_DIR=/var/lib/tessera",
    ] {
        assert!(recipe.contains(needed), "the recipe lacks {needed}");
    }
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"))
            .expect(".dockerignore keeps build output out of the context");
    assert!(ignore.lines().any(|l| l.trim() == "target"));
    let daemon = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !daemon {
        println!("container recipe not built: no container daemon answers on this machine");
        return;
    }
    if std::env::var("TESSERA_CONTAINER_BUILD").as_deref() != Ok("1") {
        println!("container recipe not built: set TESSERA_CONTAINER_BUILD=1 (it compiles tessera from source)");
        return;
    }
    let status = Command::new("docker")
        .args([
            "build",
            "-f",
            "deploy/Containerfile",
            "-t",
            "tessera:test",
            ".",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("docker build");
    assert!(status.success(), "docker build: {status}");
}
