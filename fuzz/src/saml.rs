//! The ACS input: a `SAMLResponse` form value, verified under TrackLayer's strict profile.
//!
//! Input: raw XML, base64-encoded here as the HTTP-POST binding carries it, when it starts with
//! `<`; anything else is the form value as is (the base64 and size checks). The seeds
//! (fuzz/seeds/saml_response) were signed by tests/saml/idp.py (signxml) with the key of
//! `saml_idp.crt`, whose private half was thrown away: two valid responses (IdP- and
//! SP-initiated) and the attacks of the end-to-end suite.
//!
//! Properties: no input panics; and since no mutation can sign, whatever verifies is what the
//! IdP signed: one of the seeds' assertion ids with its own NameID, read whole.

use base64::Engine as _;
use time::macros::datetime;
use time::OffsetDateTime;
use tracklayer_saml::{
    verify_response, Expected, IdentityProvider, PinnedCertificate, PinnedCertificates,
    ServiceProvider,
};

const IDP_CERTIFICATE: &str = include_str!("saml_idp.crt");
/// Half a minute after the seeds were signed: they verify at this time.
const SIGNED_AT: OffsetDateTime = datetime!(2026-12-04 23:15:30 UTC);
/// The request the SP-initiated seed answers.
const REQUEST_ID: &str = "_req_fuzz";
/// What the IdP signed: (assertion id, NameID) of the two valid seeds.
const SIGNED: [(&str, &str); 2] = [
    ("_ab50019ab0e514a88bec946ce666eed5c", "ana@example.com"),
    ("_ab2c63abefcb542208067625236588312", "bo@example.com"),
];

fn parties() -> (ServiceProvider, IdentityProvider) {
    let sp = ServiceProvider {
        entity_id: "https://eu.api.tracklayer.io/sso/saml/ws_eu_fuzz/metadata".into(),
        acs_url: "https://eu.api.tracklayer.io/sso/saml/ws_eu_fuzz/acs".into(),
    };
    let pinned = PinnedCertificate::parse(IDP_CERTIFICATE).expect("the seeds' certificate");
    let idp = IdentityProvider {
        entity_id: "https://idp.example.test/metadata".into(),
        certificates: PinnedCertificates::new(vec![pinned]).expect("one pinned certificate"),
    };
    (sp, idp)
}

pub fn check(data: &[u8]) {
    let form_value = if data.first() == Some(&b'<') {
        base64::engine::general_purpose::STANDARD.encode(data)
    } else {
        String::from_utf8_lossy(data).into_owned()
    };
    let (sp, idp) = parties();
    for expected in [
        Expected::Unsolicited,
        Expected::Answer {
            request_id: REQUEST_ID.into(),
        },
    ] {
        let Ok(verified) = verify_response(&form_value, &sp, &idp, &expected, SIGNED_AT) else {
            continue;
        };
        let read = (verified.assertion_id.as_str(), verified.name_id.as_str());
        assert!(
            SIGNED.iter().any(|signed| *signed == read),
            "an assertion the IdP never signed verified"
        );
        assert!(verified.replay_until > SIGNED_AT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_valid_seeds_verify_and_the_attacks_do_not() {
        let (sp, idp) = parties();
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/saml_response/");
        for (seed, expected, ok) in [
            ("idp_initiated.xml", Expected::Unsolicited, true),
            (
                "sp_initiated.xml",
                Expected::Answer {
                    request_id: REQUEST_ID.into(),
                },
                true,
            ),
            ("altered.xml", Expected::Unsolicited, false),
            ("foreign_key.xml", Expected::Unsolicited, false),
            ("wrong_audience.xml", Expected::Unsolicited, false),
            ("expired.xml", Expected::Unsolicited, false),
            ("unsigned.xml", Expected::Unsolicited, false),
        ] {
            let xml = std::fs::read(format!("{seeds}{seed}")).unwrap();
            let value = base64::engine::general_purpose::STANDARD.encode(&xml);
            let result = verify_response(&value, &sp, &idp, &expected, SIGNED_AT);
            assert_eq!(result.is_ok(), ok, "{seed}: {result:?}");
            check(&xml);
        }
    }
}
