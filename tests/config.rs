//! Where `tessera node` takes its settings from, on real processes: a flag beats its
//! `TESSERA_*` variable, which beats the `--config` TOML file, which beats the default;
//! a bad file (unknown key, a value out of the flag's range) is refused naming the file,
//! the key or the flag; `--log-format json` writes one JSON object per line; the public
//! default group key is warned about.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tessera_testkit::cluster::die_with_parent;
use tessera_testkit::ports::free_port;

fn addr() -> SocketAddr {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    SocketAddr::new(ip, free_port(ip).expect("a free port"))
}

/// `tessera node` with `args` and `env` (no other TESSERA_* or RUST_LOG variable).
fn node(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("node").args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    die_with_parent(&mut cmd);
    cmd
}

/// Starts the node, returns the HTTP URL it prints (its second line) and its stderr so
/// far, then kills it.
fn http_of(mut cmd: Command, log: &Path) -> Result<(String, String), String> {
    let err = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let second = lines.next();
        let _ = tx.send((first, second));
        for _ in lines {}
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(log).unwrap_or_default();
    match got {
        Ok((Some(Ok(_)), Some(Ok(http)))) => Ok((http, stderr)),
        _ => Err(format!("the node printed no addresses; stderr:\n{stderr}")),
    }
}

/// Runs the node expecting it to refuse its settings; returns its exit code and stderr.
fn refused(mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd.output().expect("tessera runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let root = tempfile::tempdir().expect("temporary directory");
    let (from_file, from_env, from_flag) = (addr(), addr(), addr());
    let config = root.path().join("node.toml");
    let data = root.path().join("data");
    std::fs::write(
        &config,
        format!(
            "data-dir = {:?}\nlisten = \"{}\"\nhttp = \"{from_file}\"\nbootstrap_expect = 1\nlog-level = \"warn\"\nruntime-threads = 1\n",
            data.display(),
            addr(),
        ),
    )
    .expect("config file");
    let file = config.to_string_lossy().into_owned();
    let log = root.path().join("stderr");

    // The file alone (its data directory, its address, its log level, one runtime
    // thread).
    let (http, stderr) = http_of(node(&["--config", &file], &[]), &log).expect("file");
    assert_eq!(http, format!("http://{from_file}"));
    assert!(
        !stderr.contains(" INFO "),
        "log-level from the file: {stderr}"
    );
    assert!(
        stderr.contains("PUBLIC DEFAULT"),
        "no warning about the default key: {stderr}"
    );

    // The environment beats the file, and names the file too.
    let env_http = from_env.to_string();
    let env = [
        ("TESSERA_CONFIG", file.as_str()),
        ("TESSERA_HTTP", env_http.as_str()),
    ];
    let (http, _) = http_of(node(&[], &env), &log).expect("env");
    assert_eq!(http, format!("http://{from_env}"));

    // A flag beats both; a secret key silences the warning.
    let flag_http = from_flag.to_string();
    let args = ["--http", flag_http.as_str(), "--group-key", "s3cret"];
    let (http, stderr) = http_of(node(&args, &env), &log).expect("flag");
    assert_eq!(http, format!("http://{from_flag}"));
    assert!(!stderr.contains("PUBLIC DEFAULT"), "{stderr}");

    // JSON logs: every line one object.
    let args = [
        "--config",
        file.as_str(),
        "--log-format",
        "json",
        "--log-level",
        "info",
    ];
    let (_, stderr) = http_of(node(&args, &[]), &log).expect("json");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

#[test]
fn a_bad_config_file_is_refused_naming_what_is_wrong() {
    let root = tempfile::tempdir().expect("temporary directory");
    let data = root.path().join("data");
    let cases = [
        ("heartbeat = 100\n", "unknown setting \"heartbeat\""),
        ("heartbeat-ms = 0\n", "--heartbeat-ms"),
        ("runtime-threads = 0\n", "--runtime-threads"),
        ("http = \"not an address\"\n", "--http"),
        ("peer = [{ id = 1 }]\n", "setting \"peer\""),
        ("http = \n", "node.toml"),
    ];
    for (i, (text, words)) in cases.iter().enumerate() {
        let config = root.path().join("node.toml");
        std::fs::write(&config, text).expect("config file");
        let file = config.to_string_lossy().into_owned();
        let dir = data.join(i.to_string());
        let dir = dir.to_string_lossy();
        let (code, stderr) = refused(node(&["--config", &file, "--data-dir", &dir], &[]));
        assert_eq!(code, Some(2), "{text:?}: {stderr}");
        assert!(
            stderr.contains(words),
            "{text:?}: expected {words:?} in {stderr}"
        );
        assert!(
            !Path::new(dir.as_ref()).exists(),
            "{text:?}: a refused start created its data directory"
        );
    }
}
