//! HTTPS for `tracklayer serve`: a rustls server configuration from PEM files, TLS 1.3 only
//! unless TLS 1.2 is allowed explicitly, and then only its ECDHE suites with AEAD ciphers
//! (AES-GCM, ChaCha20-Poly1305). The handshake of a connection is bounded by the header read
//! timeout of [`crate::server::ServerLimits`]; every response over TLS carries HSTS.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// `Strict-Transport-Security` on every response served over TLS: one year, subdomains too.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Which TLS versions a client may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.3 only (the default).
    Tls13,
    /// TLS 1.3, and TLS 1.2 with ECDHE + AEAD suites for older clients.
    Tls13AndTls12,
}

/// The certificate chain and key could not be made into a server configuration: the operator
/// fixes the files or the flags; retrying does not help.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read the PEM {what} file {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("the certificate and key are not usable together")]
    Rejected(#[source] rustls::Error),
}

/// Accepts TLS connections with one server configuration.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    versions: TlsVersions,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the private key.
        f.debug_struct("Tls")
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// From a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        versions: TlsVersions,
    ) -> Result<Self, TlsConfigError> {
        let read = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsConfigError::Read { what, path, source }
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(read("certificate", cert))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(read("key", key))?;
        if chain.is_empty() {
            return Err(TlsConfigError::NoCertificate(cert.to_path_buf()));
        }
        Self::new(chain, key, versions)
    }

    /// From a DER certificate chain (leaf first) and its private key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        versions: TlsVersions,
    ) -> Result<Self, TlsConfigError> {
        let (protocols, suites) = policy(versions);
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: suites,
            ..provider::default_provider()
        };
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(protocols)
            .map_err(TlsConfigError::Rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsConfigError::Rejected)?;
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            versions,
        })
    }

    pub fn versions(&self) -> TlsVersions {
        self.versions
    }

    /// The handshake on `stream`, failed when it has not finished within `timeout`.
    pub(crate) async fn accept<S>(&self, stream: S, timeout: Duration) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake did not finish in time",
            )),
        }
    }
}

static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
static TLS13_AND_TLS12: [&SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

/// The protocol versions and cipher suites of `versions`: every TLS 1.3 suite (all AEAD), and
/// for TLS 1.2 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305.
fn policy(
    versions: TlsVersions,
) -> (
    &'static [&'static SupportedProtocolVersion],
    Vec<SupportedCipherSuite>,
) {
    use provider::cipher_suite as s;
    let mut suites = vec![
        s::TLS13_AES_256_GCM_SHA384,
        s::TLS13_AES_128_GCM_SHA256,
        s::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    match versions {
        TlsVersions::Tls13 => (&TLS13_ONLY, suites),
        TlsVersions::Tls13AndTls12 => {
            suites.extend([
                s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ]);
            (&TLS13_AND_TLS12, suites)
        }
    }
}

/// Marks a response as served over TLS: browsers use HTTPS for this host from now on.
pub(crate) fn add_hsts(headers: &mut HeaderMap) {
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
}

#[cfg(test)]
mod tests;
