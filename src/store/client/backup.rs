//! `tessera snapshot save`: a backup streamed from a node into a file, checked as it
//! arrives (every frame's bounds, every chunk's crc32 and number), then checked whole (the
//! manifest against the chunks, the digest of the decompressed stream, every item) before
//! it takes the file's name. A failure at any point leaves no file under that name.

use super::{error_chain, Client, ClientError};
use crate::groups::snapshot::backup::{BackupError, BackupInfo, Frame, FrameChecker};
use crate::store::backup::{summarize, BackupSummary};
use axum::body::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a backup could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The node could not be asked, or refused.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// What came is not a whole, intact backup.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Writing the file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// How far a save has come, for a progress bar.
#[derive(Clone, Debug, Default)]
pub struct SaveProgress {
    /// What the node said the backup holds (once its first frame came).
    pub info: Option<BackupInfo>,
    /// Bytes received.
    pub bytes: u64,
    /// Chunks received and checked.
    pub chunks: u32,
}

impl Client {
    /// Streams a consistent backup from the current node into `path` (see the module
    /// docs), calling `progress` as frames arrive; returns what the file holds. Waits at
    /// most the client's timeout for each piece of the stream, not for the whole.
    pub async fn save_backup(
        &self,
        path: &Path,
        mut progress: impl FnMut(&SaveProgress),
    ) -> Result<BackupSummary, SaveError> {
        let partial = partial_name(path);
        let file_error = |source| SaveError::File {
            path: partial.clone(),
            source,
        };
        let i = self.current_index();
        let endpoint = self.base(i).to_string();
        let response = tokio::time::timeout(
            self.timeout(),
            self.open(i, Method::GET, "/v1/snapshot", Bytes::new()),
        )
        .await
        .map_err(|_| ClientError::NoAnswer {
            endpoint: endpoint.clone(),
            after: self.timeout(),
        })??;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(self.error_of(i, status, &bytes).into());
        }
        let mut file = std::fs::File::create(&partial).map_err(file_error)?;
        let result = async {
            let mut checker = FrameChecker::new(endpoint.clone());
            let mut seen = SaveProgress::default();
            loop {
                let next = tokio::time::timeout(self.timeout(), body.frame())
                    .await
                    .map_err(|_| ClientError::NoAnswer {
                        endpoint: endpoint.clone(),
                        after: self.timeout(),
                    })?;
                let Some(frame) = next else { break };
                let frame = frame.map_err(|e| ClientError::Unreachable {
                    endpoint: endpoint.clone(),
                    reason: error_chain(&e),
                    before_sending: false,
                })?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                file.write_all(&data).map_err(file_error)?;
                seen.bytes += data.len() as u64;
                for frame in checker.push(&data)? {
                    match frame {
                        Frame::Info(info) => seen.info = Some(info),
                        Frame::Chunk { .. } => seen.chunks += 1,
                        Frame::Manifest(_) => {}
                    }
                }
                progress(&seen);
            }
            checker.finish()?;
            file.sync_all().map_err(file_error)?;
            Ok::<(), SaveError>(())
        }
        .await;
        drop(file);
        let checked = result.and_then(|()| {
            let summary = summarize(&partial)?;
            std::fs::rename(&partial, path).map_err(|source| SaveError::File {
                path: path.to_path_buf(),
                source,
            })?;
            sync_parent(path);
            Ok(summary)
        });
        match checked {
            Ok(mut summary) => {
                summary.file = path.to_path_buf();
                Ok(summary)
            }
            Err(err) => {
                let _ = std::fs::remove_file(&partial);
                Err(err)
            }
        }
    }
}

/// `FILE.partial`, beside `FILE`.
fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Makes the rename durable (best effort: some file systems refuse to open a directory).
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}
