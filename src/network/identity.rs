//! Conversions between the transport-agnostic [`PeerId`] and iroh's [`EndpointId`]. The
//! secret key behind a node's id is kept in its data directory; see
//! [`crate::data_dir::key`].

use crate::primitives::PeerId;
use iroh::EndpointId;

/// A [`PeerId`] whose bytes are not a valid ed25519 public key (so no endpoint can have it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer id {peer} is not a valid ed25519 public key")]
pub struct InvalidPeerId {
    /// The offending id.
    pub peer: PeerId,
}

/// The [`PeerId`] of an iroh endpoint.
pub fn peer_id(id: &EndpointId) -> PeerId {
    PeerId(*id.as_bytes())
}

/// The iroh endpoint id of a [`PeerId`]; fails if the bytes are not a curve point.
pub fn endpoint_id(peer: &PeerId) -> Result<EndpointId, InvalidPeerId> {
    EndpointId::from_bytes(peer.as_bytes()).map_err(|_| InvalidPeerId { peer: *peer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iroh::SecretKey;

    #[test]
    fn peer_id_conversions() {
        let key = SecretKey::generate();
        let peer = peer_id(&key.public());
        assert_eq!(endpoint_id(&peer), Ok(key.public()));
        // Not every 32-byte string is a point on the curve; such ids are refused, not panics.
        let bad = (0u8..=255)
            .map(|b| PeerId([b; 32]))
            .find(|p| endpoint_id(p).is_err());
        assert!(bad.is_some(), "some byte pattern is not a valid key");
    }
}
