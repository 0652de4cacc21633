//! Google: GA4 Measurement Protocol `user_data`, whose rules Google Ads enhanced conversions
//! and the Data Manager API share.
//!
//! Sources:
//! * GA4 "Send user-provided data with User-ID using the Measurement Protocol"
//!   (<https://developers.google.com/analytics/devguides/collection/ga4/uid-data>, "GA4" below):
//!   "prior to hashing one of these values you must: remove leading and trailing
//!   whitespaces; convert the text to lowercase; format phone numbers according to the E164
//!   standard; remove all periods (.) that precede the domain name in gmail.com and
//!   googlemail.com email addresses", plus a normalization per `user_data` field; email,
//!   phone, first and last name (and street) are hashed, city, region, postal code and country
//!   are sent in clear.
//! * Google Ads API, enhanced conversions for web
//!   (<https://developers.google.com/google-ads/api/docs/conversions/enhance-conversions>):
//!   the same hashing list; "do not hash" country, state, city, postal code.
//! * Data Manager API, "Format user data"
//!   (<https://developers.google.com/data-manager/api/devguides/concepts/formatting>, "DM"
//!   below), and its reference utility `UserDataFormatter` in Google's
//!   `googleads/data-manager-java` (`data-manager-util`, "DM util" below).

use super::common::{
    e164_digits, email_google, letters_and_spaces, lower_nfc, non_empty, resolve_country, Outcome,
};
use super::{Field, Hints, Rule};

/// Google's rule table.
pub(crate) fn rule(field: Field) -> Rule {
    match field {
        Field::Email => Rule::Hash(email),
        Field::Phone => Rule::Hash(phone),
        Field::FirstName => Rule::Hash(first_name),
        Field::LastName => Rule::Hash(last_name),
        Field::City => Rule::Plain(city),
        Field::State => Rule::Plain(region),
        Field::Zip => Rule::Plain(postal_code),
        Field::Country => Rule::Plain(country),
        // GA4 `user_data` has no gender or birth date; `user_id` is a plain top-level field,
        // not a hashed identifier.
        Field::Gender | Field::DateOfBirth | Field::ExternalId => Rule::Unsupported,
    }
}

/// `sha256_email_address`: lowercased, all whitespace removed, checked, and for `gmail.com`
/// / `googlemail.com` the dots and any `+suffix` of the local part removed.
/// Source: GA4 (`sha256_email_address`: "lowercase; remove periods before @ for
/// gmail.com/googlemail.com addresses; remove all spaces"); DM `email_address` ("Trim leading,
/// trailing and intermediate whitespace"; "Remove the plus sign (+) from the local part and
/// all characters that follow it"; `cloudy.sanfrancisco+shopping@gmail.com` →
/// `cloudysanfrancisco@gmail.com`, `user.name+NYC@Example.com` → `user.name+nyc@example.com`).
fn email(raw: &str, _: Hints<'_>) -> Outcome {
    email_google(raw)
}

/// `sha256_phone_number`: E.164 with the `+`.
/// Source: GA4 (`sha256_phone_number`: "remove all non digit characters; add + prefix");
/// DM `phone_number` ("Include the plus sign (+) and the country code", US `(800)555-0100` →
/// `+18005550100`). Without `+`, `hints.country` supplies the calling code of a national
/// number; without a hint the digits are taken to include it, as DM util `formatPhoneNumber`
/// does (`18005550100` → `+18005550100`).
pub(super) fn phone(raw: &str, hints: Hints<'_>) -> Outcome {
    e164_digits(raw, hints).map(|digits| format!("+{digits}"))
}

/// `address[].sha256_first_name`: lowercased, trimmed, digits and symbols removed, without
/// a title.
/// Source: GA4 (`sha256_first_name`: "remove digits and symbol characters; lowercase; remove
/// leading and trailing spaces"); DM `given_name` ("Don't include prefixes such as Mrs."); DM
/// util `formatGivenName` (removes `mr.`, `mrs.`, `ms.`, `dr.`).
fn first_name(raw: &str, _: Hints<'_>) -> Outcome {
    person_name(raw, drop_titles)
}

/// `address[].sha256_last_name`: as the first name, without a generational or professional
/// suffix.
/// Source: GA4 (`sha256_last_name`, same steps as the first name); DM `family_name` ("Don't
/// include suffixes such as Jr."); DM util `formatFamilyName` (removes trailing `jr.`, `sr.`,
/// `2nd`, `3rd`, `ii`–`vi`, `cpa`, `dc`, `dds`, `vm`, `jd`, `md`, `phd`).
fn last_name(raw: &str, _: Hints<'_>) -> Outcome {
    person_name(raw, drop_suffixes)
}

fn person_name(raw: &str, drop_affixes: fn(&str) -> String) -> Outcome {
    // Affixes are dropped from the cleaned name again until none is left (`Doe 8MD` cleans to
    // `doe md`, whose `md` is a suffix), so that the normal form normalizes to itself.
    let mut name = letters_and_spaces(&drop_affixes(&lower_nfc(raw)));
    loop {
        let again = letters_and_spaces(&drop_affixes(&name));
        if again == name {
            return non_empty(name, "no letters");
        }
        name = again;
    }
}

/// Removes the titles `mr.`, `mrs.`, `ms.`, `dr.` (with their period, as the DM util's
/// `(?:mr|mrs|ms|dr)\.(?:\s|$)` requires: `Mralex` stays).
fn drop_titles(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for word in name
        .split_whitespace()
        .filter(|word| !matches!(*word, "mr." | "mrs." | "ms." | "dr."))
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Removes trailing suffixes (`Quinn, Jr., DDS` → `quinn`), each after a comma or a space.
fn drop_suffixes(name: &str) -> String {
    const SUFFIXES: [&str; 16] = [
        "jr.", "sr.", "2nd", "3rd", "ii", "iii", "iv", "v", "vi", "cpa", "dc", "dds", "vm", "jd",
        "md", "phd",
    ];
    let mut rest = name.trim_end_matches(|c: char| c.is_whitespace() || c == ',');
    while let Some(cut) = rest.rfind(|c: char| c.is_whitespace() || c == ',') {
        // The separator may be wider than a byte (a no-break space).
        let word = rest[cut..]
            .char_indices()
            .nth(1)
            .map_or("", |(i, _)| &rest[cut + i..]);
        if !SUFFIXES.contains(&word) {
            break;
        }
        rest = rest[..cut].trim_end_matches(|c: char| c.is_whitespace() || c == ',');
    }
    rest.to_owned()
}

/// `address[].city`, in clear: digits and symbols removed, lowercased, trimmed.
/// Source: GA4 (`city`: "remove digits and symbol characters; lowercase; remove leading and
/// trailing spaces"; example `san francisco`). Inner runs of whitespace become one space.
fn city(raw: &str, _: Hints<'_>) -> Outcome {
    non_empty(letters_and_spaces(&lower_nfc(raw)), "invalid city")
}

/// `address[].region`, in clear: as the city. A state name stays a name (GA4's example sends
/// `california`), a code stays a code.
/// Source: GA4 (`region`: "remove digits and symbol characters; lowercase; remove leading and
/// trailing spaces").
fn region(raw: &str, _: Hints<'_>) -> Outcome {
    non_empty(letters_and_spaces(&lower_nfc(raw)), "invalid state")
}

/// `address[].postal_code`, in clear: `.` and `~` removed, trimmed; case and inner spaces kept.
/// Source: GA4 (`postal_code`: "remove . and ~ characters; remove leading and trailing
/// spaces"); DM util `formatPostalCode` (trim only: `1229-076` stays).
fn postal_code(raw: &str, _: Hints<'_>) -> Outcome {
    let code: String = raw.chars().filter(|c| !matches!(c, '.' | '~')).collect();
    non_empty(code.trim().to_owned(), "invalid zip")
}

/// `address[].country`, in clear: ISO 3166-1 alpha-2, uppercase.
/// Source: GA4 (`country`: "Formatted according to ISO 3166-1 alpha-2 standard"; example
/// `US`); DM `region_code` ("A two-character ISO-3166-1 alpha-2 code"); DM util
/// `formatRegionCode` (uppercases).
fn country(raw: &str, _: Hints<'_>) -> Outcome {
    resolve_country(raw)
        .map(|c| c.alpha2.to_ascii_uppercase())
        .ok_or("unknown country")
}

#[cfg(test)]
mod tests {
    //! Each rule's normalization cases are in `rules.json` (run by `cases.rs`); here, what
    //! `prepare` sends.

    use super::super::{prepare, sha256_hex, Prepared, Profile, Rejected, NOT_SUPPORTED};
    use super::*;

    #[test]
    fn google_names_are_lowercased_trimmed_and_hashed() {
        let got = prepare(Profile::Google, Field::FirstName, "John", Hints::default());
        assert_eq!(got, Ok(Prepared::Hashed(sha256_hex("john"))));
    }

    #[test]
    fn google_address_fields_are_sent_plain() {
        let hints = Hints::default();
        for (field, raw, plain) in [
            (Field::City, " San Francisco ", "san francisco"),
            (Field::State, "California", "california"),
            (Field::Zip, " 94000 ", "94000"),
            (Field::Country, "United States", "US"),
        ] {
            let got = prepare(Profile::Google, field, raw, hints);
            assert_eq!(got, Ok(Prepared::Plain(plain.into())), "{field:?}");
        }
    }

    #[test]
    fn google_refuses_an_already_hashed_value_for_a_plain_field() {
        let digest = sha256_hex("us");
        let got = prepare(Profile::Google, Field::Country, &digest, Hints::default());
        assert!(got.is_err());
    }

    #[test]
    fn google_does_not_take_gender_birth_date_or_external_id() {
        for field in [Field::Gender, Field::DateOfBirth, Field::ExternalId] {
            assert_eq!(
                prepare(Profile::Google, field, "x", Hints::default()),
                Err(Rejected {
                    field,
                    reason: NOT_SUPPORTED
                })
            );
        }
    }
}
