//! `NetworkId`: names the network a node belongs to, so nodes of another network refuse it.
//!
//! Two deployments on the same hosts (staging and production, two test clusters) cannot
//! bond by mistake: every handshake carries the network id and covers it with its proof, and
//! a mismatch is refused with a logged reason before any group key is used.

use crate::primitives::Digest;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The identity of a tessera network: a digest every node of it is configured with.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NetworkId(pub Digest);

impl NetworkId {
    /// The network id derived from a human name (`"prod"`, `"test-cluster-3"`).
    pub fn named(name: &str) -> Self {
        NetworkId(Digest::from_parts(&[
            b"tessera/network".as_slice(),
            name.as_bytes(),
        ]))
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkId({})", crate::primitives::Short(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ() {
        assert_eq!(NetworkId::named("a"), NetworkId::named("a"));
        assert_ne!(NetworkId::named("a"), NetworkId::named("b"));
    }
}
