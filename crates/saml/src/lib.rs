//! SAML 2.0 service provider under TrackLayer's strict profile.
//!
//! Pure Rust (it runs in the Lambda runtime, which has no libxmlsec1), no I/O and no clock
//! reads: the caller passes `now`, the pinned certificates and what it expects. XML-DSig
//! cryptography is bergshamra's (exclusive C14N over the parsed received bytes, never a
//! re-serialization); the profile around it is ours and is listed in [`verify_response`].

mod certificate;
mod decode;
mod dom;
mod error;
mod request;
mod response;
mod signature;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use certificate::{CertificateError, PinnedCertificate, PinnedCertificates, MAX_PINNED};
pub use decode::MAX_RESPONSE_BYTES;
pub use error::SamlError;
pub use request::{authn_request_redirect, authn_request_xml, sp_metadata};
pub use response::{verify_response, Attribute, VerifiedAssertion, CLOCK_SKEW};

/// This service provider, as the IdP knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProvider {
    /// Our entity id: the `Audience` an assertion must name.
    pub entity_id: String,
    /// Our assertion consumer service URL: the `Destination` and `Recipient` it must name.
    pub acs_url: String,
}

/// The identity provider a workspace trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// The `Issuer` of its responses and assertions.
    pub entity_id: String,
    /// The only keys its signatures are verified with.
    pub certificates: PinnedCertificates,
}

/// Which request, if any, the response must answer.
#[derive(Clone, PartialEq, Eq)]
pub enum Expected {
    /// SP-initiated: `InResponseTo` must be this request id (the one bound to the browser).
    Answer { request_id: String },
    /// IdP-initiated: `InResponseTo` must be absent.
    Unsolicited,
}

impl std::fmt::Debug for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Answer { .. } => f.write_str("Answer { request_id: <redacted> }"),
            Self::Unsolicited => f.write_str("Unsolicited"),
        }
    }
}
