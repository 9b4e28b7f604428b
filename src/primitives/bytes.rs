//! `Bytes`: a byte buffer that serde writes as one byte string (through `serde_bytes`)
//! instead of a sequence of `u8`s. bincode encodes both the same way (a length, then the
//! bytes), so the wire format does not change; the byte-string path just copies the buffer
//! in one go, which matters for megabyte snapshot chunks. `Bytes` exists beside
//! `serde_bytes::ByteBuf` for its `Debug`, which prints the length, not megabytes of bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An owned byte buffer, serialized as a byte string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} B)", self.0.len())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        serde_bytes::deserialize(d).map(Bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::codec;

    #[test]
    fn encodes_like_a_vec_of_bytes() {
        let raw = vec![0u8, 1, 200, 255, 7];
        let a = codec::encode(&Bytes(raw.clone())).unwrap();
        let b = codec::encode(&raw).unwrap();
        assert_eq!(a, b);
        let back: Bytes = codec::decode(&b).unwrap();
        assert_eq!(back.0, raw);
    }
}
