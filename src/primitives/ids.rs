//! Identities: `PeerId` (a node's public key) and `GroupId` (a consensus group), plus
//! `Short` for compact log output.

use super::Digest;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's identity (defined by the consensus core, which knows nothing of transports).
pub use tessera_raft::PeerId;

/// A consensus group's identity, derived (blake3) from its key and every setting all
/// members must agree on. Storage keys start with its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct GroupId(pub Digest);

impl GroupId {
    /// The raw bytes, as used in storage keys.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0 .0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({})", Short(self))
    }
}

/// Formats an id as its first 10 hex characters, for log lines.
pub struct Short<'a, T>(pub &'a T);

impl<T: fmt::Display> fmt::Display for Short<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = self.0.to_string();
        f.write_str(full.get(..10).unwrap_or(&full))
    }
}
