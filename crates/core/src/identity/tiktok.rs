//! TikTok Events API (2.0) `user` object.
//!
//! Sources:
//! * TikTok's official server-side GTM template for the Events API, `tiktok/gtm-template-eapi`
//!   (<https://github.com/tiktok/gtm-template-eapi>, `template.tpl`, "TikTok template" below):
//!   its `hash(val, lowerCase)` lowercases email and phone, trims every value and passes
//!   64-hex values through; its phone help text asks for E.164 with `+`
//!   ("include country code with + and remove any other characters … example for US:
//!   +12133734253").
//! * TikTok's guide to formatting those `user` parameters, linked from the template's help
//!   (<https://business-api.tiktok.com/portal/docs?id=1799004110681154#item-link-User%20data>):
//!   `email`, `phone` and `external_id` are sent SHA-256 hashed, `phone` in E.164. (That page
//!   itself could not be read here; the template is TikTok's executable form of it.)
//! * For names and ZIP code no rule published by TikTok could be read here; the rules follow the field help of Segment's TikTok Conversions destination
//!   (`segmentio/action-destinations`, `tiktok-conversions/reportWebEvent/fields/common_fields.ts`:
//!   "The name should be in lowercase without any punctuation. Special characters are
//!   allowed.") and its `formatter.ts` (names and ZIP: whitespace removed, lowercased, hashed).
//!   City, state and country go to TikTok unhashed there; this module does not send them
//!   (see [`rule`]).

use super::common::{
    e164_digits, email_trim_lower, lower_nfc, non_empty, strip_whitespace,
    strip_whitespace_and_punctuation, Outcome,
};
use super::{Field, Hints, Rule};

/// TikTok's rule table.
pub(crate) fn rule(field: Field) -> Rule {
    match field {
        Field::Email => Rule::Hash(email),
        Field::Phone => Rule::Hash(phone),
        Field::ExternalId => Rule::Hash(external_id),
        Field::FirstName | Field::LastName => Rule::Hash(name),
        Field::Zip => Rule::Hash(zip),
        // TikTok takes city, state and country in clear (Segment's integration sends them
        // unhashed). Unconfirmed from TikTok's own reference, and plain values leave only for
        // Google by design, so they are not sent. Gender and birth date are not `user`
        // parameters.
        Field::City | Field::State | Field::Country | Field::Gender | Field::DateOfBirth => {
            Rule::Unsupported
        }
    }
}

/// `email`: trimmed, lowercased, checked.
/// Source: TikTok template (`hash(_email, true)`: lowercase, trim; its test turns
/// `"test@TEST.com\n"` into the hash of `test@test.com`).
fn email(raw: &str, _: Hints<'_>) -> Outcome {
    email_trim_lower(raw)
}

/// `phone`: E.164 with the `+` (`hints.country` supplies the code of a national number).
/// Source: TikTok template phone help text (E.164, `+12133734253`). The same text says to
/// leave out the country code of Chinese (+86) numbers; that exception is not applied here.
fn phone(raw: &str, hints: Hints<'_>) -> Outcome {
    e164_digits(raw, hints).map(|digits| format!("+{digits}"))
}

/// `external_id`: trimmed only; case is kept.
/// Source: TikTok template (`hash(_external_id, false)`: trimmed, not lowercased; its test
/// turns `" UserABC"` into the hash of `UserABC`).
pub(super) fn external_id(raw: &str, _: Hints<'_>) -> Outcome {
    Ok(raw.trim().to_owned())
}

/// `first_name` / `last_name`: lowercased, whitespace and ASCII punctuation removed,
/// accented and non-Latin letters kept (NFC).
/// Source: Segment TikTok Conversions field help ("lowercase without any punctuation. Special
/// characters are allowed.") — see the module notes.
fn name(raw: &str, _: Hints<'_>) -> Outcome {
    non_empty(
        strip_whitespace_and_punctuation(&lower_nfc(raw)),
        "no letters",
    )
}

/// `zip_code`: lowercased, whitespace removed.
/// Source: Segment TikTok Conversions `formatter.ts` (`formatString`: whitespace removed,
/// lowercased, hashed) — see the module notes.
fn zip(raw: &str, _: Hints<'_>) -> Outcome {
    Ok(strip_whitespace(&raw.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::super::{prepare, sha256_hex, Prepared, Profile, Rejected, NOT_SUPPORTED};
    use super::*;

    fn hashed(field: Field, raw: &str, country: Option<&str>) -> Result<Prepared, Rejected> {
        prepare(
            Profile::TikTok,
            field,
            raw,
            Hints {
                country,
                ..Hints::default()
            },
        )
    }

    /// Checks that each `(field, raw input, normalized value)` is sent as the hash of the value.
    fn assert_hashes(country: Option<&str>, cases: &[(Field, &str, &str)]) {
        for &(field, raw, normalized) in cases {
            let want = Ok(Prepared::Hashed(sha256_hex(normalized)));
            assert_eq!(hashed(field, raw, country), want, "{field:?} {raw:?}");
        }
    }

    #[test]
    fn tiktok_trims_and_lowercases_email() {
        assert_hashes(None, &[(Field::Email, "test@TEST.com\n", "test@test.com")]);
    }

    #[test]
    fn tiktok_keeps_gmail_dots() {
        assert_hashes(
            None,
            &[(Field::Email, "Jane.Doe@gmail.com", "jane.doe@gmail.com")],
        );
    }

    #[test]
    fn tiktok_phone_is_e164_with_plus() {
        assert_hashes(None, &[(Field::Phone, "+1 (213) 373-4253", "+12133734253")]);
        assert_hashes(
            Some("US"),
            &[(Field::Phone, "(213) 373-4253", "+12133734253")],
        );
    }

    #[test]
    fn tiktok_external_id_is_trimmed_but_keeps_its_case() {
        assert_hashes(None, &[(Field::ExternalId, " UserABC", "UserABC")]);
    }

    #[test]
    fn tiktok_names_are_lowercased_without_punctuation() {
        assert_hashes(
            None,
            &[
                (Field::FirstName, "Mary-Jane", "maryjane"),
                (Field::LastName, "Ñúñez", "ñúñez"),
            ],
        );
    }

    #[test]
    fn tiktok_zip_is_lowercased_without_spaces() {
        assert_hashes(None, &[(Field::Zip, "SW1A 1AA", "sw1a1aa")]);
    }

    #[test]
    fn tiktok_does_not_take_address_gender_or_birth_date() {
        for field in [
            Field::City,
            Field::State,
            Field::Country,
            Field::Gender,
            Field::DateOfBirth,
        ] {
            assert_eq!(
                hashed(field, "x", None),
                Err(Rejected {
                    field,
                    reason: NOT_SUPPORTED
                })
            );
        }
    }
}
