//! Meta Conversions API `user_data`: every field is SHA-256 hashed.
//!
//! The rules are those of Meta's Parameter Builder library, `capi-param-builder`
//! (<https://github.com/facebook/capi-param-builder>, Node.js package
//! `capi-param-builder-nodejs`, files under `nodejs/capi-param-builder/src/piiUtil/`), which
//! Meta's business SDKs use to normalize and hash customer information, read against Meta's
//! customer information parameters page
//! (<https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters>,
//! "CIP" below). Where this module goes beyond the library it says so.

use super::common::{
    date_of_birth as dob, e164_digits, email_trim_lower, fold, lower_nfc, non_empty,
    resolve_country, resolve_region, strip_whitespace, strip_whitespace_and_punctuation, Outcome,
};
use super::tables::{FEMALE_WORDS, MALE_WORDS};
use super::{Field, Hints, Rule};

/// Meta's rule table.
pub(crate) fn rule(field: Field) -> Rule {
    match field {
        Field::Email => Rule::Hash(email),
        Field::Phone => Rule::Hash(phone),
        Field::FirstName | Field::LastName => Rule::Hash(name),
        Field::City => Rule::Hash(city),
        Field::State => Rule::Hash(state),
        Field::Zip => Rule::Hash(zip),
        Field::Country => Rule::Hash(country),
        Field::Gender => Rule::Hash(gender),
        Field::DateOfBirth => Rule::Hash(date_of_birth),
        Field::ExternalId => Rule::Hash(external_id),
    }
}

/// `em`: lowercased, trimmed, and refused unless it looks like an address.
/// Source: `emailUtil.js` (`getNormalizedEmail`, `EMAIL_RE`); CIP `em` ("Trim any leading
/// and trailing spaces. Convert all characters to lowercase.").
pub(super) fn email(raw: &str, _: Hints<'_>) -> Outcome {
    email_trim_lower(raw)
}

/// `ph`: digits only, no `+`, no leading zeros, with the country code.
/// Source: `phoneUtil.js` (`getNormalizedPhone`: drop non-digits, then leading zeros); CIP `ph`
/// ("Remove symbols, letters, and any leading zeros. Phone numbers must include a country
/// code"). Beyond the library: a national number gets the calling code of `hints.country`
/// (CIP: "Always include the country code"), an extension is cut off, and fewer than 7 or
/// more than 15 digits are refused (E.164).
pub(super) fn phone(raw: &str, hints: Hints<'_>) -> Outcome {
    e164_digits(raw, hints)
}

/// `fn` / `ln`: lowercased, whitespace and ASCII punctuation removed; other characters
/// (accented and non-Latin letters, digits) kept as UTF-8.
/// Source: `stringUtil.js` (`getNormalizedName`: lowercase, strip
/// `whitespace_and_punctuation`); CIP `fn` ("Lowercase only with no punctuation. If using
/// special characters, the text must be encoded in UTF-8 format"; examples `Mary` → `mary`,
/// `정` → `정`, `Valéry` → `valéry`). Beyond the library: NFC, so a decomposed `é` hashes like
/// the precomposed one in CIP's example.
pub(super) fn name(raw: &str, _: Hints<'_>) -> Outcome {
    non_empty(
        strip_whitespace_and_punctuation(&lower_nfc(raw)),
        "no letters",
    )
}

/// `ct`: lowercased, everything but `a`–`z` and `0`–`9` removed, must start with a letter.
/// Source: `stringUtil.js` (`getNormalizedCity`: strip `all_non_latin_alpha_numeric`,
/// lowercase, test `^[a-z]+`); CIP `ct` ("Lowercase only with no punctuation, no special
/// characters, and no spaces", examples `paris`, `london`, `newyork`). As in the library an
/// accented letter is dropped, not folded (`São Paulo` → `sopaulo`), so the hash matches what
/// Meta's own tools send.
pub(super) fn city(raw: &str, _: Hints<'_>) -> Outcome {
    let city: String = raw
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    if !city.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("invalid city");
    }
    Ok(city)
}

/// `st`: the two-letter code of a US state or Canadian province, lowercase.
/// Source: `stringUtil.js` (`getNormalizedState`, `normalizeTwoLetterAbbreviations`,
/// `getFromMap`: letters only; two letters are taken as a code; a state or province name, or
/// text containing one, is mapped; anything else is cut to its first two letters); CIP `st`
/// ("Use the 2-character ANSI abbreviation code in lowercase", examples `az`, `ca`).
/// Beyond the library: accents are folded before the lookup (`Québec` → `qc`, where the
/// library gives `qu`), and of several names found in the text the longest wins (the library
/// takes the first in table order, so "West Virginia, USA" gave `va`).
///
/// Note: CIP asks to keep states outside the US unabbreviated ("Normalize states outside the
/// U.S. in lowercase with no punctuation"), but the library (and so Meta's SDKs) cuts them
/// to two letters; this module follows the library.
pub(super) fn state(raw: &str, _: Hints<'_>) -> Outcome {
    let key = fold(raw);
    if key.len() == 2 {
        return Ok(key);
    }
    if let Some(region) = resolve_region(&key) {
        return Ok(region.code.to_owned());
    }
    match key.get(..2) {
        Some(two) => Ok(two.to_owned()),
        None => Err("invalid state"),
    }
}

/// `zp`: lowercased, cut at the first `-`, whitespace removed, at least 2 characters.
/// Source: `zipCodeUtil.js` (`getNormalizedZipCode`: lowercase, part before the first `-`,
/// trimmed, length ≥ 2); CIP `zp` ("Use lowercase with no spaces and no dash. Use only the
/// first 5 digits for U.S. zip codes", examples `94035`, `m11ae`). Beyond the library: inner
/// spaces are removed too (CIP: "no spaces"; `M1 1AE` → `m11ae`), and a 9-digit ZIP+4 written
/// without a dash is cut to 5 digits when `hints.country` is the US.
fn zip(raw: &str, hints: Hints<'_>) -> Outcome {
    let lower = raw.to_lowercase();
    let before_dash = lower.split('-').next().unwrap_or_default();
    let zip = strip_whitespace(before_dash);
    let in_us = hints
        .country
        .and_then(resolve_country)
        .is_some_and(|c| c.alpha2 == "us");
    if in_us && zip.len() == 9 && zip.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(zip[..5].to_owned());
    }
    if zip.chars().count() < 2 {
        return Err("invalid zip");
    }
    Ok(zip)
}

/// `country`: ISO 3166-1 alpha-2, lowercase.
/// Source: `stringUtil.js` (`getNormalizedCountry`, `COUNTRY_MAPPINGS`); CIP `country` ("Use
/// the lowercase, 2-letter country codes in ISO 3166-1 alpha-2"; example `United States` →
/// `us`). Beyond the library: alpha-3 codes, endonyms and aliases (`UK` → `gb`, where the
/// library passes `uk` through; `Deutschland` → `de`) are mapped, and a value that names no
/// country is refused rather than cut to two letters.
pub(super) fn country(raw: &str, _: Hints<'_>) -> Outcome {
    resolve_country(raw)
        .map(|c| c.alpha2.to_owned())
        .ok_or("unknown country")
}

/// `ge`: `m` or `f`.
/// Source: `genderUtil.js` (`getNormalizedGender`: trimmed, lowercased, looked up in
/// `MALE_SET` / `FEMALE_SET`); CIP `ge` ("We accept gender in the form of an initial in
/// lowercase", `f` for female, `m` for male).
pub(super) fn gender(raw: &str, _: Hints<'_>) -> Outcome {
    let word = raw.trim().to_lowercase();
    if MALE_WORDS.contains(&word.as_str()) {
        Ok("m".to_owned())
    } else if FEMALE_WORDS.contains(&word.as_str()) {
        Ok("f".to_owned())
    } else {
        Err("unknown gender")
    }
}

/// `db`: `YYYYMMDD` from many orders and separators (see [`dob`]).
/// Source: `dobUtil.js` (`getNormalizedDOB`); CIP `db` ("We accept the YYYYMMDD format
/// accommodating a range of month, day and year combinations, with or without punctuation";
/// example `2/16/1997` → `19970216`).
pub(super) fn date_of_birth(raw: &str, hints: Hints<'_>) -> Outcome {
    dob(raw, hints)
}

/// `external_id`: lowercased, all whitespace removed.
/// Source: `stringUtil.js` (`getNormalizedExternalID`: lowercase, strip `whitespace_only`);
/// CIP `external_id` (hashing recommended; "it should be in the same format as when sent via
/// other channels").
fn external_id(raw: &str, _: Hints<'_>) -> Outcome {
    Ok(strip_whitespace(&raw.to_lowercase()))
}

#[cfg(test)]
mod tests {
    //! Each rule's normalization cases are in `rules.json` (run by `cases.rs`); here, what
    //! `prepare` sends.

    use super::super::{normalize, prepare, sha256_hex, Prepared, Profile, Rejected};
    use super::*;

    #[test]
    fn meta_hashes_every_field() {
        let hints = Hints::default();
        let got = prepare(Profile::Meta, Field::City, "Menlo Park", hints);
        assert_eq!(got, Ok(Prepared::Hashed(sha256_hex("menlopark"))));
    }

    #[test]
    fn meta_rejects_email_without_domain() {
        let reason = "invalid email";
        let got = prepare(Profile::Meta, Field::Email, "john", Hints::default());
        assert_eq!(
            got,
            Err(Rejected {
                field: Field::Email,
                reason
            })
        );
    }

    #[test]
    fn meta_name_is_nfc_normalized() {
        let first_name = |raw| normalize(Profile::Meta, Field::FirstName, raw, Hints::default());
        assert_eq!(first_name("Vale\u{301}ry"), first_name("Val\u{e9}ry"));
    }
}
