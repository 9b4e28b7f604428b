//! Item framing inside the raw stream: each item is its length as an unsigned LEB128 varint
//! (1 to 10 bytes, shortest form) followed by its bytes. Items are packed back to back with
//! no alignment, so an item, or even its length prefix, may span chunks.

/// Longest length prefix (a u64 in 7-bit groups).
pub(crate) const MAX_PREFIX_LEN: usize = 10;

/// Writes `len` as a LEB128 varint into `out`; returns the prefix length.
pub(crate) fn encode_len(mut len: u64, out: &mut [u8; MAX_PREFIX_LEN]) -> usize {
    let mut i = 0;
    while len >= 0x80 {
        out[i] = (len as u8) | 0x80;
        len >>= 7;
        i += 1;
    }
    out[i] = len as u8;
    i + 1
}

/// Incremental LEB128 decoder, fed one byte at a time so a prefix can span chunks.
#[derive(Default)]
pub(crate) struct LenDecoder {
    value: u64,
    shift: u32,
}

/// Why a length prefix is malformed.
pub(crate) const BAD_PREFIX: &str =
    "malformed length prefix (over 10 bytes, over 64 bits, or not shortest form)";

impl LenDecoder {
    /// Feeds one byte. `Ok(Some(len))` when the prefix is complete, `Ok(None)` if more bytes
    /// are needed, `Err` if the prefix is malformed.
    pub(crate) fn push(&mut self, byte: u8) -> Result<Option<u64>, &'static str> {
        let bits = u64::from(byte & 0x7f);
        if self.shift == 63 && bits > 1 {
            return Err(BAD_PREFIX);
        }
        self.value |= bits << self.shift;
        if byte & 0x80 == 0 {
            // A zero final group after the first byte is a non-shortest encoding, which the
            // writer never produces: rejecting it keeps one encoding per length.
            if self.shift > 0 && bits == 0 {
                return Err(BAD_PREFIX);
            }
            return Ok(Some(self.value));
        }
        self.shift += 7;
        if self.shift > 63 {
            return Err(BAD_PREFIX);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Option<u64>, &'static str> {
        let mut d = LenDecoder::default();
        for &b in bytes {
            if let Some(v) = d.push(b)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    #[test]
    fn round_trips_edges() {
        for v in [
            0,
            1,
            127,
            128,
            16383,
            16384,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut buf = [0; MAX_PREFIX_LEN];
            let n = encode_len(v, &mut buf);
            assert_eq!(decode(&buf[..n]), Ok(Some(v)), "{v}");
            assert_eq!(decode(&buf[..n - 1]), Ok(None));
        }
    }

    #[test]
    fn rejects_malformed() {
        assert!(decode(&[0x80, 0x00]).is_err());
        assert!(decode(&[0xff; 11]).is_err());
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err());
    }
}
