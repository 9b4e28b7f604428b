//! `PeerSpec`: a peer as an operator names it, `[ID@]HOST:PORT`, where HOST is an IP
//! literal or a host name and the id may be left out.
//!
//! [`PeerAddr`](super::PeerAddr) (`ID@IP:PORT`) stays the form on the wire (peer
//! exchange, hellos) and in the peer table: it is what a dial needs at the moment it is
//! made. A `PeerSpec` is what the command line, the config file and the peers file hold,
//! so a name is kept as given and resolved again on every dial (a rescheduled container
//! with a new address is found again), and an id can be learned instead of typed (see
//! [`whoami`](super::whoami)).

use super::identity::peer_id;
use super::peer_addr::PeerAddr;
use crate::primitives::PeerId;
use iroh::EndpointId;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// Longest host name taken (DNS's limit).
const MAX_NAME_LEN: usize = 253;

/// A host (IP literal or name) and a port, kept as given.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct HostPort {
    host: String,
    port: u16,
}

/// A name that could not be resolved (or resolved to nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve host name {name:?}: {reason}")]
pub struct ResolveError {
    /// The name as given, with its port.
    pub name: String,
    /// Why (the resolver's words, or "timed out after ..").
    pub reason: String,
}

impl HostPort {
    /// An IP address and port.
    pub fn from_socket(addr: SocketAddr) -> Self {
        HostPort {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// The host as given (an IP literal or a name; IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address, when the host is an IP literal (no lookup needed).
    pub fn literal(&self) -> Option<SocketAddr> {
        IpAddr::from_str(&self.host)
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Whether the host is a name (to be resolved) rather than an IP literal.
    pub fn is_name(&self) -> bool {
        self.literal().is_none()
    }

    /// The addresses the host stands for now: the literal itself, or the name looked up
    /// with the system resolver (`getaddrinfo` through tokio), bounded by `timeout`.
    /// Addresses of `prefer`'s family (v4 or v6) come first, so a node bound to an IPv4
    /// socket does not dial `localhost`'s `::1`.
    pub async fn resolve(
        &self,
        prefer_v4: bool,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        if let Some(addr) = self.literal() {
            return Ok(vec![addr]);
        }
        let fail = |reason: String| ResolveError {
            name: self.to_string(),
            reason,
        };
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let mut addrs: Vec<SocketAddr> = match tokio::time::timeout(timeout, lookup).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(err)) => return Err(fail(err.to_string())),
            Err(_) => return Err(fail(format!("timed out after {timeout:?}"))),
        };
        if addrs.is_empty() {
            return Err(fail("no address".to_string()));
        }
        addrs.sort_by_key(|a| a.is_ipv4() != prefer_v4);
        addrs.dedup();
        Ok(addrs)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a `HOST:PORT` does not parse.
fn parse_host_port(text: &str) -> Result<HostPort, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or("an IPv6 address needs [IP]:PORT")?;
        let ip = std::net::Ipv6Addr::from_str(ip).map_err(|e| format!("{ip:?}: {e}"))?;
        (ip.to_string(), port)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or("no ':PORT'")?;
        if host.contains(':') {
            return Err("an IPv6 address needs brackets: [IP]:PORT".to_string());
        }
        (host.to_string(), port)
    };
    let port: u16 = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
    if port == 0 {
        return Err("port 0 cannot be dialed".to_string());
    }
    if host.is_empty() {
        return Err("empty host".to_string());
    }
    if host.len() > MAX_NAME_LEN {
        return Err(format!("host longer than {MAX_NAME_LEN} characters"));
    }
    let bad = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':')));
    if let Some(c) = bad {
        return Err(format!("{c:?} cannot be part of a host name"));
    }
    Ok(HostPort { host, port })
}

impl FromStr for HostPort {
    type Err = PeerSpecError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse_host_port(input.trim()).map_err(|reason| PeerSpecError::BadAddr {
            input: input.to_string(),
            addr: input.trim().to_string(),
            reason,
        })
    }
}

/// A peer as configured: an optional id and a host (IP or name) with a port.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerSpec {
    /// The peer's id, when given (or learned).
    pub id: Option<PeerId>,
    /// Where it listens.
    pub host: HostPort,
}

impl PeerSpec {
    /// The dialable `ID@IP:PORT`, when the id is known and the host is an IP literal.
    pub fn to_peer_addr(&self) -> Option<PeerAddr> {
        Some(PeerAddr::new(self.id?, self.host.literal()?))
    }
}

impl From<PeerAddr> for PeerSpec {
    fn from(addr: PeerAddr) -> Self {
        PeerSpec {
            id: Some(addr.id),
            host: HostPort::from_socket(addr.addr),
        }
    }
}

impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{id}@{}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// A `[ID@]HOST:PORT` string that does not parse; each variant names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerSpecError {
    /// The part before `@` is not a peer id.
    #[error("peer {input:?}: bad peer id {id:?} (64 hex characters, or leave `ID@` out to learn it): {reason}")]
    BadId {
        /// The whole input.
        input: String,
        /// The id part.
        id: String,
        /// Why it was refused.
        reason: String,
    },
    /// The address part is not `HOST:PORT`.
    #[error("peer {input:?}: bad address {addr:?} (expected HOST:PORT, IP:PORT or [IPv6]:PORT): {reason}")]
    BadAddr {
        /// The whole input.
        input: String,
        /// The address part.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
}

impl FromStr for PeerSpec {
    type Err = PeerSpecError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        let (id, addr) = match trimmed.split_once('@') {
            Some((id, addr)) => {
                let endpoint = EndpointId::from_str(id).map_err(|err| PeerSpecError::BadId {
                    input: input.to_string(),
                    id: id.to_string(),
                    reason: if id.is_empty() {
                        "empty".to_string()
                    } else {
                        err.to_string()
                    },
                })?;
                (Some(peer_id(&endpoint)), addr)
            }
            None => (None, trimmed),
        };
        let host = parse_host_port(addr).map_err(|reason| PeerSpecError::BadAddr {
            input: input.to_string(),
            addr: addr.to_string(),
            reason,
        })?;
        Ok(PeerSpec { id, host })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iroh::SecretKey;

    fn some_id() -> PeerId {
        peer_id(&SecretKey::generate().public())
    }

    #[test]
    fn every_form_round_trips() {
        let id = some_id();
        for text in [
            format!("{id}@127.0.0.1:7000"),
            format!("{id}@[::1]:9"),
            format!("{id}@node-a.svc.cluster.local:7000"),
            "localhost:7000".to_string(),
            "10.0.0.1:7000".to_string(),
            "[::1]:7000".to_string(),
        ] {
            let spec: PeerSpec = text.parse().expect(&text);
            assert_eq!(spec.to_string(), text);
        }
    }

    #[test]
    fn old_peer_addrs_parse_as_specs() {
        let addr = PeerAddr::new(some_id(), "127.0.0.1:7000".parse().expect("addr"));
        let spec: PeerSpec = addr.to_string().parse().expect("spec");
        assert_eq!(spec, PeerSpec::from(addr));
        assert_eq!(spec.to_peer_addr(), Some(addr));
        let named: PeerSpec = "localhost:7000".parse().expect("named");
        assert!(named.host.is_name());
        assert_eq!(named.to_peer_addr(), None);
    }

    #[test]
    fn errors_name_the_bad_part() {
        for bad in [
            "localhost",
            "localhost:0",
            "localhost:x",
            ":7000",
            "::1:7000",
            "a b:7000",
            "host/x:1",
        ] {
            let err = bad.parse::<PeerSpec>().expect_err(bad);
            assert!(matches!(err, PeerSpecError::BadAddr { .. }), "{bad}: {err}");
        }
        let err = "xyz@localhost:1".parse::<PeerSpec>().expect_err("bad id");
        assert!(
            matches!(&err, PeerSpecError::BadId { id, .. } if id == "xyz"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn localhost_resolves_and_literals_need_no_lookup() {
        let host: HostPort = "localhost:7000".parse().expect("host");
        let addrs = host
            .resolve(true, Duration::from_secs(5))
            .await
            .expect("localhost resolves");
        assert!(
            addrs[0].ip().is_loopback() && addrs[0].is_ipv4(),
            "{addrs:?}"
        );
        let literal: HostPort = "127.0.0.1:9".parse().expect("literal");
        assert_eq!(
            literal.resolve(false, Duration::ZERO).await,
            Ok(vec!["127.0.0.1:9".parse().expect("addr")])
        );
        let bad: HostPort = "no-such-host.invalid:7000".parse().expect("parses");
        let err = bad
            .resolve(true, Duration::from_secs(5))
            .await
            .expect_err("an .invalid name never resolves");
        assert!(
            err.to_string().contains("no-such-host.invalid:7000"),
            "{err}"
        );
    }
}
