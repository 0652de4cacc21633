//! Pinterest Conversions API (v5) `user_data`.
//!
//! Source: Pinterest's OpenAPI description of `POST /v5/ad_accounts/{ad_account_id}/events`
//! (`pinterest/api-description`, `v5/openapi.yaml`, schema
//! `ConversionEventsUserDataProperties`; the same text as the API reference
//! <https://developers.pinterest.com/docs/api/v5/events-create>). Every identifier is sent as
//! a list of lowercase hex SHA-256 digests of the value normalized as the field's description
//! says:
//! * `em`: "Sha256 hashes of lowercase version of user's email addresses" — trimmed and
//!   lowercased (Meta's rule, [`meta::email`]).
//! * `ph`: "only digits with country code, area code, and number. Remove any symbols,
//!   letters, spaces and leading zeros" — Meta's rule ([`meta::phone`]).
//! * `fn` / `ln`: "user's first name, in lowercase" — lowercased and trimmed only
//!   ([`name`]; Pinterest does not ask to remove punctuation, unlike Meta).
//! * `ge`: "in lowercase. Either "f" or "m" or "n" for non-binary gender" ([`gender`]).
//! * `db`: "date of birthday, given as year, month, and day" — `YYYYMMDD`
//!   ([`meta::date_of_birth`]).
//! * `ct`: "city, in lowercase, and without spaces or punctuation" ([`meta::city`]).
//! * `st`: "state, given as a two-letter code in lowercase" ([`meta::state`]).
//! * `zp`: "zipcode, only digits" ([`zip`]).
//! * `country`: "two-character ISO-3166 country code ..., in lowercase" ([`meta::country`]).
//! * `external_id`: "the unique id from the advertiser that identifies a user"; no
//!   normalization is given, so it is trimmed only, its case kept ([`tiktok::external_id`]).
//!
//! Pinterest's reference prints example digests but not the values behind them, so the vectors
//! of this profile (`vectors.json`) document the normalization and compute the digest.

use super::common::{lower_nfc, non_empty, Outcome};
use super::{meta, tiktok, Field, Hints, Rule};

/// Pinterest's rule table: every field is hashed.
pub(crate) fn rule(field: Field) -> Rule {
    match field {
        Field::Email => Rule::Hash(meta::email),
        Field::Phone => Rule::Hash(meta::phone),
        Field::FirstName | Field::LastName => Rule::Hash(name),
        Field::Gender => Rule::Hash(gender),
        Field::DateOfBirth => Rule::Hash(meta::date_of_birth),
        Field::City => Rule::Hash(meta::city),
        Field::State => Rule::Hash(meta::state),
        Field::Zip => Rule::Hash(zip),
        Field::Country => Rule::Hash(meta::country),
        Field::ExternalId => Rule::Hash(tiktok::external_id),
    }
}

/// `fn` / `ln`: lowercased (Unicode-aware, NFC) and trimmed.
fn name(raw: &str, _: Hints<'_>) -> Outcome {
    non_empty(lower_nfc(raw.trim()), "no letters")
}

/// Words for a non-binary gender, besides Pinterest's own `n`.
const NON_BINARY_WORDS: &[&str] = &["n", "non-binary", "nonbinary", "non binary", "enby", "nb"];

/// `ge`: `f`, `m` or `n`: Meta's words for `f` and `m` ([`meta::gender`]), and `n`.
fn gender(raw: &str, hints: Hints<'_>) -> Outcome {
    let word = raw.trim().to_lowercase();
    if NON_BINARY_WORDS.contains(&word.as_str()) {
        return Ok("n".to_owned());
    }
    meta::gender(raw, hints)
}

/// `zp`: the digits only (`94107-1234` → `941071234`); refused without any.
fn zip(raw: &str, _: Hints<'_>) -> Outcome {
    non_empty(
        raw.chars().filter(char::is_ascii_digit).collect(),
        "no digits",
    )
}

#[cfg(test)]
mod tests {
    use super::super::{prepare, sha256_hex, Prepared, Profile, Rejected};
    use super::*;

    fn hashed(field: Field, raw: &str) -> Result<Prepared, Rejected> {
        let hints = Hints {
            country: Some("US"),
            received_at: Some(time::macros::datetime!(2026-03-01 12:00 UTC)),
        };
        prepare(Profile::Pinterest, field, raw, hints)
    }

    fn digest_of(normalized: &str) -> Result<Prepared, Rejected> {
        Ok(Prepared::Hashed(sha256_hex(normalized)))
    }

    #[test]
    fn pinterest_names_are_lowercased_but_keep_their_punctuation() {
        assert_eq!(
            hashed(Field::FirstName, " Mary-Jane "),
            digest_of("mary-jane")
        );
        assert_eq!(hashed(Field::LastName, "O'Brien"), digest_of("o'brien"));
    }

    #[test]
    fn pinterest_gender_is_f_m_or_n() {
        assert_eq!(hashed(Field::Gender, "Female"), digest_of("f"));
        assert_eq!(hashed(Field::Gender, " M "), digest_of("m"));
        assert_eq!(hashed(Field::Gender, "Non-binary"), digest_of("n"));
        assert!(hashed(Field::Gender, "unknown").is_err());
    }

    #[test]
    fn pinterest_zip_keeps_only_digits() {
        assert_eq!(hashed(Field::Zip, "94107-1234"), digest_of("941071234"));
        assert!(hashed(Field::Zip, "N/A").is_err());
    }

    #[test]
    fn pinterest_phone_has_the_country_code_and_no_leading_zeros() {
        assert_eq!(
            hashed(Field::Phone, "(650) 555-1212"),
            digest_of("16505551212")
        );
        assert_eq!(
            hashed(Field::Phone, "+1 650 555 1212"),
            digest_of("16505551212")
        );
    }

    #[test]
    fn pinterest_hashes_every_field_it_takes() {
        for field in Field::ALL {
            assert!(
                matches!(rule(field), Rule::Hash(_)),
                "{field:?} is hashed for Pinterest"
            );
        }
    }
}
