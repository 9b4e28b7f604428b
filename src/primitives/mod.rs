//! Small shared building blocks: 32-byte digests and the ids derived from them, the one
//! codec every typed value goes through, and short formatting for logs.

pub mod bytes;
pub mod codec;
mod digest;
mod ids;

pub use bytes::Bytes;
pub use digest::{Digest, UniqueId};
pub use ids::{GroupId, PeerId, Short};
