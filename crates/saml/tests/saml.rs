//! The strict SAML profile as a specification: one valid response per flow, then one refused
//! response per rule and per known bypass class (goxmldsig, ruby-saml, the XSW1–XSW8 wrapping
//! variants of Somorovsky et al.); each bypass test names the public advisory it covers.
//!
//! One parser (uppsala) feeds both the XML-DSig verification and the reading of the assertion,
//! so ruby-saml's REXML/Nokogiri parser differentials (CVE-2025-25291, CVE-2025-25292) have no
//! second parse to exploit; what remains of them is tested below: the DOCTYPE vector and every
//! way of putting a second Assertion where a reader could pick it.

use bergshamra::core::algorithm;
use time::Duration;
use tracklayer_saml::{
    verify_response, CertificateError, Expected, PinnedCertificate, PinnedCertificates, SamlError,
    VerifiedAssertion, CLOCK_SKEW, MAX_RESPONSE_BYTES,
};

use tracklayer_saml::testkit::*;

fn verify(encoded: &str) -> Result<VerifiedAssertion, SamlError> {
    verify_response(encoded, &sp(), &idp(), &answering(), now())
}

fn verify_xml(xml: &str) -> Result<VerifiedAssertion, SamlError> {
    verify(&encode(xml))
}

fn refused(response: Response) -> SamlError {
    verify(&response.encoded()).expect_err("the response must be refused")
}

// --- accepted ---------------------------------------------------------------------------------

#[test]
fn accepts_a_signed_sp_initiated_response_and_reads_only_the_assertion() {
    let verified = verify(&Response::valid().encoded()).expect("valid response");
    assert_eq!(verified.assertion_id, "_assert_91e2d4b8");
    assert_eq!(verified.name_id, ALICE);
    assert_eq!(verified.session_index.as_deref(), Some("_session_1"));
    assert_eq!(verified.attributes.len(), 1);
    assert_eq!(verified.attributes[0].name, "groups");
    assert_eq!(
        verified.attributes[0].values,
        ["tracklayer-editors", "staff"]
    );
    assert_eq!(
        verified.replay_until,
        now() + Duration::minutes(5) + CLOCK_SKEW
    );
}

#[test]
fn accepts_an_idp_initiated_response_without_in_response_to() {
    let verified = verify_response(
        &Response::unsolicited().encoded(),
        &sp(),
        &idp(),
        &Expected::Unsolicited,
        now(),
    )
    .expect("valid unsolicited response");
    assert_eq!(verified.name_id, ALICE);
}

#[test]
fn accepts_either_of_two_pinned_certificates_during_rotation() {
    let response = Response {
        assertion_key: Some(next_idp_key()),
        ..Response::valid()
    };
    let rotating = idp_trusting(&[idp_key(), next_idp_key()]);
    let verified = verify_response(&response.encoded(), &sp(), &rotating, &answering(), now());
    assert!(verified.is_ok());
    assert_eq!(
        verify(&response.encoded()).unwrap_err(),
        SamlError::Signature,
        "the successor's signature is refused while only the current key is pinned"
    );
}

#[test]
fn accepts_a_response_signed_at_both_response_and_assertion_level() {
    let response = Response {
        response_key: Some(idp_key()),
        ..Response::valid()
    };
    assert!(verify(&response.encoded()).is_ok());
}

#[test]
fn accepts_base64_wrapped_in_lines_of_76_characters() {
    let encoded = Response::valid().encoded();
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).expect("ascii"))
        .collect();
    assert!(verify(&wrapped.join("\r\n")).is_ok());
}

#[test]
fn accepts_an_idp_clock_up_to_three_minutes_off_either_way() {
    let ahead = Response {
        issue_instant: now() + Duration::minutes(2),
        not_before: now() + Duration::minutes(2),
        ..Response::valid()
    };
    assert!(verify(&ahead.encoded()).is_ok());
    let behind = Response {
        not_on_or_after: now() - Duration::minutes(2),
        confirmation_not_on_or_after: now() - Duration::minutes(2),
        ..Response::valid()
    };
    assert!(verify(&behind.encoded()).is_ok());
}

// --- transport: size, base64, XML ---------------------------------------------------------------

#[test]
fn refuses_a_saml_response_over_256_kib() {
    let response = Response {
        attributes: format!(
            r#"<saml:AttributeStatement><saml:Attribute Name="pad"><saml:AttributeValue>{}</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>"#,
            "a".repeat(MAX_RESPONSE_BYTES)
        ),
        assertion_key: None,
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::TooLarge);
}

#[test]
fn refuses_base64_outside_the_standard_alphabet_or_without_canonical_padding() {
    let encoded = Response::valid().encoded();
    let url_safe = encoded.replace('+', "-").replace('/', "_");
    assert_ne!(url_safe, encoded, "the fixture has + or / to replace");
    for bad in [
        format!("{encoded}!"),
        format!(" {encoded}"),
        url_safe,
        encoded.trim_end_matches('=').to_owned() + if encoded.ends_with('=') { "" } else { "=" },
        format!("{}%3D", &encoded[..encoded.len() - 1]),
    ] {
        assert_eq!(verify(&bad).unwrap_err(), SamlError::Encoding);
    }
}

#[test]
fn refuses_a_response_that_is_not_utf8() {
    use base64::Engine as _;
    let bytes = [
        b"<samlp:Response>".as_slice(),
        &[0xff, 0xfe],
        b"</samlp:Response>",
    ]
    .concat();
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    assert_eq!(verify(&encoded).unwrap_err(), SamlError::Encoding);
}

/// ruby-saml CVE-2025-25291/25292 (parser differentials: REXML and Nokogiri read one response as
/// two different documents; DTD declarations are a classic way to make parsers disagree). No
/// DOCTYPE is ever parsed here.
#[test]
fn refuses_a_doctype_with_entities_before_parsing_it() {
    let xml = Response::valid().xml();
    let with_doctype = format!(
        "<!DOCTYPE samlp:Response [<!ENTITY user \"{ALICE}\">]>{}",
        xml.replace(ALICE, "&user;")
    );
    assert_eq!(verify_xml(&with_doctype).unwrap_err(), SamlError::Doctype);
}

#[test]
fn refuses_xml_that_is_not_well_formed() {
    let xml = Response::valid().xml();
    assert_eq!(
        verify_xml(&xml[..xml.len() - 3]).unwrap_err(),
        SamlError::MalformedXml
    );
}

// --- signature profile --------------------------------------------------------------------------

#[test]
fn refuses_an_unsigned_assertion() {
    let response = Response {
        assertion_key: None,
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Signature);
}

#[test]
fn refuses_an_unsigned_assertion_inside_a_signed_response() {
    let response = Response {
        assertion_key: None,
        response_key: Some(idp_key()),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Signature);
}

#[test]
fn refuses_a_signed_assertion_whose_name_id_was_changed_after_signing() {
    let xml = Response::valid()
        .xml()
        .replace(ALICE, "mallory@example.com");
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Signature);
}

/// goxmldsig CVE-2020-7711 (a nil dereference): a `ds:Signature` without its
/// `SignedInfo` crashed the verifier. Here its shape is checked before anything reads it, so a
/// signature that lost its `SignedInfo`, an empty one, or an empty `SignedInfo` is a structure
/// error, never a panic.
#[test]
fn refuses_a_signature_without_signed_info_cleanly() {
    let xml = Response::valid().xml();
    let signature = between(&xml, "<ds:Signature", "</ds:Signature>");
    let signed_info = between(&xml, "<ds:SignedInfo", "</ds:SignedInfo>");
    for broken in [
        xml.replace(&signed_info, ""),
        xml.replace(&signed_info, "<ds:SignedInfo/>"),
        xml.replace(
            &signature,
            r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>"#,
        ),
    ] {
        assert_ne!(broken, xml, "the fixture was changed");
        assert_eq!(verify_xml(&broken).unwrap_err(), SamlError::Structure);
    }
}

#[test]
fn refuses_a_signature_removed_from_its_signed_info_value() {
    let xml = Response::valid().xml();
    let value = between(&xml, "<ds:SignatureValue>", "</ds:SignatureValue>");
    let xml = xml.replace(&value, "<ds:SignatureValue></ds:SignatureValue>");
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Signature);
}

#[test]
fn refuses_a_response_signed_by_a_foreign_key_whose_certificate_is_embedded() {
    let response = Response {
        assertion_key: Some(attacker_key()),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Signature);
}

#[test]
fn refuses_a_foreign_signature_even_when_keyinfo_names_the_pinned_certificate() {
    let xml = Response {
        assertion_key: Some(attacker_key()),
        ..Response::valid()
    }
    .xml()
    .replace(
        &attacker_key().certificate_base64(),
        &idp_key().certificate_base64(),
    );
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Signature);
}

#[test]
fn refuses_rsa_sha1_signatures() {
    let response = Response {
        algorithms: Algorithms {
            signature: algorithm::RSA_SHA1,
            ..Algorithms::default()
        },
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Algorithm);
}

#[test]
fn refuses_sha1_digests() {
    let response = Response {
        algorithms: Algorithms {
            digest: algorithm::SHA1,
            ..Algorithms::default()
        },
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Algorithm);
}

#[test]
fn refuses_canonicalization_other_than_exclusive_without_comments() {
    for c14n in [algorithm::C14N, algorithm::EXC_C14N_WITH_COMMENTS] {
        let response = Response {
            algorithms: Algorithms {
                c14n,
                ..Algorithms::default()
            },
            ..Response::valid()
        };
        assert_eq!(refused(response), SamlError::Algorithm);
    }
}

#[test]
fn refuses_transforms_other_than_enveloped_and_exclusive_c14n() {
    let response = Response {
        algorithms: Algorithms {
            transforms: vec![
                algorithm::ENVELOPED_SIGNATURE,
                algorithm::EXC_C14N_WITH_COMMENTS,
            ],
            ..Algorithms::default()
        },
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Algorithm);
}

/// goxmldsig CVE-2020-15216 (signature validation bypass): a signature accepted for another
/// element than the one read. The reference must be `#` + the ID of the signature's parent.
#[test]
fn refuses_a_reference_to_the_whole_document_instead_of_the_assertion() {
    let response = Response {
        assertion_reference: Some(String::new()),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Signature);
}

/// goxmldsig CVE-2020-15216, as above: a valid signature of the Response is not one of the
/// Assertion it sits in.
#[test]
fn refuses_an_assertion_signature_whose_reference_names_the_response() {
    let response = Response {
        assertion_reference: Some("#_resp_5b0f2c7a".to_owned()),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Signature);
}

/// goxmldsig CVE-2020-15216, as above: a signature moved away from the element it covers.
#[test]
fn refuses_a_signature_outside_the_response_and_the_assertion() {
    let xml = Response::valid().xml();
    let signature = between(&xml, "<ds:Signature", "</ds:Signature>");
    let moved = xml.replace(&signature, "").replace(
        "<samlp:Status>",
        &format!("<samlp:Extensions>{signature}</samlp:Extensions><samlp:Status>"),
    );
    assert_eq!(verify_xml(&moved).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_a_second_digest_value_injected_into_the_signed_reference() {
    // ruby-saml CVE-2024-45409: the digest compared came from another place than the one
    // the signature covers.
    let xml = Response::valid().xml();
    let digest = between(&xml, "<ds:DigestValue>", "</ds:DigestValue>");
    let xml = xml.replace(
        &digest,
        &format!("{digest}<ds:DigestValue>AAAA</ds:DigestValue>"),
    );
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_a_signature_carrying_an_object() {
    let xml = Response::valid()
        .xml()
        .replace("</ds:KeyInfo>", "</ds:KeyInfo><ds:Object><x/></ds:Object>");
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

/// goxmldsig CVE-2020-15216 and ruby-saml CVE-2024-45409-like ID confusion: a decoy with the
/// signed Assertion's ID, ahead of it, so that an ID lookup may resolve to the decoy.
#[test]
fn refuses_duplicate_ids() {
    let xml = Response::valid().xml();
    let assertion = between(&xml, "<saml:Assertion", "</saml:Assertion>");
    let decoy = format!(
        r#"<samlp:Extensions><Decoy xmlns="urn:evil" ID="_assert_91e2d4b8">{ALICE}</Decoy></samlp:Extensions>"#
    );
    let xml = xml.replace(&assertion, &format!("{decoy}{assertion}"));
    assert_eq!(
        verify_xml(&xml).unwrap_err(),
        SamlError::Signature,
        "bergshamra refuses a document with an ID twice"
    );
}

// --- one assertion, read where the signature points (XSW1–XSW8) ---------------------------------
// Signature wrapping: ruby-saml CVE-2016-5697 and CVE-2024-45409-like XSW, where the signed
// element verifies and another one is read; each variant of Somorovsky et al. below.

fn forged(assertion: &str) -> String {
    assertion
        .replace(ALICE, "mallory@evil.test")
        .replace("_assert_91e2d4b8", "_evil")
}

struct Parts {
    xml: String,
    assertion: String,
    signature: String,
    unsigned: String,
}

fn parts(response: Response) -> Parts {
    let xml = response.xml();
    let assertion = between(&xml, "<saml:Assertion", "</saml:Assertion>");
    let signature = between(&assertion, "<ds:Signature", "</ds:Signature>");
    let unsigned = assertion.replace(&signature, "");
    Parts {
        xml,
        assertion,
        signature,
        unsigned,
    }
}

#[test]
fn refuses_xsw1_a_forged_response_wrapping_the_signed_one_in_its_signature_object() {
    let signed = Response {
        response_key: Some(idp_key()),
        ..Response::valid()
    }
    .xml();
    let response_signature = between(&signed, "<ds:Signature", "</ds:Signature>");
    let wrapped_signature = response_signature.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{signed}</ds:Object></ds:Signature>"),
    );
    let forged_response = forged(&signed.replace(&response_signature, &wrapped_signature))
        .replace("_resp_5b0f2c7a\" Version", "_evil_resp\" Version");
    assert_eq!(
        verify_xml(&forged_response).unwrap_err(),
        SamlError::Structure
    );
}

#[test]
fn refuses_xsw2_a_forged_response_with_the_signed_one_detached_before_its_signature() {
    let signed = Response {
        response_key: Some(idp_key()),
        ..Response::valid()
    }
    .xml();
    let response_signature = between(&signed, "<ds:Signature", "</ds:Signature>");
    let forged_response = forged(&signed.replace(
        &response_signature,
        &format!("{signed}{response_signature}"),
    ));
    assert_eq!(
        verify_xml(&forged_response).unwrap_err(),
        SamlError::Structure
    );
}

#[test]
fn refuses_xsw3_a_forged_assertion_placed_before_the_signed_one() {
    let p = parts(Response::valid());
    let xml = p.xml.replace(
        &p.assertion,
        &format!("{}{}", forged(&p.unsigned), p.assertion),
    );
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_xsw4_the_signed_assertion_moved_inside_a_forged_one() {
    let p = parts(Response::valid());
    let forged_assertion = forged(&p.unsigned).replace(
        "</saml:Assertion>",
        &format!("{}</saml:Assertion>", p.assertion),
    );
    let xml = p.xml.replace(&p.assertion, &forged_assertion);
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_xsw5_a_forged_assertion_carrying_the_signature_with_the_original_moved_after_it() {
    let p = parts(Response::valid());
    let xml = p.xml.replace(
        &p.assertion,
        &format!("{}{}", forged(&p.assertion), p.unsigned),
    );
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_xsw6_the_signed_assertion_inside_the_signature_object_of_a_forged_one() {
    let p = parts(Response::valid());
    let wrapped = p.signature.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{}</ds:Object></ds:Signature>", p.assertion),
    );
    let forged_assertion =
        forged(&p.unsigned).replacen("<saml:Subject>", &format!("{wrapped}<saml:Subject>"), 1);
    let xml = p.xml.replace(&p.assertion, &forged_assertion);
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_xsw7_the_signed_assertion_hidden_in_extensions_before_a_forged_one() {
    let p = parts(Response::valid());
    let xml = p.xml.replace(&p.assertion, &forged(&p.unsigned)).replace(
        "<samlp:Status>",
        &format!(
            "<samlp:Extensions>{}</samlp:Extensions><samlp:Status>",
            p.assertion
        ),
    );
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_xsw8_the_unsigned_original_inside_the_signature_object_of_a_forged_one() {
    let p = parts(Response::valid());
    let wrapped = p.signature.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{}</ds:Object></ds:Signature>", p.unsigned),
    );
    let forged_assertion =
        forged(&p.unsigned).replacen("<saml:Subject>", &format!("{wrapped}<saml:Subject>"), 1);
    let xml = p.xml.replace(&p.assertion, &forged_assertion);
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_two_assertions_even_when_both_are_signed() {
    let p = parts(Response::valid());
    let second = parts(Response {
        assertion_id: "_assert_second".to_owned(),
        ..Response::valid()
    })
    .assertion;
    let xml = p
        .xml
        .replace(&p.assertion, &format!("{}{second}", p.assertion));
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

#[test]
fn refuses_an_encrypted_assertion() {
    let xml = Response::valid().xml().replace(
        "</samlp:Response>",
        "<saml:EncryptedAssertion></saml:EncryptedAssertion></samlp:Response>",
    );
    assert_eq!(verify_xml(&xml).unwrap_err(), SamlError::Structure);
}

/// The 2018 comment-injection class (ruby-saml CVE-2017-11428, python-saml CVE-2017-11427):
/// exclusive C14N drops the comment, so the signature covers the joined text, which is what is
/// read.
#[test]
fn reads_a_comment_injected_name_id_whole_never_its_first_text_node() {
    let response = Response {
        name_id: format!("{ALICE}<!---->.evil.test"),
        ..Response::valid()
    };
    let verified = verify(&response.encoded()).expect("the signature covers the joined text");
    assert_eq!(verified.name_id, "alice@example.com.evil.test");
}

#[test]
fn refuses_a_name_id_with_markup_inside() {
    let response = Response {
        name_id: format!("{ALICE}<b>x</b>"),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Structure);
}

// --- what the assertion says --------------------------------------------------------------------

#[test]
fn refuses_an_assertion_from_another_issuer() {
    let response = Response {
        assertion_issuer: "https://evil.test/idp".to_owned(),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Issuer);
}

#[test]
fn refuses_a_response_from_another_issuer() {
    let response = Response {
        response_issuer: Some("https://evil.test/idp".to_owned()),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Issuer);
}

#[test]
fn refuses_a_response_whose_status_is_not_success() {
    let response = Response {
        status: "urn:oasis:names:tc:SAML:2.0:status:Requester".to_owned(),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Status);
}

#[test]
fn refuses_an_assertion_for_another_audience() {
    let response = Response {
        audience: "https://other-sp.example.test".to_owned(),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Audience);
}

#[test]
fn refuses_a_response_for_another_destination() {
    let response = Response {
        destination: "https://other-sp.example.test/acs".to_owned(),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Recipient);
}

#[test]
fn refuses_a_bearer_confirmation_for_another_recipient() {
    let response = Response {
        recipient: "https://other-sp.example.test/acs".to_owned(),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Recipient);
}

#[test]
fn refuses_an_assertion_without_a_bearer_confirmation() {
    let response = Response {
        confirmation_method: "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key".to_owned(),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::SubjectConfirmation);
}

#[test]
fn refuses_an_assertion_whose_conditions_expired_beyond_the_skew() {
    let response = Response {
        not_on_or_after: now() - CLOCK_SKEW - Duration::seconds(1),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Expired);
}

#[test]
fn refuses_a_bearer_confirmation_that_expired_beyond_the_skew() {
    let response = Response {
        confirmation_not_on_or_after: now() - CLOCK_SKEW,
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::Expired);
}

#[test]
fn refuses_an_assertion_not_valid_before_more_than_the_skew_from_now() {
    let response = Response {
        not_before: now() + CLOCK_SKEW + Duration::seconds(1),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::NotYetValid);
}

#[test]
fn refuses_an_assertion_issued_in_the_future() {
    let response = Response {
        issue_instant: now() + CLOCK_SKEW + Duration::seconds(1),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::NotYetValid);
}

#[test]
fn refuses_a_response_to_another_request() {
    let response = Response {
        in_response_to: Some("_req_someone_else".to_owned()),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::InResponseTo);
}

#[test]
fn refuses_an_unsolicited_response_where_an_answer_is_expected() {
    assert_eq!(refused(Response::unsolicited()), SamlError::InResponseTo);
}

#[test]
fn refuses_a_solicited_response_on_the_idp_initiated_path() {
    let result = verify_response(
        &Response::valid().encoded(),
        &sp(),
        &idp(),
        &Expected::Unsolicited,
        now(),
    );
    assert_eq!(result.unwrap_err(), SamlError::InResponseTo);
}

#[test]
fn refuses_an_assertion_with_a_condition_it_does_not_understand() {
    let response = Response {
        extra_conditions: r#"<saml:Condition xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="ext:Delegation"/>"#.to_owned(),
        ..Response::valid()
    };
    assert_eq!(refused(response), SamlError::UnknownCondition);
}

#[test]
fn a_replayed_response_verifies_again_so_the_replay_cache_must_refuse_it_until_replay_until() {
    let encoded = Response::valid().encoded();
    let first = verify(&encoded).expect("first use");
    let second = verify(&encoded).expect("the verifier holds no state");
    assert_eq!(first.assertion_id, second.assertion_id);
    assert!(first.replay_until > now() + Duration::minutes(5));
}

// --- pinned certificates ------------------------------------------------------------------------

#[test]
fn pins_a_certificate_given_as_pem_or_as_bare_base64() {
    let b64 = idp_key().certificate_base64();
    let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
    assert_eq!(
        PinnedCertificate::parse(&pem),
        PinnedCertificate::parse(&b64)
    );
    assert_eq!(
        PinnedCertificate::parse(&b64).expect("pins").to_base64(),
        b64
    );
}

#[test]
fn refuses_to_pin_garbage_a_short_rsa_key_or_more_than_two_certificates() {
    assert_eq!(
        PinnedCertificate::parse("not a certificate"),
        Err(CertificateError::NotACertificate)
    );
    assert_eq!(
        PinnedCertificate::from_der(weak_certificate_der()),
        Err(CertificateError::KeyTooShort)
    );
    let three = vec![
        idp_key().pinned(),
        next_idp_key().pinned(),
        attacker_key().pinned(),
    ];
    assert_eq!(PinnedCertificates::new(three), Err(CertificateError::Count));
    assert_eq!(
        PinnedCertificates::new(vec![]),
        Err(CertificateError::Count)
    );
}

// --- what the service provider sends and publishes ----------------------------------------------

#[test]
fn the_redirect_binding_carries_a_deflated_authn_request_for_our_acs() {
    use base64::Engine as _;
    use std::io::Read as _;
    let url = tracklayer_saml::authn_request_redirect(
        &sp(),
        "https://idp.example.test/sso?tenant=7",
        REQUEST_ID,
        now(),
        Some("/destinations"),
    );
    let query = url
        .strip_prefix("https://idp.example.test/sso?tenant=7&")
        .expect("appended to the IdP's own query");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        pairs[1],
        ("RelayState".to_owned(), "/destinations".to_owned())
    );
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(&pairs[0].1)
        .expect("base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .read_to_string(&mut xml)
        .expect("raw deflate");
    assert!(xml.contains(&format!(r#"ID="{REQUEST_ID}""#)));
    assert!(xml.contains(&format!(r#"AssertionConsumerServiceURL="{ACS_URL}""#)));
    assert!(xml.contains(&format!("<saml:Issuer>{SP_ENTITY_ID}</saml:Issuer>")));
}

#[test]
fn sp_metadata_names_our_entity_id_and_acs_url() {
    let metadata = tracklayer_saml::sp_metadata(&sp());
    assert!(metadata.contains(&format!(r#"entityID="{SP_ENTITY_ID}""#)));
    assert!(metadata.contains(&format!(r#"Location="{ACS_URL}""#)));
    assert!(metadata.contains(r#"WantAssertionsSigned="true""#));
}
