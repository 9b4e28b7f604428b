//! `GET /v1/watch/{prefix}?from=REV`: a stream of the changes under a prefix, one JSON
//! line each ([`WatchLine`]), in revision order, from REV, each exactly once.
//!
//! **Where events come from.** Every node applies every committed entry and keeps the
//! recent changes in its state's history ([`crate::store::kv::history`]), so any node
//! serves any watch, and two nodes serve the same events for the same revisions. A node
//! that has not applied REV yet waits for it; a watch never sees an older state.
//!
//! **From where.** `from` is inclusive (the revision of the first event wanted); without
//! it the watch starts after the node's current revision. When `from` is at or below the
//! history's compacted revision the answer is 410 with `oldest`, the first revision this
//! node can start from: re-list (a range read gives the revision it was read at) and
//! watch from that revision + 1.
//!
//! **Progress.** Once the watch has caught up, and after every `progress` interval
//! without a line (default 10 s), the stream says `{"type":"progress","revision":R}`:
//! every matching event up to R has been sent, so a client that reconnects (to any node)
//! resumes with `from=R+1`, and after an event line with `mod_index` M, with `from=M+1`
//! (a transaction writes several keys at one revision: a client that lost the
//! connection in the middle of one may get its first events again, and should resume
//! from the last progress or from M, dropping what it already has).
//!
//! **Bounded fan-out.** A watch holds no queue of its own: it reads the shared history
//! from its position and writes into a channel of at most four 64 KiB chunks. When the
//! client reads slowly the watch simply waits (it holds no state while it waits), and
//! apply never waits for it. If it falls so far behind that the events it still has to
//! send are pruned from the history, it ends with a `closed` line naming the revision to
//! resume from; resuming there answers 410 and the client re-lists. At most
//! [`MAX_WATCHERS`] watches run on a node (then 503 `busy`).

use super::error::{ApiError, ErrorKind};
use super::params::{show_duration, Params};
use super::shapes::WatchLine;
use super::{key_of, Served, REVISION_HEADER};
use crate::store::feed::WatchGuard;
use crate::store::kv::model::matches;
use crate::store::kv::KvState;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Progress interval when `progress` is not given.
pub const DEFAULT_PROGRESS: Duration = Duration::from_secs(10);

/// The shortest `progress`.
pub const MIN_PROGRESS: Duration = Duration::from_millis(100);

/// The longest `progress`.
pub const MAX_PROGRESS: Duration = Duration::from_secs(600);

/// Most watches open on one node.
pub const MAX_WATCHERS: u64 = 10_000;

/// A chunk is sent once it holds this many bytes of lines.
const CHUNK_BYTES: usize = 64 << 10;

/// Chunks waiting for the client, per watch.
const CHANNEL_CHUNKS: usize = 4;

/// How long a closing line may wait for a slow client.
const CLOSE_BOUND: Duration = Duration::from_secs(1);

const PARAMS: &[&str] = &["from", "prev", "exact", "progress"];

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `GET /v1/watch/{prefix}`.
pub async fn get(
    State(api): State<Arc<Served>>,
    path: Result<Path<String>, PathRejection>,
    query: Pairs,
) -> Result<Response, ApiError> {
    let prefix = key_of(path, true)?;
    start(api, prefix, query)
}

/// `GET /v1/watch/`: every key.
pub async fn get_root(State(api): State<Arc<Served>>, query: Pairs) -> Result<Response, ApiError> {
    start(api, String::new(), query)
}

fn start(api: Arc<Served>, prefix: String, query: Pairs) -> Result<Response, ApiError> {
    let params = Params::parse(query, PARAMS)?;
    let from = params.number("from")?;
    let prev = params.flag("prev")?;
    let exact = params.flag("exact")?;
    if exact && prefix.is_empty() {
        return Err(ApiError::bad("exact needs a key"));
    }
    let progress = params
        .duration("progress", MAX_PROGRESS)?
        .unwrap_or(DEFAULT_PROGRESS);
    if progress < MIN_PROGRESS {
        return Err(ApiError::bad(format!(
            "progress {} is below the minimum of {}",
            show_duration(progress),
            show_duration(MIN_PROGRESS)
        )));
    }
    if api.feed.watchers() >= MAX_WATCHERS {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Busy,
            format!("this node serves {MAX_WATCHERS} watches already: use another node"),
        ));
    }
    let state = api.feed.latest();
    let from = from.unwrap_or(state.revision + 1).max(1);
    if from <= state.history.compacted() {
        let oldest = state.history.oldest();
        let mut err = ApiError::new(
            StatusCode::GONE,
            ErrorKind::Compacted,
            format!(
                "revision {from} is compacted: the oldest revision this node holds is {oldest}; re-list and watch from the list's revision + 1"
            ),
        )
        .at(state.revision);
        err.body.oldest = Some(oldest);
        return Err(err);
    }
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let watcher = Watcher {
        prefix,
        exact,
        prev,
        progress,
        next: from,
        skip: 0,
    };
    tokio::spawn(watcher.run(api.clone(), tx, api.feed.watching()));
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (
                HeaderName::from_static(REVISION_HEADER),
                HeaderValue::from(state.revision),
            ),
        ],
        Body::new(ChannelBody(rx)),
    )
        .into_response())
}

/// A stream body fed by a bounded channel of chunks.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// One watch's position: every event below `next`, and the first `skip` events of
/// revision `next`, have been dealt with (sent when they match).
struct Watcher {
    prefix: String,
    exact: bool,
    prev: bool,
    progress: Duration,
    next: u64,
    skip: usize,
}

/// What [`Watcher::fill`] found.
enum Fill {
    /// Lines to send; `done` when the watch reached the state's revision.
    Lines { chunk: Vec<u8>, done: bool },
    /// The events from `next` on were pruned.
    Compacted,
}

fn line(l: &WatchLine) -> Bytes {
    let mut out = serde_json::to_vec(l).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

impl Watcher {
    /// The next chunk of lines from `state`'s history.
    fn fill(&mut self, state: &KvState) -> Fill {
        if state.revision < self.next {
            return Fill::Lines {
                chunk: Vec::new(),
                done: true,
            };
        }
        let history = &state.history;
        if self.next <= history.compacted() {
            return Fill::Compacted;
        }
        let start = history.position(self.next) + self.skip;
        let mut chunk = Vec::new();
        for event in history.iter_from(start) {
            if event.revision == self.next {
                self.skip += 1;
            } else {
                self.next = event.revision;
                self.skip = 1;
            }
            if matches(&event.key, &self.prefix, self.exact) {
                if serde_json::to_writer(&mut chunk, &WatchLine::event(event, self.prev)).is_ok() {
                    chunk.push(b'\n');
                }
                if chunk.len() >= CHUNK_BYTES {
                    return Fill::Lines { chunk, done: false };
                }
            }
        }
        self.next = state.revision + 1;
        self.skip = 0;
        Fill::Lines { chunk, done: true }
    }

    /// Every event up to this revision has been dealt with.
    fn progress_revision(&self) -> u64 {
        self.next.saturating_sub(1)
    }

    async fn close(&self, tx: &mpsc::Sender<Bytes>, reason: &str) {
        let closed = line(&WatchLine::Closed {
            reason: reason.to_string(),
            resume_from: self.next,
        });
        let _ = tokio::time::timeout(CLOSE_BOUND, tx.send(closed)).await;
    }

    async fn run(mut self, api: Arc<Served>, tx: mpsc::Sender<Bytes>, _counted: WatchGuard) {
        let mut rx = api.feed.waiter();
        let mut state: Arc<KvState> = api.feed.latest();
        let mut announced = false;
        let mut last_line = Instant::now();
        loop {
            loop {
                match self.fill(&state) {
                    Fill::Compacted => {
                        let reason = format!(
                            "fell behind: the events from revision {} were pruned from the history (it now starts at {}); resume to be told to re-list",
                            self.next,
                            state.history.oldest()
                        );
                        self.close(&tx, &reason).await;
                        return;
                    }
                    Fill::Lines { chunk, done } => {
                        if !chunk.is_empty() {
                            // Hold no state while the client is slow.
                            drop(state);
                            if tx.send(Bytes::from(chunk)).await.is_err() {
                                return;
                            }
                            last_line = Instant::now();
                            state = newest(&rx, api.feed.latest());
                        }
                        if done {
                            break;
                        }
                    }
                }
            }
            if !announced && self.skip == 0 {
                announced = true;
                if !self.progress(&tx).await {
                    return;
                }
                last_line = Instant::now();
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        self.close(&tx, "the node's store stopped").await;
                        return;
                    }
                    let next = rx.borrow_and_update().clone();
                    if next.revision > state.revision {
                        state = next;
                    }
                }
                () = tokio::time::sleep_until(last_line + self.progress) => {
                    if !self.progress(&tx).await {
                        return;
                    }
                    last_line = Instant::now();
                }
                () = tx.closed() => return,
                () = api.stop.cancelled() => {
                    self.close(&tx, "the node is shutting down").await;
                    return;
                }
            }
        }
    }

    /// Sends a progress line; false when the client is gone.
    async fn progress(&self, tx: &mpsc::Sender<Bytes>) -> bool {
        let l = line(&WatchLine::Progress {
            revision: self.progress_revision(),
        });
        tx.send(l).await.is_ok()
    }
}

/// The newer of the relayed state and `latest`.
fn newest(rx: &tokio::sync::watch::Receiver<Arc<KvState>>, latest: Arc<KvState>) -> Arc<KvState> {
    let relayed = rx.borrow().clone();
    if relayed.revision > latest.revision {
        relayed
    } else {
        latest
    }
}
