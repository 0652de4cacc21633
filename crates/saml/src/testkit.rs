//! A test identity provider (feature `testkit`, for tests only): an RSA key with an rcgen
//! self-signed certificate, and responses built as text and signed with bergshamra's signing
//! API (enveloped, exclusive C14N). Test code: it panics on what cannot happen in a test.
#![allow(clippy::expect_used, missing_docs)]

use std::sync::OnceLock;

use crate::{Expected, IdentityProvider, PinnedCertificate, PinnedCertificates, ServiceProvider};
use base64::Engine as _;
use bergshamra::core::algorithm;
use bergshamra::{DsigContext, KeysManager};
use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

pub const IDP_ENTITY_ID: &str = "https://idp.example.test/metadata";
pub const SP_ENTITY_ID: &str = "https://tracklayer.example.test/sso/saml/ws_1/metadata";
pub const ACS_URL: &str = "https://tracklayer.example.test/sso/saml/ws_1/acs";
pub const REQUEST_ID: &str = "_req_6c1f0d2e";
pub const ALICE: &str = "alice@example.com";

/// The fixed "now" of every test: 2026-12-04T12:00:00Z.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::parse("2026-12-04T12:00:00Z", &Rfc3339).expect("fixed time")
}

pub fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("formats")
}

#[derive(Debug)]
pub struct SigningKey {
    pem: String,
    pub certificate_der: Vec<u8>,
}

impl SigningKey {
    fn generate(bits: usize) -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits).expect("rsa key");
        let pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pkcs8")
            .to_string();
        let pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
            .expect("rcgen key");
        let params =
            rcgen::CertificateParams::new(vec!["idp.example.test".to_owned()]).expect("params");
        let certificate = params.self_signed(&pair).expect("self-signed");
        Self {
            pem,
            certificate_der: certificate.der().to_vec(),
        }
    }

    pub fn certificate_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.certificate_der)
    }

    pub fn pinned(&self) -> PinnedCertificate {
        PinnedCertificate::from_der(self.certificate_der.clone()).expect("pinnable")
    }

    /// Signs the first `ds:Signature` template of `xml`.
    pub fn sign(&self, xml: &str) -> String {
        let key = bergshamra::keys::loader::load_pem_auto(self.pem.as_bytes(), None)
            .expect("signing key");
        let mut keys = KeysManager::new();
        keys.add_key(key);
        bergshamra::sign(&DsigContext::new_permissive(keys), xml).expect("signs")
    }
}

/// The IdP's current key, its successor (rotation) and an attacker's key.
pub fn idp_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(2048))
}

pub fn next_idp_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(2048))
}

pub fn attacker_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(2048))
}

/// The RSA public key of a certificate, as rcgen reads it (PKCS#1 DER).
#[derive(Debug)]
struct RsaPublic(Vec<u8>);

impl rcgen::PublicKeyData for RsaPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// A certificate for a 1024-bit RSA key (signed by the IdP key: ring refuses to sign with a
/// key that short, so it cannot be self-signed here).
pub fn weak_certificate_der() -> Vec<u8> {
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    let weak = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).expect("rsa key");
    let public = RsaPublic(
        weak.to_public_key()
            .to_pkcs1_der()
            .expect("pkcs1")
            .into_vec(),
    );
    let issuer_pair =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&idp_key().pem, &rcgen::PKCS_RSA_SHA256)
            .expect("issuer key");
    let issuer_params =
        rcgen::CertificateParams::new(vec!["idp.example.test".to_owned()]).expect("params");
    let issuer = rcgen::Issuer::new(issuer_params, issuer_pair);
    rcgen::CertificateParams::new(vec!["weak.example.test".to_owned()])
        .expect("params")
        .signed_by(&public, &issuer)
        .expect("signed")
        .der()
        .to_vec()
}

pub fn sp() -> ServiceProvider {
    ServiceProvider {
        entity_id: SP_ENTITY_ID.to_owned(),
        acs_url: ACS_URL.to_owned(),
    }
}

pub fn idp_trusting(keys: &[&SigningKey]) -> IdentityProvider {
    IdentityProvider {
        entity_id: IDP_ENTITY_ID.to_owned(),
        certificates: PinnedCertificates::new(keys.iter().map(|k| k.pinned()).collect())
            .expect("one or two"),
    }
}

pub fn idp() -> IdentityProvider {
    idp_trusting(&[idp_key()])
}

pub fn answering() -> Expected {
    Expected::Answer {
        request_id: REQUEST_ID.to_owned(),
    }
}

/// The algorithms a signature template names.
#[derive(Debug, Clone)]
pub struct Algorithms {
    pub c14n: &'static str,
    pub signature: &'static str,
    pub digest: &'static str,
    pub transforms: Vec<&'static str>,
}

impl Default for Algorithms {
    fn default() -> Self {
        Self {
            c14n: algorithm::EXC_C14N,
            signature: algorithm::RSA_SHA256,
            digest: algorithm::SHA256,
            transforms: vec![algorithm::ENVELOPED_SIGNATURE, algorithm::EXC_C14N],
        }
    }
}

/// A signature template referencing `uri`, with `certificate` in its KeyInfo.
pub fn signature_template(uri: &str, algorithms: &Algorithms, certificate: &str) -> String {
    let transforms: String = algorithms
        .transforms
        .iter()
        .map(|t| format!(r#"<ds:Transform Algorithm="{t}"/>"#))
        .collect();
    format!(
        r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{c14n}"/><ds:SignatureMethod Algorithm="{sig}"/><ds:Reference URI="{uri}"><ds:Transforms>{transforms}</ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"#,
        c14n = algorithms.c14n,
        sig = algorithms.signature,
        digest = algorithms.digest,
    )
}

/// Everything a response says; `Response::valid()` is a correct SP-initiated response.
#[derive(Debug, Clone)]
pub struct Response {
    pub response_id: String,
    pub assertion_id: String,
    pub in_response_to: Option<String>,
    pub destination: String,
    pub recipient: String,
    pub audience: String,
    pub response_issuer: Option<String>,
    pub assertion_issuer: String,
    pub name_id: String,
    pub status: String,
    pub confirmation_method: String,
    pub issue_instant: OffsetDateTime,
    pub not_before: OffsetDateTime,
    pub not_on_or_after: OffsetDateTime,
    pub confirmation_not_on_or_after: OffsetDateTime,
    pub extra_conditions: String,
    pub attributes: String,
    /// Sign the Assertion with this key (None: unsigned).
    pub assertion_key: Option<&'static SigningKey>,
    /// Also sign the Response with this key.
    pub response_key: Option<&'static SigningKey>,
    pub algorithms: Algorithms,
    /// The Reference URI of the assertion's signature (default `#` + assertion id).
    pub assertion_reference: Option<String>,
}

impl Response {
    /// A correct SP-initiated response, issued at [`now`].
    pub fn valid() -> Self {
        Self::valid_at(now())
    }

    /// A correct SP-initiated response, issued at `now`.
    pub fn valid_at(now: OffsetDateTime) -> Self {
        Self {
            response_id: "_resp_5b0f2c7a".to_owned(),
            assertion_id: "_assert_91e2d4b8".to_owned(),
            in_response_to: Some(REQUEST_ID.to_owned()),
            destination: ACS_URL.to_owned(),
            recipient: ACS_URL.to_owned(),
            audience: SP_ENTITY_ID.to_owned(),
            response_issuer: Some(IDP_ENTITY_ID.to_owned()),
            assertion_issuer: IDP_ENTITY_ID.to_owned(),
            name_id: ALICE.to_owned(),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".to_owned(),
            confirmation_method: "urn:oasis:names:tc:SAML:2.0:cm:bearer".to_owned(),
            issue_instant: now - Duration::seconds(5),
            not_before: now - Duration::minutes(1),
            not_on_or_after: now + Duration::minutes(5),
            confirmation_not_on_or_after: now + Duration::minutes(5),
            extra_conditions: String::new(),
            attributes: r#"<saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue>tracklayer-editors</saml:AttributeValue><saml:AttributeValue>staff</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>"#.to_owned(),
            assertion_key: Some(idp_key()),
            response_key: None,
            algorithms: Algorithms::default(),
            assertion_reference: None,
        }
    }

    pub fn unsolicited() -> Self {
        Self {
            in_response_to: None,
            ..Self::valid()
        }
    }

    fn in_response_to_attr(&self) -> String {
        self.in_response_to
            .as_ref()
            .map(|id| format!(r#" InResponseTo="{id}""#))
            .unwrap_or_default()
    }

    /// The unsigned assertion, with a signature template after its Issuer when it is signed.
    pub fn assertion(&self) -> String {
        let template = self.assertion_key.map(|key| {
            let uri = self
                .assertion_reference
                .clone()
                .unwrap_or_else(|| format!("#{}", self.assertion_id));
            signature_template(&uri, &self.algorithms, &key.certificate_base64())
        });
        format!(
            r#"<saml:Assertion ID="{id}" Version="2.0" IssueInstant="{issued}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID><saml:SubjectConfirmation Method="{method}"><saml:SubjectConfirmationData{irt} NotOnOrAfter="{scd_until}" Recipient="{recipient}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{until}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>{extra}</saml:Conditions><saml:AuthnStatement AuthnInstant="{issued}" SessionIndex="_session_1"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>{attributes}</saml:Assertion>"#,
            id = self.assertion_id,
            issued = stamp(self.issue_instant),
            issuer = self.assertion_issuer,
            signature = template.unwrap_or_default(),
            name_id = self.name_id,
            method = self.confirmation_method,
            irt = self.in_response_to_attr(),
            scd_until = stamp(self.confirmation_not_on_or_after),
            recipient = self.recipient,
            nb = stamp(self.not_before),
            until = stamp(self.not_on_or_after),
            audience = self.audience,
            extra = self.extra_conditions,
            attributes = self.attributes,
        )
    }

    /// The response XML around `assertion`, with a signature template for the Response when
    /// it is signed (unsigned templates are filled by [`Response::xml`]).
    pub fn envelope(&self, assertion: &str) -> String {
        let issuer = self
            .response_issuer
            .as_ref()
            .map(|i| format!("<saml:Issuer>{i}</saml:Issuer>"))
            .unwrap_or_default();
        let template = self.response_key.map(|key| {
            signature_template(
                &format!("#{}", self.response_id),
                &Algorithms::default(),
                &key.certificate_base64(),
            )
        });
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{issued}" Destination="{destination}"{irt}>{issuer}{signature}<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>{assertion}</samlp:Response>"#,
            id = self.response_id,
            issued = stamp(self.issue_instant),
            destination = self.destination,
            irt = self.in_response_to_attr(),
            signature = template.unwrap_or_default(),
            status = self.status,
        )
    }

    /// The signed response XML: the assertion is signed first (its template is then the only
    /// one), then the Response's template is added and signed.
    pub fn xml(&self) -> String {
        let mut xml = Response {
            response_key: None,
            ..self.clone()
        }
        .envelope(&self.assertion());
        if let Some(key) = self.assertion_key {
            xml = key.sign(&xml);
        }
        if let Some(key) = self.response_key {
            let signed_assertion = between(&xml, "<saml:Assertion", "</saml:Assertion>");
            xml = key.sign(&self.envelope(&signed_assertion));
        }
        xml
    }

    pub fn encoded(&self) -> String {
        encode(&self.xml())
    }
}

pub fn encode(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// The substring of `xml` from the first `start` to the end of the first `end` after it.
pub fn between(xml: &str, start: &str, end: &str) -> String {
    let from = xml.find(start).expect("start present");
    let to = xml[from..].find(end).expect("end present") + from + end.len();
    xml[from..to].to_owned()
}
