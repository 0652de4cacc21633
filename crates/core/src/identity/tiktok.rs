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
    e164_digits, email_trim_lower, lower_nfc, strip_whitespace, strip_whitespace_and_punctuation,
    Outcome,
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
fn external_id(raw: &str, _: Hints<'_>) -> Outcome {
    Ok(raw.trim().to_owned())
}

/// `first_name` / `last_name`: lowercased, whitespace and ASCII punctuation removed,
/// accented and non-Latin letters kept (NFC).
/// Source: Segment TikTok Conversions field help ("lowercase without any punctuation. Special
/// characters are allowed.") — see the module notes.
fn name(raw: &str, _: Hints<'_>) -> Outcome {
    let name = strip_whitespace_and_punctuation(&lower_nfc(raw));
    if name.is_empty() {
        return Err("no letters");
    }
    Ok(name)
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

    #[test]
    fn tiktok_trims_and_lowercases_email() {
        assert_eq!(
            hashed(Field::Email, "test@TEST.com\n", None),
            Ok(Prepared::Hashed(sha256_hex("test@test.com")))
        );
    }

    #[test]
    fn tiktok_keeps_gmail_dots() {
        assert_eq!(
            hashed(Field::Email, "Jane.Doe@gmail.com", None),
            Ok(Prepared::Hashed(sha256_hex("jane.doe@gmail.com")))
        );
    }

    #[test]
    fn tiktok_phone_is_e164_with_plus() {
        assert_eq!(
            hashed(Field::Phone, "+1 (213) 373-4253", None),
            Ok(Prepared::Hashed(sha256_hex("+12133734253")))
        );
        assert_eq!(
            hashed(Field::Phone, "(213) 373-4253", Some("US")),
            Ok(Prepared::Hashed(sha256_hex("+12133734253")))
        );
    }

    #[test]
    fn tiktok_external_id_is_trimmed_but_keeps_its_case() {
        assert_eq!(
            hashed(Field::ExternalId, " UserABC", None),
            Ok(Prepared::Hashed(sha256_hex("UserABC")))
        );
    }

    #[test]
    fn tiktok_names_are_lowercased_without_punctuation() {
        assert_eq!(
            hashed(Field::FirstName, "Mary-Jane", None),
            Ok(Prepared::Hashed(sha256_hex("maryjane")))
        );
        assert_eq!(
            hashed(Field::LastName, "Ñúñez", None),
            Ok(Prepared::Hashed(sha256_hex("ñúñez")))
        );
    }

    #[test]
    fn tiktok_zip_is_lowercased_without_spaces() {
        assert_eq!(
            hashed(Field::Zip, "SW1A 1AA", None),
            Ok(Prepared::Hashed(sha256_hex("sw1a1aa")))
        );
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
