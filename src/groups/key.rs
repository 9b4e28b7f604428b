//! `GroupKey` and the derivation of a `GroupId`.
//!
//! The key is the group's shared secret: knowing it is what lets a peer bond (the link
//! handshake proves it without sending it). The id is public and names the group on the
//! wire and in storage keys; it is a blake3 digest of a one-way hash of the key and of
//! everything members must agree on, so two programs that differ in any of those derive
//! different ids and never bond by mistake. Every input is a stable byte string
//! (signatures the implementations give, settings' digests), never `type_name`.

use crate::network::{LinkKey, TicketValidator};
use crate::primitives::{Digest, GroupId, UniqueId};
use std::fmt;

/// The shared secret of one group.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey([u8; 32]);

impl GroupKey {
    /// A key derived from a secret of any length (a passphrase, a provisioned secret).
    pub fn from_secret(secret: impl AsRef<[u8]>) -> Self {
        GroupKey(blake3::derive_key(
            "tessera 2026 group key from secret",
            secret.as_ref(),
        ))
    }

    /// A fresh random key (a group only this process will know until it shares it).
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(GroupKey(bytes))
    }

    /// The key bytes the link handshake proves knowledge of.
    pub fn link_key(&self) -> LinkKey {
        LinkKey::derive(&self.0)
    }

    /// The public digest of the key (one-way): an input of the group id.
    pub fn public_digest(&self) -> Digest {
        Digest::from_parts(&[b"tessera/group-key/public/v1".as_slice(), &self.0])
    }
}

/// The key of a group whose admission is decided by tickets: derived from the
/// validator's signature, so every node that configures the same validator (same
/// signature) derives the same key without sharing a secret (mosaik's
/// `GroupKey::from(&validator)`).
///
/// Such a key is only as secret as the validator's signature, which is usually derived
/// from public settings (an issuer, a public key): the validator must keep peers out, not
/// the key. Require the same validator on the group (`require_ticket`), and override
/// [`TicketValidator::signature`] so that validators with different settings derive
/// different keys (the default signature is the same for every unnamed validator).
impl<V: TicketValidator> From<&V> for GroupKey {
    fn from(validator: &V) -> Self {
        GroupKey::from_secret(
            Digest::from_parts(&[
                b"tessera/group-key/ticket-validator/v1".as_slice(),
                validator.signature().as_bytes(),
            ])
            .as_bytes(),
        )
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

/// Everything a group id is derived from.
#[derive(Clone, Debug)]
pub struct GroupIdInputs {
    /// The key's public digest.
    pub key: Digest,
    /// `ConsensusConfig::digest()`.
    pub consensus: Digest,
    /// `StateMachine::signature()`.
    pub machine: UniqueId,
    /// `StateSync::signature()`.
    pub sync: UniqueId,
    /// `TicketValidator::signature()` of each validator, in order.
    pub tickets: Vec<UniqueId>,
}

impl GroupIdInputs {
    /// The id: blake3 over a version tag and every input, each length-prefixed.
    pub fn derive(&self) -> GroupId {
        let mut parts: Vec<&[u8]> = vec![
            b"tessera/group-id/v1",
            self.key.as_bytes(),
            self.consensus.as_bytes(),
            self.machine.as_bytes(),
            self.sync.as_bytes(),
        ];
        parts.extend(self.tickets.iter().map(|t| t.as_bytes().as_slice()));
        GroupId(Digest::from_parts(&parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> GroupIdInputs {
        GroupIdInputs {
            key: GroupKey::from_secret("k").public_digest(),
            consensus: Digest::of(b"c"),
            machine: Digest::of(b"m"),
            sync: Digest::of(b"s"),
            tickets: vec![],
        }
    }

    #[test]
    fn every_input_changes_the_id() {
        let base = inputs().derive();
        assert_eq!(base, inputs().derive(), "stable");
        let mut i = inputs();
        i.key = GroupKey::from_secret("other").public_digest();
        assert_ne!(i.derive(), base);
        let mut i = inputs();
        i.consensus = Digest::of(b"c2");
        assert_ne!(i.derive(), base);
        let mut i = inputs();
        i.machine = Digest::of(b"m2");
        assert_ne!(i.derive(), base);
        let mut i = inputs();
        i.sync = Digest::of(b"s2");
        assert_ne!(i.derive(), base);
        let mut i = inputs();
        i.tickets.push(Digest::of(b"t"));
        assert_ne!(i.derive(), base);
    }

    struct Issuer(&'static str);

    impl TicketValidator for Issuer {
        fn validate(
            &self,
            _peer: crate::PeerId,
            ticket: &[u8],
        ) -> Result<(), crate::network::TicketError> {
            if ticket == self.0.as_bytes() {
                Ok(())
            } else {
                Err(crate::network::TicketError::new("wrong issuer"))
            }
        }

        fn signature(&self) -> UniqueId {
            Digest::from_parts(&[b"issuer".as_slice(), self.0.as_bytes()])
        }
    }

    #[test]
    fn a_validator_derives_the_key_from_its_signature() {
        let a = GroupKey::from(&Issuer("alpha"));
        assert_eq!(
            a,
            GroupKey::from(&Issuer("alpha")),
            "same settings, same key"
        );
        assert_ne!(a, GroupKey::from(&Issuer("beta")));
        assert_ne!(
            a,
            GroupKey::from_secret(Issuer("alpha").signature().as_bytes())
        );
    }

    #[test]
    fn the_key_is_not_the_public_digest() {
        let k = GroupKey::from_secret("k");
        assert_ne!(k.public_digest().0, k.0);
    }
}
