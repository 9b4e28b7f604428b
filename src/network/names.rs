//! Peers known by host name, and peers known without an id: the [`NameBook`], the task
//! that learns missing ids ([`learn_ids`]), and re-resolving a name before each dial
//! ([`resolve_for_dial`]).
//!
//! A name is kept as given (never replaced by the address it resolved to once) and
//! looked up again before every dial of its peer, so a peer that comes back at a new
//! address under the same name is found again. A name that does not resolve is logged
//! (first time, then every [`WARN_EVERY`]) and tried again with the bond's back-off; the
//! peer table's last address is used meanwhile. Names are not spread by peer exchange:
//! peers learn each other's addresses, and a node keeps the names it was given (in its
//! peers file too).

use super::backoff::Backoff;
use super::network::{guard, Inner};
use super::peer_addr::PeerAddr;
use super::peer_spec::{HostPort, PeerSpec};
use super::peers::Source;
use super::whoami::{self, ProbeError};
use crate::primitives::{GroupId, PeerId, Short};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A repeated warning (a name that does not resolve, a peer that refuses this node) is
/// logged the first time and then at most this often.
pub const WARN_EVERY: Duration = Duration::from_secs(300);

/// Cap on names kept (from flags and the peers file); more are ignored with a warning.
pub const MAX_NAMES: usize = 256;

/// Bound on one lookup.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// When a repeated warning is due: the first time, and then every [`WARN_EVERY`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Every(Option<Instant>);

impl Every {
    /// Whether to log now (and if so, counts this as logged).
    pub(super) fn due(&mut self) -> bool {
        let now = Instant::now();
        if self.0.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return false;
        }
        self.0 = Some(now);
        true
    }

    /// Forget the last warning (after a success, so a new failure is logged at once).
    pub(super) fn reset(&mut self) {
        self.0 = None;
    }
}

#[derive(Debug)]
struct Named {
    host: HostPort,
    /// Given with the name, or learned by the probe.
    id: Option<PeerId>,
    /// The name turned out to be this node's own.
    is_self: bool,
    /// Warnings about this name.
    warned: Every,
}

/// Names (and id-less addresses) this node was given.
#[derive(Debug, Default)]
pub struct NameBook {
    entries: Vec<Named>,
}

impl NameBook {
    /// Keeps `spec` when it has a name or no id (an `ID@IP:PORT` belongs in the peer
    /// table). The same host given twice is kept once; an id given later fills it in.
    pub(super) fn add(&mut self, spec: PeerSpec) {
        if spec.id.is_some() && !spec.host.is_name() {
            return;
        }
        if let Some(old) = self.entries.iter_mut().find(|n| n.host == spec.host) {
            if spec.id.is_some() {
                old.id = spec.id;
            }
            return;
        }
        if self.entries.len() >= MAX_NAMES {
            tracing::warn!(peer = %spec, max = MAX_NAMES, "too many peer names: ignoring this one");
            return;
        }
        self.entries.push(Named {
            host: spec.host,
            id: spec.id,
            is_self: false,
            warned: Every::default(),
        });
    }

    /// The name `peer` was given under, if it is a name.
    pub(super) fn name_of(&self, peer: PeerId) -> Option<HostPort> {
        self.entries
            .iter()
            .find(|n| n.id == Some(peer) && n.host.is_name())
            .map(|n| n.host.clone())
    }

    /// Ids given or learned for names (never this node's own).
    pub(super) fn ids(&self) -> Vec<PeerId> {
        self.entries
            .iter()
            .filter(|n| !n.is_self)
            .filter_map(|n| n.id)
            .collect()
    }

    /// Addresses whose id is not known yet.
    pub(super) fn unresolved(&self) -> Vec<HostPort> {
        self.entries
            .iter()
            .filter(|n| n.id.is_none() && !n.is_self)
            .map(|n| n.host.clone())
            .collect()
    }

    /// What the peers file keeps of the names: `ID@NAME:PORT` and `HOST:PORT` (no id).
    pub(super) fn specs(&self) -> Vec<PeerSpec> {
        self.entries
            .iter()
            .filter(|n| !n.is_self && (n.id.is_none() || n.host.is_name()))
            .map(|n| PeerSpec {
                id: n.id,
                host: n.host.clone(),
            })
            .collect()
    }

    fn entry(&mut self, host: &HostPort) -> Option<&mut Named> {
        self.entries.iter_mut().find(|n| &n.host == host)
    }
}

/// The address to dial `peer` at: its name resolved now when it has one (the peer
/// table is updated when the name moved), else the table's address.
pub(super) async fn resolve_for_dial(inner: &Inner, peer: PeerId) -> Option<PeerAddr> {
    let known = guard(&inner.peers).get(&peer);
    let host = guard(&inner.names).name_of(peer)?;
    match host
        .resolve(inner.local.addr.is_ipv4(), RESOLVE_TIMEOUT)
        .await
    {
        Ok(addrs) => {
            let addr = PeerAddr::new(peer, addrs[0]);
            match known {
                None => {
                    tracing::info!(peer = %Short(&peer), name = %host, resolved = %addr.addr, "peer name resolved")
                }
                Some(was) if was.addr != addr.addr => tracing::info!(peer = %Short(&peer),
                    name = %host, resolved = %addr.addr, was = %was.addr,
                    "peer name now resolves to a new address: dialing that"),
                Some(_) => {}
            }
            if known.map(|k| k.addr) != Some(addr.addr) {
                guard(&inner.peers).insert(addr, Source::Bootstrap);
            }
            if let Some(entry) = guard(&inner.names).entry(&host) {
                entry.warned.reset();
            }
            Some(addr)
        }
        Err(err) => {
            let due = guard(&inner.names)
                .entry(&host)
                .is_some_and(|e| e.warned.due());
            if due {
                tracing::warn!(peer = %Short(&peer), name = %host, error = %err,
                    fallback = ?known.map(|k| k.addr),
                    "peer name does not resolve; dialing its last known address, and resolving again on every retry");
            }
            known
        }
    }
}

/// Learns the ids of `group`'s id-less peers (`--peer HOST:PORT`) with the
/// [`whoami`] probe, until none is left or the group is left. A learned peer goes into
/// the peer table as a bootstrap peer, so the group's bonds dial it like any other.
pub(super) async fn learn_ids(inner: Arc<Inner>, group: GroupId) {
    let mut backoff = Backoff::new(inner.backoff.0, inner.backoff.1);
    let mut warned: HashMap<HostPort, Every> = HashMap::new();
    loop {
        let pending = guard(&inner.names).unresolved();
        if pending.is_empty() {
            return;
        }
        let Some(key) = guard(&inner.groups)
            .get(&group)
            .map(|g| g.access.key.clone())
        else {
            return;
        };
        let mut learned = false;
        for host in pending {
            match learn_one(&inner, group, &key, &host).await {
                Ok(()) => learned = true,
                Err(err) => {
                    if !warned.entry(host.clone()).or_default().due() {
                        continue;
                    }
                    if let LearnError::Probe(ProbeError::UnknownGroup { .. }) = err {
                        tracing::warn!(peer = %host, error = %err,
                            "peer {host} refused this node: {err}. If it is a member of the group \
                             this node should join, this node's settings differ from the group's. {}",
                            inner.mismatch_hint);
                    } else {
                        tracing::warn!(peer = %host, error = %err,
                            "cannot learn the id of peer {host} (given without one): {err}; retrying with back-off");
                    }
                }
            }
        }
        if learned {
            backoff.reset();
        }
        tokio::time::sleep(backoff.next_jittered()).await;
    }
}

#[derive(Debug, thiserror::Error)]
enum LearnError {
    #[error(transparent)]
    Resolve(#[from] super::peer_spec::ResolveError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

async fn learn_one(
    inner: &Inner,
    group: GroupId,
    key: &super::handshake::LinkKey,
    host: &HostPort,
) -> Result<(), LearnError> {
    let addrs = host
        .resolve(inner.local.addr.is_ipv4(), RESOLVE_TIMEOUT)
        .await?;
    let addr: SocketAddr = addrs[0];
    let id = whoami::ask(addr, inner.network, group, key, inner.connect_timeout).await?;
    let mut names = guard(&inner.names);
    let Some(entry) = names.entry(host) else {
        return Ok(());
    };
    if id == inner.local.id {
        entry.is_self = true;
        tracing::info!(peer = %host, "this peer address is this node itself: skipping it");
        return Ok(());
    }
    entry.id = Some(id);
    drop(names);
    guard(&inner.peers).insert(PeerAddr::new(id, addr), Source::Bootstrap);
    tracing::info!(peer = %host, id = %id, resolved = %addr, "learned the id of a peer given without one");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> PeerSpec {
        text.parse().expect("spec")
    }

    #[test]
    fn keeps_names_and_idless_addresses_only() {
        let id = PeerId([7; 32]);
        let mut book = NameBook::default();
        book.add(PeerSpec::from(PeerAddr::new(
            id,
            "127.0.0.1:1".parse().expect("addr"),
        )));
        assert!(
            book.specs().is_empty(),
            "ID@IP:PORT belongs in the peer table"
        );
        book.add(spec("localhost:7000"));
        book.add(spec("127.0.0.1:7001"));
        book.add(spec("localhost:7000"));
        assert_eq!(book.unresolved().len(), 2);
        assert!(book.ids().is_empty());
        book.add(PeerSpec {
            id: Some(id),
            host: "localhost:7000".parse().expect("host"),
        });
        assert_eq!(book.ids(), vec![id]);
        assert_eq!(
            book.name_of(id).map(|h| h.to_string()).as_deref(),
            Some("localhost:7000")
        );
        assert_eq!(book.unresolved().len(), 1);
    }

    #[test]
    fn warnings_are_due_first_time_then_rarely() {
        let mut every = Every::default();
        assert!(every.due());
        assert!(!every.due());
        every.reset();
        assert!(every.due());
    }
}
