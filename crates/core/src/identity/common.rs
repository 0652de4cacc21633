//! Normalization steps shared by the profiles: email syntax, E.164 phone numbers, dates of
//! birth, text folding and the country / state lookups.
//!
//! Each profile module decides *which* of these steps a field gets; the rules and their
//! sources are cited there. Steps here cite their own source where they implement one.

use std::collections::HashMap;
use std::sync::OnceLock;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::tables::{self, Country, Region, COUNTRIES, REGIONS};
use super::Hints;

/// A normalized value, or the short reason it was refused.
pub(crate) type Outcome = Result<String, &'static str>;

/// Key for table lookups: NFD, combining marks dropped, lowercased, only `a`–`z` kept
/// (`"Québec"` → `quebec`, `"Côte d'Ivoire"` → `cotedivoire`).
pub(crate) fn fold(s: &str) -> String {
    if s.is_ascii() {
        // The same result without the Unicode machinery: ASCII has nothing to decompose.
        return s
            .bytes()
            .filter(u8::is_ascii_alphabetic)
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect();
    }
    s.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .filter(char::is_ascii_lowercase)
        .collect()
}

/// Unicode-aware lowercase, then NFC (so `e` + U+0301 and `é` hash the same).
pub(crate) fn lower_nfc(s: &str) -> String {
    if s.is_ascii() {
        // ASCII is already in NFC and lowercases byte by byte.
        return s.to_ascii_lowercase();
    }
    s.to_lowercase().nfc().collect()
}

/// `value`, or the rejection `reason` when normalizing left nothing of it.
pub(crate) fn non_empty(value: String, reason: &'static str) -> Outcome {
    if value.is_empty() {
        Err(reason)
    } else {
        Ok(value)
    }
}

/// Removes whitespace and the 32 ASCII punctuation characters
/// (``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``), keeping every other character.
/// Mirrors `strip(…, 'whitespace_and_punctuation')` of Meta's capi-param-builder
/// (`nodejs/capi-param-builder/src/piiUtil/commonUtil.js`).
/// Composed (NFC) again afterwards: a removed character may have stood between a letter and
/// its accent (`y*\u{301}` → `ý`), so the result reads the same when normalized again.
pub(crate) fn strip_whitespace_and_punctuation(s: &str) -> String {
    compose(
        s.chars()
            .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation())
            .collect(),
    )
}

/// NFC of `s` (ASCII is already).
fn compose(s: String) -> String {
    if s.is_ascii() {
        s
    } else {
        s.nfc().collect()
    }
}

/// Removes every whitespace character.
pub(crate) fn strip_whitespace(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Keeps letters (and their combining marks) and single spaces between words: digits,
/// punctuation and symbols are dropped, runs of whitespace collapse to one space, the ends
/// are trimmed; composed (NFC) again, as [`strip_whitespace_and_punctuation`] is. Input should
/// already be lowercased.
pub(crate) fn letters_and_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_alphabetic() || is_combining_mark(c) {
            // A space only between kept characters: none leading, trailing or doubled.
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        } else if c.is_whitespace() {
            space = true;
        }
    }
    compose(out)
}

// ---------------------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------------------

/// Trimmed, lowercased and syntax-checked; `Err` when it is not an address.
pub(crate) fn email_trim_lower(raw: &str) -> Outcome {
    let e = raw.trim().to_lowercase();
    if is_valid_email(&e) {
        Ok(e)
    } else {
        Err("invalid email")
    }
}

/// Lowercased with every whitespace character removed, Gmail-folded ([`fold_gmail`]), then
/// checked. Folding comes first so that `j.e.f..ferson@gmail.com`, which Gmail accepts and
/// Google's own formatter folds, is not refused for its double dot.
pub(crate) fn email_google(raw: &str) -> Outcome {
    let lower = if raw.is_ascii() {
        // The same in one pass: ASCII lowercases byte by byte.
        raw.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    } else {
        strip_whitespace(raw).to_lowercase()
    };
    let e = fold_gmail(lower)?;
    if is_valid_email(&e) {
        Ok(e)
    } else {
        Err("invalid email")
    }
}

/// Address syntax, as Meta's capi-param-builder checks it (`EMAIL_RE` in
/// `nodejs/capi-param-builder/src/piiUtil/emailUtil.js`, "a good approximation of RFC 2822"):
/// a dot-separated local part of RFC 5322 `atext` characters, `@`, and a domain of at least
/// two LDH labels. Expects lowercase input. Length capped at 254 (RFC 5321 §4.5.3.1.3).
pub(crate) fn is_valid_email(e: &str) -> bool {
    const ATEXT_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";
    let Some((local, domain)) = e.rsplit_once('@') else {
        return false;
    };
    let local_ok = local.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))
    });
    let mut labels = 0;
    let domain_ok = domain.split('.').all(|label| {
        labels += 1;
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }) && labels >= 2;
    e.len() <= 254 && local_ok && domain_ok
}

/// For `gmail.com` and `googlemail.com`: drops every `.` and any `+suffix` from the local
/// part, which Gmail ignores. Other domains are returned unchanged. Expects a lowercased
/// address; `Err` when there is no `@` or nothing is left of a Gmail local part.
///
/// Source: Google Data Manager API, "Format user data"
/// (<https://developers.google.com/data-manager/api/devguides/concepts/formatting>,
/// `email_address`: "remove all dots (.) before the @ symbol", "remove the plus sign (+) from
/// the local part and all characters that follow it"; example
/// `cloudy.sanfrancisco+shopping@gmail.com` → `cloudysanfrancisco@gmail.com`).
pub(crate) fn fold_gmail(email: String) -> Outcome {
    let Some((_, domain)) = email.rsplit_once('@') else {
        return Err("invalid email");
    };
    if domain != "gmail.com" && domain != "googlemail.com" {
        return Ok(email);
    }
    fold_local_part(&email)
}

/// `email` without the dots and the `+suffix` of its local part, whatever its domain (Reddit's
/// rule; [`fold_gmail`] applies it to Gmail only); `Err` when there is no `@` or nothing is
/// left of the local part.
pub(crate) fn fold_local_part(email: &str) -> Outcome {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("invalid email");
    };
    let local: String = local
        .split('+')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| *c != '.')
        .collect();
    if local.is_empty() {
        return Err("invalid email");
    }
    Ok(format!("{local}@{domain}"))
}

// ---------------------------------------------------------------------------------------
// Phone
// ---------------------------------------------------------------------------------------

/// E.164 digits of a phone number, without the `+` (country calling code included, no
/// leading zeros, 7–15 digits; ITU-T E.164 §6.1 caps numbers at 15 digits).
///
/// * A `+` before the first digit (`+44 …`, `(+44) …`, `tel:+44…`) marks an international
///   number: its digits are kept.
/// * Without `+`, a leading `00` (or `011` in the NANP) is the international access prefix.
/// * Otherwise, when `hints.country` names a country, the number is read as national there:
///   its trunk prefix (`0`, NANP `1`, Russian `8`, ...; libphonenumber `nationalPrefix`) is
///   replaced by the calling code; a number that already starts with the calling code is
///   taken as international (so `16505551212` with `US` stays as is). Countries where a
///   leading 0 belongs to the number (Italy, San Marino, Vatican, ...) have no trunk prefix
///   in the table, so the 0 is kept (`06 1234 5678` in `IT` → `390612345678`).
/// * With neither, the digits are taken to include the country code already.
///
/// An extension (`x12`, `ext. 12`, `#12`, `;ext=12`) is cut off first. Leading zeros are
/// dropped at the end, as Meta requires ("remove … any leading zeros", customer information
/// parameters) and as E.164 implies (no country code starts with 0).
pub(crate) fn e164_digits(raw: &str, hints: Hints<'_>) -> Outcome {
    let s = cut_extension(raw.trim());
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    // `+` before the first digit: `+44 …`, `(+44) …`, `tel:+44…`.
    let has_plus = s.chars().find(|c| *c == '+' || c.is_ascii_digit()) == Some('+');
    let country = hints
        .country
        .and_then(resolve_country)
        .filter(|c| !c.dial.is_empty());
    let international = if has_plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if let Some(country) = country {
        from_national(&digits, country)
    } else {
        digits
    };
    let international = international.trim_start_matches('0');
    match international.len() {
        0..=6 => Err("too few digits"),
        7..=15 => Ok(international.to_owned()),
        _ => Err("too many digits"),
    }
}

/// Cuts `raw` at the first extension marker.
fn cut_extension(raw: &str) -> &str {
    // The first of `ext`, `x`, `#`, `;`, ASCII case ignored. Each starts with an ASCII byte,
    // so `cut` is a char boundary.
    let bytes = raw.as_bytes();
    let cut = (0..bytes.len())
        .find(|&i| match bytes[i].to_ascii_lowercase() {
            b'x' | b'#' | b';' => true,
            b'e' => bytes
                .get(i + 1..i + 3)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(b"xt")),
            _ => false,
        })
        .unwrap_or(raw.len());
    &raw[..cut]
}

/// International digits of a national-format number in `country`.
fn from_national(digits: &str, country: &Country) -> String {
    if country.dial == "1" {
        if let Some(rest) = digits.strip_prefix("011") {
            return rest.to_owned();
        }
    }
    if !country.trunk.is_empty() {
        if let Some(national) = digits.strip_prefix(country.trunk) {
            return format!("{}{national}", country.dial);
        }
    }
    if digits.starts_with(country.dial) {
        return digits.to_owned();
    }
    format!("{}{digits}", country.dial)
}

// ---------------------------------------------------------------------------------------
// Date of birth
// ---------------------------------------------------------------------------------------

/// Date of birth as `YYYYMMDD`.
///
/// Follows `parseDateOfBirth` of Meta's capi-param-builder
/// (`nodejs/capi-param-builder/src/piiUtil/dobUtil.js`): every non-digit separates; of the
/// first three digit groups, one above 31 is the year; of the other two, one above 12 is the
/// day, else the order is month then day (US order: `05-03-1995` is 3 May). A lone
/// eight-digit group is `YYYYMMDD`. Years run from 1800 to next year.
///
/// Beyond the library: an English month name (`Dec 31, 1990`, `31 December 1990`) is read,
/// a lone eight-digit group is checked and falls back to `MMDDYYYY` then `DDMMYYYY`, and the
/// day must exist in its month (the library accepts 31 February).
///
/// "Next year" is the year after the event's `received_at` (`hints`), never the system
/// clock's: a replayed or backfilled event normalizes the same way whenever it is processed.
pub(crate) fn date_of_birth(raw: &str, hints: Hints<'_>) -> Outcome {
    let received_at = hints
        .received_at
        .ok_or("no reception time to check the date against")?;
    parse_date(raw, i64::from(received_at.year())).ok_or("unparseable date")
}

fn parse_date(raw: &str, this_year: i64) -> Option<String> {
    let groups: Vec<&str> = raw
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let number = |g: &str| g.parse::<i64>().ok();

    if let Some(month) = month_name(raw) {
        let (a, b) = (number(groups.first()?)?, number(groups.get(1)?)?);
        let (year, day) = if a > 31 { (a, b) } else { (b, a) };
        return ymd(year, month, day, this_year);
    }
    if groups.len() >= 3 {
        let (n1, n2, n3) = (number(groups[0])?, number(groups[1])?, number(groups[2])?);
        let (year, month, day) = if n1 > 31 {
            if n2 > 12 {
                (n1, n3, n2)
            } else {
                (n1, n2, n3)
            }
        } else if n2 > 31 {
            if n3 > 12 {
                (n2, n1, n3)
            } else {
                (n2, n3, n1)
            }
        } else if n1 > 12 {
            (n3, n2, n1)
        } else {
            (n3, n1, n2)
        };
        return ymd(year, month, day, this_year);
    }
    if let [only] = groups.as_slice() {
        if only.len() == 8 {
            let (a, b, c) = (
                number(&only[..4])?,
                number(&only[4..6])?,
                number(&only[6..])?,
            );
            let (d, e, f) = (
                number(&only[..2])?,
                number(&only[2..4])?,
                number(&only[4..])?,
            );
            return ymd(a, b, c, this_year)
                .or_else(|| ymd(f, d, e, this_year))
                .or_else(|| ymd(f, e, d, this_year));
        }
    }
    None
}

/// `YYYYMMDD` when the date exists and the year is in 1800..=next year.
fn ymd(year: i64, month: i64, day: i64, this_year: i64) -> Option<String> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1800..=this_year + 1).contains(&year) && (1..=days_in_month).contains(&day))
        .then(|| format!("{year:04}{month:02}{day:02}"))
}

/// The month of the first English month name (or 3+ letter prefix of one) in `raw`.
fn month_name(raw: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    raw.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| word.len() >= 3)
        .map(str::to_ascii_lowercase)
        .find_map(|word| {
            let word = if word == "sept" {
                "sep".to_owned()
            } else {
                word
            };
            MONTHS
                .iter()
                .position(|m| m.starts_with(word.as_str()))
                .map(|i| i as i64 + 1)
        })
}

// ---------------------------------------------------------------------------------------
// Countries and states
// ---------------------------------------------------------------------------------------

/// The country a free-text value names: an ISO 3166-1 alpha-2 or alpha-3 code, a name or
/// alias from [`tables::COUNTRIES`], or text whose words name exactly one country
/// (`"Paris, France"`, see [`named_in_text`]). An unknown or ambiguous value is `None`, never
/// a nearby country.
pub(crate) fn resolve_country(raw: &str) -> Option<&'static Country> {
    let key = fold(raw);
    let index = country_index();
    match key.len() {
        0 | 1 => return None,
        2 => {
            return lookup(COUNTRIES, &index.alpha2, &key)
                .or_else(|| lookup(COUNTRIES, &index.names, &key));
        }
        3 => {
            if let Some(c) = lookup(COUNTRIES, &index.alpha3, &key) {
                return Some(c);
            }
        }
        _ => {}
    }
    lookup(COUNTRIES, &index.names, &key).or_else(|| named_in_text(raw))
}

/// Most words a value may have for its words to be read as places.
const MAX_WORDS: usize = 16;
/// Most words of one place name (`"United Kingdom of Great Britain and Northern Ireland"`).
const MAX_NAME_WORDS: usize = 9;

/// The one country that whole words of `raw` name, as in `"Paris, France"` or `"Toronto,
/// Ontario, Canada"`.
///
/// Names match whole words only, so `"BrazilSouthAmerica"` names nothing (a substring search
/// found `america`, i.e. `us`). Every run of words that names a place is found: a country, a
/// US state or Canadian province, or a world region ([`tables::WORLD_REGIONS`]); a name inside
/// a longer one does not count (`"South Sudan"` is not Sudan, `"South America"` is not
/// `us`, `"New Mexico"` is not Mexico). What remains must name exactly one country, by a name
/// that is neither a world region (`"america"`) nor a state of another code (`"georgia"`):
/// `"Brazil, Canada"` and `"Atlanta, Georgia"` are ambiguous and name none.
fn named_in_text(raw: &str) -> Option<&'static Country> {
    let words: Vec<String> = raw
        .split(|c: char| !c.is_alphabetic())
        .map(fold)
        .filter(|w| !w.is_empty())
        .collect();
    // One word was looked up whole already.
    if words.len() < 2 || words.len() > MAX_WORDS {
        return None;
    }
    let countries = &country_index().names;
    let regions = region_names();
    struct Place {
        start: usize,
        end: usize,
        country: Option<&'static Country>,
        /// Also a world region, or a state or province with another code than the country.
        ambiguous: bool,
    }
    let mut places = Vec::new();
    for start in 0..words.len() {
        let mut name = String::new();
        for end in start + 1..=words.len().min(start + MAX_NAME_WORDS) {
            name.push_str(&words[end - 1]);
            let country = lookup(COUNTRIES, countries, &name);
            let region = lookup(REGIONS, regions, &name);
            let world = tables::WORLD_REGIONS.contains(&name.as_str());
            if country.is_none() && region.is_none() && !world {
                continue;
            }
            let ambiguous =
                country.is_some_and(|c| world || region.is_some_and(|r| r.code != c.alpha2));
            places.push(Place {
                start,
                end,
                country,
                ambiguous,
            });
        }
    }
    let inside_another = |p: &Place| {
        places
            .iter()
            .any(|o| o.start <= p.start && p.end <= o.end && (o.start, o.end) != (p.start, p.end))
    };
    let mut found: Option<&'static Country> = None;
    for place in places.iter().filter(|p| !inside_another(p)) {
        let Some(country) = place.country else {
            continue;
        };
        if place.ambiguous || found.is_some_and(|f| f != country) {
            return None;
        }
        found = Some(country);
    }
    found
}

fn region_names() -> &'static Index {
    static NAMES: OnceLock<Index> = OnceLock::new();
    NAMES.get_or_init(|| index(REGIONS, |r| tables::names(r.names)))
}

/// The US state or Canadian province named by an already folded value, or by text
/// containing one (`"State of New York"`), longest name first.
pub(crate) fn resolve_region(key: &str) -> Option<&'static Region> {
    lookup(REGIONS, region_names(), key).or_else(|| containing(REGIONS, key, |r| r.names))
}

/// Key → position of the first table entry that has it, i.e. the entry a front-to-back
/// search finds. Built once: ingest looks countries up several times per event.
type Index = HashMap<&'static str, usize>;

struct CountryIndex {
    alpha2: Index,
    alpha3: Index,
    names: Index,
}

fn country_index() -> &'static CountryIndex {
    static INDEX: OnceLock<CountryIndex> = OnceLock::new();
    INDEX.get_or_init(|| CountryIndex {
        alpha2: index(COUNTRIES, |c| std::iter::once(c.alpha2)),
        alpha3: index(COUNTRIES, |c| std::iter::once(c.alpha3)),
        names: index(COUNTRIES, |c| tables::names(c.names)),
    })
}

fn index<T, K: Iterator<Item = &'static str>>(
    table: &'static [T],
    keys: fn(&'static T) -> K,
) -> Index {
    let mut index = Index::new();
    for (position, entry) in table.iter().enumerate() {
        for key in keys(entry) {
            index.entry(key).or_insert(position);
        }
    }
    index
}

fn lookup<T>(table: &'static [T], index: &Index, key: &str) -> Option<&'static T> {
    index.get(key).map(|&position| &table[position])
}

/// The entry with the longest name (4+ letters) contained in `key`.
fn containing<T>(
    table: &'static [T],
    key: &str,
    names: fn(&T) -> &'static str,
) -> Option<&'static T> {
    table
        .iter()
        .flat_map(|entry| tables::names(names(entry)).map(move |n| (n, entry)))
        .filter(|(n, _)| n.len() >= 4 && key.contains(n))
        .max_by_key(|(n, _)| n.len())
        .map(|(_, entry)| entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(country: &str) -> Hints<'_> {
        Hints {
            country: Some(country),
            ..Hints::default()
        }
    }

    #[test]
    fn fold_removes_diacritics_case_and_non_letters() {
        assert_eq!(fold("Côte d'Ivoire"), "cotedivoire");
        assert_eq!(fold(" Québec "), "quebec");
        assert_eq!(fold("New-York 10"), "newyork");
    }

    #[test]
    fn ascii_fast_paths_agree_with_the_unicode_path() {
        let all_ascii: String = (0u8..128).map(char::from).collect();
        for s in [
            all_ascii.as_str(),
            "  John_Smith@Gmail.COM ",
            "United States of America",
            "N.Y.",
            "",
        ] {
            let folded: String = s
                .nfd()
                .filter(|c| !is_combining_mark(*c))
                .flat_map(char::to_lowercase)
                .filter(char::is_ascii_lowercase)
                .collect();
            assert_eq!(fold(s), folded, "{s:?}");
            let lowered: String = s.to_lowercase().nfc().collect();
            assert_eq!(lower_nfc(s), lowered, "{s:?}");
        }
    }

    /// The allocation-free rewrites against the straightforward versions they replaced.
    #[test]
    fn rewritten_steps_agree_with_their_plain_versions() {
        let samples = [
            "",
            " ",
            "  san   francisco 94 ",
            "o'brien-smith",
            "são paulo",
            "\u{b}a\u{b}b\u{b}",
            "A\tB\nC\rD\u{c}E\u{a0}F\u{3000}G",
            "e\u{301} x",
            "+1 650 555 1212 ext. 33",
            "+1 650 555 1212 EXT 3",
            "555-1212 x33",
            "555-1212 X33",
            "tel:+44#1;2",
            "e",
            "ex",
            "Exe",
            "téléphone 12 ext",
            "John . Smith @ GMail.com ",
            "a@b..c",
            "a@-b.c",
            "a@b.c-",
            "a@b",
            "a@b.c.d",
            "a@.c",
            "ÄBC@Example.com",
        ];
        for s in samples {
            let kept: String = s
                .chars()
                .filter_map(|c| {
                    if c.is_alphabetic() || is_combining_mark(c) {
                        Some(c)
                    } else if c.is_whitespace() {
                        Some(' ')
                    } else {
                        None
                    }
                })
                .collect();
            let words: String = kept
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .nfc()
                .collect();
            assert_eq!(letters_and_spaces(s), words, "{s:?}");

            let lower = s.to_ascii_lowercase();
            let cut = ["ext", "x", "#", ";"]
                .iter()
                .filter_map(|marker| lower.find(marker))
                .min()
                .unwrap_or(s.len());
            assert_eq!(cut_extension(s), &s[..cut], "{s:?}");

            let plain = fold_gmail(strip_whitespace(s).to_lowercase()).and_then(|e| {
                if is_valid_email(&e) {
                    Ok(e)
                } else {
                    Err("invalid email")
                }
            });
            assert_eq!(email_google(s), plain, "{s:?}");

            let e = s.to_lowercase();
            let labels: Vec<&str> = e
                .rsplit_once('@')
                .map_or(vec![], |(_, d)| d.split('.').collect());
            let domain_ok = labels.len() >= 2
                && labels.iter().all(|l| {
                    !l.is_empty()
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                });
            if !domain_ok {
                assert!(!is_valid_email(&e), "{s:?}");
            }
        }
    }

    #[test]
    fn indexed_lookups_find_the_first_entry_a_table_scan_finds() {
        for c in COUNTRIES {
            let keys = [c.alpha2, c.alpha3]
                .into_iter()
                .chain(tables::names(c.names));
            for key in keys {
                let scan = match key.len() {
                    2 => COUNTRIES.iter().find(|e| e.alpha2 == key),
                    3 => COUNTRIES.iter().find(|e| e.alpha3 == key),
                    _ => None,
                }
                .or_else(|| {
                    COUNTRIES
                        .iter()
                        .find(|e| tables::names(e.names).any(|n| n == key))
                });
                assert_eq!(resolve_country(key), scan, "{key}");
            }
        }
        for r in REGIONS {
            for key in tables::names(r.names) {
                let scan = REGIONS
                    .iter()
                    .find(|e| tables::names(e.names).any(|n| n == key));
                assert_eq!(resolve_region(key), scan, "{key}");
            }
        }
    }

    #[test]
    fn lower_nfc_composes_decomposed_accents() {
        assert_eq!(lower_nfc("Vale\u{301}ry"), "val\u{e9}ry");
    }

    #[test]
    fn letters_and_spaces_drops_digits_and_symbols_and_collapses_spaces() {
        assert_eq!(letters_and_spaces("  san   francisco 94 "), "san francisco");
        assert_eq!(letters_and_spaces("o'brien-smith"), "obriensmith");
        assert_eq!(letters_and_spaces("são paulo"), "são paulo");
    }

    #[test]
    fn email_validation_accepts_common_addresses() {
        for ok in [
            "john_smith@gmail.com",
            "a.b+tag@sub.example.co.uk",
            "o'hara@example.ie",
            "x@a-b.io",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
    }

    #[test]
    fn email_validation_rejects_malformed_addresses() {
        for bad in [
            "john",
            "john@",
            "@example.com",
            "john@localhost",
            "jo hn@example.com",
            "john..smith@example.com",
            ".john@example.com",
            "john@-example.com",
            "john@example..com",
            "jöhn@example.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn gmail_folding_drops_dots_and_plus_suffix_only_for_google_domains() {
        assert_eq!(
            fold_gmail("j.e.f..ferson+x@googlemail.com".into()),
            Ok("jefferson@googlemail.com".into())
        );
        assert_eq!(
            fold_gmail("user.name+nyc@example.com".into()),
            Ok("user.name+nyc@example.com".into())
        );
        assert_eq!(fold_gmail("+x@gmail.com".into()), Err("invalid email"));
    }

    #[test]
    fn phone_with_plus_ignores_the_country_hint() {
        assert_eq!(
            e164_digits("+44 20 7946 0958", hints("US")),
            Ok("442079460958".into())
        );
    }

    #[test]
    fn phone_plus_inside_brackets_or_a_tel_uri_still_marks_an_international_number() {
        assert_eq!(
            e164_digits("(+44) 20 7946 0958", hints("US")),
            Ok("442079460958".into())
        );
        assert_eq!(
            e164_digits("tel:+44-20-7946-0958", hints("DE")),
            Ok("442079460958".into())
        );
    }

    #[test]
    fn phone_national_number_gets_the_hinted_calling_code() {
        assert_eq!(
            e164_digits("020 7946 0958", hints("GB")),
            Ok("442079460958".into())
        );
        assert_eq!(
            e164_digits("(650) 555-1212", hints("us")),
            Ok("16505551212".into())
        );
        assert_eq!(
            e164_digits("1 650 555 1212", hints("United States")),
            Ok("16505551212".into())
        );
        assert_eq!(
            e164_digits("8 (912) 345-67-89", hints("RU")),
            Ok("79123456789".into())
        );
        assert_eq!(
            e164_digits("0151 2345 6789", hints("Deutschland")),
            Ok("4915123456789".into())
        );
    }

    #[test]
    fn phone_italian_leading_zero_is_kept() {
        assert_eq!(
            e164_digits("06 1234 5678", hints("IT")),
            Ok("390612345678".into())
        );
    }

    #[test]
    fn phone_already_international_without_plus_is_kept() {
        assert_eq!(
            e164_digits("16505551212", hints("US")),
            Ok("16505551212".into())
        );
        assert_eq!(
            e164_digits("0044 20 7946 0958", hints("DE")),
            Ok("442079460958".into())
        );
        assert_eq!(
            e164_digits("011 44 20 7946 0958", hints("CA")),
            Ok("442079460958".into())
        );
        assert_eq!(
            e164_digits("441134960987", hints("GB")),
            Ok("441134960987".into())
        );
    }

    #[test]
    fn phone_without_plus_or_hint_is_taken_as_international() {
        assert_eq!(
            e164_digits("1-800-555-0100", Hints::default()),
            Ok("18005550100".into())
        );
    }

    #[test]
    fn phone_extension_is_cut_off() {
        assert_eq!(
            e164_digits("+1 650 555 1212 ext. 33", Hints::default()),
            Ok("16505551212".into())
        );
        assert_eq!(
            e164_digits("+1 650 555 1212 x33", Hints::default()),
            Ok("16505551212".into())
        );
    }

    #[test]
    fn phone_length_limits_follow_e164() {
        assert_eq!(
            e164_digits("12345", Hints::default()),
            Err("too few digits")
        );
        assert_eq!(
            e164_digits("no digits", Hints::default()),
            Err("too few digits")
        );
        assert_eq!(
            e164_digits("+1234567890123456", Hints::default()),
            Err("too many digits")
        );
    }

    #[test]
    fn phone_unknown_country_hint_is_ignored() {
        assert_eq!(
            e164_digits("16505551212", hints("Narnia")),
            Ok("16505551212".into())
        );
    }

    #[test]
    fn date_orders_follow_the_parameter_builder() {
        let cases = [
            ("2/16/1997", "19970216"),
            ("16-2-1997", "19970216"),
            ("1990-12-31", "19901231"),
            ("12/31/1990", "19901231"),
            ("31.12.1990", "19901231"),
            ("05-03-1995", "19950503"),
            ("1990.12.31", "19901231"),
            ("19901231", "19901231"),
            ("DOB is 1990/12/31 (verified)", "19901231"),
            ("1990-12-31T10:30:00Z", "19901231"),
            ("12月31日1990年", "19901231"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_date(input, 2026).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn date_with_month_names_is_read() {
        for input in [
            "December 31, 1990",
            "Dec 31 1990",
            "31 december 1990",
            "1990 Dec 31",
        ] {
            assert_eq!(
                parse_date(input, 2026).as_deref(),
                Some("19901231"),
                "{input}"
            );
        }
    }

    #[test]
    fn date_eight_digits_fall_back_to_us_then_european_order() {
        assert_eq!(parse_date("12311990", 2026).as_deref(), Some("19901231"));
        assert_eq!(parse_date("31121990", 2026).as_deref(), Some("19901231"));
    }

    #[test]
    fn date_impossible_or_out_of_range_is_refused() {
        for input in [
            "02/30/1990",
            "13/13/1990",
            "12/31/90",
            "01-01-1799",
            "01-01-2028",
            "1990",
            "",
            "１２－３１－１９９０",
        ] {
            assert_eq!(parse_date(input, 2026), None, "{input}");
        }
        assert_eq!(parse_date("01-01-2027", 2026).as_deref(), Some("20270101"));
        assert_eq!(parse_date("02-29-2000", 2026).as_deref(), Some("20000229"));
        assert_eq!(parse_date("02-29-1900", 2026), None);
    }

    #[test]
    fn a_date_of_birth_may_lie_in_the_year_after_the_event_was_received_not_after_today() {
        let received = |at| Hints {
            country: None,
            received_at: Some(at),
        };
        // Received in 2030: 2031 is "next year" (the system clock's next year is not).
        let in_2030 = received(time::macros::datetime!(2030-06-01 12:00 UTC));
        assert_eq!(
            date_of_birth("2031-01-05", in_2030).as_deref(),
            Ok("20310105")
        );
        assert!(date_of_birth("2032-01-05", in_2030).is_err());
        // Received in 2019 (a replayed backfill): 2021 is too late, whatever today is.
        let in_2019 = received(time::macros::datetime!(2019-12-31 23:59 UTC));
        assert_eq!(
            date_of_birth("2021-01-05", in_2019),
            Err("unparseable date")
        );
        assert_eq!(
            date_of_birth("2020-01-05", in_2019).as_deref(),
            Ok("20200105")
        );
        // Without a reception time there is nothing to check against: refused, not guessed.
        assert!(date_of_birth("1990-01-05", Hints::default()).is_err());
    }

    #[test]
    fn countries_resolve_from_codes_names_and_aliases() {
        let a2 = |s: &str| resolve_country(s).map(|c| c.alpha2);
        assert_eq!(a2("US"), Some("us"));
        assert_eq!(a2("usa"), Some("us"));
        assert_eq!(a2("United States"), Some("us"));
        assert_eq!(a2("United States of America"), Some("us"));
        assert_eq!(a2("UK"), Some("gb"));
        assert_eq!(a2("Great Britain"), Some("gb"));
        assert_eq!(a2("Deutschland"), Some("de"));
        assert_eq!(a2("DEU"), Some("de"));
        assert_eq!(a2("Côte d’Ivoire"), Some("ci"));
        assert_eq!(a2("Türkiye"), Some("tr"));
        assert_eq!(a2("Korea, Republic of"), Some("kr"));
        assert_eq!(a2("North Korea"), Some("kp"));
        assert_eq!(a2("South Sudan"), Some("ss"));
        assert_eq!(a2("Paris, France"), Some("fr"));
        assert_eq!(a2("fra"), Some("fr"));
        assert_eq!(a2("de"), Some("de"));
        assert_eq!(a2("Georgia"), Some("ge"));
        assert_eq!(a2("Brazil"), Some("br"));
        assert_eq!(a2("Canada"), Some("ca"));
        assert_eq!(a2("Federal Republic of Nigeria"), Some("ng"));
        assert_eq!(a2("XX"), None);
        assert_eq!(a2("Narnia"), None);
        assert_eq!(a2(""), None);
    }

    #[test]
    fn an_ambiguous_or_unknown_country_names_none_never_another_country() {
        let a2 = |s: &str| resolve_country(s).map(|c| c.alpha2);
        // A continent's name holds "america"; the value names no country, not the US.
        assert_eq!(a2("BrazilSouthAmerica"), None);
        assert_eq!(a2("CanadaNorthAmerica"), None);
        assert_eq!(a2("South America"), None);
        assert_eq!(a2("North America"), None);
        assert_eq!(a2("Latin America"), None);
        assert_eq!(a2("Europe"), None);
        assert_eq!(a2("Asia"), None);
        assert_eq!(a2("Southeast Asia"), None);
        assert_eq!(a2("European Union"), None);
        // Two countries: which one is not ours to guess.
        assert_eq!(a2("Brazil, Canada"), None);
        assert_eq!(a2("France / Germany"), None);
        assert_eq!(a2("Niger Nigeria"), None);
        // A country name that is also a US state of another code, in text.
        assert_eq!(a2("Atlanta, Georgia"), None);
        assert_eq!(a2("Georgia, USA"), None);
        // A country name inside a longer place name is not that country.
        assert_eq!(a2("New Mexico"), None);
        assert_eq!(a2("Albuquerque, New Mexico, USA"), Some("us"));
        // A world region beside one country does not hide it.
        assert_eq!(a2("Brazil, South America"), Some("br"));
        assert_eq!(a2("Toronto, Ontario, Canada"), Some("ca"));
        assert_eq!(a2("Cape Town, South Africa"), Some("za"));
        assert_eq!(a2("London, UK"), Some("gb"));
        assert_eq!(a2("Port Moresby, Papua New Guinea"), Some("pg"));
        // Unknown text.
        assert_eq!(a2("Middle Earth"), None);
        assert_eq!(a2("Paris"), None);
    }

    #[test]
    fn every_country_has_a_unique_code_and_a_calling_code_where_one_exists() {
        for (i, c) in COUNTRIES.iter().enumerate() {
            assert_eq!(c.alpha2.len(), 2);
            assert_eq!(c.alpha3.len(), 3);
            assert!(c.dial.chars().all(|d| d.is_ascii_digit()));
            assert!(c.trunk.chars().all(|d| d.is_ascii_digit()));
            assert!(COUNTRIES[i + 1..].iter().all(|o| o.alpha2 != c.alpha2));
        }
        assert_eq!(COUNTRIES.len(), 249);
        assert_eq!(resolve_country("ag").map(|c| c.dial), Some("1"));
    }

    #[test]
    fn regions_resolve_from_names_and_text_containing_them() {
        let code = |s: &str| resolve_region(&fold(s)).map(|r| r.code);
        assert_eq!(code("California"), Some("ca"));
        assert_eq!(code("West Virginia"), Some("wv"));
        assert_eq!(code("Virginia"), Some("va"));
        assert_eq!(code("Arkansas"), Some("ar"));
        assert_eq!(code("Washington, D.C."), Some("dc"));
        assert_eq!(code("State of New York"), Some("ny"));
        assert_eq!(code("Québec"), Some("qc"));
        assert_eq!(code("Puerto Rico"), Some("pr"));
        assert_eq!(code("Bavaria"), None);
    }
}
