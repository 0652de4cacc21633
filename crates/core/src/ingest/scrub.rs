//! Scrubbing: what ingest removes from properties, traits, event names and URLs before
//! anything is stored, queued or sent, and what connectors remove again from what leaves.
//!
//! Identifiers are found by NAME and by VALUE.
//!
//! By name ([`identifying_key`]), a key compared lowercase with `_`, `-`, `.`, space, `[` and
//! `]` removed: the exact names of [`KEYS`], any key ending in one of [`KEY_SUFFIXES`]
//! (`billing_address`, `work_email`, `home_phone`, `contact_full_name`) and any key starting
//! with one of [`KEY_PREFIXES`] (`address_line_1`, `email2`, `phone_mobile`). In traits, also
//! `name` and `username`.
//!
//! By value ([`find`]), anywhere inside a string (and a key):
//! - an email address: `local@domain.tld`, also with the `@` percent-encoded as `%40`; the
//!   local part is `[A-Za-z0-9._%+-]` or non-ASCII, the domain has a dot and ends in a label
//!   of at least two letters;
//! - an IPv4 address (four dot-separated numbers up to 255) or an IPv6 address (a run of hex
//!   digits and colons with at least two colons that parses as one), not glued to a letter
//!   or digit;
//! - a phone number: a run of digits and the separators `space - . / ( )`, not glued to a
//!   letter or digit, that either starts with `+` and has 8 to 15 digits (E.164), or has 9 to
//!   15 digits and a space, a parenthesis, a slash or at least two separators (national
//!   formats such as `(415) 555-0100`, `415-555-0100`, `030 1234567`, `06 12 34 56 78`); not
//!   when it starts with a date (`2024-05-01`, `01.05.2024`) or is a decimal number with one
//!   `.`. So order ids (`A-1001`, `20240501-1234`), prices (`49.90`), dates and times, UUIDs,
//!   SKUs and Unix timestamps (no separators) are kept. A digits-only string grouped like a
//!   phone number is taken for one, and JSON numbers are never judged by value.
//!
//! What is found is dropped: the whole entry of an object or array (its key and value). A
//! value that IS one email address or phone number (after trimming) is handed to the event's
//! identifiers ([`Found`]), which hash it for each destination if the event named none.
//! URLs in properties and traits lose their query and fragment; URLs that leave (the page
//! URL, a referrer) lose only their identifying parameters ([`strip_url`]).

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

mod names;

pub use names::{
    identifying_key, identifying_param, KEYS, KEY_PREFIXES, KEY_SUFFIXES, URL_PARAMS,
    URL_PARAM_SUFFIXES,
};

/// What kind of identifier a string holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Phone,
    Ip,
}

/// The first identifier anywhere in `s`, by value: emails first, then IP addresses, then
/// phone numbers. `None` after one pass over its bytes for the common string without `@` or
/// `%`, with fewer than 8 digits, and fewer than 3 dots or 2 colons ([`Classes`]).
pub fn find(s: &str) -> Option<Kind> {
    first(s).map(|(kind, _, _)| kind)
}

/// The kind of identifier `s` is as a whole (after trimming), if it is exactly one.
pub fn whole(s: &str) -> Option<Kind> {
    let t = s.trim();
    match first(t) {
        Some((kind, start, end)) if start == 0 && end == t.len() => Some(kind),
        _ => None,
    }
}

/// What one pass over a string's bytes shows it may hold: an `@` or `%` (an email, maybe
/// percent-encoded), and how many digits, dots and colons (a phone number has at least 8
/// digits, an IPv4 address 4 digits and 3 dots, an IPv6 address 2 colons). Branch-free: the compiler vectorizes it, and it runs for
/// every string of every event.
struct Classes {
    at: bool,
    digits: usize,
    dots: usize,
    colons: usize,
}

impl Classes {
    fn of(bytes: &[u8]) -> Self {
        let (mut at, mut digits, mut dots, mut colons) = (0u8, 0usize, 0usize, 0usize);
        // Counted a byte wide within a chunk (at most 128 each), which keeps the vector lanes
        // narrow.
        for chunk in bytes.chunks(128) {
            let (mut d, mut p, mut c) = (0u8, 0u8, 0u8);
            for &b in chunk {
                at |= u8::from(b == b'@') | u8::from(b == b'%');
                d += u8::from(b.wrapping_sub(b'0') < 10);
                p += u8::from(b == b'.');
                c += u8::from(b == b':');
            }
            digits += usize::from(d);
            dots += usize::from(p);
            colons += usize::from(c);
        }
        Self {
            at: at != 0,
            digits,
            dots,
            colons,
        }
    }
}

/// The first identifier in `s` and its byte range.
fn first(s: &str) -> Option<(Kind, usize, usize)> {
    let c = Classes::of(s.as_bytes());
    if c.at {
        if let Some((start, end)) = email(s) {
            return Some((Kind::Email, start, end));
        }
    }
    if let Some((start, end)) = ip(s, &c) {
        return Some((Kind::Ip, start, end));
    }
    if c.digits >= 8 {
        if let Some((start, end)) = phone(s) {
            return Some((Kind::Phone, start, end));
        }
    }
    None
}

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') || b >= 0x80
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-') || b >= 0x80
}

/// The range of the first email address in `s` (`@` or `%40`).
fn email(s: &str) -> Option<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let at_len = match bytes[i] {
            b'@' => 1,
            b'%' if bytes.get(i + 1) == Some(&b'4') && bytes.get(i + 2) == Some(&b'0') => 3,
            _ => {
                i += 1;
                continue;
            }
        };
        let mut start = i;
        while start > 0 && is_local_byte(bytes[start - 1]) {
            start -= 1;
        }
        let local = &bytes[start..i];
        let mut end = i + at_len;
        while end < bytes.len() && is_domain_byte(bytes[end]) {
            end += 1;
        }
        while end > i + at_len && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &bytes[i + at_len..end];
        if local.iter().any(|b| *b != b'.') && valid_domain(domain) {
            return Some((start, end));
        }
        i += at_len;
    }
    None
}

fn valid_domain(domain: &[u8]) -> bool {
    let mut labels = domain.split(|b| *b == b'.');
    let Some(first) = labels.next() else {
        return false;
    };
    let mut count = 1;
    let mut last = first;
    if first.is_empty() {
        return false;
    }
    for label in labels {
        if label.is_empty() {
            return false;
        }
        count += 1;
        last = label;
    }
    count >= 2 && last.len() >= 2 && last.iter().all(|b| b.is_ascii_alphabetic() || *b >= 0x80)
}

/// Maximal runs of bytes that `member` accepts, not glued to a letter or digit on either
/// side (checked on the run with its surrounding spaces trimmed).
fn runs<'a>(
    s: &'a str,
    member: impl Fn(u8) -> bool + 'a,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let bytes = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if !member(bytes[i]) {
                i += 1;
                continue;
            }
            let mut start = i;
            while i < bytes.len() && member(bytes[i]) {
                i += 1;
            }
            let mut end = i;
            while start < end && bytes[start] == b' ' {
                start += 1;
            }
            while end > start && bytes[end - 1] == b' ' {
                end -= 1;
            }
            let glued = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
            if start < end
                && !glued(start.checked_sub(1).and_then(|p| bytes.get(p)))
                && !glued(bytes.get(end))
            {
                return Some((start, end));
            }
        }
        None
    })
}

/// The range of the first IPv4 or IPv6 address in `s`.
fn ip(s: &str, c: &Classes) -> Option<(usize, usize)> {
    if c.digits >= 4 && c.dots >= 3 {
        let v4 = runs(s, |b| b.is_ascii_digit() || b == b'.').find(|&(a, b)| {
            let run = s[a..b].trim_matches('.');
            run.len() >= 7 && run.parse::<Ipv4Addr>().is_ok()
        });
        if v4.is_some() {
            return v4;
        }
    }
    if c.colons < 2 {
        return None;
    }
    runs(s, |b| b.is_ascii_hexdigit() || b == b':' || b == b'.').find(|&(a, b)| {
        let run = &s[a..b];
        run.bytes().filter(|b| *b == b':').count() >= 2
            && run.bytes().any(|b| b.is_ascii_hexdigit())
            && run.parse::<Ipv6Addr>().is_ok()
    })
}

fn is_phone_byte(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'+' | b'(' | b')' | b'-' | b'.' | b'/' | b' ')
}

/// The range of the first phone number in `s` (the rule is in the module docs).
fn phone(s: &str) -> Option<(usize, usize)> {
    if !has_phone_run(s.as_bytes()) {
        return None;
    }
    runs(s, is_phone_byte).find(|&(a, b)| is_phone(&s[a..b]))
}

/// Whether some run of phone bytes holds the 8 digits a phone number has at the fewest: one
/// tight pass that rules out ids, SKUs and hex strings whose digits come in short runs.
fn has_phone_run(bytes: &[u8]) -> bool {
    let mut digits = 0u32;
    for &b in bytes {
        if b.is_ascii_digit() {
            digits += 1;
            if digits == 8 {
                return true;
            }
        } else if !is_phone_byte(b) {
            digits = 0;
        }
    }
    false
}

fn is_phone(run: &str) -> bool {
    let bytes = run.as_bytes();
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    if bytes.first() == Some(&b'+') {
        return bytes
            .get(1)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'(')
            && !bytes[1..].contains(&b'+')
            && (8..=15).contains(&digits);
    }
    if !(9..=15).contains(&digits)
        || bytes.contains(&b'+')
        || !bytes
            .first()
            .is_some_and(|b| b.is_ascii_digit() || *b == b'(')
        || starts_with_date(bytes)
    {
        return false;
    }
    let separators = bytes.iter().filter(|b| !b.is_ascii_digit()).count();
    let decimal = separators == 1 && bytes.contains(&b'.');
    let phone_like =
        bytes.iter().any(|b| matches!(b, b' ' | b'(' | b')' | b'/')) || separators >= 2;
    phone_like && !decimal
}

/// `2024-05-01…`, `2024/05/01…`, `2024.05.01…`, `01.05.2024…`, `1/5/2024…`: three groups of
/// digits with the same separator, the year first or last.
fn starts_with_date(bytes: &[u8]) -> bool {
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let g0 = digits(0);
    let Some(&sep) = bytes.get(g0).filter(|b| matches!(b, b'-' | b'/' | b'.')) else {
        return false;
    };
    let g1 = digits(g0 + 1);
    if bytes.get(g0 + 1 + g1) != Some(&sep) {
        return false;
    }
    let g2 = digits(g0 + g1 + 2);
    let short = |g: usize| (1..=2).contains(&g);
    (g0 == 4 && short(g1) && short(g2)) || (short(g0) && short(g1) && g2 == 4)
}

/// Identifiers found by value where a vendor takes them: the first whole email address and
/// phone number dropped from properties and traits. Ingest hashes them into the event's
/// email and phone fields when the event named none under their own keys.
#[derive(Default)]
pub struct Found {
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("phone", &self.phone.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Found {
    /// Keeps `s` (taken, not copied) when it is a whole email or phone and none was kept yet.
    fn offer(&mut self, s: &mut String) {
        let slot = match whole(s) {
            Some(Kind::Email) => &mut self.email,
            Some(Kind::Phone) => &mut self.phone,
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(std::mem::take(s));
        }
    }

    /// Offers every string of `v` that would be dropped, leaving `v` as it is: for sources
    /// that are read but not kept (`context.traits`).
    pub fn offer_all(&mut self, v: &Value) {
        match v {
            Value::Object(m) => m.values().for_each(|v| self.offer_all(v)),
            Value::Array(a) => a.iter().for_each(|v| self.offer_all(v)),
            Value::String(s) => {
                let slot = match whole(s) {
                    Some(Kind::Email) => &mut self.email,
                    Some(Kind::Phone) => &mut self.phone,
                    _ => return,
                };
                if slot.is_none() {
                    *slot = Some(s.clone());
                }
            }
            _ => {}
        }
    }
}

/// Cuts a URL's query string and fragment, in place (no copy): those carry emails, tokens
/// and click ids.
fn cut_query(s: &mut String) {
    let starts_with = |prefix: &str| {
        s.as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    if !(starts_with("http://") || starts_with("https://")) {
        return;
    }
    if let Some(end) = s.bytes().position(|b| b == b'?' || b == b'#') {
        s.truncate(end);
    }
}

/// Whether a string value may stay: URLs are cut first; one that still holds an identifier
/// is offered to `found` and dropped.
fn keep_string(s: &mut String, found: &mut Found) -> bool {
    cut_query(s);
    if find(s).is_some() {
        found.offer(s);
        return false;
    }
    true
}

/// Removes identifiers from a properties or traits object, recursively, by name and by value
/// (see the module docs). Works in place, so what is kept is neither copied nor rebuilt.
/// Whole emails and phone numbers it drops go to `found`.
pub fn scrub(mut v: Value, drop_name: bool, found: &mut Found) -> Value {
    scrub_in_place(&mut v, drop_name, found);
    v
}

fn scrub_in_place(v: &mut Value, drop_name: bool, found: &mut Found) {
    match v {
        Value::Object(m) => {
            m.retain(|k, v| {
                if identifying_key(k, drop_name) {
                    if let Value::String(s) = v {
                        found.offer(s);
                    }
                    return false;
                }
                if find(k).is_some() {
                    return false;
                }
                match v {
                    Value::String(s) => keep_string(s, found),
                    _ => true,
                }
            });
            for v in m.values_mut() {
                scrub_in_place(v, false, found);
            }
        }
        Value::Array(a) => {
            a.retain_mut(|v| match v {
                Value::String(s) => keep_string(s, found),
                _ => true,
            });
            for v in a {
                scrub_in_place(v, false, found);
            }
        }
        Value::String(s) => {
            cut_query(s);
        }
        _ => {}
    }
}

/// Whether a scalar that leaves (a custom parameter) may go: its key names no identifier and
/// its value holds none. What connectors check again at egress.
pub fn may_leave(key: &str, value: &Value) -> bool {
    !identifying_key(key, false)
        && find(key).is_none()
        && !matches!(value, Value::String(s) if find(s).is_some())
}

/// A URL without identifying parameters, for every URL that leaves: query and fragment
/// parameters named like an identifier ([`URL_PARAMS`], [`URL_PARAM_SUFFIXES`]) or whose
/// (percent-decoded) value holds one, path segments that hold one, and any `user:password@`.
/// Everything else (origin, path, `utm_*`, click ids, order) stays as it was. Borrowed when
/// nothing had to go.
pub fn strip_url(url: &str) -> Cow<'_, str> {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let (scheme, rest) = match base.find("://") {
        Some(i) => base.split_at(i + 3),
        None => ("", base),
    };
    let (authority, path) = if scheme.is_empty() {
        ("", rest)
    } else {
        rest.split_at(rest.find('/').unwrap_or(rest.len()))
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);

    let path_bad = path.split('/').any(holds_identifier);
    let query_bad = query.is_some_and(|q| q.split(['&', ';']).any(param_goes));
    let fragment_bad = fragment.is_some_and(fragment_goes);
    if host.len() == authority.len() && !path_bad && !query_bad && !fragment_bad {
        return Cow::Borrowed(url);
    }

    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str(host);
    if path_bad {
        let kept: Vec<&str> = path.split('/').filter(|s| !holds_identifier(s)).collect();
        out.push_str(&kept.join("/"));
    } else {
        out.push_str(path);
    }
    if let Some(q) = query {
        push_params(&mut out, '?', q);
    }
    if let Some(f) = fragment {
        if f.contains('=') {
            push_params(&mut out, '#', f);
        } else if !holds_identifier(f) {
            out.push('#');
            out.push_str(f);
        }
    }
    Cow::Owned(out)
}

fn push_params(out: &mut String, lead: char, params: &str) {
    let mut first = true;
    for p in params.split(['&', ';']).filter(|p| !param_goes(p)) {
        out.push(if first { lead } else { '&' });
        out.push_str(p);
        first = false;
    }
}

fn fragment_goes(f: &str) -> bool {
    if f.contains('=') {
        f.split(['&', ';']).any(param_goes)
    } else {
        holds_identifier(f)
    }
}

fn param_goes(param: &str) -> bool {
    let (name, value) = param.split_once('=').unwrap_or((param, ""));
    identifying_param(name) || holds_identifier(name) || holds_identifier(value)
}

/// Whether a URL component holds an identifier, read as is and percent-decoded (`+` as a
/// space), so that `%2B1%20415%20555%200100` is a phone number.
fn holds_identifier(component: &str) -> bool {
    if find(component).is_some() {
        return true;
    }
    if !component.bytes().any(|b| b == b'%' || b == b'+') {
        return false;
    }
    find(&percent_decode(component)).is_some()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
