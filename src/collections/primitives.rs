//! The small types every collection shares: [`StoreId`] (which collection), [`Value`] and
//! [`Key`] (what may be stored), [`Version`] (how far the state has come).

use crate::groups::Index;
use crate::primitives::{codec, Digest, Short};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// What a collection may hold: cloneable, encodable through the one codec, shareable
/// between threads. Implemented for every such type.
pub trait Value: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// A [`Value`] with a total order: map keys, set elements, priorities. The order decides
/// iteration order and must be the same on every node (derive it; do not order by
/// addresses or hash seeds).
pub trait Key: Value + Ord {}

impl<T: Value + Ord> Key for T {}

/// Names one collection: a blake3 digest of a string (or of any bytes). Nodes that open
/// the same kind of collection with the same store id (and the same value types and
/// settings) share it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreId(pub Digest);

impl StoreId {
    /// The id named `name`.
    pub fn named(name: impl AsRef<[u8]>) -> Self {
        StoreId(Digest::from_parts(&[
            b"tessera/collections/store-id/v1".as_slice(),
            name.as_ref(),
        ]))
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl From<&str> for StoreId {
    fn from(name: &str) -> Self {
        StoreId::named(name)
    }
}

impl From<String> for StoreId {
    fn from(name: String) -> Self {
        StoreId::named(name)
    }
}

impl From<&String> for StoreId {
    fn from(name: &String) -> Self {
        StoreId::named(name)
    }
}

impl From<Digest> for StoreId {
    fn from(digest: Digest) -> Self {
        StoreId(digest)
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Short(&self.0), f)
    }
}

impl fmt::Debug for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreId({})", Short(&self.0))
    }
}

/// A position of a collection's state: the log index of the last committed entry the
/// state reflects. Writes resolve to the version that contains them; every node that
/// reaches that version (see [`super::When::reaches`]) holds the same state.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Version(pub Index);

impl Version {
    /// The version before any write.
    pub const ZERO: Version = Version(Index(0));

    /// The log index.
    pub const fn index(&self) -> Index {
        self.0
    }
}

impl From<Index> for Version {
    fn from(index: Index) -> Self {
        Version(index)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Whether two optional values are the same, compared by their encoding (so values need
/// no `PartialEq`, and every node decides alike). A value that does not encode equals
/// nothing.
pub(crate) fn same_encoding<T: Serialize>(a: Option<&T>, b: Option<&T>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (codec::encode(a), codec::encode(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_differ_by_name_and_are_stable() {
        assert_eq!(StoreId::from("a"), StoreId::named("a"));
        assert_ne!(StoreId::from("a"), StoreId::from("b"));
        assert_eq!(StoreId::from("a".to_string()), StoreId::from("a"));
    }

    #[test]
    fn encoding_comparison() {
        assert!(same_encoding::<u32>(None, None));
        assert!(same_encoding(Some(&1u32), Some(&1u32)));
        assert!(!same_encoding(Some(&1u32), Some(&2u32)));
        assert!(!same_encoding(Some(&1u32), None));
    }
}
