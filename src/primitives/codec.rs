//! The one codec: every typed value tessera stores or sends (commands, queries, messages)
//! goes through these two functions, so the wire and disk encodings never drift apart.
//!
//! bincode 2 with its standard configuration (varint integers, little endian) over serde.
//! Decoding is bounded by [`MAX_DECODE_BYTES`] so a hostile length prefix cannot make us
//! allocate more than that.

use serde::{de::DeserializeOwned, Serialize};

/// Upper bound on the bytes a single decode may allocate (64 MiB).
pub const MAX_DECODE_BYTES: usize = 64 << 20;

/// Encoding failed (a serde error inside a user type).
#[derive(Debug, thiserror::Error)]
#[error("encode failed: {0}")]
pub struct EncodeError(#[from] bincode::error::EncodeError);

/// Decoding failed: the bytes are not a valid encoding of the expected type.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// bincode rejected the bytes.
    #[error("decode failed: {0}")]
    Invalid(#[from] bincode::error::DecodeError),
    /// The value decoded but bytes were left over.
    #[error("decode left {trailing} trailing bytes of {total}")]
    Trailing {
        /// Bytes not consumed.
        trailing: usize,
        /// Total input length.
        total: usize,
    },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE_BYTES>()
}

/// Encodes a value to bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
}

/// Encodes a value into `buf`, replacing its contents: a loop encoding many values
/// (a snapshot's items) reuses one buffer instead of allocating one per value.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    buf.clear();
    bincode::serde::encode_into_std_write(value, buf, config())?;
    Ok(())
}

/// Decodes a value; the whole input must be consumed.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())?;
    if used != bytes.len() {
        return Err(DecodeError::Trailing {
            trailing: bytes.len() - used,
            total: bytes.len(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing() {
        let bytes = encode(&("key", 7u64)).unwrap();
        let back: (String, u64) = decode(&bytes).unwrap();
        assert_eq!(back, ("key".to_string(), 7));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode::<(String, u64)>(&longer),
            Err(DecodeError::Trailing { trailing: 1, .. })
        ));
    }

    #[test]
    fn encode_into_replaces_the_buffer_with_what_encode_gives() {
        let mut buf = vec![9u8; 100];
        encode_into(&("key", 7u64), &mut buf).unwrap();
        assert_eq!(buf, encode(&("key", 7u64)).unwrap());
    }

    #[test]
    fn hostile_length_is_refused_without_allocating() {
        // A Vec<u8> claiming u64::MAX elements.
        let bytes = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode::<Vec<u8>>(&bytes).is_err());
    }
}
