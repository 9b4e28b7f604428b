//! Frames: the unit on every tessera stream. Length-prefixed, versioned, capped.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | frame format version, [`FRAME_VERSION`] |
//! | 1 | 4 | payload length `n`, u32 big endian, at most the reader's cap |
//! | 5 | n | payload (a [`codec`]-encoded message) |
//!
//! The version comes first so a peer speaking another format is named as such before its
//! length is believed. The reader checks the length against its cap before reading (or
//! allocating for) the payload, and grows its buffer only as bytes arrive, so a peer that
//! claims 4 GiB and sends nothing costs nothing. Every failure is a [`FrameError`] naming
//! what was wrong; the caller closes the link with it as the logged reason.
//!
//! The helpers are generic over tokio's `AsyncRead`/`AsyncWrite` (iroh's QUIC streams
//! implement both), so they are tested over in-memory pipes.

use crate::primitives::codec;
use serde::{de::DeserializeOwned, Serialize};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The frame format version this build writes and accepts.
pub const FRAME_VERSION: u8 = 1;

/// Bytes before the payload: version and length.
pub const FRAME_HEADER_LEN: usize = 5;

/// Default cap on one frame's payload (16 MiB): large enough for a snapshot chunk or an
/// AppendEntries batch, small enough that a hostile peer cannot make a node buffer much.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 16 << 20;

/// Reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame carries a format version this build does not speak.
    #[error("frame version {found}, expected {expected}")]
    BadVersion {
        /// Version byte received.
        found: u8,
        /// Version this build speaks.
        expected: u8,
    },
    /// The frame claims (or would need) a payload longer than the cap.
    #[error("frame of {len} bytes exceeds the cap of {max} bytes")]
    Oversized {
        /// Length claimed by the header (or of the payload to send).
        len: u64,
        /// The cap.
        max: u32,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame {part}: got {got} of {expected} bytes")]
    Truncated {
        /// `"header"` or `"payload"`.
        part: &'static str,
        /// Bytes that part needs.
        expected: u64,
        /// Bytes received before the end.
        got: u64,
    },
    /// The payload is not a valid message.
    #[error("frame payload of {len} bytes does not decode: {source}")]
    Decode {
        /// Payload length.
        len: usize,
        /// The decoder's complaint.
        source: codec::DecodeError,
    },
    /// The message could not be encoded (a bug in a message type).
    #[error("frame payload does not encode: {0}")]
    Encode(#[from] codec::EncodeError),
    /// The stream failed (connection lost, reset, ...).
    #[error("stream {action} failed: {source}")]
    Io {
        /// `"read"` or `"write"`.
        action: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

/// Reads into `buf` until it is full or the stream ends; returns the bytes read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = reader.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Reads one frame's payload. `Ok(None)` means the stream ended cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let got = read_full(reader, &mut header)
        .await
        .map_err(|source| FrameError::Io {
            action: "read",
            source,
        })?;
    if got == 0 {
        return Ok(None);
    }
    // Judge the version as soon as it is here, even if the rest of the header is missing.
    if header[0] != FRAME_VERSION {
        return Err(FrameError::BadVersion {
            found: header[0],
            expected: FRAME_VERSION,
        });
    }
    if got < FRAME_HEADER_LEN {
        return Err(FrameError::Truncated {
            part: "header",
            expected: FRAME_HEADER_LEN as u64,
            got: got as u64,
        });
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len > max {
        return Err(FrameError::Oversized {
            len: len.into(),
            max,
        });
    }
    // Grow with the bytes that actually arrive, never by the claimed length up front.
    let mut payload = Vec::with_capacity((len as usize).min(64 << 10));
    let got = reader
        .take(len.into())
        .read_to_end(&mut payload)
        .await
        .map_err(|source| FrameError::Io {
            action: "read",
            source,
        })?;
    if got < len as usize {
        return Err(FrameError::Truncated {
            part: "payload",
            expected: len.into(),
            got: got as u64,
        });
    }
    Ok(Some(payload))
}

/// Writes one frame holding `payload`; refuses payloads over `max` (the peer would refuse
/// them too).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
    max: u32,
) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| *len <= max)
        .ok_or(FrameError::Oversized {
            len: payload.len() as u64,
            max,
        })?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.push(FRAME_VERSION);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    writer
        .write_all(&frame)
        .await
        .map_err(|source| FrameError::Io {
            action: "write",
            source,
        })
}

/// Reads one frame and decodes its payload as a `T`. `Ok(None)`: clean end of stream.
pub async fn read_message<T: DeserializeOwned, R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Option<T>, FrameError> {
    let Some(payload) = read_frame(reader, max).await? else {
        return Ok(None);
    };
    codec::decode(&payload)
        .map(Some)
        .map_err(|source| FrameError::Decode {
            len: payload.len(),
            source,
        })
}

/// Encodes `message` and writes it as one frame.
pub async fn write_message<T: Serialize, W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &T,
    max: u32,
) -> Result<(), FrameError> {
    let payload = codec::encode(message)?;
    write_frame(writer, &payload, max).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 1024;

    async fn read_bytes(bytes: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        let mut reader = bytes;
        read_frame(&mut reader, MAX).await
    }

    #[tokio::test]
    async fn round_trip_and_clean_end() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        write_frame(&mut a, b"hello", MAX).await.expect("write");
        write_message(&mut a, &("x", 7u32), MAX)
            .await
            .expect("write");
        drop(a);
        assert_eq!(
            read_frame(&mut b, MAX).await.expect("read"),
            Some(b"hello".to_vec())
        );
        let msg: Option<(String, u32)> = read_message(&mut b, MAX).await.expect("read");
        assert_eq!(msg, Some(("x".to_string(), 7)));
        assert!(read_frame(&mut b, MAX).await.expect("end").is_none());
    }

    #[tokio::test]
    async fn bad_version_is_named() {
        let err = read_bytes(b"GET / HTTP/1.1\r\n")
            .await
            .expect_err("garbage");
        assert!(matches!(
            err,
            FrameError::BadVersion {
                found: b'G',
                expected: FRAME_VERSION
            }
        ));
        // A lone wrong byte is judged by its version too.
        let err = read_bytes(&[0xFF]).await.expect_err("one byte");
        assert!(matches!(err, FrameError::BadVersion { found: 0xFF, .. }));
    }

    #[tokio::test]
    async fn huge_length_is_refused_before_reading() {
        let mut bytes = vec![FRAME_VERSION];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        let err = read_bytes(&bytes).await.expect_err("huge");
        assert!(matches!(err, FrameError::Oversized { len, max: MAX } if len == u32::MAX as u64));
        assert!(err.to_string().contains("cap of 1024"), "{err}");
    }

    #[tokio::test]
    async fn truncation_is_named_with_counts() {
        let err = read_bytes(&[FRAME_VERSION, 0, 0])
            .await
            .expect_err("short header");
        assert!(matches!(
            err,
            FrameError::Truncated {
                part: "header",
                expected: 5,
                got: 3
            }
        ));
        let err = read_bytes(&[FRAME_VERSION, 0, 0, 0, 10, 1, 2])
            .await
            .expect_err("short payload");
        assert!(matches!(
            err,
            FrameError::Truncated {
                part: "payload",
                expected: 10,
                got: 2
            }
        ));
    }

    #[tokio::test]
    async fn oversized_write_and_undecodable_payload() {
        let mut sink = Vec::new();
        let err = write_frame(&mut sink, &[0u8; MAX as usize + 1], MAX)
            .await
            .expect_err("too big");
        assert!(matches!(err, FrameError::Oversized { .. }));
        assert!(sink.is_empty(), "nothing written for a refused frame");
        let mut bytes = vec![FRAME_VERSION, 0, 0, 0, 1, 0xFF];
        let mut reader = &bytes[..];
        let err = read_message::<String, _>(&mut reader, MAX)
            .await
            .expect_err("not a string");
        assert!(matches!(err, FrameError::Decode { len: 1, .. }));
        bytes.clear();
    }
}
