//! LinkedIn Conversions API `user.userIds`.
//!
//! Source: LinkedIn Marketing API, Conversions API, "Streaming Conversion Events"
//! (<https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/conversions-api>):
//! a user is matched by `userIds` of the types `SHA256_EMAIL` (the email address as a
//! lowercase hex SHA-256 digest), `LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID` (the `li_fat_id`
//! click id, not hashed), `ACXIOM_ID` and `ORACLE_MOAT_ID`, or by `userInfo` (first and last
//! name, in the clear). The email is trimmed and lowercased before it is hashed, the rule every
//! other profile applies ([`meta::email`]); LinkedIn's published example digest
//! (`bad8677b…`) comes without the address behind it, so this profile has no vendor vector.
//!
//! Every other field is not a LinkedIn match key, or (names) would have to leave in the clear:
//! not sent.

use super::{meta, Field, Rule};

/// LinkedIn's rule table: the email only.
pub(crate) fn rule(field: Field) -> Rule {
    match field {
        Field::Email => Rule::Hash(meta::email),
        // No other field is a LinkedIn match key that may leave hashed.
        _ => Rule::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{prepare, sha256_hex, Hints, Prepared, Profile, Rejected, NOT_SUPPORTED};
    use super::*;

    #[test]
    fn linkedin_hashes_the_trimmed_lowercased_email_and_nothing_else() {
        let got = prepare(
            Profile::LinkedIn,
            Field::Email,
            " Jane.Doe@Example.com ",
            Hints::default(),
        );
        assert_eq!(
            got,
            Ok(Prepared::Hashed(sha256_hex("jane.doe@example.com")))
        );
        for field in Field::ALL.into_iter().filter(|f| *f != Field::Email) {
            let want = Err(Rejected {
                field,
                reason: NOT_SUPPORTED,
            });
            assert_eq!(
                prepare(Profile::LinkedIn, field, "x", Hints::default()),
                want,
                "{field:?}"
            );
        }
    }
}
