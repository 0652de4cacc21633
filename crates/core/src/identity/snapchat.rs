//! Snap Conversions API (v3) `user_data`.
//!
//! Source: Snap for Developers, Conversions API "Parameters", User Data Parameters
//! (<https://developers.snap.com/api/marketing-api/Conversions-API/Parameters>), and "Best
//! Practices" → Data Hygiene
//! (<https://developers.snap.com/api/marketing-api/Conversions-API/BestPractices>): every
//! identifier is normalized, then hashed as lowercase hex SHA-256. The pages' examples are
//! this profile's vectors (`vectors.json`):
//! * `em`: "Trim any additional characters (such as spaces) and convert to lowercase before
//!   hashing" — `Person@Example.com` → `person@example.com` → `542d2401…`.
//! * `ph`: "including the country code, remove any double 0 in front of the country code. If
//!   the number itself begins with a 0, this should be removed. Also exclude any non-numeric
//!   characters such as whitespace, parentheses, '+', or '-'" — `+44 844 412 4653` →
//!   `448444124653` → `dc008fda…`.
//! * `fn` / `ln`: "Use lower case letters only. Make sure to remove any punctuation and if
//!   there are special characters they must be encoded using UTF-8" — `John` → `john` →
//!   `96d9632f…`, `Raphaël` → `raphaël` → `e74bb89e…`.
//!
//! The rest of Snap's `user_data` (`ge`, `db`, `ct`, `st`, `zp`, `country`, `external_id`)
//! has no normalization rule on those pages as read here, so this profile does not send it
//! rather than guess one ([`rule`]).

use super::{meta, Field, Rule};

/// Snap's rule table. Snap's rules for `em`, `ph`, `fn` and `ln` are, word for word in
/// substance, Meta's (trim and lowercase; digits with the country code, no `+` and no leading
/// zeros; lowercase without punctuation, UTF-8 kept), so Meta's normalizers serve: Snap's own
/// published examples (`vectors.json`) hold for them.
pub(crate) fn rule(field: Field) -> Rule {
    match field {
        Field::Email => Rule::Hash(meta::email),
        Field::Phone => Rule::Hash(meta::phone),
        Field::FirstName | Field::LastName => Rule::Hash(meta::name),
        Field::City
        | Field::State
        | Field::Zip
        | Field::Country
        | Field::Gender
        | Field::DateOfBirth
        | Field::ExternalId => Rule::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{prepare, sha256_hex, Hints, Prepared, Profile, Rejected, NOT_SUPPORTED};
    use super::*;

    fn hashed(field: Field, raw: &str, country: Option<&str>) -> Result<Prepared, Rejected> {
        let hints = Hints {
            country,
            ..Hints::default()
        };
        prepare(Profile::Snapchat, field, raw, hints)
    }

    #[test]
    fn snapchat_phone_drops_the_double_zero_and_a_national_leading_zero() {
        let want = Ok(Prepared::Hashed(sha256_hex("448444124653")));
        assert_eq!(hashed(Field::Phone, "0044 844 412 4653", None), want);
        assert_eq!(hashed(Field::Phone, "0844 412 4653", Some("GB")), want);
        assert_eq!(hashed(Field::Phone, "+44 (844) 412-4653", None), want);
    }

    #[test]
    fn snapchat_names_lose_punctuation_and_keep_accents() {
        let want = Ok(Prepared::Hashed(sha256_hex("maryjane")));
        assert_eq!(hashed(Field::FirstName, " Mary-Jane. ", None), want);
        let decomposed = "Raphae\u{308}l";
        assert_eq!(
            hashed(Field::LastName, decomposed, None),
            Ok(Prepared::Hashed(sha256_hex("raphaël")))
        );
    }

    #[test]
    fn snapchat_takes_no_field_without_a_published_rule() {
        let published = [
            Field::Email,
            Field::Phone,
            Field::FirstName,
            Field::LastName,
        ];
        for field in Field::ALL.into_iter().filter(|f| !published.contains(f)) {
            let want = Err(Rejected {
                field,
                reason: NOT_SUPPORTED,
            });
            assert_eq!(hashed(field, "x", None), want, "{field:?}");
        }
    }
}
