//! A node's TLS settings: the files its flags name ([`HttpTlsFiles`]) and what is made of
//! them ([`HttpTls`]): the server configuration of its API and the client configuration
//! of its relays to the leader.

use super::{pem, provider, TlsError};
use crate::store::client::{ClientTls, TlsFlags};
use rustls::server::WebPkiClientVerifier;
use std::path::PathBuf;
use std::sync::Arc;

/// The flags' files; `None` where a flag is not given.
#[derive(Clone, Debug, Default)]
pub struct HttpTlsFiles {
    /// `--http-cert`: the certificate chain served, leaf first (PEM).
    pub cert: Option<PathBuf>,
    /// `--http-key`: its private key (PEM).
    pub key: Option<PathBuf>,
    /// `--http-client-ca`: clients must present a certificate signed by one of these.
    pub client_ca: Option<PathBuf>,
    /// `--http-trusted-ca`: the CAs trusted for other members' APIs (relays).
    pub trusted_ca: Option<PathBuf>,
}

/// How the node relays (calls other members' APIs): the errors name the node's flags.
const RELAY_FLAGS: TlsFlags = TlsFlags {
    trust: "--http-trusted-ca",
    identity: "--http-cert and --http-key (a certificate that allows client authentication)",
};

impl HttpTlsFiles {
    /// Reads and checks every file: `None` without `--http-cert` and `--http-key` (plain
    /// HTTP); an error naming the flag and the file for a missing half of the pair, a
    /// client CA without a certificate, an unreadable or malformed file, or a key that is
    /// not the certificate's.
    pub fn load(&self) -> Result<Option<HttpTls>, TlsError> {
        let (cert, key) = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(cert), None) => {
                return Err(TlsError::Incomplete {
                    given: "--http-cert",
                    file: cert.clone(),
                    missing: "--http-key",
                })
            }
            (None, Some(key)) => {
                return Err(TlsError::Incomplete {
                    given: "--http-key",
                    file: key.clone(),
                    missing: "--http-cert",
                })
            }
            (None, None) => {
                for (flag, file) in [
                    ("--http-client-ca", &self.client_ca),
                    ("--http-trusted-ca", &self.trusted_ca),
                ] {
                    if let Some(file) = file {
                        return Err(TlsError::Needs {
                            given: flag,
                            file: file.clone(),
                            needed: "--http-cert and --http-key (HTTPS)",
                        });
                    }
                }
                return Ok(None);
            }
        };
        let (chain, private) = pem::certified_key("--http-cert", cert, "--http-key", key)?;
        let client_roots = match &self.client_ca {
            Some(file) => Some(pem::roots("--http-client-ca", file)?),
            None => None,
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &client_roots {
            Some(roots) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots.clone()),
                    provider(),
                )
                .build()
                .map_err(|e| TlsError::Config(format!("--http-client-ca: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder
            .with_single_cert(chain.clone(), private.clone_key())
            .map_err(|e| TlsError::Config(format!("--http-cert and --http-key: {e}")))?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];

        let trust = match (&self.trusted_ca, &self.client_ca) {
            (Some(file), _) => Some(pem::roots("--http-trusted-ca", file)?),
            (None, Some(_)) => client_roots,
            (None, None) => None,
        };
        let relay = ClientTls::build(trust, Some((chain, private)), RELAY_FLAGS)?;
        Ok(Some(HttpTls {
            server: Arc::new(server),
            relay,
            client_auth: self.client_ca.is_some(),
        }))
    }
}

/// A node's loaded TLS settings.
#[derive(Clone, Debug)]
pub struct HttpTls {
    /// What the API serves with.
    pub server: Arc<rustls::ServerConfig>,
    /// What relays to the leader connect with (trust, and the node's certificate as its
    /// client certificate).
    pub relay: ClientTls,
    /// Whether clients must present a certificate.
    pub client_auth: bool,
}
