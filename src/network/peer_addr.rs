//! `PeerAddr`: a peer's id and one socket address, written `PEER_ID@IP:PORT`.
//!
//! This is the form of bootstrap addresses on the command line and of the addresses peers
//! tell each other in peer exchange. The id is 64 hex characters (iroh's z-base-32 form is
//! accepted too); IPv6 addresses take brackets: `ID@[::1]:7000`.

use super::identity::{endpoint_id, peer_id, InvalidPeerId};
use crate::primitives::PeerId;
use iroh::{EndpointAddr, EndpointId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A peer and the address it listens on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct PeerAddr {
    /// The peer's identity (its public key).
    pub id: PeerId,
    /// Where it listens (UDP, QUIC).
    pub addr: SocketAddr,
}

impl PeerAddr {
    /// Pairs an id with an address.
    pub fn new(id: PeerId, addr: SocketAddr) -> Self {
        Self { id, addr }
    }

    /// The iroh address to dial; fails if the id is not a valid public key.
    pub fn to_endpoint_addr(&self) -> Result<EndpointAddr, InvalidPeerId> {
        Ok(EndpointAddr::new(endpoint_id(&self.id)?).with_ip_addr(self.addr))
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

/// A `PEER_ID@IP:PORT` string that does not parse; each variant names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerAddrError {
    /// There is no `@` between id and address.
    #[error("peer address {input:?}: expected PEER_ID@IP:PORT, found no '@'")]
    MissingAt {
        /// The whole input.
        input: String,
    },
    /// The part before `@` is not a peer id.
    #[error("peer address {input:?}: bad peer id {id:?}: {reason}")]
    BadId {
        /// The whole input.
        input: String,
        /// The id part.
        id: String,
        /// Why it was refused.
        reason: String,
    },
    /// The part after `@` is not `IP:PORT`.
    #[error("peer address {input:?}: bad socket address {addr:?} (expected IP:PORT, IPv6 as [IP]:PORT): {reason}")]
    BadAddr {
        /// The whole input.
        input: String,
        /// The address part.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
}

impl FromStr for PeerAddr {
    type Err = PeerAddrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        let Some((id, addr)) = trimmed.split_once('@') else {
            return Err(PeerAddrError::MissingAt {
                input: input.to_string(),
            });
        };
        let endpoint = EndpointId::from_str(id).map_err(|err| PeerAddrError::BadId {
            input: input.to_string(),
            id: id.to_string(),
            reason: if id.is_empty() {
                "empty".to_string()
            } else {
                err.to_string()
            },
        })?;
        let addr = SocketAddr::from_str(addr).map_err(|err| PeerAddrError::BadAddr {
            input: input.to_string(),
            addr: addr.to_string(),
            reason: err.to_string(),
        })?;
        Ok(PeerAddr {
            id: peer_id(&endpoint),
            addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iroh::SecretKey;

    fn some_id() -> PeerId {
        crate::network::identity::peer_id(&SecretKey::generate().public())
    }

    #[test]
    fn display_parse_round_trip_v4_and_v6() {
        for addr in ["127.0.0.1:7000", "[::1]:9"] {
            let pa = PeerAddr::new(some_id(), addr.parse().expect("addr"));
            let text = pa.to_string();
            assert_eq!(text.parse::<PeerAddr>(), Ok(pa), "{text}");
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        let id = some_id();
        assert!(matches!(
            "127.0.0.1:1".parse::<PeerAddr>(),
            Err(PeerAddrError::MissingAt { .. })
        ));
        let err = "xyz@127.0.0.1:1".parse::<PeerAddr>().expect_err("bad id");
        assert!(
            matches!(&err, PeerAddrError::BadId { id, .. } if id == "xyz"),
            "{err}"
        );
        let err = format!("{id}@127.0.0.1")
            .parse::<PeerAddr>()
            .expect_err("no port");
        assert!(
            matches!(&err, PeerAddrError::BadAddr { addr, .. } if addr == "127.0.0.1"),
            "{err}"
        );
        assert!(err.to_string().contains("IP:PORT"));
        let err = format!("{id}@::1:80")
            .parse::<PeerAddr>()
            .expect_err("no brackets");
        assert!(matches!(err, PeerAddrError::BadAddr { .. }));
    }
}
