//! The IdP signing certificates a workspace pins: the only keys a response is verified with.

use base64::Engine as _;
use bergshamra::keys::loader::load_x509_cert_der;
use bergshamra::Key;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// How many certificates may be pinned at once: the current one and its successor while the
/// IdP rotates.
pub const MAX_PINNED: usize = 2;

/// Why a certificate cannot be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("not a PEM or base64 DER X.509 certificate")]
    NotACertificate,
    #[error("the certificate's key is not RSA")]
    NotRsa,
    #[error("the certificate's RSA key is shorter than 2048 bits")]
    KeyTooShort,
    #[error("pin one or two certificates")]
    Count,
}

/// One pinned X.509 certificate (DER), checked at configuration time: it parses and holds an
/// RSA key of at least [`MIN_RSA_BITS`]. Its validity dates are not enforced: IdPs routinely
/// sign with long-expired self-signed certificates, and the trust is in the pinned key.
#[derive(Clone, PartialEq, Eq)]
pub struct PinnedCertificate {
    der: Vec<u8>,
}

impl std::fmt::Debug for PinnedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedCertificate")
            .field("der_len", &self.der.len())
            .finish()
    }
}

impl PinnedCertificate {
    /// Reads a PEM certificate or the bare base64 DER that IdP metadata carries.
    pub fn parse(text: &str) -> Result<Self, CertificateError> {
        let body: String = text
            .trim()
            .strip_prefix("-----BEGIN CERTIFICATE-----")
            .map(|rest| rest.trim_end().strip_suffix("-----END CERTIFICATE-----"))
            .unwrap_or(Some(text))
            .ok_or(CertificateError::NotACertificate)?
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| CertificateError::NotACertificate)?;
        Self::from_der(der)
    }

    pub fn from_der(der: Vec<u8>) -> Result<Self, CertificateError> {
        let key = load_x509_cert_der(&der).map_err(|_| CertificateError::NotACertificate)?;
        let spki = key.to_spki_der().ok_or(CertificateError::NotRsa)?;
        let public =
            rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| CertificateError::NotRsa)?;
        if public.size() * 8 < MIN_RSA_BITS {
            return Err(CertificateError::KeyTooShort);
        }
        Ok(Self { der })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as the bare base64 stored and shown back to admins.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }

    pub(crate) fn key(&self) -> Result<Key, bergshamra::Error> {
        load_x509_cert_der(&self.der)
    }
}

/// One or two pinned certificates; a signature is valid when either verifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedCertificates(Vec<PinnedCertificate>);

impl PinnedCertificates {
    pub fn new(certificates: Vec<PinnedCertificate>) -> Result<Self, CertificateError> {
        if certificates.is_empty() || certificates.len() > MAX_PINNED {
            return Err(CertificateError::Count);
        }
        Ok(Self(certificates))
    }

    pub fn iter(&self) -> impl Iterator<Item = &PinnedCertificate> {
        self.0.iter()
    }
}
