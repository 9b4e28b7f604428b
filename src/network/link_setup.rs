//! What dialing and accepting share before a link exists: the TLS binding both sides
//! prove the group key over, the ticket this node presents, its side of the handshake,
//! and refusing one stream with a code and a reason.

use super::close::{cut, CODE_PROTOCOL, CODE_REFUSED, CODE_UNKNOWN_GROUP};
use super::frame::write_message;
use super::group_links::GroupAccess;
use super::handshake::{HandshakeError, Side, BINDING_LABEL};
use super::message::Message;
use super::network::{guard, Inner};
use crate::primitives::{GroupId, PeerId};
use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use std::time::Duration;
use tokio::sync::watch;

/// Bound on writing a refusal's `Close` frame; past it the stream is reset instead.
const REFUSE_WRITE: Duration = Duration::from_secs(1);

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

/// Ends one link stream with `code` and `reason`, leaving the connection (and every
/// other link on it) up: a last `Close` frame, then the end of the stream; a reset with
/// the code when the frame cannot be written in time.
pub(super) async fn refuse_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    code: u32,
    reason: &str,
    max_frame: u32,
) {
    let close = Message::Close {
        code,
        reason: cut(reason),
    };
    let write = write_message(&mut send, &close, max_frame);
    match tokio::time::timeout(REFUSE_WRITE, write).await {
        Ok(Ok(())) => {
            let _ = send.finish();
        }
        _ => {
            let _ = send.reset(VarInt::from_u32(code));
        }
    }
    let _ = recv.stop(VarInt::from_u32(code));
}

/// Ends a link stream at once with `code` (no frame: it may be mid-frame or blocked).
pub(super) fn reset_stream(send: &mut SendStream, recv: &mut RecvStream, code: u32) {
    let _ = send.reset(VarInt::from_u32(code));
    let _ = recv.stop(VarInt::from_u32(code));
}
