//! Microsoft Advertising UET Conversions API (CAPI) `userData`.
//!
//! Source: Microsoft Advertising, "Conversions API (CAPI) Guide", user data parameters
//! (<https://learn.microsoft.com/en-us/advertising/guides/uet-conversion-api-integration>), as
//! implemented by the integrations that cite it (Stape's Microsoft UET Conversion API tag,
//! `stape-io/microsoft-capi-tag` `template.js` `normalizeUserData`/`hashDataIfNeeded`, and
//! walkerOS's Bing UET CAPI destination, `hash.ts`). SHA-256 hashed, 64 lowercase hex digits:
//! * `em`: trimmed and lowercased, the dots of the local part removed and anything after a
//!   `+` in it ("Microsoft-specific email normalization: … remove dots from the user portion,
//!   strip `+alias`"), on every domain — `Al.ice+Apple@Example.Com` → `alice@example.com`.
//! * `ph`: "single item in E.164 format": country code and number with the `+`, spaces,
//!   dashes and parentheses removed — `+1 (425) 555-1234` → `+14255551234`.
//! * `externalId`: the advertiser's user id, trimmed, case kept, hashed so that no raw
//!   identifier leaves (Stape hashes it as it does `em` and `ph`).
//!
//! These are, rule for rule, Reddit's (`super::reddit`: local part folded on every domain,
//! E.164 with `+`, external id trimmed), so the table is Reddit's. Names, address fields,
//! gender and birth date are not CAPI `userData` keys: not sent.

use super::{reddit, Field, Rule};

/// Microsoft's rule table.
pub(crate) fn rule(field: Field) -> Rule {
    reddit::rule(field)
}

#[cfg(test)]
mod tests {
    use super::super::{prepare, sha256_hex, Hints, Prepared, Profile, Rejected};
    use super::*;

    fn hashed(field: Field, raw: &str) -> Result<Prepared, Rejected> {
        prepare(Profile::Microsoft, field, raw, Hints::default())
    }

    #[test]
    fn microsoft_email_loses_dots_and_plus_alias_of_the_local_part_on_every_domain() {
        let want = Ok(Prepared::Hashed(sha256_hex("alice@example.com")));
        assert_eq!(hashed(Field::Email, "alice@example.com"), want);
        assert_eq!(hashed(Field::Email, " Al.ice+Apple@Example.Com "), want);
        assert!(hashed(Field::Email, "no-at-sign").is_err());
    }

    #[test]
    fn microsoft_phone_is_e164_with_the_plus() {
        let want = Ok(Prepared::Hashed(sha256_hex("+14255551234")));
        assert_eq!(hashed(Field::Phone, "+1 (425) 555-1234"), want);
        assert_eq!(hashed(Field::Phone, "+1-425-555-1234"), want);
    }

    #[test]
    fn microsoft_external_id_is_hashed_as_given() {
        let want = Ok(Prepared::Hashed(sha256_hex("User-42")));
        assert_eq!(hashed(Field::ExternalId, " User-42 "), want);
    }

    #[test]
    fn microsoft_normalizes_every_field_as_reddit_does() {
        for field in Field::ALL {
            for raw in [
                " Al.ice+Apple@Example.Com ",
                "+1 (425) 555-1234",
                "Berlin",
                "x",
            ] {
                let reddit = prepare(Profile::Reddit, field, raw, Hints::default());
                assert_eq!(hashed(field, raw), reddit, "{field:?} {raw}");
            }
        }
    }
}
