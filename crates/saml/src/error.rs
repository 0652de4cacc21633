//! Why a SAML response was refused, as a stable reason code and nothing more.
//!
//! A refusal never says more than its reason code: which certificate, which value or which
//! byte offset failed stays out of the error, so an attacker probing the ACS learns only the
//! class of the check, and an email never reaches a log through an error message.

/// A SAML response (or a part of it) broken one of the profile's rules. Every variant is
/// final: the caller refuses the sign-in, audits the reason code and does not retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    /// The `SAMLResponse` form field is over [`crate::MAX_RESPONSE_BYTES`].
    #[error("the SAML response is larger than the accepted maximum")]
    TooLarge,
    /// Not strict base64 (standard alphabet, canonical padding; line breaks only between
    /// characters), or not UTF-8 once decoded.
    #[error("the SAML response is not valid base64-encoded UTF-8")]
    Encoding,
    /// A `<!DOCTYPE` (and with it any entity declaration) is never accepted.
    #[error("the SAML response carries a document type declaration")]
    Doctype,
    /// Not well-formed XML.
    #[error("the SAML response is not well-formed XML")]
    MalformedXml,
    /// The document is not the one shape the profile reads: a `samlp:Response` holding exactly
    /// one `saml:Assertion` (no encrypted assertions), each signature where it may be, one
    /// `Subject` with one `NameID` of text only, unique IDs.
    #[error("the SAML response does not have the accepted structure")]
    Structure,
    /// The assertion is not signed, or a signature does not verify with a pinned certificate,
    /// or a verified reference does not point at the element it sits in.
    #[error("the SAML response signature is missing or does not verify")]
    Signature,
    /// A signature uses an algorithm or transform outside the profile (SHA-1, inclusive or
    /// with-comments canonicalization, XPath, ...).
    #[error("the SAML response signature uses an algorithm the profile does not accept")]
    Algorithm,
    /// The Response or Assertion `Issuer` is not the configured IdP entity id.
    #[error("the SAML response was issued by another identity provider")]
    Issuer,
    /// The top-level status is not `Success`.
    #[error("the identity provider reported that the sign-in did not succeed")]
    Status,
    /// No `AudienceRestriction` names our entity id.
    #[error("the SAML assertion is meant for another service provider")]
    Audience,
    /// The Response `Destination` or the bearer confirmation's `Recipient` is not our ACS URL.
    #[error("the SAML response is addressed to another URL")]
    Recipient,
    /// No `bearer` subject confirmation.
    #[error("the SAML assertion has no bearer subject confirmation")]
    SubjectConfirmation,
    /// A `NotBefore` (or the `IssueInstant`) is further in the future than the allowed skew.
    #[error("the SAML assertion is not valid yet")]
    NotYetValid,
    /// A `NotOnOrAfter` has passed (beyond the allowed skew).
    #[error("the SAML assertion has expired")]
    Expired,
    /// `InResponseTo` does not match the request this browser started, or is present in an
    /// IdP-initiated response.
    #[error("the SAML response does not answer the request this browser started")]
    InResponseTo,
    /// A condition the profile does not know (SAML says: then the assertion is not valid).
    #[error("the SAML assertion carries a condition the service provider does not understand")]
    UnknownCondition,
}

impl SamlError {
    /// The stable code put into problem+json bodies and audit entries.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "saml_too_large",
            Self::Encoding => "saml_encoding",
            Self::Doctype => "saml_doctype",
            Self::MalformedXml => "saml_malformed_xml",
            Self::Structure => "saml_structure",
            Self::Signature => "saml_signature",
            Self::Algorithm => "saml_algorithm",
            Self::Issuer => "saml_issuer",
            Self::Status => "saml_status",
            Self::Audience => "saml_audience",
            Self::Recipient => "saml_recipient",
            Self::SubjectConfirmation => "saml_subject_confirmation",
            Self::NotYetValid => "saml_not_yet_valid",
            Self::Expired => "saml_expired",
            Self::InResponseTo => "saml_in_response_to",
            Self::UnknownCondition => "saml_unknown_condition",
        }
    }
}
