//! `GET /v1/snapshot`: a consistent point-in-time backup of the store, streamed.
//!
//! The state is taken after a read index (as a linearizable read: every write acknowledged
//! before the call is in it), frozen (an O(1) copy of the persistent maps), and encoded as
//! a group snapshot on a blocking thread while the client reads it, in the backup framing
//! of [`crate::groups::snapshot::backup`]. The channel between the encoder and the
//! response holds [`FRAMES_IN_FLIGHT`] frames: a slow client slows the encoder down, and a
//! client that goes away stops it. The node never holds the encoded backup whole.

use super::{read, ApiError, Served};
use crate::groups::snapshot::backup::{chunk_frame, frame, preamble, BackupInfo, FrameKind};
use crate::groups::snapshot::{image, key_group};
use crate::groups::{Cursor, Index};
use crate::store::kv::KvSnapshot;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll};
use tessera_snapshots::{SnapshotError, StoreOp, WriterConfig};
use tokio::sync::mpsc;

/// Frames (chunks of up to about 1 MiB) buffered between the encoder and the client.
pub const FRAMES_IN_FLIGHT: usize = 4;

/// The content type of a backup stream.
pub const BACKUP_CONTENT_TYPE: &str = "application/x-tessera-backup";

/// `GET /v1/snapshot`.
pub(super) async fn get(State(api): State<Arc<Served>>) -> Result<Response, ApiError> {
    let (state, _) = read::read_state(&api, false).await?;
    let status = api.group.status();
    let revision = state.revision;
    let anchor = Cursor(status.term, Index(revision));
    let membership = status.members.clone();
    let group = api.group.id();
    let snapshot = KvSnapshot::new((*state).clone());
    let info = BackupInfo {
        group: group.to_string(),
        node: api.addr.id.to_string(),
        anchor_index: revision,
        anchor_term: status.term.0,
        items: crate::groups::snapshot::Snapshot::len(&snapshot) + 1,
        taken_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let info = serde_json::to_vec(&info).unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(FRAMES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut start = preamble().to_vec();
        start.extend(frame(FrameKind::Info, &info));
        if tx.blocking_send(start).is_err() {
            return;
        }
        let key = image::snapshot_key(group, revision);
        let gone =
            |n| SnapshotError::store(StoreOp::PutChunk, key, Some(n), "the client went away");
        let encoded = image::encode(
            key_group(group),
            anchor,
            membership,
            &snapshot,
            WriterConfig::default(),
            |n: u32, bytes: &[u8]| tx.blocking_send(chunk_frame(n, bytes)).map_err(|_| gone(n)),
            &AtomicBool::new(false),
        );
        let last = match encoded {
            Ok(manifest) => frame(FrameKind::Manifest, &manifest.encode()),
            Err(err) => {
                tracing::warn!(%err, revision, "backup failed");
                frame(FrameKind::Error, err.to_string().as_bytes())
            }
        };
        let _ = tx.blocking_send(last);
    });
    let mut response = Body::new(Frames(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(BACKUP_CONTENT_TYPE),
    );
    headers.insert(super::REVISION_HEADER, HeaderValue::from(revision));
    Ok(response)
}

/// The response body: the encoder's frames as they come.
struct Frames(mpsc::Receiver<Vec<u8>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|next| next.map(|bytes| Ok(hyper::body::Frame::data(Bytes::from(bytes)))))
    }
}
