//! `Bytes`: a byte buffer that serde writes as one byte string instead of a sequence of
//! `u8`s. bincode encodes both the same way (a length, then the bytes), so the wire format
//! does not change; the byte-string path just copies the buffer in one go, which matters
//! for megabyte snapshot chunks.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
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
        s.serialize_bytes(&self.0)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        // Formats without byte strings (JSON) send a sequence; the size hint is capped so
        // a hostile hint allocates nothing large.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(Bytes(out))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// `#[serde(with = "crate::primitives::bytes::vec")]` for a `Vec<u8>` field: the same
/// byte-string encoding as [`Bytes`] without changing the field's type.
pub mod vec {
    use super::BytesVisitor;
    use serde::{Deserializer, Serializer};

    /// Serializes `v` as one byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserializes a byte string (or a sequence of bytes).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor).map(|b| b.0)
    }
}

/// `#[serde(with = "crate::primitives::bytes::vecs")]` for a `Vec<Vec<u8>>` field: each
/// element as one byte string (same bincode bytes as the plain field).
pub mod vecs {
    use super::Bytes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Slice<'a>(&'a [u8]);

    impl Serialize for Slice<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    /// Serializes each element as one byte string.
    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| Slice(b)))
    }

    /// Deserializes a sequence of byte strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<Bytes>::deserialize(d)?
            .into_iter()
            .map(|b| b.0)
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
    struct Field(#[serde(with = "super::vec")] Vec<u8>);

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
