//! What dialing and accepting share before a link exists: the TLS binding both sides
//! prove the group key over, the ticket this node presents, its side of the handshake,
//! and closing a refused connection with a code and a reason.

use super::close::{CODE_PROTOCOL, CODE_REFUSED, CODE_UNKNOWN_GROUP};
use super::group_links::GroupAccess;
use super::handshake::{HandshakeError, Side, BINDING_LABEL};
use super::network::{guard, Inner};
use crate::primitives::{GroupId, PeerId};
use iroh::endpoint::{Connection, VarInt};
use tokio::sync::watch;

/// Keying material of this connection's TLS session, the same on both sides.
pub(super) fn binding(conn: &Connection, group: GroupId) -> Result<[u8; 32], HandshakeError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, BINDING_LABEL, group.as_bytes())
        .map_err(|err| HandshakeError::Binding(format!("{err:?}")))?;
    Ok(out)
}

/// The ticket this node presents to `group` now, and a subscription that sees every later
/// renewal; `None` once the group is left.
pub(super) fn our_ticket(
    inner: &Inner,
    group: GroupId,
) -> Option<(Vec<u8>, watch::Receiver<Vec<u8>>)> {
    let groups = guard(&inner.groups);
    let ours = groups.get(&group)?.ticket.subscribe();
    let now = ours.borrow().clone();
    Some((now, ours))
}

/// This node's side of a handshake with `peer` for `access`'s group.
pub(super) fn side<'a>(
    inner: &Inner,
    access: &'a GroupAccess,
    ticket: &'a [u8],
    peer: PeerId,
    binding: [u8; 32],
) -> Side<'a> {
    Side {
        network: inner.network,
        group: access.group,
        key: &access.key,
        me: inner.local.id,
        peer,
        binding,
        ticket,
        validator: access.validator.as_deref(),
        listen: Some(inner.local.addr),
        incarnation: inner.incarnation,
        max_frame: inner.max_frame,
    }
}

/// The close code a handshake failure is reported with.
pub(super) fn refusal_code(err: &HandshakeError) -> u32 {
    match err {
        HandshakeError::Frame(_)
        | HandshakeError::StreamEnded { .. }
        | HandshakeError::Unexpected { .. } => CODE_PROTOCOL,
        HandshakeError::UnknownGroup { .. } => CODE_UNKNOWN_GROUP,
        _ => CODE_REFUSED,
    }
}

/// Closes `conn` with `code` and `reason` (cut to fit one packet).
pub(super) fn close(conn: &Connection, code: u32, reason: &str) {
    // Keep the reason inside one packet; it is for logs only.
    let reason = reason.get(..reason.len().min(400)).unwrap_or("refused");
    conn.close(VarInt::from_u32(code), reason.as_bytes());
}
