//! The node's identity and known peers, as its data directory holds them: the key file
//! (only read here, never created: inspecting must not give a directory an identity) and
//! the peers file.

use crate::data_dir::key::{decode_key, KEY_FILE_LEN};
use crate::data_dir::{peers_file, KEY_FILE_NAME};
use crate::network::identity::peer_id;
use serde::Serialize;
use std::io::Read;
use std::path::Path;

/// The node's own identity, or why it is not known.
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// The node's id (64 hex): what other nodes give as `--peer ID@HOST:PORT`. `None`
    /// when the key file is missing or unreadable (`reason` says which).
    pub id: Option<String>,
    /// The key file it was read from.
    pub key_file: String,
    /// Why `id` is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl NodeView {
    /// Reads the key file of the data directory `dir`. A missing or damaged file is not
    /// an error of the inspection: the store can still be shown.
    pub fn read(dir: &Path) -> NodeView {
        let path = dir.join(KEY_FILE_NAME);
        let found = std::fs::File::open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "no {KEY_FILE_NAME} in {} (a node started on this directory creates it)",
                    dir.display()
                ),
                _ => format!("cannot read {}: {e}", path.display()),
            })
            .and_then(|file| {
                // One byte more than a key file: enough to tell a wrong length, and a
                // huge file cannot fill memory.
                let mut bytes = Vec::with_capacity(KEY_FILE_LEN + 1);
                file.take(KEY_FILE_LEN as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                decode_key(&path, &bytes).map_err(|e| e.to_string())
            });
        let (id, reason) = match found {
            Ok(key) => (Some(peer_id(&key.public()).to_string()), None),
            Err(reason) => (None, Some(reason)),
        };
        NodeView {
            id,
            key_file: path.display().to_string(),
            reason,
        }
    }
}

/// The peers file of `dir`, one `ID@HOST:PORT` or `HOST:PORT` each (none when missing;
/// lines that do not parse are skipped, as the node skips them).
pub fn peers(dir: &Path) -> Vec<String> {
    peers_file::load(dir)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_dir::key::encode_key;

    #[test]
    fn the_id_is_read_from_the_key_file_and_a_missing_or_bad_one_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let missing = NodeView::read(dir.path());
        assert_eq!(missing.id, None);
        assert!(
            missing
                .reason
                .as_deref()
                .unwrap()
                .contains("no node.key in"),
            "{missing:?}"
        );
        assert!(!dir.path().join(KEY_FILE_NAME).exists(), "nothing created");

        let key = iroh::SecretKey::generate();
        std::fs::write(dir.path().join(KEY_FILE_NAME), encode_key(&key)).unwrap();
        let found = NodeView::read(dir.path());
        assert_eq!(found.id, Some(peer_id(&key.public()).to_string()));
        assert_eq!(found.reason, None);

        std::fs::write(dir.path().join(KEY_FILE_NAME), b"short").unwrap();
        let bad = NodeView::read(dir.path());
        assert_eq!(bad.id, None);
        assert!(
            bad.reason.as_deref().unwrap().contains("corrupt"),
            "{bad:?}"
        );
    }
}
