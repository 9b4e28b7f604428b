//! `#[serde(with = "crate::byte_strings")]` for a `Vec<Vec<u8>>` field: each element as one
//! byte string (through `serde_bytes`) instead of a sequence of `u8`s. bincode encodes both
//! the same way (a length, then the bytes), so the wire format does not change; the
//! byte-string path copies each buffer in one go.

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

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Fields(#[serde(with = "super")] Vec<Vec<u8>>);

    #[test]
    fn encodes_like_a_vec_of_vecs() {
        let config = bincode::config::standard();
        let raw = vec![vec![1u8, 2, 3], Vec::new(), vec![255; 200]];
        let a = bincode::serde::encode_to_vec(Fields(raw.clone()), config).unwrap();
        assert_eq!(a, bincode::serde::encode_to_vec(&raw, config).unwrap());
        let (back, _): (Fields, usize) = bincode::serde::decode_from_slice(&a, config).unwrap();
        assert_eq!(back, Fields(raw));
    }
}
