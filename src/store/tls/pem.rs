//! PEM files: certificate chains, private keys and CA bundles, each read and checked with
//! an error naming the flag and the file.

use super::TlsError;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use std::path::Path;

fn read(flag: &'static str, file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        flag,
        file: file.to_path_buf(),
        source,
    })
}

fn invalid(flag: &'static str, file: &Path, reason: String) -> TlsError {
    TlsError::Invalid {
        flag,
        file: file.to_path_buf(),
        reason,
    }
}

/// The PEM error in words (its Debug form names Rust types).
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "not valid PEM: a section has no end line {:?}",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "not valid PEM: bad section start {:?}",
            String::from_utf8_lossy(line)
        ),
        pem::Error::Base64Decode(why) => format!("not valid PEM: bad base64 ({why})"),
        other => format!("not valid PEM: {other}"),
    }
}

/// Every certificate in `file`, in order (a chain: the leaf first).
pub(crate) fn certificates(
    flag: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(flag, file)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(flag, file, pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            flag,
            file: file.to_path_buf(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

/// The first private key in `file` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(
    flag: &'static str,
    file: &Path,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(flag, file)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::Empty {
            flag,
            file: file.to_path_buf(),
            expected: "private key",
        },
        other => invalid(flag, file, pem_reason(&other)),
    })
}

/// The CA certificates in `file`, as trust anchors.
pub(crate) fn roots(flag: &'static str, file: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for (i, cert) in certificates(flag, file)?.into_iter().enumerate() {
        store.add(cert).map_err(|e| {
            invalid(
                flag,
                file,
                format!("certificate {} is not a usable CA certificate: {e}", i + 1),
            )
        })?;
    }
    Ok(store)
}

/// The certificate chain of `cert` with the private key of `key`, checked to belong
/// together.
pub(crate) fn certified_key(
    cert_flag: &'static str,
    cert: &Path,
    key_flag: &'static str,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certificates(cert_flag, cert)?;
    let private = private_key(key_flag, key)?;
    let signing = super::provider()
        .key_provider
        .load_private_key(private.clone_key())
        .map_err(|e| invalid(key_flag, key, format!("unusable private key: {e}")))?;
    match CertifiedKey::new(chain.clone(), signing).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok((chain, private))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert_flag,
            cert: cert.to_path_buf(),
            key_flag,
            key: key.to_path_buf(),
        }),
        Err(e) => Err(invalid(
            cert_flag,
            cert,
            format!("the first certificate does not parse: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_flag_and_the_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let missing = dir.path().join("missing.pem");
        let e = certificates("--http-cert", &missing).expect_err("missing file");
        assert!(e.to_string().starts_with("--http-cert "), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").expect("write");
        let e = certificates("--cacert", &empty).expect_err("no certificate");
        assert_eq!(
            e.to_string(),
            format!("--cacert {}: no PEM certificate in it", empty.display())
        );
        let e = private_key("--key", &empty).expect_err("no key");
        assert!(e.to_string().ends_with("no PEM private key in it"), "{e}");

        let torn = dir.path().join("torn.pem");
        std::fs::write(&torn, "-----BEGIN CERTIFICATE-----\nMIIB\n").expect("write");
        let e = certificates("--http-cert", &torn).expect_err("torn");
        assert!(e.to_string().contains("not valid PEM"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = roots("--http-client-ca", &garbage).expect_err("not a certificate");
        assert!(e.to_string().contains("not a usable CA certificate"), "{e}");
    }
}
