//! Click and browser ids an event carries, read from one table ([`CLICK_IDS`]): first from
//! the keys the event names (context, then properties), else from its landing page URL's query
//! (where the ad platform appended them to the click) or a cookie value, before ingest cuts URLs
//! in properties to their path. Ingest reads them once, in `ingest::prepare`, with [`read`].
//!
//! | stored as | event keys | else derived from |
//! |---|---|---|
//! | `fbp` | `fbp`, `_fbp` | — |
//! | `fbc` | `fbc`, `_fbc` | URL `fbclid`, see [`fbc`] |
//! | `gclid`, `gbraid`, `wbraid` | the same name | URL parameter of the same name |
//! | `ttclid` | `ttclid` | URL `ttclid` |
//! | `ttp` | `ttp`, `_ttp` | — |
//! | `client_id` | `client_id`, `clientId`, `ga_client_id` | `_ga` cookie value, see [`ga_client_id`] |
//! | `sc_click_id` | `sc_click_id`, `ScCid` | URL `ScCid` |
//! | `sc_cookie1` | `sc_cookie1` | — |
//! | `epik` | `epik` | URL `epik` |
//! | `rdt_cid`, `li_fat_id`, `msclkid` | the same name | URL parameter of the same name |
//!
//! - Meta `fbc` from the page URL's `fbclid`, formatted `fb.{subdomainIndex}.{creationTime}.{fbclid}`
//!   with `subdomainIndex` 1 (what a server that does not save an `_fbc` cookie uses),
//!   `creationTime` the Unix time in milliseconds when the `fbclid` was first observed (the
//!   event's timestamp) and the `fbclid` unmodified ("ClickID value is case sensitive - do not
//!   apply any modifications"):
//!   <https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/fbp-and-fbc/>.
//!   An `fbc`/`_fbc` the event gives is kept exactly as given, never rebuilt.
//! - Google's client id from the `_ga` cookie value `GA1.{depth}.{random}.{timestamp}`: the last
//!   two fields (`GA1.1.1234567890.1700000000` → `1234567890.1700000000`), the value gtag's
//!   `get client_id` answers and the Measurement Protocol's `client_id` takes
//!   (<https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference>).
//! - Snap: `sc_click_id` is "Retrieved from the ScCid … query parameter", with `sc_cookie1`
//!   (<https://developers.snap.com/api/marketing-api/Conversions-API/Parameters>); the other
//!   parameter names as each connector module cites them.
//!
//! Page URLs are read from `context.page.url`, `context.page.search`, `properties.url` and
//! `properties.search`, in that order (analytics-next and rudder-sdk-js send all four on a
//! page call, the context ones on every call); query parameter names match in any ASCII case.
//!
//! A click id leaves unhashed, so only a value that can be nothing else is taken ([`usable`]):
//! 1 to 512 RFC 3986 unreserved characters (letters, digits, `-._~`) — no whitespace, no `@`,
//! no `+`, no percent-escape that could hide an email or phone number — and no IP address.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::ingest::inherit::Layered;

/// Where an id is found when the event does not name it.
#[derive(Clone, Copy)]
enum Else {
    /// Nowhere else.
    Nothing,
    /// The page URL's query parameter of this name, as given.
    Query(&'static str),
    /// Meta's formatted ClickID of the page URL's `fbclid` ([`fbc`]).
    Fbclid,
    /// Google's client id of the `_ga` cookie value ([`ga_client_id`]).
    GaCookie,
}

/// One click id: its stored name, the event keys that hold it as it is, where else it is found.
struct ClickId {
    name: &'static str,
    keys: &'static [&'static str],
    or_else: Else,
}

const fn id(name: &'static str, keys: &'static [&'static str], or_else: Else) -> ClickId {
    ClickId {
        name,
        keys,
        or_else,
    }
}

/// Every click id ingest stores.
const CLICK_IDS: &[ClickId] = &[
    id("fbp", &["fbp", "_fbp"], Else::Nothing),
    id("fbc", &["fbc", "_fbc"], Else::Fbclid),
    id("gclid", &["gclid"], Else::Query("gclid")),
    id("gbraid", &["gbraid"], Else::Query("gbraid")),
    id("wbraid", &["wbraid"], Else::Query("wbraid")),
    id("ttclid", &["ttclid"], Else::Query("ttclid")),
    id("ttp", &["ttp", "_ttp"], Else::Nothing),
    id(
        "client_id",
        &["client_id", "clientId", "ga_client_id"],
        Else::GaCookie,
    ),
    id(
        "sc_click_id",
        &["sc_click_id", "ScCid"],
        Else::Query("ScCid"),
    ),
    id("sc_cookie1", &["sc_cookie1"], Else::Nothing),
    id("epik", &["epik"], Else::Query("epik")),
    id("rdt_cid", &["rdt_cid"], Else::Query("rdt_cid")),
    id("li_fat_id", &["li_fat_id"], Else::Query("li_fat_id")),
    id("msclkid", &["msclkid"], Else::Query("msclkid")),
];

/// Longest click id taken (Meta's and Google's are well under 200 characters).
const MAX_LEN: usize = 512;

/// Whether `v` may be a click id: 1 to [`MAX_LEN`] RFC 3986 unreserved characters, in which
/// the scrubber finds no identifier either (an IPv4 address is made of them).
fn usable(v: &str) -> bool {
    (1..=MAX_LEN).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        && crate::ingest::scrub::find(v).is_none()
}

/// A string (trimmed) or number value as text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Every event key [`CLICK_IDS`] reads an id from, and `_ga`: a slot each in [`Slots`].
const EVENT_KEYS: [&str; 22] = [
    "fbp",
    "_fbp",
    "fbc",
    "_fbc",
    "gclid",
    "gbraid",
    "wbraid",
    "ttclid",
    "ttp",
    "_ttp",
    "client_id",
    "clientId",
    "ga_client_id",
    "sc_click_id",
    "ScCid",
    "sc_cookie1",
    "epik",
    "rdt_cid",
    "li_fat_id",
    "msclkid",
    "_ga",
    "page",
];

/// Whether `key` is one under which an event may carry a click id ([`EVENT_KEYS`]).
pub(crate) fn is_event_key(key: &str) -> bool {
    slot(key).is_some()
}

/// The slot of an event key in [`EVENT_KEYS`].
fn slot(key: &str) -> Option<usize> {
    // Most keys of an object are none of these: their length rules nearly all out first.
    if !(3..=12).contains(&key.len()) {
        return None;
    }
    EVENT_KEYS.iter().position(|k| *k == key)
}

/// Objects with more keys than this are looked up key by key instead of walked.
const WALK_AT_MOST: usize = 48;

/// The values an object holds under [`EVENT_KEYS`]: found by one walk over a small object
/// (a lookup in a `serde_json` map compares keys down a B-tree, and there were some 60 per
/// event, 3 % of `serve`'s core under load), key by key in a large one.
struct Slots<'v>([Option<&'v Value>; EVENT_KEYS.len()]);

impl<'v> Slots<'v> {
    fn of(map: &'v Map<String, Value>) -> Self {
        let mut slots = [None; EVENT_KEYS.len()];
        if map.len() <= WALK_AT_MOST {
            for (k, v) in map {
                if let Some(i) = slot(k) {
                    slots[i] = Some(v);
                }
            }
        } else {
            for (i, k) in EVENT_KEYS.iter().enumerate() {
                slots[i] = map.get(*k);
            }
        }
        Self(slots)
    }

    /// The value under `key`, one of [`EVENT_KEYS`].
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.0[slot(key)?]
    }

    /// These values over `under`'s: a key this object has wins, as [`Layered::get`] answers.
    fn over(mut self, under: Slots<'v>) -> Self {
        for (mine, theirs) in self.0.iter_mut().zip(under.0) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        self
    }
}

/// The click ids of an event of this `context` (the batch's read through) and these
/// `properties`; `observed_at` is the event's timestamp.
pub(crate) fn read(
    context: &Layered<'_>,
    properties: &Map<String, Value>,
    observed_at: OffsetDateTime,
) -> BTreeMap<String, String> {
    let (own, batch) = context.layers();
    let context = match batch {
        Some(batch) => Slots::of(own).over(Slots::of(batch)),
        None => Slots::of(own),
    };
    let page = context.get("page");
    let urls: Vec<&str> = [
        page.and_then(|p| p.get("url")),
        page.and_then(|p| p.get("search")),
        properties.get("url"),
        properties.get("search"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .collect();
    let properties = Slots::of(properties);
    // Each URL's query split once, not once per click id looked for in it.
    let queries: Vec<Vec<(&str, &str)>> = urls.iter().map(|url| query_pairs(url)).collect();
    let param = |name: &str| queries.iter().find_map(|pairs| query_param(pairs, name));
    // Each key in the context, then each in properties: the first usable value.
    let named = |keys: &[&str]| {
        let in_context = keys.iter().map(|k| context.get(k));
        let in_properties = keys.iter().map(|k| properties.get(k));
        in_context
            .chain(in_properties)
            .flatten()
            .filter_map(text)
            .find(|v| usable(v))
    };
    let mut out = BTreeMap::new();
    for id in CLICK_IDS {
        let found = named(id.keys).or_else(|| match id.or_else {
            Else::Nothing => None,
            Else::Query(name) => param(name).map(str::to_owned),
            Else::Fbclid => param("fbclid").map(|fbclid| fbc(fbclid, observed_at)),
            Else::GaCookie => context
                .get("_ga")
                .or_else(|| properties.get("_ga"))
                .and_then(Value::as_str)
                .and_then(ga_client_id),
        });
        if let Some(v) = found {
            out.insert(id.name.to_owned(), v);
        }
    }
    out
}

/// Meta's formatted ClickID for an `fbclid` first observed at `observed_at`.
pub fn fbc(fbclid: &str, observed_at: OffsetDateTime) -> String {
    let millis = observed_at.unix_timestamp_nanos() / 1_000_000;
    format!("fb.1.{millis}.{fbclid}")
}

/// The client id in a `_ga` cookie value: `GA1.1.1234567890.1700000000` →
/// `1234567890.1700000000`. The depth may carry a path count (`GA1.2-2.…`); both ids are
/// digits. `None` for anything else.
pub fn ga_client_id(cookie: &str) -> Option<String> {
    let mut fields = cookie.trim().split('.');
    let version = fields.next()?;
    let depth = fields.next()?;
    let (random, created) = (fields.next()?, fields.next()?);
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = fields.next().is_none()
        && version.strip_prefix("GA").is_some_and(digits)
        && depth.split('-').all(digits)
        && digits(random)
        && digits(created);
    ok.then(|| format!("{random}.{created}"))
}

/// The value of the first query parameter `name` (ASCII case ignored) of a URL (or a bare
/// `?a=b` query), as it is written: click ids must not be altered. `None` when absent or not
/// [`usable`].
fn query_param<'u>(pairs: &[(&str, &'u str)], name: &str) -> Option<&'u str> {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
        .filter(|v| usable(v))
}

/// The `name=value` pairs of a URL's query (before its fragment), in order.
fn query_pairs(url: &str) -> Vec<(&str, &str)> {
    let before_fragment = url.split('#').next().unwrap_or(url);
    let Some((_, query)) = before_fragment.split_once('?') else {
        return Vec::new();
    };
    query
        .split(['&', ';'])
        .filter_map(|p| p.split_once('='))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Meta's documented example: this fbclid, first observed at 1554763741205 ms.
    const META_FBCLID: &str = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"; // pragma: allowlist secret

    fn at_millis(ms: i128) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap()
    }

    /// The click ids of an event with this context and these properties.
    fn ids(context: &Value, properties: &Value) -> BTreeMap<String, String> {
        read(
            &Layered::new(context.as_object().unwrap(), None),
            properties.as_object().unwrap(),
            at_millis(1_554_763_741_205),
        )
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fbc_is_built_from_the_fbclid_exactly_as_metas_example() {
        assert_eq!(
            fbc(META_FBCLID, at_millis(1_554_763_741_205)),
            format!("fb.1.1554763741205.{META_FBCLID}")
        );
    }

    #[test]
    fn the_page_urls_fbclid_becomes_fbc_with_the_event_time_in_milliseconds() {
        let ctx = json!({"page": {"url": format!("https://example.com/?fbclid={META_FBCLID}")}});
        assert_eq!(
            ids(&ctx, &json!({}))["fbc"],
            format!("fb.1.1554763741205.{META_FBCLID}")
        );
    }

    #[test]
    fn a_given_fbc_is_kept_unchanged_and_never_rebuilt_from_the_url() {
        let ctx = json!({"fbc": "fb.2.1600000000000.OLD",
                         "page": {"url": "https://shop.example/?fbclid=NEWCLICK"}});
        assert_eq!(ids(&ctx, &json!({}))["fbc"], "fb.2.1600000000000.OLD");
    }

    #[test]
    fn the_fbclid_keeps_its_case_and_characters() {
        let ctx = json!({"page": {"search": "?utm_source=fb&fbclid=AbC-d_E"}});
        assert!(ids(&ctx, &json!({}))["fbc"].ends_with(".AbC-d_E"));
    }

    #[test]
    fn google_and_tiktok_click_ids_are_read_from_the_page_url() {
        let ctx = json!({"page": {"url":
            "https://shop.example/p?gclid=Cj0KCQiA&gbraid=0AAAAA9&wbraid=Cl4KCQ&ttclid=E.C.P.abc#top"}});
        let ids = ids(&ctx, &json!({}));
        assert_eq!(ids["gclid"], "Cj0KCQiA");
        assert_eq!(ids["gbraid"], "0AAAAA9");
        assert_eq!(ids["wbraid"], "Cl4KCQ");
        assert_eq!(ids["ttclid"], "E.C.P.abc");
    }

    #[test]
    fn a_page_calls_properties_url_is_read_when_the_context_has_none() {
        let props = json!({"url": "https://shop.example/?gclid=G1", "search": "?ttclid=T1"});
        let ids = ids(&json!({}), &props);
        assert_eq!(ids["gclid"], "G1");
        assert_eq!(ids["ttclid"], "T1");
    }

    #[test]
    fn the_ga_cookie_value_gives_the_client_id_of_its_last_two_fields() {
        assert_eq!(
            ga_client_id("GA1.1.1234567890.1700000000").as_deref(),
            Some("1234567890.1700000000")
        );
        assert_eq!(
            ga_client_id("GA1.2.468604437.1611708469").as_deref(),
            Some("468604437.1611708469")
        );
        assert_eq!(ga_client_id("GA1.2-2.1.2").as_deref(), Some("1.2"));
        for bad in [
            "",
            "GA1.1.abc.1700000000",
            "1234.5678",
            "GS1.1.1.2",
            "GA1.1.1.2.3",
        ] {
            assert_eq!(ga_client_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_ga_value_in_context_becomes_the_client_id_unless_one_is_given() {
        let ctx = json!({"_ga": "GA1.1.1234567890.1700000000"});
        assert_eq!(ids(&ctx, &json!({}))["client_id"], "1234567890.1700000000");
        let given = json!({"_ga": "GA1.1.1234567890.1700000000", "client_id": "9.9"});
        assert_eq!(ids(&given, &json!({}))["client_id"], "9.9");
    }

    #[test]
    fn unsafe_empty_or_absent_parameters_are_no_click_id() {
        let ctx = json!({"page": {"url":
            "https://shop.example/?gclid=&ttclid=a%40b.example&xgclid=1&fbclid"}});
        assert!(ids(&ctx, &json!({})).is_empty());
    }

    #[test]
    fn click_ids_are_read_from_the_landing_page_query_in_any_case() {
        let url = "https://shop.example/p?utm_source=x&sccid=5f1c-2a&epik=dj0yJnU9&RDT_CID=r-1\
                   &li_fat_id=7b2a&msclkid=9f8e7d&gbraid=0AAAA&wbraid=CjkK#top";
        let got = ids(&json!({"page": {"url": url}}), &json!({}));
        let want = map(&[
            ("sc_click_id", "5f1c-2a"),
            ("epik", "dj0yJnU9"),
            ("rdt_cid", "r-1"),
            ("li_fat_id", "7b2a"),
            ("msclkid", "9f8e7d"),
            ("gbraid", "0AAAA"),
            ("wbraid", "CjkK"),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn a_click_id_in_the_event_wins_over_the_page_url() {
        let got = ids(
            &json!({"ScCid": "from-context", "page": {"url": "https://a.example/?ScCid=from-url"}}),
            &json!({"sc_cookie1": "cookie-1"}),
        );
        assert_eq!(got["sc_click_id"], "from-context");
        assert_eq!(got["sc_cookie1"], "cookie-1");
    }

    #[test]
    fn a_page_call_without_context_page_uses_its_url_property() {
        let got = ids(
            &json!({}),
            &json!({"url": "https://a.example/l?msclkid=abc123"}),
        );
        assert_eq!(got["msclkid"], "abc123");
    }

    #[test]
    fn a_click_id_that_could_hide_an_identifier_is_not_taken() {
        for bad in [
            "jane@example.com",
            "jane%40example.com",
            "+1 415 555 0100",
            "%2B14155550100",
            "",
        ] {
            let url = format!("https://a.example/?msclkid={bad}");
            let got = ids(&json!({"rdt_cid": bad, "page": {"url": url}}), &json!({}));
            assert!(got.is_empty(), "{bad}: {got:?}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        assert!(ids(&json!({"msclkid": long}), &json!({})).is_empty());
    }

    #[test]
    fn a_click_id_collected_already_is_kept() {
        // Google Ads' gbraid named by the event is kept over the page URL's.
        let ctx = json!({"gbraid": "kept", "page": {"url": "https://a.example/?gbraid=new"}});
        assert_eq!(ids(&ctx, &json!({}))["gbraid"], "kept");
    }

    #[test]
    fn no_event_key_of_the_table_takes_a_value_that_could_hide_an_email_phone_or_ip() {
        for id in CLICK_IDS {
            for key in id.keys {
                for bad in [
                    "jane@example.com",
                    "+1 415 555 0100",
                    "jane%40example.com",
                    "203.0.113.7",
                ] {
                    for (ctx, props) in [
                        (json!({ *key: bad }), json!({})),
                        (json!({}), json!({ *key: bad })),
                    ] {
                        let got = ids(&ctx, &props);
                        assert!(got.is_empty(), "{key}={bad}: {got:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn event_keys_are_read_from_the_context_before_properties_and_trimmed() {
        let got = ids(
            &json!({"_fbp": " fb.1.1596403881668.1116446470 ", "ttp": 42}),
            &json!({"fbp": "fb.1.1.2", "_ttp": "props-ttp", "li_fat_id": "li-1"}),
        );
        assert_eq!(
            got,
            map(&[
                ("fbp", "fb.1.1596403881668.1116446470"),
                ("ttp", "42"),
                ("li_fat_id", "li-1"),
            ])
        );
    }

    #[test]
    fn gbraid_and_wbraid_are_stored_once_from_the_event_or_else_the_first_page_url() {
        let ctx = json!({"wbraid": "W-event", "page": {
            "url": "https://a.example/p?x=1", "search": "?gbraid=G-search&wbraid=W-url"}});
        let props = json!({"url": "https://a.example/p?gbraid=G-props"});
        let got = ids(&ctx, &props);
        assert_eq!(got, map(&[("gbraid", "G-search"), ("wbraid", "W-event")]));
    }

    #[test]
    fn every_key_a_click_id_is_read_from_has_its_own_slot() {
        for id in CLICK_IDS {
            for k in id.keys {
                assert_eq!(slot(k).map(|i| EVENT_KEYS[i]), Some(*k));
            }
        }
        for k in EVENT_KEYS {
            assert_eq!(slot(k).map(|i| EVENT_KEYS[i]), Some(k), "one slot each");
        }
        assert_eq!(slot("Fbp"), None, "keys match exactly");
        assert_eq!(slot("url"), None);
    }

    #[test]
    fn a_large_object_is_read_as_a_small_one() {
        let filler = |n: usize, extra: Value| {
            let mut m: Map<String, Value> = (0..n).map(|i| (format!("k{i}"), json!(i))).collect();
            m.extend(extra.as_object().unwrap().clone());
            Value::Object(m)
        };
        let ctx = json!({"fbp": "fb.1.1.2", "_ga": "GA1.1.111.222"});
        let props = json!({"gclid": "G1", "ttclid": "T1", "url": "/p?msclkid=M1"});
        let small = ids(&ctx, &props);
        assert_eq!(small.len(), 5, "{small:?}");
        let large = ids(
            &filler(WALK_AT_MOST + 10, ctx.clone()),
            &filler(WALK_AT_MOST + 10, props.clone()),
        );
        assert_eq!(large, small);
        let edge = ids(
            &filler(WALK_AT_MOST - 2, ctx),
            &filler(WALK_AT_MOST - 3, props),
        );
        assert_eq!(edge, small);
    }

    #[test]
    fn the_events_context_key_hides_the_batchs_even_when_unusable() {
        let own = json!({"fbp": "not a click id", "ttclid": "T-own"});
        let batch = json!({"fbp": "fb.1.1.2", "gclid": "G-batch", "ttclid": "T-batch"});
        for walk in [true, false] {
            let (own, batch) = if walk {
                (own.clone(), batch.clone())
            } else {
                // Past the walk's size, the lookups answer the same.
                let mut o = own.as_object().unwrap().clone();
                let mut b = batch.as_object().unwrap().clone();
                for i in 0..=WALK_AT_MOST {
                    o.insert(format!("o{i}"), json!(i));
                    b.insert(format!("b{i}"), json!(i));
                }
                (Value::Object(o), Value::Object(b))
            };
            let layered = Layered::new(own.as_object().unwrap(), batch.as_object());
            let got = read(&layered, &Map::new(), at_millis(1_554_763_741_205));
            assert_eq!(got, map(&[("gclid", "G-batch"), ("ttclid", "T-own")]));
        }
    }
}
