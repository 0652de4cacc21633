//! Reddit Conversions API (v2.0) `user`.
//!
//! Source: Reddit Ads API, Conversions API → Direct Integration, "Match keys" and their
//! hashing rules (<https://ads-api.reddit.com/docs/v2/#tag/Conversions>; the same rules as
//! quoted in Segment's Reddit Conversions API destination, `segmentio/action-destinations`,
//! `reddit-conversions-api/V3-API-REFERENCE.md`, which reuses its v2.0 hashing for v3). Every
//! identifier is SHA-256 hashed (64 lowercase hex digits); Reddit's own examples are this
//! profile's vectors (`vectors.json`):
//! * `email`: "lowercase; remove dots in local part; remove anything after `+`" —
//!   `alice@example.com` and `Al.ice+Apple@Example.Com` → `ff8d9819…` ([`email`]).
//! * `phone_number`: "include country + area code; remove extension; remove all non-numeric;
//!   must start with `+`" — `+15554441234` → `e5b124c5…` (E.164 with the `+`, as Google's
//!   rule: [`google`]'s `phone`).
//! * `external_id`: advertiser-assigned, sent as given: trimmed only, case kept.
//!
//! Names, address fields, gender and birth date are not Reddit match keys: not sent.

use super::common::{email_trim_lower, fold_local_part, Outcome};
use super::{google, tiktok, Field, Hints, Rule};

/// Reddit's rule table.
pub(crate) fn rule(field: Field) -> Rule {
    match field {
        Field::Email => Rule::Hash(email),
        Field::Phone => Rule::Hash(google::phone),
        Field::ExternalId => Rule::Hash(tiktok::external_id),
        Field::FirstName
        | Field::LastName
        | Field::City
        | Field::State
        | Field::Zip
        | Field::Country
        | Field::Gender
        | Field::DateOfBirth => Rule::Unsupported,
    }
}

/// `email`: trimmed, lowercased, checked, then the dots and `+suffix` of the local part
/// removed, for every domain.
fn email(raw: &str, _: Hints<'_>) -> Outcome {
    fold_local_part(&email_trim_lower(raw)?)
}

#[cfg(test)]
mod tests {
    use super::super::{prepare, sha256_hex, Prepared, Profile, Rejected, NOT_SUPPORTED};
    use super::*;

    fn hashed(field: Field, raw: &str) -> Result<Prepared, Rejected> {
        prepare(Profile::Reddit, field, raw, Hints::default())
    }

    #[test]
    fn reddit_email_loses_dots_and_plus_suffix_on_every_domain() {
        let want = Ok(Prepared::Hashed(
            "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976".into(),
        ));
        assert_eq!(hashed(Field::Email, "alice@example.com"), want);
        assert_eq!(hashed(Field::Email, " Al.ice+Apple@Example.Com "), want);
        assert!(hashed(Field::Email, "+news@example.com").is_err());
    }

    #[test]
    fn reddit_phone_is_e164_with_the_plus() {
        let want = Ok(Prepared::Hashed(sha256_hex("+15554441234")));
        assert_eq!(hashed(Field::Phone, "+1 (555) 444-1234"), want);
    }

    #[test]
    fn reddit_takes_only_its_match_keys() {
        let keys = [Field::Email, Field::Phone, Field::ExternalId];
        for field in Field::ALL.into_iter().filter(|f| !keys.contains(f)) {
            let want = Err(Rejected {
                field,
                reason: NOT_SUPPORTED,
            });
            assert_eq!(hashed(field, "x"), want, "{field:?}");
        }
    }
}
