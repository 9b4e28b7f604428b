//! HTTPS for the API on real `tessera node` processes, with a CA and certificates made by
//! the test (rcgen):
//! - three nodes with `--http-cert`, `--http-key` and `--http-client-ca` (mutual TLS)
//!   take writes and reads over HTTPS, relay member and leadership calls to the leader
//!   over HTTPS (presenting their own certificates), answer plain HTTP with a 400 that
//!   says to use https://, and refuse, changing nothing, a client that does not trust
//!   their CA, a client without a certificate and a client whose certificate comes from
//!   another CA; the command line does the same with `--cacert`, `--cert`, `--key` and
//!   their TESSERA_* variables; every node stops cleanly on SIGTERM;
//! - without `--http-client-ca`, a client that trusts the CA needs no certificate;
//! - bad TLS settings (half a pair, a missing, empty, torn or wrong file, a key that is
//!   not the certificate's), from flags, TESSERA_* or the config file, stop the node at
//!   startup with an error naming the flag and the file, before its data directory
//!   exists; the command line refuses half a pair in the same words.

mod kv_support;

use kv_support::{bounded, run, BOUND};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tessera::groups::Consistency;
use tessera::store::client::{Client, ClientError, ClientTls};
use tessera_testkit::cluster::{die_with_parent, LocalCluster};
use tessera_testkit::ports::free_port;

/// The test's certificates, as PEM files in one directory.
struct Pki {
    /// The cluster's CA.
    ca: PathBuf,
    /// Every node's certificate (SANs 127.0.0.1 and localhost; server and client
    /// authentication) and key.
    node_cert: PathBuf,
    node_key: PathBuf,
    /// An operator's client certificate from the cluster's CA, and its key.
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A client certificate from another CA, and its key.
    stranger_cert: PathBuf,
    stranger_key: PathBuf,
}

fn ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

/// A certificate for `names` signed by `issuer`, for `usages`: (certificate, key) in PEM.
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Result<(String, String), rcgen::Error> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = usages;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn make_pki(dir: &Path) -> Result<Pki, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let e = |e: rcgen::Error| format!("rcgen: {e}");
    let cluster_ca = ca("tessera test CA").map_err(e)?;
    let stranger_ca = ca("another CA").map_err(e)?;
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let (node_cert, node_key) = leaf(
        &cluster_ca,
        "tessera node",
        &["127.0.0.1", "localhost"],
        vec![ServerAuth, ClientAuth],
    )
    .map_err(e)?;
    let (client_cert, client_key) =
        leaf(&cluster_ca, "operator", &[], vec![ClientAuth]).map_err(e)?;
    let (stranger_cert, stranger_key) =
        leaf(&stranger_ca, "operator", &[], vec![ClientAuth]).map_err(e)?;
    Ok(Pki {
        ca: write(dir, "ca.pem", &cluster_ca.pem())?,
        node_cert: write(dir, "node.pem", &node_cert)?,
        node_key: write(dir, "node.key", &node_key)?,
        client_cert: write(dir, "client.pem", &client_cert)?,
        client_key: write(dir, "client.key", &client_key)?,
        stranger_cert: write(dir, "stranger.pem", &stranger_cert)?,
        stranger_key: write(dir, "stranger.key", &stranger_key)?,
    })
}

fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn tls(
    cacert: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<ClientTls, String> {
    ClientTls::from_files(cacert, cert, key).map_err(|e| e.to_string())
}

/// A client of `endpoint` with `tls`.
fn client(endpoint: &str, tls: &ClientTls) -> Result<Client, String> {
    Client::with_endpoints_and_tls(&[endpoint], Duration::from_secs(5), tls)
        .map_err(|e| e.to_string())
}

/// The reason of a TLS failure, or what happened instead.
fn tls_refusal<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, ClientError>,
) -> Result<String, String> {
    match result {
        Err(ClientError::Tls { reason, .. }) => Ok(reason),
        other => Err(format!("{what}: expected a TLS refusal, got {other:?}")),
    }
}

/// `tessera ARGS` with `env` (and no other TESSERA_* variable): exit code, stdout, stderr.
fn tessera(
    args: &[String],
    env: &[(&str, String)],
) -> Result<(Option<i32>, String, String), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    die_with_parent(&mut cmd);
    let out = cmd.output().map_err(|e| format!("tessera: {e}"))?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn mutual_tls_cluster_serves_relays_and_refuses_strangers() {
    run("tls-mutual", |root| async move {
        let pki = make_pki(&root.join("pki"))?;
        let args = vec![
            "--http-cert".into(),
            arg(&pki.node_cert),
            "--http-key".into(),
            arg(&pki.node_key),
            "--http-client-ca".into(),
            arg(&pki.ca),
        ];
        let trusted = tls(Some(&pki.ca), Some(&pki.client_cert), Some(&pki.client_key))?;
        let mut cluster =
            LocalCluster::loopback(env!("CARGO_BIN_EXE_tessera"), &root.join("nodes"), args)?
                .with_tls(trusted.clone());
        cluster.start_all()?;
        let (leader, _) = cluster.wait_leader(BOUND).await?;
        let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
        let endpoint = |i: usize| cluster.node(i).endpoint();
        if !endpoint(f1).starts_with("https://") {
            return Err(format!("endpoint {} is not https", endpoint(f1)));
        }

        // A write through a follower, read back from the other one.
        let writer = client(&endpoint(f1), &trusted)?;
        bounded("put over HTTPS", BOUND, writer.put("tls/key", "v1"))
            .await?
            .map_err(|e| format!("put over HTTPS: {e}"))?;
        let reader = client(&endpoint(f2), &trusted)?;
        let read = bounded(
            "get over HTTPS",
            BOUND,
            reader.get("tls/key", Consistency::Strong),
        )
        .await?
        .map_err(|e| format!("get over HTTPS: {e}"))?;
        if read.as_deref() != Some(&b"v1"[..]) {
            return Err(format!("read back {read:?}"));
        }

        // Member calls through a follower are relayed to the leader's https:// address,
        // the follower presenting its own certificate.
        let members = bounded("member list", BOUND, writer.members(false))
            .await?
            .map_err(|e| format!("member list through a follower: {e}"))?;
        if !members.from_leader
            || !members
                .leader_http
                .as_deref()
                .unwrap_or("")
                .starts_with("https://")
        {
            return Err(format!(
                "member list not relayed to the leader over HTTPS: from_leader={} leader_http={:?}",
                members.from_leader, members.leader_http
            ));
        }
        let transferred = bounded("leader transfer", BOUND, writer.transfer_leader(None))
            .await?
            .map_err(|e| format!("leader transfer through a follower: {e}"))?;

        // Plain HTTP to the HTTPS port: a 400 that says so.
        let plain = format!("http://{}", cluster.node(f2).http);
        let answer = client(&plain, &ClientTls::default())?
            .get("tls/key", Consistency::Strong)
            .await;
        match &answer {
            Err(ClientError::Refused {
                status: 400,
                message,
                ..
            }) if message.contains("https://") => {}
            other => return Err(format!("plain HTTP to the HTTPS port: {other:?}")),
        }

        // A client that does not trust the cluster's CA (the system's roots only).
        let untrusting = tls(None, Some(&pki.client_cert), Some(&pki.client_key))?;
        let reason = tls_refusal(
            "a client without the CA",
            client(&endpoint(f2), &untrusting)?
                .put("tls/key", "untrusting")
                .await,
        )?;
        if !reason.contains("certificate not trusted") || !reason.contains("--cacert") {
            return Err(format!("a client without the CA was told: {reason}"));
        }
        // A client without a certificate, and one whose certificate another CA signed.
        let anonymous = tls(Some(&pki.ca), None, None)?;
        let reason = tls_refusal(
            "a client without a certificate",
            client(&endpoint(f2), &anonymous)?
                .put("tls/key", "anonymous")
                .await,
        )?;
        if !reason.contains("requires a client certificate") || !reason.contains("--cert") {
            return Err(format!("a client without a certificate was told: {reason}"));
        }
        let stranger = tls(
            Some(&pki.ca),
            Some(&pki.stranger_cert),
            Some(&pki.stranger_key),
        )?;
        let reason = tls_refusal(
            "a client with another CA's certificate",
            client(&endpoint(f1), &stranger)?
                .put("tls/key", "stranger")
                .await,
        )?;
        if !reason.contains("refused this client's certificate") {
            return Err(format!(
                "a client with another CA's certificate was told: {reason}"
            ));
        }
        // The node says why it refused, in words.
        let log = cluster.log_tail(f2, 400);
        if !log.contains("TLS handshake refused") || !log.contains("presented no certificate") {
            return Err(format!(
                "{} logged no refusal in words:\n{log}",
                cluster.node(f2).name
            ));
        }
        let after = bounded(
            "read back",
            BOUND,
            reader.get("tls/key", Consistency::Strong),
        )
        .await?
        .map_err(|e| format!("read back: {e}"))?;
        if after.as_deref() != Some(&b"v1"[..]) {
            return Err(format!("a refused client changed the key: {after:?}"));
        }

        // The command line: files by flag, by TESSERA_* variable, and a refusal in words.
        let (code, _, stderr) = tessera(
            &[
                "put".into(),
                "tls/cli".into(),
                "from the cli".into(),
                "--endpoint".into(),
                endpoint(f1),
            ],
            &[
                ("TESSERA_CACERT", arg(&pki.ca)),
                ("TESSERA_CERT", arg(&pki.client_cert)),
                ("TESSERA_KEY", arg(&pki.client_key)),
            ],
        )?;
        if code != Some(0) {
            return Err(format!(
                "tessera put with TESSERA_CACERT/CERT/KEY: {code:?} {stderr}"
            ));
        }
        let (code, stdout, stderr) = tessera(
            &[
                "get".into(),
                "tls/cli".into(),
                "--endpoint".into(),
                endpoint(f2),
                "--cacert".into(),
                arg(&pki.ca),
                "--cert".into(),
                arg(&pki.client_cert),
                "--key".into(),
                arg(&pki.client_key),
            ],
            &[],
        )?;
        if code != Some(0) || stdout.trim() != "from the cli" {
            return Err(format!(
                "tessera get over HTTPS: {code:?} {stdout:?} {stderr}"
            ));
        }
        let (code, _, stderr) = tessera(
            &[
                "get".into(),
                "tls/cli".into(),
                "--endpoint".into(),
                endpoint(f2),
            ],
            &[],
        )?;
        if code != Some(1)
            || !stderr.contains("certificate not trusted")
            || !stderr.contains("(pass --cacert")
        {
            return Err(format!("tessera get without --cacert: {code:?} {stderr}"));
        }

        // Clean stops drain and close over TLS too.
        for i in 0..cluster.len() {
            match cluster.terminate(i, Duration::from_secs(20))? {
                Some(status) if status.success() => {}
                other => {
                    return Err(format!(
                        "{} did not stop cleanly on SIGTERM: {other:?}; log:\n{}",
                        cluster.node(i).name,
                        cluster.log_tail(i, 20)
                    ))
                }
            }
        }
        Ok(format!(
            "mutual TLS: writes, reads, relayed member list and transfer (to {}), plain HTTP 400, untrusted CA, no certificate and a stranger's certificate refused, CLI by flag and env",
            &transferred.leader[..10.min(transferred.leader.len())]
        ))
    });
}

#[test]
fn without_client_ca_any_client_that_trusts_the_node_is_served() {
    run("tls-server-only", |root| async move {
        let pki = make_pki(&root.join("pki"))?;
        let args = vec![
            "--bootstrap-expect".into(),
            "1".into(),
            "--http-cert".into(),
            arg(&pki.node_cert),
            "--http-key".into(),
            arg(&pki.node_key),
        ];
        let trusting = tls(Some(&pki.ca), None, None)?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut cluster = LocalCluster::new(
            env!("CARGO_BIN_EXE_tessera"),
            &root.join("nodes"),
            &[ip],
            args,
        )?
        .with_tls(trusting.clone());
        cluster.start_all()?;
        cluster.wait_leader(BOUND).await?;
        let node = client(&cluster.node(0).endpoint(), &trusting)?;
        bounded("put", BOUND, node.put("open/key", "v"))
            .await?
            .map_err(|e| format!("put without a client certificate: {e}"))?;
        let read = bounded("get", BOUND, node.get("open/key", Consistency::Strong))
            .await?
            .map_err(|e| format!("get: {e}"))?;
        if read.as_deref() != Some(&b"v"[..]) {
            return Err(format!("read back {read:?}"));
        }
        match cluster.terminate(0, Duration::from_secs(20))? {
            Some(status) if status.success() => {}
            other => return Err(format!("no clean stop: {other:?}")),
        }
        Ok("HTTPS without client certificates".into())
    });
}

#[test]
fn bad_tls_settings_stop_the_node_at_startup_naming_the_file() {
    let root = tempfile::tempdir().expect("temporary directory");
    let pki = make_pki(&root.path().join("pki")).expect("certificates");
    let other = make_pki(&root.path().join("other")).expect("other certificates");
    let dir = root.path();
    let empty = write(dir, "empty.pem", "no PEM here\n").expect("file");
    let torn = write(dir, "torn.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n").expect("file");
    let missing = dir.join("missing.pem");
    let data = dir.join("data");
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let addr = SocketAddr::new(ip, free_port(ip).expect("a free port")).to_string();
    let node = |extra: &[&Path], flags: &[&str]| -> Vec<String> {
        let mut args = vec![
            "node".to_string(),
            "--data-dir".into(),
            arg(&data),
            "--listen".into(),
            addr.clone(),
            "--http".into(),
            addr.clone(),
        ];
        for (flag, file) in flags.iter().zip(extra) {
            args.push(flag.to_string());
            args.push(arg(file));
        }
        args
    };
    // (what, arguments, environment, the file the error must name, words it must hold)
    type Case<'a> = (
        &'a str,
        Vec<String>,
        Vec<(&'a str, String)>,
        &'a Path,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "a certificate without its key",
            node(&[&pki.node_cert], &["--http-cert"]),
            vec![],
            &pki.node_cert,
            "is given without --http-key",
        ),
        (
            "a key without its certificate (TESSERA_HTTP_KEY)",
            node(&[], &[]),
            vec![("TESSERA_HTTP_KEY", arg(&pki.node_key))],
            &pki.node_key,
            "is given without --http-cert",
        ),
        (
            "a missing certificate file",
            node(&[&missing, &pki.node_key], &["--http-cert", "--http-key"]),
            vec![],
            &missing,
            "--http-cert",
        ),
        (
            "a file without a certificate",
            node(&[&empty, &pki.node_key], &["--http-cert", "--http-key"]),
            vec![],
            &empty,
            "no PEM certificate in it",
        ),
        (
            "a torn PEM file",
            node(&[&torn, &pki.node_key], &["--http-cert", "--http-key"]),
            vec![],
            &torn,
            "not valid PEM",
        ),
        (
            "a key that is not the certificate's",
            node(
                &[&pki.node_cert, &other.node_key],
                &["--http-cert", "--http-key"],
            ),
            vec![],
            &other.node_key,
            "does not belong to the certificate",
        ),
        (
            "a client CA file without a certificate",
            node(
                &[&pki.node_cert, &pki.node_key, &empty],
                &["--http-cert", "--http-key", "--http-client-ca"],
            ),
            vec![],
            &empty,
            "--http-client-ca",
        ),
        (
            "a client CA without HTTPS",
            node(&[&pki.ca], &["--http-client-ca"]),
            vec![],
            &pki.ca,
            "needs --http-cert and --http-key",
        ),
    ];
    for (what, args, env, file, expected) in cases {
        let (code, _, stderr) = tessera(&args, &env).expect("tessera runs");
        let named = format!("{}", file.display());
        assert!(
            code == Some(1) && stderr.contains(&named) && stderr.contains(expected),
            "{what}: exit {code:?}, stderr:\n{stderr}"
        );
        assert!(!data.exists(), "{what}: the data directory was created");
    }

    // The same from the config file: a mismatched pair.
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "http-cert = {:?}\nhttp-key = {:?}\n",
            arg(&pki.node_cert),
            arg(&other.node_key)
        ),
    )
    .expect("config file");
    let mut args = node(&[], &[]);
    args.push("--config".into());
    args.push(arg(&config));
    let (code, _, stderr) = tessera(&args, &[]).expect("tessera runs");
    assert!(
        code == Some(1)
            && stderr.contains(&format!("{}", other.node_key.display()))
            && stderr.contains("does not belong"),
        "config file with a mismatched key: exit {code:?}, stderr:\n{stderr}"
    );
    assert!(
        !data.exists(),
        "config file: the data directory was created"
    );

    // The command line refuses half a pair, naming the file.
    let (code, _, stderr) = tessera(
        &[
            "get".into(),
            "k".into(),
            "--endpoint".into(),
            format!("https://{addr}"),
            "--cert".into(),
            arg(&pki.client_cert),
        ],
        &[],
    )
    .expect("tessera runs");
    assert!(
        code == Some(2)
            && stderr.contains(&format!("{}", pki.client_cert.display()))
            && stderr.contains("without --key"),
        "tessera get --cert without --key: exit {code:?}, stderr:\n{stderr}"
    );
}
