//! What the service provider sends and publishes: the HTTP-Redirect `AuthnRequest` and the SP
//! metadata document.

use std::io::Write as _;

use base64::Engine as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ServiceProvider;

/// Escapes text for an XML attribute or element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The `AuthnRequest` XML asking `sso_url` to authenticate a user for `sp`, answering to our
/// ACS with the HTTP-POST binding.
pub fn authn_request_xml(
    sp: &ServiceProvider,
    sso_url: &str,
    request_id: &str,
    issued: OffsetDateTime,
) -> String {
    let instant = issued
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{issuer}</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/></samlp:AuthnRequest>"#,
        id = escape(request_id),
        dest = escape(sso_url),
        acs = escape(&sp.acs_url),
        issuer = escape(&sp.entity_id),
    )
}

/// The HTTP-Redirect binding URL: the request raw-DEFLATEd, base64-encoded and URL-encoded as
/// `SAMLRequest` on `sso_url` (after its own query, if it has one), with `RelayState` if any.
pub fn authn_request_redirect(
    sp: &ServiceProvider,
    sso_url: &str,
    request_id: &str,
    issued: OffsetDateTime,
    relay_state: Option<&str>,
) -> String {
    let xml = authn_request_xml(sp, sso_url, request_id, issued);
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let deflated = deflater
        .write_all(xml.as_bytes())
        .and_then(|()| deflater.finish())
        .unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(deflated);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("SAMLRequest", &encoded);
    if let Some(relay) = relay_state {
        query.append_pair("RelayState", relay);
    }
    let separator = if sso_url.contains('?') { '&' } else { '?' };
    format!("{sso_url}{separator}{}", query.finish())
}

/// The SP metadata document: our entity id and our ACS (HTTP-POST binding); assertions must
/// be signed.
pub fn sp_metadata(sp: &ServiceProvider) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = escape(&sp.entity_id),
        acs = escape(&sp.acs_url),
    )
}
