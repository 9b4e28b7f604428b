//! Versioned, checksummed records: the one envelope every stored value travels in.
//!
//! | offset  | size | field                                                  |
//! |---------|------|--------------------------------------------------------|
//! | 0       | 1    | format version ([`RECORD_VERSION`])                    |
//! | 1       | n    | payload (layout depends on the column family)          |
//! | 1 + n   | 4    | crc32 (LE) over version ‖ key ‖ payload                |
//!
//! The crc covers the key, so a valid record copied under another key (a stale block, a
//! misdirected write) fails as surely as a flipped bit.

use crate::error::{hex, Corruption, Error};

/// The record format this build writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// Version byte plus crc.
pub const RECORD_OVERHEAD: usize = 5;

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[RECORD_VERSION]);
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()
}

/// Wraps `payload` stored under `key` into a record.
pub fn encode(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + RECORD_OVERHEAD);
    out.push(RECORD_VERSION);
    out.extend_from_slice(payload);
    out.extend_from_slice(&checksum(key, payload).to_le_bytes());
    out
}

/// Encodes a record whose payload is written in parts (avoids one copy for log entries).
pub fn encode_parts(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + RECORD_OVERHEAD);
    out.push(RECORD_VERSION);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[RECORD_VERSION]);
    hasher.update(key);
    for part in parts {
        out.extend_from_slice(part);
        hasher.update(part);
    }
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out
}

/// Checks a record read from `cf` at `key` and returns its payload.
pub fn decode<'a>(cf: &'static str, key: &[u8], record: &'a [u8]) -> Result<&'a [u8], Error> {
    let corrupt = |kind| Error::Corruption {
        cf,
        key: hex(key),
        kind,
    };
    if record.len() < RECORD_OVERHEAD {
        return Err(corrupt(Corruption::Short {
            len: record.len(),
            min: RECORD_OVERHEAD,
        }));
    }
    if record[0] != RECORD_VERSION {
        return Err(corrupt(Corruption::Version {
            found: record[0],
            expected: RECORD_VERSION,
        }));
    }
    let (body, crc) = record.split_at(record.len() - 4);
    let payload = &body[1..];
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = checksum(key, payload);
    if stored != computed {
        return Err(corrupt(Corruption::Crc { stored, computed }));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let rec = encode(b"k", b"payload");
        assert_eq!(decode("log", b"k", &rec).unwrap(), b"payload");
        assert_eq!(encode_parts(b"k", &[b"pay", b"load"]), rec);
    }

    #[test]
    fn every_damage_is_named() {
        let rec = encode(b"k", b"payload");
        let err = |r: &[u8], k: &[u8]| match decode("log", k, r) {
            Err(Error::Corruption { kind, .. }) => kind,
            other => panic!("expected corruption, got {other:?}"),
        };
        assert!(matches!(
            err(&rec[..3], b"k"),
            Corruption::Short { len: 3, .. }
        ));
        let mut v = rec.clone();
        v[0] = 9;
        assert!(matches!(
            err(&v, b"k"),
            Corruption::Version { found: 9, .. }
        ));
        let mut f = rec.clone();
        f[3] ^= 1;
        assert!(matches!(err(&f, b"k"), Corruption::Crc { .. }));
        assert!(matches!(err(&rec, b"other"), Corruption::Crc { .. }));
    }
}
