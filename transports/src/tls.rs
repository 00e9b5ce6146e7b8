//! TLS for the edge: its self-signed identity (created once, kept in the data
//! dir), and how an agent trusts it: a pinned SHA-256 fingerprint, a CA file,
//! or — only when asked for explicitly — not at all.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::TransportError;

/// The ALPN protocol of beamd's agent connections.
pub const ALPN: &[u8] = b"beamd/1";
/// The name in the edge's certificate and the SNI agents send by default.
pub const SERVER_NAME: &str = "beamd";
const CERT_FILE: &str = "edge-cert.pem";
const KEY_FILE: &str = "edge-key.pem";

fn tls(e: impl std::fmt::Display) -> TransportError {
    TransportError::Tls(e.to_string())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The lower-case hex SHA-256 of a DER certificate.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The edge's certificate and private key.
pub struct EdgeIdentity {
    cert: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    cert_pem: String,
    key: PrivatePkcs8KeyDer<'static>,
    key_pem: String,
}

impl EdgeIdentity {
    /// A fresh self-signed identity for `names` (plus `beamd` and `localhost`).
    pub fn generate(names: &[String]) -> Result<Self, TransportError> {
        let mut all = vec![SERVER_NAME.to_string(), "localhost".to_string()];
        all.extend(names.iter().cloned());
        let certified = rcgen::generate_simple_self_signed(all).map_err(tls)?;
        Ok(Self {
            cert: certified.cert.der().clone(),
            chain: Vec::new(),
            cert_pem: certified.cert.pem(),
            key: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
            key_pem: certified.signing_key.serialize_pem(),
        })
    }

    /// Loads the identity from `dir`, or creates it there (key file mode 0600).
    /// Returns it and whether it was created.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<(Self, bool), TransportError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            let read = |p: &Path| {
                std::fs::read_to_string(p)
                    .map_err(|e| TransportError::io("reading the edge identity", e))
            };
            let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
            let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(tls)?;
            let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(tls)? {
                PrivateKeyDer::Pkcs8(k) => k,
                _ => {
                    return Err(tls(format!(
                        "{} must hold a PKCS#8 key",
                        key_path.display()
                    )))
                }
            };
            return Ok((
                Self {
                    cert,
                    chain: Vec::new(),
                    cert_pem,
                    key,
                    key_pem,
                },
                false,
            ));
        }
        let identity = Self::generate(names)?;
        std::fs::write(&cert_path, &identity.cert_pem)
            .map_err(|e| TransportError::io("writing the edge certificate", e))?;
        let mut key_file =
            open_private(&key_path).map_err(|e| TransportError::io("writing the edge key", e))?;
        key_file
            .write_all(identity.key_pem.as_bytes())
            .map_err(|e| TransportError::io("writing the edge key", e))?;
        Ok((identity, true))
    }

    /// An identity from PEM files: a certificate chain (leaf first) and its PKCS#8 key,
    /// e.g. one issued by a public CA so that agents can trust the system roots.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| TransportError::io("reading a certificate file", e))
        };
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let mut certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes());
        let leaf = certs
            .next()
            .ok_or_else(|| tls(format!("{} holds no certificate", cert.display())))?
            .map_err(tls)?;
        let chain = certs.collect::<Result<Vec<_>, _>>().map_err(tls)?;
        let key_der = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(tls)? {
            PrivateKeyDer::Pkcs8(k) => k,
            _ => return Err(tls(format!("{} must hold a PKCS#8 key", key.display()))),
        };
        Ok(Self {
            cert: leaf,
            chain,
            cert_pem,
            key: key_der,
            key_pem,
        })
    }

    /// The certificate's SHA-256 fingerprint (lower-case hex), which agents pin.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(self.cert.as_ref())
    }

    /// The certificate as PEM, for agents that trust it as a CA file.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A TLS 1.3 server configuration with this identity.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TransportError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(
                std::iter::once(self.cert.clone())
                    .chain(self.chain.iter().cloned())
                    .collect(),
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(tls)?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }

    /// A server configuration for public HTTPS: TLS 1.2 and 1.3, ALPN `http/1.1`.
    pub fn https_config(&self) -> Result<rustls::ServerConfig, TransportError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(
                std::iter::once(self.cert.clone())
                    .chain(self.chain.iter().cloned())
                    .collect(),
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(tls)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// How an agent decides to trust the edge.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The edge's certificate must have this SHA-256 fingerprint (hex, colons allowed).
    Fingerprint(String),
    /// The edge's certificate must chain to one of these roots.
    Roots(Arc<RootCertStore>),
    /// The edge's certificate must chain to a well-known public CA (Mozilla's roots).
    System,
    /// No verification at all: for local testing only, and said on every start.
    Insecure,
}

impl Trust {
    /// Roots read from a PEM file.
    pub fn ca_file(path: &Path) -> Result<Self, TransportError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(tls)? {
            roots.add(cert.map_err(tls)?).map_err(tls)?;
        }
        if roots.is_empty() {
            return Err(tls(format!("{} holds no certificate", path.display())));
        }
        Ok(Trust::Roots(Arc::new(roots)))
    }

    /// A TLS 1.3 client configuration that trusts per `self`.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TransportError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?;
        let mut cfg = match self {
            Trust::Roots(roots) => builder
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
            Trust::System => {
                let roots =
                    RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Fingerprint(fp) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    fingerprint: fp.replace(':', "").to_ascii_lowercase(),
                    provider: provider(),
                }))
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    fingerprint: String::new(),
                    provider: provider(),
                }))
                .with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }
}

/// Accepts exactly the certificate with the pinned fingerprint (any, when the
/// pin is empty, which only `Trust::Insecure` builds). Handshake signatures
/// are still verified, so the peer must hold the certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint_of(end_entity.as_ref());
        if self.fingerprint.is_empty() || seen == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the edge's certificate fingerprint {seen} is not the pinned {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = EdgeIdentity::load_or_create(dir.path(), &[]).unwrap();
        assert!(created);
        let (b, created) = EdgeIdentity::load_or_create(dir.path(), &[]).unwrap();
        assert!(!created);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Trust::ca_file(&dir.path().join(CERT_FILE)).is_ok());
        assert!(a.server_config().is_ok());
    }
}
