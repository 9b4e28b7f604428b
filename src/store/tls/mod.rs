//! HTTPS for the node's API: the certificates a node serves and asks for, and the files
//! they come from.
//!
//! **The node.** `--http-cert FILE --http-key FILE` (PEM: the certificate chain, leaf
//! first, and its private key) serve the API over TLS 1.2/1.3 only: plain HTTP sent to the
//! port gets a 400 saying to use `https://` ([`listener`]). `--http-client-ca FILE` (PEM
//! CA certificates) also requires every client to present a certificate signed by one of
//! them (mutual TLS); a client without one, or with one from another CA, is refused
//! during the handshake, before any request is read. Every file is read and checked
//! before the node takes its data directory's lock or binds a port, and an error names the
//! flag and the file: a certificate without its key, a key without its certificate, a
//! file that cannot be read or holds no PEM of the right kind, a key that does not match
//! the certificate.
//!
//! **The node as a client.** A follower relays membership and leadership calls to the
//! leader's HTTP API, at the URL the leader announces (`https://IP:PORT` when it serves
//! TLS). For these calls a node trusts the CA certificates of `--http-trusted-ca FILE`,
//! else those of `--http-client-ca` (in a cluster with mutual TLS one CA usually signs
//! every certificate), else the system's roots; and it presents its own `--http-cert` as
//! its client certificate, so under mutual TLS each member's certificate must also allow
//! client authentication (extendedKeyUsage `serverAuth, clientAuth`) and be signed by the
//! client CA. The relay also carries the caller's bearer token: certificates decide who
//! may connect, tokens what a caller may do.
//!
//! The cryptography is rustls with the `ring` provider, the one iroh already uses for
//! QUIC: the process has one crypto library and no process-wide default provider to set.

mod listener;
pub(crate) mod pem;
mod server;

pub use listener::TlsListener;
pub use server::{HttpTls, HttpTlsFiles};

use std::path::PathBuf;
use std::sync::Arc;

/// Why TLS settings could not be loaded. Every variant names the flag and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{flag} {}: {source}", file.display())]
    Read {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM block of the kind expected.
    #[error("{flag} {}: no PEM {expected} in it", file.display())]
    Empty {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        file: PathBuf,
        /// What was looked for ("certificate", "private key").
        expected: &'static str,
    },
    /// The file is not valid PEM, or a certificate or key in it does not parse.
    #[error("{flag} {}: {reason}", file.display())]
    Invalid {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        file: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The private key is not the certificate's.
    #[error("{key_flag} {}: this private key does not belong to the certificate in {cert_flag} {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate's flag.
        cert_flag: &'static str,
        /// The certificate file.
        cert: PathBuf,
        /// The key's flag.
        key_flag: &'static str,
        /// The key file.
        key: PathBuf,
    },
    /// One flag of a pair was given without the other.
    #[error("{given} {} is given without {missing}: both are needed", file.display())]
    Incomplete {
        /// The flag given.
        given: &'static str,
        /// Its file.
        file: PathBuf,
        /// The flag missing.
        missing: &'static str,
    },
    /// A flag that only means something with another one.
    #[error("{given} {} needs {needed}", file.display())]
    Needs {
        /// The flag given.
        given: &'static str,
        /// Its file.
        file: PathBuf,
        /// The flag it needs.
        needed: &'static str,
    },
    /// rustls refused the configuration (not expected once the files were checked).
    #[error("TLS settings: {0}")]
    Config(String),
}

/// The crypto provider every TLS configuration of the process uses (ring, as iroh's).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
