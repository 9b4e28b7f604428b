//! The node's identity: an ed25519 secret key created once and kept in the data directory,
//! so the [`PeerId`] (its public key) survives restarts; plus the conversions between the
//! transport-agnostic [`PeerId`] and iroh's [`EndpointId`].
//!
//! # The key file (`DATA_DIR/node.key`, mode 0600)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, [`KEY_FILE_VERSION`] |
//! | 1 | 32 | the secret key |
//! | 33 | 4 | crc32 (little endian) over `"tessera/node.key"`, version and key |
//!
//! A file of the wrong length, an unknown version or a bad crc is an [`IdentityError`] naming
//! the path and what was found. A corrupt file is never replaced silently: the node would
//! come back under a new identity and lose its place in every voter set.
//!
//! A new file is written to `node.key.tmp` (created with mode 0600, synced), renamed into
//! place, and the directory is synced, so a crash leaves either no key or a whole one.

use crate::primitives::PeerId;
use iroh::{EndpointId, SecretKey};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// File name of the secret key inside the data directory.
pub const KEY_FILE_NAME: &str = "node.key";

/// Format version written as the first byte of the key file.
pub const KEY_FILE_VERSION: u8 = 1;

/// Exact length of a key file of [`KEY_FILE_VERSION`].
pub const KEY_FILE_LEN: usize = 1 + 32 + 4;

/// Context mixed into the crc so a 37-byte file of another kind does not pass.
const CRC_CONTEXT: &[u8] = b"tessera/node.key";

/// Loading or creating the node's key failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading, creating or syncing a file or directory failed.
    #[error("identity: {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", "sync", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The key file has the wrong length (truncated or not a key file).
    #[error("identity: key file {path} is corrupt: {found} bytes, expected {expected}; refusing to replace it (move it away to create a new identity)")]
    WrongLength {
        /// The key file.
        path: PathBuf,
        /// Length found.
        found: usize,
        /// Length expected.
        expected: usize,
    },
    /// The key file starts with a version this build does not know.
    #[error("identity: key file {path} has unknown format version {found} (this build knows {KEY_FILE_VERSION})")]
    UnknownVersion {
        /// The key file.
        path: PathBuf,
        /// Version byte found.
        found: u8,
    },
    /// The key file's checksum does not match its content.
    #[error("identity: key file {path} is corrupt: crc32 {found:#010x}, expected {expected:#010x}; refusing to replace it")]
    BadCrc {
        /// The key file.
        path: PathBuf,
        /// Crc stored in the file.
        found: u32,
        /// Crc computed over the content.
        expected: u32,
    },
}

/// A [`PeerId`] whose bytes are not a valid ed25519 public key (so no endpoint can have it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer id {peer} is not a valid ed25519 public key")]
pub struct InvalidPeerId {
    /// The offending id.
    pub peer: PeerId,
}

/// The [`PeerId`] of an iroh endpoint.
pub fn peer_id(id: &EndpointId) -> PeerId {
    PeerId(*id.as_bytes())
}

/// The iroh endpoint id of a [`PeerId`]; fails if the bytes are not a curve point.
pub fn endpoint_id(peer: &PeerId) -> Result<EndpointId, InvalidPeerId> {
    EndpointId::from_bytes(peer.as_bytes()).map_err(|_| InvalidPeerId { peer: *peer })
}

fn crc(version: u8, key: &[u8; 32]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(CRC_CONTEXT);
    hasher.update(&[version]);
    hasher.update(key);
    hasher.finalize()
}

/// Encodes a secret key as a key file (see the module docs for the layout).
pub fn encode_key(key: &SecretKey) -> [u8; KEY_FILE_LEN] {
    let secret = key.to_bytes();
    let mut out = [0u8; KEY_FILE_LEN];
    out[0] = KEY_FILE_VERSION;
    out[1..33].copy_from_slice(&secret);
    out[33..].copy_from_slice(&crc(KEY_FILE_VERSION, &secret).to_le_bytes());
    out
}

/// Decodes a key file read from `path` (the path is only used in errors).
pub fn decode_key(path: &Path, bytes: &[u8]) -> Result<SecretKey, IdentityError> {
    if bytes.len() != KEY_FILE_LEN {
        return Err(IdentityError::WrongLength {
            path: path.to_path_buf(),
            found: bytes.len(),
            expected: KEY_FILE_LEN,
        });
    }
    if bytes[0] != KEY_FILE_VERSION {
        return Err(IdentityError::UnknownVersion {
            path: path.to_path_buf(),
            found: bytes[0],
        });
    }
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&bytes[1..33]);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&bytes[33..]);
    let found = u32::from_le_bytes(stored);
    let expected = crc(bytes[0], &secret);
    if found != expected {
        return Err(IdentityError::BadCrc {
            path: path.to_path_buf(),
            found,
            expected,
        });
    }
    Ok(SecretKey::from_bytes(&secret))
}

/// Loads the key from `dir/node.key`, creating the directory and a fresh key the first time.
///
/// An existing but corrupt file is an error, never replaced.
pub fn load_or_create(dir: &Path) -> Result<SecretKey, IdentityError> {
    let path = dir.join(KEY_FILE_NAME);
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| IdentityError::Io {
            action,
            path,
            source,
        }
    };
    match File::open(&path) {
        Ok(mut file) => {
            warn_if_readable_by_others(&file, &path);
            // Read at most one byte more than a valid file so a huge file cannot fill memory.
            let mut bytes = Vec::with_capacity(KEY_FILE_LEN + 1);
            (&mut file)
                .take(KEY_FILE_LEN as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(io("read", &path))?;
            decode_key(&path, &bytes)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io("create directory", dir))?;
            let key = SecretKey::generate();
            let tmp = dir.join(format!("{KEY_FILE_NAME}.tmp"));
            // A leftover temporary file is from a crash before the rename: no identity was
            // ever used from it, so it is safe to drop.
            match fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(io("remove stale", &tmp)(err)),
            }
            let mut file = create_private(&tmp).map_err(io("create", &tmp))?;
            file.write_all(&encode_key(&key))
                .map_err(io("write", &tmp))?;
            file.sync_all().map_err(io("sync", &tmp))?;
            drop(file);
            fs::rename(&tmp, &path).map_err(io("rename into", &path))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync directory", dir))?;
            tracing::info!(path = %path.display(), peer = %peer_id(&key.public()), "created node identity");
            Ok(key)
        }
        Err(err) => Err(io("open", &path)(err)),
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &File, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = file.metadata() {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "node key file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &File, _path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let key = SecretKey::generate();
        let bytes = encode_key(&key);
        let back = decode_key(Path::new("k"), &bytes).expect("valid file");
        assert_eq!(back.to_bytes(), key.to_bytes());
    }

    #[test]
    fn every_corruption_is_named() {
        let bytes = encode_key(&SecretKey::generate());
        let p = Path::new("k");
        assert!(matches!(
            decode_key(p, &bytes[..20]),
            Err(IdentityError::WrongLength {
                found: 20,
                expected: KEY_FILE_LEN,
                ..
            })
        ));
        let mut v = bytes;
        v[0] = 9;
        assert!(matches!(
            decode_key(p, &v),
            Err(IdentityError::UnknownVersion { found: 9, .. })
        ));
        let mut v = bytes;
        v[5] ^= 1;
        assert!(matches!(
            decode_key(p, &v),
            Err(IdentityError::BadCrc { .. })
        ));
    }

    #[test]
    fn created_once_with_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create(dir.path()).expect("create");
        let b = load_or_create(dir.path()).expect("load");
        assert_eq!(a.to_bytes(), b.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE_NAME))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn peer_id_conversions() {
        let key = SecretKey::generate();
        let peer = peer_id(&key.public());
        assert_eq!(endpoint_id(&peer), Ok(key.public()));
        // Not every 32-byte string is a point on the curve; such ids are refused, not panics.
        let bad = (0u8..=255)
            .map(|b| PeerId([b; 32]))
            .find(|p| endpoint_id(p).is_err());
        assert!(bad.is_some(), "some byte pattern is not a valid key");
    }
}
