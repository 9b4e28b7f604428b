//! The client commands of the `tessera` binary: `get`, `put`, `del`, `txn`, `watch`,
//! `status` (etcdctl's and `consul kv`'s, over the nodes' HTTP API).
//!
//! Every command takes `--endpoints a,b,c` and fails over between them as the library's
//! client does; `--format json` prints what a script wants. Exit codes are the client's
//! ([`tessera::store::client::ClientError::exit_code`]).

use base64::Engine;
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;
use tessera::store::client::{
    self, Client, ClientError, ClientTls, ReadOptions, WatchOptions, EXIT_COMPARE_FAILED,
    EXIT_FAILURE, EXIT_USAGE,
};
use tessera::store::http::{KvJson, WatchLine};

/// Where and how long.
#[derive(Args, Clone, Debug)]
pub(crate) struct ClientArgs {
    /// The nodes' HTTP APIs, comma-separated; calls fail over between them. Default:
    /// TESSERA_ENDPOINTS, else TESSERA_ENDPOINT (the older name), else
    /// http://127.0.0.1:7070.
    #[arg(
        long,
        visible_alias = "endpoint",
        env = "TESSERA_ENDPOINTS",
        value_delimiter = ','
    )]
    endpoints: Vec<String>,
    /// A bearer token, for nodes started with token files (a read-write one for writes).
    #[arg(long, env = "TESSERA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificates (PEM) to trust for https:// endpoints, instead of the system's
    /// roots.
    #[arg(long, value_name = "FILE", env = "TESSERA_CACERT")]
    cacert: Option<PathBuf>,
    /// A client certificate (PEM, leaf first) for nodes that require one
    /// (--http-client-ca). Needs --key.
    #[arg(
        long = "cert",
        id = "client_cert",
        value_name = "FILE",
        env = "TESSERA_CERT"
    )]
    client_cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(
        long = "key",
        id = "client_key",
        value_name = "FILE",
        env = "TESSERA_KEY"
    )]
    client_key: Option<PathBuf>,
    /// Give up on one request after this many seconds.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people.
    #[default]
    Text,
    /// One JSON document (`watch`: one per line).
    Json,
}

/// `tessera get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The key (with --prefix: the prefix; may be empty).
    key: String,
    /// Every key under KEY, in key order.
    #[arg(long)]
    prefix: bool,
    /// Names only (implies --prefix).
    #[arg(long)]
    keys_only: bool,
    /// At most N keys (with --prefix).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// This node's copy, possibly stale, instead of a linearizable read.
    #[arg(long)]
    stale: bool,
    /// Linearizable (the default; kept for older scripts).
    #[arg(long, hide = true)]
    strong: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    client: ClientArgs,
}

/// `tessera put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// The key (slashes allowed).
    key: String,
    /// The value; `-` or absent: read it from standard input (binary safe).
    value: Option<String>,
    /// Only if the key's mod_index is N (0: only if absent).
    #[arg(long)]
    cas: Option<u64>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    client: ClientArgs,
}

/// `tessera del`.
#[derive(Args, Debug)]
pub struct DelArgs {
    /// The key (with --prefix: the prefix).
    key: String,
    /// Every key under KEY, in one write.
    #[arg(long, conflicts_with = "cas")]
    prefix: bool,
    /// Only if the key's mod_index is N.
    #[arg(long)]
    cas: Option<u64>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    client: ClientArgs,
}

/// `tessera txn`.
#[derive(Args, Debug)]
pub struct TxnArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// `tessera watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The prefix (may be empty: every key).
    prefix: String,
    /// The first revision wanted (default: after the current one).
    #[arg(long)]
    from: Option<u64>,
    /// Only PREFIX itself, not the keys under it.
    #[arg(long)]
    exact: bool,
    /// Print previous values.
    #[arg(long)]
    prev: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    client: ClientArgs,
}

/// `tessera status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// A client command.
#[derive(Debug)]
pub enum Call {
    /// `get`
    Get(GetArgs),
    /// `put`
    Put(PutArgs),
    /// `del`
    Del(DelArgs),
    /// `txn`
    Txn(TxnArgs),
    /// `watch`
    Watch(WatchArgs),
    /// `status`
    Status(StatusArgs),
    /// `member list|add|promote|remove`
    Member(crate::membercli::MemberArgs),
    /// `leader transfer`
    Leader(crate::membercli::LeaderArgs),
}

/// A failure: exit code and one line.
pub type Failure = (u8, String);

pub(crate) fn fail(e: ClientError) -> Failure {
    (e.exit_code(), e.to_string())
}

pub(crate) fn connect(args: &ClientArgs) -> Result<Client, Failure> {
    let mut endpoints = args.endpoints.clone();
    if endpoints.is_empty() {
        // Scripts written for the single-endpoint client keep working.
        endpoints = std::env::var("TESSERA_ENDPOINT")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_else(|_| vec![client::DEFAULT_ENDPOINT.to_string()]);
    }
    let tls = ClientTls::from_files(
        args.cacert.as_deref(),
        args.client_cert.as_deref(),
        args.client_key.as_deref(),
    )
    .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    Client::with_endpoints_and_tls(&endpoints, Duration::from_secs(args.timeout), &tls)
        .map(|c| c.with_token(args.token.as_deref()))
        .map_err(fail)
}

/// Runs `call`, printing to standard output.
pub fn run(call: Call) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (EXIT_FAILURE, format!("tokio runtime: {e}")))?;
    let mut out = Out::new();
    runtime.block_on(async {
        match call {
            Call::Get(a) => get(a, &mut out).await,
            Call::Put(a) => put(a, &mut out).await,
            Call::Del(a) => del(a, &mut out).await,
            Call::Txn(a) => txn(a, &mut out).await,
            Call::Watch(a) => watch(a, &mut out).await,
            Call::Status(a) => {
                let status = connect(&a.client)?.status().await.map_err(fail)?;
                out.json_pretty(&status)
            }
            Call::Member(a) => crate::membercli::run(a, &mut out).await,
            Call::Leader(a) => crate::membercli::run_leader(a, &mut out).await,
        }
    })
}

/// Standard output, flushed after every line (a watch is read as it goes).
pub(crate) struct Out {
    out: std::io::Stdout,
    terminal: bool,
}

impl Out {
    pub(crate) fn new() -> Self {
        let out = std::io::stdout();
        let terminal = out.is_terminal();
        Out { out, terminal }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let mut lock = self.out.lock();
        lock.write_all(bytes)
            .and_then(|()| lock.flush())
            .map_err(|e| (EXIT_FAILURE, format!("stdout: {e}")))
    }

    pub(crate) fn line(&mut self, text: &str) -> Result<(), Failure> {
        self.write(format!("{text}\n").as_bytes())
    }

    fn json<T: serde::Serialize>(&mut self, value: &T) -> Result<(), Failure> {
        let text = serde_json::to_string(value).map_err(|e| (EXIT_FAILURE, e.to_string()))?;
        self.line(&text)
    }

    pub(crate) fn json_pretty<T: serde::Serialize>(&mut self, value: &T) -> Result<(), Failure> {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| (EXIT_FAILURE, e.to_string()))?;
        self.line(&text)
    }
}

/// A value for a line of text: as it is when it is UTF-8 without control characters,
/// else `base64:` and its base64.
fn printable(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_string(),
        _ => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(value)
        ),
    }
}

async fn get(a: GetArgs, out: &mut Out) -> Result<(), Failure> {
    let client = connect(&a.client)?;
    let options = ReadOptions {
        stale: a.stale,
        ..ReadOptions::default()
    };
    if a.stale && a.strong {
        return Err((
            client::EXIT_USAGE,
            "--stale and --strong exclude each other".into(),
        ));
    }
    if !(a.prefix || a.keys_only) {
        if a.limit.is_some() {
            return Err((client::EXIT_USAGE, "--limit pages a --prefix read".into()));
        }
        let entry = client
            .get_entry(&a.key, options)
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(ClientError::NotFound { key: a.key.clone() }))?;
        return match a.format {
            Format::Text => {
                out.write(&entry.value)?;
                if out.terminal {
                    out.write(b"\n")?;
                }
                Ok(())
            }
            Format::Json => out.json(&serde_json::json!({
                "key": a.key,
                "value": base64::engine::general_purpose::STANDARD.encode(&entry.value),
                "create_index": entry.create_index,
                "mod_index": entry.mod_index,
                "version": entry.version,
                "revision": entry.revision,
            })),
        };
    }
    // Pages until the end or --limit: each page is one revision; the listing's revision
    // is the first page's (a watch from it + 1 misses nothing that changed meanwhile).
    let mut after: Option<String> = None;
    let mut left = a.limit;
    let mut revision = None;
    let mut kvs: Vec<KvJson> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    // Where a listing cut short by --limit goes on (`--format json` reports it).
    let mut resume: Option<String> = None;
    loop {
        let want =
            left.map(|n| n.min(u64::from(tessera::store::kv::command::MAX_RANGE_LIMIT)) as u32);
        let (got, more, next, rev) = if a.keys_only {
            let page = client
                .keys(&a.key, after.as_deref(), want, options)
                .await
                .map_err(fail)?;
            let n = page.keys.len() as u64;
            names.extend(page.keys);
            (n, page.more, page.next, page.revision)
        } else {
            let page = client
                .range(&a.key, after.as_deref(), want, options)
                .await
                .map_err(fail)?;
            let n = page.kvs.len() as u64;
            kvs.extend(page.kvs);
            (n, page.more, page.next, page.revision)
        };
        revision.get_or_insert(rev);
        left = left.map(|n| n.saturating_sub(got));
        if !more || next.is_none() {
            break;
        }
        if left == Some(0) {
            resume = next;
            break;
        }
        after = next;
    }
    let revision = revision.unwrap_or(0);
    // `more` and `next` as in the API's pages: `next` is the `after=` of the next page.
    let more = resume.is_some();
    match (a.format, a.keys_only) {
        (Format::Json, true) => out.json(&serde_json::json!({
            "revision": revision, "keys": names, "more": more, "next": resume,
        })),
        (Format::Json, false) => out.json(&serde_json::json!({
            "revision": revision, "kvs": kvs, "more": more, "next": resume,
        })),
        (Format::Text, true) => names.iter().try_for_each(|k| out.line(k)),
        (Format::Text, false) => kvs.iter().try_for_each(|kv| {
            let value = kv.value.as_deref().unwrap_or_default();
            out.line(&format!("{}:{}", kv.key, printable(value)))
        }),
    }
}

async fn put(a: PutArgs, out: &mut Out) -> Result<(), Failure> {
    let client = connect(&a.client)?;
    let value = match a.value.as_deref() {
        None | Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| (EXIT_FAILURE, format!("stdin: {e}")))?;
            bytes
        }
        Some(v) => v.as_bytes().to_vec(),
    };
    let index = match a.cas {
        Some(n) => client.put_cas(&a.key, value, n).await,
        None => client.put(&a.key, value).await,
    }
    .map_err(fail)?;
    match a.format {
        Format::Text => out.line(&format!("index {index}")),
        Format::Json => out.json(&serde_json::json!({ "index": index })),
    }
}

async fn del(a: DelArgs, out: &mut Out) -> Result<(), Failure> {
    let client = connect(&a.client)?;
    let written = client
        .delete_with(&a.key, a.cas, a.prefix)
        .await
        .map_err(fail)?;
    match a.format {
        Format::Text => out.line(&format!(
            "index {} deleted {}",
            written.index,
            written.deleted.unwrap_or(0)
        )),
        Format::Json => out.json(&written),
    }
}

async fn txn(a: TxnArgs, out: &mut Out) -> Result<(), Failure> {
    let client = connect(&a.client)?;
    let mut json = Vec::new();
    std::io::stdin()
        .read_to_end(&mut json)
        .map_err(|e| (EXIT_FAILURE, format!("stdin: {e}")))?;
    let answer = client.txn_bytes(json).await.map_err(fail)?;
    out.json_pretty(&answer)?;
    if answer.succeeded {
        Ok(())
    } else {
        Err((
            EXIT_COMPARE_FAILED,
            format!(
                "the compares did not hold: the failure branch ran (index {})",
                answer.index
            ),
        ))
    }
}

async fn watch(a: WatchArgs, out: &mut Out) -> Result<(), Failure> {
    let client = connect(&a.client)?;
    let mut watch = client.watch(
        &a.prefix,
        WatchOptions {
            from: a.from,
            prev: a.prev,
            exact: a.exact,
            ..WatchOptions::default()
        },
    );
    loop {
        let line = match watch.next().await {
            Ok(line) => line,
            Err(ClientError::Compacted { message, oldest }) => {
                return Err((
                    client::EXIT_COMPACTED,
                    format!(
                        "{message}\nre-list with `tessera get {:?} --prefix --format json` and watch --from its revision + 1 (the oldest revision held is {oldest})",
                        a.prefix
                    ),
                ))
            }
            Err(e) => return Err(fail(e)),
        };
        match a.format {
            Format::Json => out.json(&line)?,
            Format::Text => match &line {
                WatchLine::Put {
                    key,
                    value,
                    mod_index,
                    prev_value,
                    ..
                } => {
                    let mut text = format!(
                        "{mod_index} put {key} {}",
                        printable(value.as_deref().unwrap_or_default())
                    );
                    if let Some(p) = prev_value {
                        text.push_str(&format!(" (was {})", printable(p)));
                    }
                    out.line(&text)?
                }
                WatchLine::Delete {
                    key,
                    mod_index,
                    prev_value,
                } => {
                    let mut text = format!("{mod_index} delete {key}");
                    if let Some(p) = prev_value {
                        text.push_str(&format!(" (was {})", printable(p)));
                    }
                    out.line(&text)?
                }
                WatchLine::Progress { .. } | WatchLine::Closed { .. } => {}
            },
        }
    }
}
