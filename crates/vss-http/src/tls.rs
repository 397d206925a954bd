//! TLS for the listener: a certificate chain and key read from PEM files,
//! reloaded in place ([`TlsConfig::reload`]) without touching open connections,
//! and HTTP/2 or HTTP/1.1 chosen by ALPN.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate file holds no `BEGIN CERTIFICATE` block.
    #[error("{} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error(
        "{} holds no PEM private key (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or \
         `BEGIN EC PRIVATE KEY`): {reason}", path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// rustls refused the pair (a key of an unsupported type, or one that
    /// does not match the certificate).
    #[error("the certificate {} and key {} cannot be used together: {reason}", cert.display(), key.display())]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// The certificate being served; replaced whole by a reload.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// TLS for [`crate::serve_tls`]: the certificate chain and private key of two
/// PEM files, ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3 (rustls with the ring
/// provider). Cheap to clone; clones share the certificate, so a reload
/// through any of them reaches every later handshake.
#[derive(Clone)]
pub struct TlsConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Arc<CurrentCert>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the certificate chain (leaf first) from `cert_file` and the
    /// private key (PKCS#8, PKCS#1 RSA or SEC1 EC) from `key_file`.
    pub fn from_files(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Result<TlsConfig, TlsError> {
        let (cert_file, key_file) = (cert_file.into(), key_file.into());
        let certified = load(&cert_file, &key_file)?;
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(certified))));
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Unusable {
                cert: cert_file.clone(),
                key: key_file.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsConfig {
            cert_file,
            key_file,
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads both files again and serves the new pair to every handshake from
    /// now on; connections already open keep theirs. On failure nothing
    /// changes and the error says which file and why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = load(&self.cert_file, &self.key_file)?;
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        Ok(())
    }

    /// The certificate file.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// The key file.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The pair of `cert_file` and `key_file`, checked to belong together.
fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(cert_file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_file.to_owned(),
        });
    }
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        path: key_file.to_owned(),
        reason: e.to_string(),
    })?;
    let unusable = |reason: String| TlsError::Unusable {
        cert: cert_file.to_owned(),
        key: key_file.to_owned(),
        reason,
    };
    let signing = ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| unusable(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| unusable(e.to_string()))?;
    Ok(certified)
}
