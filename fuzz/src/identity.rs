//! Every identifier normalizer of one vendor profile, on one input, for every field.
//!
//! Input: UTF-8 text; a first line `@@<country>` (e.g. `@@DE`) is taken as the country hint.

use tracklayer_core::identity::{
    canonical_for_index, is_sha256_hex, normalize, prepare, sha256_hex, Field, Hints, Prepared,
    Profile,
};

pub fn check(profile: Profile, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (country, raw) = match text.strip_prefix("@@").and_then(|t| t.split_once('\n')) {
        Some((country, raw)) => (Some(country), raw),
        None => (None, text),
    };
    let hints = Hints {
        country,
        received_at: Some(crate::T0),
    };
    for field in Field::ALL {
        one(profile, field, raw, hints);
    }
}

fn one(profile: Profile, field: Field, raw: &str, hints: Hints<'_>) {
    // What a failed assertion prints; formatted only then (assert's message is lazy): built
    // eagerly, it was a Debug rendering of the whole input per field per execution.
    let at = At {
        profile,
        field,
        raw,
        hints,
    };
    let prepared = prepare(profile, field, raw, hints);
    let normalized = normalize(profile, field, raw, hints);
    let digest_given = is_sha256_hex(raw.trim());
    match &prepared {
        // Hashing output is always 64 lowercase hex: of the normalized value, or the digest
        // that was sent, lowercased (never hashed twice).
        Ok(Prepared::Hashed(h)) => {
            assert!(crate::is_lower_hex_64(h), "{at}: {h}");
            if digest_given {
                assert_eq!(h, &raw.trim().to_ascii_lowercase(), "{at}");
            } else {
                let n = normalized.as_ref().expect("hashed means normalized");
                assert_eq!(h, &sha256_hex(n), "{at}");
            }
        }
        Ok(Prepared::Plain(p)) => {
            assert!(
                !digest_given,
                "{at}: a digest sent where a plain value is wanted"
            );
            assert_eq!(normalized.as_ref(), Ok(p), "{at}");
        }
        Err(rejected) => {
            assert_eq!(rejected.field, field, "{at}");
            if !digest_given {
                assert_eq!(normalized.as_ref().err(), Some(rejected), "{at}");
            }
        }
    }
    // Normalizing a normalized value changes nothing, and what is sent plain or hashed is the
    // same for the value and its normal form.
    if let Ok(n) = &normalized {
        let again = international(field, n);
        assert_eq!(
            normalize(profile, field, &again, hints).as_ref(),
            Ok(n),
            "{at}"
        );
        if !digest_given && !is_sha256_hex(&again) {
            assert_eq!(prepare(profile, field, &again, hints), prepared, "{at}");
        }
    }
    // The subject index form is a fixed point too (an erasure request finds what ingest
    // indexed, whichever spelling it is sent in).
    if let Some(c) = canonical_for_index(field, raw, hints) {
        assert_eq!(
            canonical_for_index(field, &international(field, &c), hints).as_deref(),
            Some(c.as_str()),
            "{at}"
        );
    }
}

/// A normal form as it is read again: a phone number's digits carry their country code, which
/// a `+` says (without it, a country hint makes them a national number).
fn international(field: Field, normal: &str) -> String {
    match field {
        Field::Phone if !normal.starts_with('+') => format!("+{normal}"),
        _ => normal.to_owned(),
    }
}

/// The case a failed assertion names: the profile, the field, the input and its hints.
struct At<'a> {
    profile: Profile,
    field: Field,
    raw: &'a str,
    hints: Hints<'a>,
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let At {
            profile,
            field,
            raw,
            hints,
        } = self;
        write!(f, "{profile:?} {field:?} {raw:?} {hints:?}")
    }
}
