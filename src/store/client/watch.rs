//! A watch that survives its node: [`Watch::next`] yields the lines of
//! `GET /v1/watch/{prefix}` and, when the stream breaks (the node died, restarted, closed
//! the stream, or went silent for three progress intervals), reconnects to the next
//! endpoint and resumes where it stopped.
//!
//! The resume point is the last progress revision + 1, or the revision of the last event
//! delivered: a transaction writes several keys at one revision, so the watch resumes at
//! that revision and drops the events of it already delivered (every node streams a
//! revision's events in the same order: the history is replicated state). Events thus
//! arrive once each, in revision order, with no gap, whatever node serves them.

use super::{error_chain, Client, ClientError};
use crate::store::http::watch::DEFAULT_PROGRESS;
use crate::store::http::{WatchLine, REVISION_HEADER};
use axum::body::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Longest line accepted from a node (a put of a 1 MiB value with its previous value,
/// in base64, with room to spare).
const MAX_LINE_BYTES: usize = 8 << 20;

/// First pause after every endpoint failed; doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Longest pause between two rounds of reconnection attempts.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// What to watch and how.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// The first revision wanted (inclusive); `None`: after the node's current revision.
    pub from: Option<u64>,
    /// Include previous values.
    pub prev: bool,
    /// Only the key itself, not the keys under it.
    pub exact: bool,
    /// Progress interval asked of the node (its default, 10 s, when `None`).
    pub progress: Option<Duration>,
    /// Give up when no node has accepted the watch for this long (never when `None`).
    pub give_up_after: Option<Duration>,
}

/// An open stream.
struct Stream {
    body: Incoming,
    buf: Vec<u8>,
    endpoint: usize,
}

/// A watch; see the module doc.
pub struct Watch {
    client: Client,
    prefix: String,
    options: WatchOptions,
    /// The revision to resume from, once known ...
    resume: Option<u64>,
    /// ... and how many of its events were delivered already.
    seen: usize,
    /// Events of `resume` to drop on the current stream (delivered before a reconnect).
    drop: usize,
    stream: Option<Stream>,
    /// The endpoint to try first on the next connection.
    try_next: usize,
    reconnects: u64,
    pending: VecDeque<WatchLine>,
}

impl Client {
    /// Watches the keys under `prefix` (see [`Watch`]); nothing is sent before the first
    /// [`Watch::next`].
    pub fn watch(&self, prefix: &str, options: WatchOptions) -> Watch {
        Watch {
            client: self.clone(),
            prefix: prefix.to_string(),
            resume: options.from,
            options,
            seen: 0,
            drop: 0,
            stream: None,
            try_next: self.current_index(),
            reconnects: 0,
            pending: VecDeque::new(),
        }
    }
}

impl Watch {
    /// The next event or progress line. Reconnects on its own; fails only when a node
    /// refuses the watch (410 [`ClientError::Compacted`]: re-list and watch from the
    /// list's revision + 1; a bad prefix or parameter), or after `give_up_after` without
    /// any node accepting it.
    pub async fn next(&mut self) -> Result<WatchLine, ClientError> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                if let Some(line) = self.deliver(line) {
                    return Ok(line);
                }
                continue;
            }
            if self.stream.is_none() {
                self.connect().await?;
            }
            match self.read().await {
                Ok(true) => {}
                Ok(false) | Err(_) => self.broke(),
            }
        }
    }

    /// The revision a new watch would start from to continue this one, once known.
    pub fn resume_from(&self) -> Option<u64> {
        self.resume
    }

    /// How many times the stream broke and was opened again.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The endpoint of the current stream.
    pub fn endpoint(&self) -> Option<&str> {
        self.stream.as_ref().map(|s| self.client.base(s.endpoint))
    }

    /// Drops the current stream (the next call reconnects, to the next endpoint).
    pub fn disconnect(&mut self) {
        self.broke();
    }

    fn broke(&mut self) {
        if let Some(s) = self.stream.take() {
            self.try_next = s.endpoint + 1;
            self.reconnects += 1;
        }
        self.pending.clear();
    }

    /// Tracks the resume point; `None` for a line already delivered or a closing line.
    fn deliver(&mut self, line: WatchLine) -> Option<WatchLine> {
        match &line {
            WatchLine::Put { mod_index, .. } | WatchLine::Delete { mod_index, .. } => {
                let m = *mod_index;
                if Some(m) == self.resume {
                    if self.drop > 0 {
                        self.drop -= 1;
                        return None;
                    }
                    self.seen += 1;
                } else {
                    self.resume = Some(m);
                    self.seen = 1;
                }
                self.drop = 0;
                Some(line)
            }
            WatchLine::Progress { revision } => {
                let next = revision + 1;
                if self.resume.is_none_or(|r| next > r) {
                    self.resume = Some(next);
                    self.seen = 0;
                    self.drop = 0;
                }
                Some(line)
            }
            WatchLine::Closed { .. } => {
                self.broke();
                None
            }
        }
    }

    fn path(&self) -> String {
        let mut params = Vec::new();
        if let Some(from) = self.resume {
            params.push(format!("from={from}"));
        }
        if self.options.prev {
            params.push("prev".to_string());
        }
        if self.options.exact {
            params.push("exact".to_string());
        }
        if let Some(p) = self.options.progress {
            params.push(format!("progress={}ms", p.as_millis()));
        }
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        let prefix = super::encode_key(&self.prefix);
        format!("/v1/watch/{prefix}{query}")
    }

    /// Opens a stream on the first endpoint that accepts it, from `try_next` on.
    async fn connect(&mut self) -> Result<(), ClientError> {
        let started = Instant::now();
        let n = self.client.endpoints().len();
        let mut pause = FIRST_RETRY_PAUSE;
        let mut tried = 0usize;
        loop {
            let i = self.try_next % n;
            match self.open(i).await {
                Ok(stream) => {
                    self.client.set_current(i);
                    self.stream = Some(stream);
                    self.drop = self.seen;
                    return Ok(());
                }
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => {
                    self.try_next = i + 1;
                    tried += 1;
                    if let Some(limit) = self.options.give_up_after {
                        if started.elapsed() >= limit {
                            return Err(e);
                        }
                    }
                    if tried.is_multiple_of(n) {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    }
                }
            }
        }
    }

    async fn open(&mut self, i: usize) -> Result<Stream, ClientError> {
        let path = self.path();
        let timeout = self.client.timeout();
        let response = tokio::time::timeout(
            timeout,
            self.client.open(i, Method::GET, &path, Bytes::new()),
        )
        .await
        .map_err(|_| ClientError::NoAnswer {
            endpoint: self.client.base(i).to_string(),
            after: timeout,
        })??;
        let status = response.status();
        if status != StatusCode::OK {
            let body = tokio::time::timeout(timeout, response.into_body().collect())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(self.client.error_of(i, status, &body));
        }
        if self.resume.is_none() {
            // Without `from` the node starts after its current revision, which it
            // tells in the header: a reconnection resumes from there.
            let revision = response
                .headers()
                .get(REVISION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    self.client
                        .bad_response(i, format!("watch answer without {REVISION_HEADER}"))
                })?;
            self.resume = Some(revision + 1);
            self.seen = 0;
        }
        Ok(Stream {
            body: response.into_body(),
            buf: Vec::new(),
            endpoint: i,
        })
    }

    /// Reads until at least one line is pending; `false` at the end of the stream.
    async fn read(&mut self) -> Result<bool, ClientError> {
        let stall = self.options.progress.unwrap_or(DEFAULT_PROGRESS) * 3 + Duration::from_secs(2);
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        let endpoint = self.client.base(stream.endpoint).to_string();
        loop {
            if let Some(pos) = stream.buf.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = stream.buf.drain(..=pos).collect();
                let line = serde_json::from_slice::<WatchLine>(&raw).map_err(|e| {
                    ClientError::BadResponse {
                        endpoint: endpoint.clone(),
                        reason: format!("watch line: {e}"),
                    }
                })?;
                self.pending.push_back(line);
                return Ok(true);
            }
            if stream.buf.len() > MAX_LINE_BYTES {
                return Err(ClientError::BadResponse {
                    endpoint,
                    reason: format!("a watch line above {MAX_LINE_BYTES} bytes"),
                });
            }
            let frame = match tokio::time::timeout(stall, stream.body.frame()).await {
                Err(_) => {
                    return Err(ClientError::NoAnswer {
                        endpoint,
                        after: stall,
                    })
                }
                Ok(None) => return Ok(false),
                Ok(Some(Err(e))) => {
                    return Err(ClientError::Unreachable {
                        endpoint,
                        reason: error_chain(&e),
                        before_sending: false,
                    })
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                stream.buf.extend_from_slice(&data);
            }
        }
    }
}
