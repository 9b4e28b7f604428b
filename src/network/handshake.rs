//! The link handshake: a mutual proof of the group key, bound to this link (one stream of
//! the connection shared by every group's links to the peer).
//!
//! ```text
//! dialer                                   acceptor
//!   Hello{network, group, nonce_d, ticket} ─►  network and group known? else refuse
//!                                          ◄─ Challenge{Hello{.., nonce_a, ..}, proof_a}
//!   check network, group, proof_a, ticket
//!   Proof{proof_d}                         ─►  check proof_d, ticket
//!                                          ◄─ Welcome
//! ```
//!
//! `proof_r = blake3::keyed_hash(K, "tessera/link/v1" | r | network | group | dialer id |
//! acceptor id | nonce_d | nonce_a | binding)` where `K` is the [`LinkKey`] derived from the
//! group key, `r` is the prover's role (`"dialer"` or `"acceptor"`) and every part is length
//! prefixed. Why each part is there:
//! - both nonces are fresh per link, so a proof recorded on one link fails on any other;
//! - the role makes the two proofs of one link differ, so a peer cannot reflect the
//!   acceptor's proof back as its own;
//! - the peer ids are the TLS-authenticated endpoint ids of the QUIC connection (never taken
//!   from a message), so a proof made for one pair of nodes is useless to a third;
//! - `binding` is keying material exported from this connection's TLS session (with the
//!   group as its context), so a proof cannot be relayed onto another connection either;
//! - network and group make a proof for one group or network useless for another.
//!
//! Many links share one connection, so they share its binding; each stream still has its
//! own pair of nonces, so a proof seen on one stream (for group A) is worthless on any
//! other stream, for A or for B, and a peer holding only A's key cannot make B's proof.
//! A refusal is a `Close{code, reason}` frame on that stream alone (see
//! [`close`](super::close)): the other links on the connection are untouched.
//!
//! MACs are compared in constant time (`blake3::Hash` equality). Tickets are checked only
//! after the peer proved the key, so unauthenticated peers learn nothing from the validator.
//!
//! The functions are generic over the streams so they are tested over in-memory pipes.

use super::frame::{read_message, write_message, FrameError};
use super::message::{Hello, Message};
use super::network_id::NetworkId;
use super::ticket::{TicketError, TicketValidator};
use crate::primitives::{GroupId, PeerId};
use std::fmt;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// Context string of the key derivation (blake3 `derive_key`).
const KEY_CONTEXT: &str = "tessera 2025-01 link handshake proof key v1";

/// Label of the TLS keying-material export that binds a proof to one connection.
pub(crate) const BINDING_LABEL: &[u8] = b"tessera/link/v1 binding";

/// The MAC key of a group's handshakes, derived from the group key.
///
/// Derived (never the group key itself) so a handshake transcript cannot help recover the
/// group key for any other use. `Debug` hides the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKey([u8; 32]);

impl LinkKey {
    /// Derives the link key from the group key's bytes.
    pub fn derive(group_key: &[u8]) -> Self {
        LinkKey(blake3::derive_key(KEY_CONTEXT, group_key))
    }

    /// The key's bytes, for keys derived from it (the id probe's answer key).
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// Which side of the link a proof is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Opened the connection.
    Dialer,
    /// Accepted it.
    Acceptor,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Dialer => b"dialer",
            Role::Acceptor => b"acceptor",
        }
    }
}

/// The handshake failed; the link is closed with this as the reason.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// A frame was malformed, oversized or the stream failed.
    #[error("handshake frame: {0}")]
    Frame(#[from] FrameError),
    /// The stream ended before the expected message.
    #[error("stream ended while waiting for {expected}")]
    StreamEnded {
        /// The message that was due.
        expected: &'static str,
    },
    /// A message arrived out of place.
    #[error("unexpected {found} while waiting for {expected}")]
    Unexpected {
        /// The message that was due.
        expected: &'static str,
        /// The message that came.
        found: &'static str,
    },
    /// The peer belongs to another network.
    #[error("wrong network: peer is in {theirs}, we are in {ours}")]
    WrongNetwork {
        /// Our network.
        ours: NetworkId,
        /// The peer's.
        theirs: NetworkId,
    },
    /// The peer answered for another group than the one asked for.
    #[error("wrong group: asked for {ours}, peer answered {theirs}")]
    WrongGroup {
        /// The group of this link.
        ours: GroupId,
        /// The peer's.
        theirs: GroupId,
    },
    /// This node has no such group.
    #[error("unknown group {group}")]
    UnknownGroup {
        /// The group asked for.
        group: GroupId,
    },
    /// The peer's proof does not verify: it lacks the group key (or replayed a proof).
    #[error("peer {peer} failed the group key proof (wrong group key or replayed proof)")]
    BadProof {
        /// The peer.
        peer: PeerId,
    },
    /// The peer's ticket was refused.
    #[error("peer {peer}: {source}")]
    Ticket {
        /// The peer.
        peer: PeerId,
        /// The validator's reason.
        source: TicketError,
    },
    /// No randomness for the nonce.
    #[error("no randomness for the handshake nonce: {0}")]
    Random(getrandom::Error),
    /// The peer refused the link: its `Close` frame, in place of the next handshake message.
    #[error("refused by peer (code {code}): {reason}")]
    Closed {
        /// The peer's code (one of the `CODE_*` constants).
        code: u64,
        /// The peer's reason.
        reason: String,
    },
    /// TLS keying material could not be exported from the connection.
    #[error("cannot bind the handshake to the connection: {0}")]
    Binding(String),
}

/// What one side brings to a handshake.
pub(crate) struct Side<'a> {
    /// Our network.
    pub network: NetworkId,
    /// The link's group.
    pub group: GroupId,
    /// The group's link key.
    pub key: &'a LinkKey,
    /// Our peer id.
    pub me: PeerId,
    /// The remote's authenticated peer id.
    pub peer: PeerId,
    /// TLS-exported material of this connection (same on both sides).
    pub binding: [u8; 32],
    /// Our ticket for the group.
    pub ticket: &'a [u8],
    /// Checks the remote's ticket, if the group requires tickets.
    pub validator: Option<&'a dyn TicketValidator>,
    /// Where we listen, told to the peer.
    pub listen: Option<SocketAddr>,
    /// This process's incarnation, told to the peer.
    pub incarnation: u64,
    /// Frame cap.
    pub max_frame: u32,
}

/// What the peer said about itself in a successful handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Remote {
    /// Where it listens, if it said.
    pub listen: Option<SocketAddr>,
    /// Its process incarnation.
    pub incarnation: u64,
    /// The ticket it presented (accepted, if this side checks tickets); the link keeps it
    /// to ask the validator again while it lives.
    pub ticket: Vec<u8>,
}

/// The facts a proof covers.
pub(crate) struct Transcript {
    pub network: NetworkId,
    pub group: GroupId,
    pub dialer: PeerId,
    pub acceptor: PeerId,
    pub dialer_nonce: [u8; 32],
    pub acceptor_nonce: [u8; 32],
    pub binding: [u8; 32],
}

/// The proof `role` sends for `transcript`.
pub(crate) fn proof(key: &LinkKey, role: Role, t: &Transcript) -> [u8; 32] {
    let mut mac = blake3::Hasher::new_keyed(&key.0);
    for part in [
        b"tessera/link/v1".as_slice(),
        role.label(),
        t.network.as_bytes(),
        t.group.as_bytes(),
        t.dialer.as_bytes(),
        t.acceptor.as_bytes(),
        &t.dialer_nonce,
        &t.acceptor_nonce,
        &t.binding,
    ] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    *mac.finalize().as_bytes()
}

/// Constant-time check of a received proof.
fn verify(key: &LinkKey, role: Role, t: &Transcript, received: &[u8; 32]) -> bool {
    blake3::Hash::from_bytes(proof(key, role, t)) == blake3::Hash::from_bytes(*received)
}

fn nonce() -> Result<[u8; 32], HandshakeError> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(HandshakeError::Random)?;
    Ok(nonce)
}

async fn next<R: AsyncRead + Unpin>(
    recv: &mut R,
    max: u32,
    expected: &'static str,
) -> Result<Message, HandshakeError> {
    match read_message::<Message, _>(recv, max).await? {
        Some(Message::Close { code, reason }) => Err(HandshakeError::Closed {
            code: code.into(),
            reason,
        }),
        Some(msg) => Ok(msg),
        None => Err(HandshakeError::StreamEnded { expected }),
    }
}

fn check_ticket(side: &Side<'_>, ticket: &[u8]) -> Result<(), HandshakeError> {
    match side.validator {
        Some(validator) => {
            validator
                .validate(side.peer, ticket)
                .map_err(|source| HandshakeError::Ticket {
                    peer: side.peer,
                    source,
                })
        }
        None => Ok(()),
    }
}

/// Runs the dialer's side; returns what the acceptor said about itself.
pub(crate) async fn dial<W, R>(
    send: &mut W,
    recv: &mut R,
    side: &Side<'_>,
) -> Result<Remote, HandshakeError>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    let dialer_nonce = nonce()?;
    let hello = Hello {
        network: side.network,
        group: side.group,
        nonce: dialer_nonce,
        ticket: side.ticket.to_vec(),
        listen: side.listen,
        incarnation: side.incarnation,
    };
    write_message(send, &Message::Hello(hello), side.max_frame).await?;
    let (theirs, their_proof) = match next(recv, side.max_frame, "Challenge").await? {
        Message::Challenge { hello, proof } => (hello, proof),
        other => {
            return Err(HandshakeError::Unexpected {
                expected: "Challenge",
                found: other.kind(),
            })
        }
    };
    if theirs.network != side.network {
        return Err(HandshakeError::WrongNetwork {
            ours: side.network,
            theirs: theirs.network,
        });
    }
    if theirs.group != side.group {
        return Err(HandshakeError::WrongGroup {
            ours: side.group,
            theirs: theirs.group,
        });
    }
    let transcript = Transcript {
        network: side.network,
        group: side.group,
        dialer: side.me,
        acceptor: side.peer,
        dialer_nonce,
        acceptor_nonce: theirs.nonce,
        binding: side.binding,
    };
    if !verify(side.key, Role::Acceptor, &transcript, &their_proof) {
        return Err(HandshakeError::BadProof { peer: side.peer });
    }
    check_ticket(side, &theirs.ticket)?;
    let ours = proof(side.key, Role::Dialer, &transcript);
    write_message(send, &Message::Proof { proof: ours }, side.max_frame).await?;
    match next(recv, side.max_frame, "Welcome").await? {
        Message::Welcome => Ok(Remote {
            listen: theirs.listen,
            incarnation: theirs.incarnation,
            ticket: theirs.ticket,
        }),
        other => Err(HandshakeError::Unexpected {
            expected: "Welcome",
            found: other.kind(),
        }),
    }
}

/// Reads the dialer's hello, the first message on an accepted link.
pub(crate) async fn read_hello<R: AsyncRead + Unpin>(
    recv: &mut R,
    max: u32,
) -> Result<Hello, HandshakeError> {
    match next(recv, max, "Hello").await? {
        Message::Hello(hello) => Ok(hello),
        other => Err(HandshakeError::Unexpected {
            expected: "Hello",
            found: other.kind(),
        }),
    }
}

/// Runs the acceptor's side after [`read_hello`]; returns what the dialer said about
/// itself.
pub(crate) async fn accept<W, R>(
    send: &mut W,
    recv: &mut R,
    hello: Hello,
    side: &Side<'_>,
) -> Result<Remote, HandshakeError>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    if hello.network != side.network {
        return Err(HandshakeError::WrongNetwork {
            ours: side.network,
            theirs: hello.network,
        });
    }
    if hello.group != side.group {
        return Err(HandshakeError::UnknownGroup { group: hello.group });
    }
    let acceptor_nonce = nonce()?;
    let transcript = Transcript {
        network: side.network,
        group: side.group,
        dialer: side.peer,
        acceptor: side.me,
        dialer_nonce: hello.nonce,
        acceptor_nonce,
        binding: side.binding,
    };
    let challenge = Message::Challenge {
        hello: Hello {
            network: side.network,
            group: side.group,
            nonce: acceptor_nonce,
            ticket: side.ticket.to_vec(),
            listen: side.listen,
            incarnation: side.incarnation,
        },
        proof: proof(side.key, Role::Acceptor, &transcript),
    };
    write_message(send, &challenge, side.max_frame).await?;
    let their_proof = match next(recv, side.max_frame, "Proof").await? {
        Message::Proof { proof } => proof,
        other => {
            return Err(HandshakeError::Unexpected {
                expected: "Proof",
                found: other.kind(),
            })
        }
    };
    if !verify(side.key, Role::Dialer, &transcript, &their_proof) {
        return Err(HandshakeError::BadProof { peer: side.peer });
    }
    check_ticket(side, &hello.ticket)?;
    write_message(send, &Message::Welcome, side.max_frame).await?;
    Ok(Remote {
        listen: hello.listen,
        incarnation: hello.incarnation,
        ticket: hello.ticket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::frame::DEFAULT_MAX_FRAME_LEN;
    use crate::primitives::Digest;
    use tokio::io::{duplex, split, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

    const MAX: u32 = DEFAULT_MAX_FRAME_LEN;
    type Half = (WriteHalf<DuplexStream>, ReadHalf<DuplexStream>);

    fn pipe() -> (Half, Half) {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        ((aw, ar), (bw, br))
    }

    const D: PeerId = PeerId([1; 32]);
    const A: PeerId = PeerId([2; 32]);

    fn side<'a>(key: &'a LinkKey, me: PeerId, peer: PeerId, network: &str) -> Side<'a> {
        Side {
            network: NetworkId::named(network),
            group: GroupId(Digest::of(b"g")),
            key,
            me,
            peer,
            binding: [7; 32],
            ticket: b"",
            validator: None,
            listen: None,
            incarnation: u64::from(me.0[0]),
            max_frame: MAX,
        }
    }

    async fn run(
        dialer: Side<'_>,
        acceptor: Side<'_>,
    ) -> (
        Result<Remote, HandshakeError>,
        Result<Remote, HandshakeError>,
    ) {
        let ((mut dw, mut dr), (mut aw, mut ar)) = pipe();
        let d = async {
            let r = dial(&mut dw, &mut dr, &dialer).await;
            let _ = dw.shutdown().await; // a side that is done hangs up, as the network layer does
            r
        };
        let a = async {
            let r = match read_hello(&mut ar, MAX).await {
                Ok(hello) => accept(&mut aw, &mut ar, hello, &acceptor).await,
                Err(err) => Err(err),
            };
            let _ = aw.shutdown().await;
            r
        };
        tokio::join!(d, a)
    }

    #[tokio::test]
    async fn same_key_succeeds_both_ways() {
        let key = LinkKey::derive(b"secret");
        let mut acceptor = side(&key, A, D, "n");
        acceptor.listen = Some("127.0.0.1:9".parse().expect("addr"));
        acceptor.ticket = b"acceptor's";
        let mut dialer = side(&key, D, A, "n");
        dialer.ticket = b"dialer's";
        let (d, a) = run(dialer, acceptor).await;
        assert_eq!(
            d.expect("dialer"),
            Remote {
                listen: Some("127.0.0.1:9".parse().expect("addr")),
                incarnation: u64::from(A.0[0]),
                ticket: b"acceptor's".to_vec(),
            },
            "the dialer learns where the acceptor listens, its incarnation and ticket"
        );
        assert_eq!(
            a.expect("acceptor"),
            Remote {
                listen: None,
                incarnation: u64::from(D.0[0]),
                ticket: b"dialer's".to_vec(),
            }
        );
    }

    #[tokio::test]
    async fn wrong_key_is_refused_by_the_dialer() {
        let (k1, k2) = (LinkKey::derive(b"one"), LinkKey::derive(b"two"));
        let (d, a) = run(side(&k1, D, A, "n"), side(&k2, A, D, "n")).await;
        assert!(matches!(d, Err(HandshakeError::BadProof { peer }) if peer == A));
        assert!(a.is_err(), "acceptor sees the dialer hang up");
    }

    #[tokio::test]
    async fn wrong_network_is_refused_by_the_acceptor() {
        let key = LinkKey::derive(b"k");
        let (d, a) = run(side(&key, D, A, "n1"), side(&key, A, D, "n2")).await;
        assert!(
            matches!(a, Err(HandshakeError::WrongNetwork { .. })),
            "{a:?}"
        );
        assert!(d.is_err());
    }

    #[tokio::test]
    async fn ticket_refused_after_proof() {
        let key = LinkKey::derive(b"k");
        let validator = |_peer: PeerId, ticket: &[u8]| {
            if ticket == b"ok" {
                Ok(())
            } else {
                Err(TicketError::new("no ticket"))
            }
        };
        let mut acceptor = side(&key, A, D, "n");
        acceptor.validator = Some(&validator as &dyn TicketValidator);
        let (d, a) = run(side(&key, D, A, "n"), acceptor).await;
        assert!(matches!(a, Err(HandshakeError::Ticket { .. })), "{a:?}");
        assert!(d.is_err());
        let mut acceptor = side(&key, A, D, "n");
        acceptor.validator = Some(&validator as &dyn TicketValidator);
        let mut dialer = side(&key, D, A, "n");
        dialer.ticket = b"ok";
        let (d, a) = run(dialer, acceptor).await;
        assert!(d.is_ok() && a.is_ok());
    }

    /// A dialer that does not know the key tries a proof recorded on an earlier link, and
    /// the acceptor's own proof reflected back: both fail.
    #[tokio::test]
    async fn replayed_and_reflected_proofs_fail() {
        let key = LinkKey::derive(b"k");
        // Record a genuine dialer proof from one link.
        let recorded = {
            let t = Transcript {
                network: NetworkId::named("n"),
                group: GroupId(Digest::of(b"g")),
                dialer: D,
                acceptor: A,
                dialer_nonce: [3; 32],
                acceptor_nonce: [4; 32],
                binding: [7; 32],
            };
            proof(&key, Role::Dialer, &t)
        };
        for reflect in [false, true] {
            let ((mut dw, mut dr), (mut aw, mut ar)) = pipe();
            let acceptor = side(&key, A, D, "n");
            let attacker = async {
                let hello = Hello {
                    network: NetworkId::named("n"),
                    group: GroupId(Digest::of(b"g")),
                    nonce: [3; 32],
                    ticket: vec![],
                    listen: None,
                    incarnation: 9,
                };
                write_message(&mut dw, &Message::Hello(hello), MAX)
                    .await
                    .expect("hello");
                let msg: Message = read_message(&mut dr, MAX)
                    .await
                    .expect("read")
                    .expect("msg");
                let Message::Challenge { proof: theirs, .. } = msg else {
                    panic!("expected a challenge, got {}", msg.kind());
                };
                let proof = if reflect { theirs } else { recorded };
                write_message(&mut dw, &Message::Proof { proof }, MAX)
                    .await
                    .expect("proof");
            };
            let acc = async {
                match read_hello(&mut ar, MAX).await {
                    Ok(hello) => accept(&mut aw, &mut ar, hello, &acceptor).await,
                    Err(err) => Err(err),
                }
            };
            let ((), result) = tokio::join!(attacker, acc);
            assert!(
                matches!(result, Err(HandshakeError::BadProof { peer }) if peer == D),
                "reflect={reflect}: {result:?}"
            );
        }
    }

    /// One connection (one binding) carries links for groups A and B. A peer holding only
    /// A's key bonds A, then asks for B on another stream: its own proof (made with A's
    /// key) and a replay of the proof it made for A both fail.
    #[tokio::test]
    async fn a_proof_for_group_a_cannot_join_group_b_on_the_same_connection() {
        let key_a = LinkKey::derive(b"key of a");
        let key_b = LinkKey::derive(b"key of b");
        let group_b = GroupId(Digest::of(b"b"));
        // Stream 1, group A: both hold A's key.
        let (d, a) = run(side(&key_a, D, A, "n"), side(&key_a, A, D, "n")).await;
        assert!(d.is_ok() && a.is_ok(), "{d:?} {a:?}");
        let recorded = proof(
            &key_a,
            Role::Dialer,
            &Transcript {
                network: NetworkId::named("n"),
                group: GroupId(Digest::of(b"g")),
                dialer: D,
                acceptor: A,
                dialer_nonce: [3; 32],
                acceptor_nonce: [4; 32],
                binding: [7; 32],
            },
        );
        // Stream 2, group B: the acceptor holds B's key, the dialer only A's.
        for replay in [false, true] {
            let ((mut dw, mut dr), (mut aw, mut ar)) = pipe();
            let mut acceptor = side(&key_b, A, D, "n");
            acceptor.group = group_b;
            let attacker = async {
                let hello = Hello {
                    network: NetworkId::named("n"),
                    group: group_b,
                    nonce: [3; 32],
                    ticket: vec![],
                    listen: None,
                    incarnation: 9,
                };
                write_message(&mut dw, &Message::Hello(hello), MAX)
                    .await
                    .expect("hello");
                let msg: Message = read_message(&mut dr, MAX)
                    .await
                    .expect("read")
                    .expect("msg");
                let Message::Challenge { hello, .. } = msg else {
                    panic!("expected a challenge, got {}", msg.kind());
                };
                let own = proof(
                    &key_a,
                    Role::Dialer,
                    &Transcript {
                        network: NetworkId::named("n"),
                        group: group_b,
                        dialer: D,
                        acceptor: A,
                        dialer_nonce: [3; 32],
                        acceptor_nonce: hello.nonce,
                        binding: [7; 32],
                    },
                );
                let proof = if replay { recorded } else { own };
                write_message(&mut dw, &Message::Proof { proof }, MAX)
                    .await
                    .expect("proof");
            };
            let acc = async {
                match read_hello(&mut ar, MAX).await {
                    Ok(hello) => accept(&mut aw, &mut ar, hello, &acceptor).await,
                    Err(err) => Err(err),
                }
            };
            let ((), result) = tokio::join!(attacker, acc);
            assert!(
                matches!(result, Err(HandshakeError::BadProof { peer }) if peer == D),
                "replay={replay}: {result:?}"
            );
        }
    }

    #[test]
    fn every_part_changes_the_proof() {
        let key = LinkKey::derive(b"k");
        let base = || Transcript {
            network: NetworkId::named("n"),
            group: GroupId(Digest::of(b"g")),
            dialer: D,
            acceptor: A,
            dialer_nonce: [3; 32],
            acceptor_nonce: [4; 32],
            binding: [7; 32],
        };
        let p = proof(&key, Role::Dialer, &base());
        assert_ne!(p, proof(&key, Role::Acceptor, &base()));
        assert_ne!(p, proof(&LinkKey::derive(b"other"), Role::Dialer, &base()));
        type Change = Box<dyn Fn(&mut Transcript)>;
        let variants: Vec<Change> = vec![
            Box::new(|t: &mut Transcript| t.network = NetworkId::named("m")),
            Box::new(|t: &mut Transcript| t.group = GroupId(Digest::of(b"h"))),
            Box::new(|t: &mut Transcript| std::mem::swap(&mut t.dialer, &mut t.acceptor)),
            Box::new(|t: &mut Transcript| t.dialer_nonce[0] ^= 1),
            Box::new(|t: &mut Transcript| t.acceptor_nonce[0] ^= 1),
            Box::new(|t: &mut Transcript| t.binding[0] ^= 1),
        ];
        for change in variants {
            let mut t = base();
            change(&mut t);
            assert_ne!(p, proof(&key, Role::Dialer, &t));
        }
    }
}
