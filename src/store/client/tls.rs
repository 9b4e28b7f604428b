//! TLS for the client ([`ClientTls`]): which CAs it trusts for `https://` endpoints, the
//! certificate it presents to nodes that require one, and its TLS failures in words.
//!
//! **Trust.** `--cacert FILE` *replaces* the system's roots (as curl's and etcdctl's
//! `--cacert` do): a cluster's certificates usually come from a private CA, and a public
//! CA should not vouch for a config store's nodes. Without it the client trusts the
//! system's roots (read once per process, from where OpenSSL would look:
//! `SSL_CERT_FILE`, `SSL_CERT_DIR`, the distribution's bundle).
//!
//! **Identity.** `--cert FILE --key FILE` (PEM, the chain leaf first, and its key) is
//! presented to a node started with `--http-client-ca` (mutual TLS).

use crate::store::tls::{pem, provider, TlsError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The flags a TLS failure's advice names (the command line's, or a node's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsFlags {
    /// What gives the CA to trust (`--cacert`).
    pub trust: &'static str,
    /// What gives the client certificate (`--cert and --key`).
    pub identity: &'static str,
}

/// The command line's flags.
pub const CLI_FLAGS: TlsFlags = TlsFlags {
    trust: "--cacert",
    identity: "--cert and --key",
};

/// How a client makes TLS connections. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// `None`: the system's roots, no client certificate (loaded on first use).
    config: Option<Arc<ClientConfig>>,
    flags: TlsFlags,
}

impl Default for ClientTls {
    /// The system's roots and no client certificate.
    fn default() -> Self {
        ClientTls {
            config: None,
            flags: CLI_FLAGS,
        }
    }
}

impl ClientTls {
    /// From the command line's files: `cacert` (trusted CAs, instead of the system's
    /// roots), `cert` and `key` (a client certificate; both or neither). Errors name the
    /// flag and the file.
    pub fn from_files(
        cacert: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(pem::certified_key("--cert", cert, "--key", key)?),
            (Some(cert), None) => {
                return Err(TlsError::Incomplete {
                    given: "--cert",
                    file: cert.to_path_buf(),
                    missing: "--key",
                })
            }
            (None, Some(key)) => {
                return Err(TlsError::Incomplete {
                    given: "--key",
                    file: key.to_path_buf(),
                    missing: "--cert",
                })
            }
            (None, None) => None,
        };
        let trust = match cacert {
            Some(file) => Some(pem::roots("--cacert", file)?),
            None => None,
        };
        if trust.is_none() && identity.is_none() {
            return Ok(ClientTls::default());
        }
        Self::build(trust, identity, CLI_FLAGS)
    }

    /// Trusting `trust` (`None`: the system's roots) and presenting `identity`; failures
    /// advise `flags`.
    pub(crate) fn build(
        trust: Option<RootCertStore>,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        flags: TlsFlags,
    ) -> Result<Self, TlsError> {
        let roots = trust.unwrap_or_else(|| system_roots().clone());
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Config(format!("{}: {e}", flags.identity)))?,
            None => builder.with_no_client_auth(),
        };
        Ok(ClientTls {
            config: Some(Arc::new(config)),
            flags,
        })
    }

    /// For a client of `http://` endpoints only: trusts nothing (it makes no TLS
    /// connection), so the system's roots are not read for it.
    pub(crate) fn plain() -> Self {
        static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        let config = CONFIG.get_or_init(|| config_with(RootCertStore::empty()));
        ClientTls {
            config: Some(config.clone()),
            flags: CLI_FLAGS,
        }
    }

    /// The rustls configuration (the system's roots are read on the first call that
    /// needs them).
    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        match &self.config {
            Some(config) => config.clone(),
            None => system_config().clone(),
        }
    }

    /// Whether it trusts the system's roots and has no client certificate (the default).
    pub(crate) fn is_system(&self) -> bool {
        self.config.is_none()
    }

    /// The flags its failures advise.
    pub fn flags(&self) -> TlsFlags {
        self.flags
    }
}

/// The system's CA roots, read once; unreadable ones are skipped (logged at debug).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(%e, "a system CA certificate could not be read");
        }
        let mut roots = RootCertStore::empty();
        let (added, skipped) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, skipped, "system CA roots loaded");
        roots
    })
}

fn system_config() -> &'static Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| config_with(system_roots().clone()))
}

/// A configuration trusting `roots`, without a client certificate.
fn config_with(roots: RootCertStore) -> Arc<ClientConfig> {
    // Fails only for a provider without TLS 1.2 and 1.3 suites; ring has both.
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3");
    Arc::new(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The handshake failure behind a transport error `e`, in words with the flag that fixes
/// it; `None` when `e` is not one. `connecting`: `e` arose while the connection was being
/// made. Only failures that certainly happened during the handshake count (a certificate
/// refused by either side, or a node that does not answer in TLS while connecting): the
/// node read no request then, so the caller may treat the call as not applied. Any other
/// TLS error (a broken record mid-stream) stays a transport failure whose outcome is
/// unknown.
pub(crate) fn failure(
    e: &(dyn std::error::Error + 'static),
    flags: TlsFlags,
    connecting: bool,
) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return describe(tls, flags, connecting);
        }
        // io::Error's `source` skips the error it wraps (which may be another io::Error
        // wrapping the rustls error, as hyper-rustls's is): look inside instead.
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A handshake failure in words; `None` for other errors.
fn describe(e: &rustls::Error, flags: TlsFlags, connecting: bool) -> Option<String> {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    let words = match e {
        Error::InvalidCertificate(Cert::UnknownIssuer) => format!(
            "certificate not trusted: the node's certificate is not signed by a CA this client trusts (pass {} with the CA that signed it)",
            flags.trust
        ),
        Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            "certificate not valid for this address: the node's certificate does not list the endpoint's host name or IP (use one it lists, or reissue it)".into()
        }
        Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            "the node's certificate has expired".into()
        }
        Error::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => {
            "the node's certificate is not valid yet (check the clocks)".into()
        }
        Error::InvalidCertificate(_) => format!("the node's certificate is refused: {e}"),
        Error::AlertReceived(Alert::CertificateRequired) => format!(
            "the node requires a client certificate (pass {})",
            flags.identity
        ),
        Error::AlertReceived(
            Alert::UnknownCA
            | Alert::BadCertificate
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::AccessDenied,
        ) => format!(
            "the node refused this client's certificate: not signed by a CA the node trusts (its --http-client-ca), or expired (pass {} with one it trusts)",
            flags.identity
        ),
        Error::AlertReceived(Alert::HandshakeFailure | Alert::ProtocolVersion) => {
            format!("the node refused the TLS handshake: {e}")
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } if connecting => {
            "the node did not answer in TLS: it may serve plain HTTP at this address (try http://)"
                .into()
        }
        _ => return None,
    };
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CertificateError, Error};
    use std::io;

    /// As hyper-rustls reports a handshake error: an io::Error around tokio-rustls's.
    fn wrapped(e: Error) -> io::Error {
        io::Error::other(io::Error::new(io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn handshake_failures_are_found_inside_io_errors_and_said_in_words() {
        let untrusted = wrapped(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        let words = failure(&untrusted, CLI_FLAGS, true).expect("a handshake failure");
        assert!(words.starts_with("certificate not trusted"), "{words}");
        assert!(words.contains("(pass --cacert"), "{words}");

        let required = wrapped(Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        let words = failure(&required, CLI_FLAGS, false).expect("a handshake failure");
        assert!(words.contains("pass --cert and --key"), "{words}");

        let plain = wrapped(Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(failure(&plain, CLI_FLAGS, true)
            .expect("while connecting")
            .contains("try http://"));
        // Past the handshake, a broken record is a transport failure: outcome unknown.
        assert_eq!(failure(&plain, CLI_FLAGS, false), None);
        assert_eq!(
            failure(&wrapped(Error::DecryptError), CLI_FLAGS, false),
            None
        );
        assert_eq!(failure(&io::Error::other("refused"), CLI_FLAGS, true), None);
    }
}
