//! Identifier normalization and hashing, per destination profile.
//!
//! Ad platforms match a customer only when the identifier was normalized exactly their way
//! before it was SHA-256 hashed, and their ways differ: Meta wants a phone number without
//! `+` and Google with it, Google folds Gmail addresses, Meta reads dates of birth in many
//! orders, Google wants some address fields unhashed. So each profile has its own table of
//! rules ([`meta`], [`google`], [`tiktok`], [`snapchat`], [`pinterest`], [`reddit`],
//! [`microsoft`], [`linkedin`]), every rule citing the vendor source it follows.
//!
//! [`prepare`] turns one raw value into what may leave for a destination: a lowercase hex
//! SHA-256 digest ([`Prepared::Hashed`]), or, for the Google address fields that Google wants
//! in clear, a normalized value ([`Prepared::Plain`]). A value that already is a SHA-256 hex
//! digest passes through (lowercased) and is never hashed twice.
//!
//! [`canonical_for_index`] gives the profile-independent form that TrackLayer's own subject
//! index keys on (under an HMAC with the workspace key, never a bare hash).
//!
//! Published vendor examples are the regression net: `vectors.json` beside this file; each
//! Google and Meta rule's own cases are in `rules.json`.

#[cfg(test)]
mod cases;
mod common;
mod google;
mod linkedin;
mod meta;
mod microsoft;
mod pinterest;
mod reddit;
mod snapchat;
mod tables;
mod tiktok;

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A destination's identifier rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Meta Conversions API `user_data`.
    Meta,
    /// Google Analytics 4 Measurement Protocol `user_data` (and Google Ads enhanced
    /// conversions, which share its rules).
    Google,
    /// TikTok Events API `user`. Serialized `"tiktok"`, like the destination kind.
    #[serde(rename = "tiktok")]
    TikTok,
    /// Snap Conversions API v3 `user_data`.
    Snapchat,
    /// Pinterest Conversions API v5 `user_data`.
    Pinterest,
    /// Reddit Conversions API v2.0 `user`.
    Reddit,
    /// Microsoft Advertising UET Conversions API `userData`.
    Microsoft,
    /// LinkedIn Conversions API `user.userIds`.
    #[serde(rename = "linkedin")]
    LinkedIn,
}

impl Profile {
    /// Every profile, in the order of their record codes ([`crate::event::codes`]):
    /// append only.
    pub const ALL: [Profile; 8] = [
        Profile::Meta,
        Profile::Google,
        Profile::TikTok,
        Profile::Snapchat,
        Profile::Pinterest,
        Profile::Reddit,
        Profile::Microsoft,
        Profile::LinkedIn,
    ];

    /// Its serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Meta => "meta",
            Profile::Google => "google",
            Profile::TikTok => "tiktok",
            Profile::Snapchat => "snapchat",
            Profile::Pinterest => "pinterest",
            Profile::Reddit => "reddit",
            Profile::Microsoft => "microsoft",
            Profile::LinkedIn => "linkedin",
        }
    }
}

/// A customer identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Email,
    Phone,
    FirstName,
    LastName,
    City,
    /// State, province or region.
    State,
    /// ZIP or postal code.
    Zip,
    Country,
    Gender,
    DateOfBirth,
    ExternalId,
}

impl Field {
    /// Every field, in the order of their record codes ([`crate::event::codes`]):
    /// append only.
    pub const ALL: [Field; 11] = [
        Field::Email,
        Field::Phone,
        Field::FirstName,
        Field::LastName,
        Field::City,
        Field::State,
        Field::Zip,
        Field::Country,
        Field::Gender,
        Field::DateOfBirth,
        Field::ExternalId,
    ];

    /// Its serde name, also its tag in the subject index ([`crate::ingest::field_tag`]):
    /// stored values are keyed with it, so it never changes.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::Phone => "phone",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::City => "city",
            Field::State => "state",
            Field::Zip => "zip",
            Field::Country => "country",
            Field::Gender => "gender",
            Field::DateOfBirth => "date_of_birth",
            Field::ExternalId => "external_id",
        }
    }
}

/// What leaves for a destination: a SHA-256 hex digest, or (Google address fields only) a normalized plain value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prepared {
    /// Lowercase hex SHA-256 of the normalized value (64 characters).
    Hashed(String),
    /// The normalized value itself, for fields the destination wants unhashed.
    Plain(String),
}

impl Prepared {
    /// The string to put in the destination payload.
    pub fn as_str(&self) -> &str {
        match self {
            Prepared::Hashed(s) | Prepared::Plain(s) => s,
        }
    }
}

/// Plain values are personal data: `Debug` never prints them.
impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prepared::Hashed(h) => f.debug_tuple("Hashed").field(h).finish(),
            Prepared::Plain(_) => f.write_str("Plain(<redacted>)"),
        }
    }
}

/// A value that cannot be sent for a field, with a short reason (never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub field: Field,
    pub reason: &'static str,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} rejected: {}", self.field, self.reason)
    }
}

impl std::error::Error for Rejected {}

/// Context that some rules need (e.g. phone E.164 needs a country when the number has no `+`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints<'a> {
    /// The customer's country, as an ISO 3166-1 code or a name (`"DE"`, `"deu"`,
    /// `"Germany"`, `"Deutschland"`); an unrecognized value is ignored.
    pub country: Option<&'a str>,
    /// When the event was received (the injected clock at ingest): a date of birth may lie
    /// at most in the year after this one. Without it a date of birth cannot be checked and
    /// is rejected.
    pub received_at: Option<time::OffsetDateTime>,
}

/// Reason given for a field the profile's destination does not take.
pub const NOT_SUPPORTED: &str = "not supported by profile";

/// Normalizes `raw` the way `profile` wants `field`, then hashes it (or, for the fields the
/// destination wants in clear, returns it plain).
///
/// A value that already is a SHA-256 hex digest passes through lowercased for every hashed
/// field. Invalid values (an email without a domain, a phone with fewer than 7 digits, an
/// unparseable date, ...) and fields the destination does not take are [`Rejected`].
pub fn prepare(
    profile: Profile,
    field: Field,
    raw: &str,
    hints: Hints<'_>,
) -> Result<Prepared, Rejected> {
    prepare_reusing(profile, field, raw, hints, &mut Digests::default())
}

/// The SHA-256 digests of the normalized values [`prepare_reusing`] hashed: an event's
/// identifiers for several profiles normalize alike more often than not (an email for Meta,
/// Google and TikTok), and are then hashed once.
#[derive(Default)]
pub struct Digests(Vec<(String, String)>);

impl Digests {
    fn of(&mut self, normalized: String) -> String {
        if let Some((_, digest)) = self.0.iter().find(|(v, _)| *v == normalized) {
            return digest.clone();
        }
        let digest = sha256_hex(&normalized);
        self.0.push((normalized, digest.clone()));
        digest
    }
}

impl std::fmt::Debug for Digests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digests({} <redacted>)", self.0.len())
    }
}

/// [`prepare`], taking a digest from `digests` when the normalized value was hashed before
/// (for another profile), and leaving each new one there.
pub fn prepare_reusing(
    profile: Profile,
    field: Field,
    raw: &str,
    hints: Hints<'_>,
    digests: &mut Digests,
) -> Result<Prepared, Rejected> {
    let trimmed = raw.trim();
    match rule(profile, field) {
        Rule::Hash(_) if is_sha256_hex(trimmed) => {
            Ok(Prepared::Hashed(trimmed.to_ascii_lowercase()))
        }
        Rule::Hash(_) => {
            normalize(profile, field, raw, hints).map(|v| Prepared::Hashed(digests.of(v)))
        }
        Rule::Plain(_) if is_sha256_hex(trimmed) => Err(Rejected {
            field,
            reason: "already hashed, but sent unhashed",
        }),
        Rule::Plain(_) | Rule::Unsupported => {
            normalize(profile, field, raw, hints).map(Prepared::Plain)
        }
    }
}

/// What [`prepare`] hashes (or sends plain) for `raw`: the value normalized by `profile`'s
/// rule for `field`, before any hashing and without the pass-through of a digest.
pub fn normalize(
    profile: Profile,
    field: Field,
    raw: &str,
    hints: Hints<'_>,
) -> Result<String, Rejected> {
    let reject = |reason| Rejected { field, reason };
    match rule(profile, field) {
        Rule::Unsupported => Err(reject(NOT_SUPPORTED)),
        _ if raw.trim().is_empty() => Err(reject("empty")),
        Rule::Hash(normalize) | Rule::Plain(normalize) => normalize(raw, hints).map_err(reject),
    }
}

fn rule(profile: Profile, field: Field) -> Rule {
    match profile {
        Profile::Meta => meta::rule(field),
        Profile::Google => google::rule(field),
        Profile::TikTok => tiktok::rule(field),
        Profile::Snapchat => snapchat::rule(field),
        Profile::Pinterest => pinterest::rule(field),
        Profile::Reddit => reddit::rule(field),
        Profile::Microsoft => microsoft::rule(field),
        Profile::LinkedIn => linkedin::rule(field),
    }
}

/// Canonical (unhashed) form used for TrackLayer's internal HMAC subject index, identical for all profiles,
/// so that a deletion request with "John.Smith@Gmail.com " finds events sent with "john.smith@gmail.com".
/// Only Email, Phone (digits incl. country code, no '+'), ExternalId (trimmed) are indexed; others None. Invalid → None.
///
/// Email is lowercased, loses all whitespace and is checked; a Gmail address also loses the
/// dots and `+suffix` of its local part and `googlemail.com` becomes `gmail.com`, since Gmail
/// delivers all those spellings to the same mailbox (the subject is the mailbox). Phone is
/// read as for Google: E.164, using `hints.country` for a national number.
pub fn canonical_for_index(field: Field, raw: &str, hints: Hints<'_>) -> Option<String> {
    match field {
        Field::Email => {
            let email = common::email_google(raw).ok()?;
            Some(match email.strip_suffix("@googlemail.com") {
                Some(local) => format!("{local}@gmail.com"),
                None => email,
            })
        }
        Field::Phone => common::e164_digits(raw, hints).ok(),
        Field::ExternalId => Some(raw.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        _ => None,
    }
}

/// Lowercase hex SHA-256 of the UTF-8 bytes of `s`.
pub fn sha256_hex(s: &str) -> String {
    crate::crypto::hex_lower(&Sha256::digest(s.as_bytes()))
}

/// 64 lowercase-or-uppercase hex chars → already a SHA-256 digest; pass through unchanged (lowercased), never double-hash.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One profile's rule for one field.
#[derive(Clone, Copy)]
pub(crate) enum Rule {
    /// Normalize, then SHA-256.
    Hash(Normalizer),
    /// Normalize and send as is.
    Plain(Normalizer),
    /// The destination does not take this field.
    Unsupported,
}

/// Normalizes a raw, non-blank value, or says why it cannot.
pub(crate) type Normalizer = fn(&str, Hints<'_>) -> common::Outcome;

#[cfg(test)]
mod tests {
    use super::*;

    /// A published (or documented) vendor example. `sha256`, when present, is the digest the
    /// vendor printed for `normalized`; without it the example only documents the
    /// normalization, and the expected digest is computed here.
    #[derive(Deserialize)]
    struct Vector {
        profile: Profile,
        field: Field,
        input: String,
        #[serde(default)]
        country: Option<String>,
        #[serde(default)]
        normalized: Option<String>,
        #[serde(default)]
        sha256: Option<String>,
        #[serde(default)]
        plain: Option<String>,
        source: String,
    }

    #[derive(Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[test]
    fn vendor_vectors_hold() {
        let file: Vectors = serde_json::from_str(include_str!("vectors.json")).unwrap();
        assert!(file.vectors.len() >= 40);
        for v in &file.vectors {
            let got = prepare(
                v.profile,
                v.field,
                &v.input,
                cases::hints(v.country.as_deref()),
            );
            let context = format!("{:?} {:?} {:?} ({})", v.profile, v.field, v.input, v.source);
            assert!(!v.source.is_empty(), "{context}: source missing");
            match (&v.normalized, &v.sha256, &v.plain) {
                (Some(normalized), published, None) => {
                    let expected = sha256_hex(normalized);
                    if let Some(published) = published {
                        assert_eq!(&expected, published, "{context}: vendor pair");
                    }
                    assert_eq!(got, Ok(Prepared::Hashed(expected)), "{context}");
                }
                (None, None, Some(plain)) => {
                    assert_eq!(got, Ok(Prepared::Plain(plain.clone())), "{context}");
                }
                _ => panic!("{context}: give `normalized` (and maybe `sha256`) or `plain`"),
            }
        }
    }

    /// Digests reused across profiles and fields are the digests of the values each profile
    /// normalized: every vendor vector, every profile and field of its input, one memo for all.
    #[test]
    fn reused_digests_are_each_profiles_own() {
        let file: Vectors = serde_json::from_str(include_str!("vectors.json")).unwrap();
        let mut digests = Digests::default();
        let mut reused = 0;
        for v in &file.vectors {
            let hints = cases::hints(v.country.as_deref());
            for profile in Profile::ALL {
                for field in Field::ALL {
                    let alone = prepare(profile, field, &v.input, hints);
                    let before = digests.0.len();
                    let shared = prepare_reusing(profile, field, &v.input, hints, &mut digests);
                    assert_eq!(shared, alone, "{profile:?} {field:?} {:?}", v.input);
                    let hashed_here = !is_sha256_hex(v.input.trim());
                    if hashed_here
                        && matches!(shared, Ok(Prepared::Hashed(_)))
                        && digests.0.len() == before
                    {
                        reused += 1;
                    }
                }
            }
        }
        assert!(reused > 100, "only {reused} digests were reused");
    }

    #[test]
    fn required_vendor_examples_are_in_the_fixture() {
        let json = include_str!("vectors.json");
        assert!(json.contains("62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"));
        assert!(json.contains("fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"));
        assert_eq!(
            prepare(
                Profile::Meta,
                Field::Email,
                "John_Smith@gmail.com",
                Hints::default()
            ),
            Ok(Prepared::Hashed(
                "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f".into()
            ))
        );
        assert_eq!(
            prepare(
                Profile::Google,
                Field::Phone,
                "+1-800-555-0100",
                Hints::default()
            ),
            Ok(Prepared::Hashed(
                "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30".into()
            ))
        );
    }

    /// Fails to compile when a profile is added: add it to [`Profile::ALL`] too, so that every
    /// case iterating over profiles (and its fuzz target check below) covers it.
    #[allow(dead_code)]
    fn all_profiles_lists_every_profile(p: Profile) {
        match p {
            Profile::Meta
            | Profile::Google
            | Profile::TikTok
            | Profile::Snapchat
            | Profile::Pinterest
            | Profile::Reddit
            | Profile::Microsoft
            | Profile::LinkedIn => {}
        }
    }

    /// The security issue's rule: every identifier normalizer is fuzzed, per vendor. A new
    /// profile without its `normalize_<profile>` target in fuzz/ and in `make fuzz-smoke`
    /// fails here.
    #[test]
    fn every_profile_has_its_fuzz_target_in_the_smoke() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let read = |path: &str| {
            std::fs::read_to_string(format!("{root}/{path}"))
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let manifest = read("fuzz/Cargo.toml");
        let makefile = read("Makefile");
        let smoke = makefile
            .lines()
            .find_map(|l| l.strip_prefix("FUZZ_TARGETS :="))
            .expect("the Makefile lists FUZZ_TARGETS");
        for profile in Profile::ALL {
            let name = serde_json::to_value(profile).expect("a profile serializes");
            let target = format!(
                "normalize_{}",
                name.as_str().expect("a profile is a string")
            );
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "fuzz/Cargo.toml has no [[bin]] {target}"
            );
            assert!(
                smoke.split_whitespace().any(|t| t == target),
                "FUZZ_TARGETS in the Makefile lacks {target}"
            );
            let source = read(&format!("fuzz/fuzz_targets/{target}.rs"));
            assert!(
                source.contains(&format!("Profile::{profile:?}")),
                "fuzz/fuzz_targets/{target}.rs does not check Profile::{profile:?}"
            );
        }
    }
    const ALL_FIELDS: [Field; 11] = Field::ALL;

    #[test]
    fn already_hashed_values_pass_through_lowercased_for_every_hashed_field() {
        let digest = "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F";
        for profile in Profile::ALL {
            for field in ALL_FIELDS {
                let rule = rule(profile, field);
                let got = prepare(profile, field, &format!(" {digest} "), Hints::default());
                match rule {
                    Rule::Hash(_) => assert_eq!(
                        got,
                        Ok(Prepared::Hashed(digest.to_ascii_lowercase())),
                        "{profile:?} {field:?}"
                    ),
                    Rule::Plain(_) | Rule::Unsupported => {
                        assert!(got.is_err(), "{profile:?} {field:?}")
                    }
                }
            }
        }
    }

    #[test]
    fn every_hashed_output_is_64_lowercase_hex() {
        let samples = [
            (Field::Email, "Jane.Doe@Example.com"),
            (Field::Phone, "+49 151 23456789"),
            (Field::FirstName, "Jane"),
            (Field::LastName, "Doe"),
            (Field::City, "Berlin"),
            (Field::State, "Berlin"),
            (Field::Zip, "10115"),
            (Field::Country, "DE"),
            (Field::Gender, "female"),
            (Field::DateOfBirth, "1990-12-31"),
            (Field::ExternalId, "user-42"),
        ];
        for profile in Profile::ALL {
            for (field, raw) in samples {
                if let Ok(Prepared::Hashed(h)) = prepare(profile, field, raw, Hints::default()) {
                    assert_eq!(h.len(), 64);
                    assert!(h
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
                }
            }
        }
    }

    #[test]
    fn a_normalized_name_normalizes_to_itself_where_fuzzing_found_it_did_not() {
        // Found by the normalize_* fuzz targets: a symbol between a letter and its accent
        // (composed only once the symbol was gone), and a suffix that appeared only once
        // digits were dropped (`8MD` → `md`).
        let cases = [
            (Profile::TikTok, Field::FirstName, "GermanGermany*\u{341}q"),
            (Profile::Meta, Field::FirstName, "Ren*e\u{301}"),
            (Profile::Google, Field::City, "Mu*\u{308}nchen"),
            (Profile::Google, Field::LastName, "Doe 8MD"),
            (
                Profile::Google,
                Field::LastName,
                "(C@@DE\n073 42\u{7f}5056:8MD\u{1}",
            ),
        ];
        for (profile, field, raw) in cases {
            let once = normalize(profile, field, raw, Hints::default()).unwrap();
            let twice = normalize(profile, field, &once, Hints::default()).unwrap();
            assert_eq!(twice, once, "{profile:?} {field:?} {raw:?}");
        }
        assert_eq!(
            normalize(
                Profile::Google,
                Field::LastName,
                "Doe 8MD",
                Hints::default()
            ),
            Ok("doe".to_owned())
        );
    }

    #[test]
    fn blank_values_are_rejected_as_empty() {
        for profile in Profile::ALL {
            for field in ALL_FIELDS {
                let got = prepare(profile, field, " \t\n", Hints::default()).unwrap_err();
                assert_eq!(got.field, field);
                assert!(got.reason == "empty" || got.reason == NOT_SUPPORTED);
            }
        }
    }

    #[test]
    fn invalid_values_are_rejected_with_a_reason() {
        for profile in Profile::ALL {
            let email = prepare(profile, Field::Email, "john.smith", Hints::default());
            assert_eq!(
                email,
                Err(Rejected {
                    field: Field::Email,
                    reason: "invalid email"
                })
            );
            if matches!(rule(profile, Field::Phone), Rule::Unsupported) {
                continue; // LinkedIn takes no phone number
            }
            let phone = prepare(profile, Field::Phone, "555-123", Hints::default());
            assert_eq!(
                phone,
                Err(Rejected {
                    field: Field::Phone,
                    reason: "too few digits"
                })
            );
        }
        assert_eq!(
            prepare(
                Profile::Meta,
                Field::DateOfBirth,
                "sometime in spring",
                Hints {
                    received_at: Some(time::macros::datetime!(2026-03-01 12:00 UTC)),
                    ..Hints::default()
                }
            ),
            Err(Rejected {
                field: Field::DateOfBirth,
                reason: "unparseable date"
            })
        );
    }

    #[test]
    fn prepared_debug_redacts_plain_values() {
        let plain = Prepared::Plain("san francisco".into());
        assert_eq!(format!("{plain:?}"), "Plain(<redacted>)");
        assert!(!format!("{:?}", Some(plain)).contains("francisco"));
        let hashed = Prepared::Hashed("ab".into());
        assert_eq!(format!("{hashed:?}"), "Hashed(\"ab\")");
        assert_eq!(hashed.as_str(), "ab");
    }

    #[test]
    fn rejected_display_names_the_field_but_not_the_value() {
        let r = prepare(Profile::Meta, Field::Email, "secret@", Hints::default()).unwrap_err();
        let shown = r.to_string();
        assert!(shown.contains("Email") && shown.contains("invalid email"));
        assert!(!shown.contains("secret"));
    }

    #[test]
    fn enums_serialize_in_snake_case() {
        assert_eq!(serde_json::to_string(&Profile::Meta).unwrap(), "\"meta\"");
        assert_eq!(
            serde_json::to_string(&Profile::TikTok).unwrap(),
            "\"tiktok\""
        );
        assert_eq!(
            serde_json::from_str::<Profile>("\"tiktok\"").unwrap(),
            Profile::TikTok
        );
        assert_eq!(
            serde_json::to_string(&Field::DateOfBirth).unwrap(),
            "\"date_of_birth\""
        );
        assert_eq!(
            serde_json::to_string(&Prepared::Plain("us".into())).unwrap(),
            "{\"Plain\":\"us\"}"
        );
    }

    #[test]
    fn sha256_hex_is_lowercase_hex_of_utf8() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn is_sha256_hex_accepts_exactly_64_hex_characters() {
        let lower = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(is_sha256_hex(lower));
        assert!(is_sha256_hex(&lower.to_ascii_uppercase()));
        assert!(!is_sha256_hex(&lower[..63]));
        assert!(!is_sha256_hex(&format!("{lower}0")));
        assert!(!is_sha256_hex(&lower.replace('a', "g")));
        assert!(!is_sha256_hex(&format!(" {}", &lower[1..])));
    }

    /// The index form of `raw`, without hints.
    fn canonical(field: Field, raw: &str) -> Option<String> {
        canonical_for_index(field, raw, Hints::default())
    }

    /// Asserts the index form of `raw`, without hints.
    fn assert_canonical(field: Field, raw: &str, want: Option<&str>) {
        assert_eq!(canonical(field, raw).as_deref(), want, "{field:?} {raw:?}");
    }

    #[test]
    fn canonical_email_matches_across_spellings() {
        let a = canonical(Field::Email, "John.Smith@Gmail.com ");
        let b = canonical(Field::Email, "john.smith@gmail.com");
        let c = canonical(Field::Email, "johnsmith+news@googlemail.com");
        assert_eq!(a.as_deref(), Some("johnsmith@gmail.com"));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_canonical(
            Field::Email,
            " Jane.Doe@Example.COM",
            Some("jane.doe@example.com"),
        );
        assert_canonical(Field::Email, "not-an-email", None);
    }

    #[test]
    fn canonical_phone_is_international_digits_without_plus() {
        let us = Hints {
            country: Some("US"),
            ..Hints::default()
        };
        assert_eq!(
            canonical_for_index(Field::Phone, "(650) 555-1212", us).as_deref(),
            Some("16505551212")
        );
        assert_canonical(Field::Phone, "+1 650-555-1212", Some("16505551212"));
        assert_eq!(canonical_for_index(Field::Phone, "12", us), None);
    }

    #[test]
    fn canonical_external_id_is_trimmed_only() {
        assert_canonical(Field::ExternalId, "  User-42 ", Some("User-42"));
        assert_canonical(Field::ExternalId, "  ", None);
    }

    #[test]
    fn canonical_form_is_not_kept_for_other_fields() {
        for field in ALL_FIELDS {
            if !matches!(field, Field::Email | Field::Phone | Field::ExternalId) {
                assert_canonical(field, "Berlin", None);
            }
        }
    }
}
