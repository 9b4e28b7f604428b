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

/// `#[serde(with = "crate::primitives::bytes::vecs")]` for a `Vec<Vec<u8>>` field: each
/// element as one byte string (same bincode bytes as the plain field). A single `Vec<u8>`
/// field takes `#[serde(with = "serde_bytes")]`.
pub mod vecs {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::ByteBuf;

    /// Serializes each element as one byte string.
    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| serde_bytes::Bytes::new(b)))
    }

    /// Deserializes a sequence of byte strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<ByteBuf>::deserialize(d)?
            .into_iter()
            .map(ByteBuf::into_vec)
            .collect())
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

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Field(#[serde(with = "serde_bytes")] Vec<u8>);

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Fields(#[serde(with = "super::vecs")] Vec<Vec<u8>>);

    #[test]
    fn the_nested_attribute_encodes_the_same() {
        let raw = vec![vec![1u8, 2, 3], Vec::new(), vec![255; 200]];
        let a = codec::encode(&Fields(raw.clone())).unwrap();
        assert_eq!(a, codec::encode(&raw).unwrap());
        assert_eq!(codec::decode::<Fields>(&a).unwrap(), Fields(raw));
    }

    #[test]
    fn the_field_attribute_encodes_the_same() {
        let raw = vec![9u8; 300];
        let a = codec::encode(&Field(raw.clone())).unwrap();
        assert_eq!(a, codec::encode(&raw).unwrap());
        assert_eq!(codec::decode::<Field>(&a).unwrap(), Field(raw));
    }
}
