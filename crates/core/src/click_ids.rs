//! Click and browser ids a browser event carries in its page URL or its cookies' values, read
//! as the vendors document them, before ingest cuts URLs in properties to their path.
//!
//! Ingest first takes the ids the event names (`context.fbc`, `properties._fbp`, … see
//! `ingest::identifiers`); [`PageIds::fill`] then adds only what is still missing:
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
//! - Google Ads `gclid`, `gbraid`, `wbraid` and TikTok's `ttclid` from the page URL, as given.
//!
//! Page URLs are read from `context.page.url`, `context.page.search`, `properties.url` and
//! `properties.search`, in that order (analytics-next and rudder-sdk-js send all four on a
//! page call, the context ones on every call).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The URL parameters taken as they are, and the click id each one becomes.
const URL_CLICK_IDS: &[(&str, &str)] = &[
    ("gclid", "gclid"),
    ("gbraid", "gbraid"),
    ("wbraid", "wbraid"),
    ("ttclid", "ttclid"),
];

/// Longer values are no click id (Meta's and Google's are well under 200 characters).
const MAX_ID_LEN: usize = 512;

/// Ids read from an event's page URLs and `_ga` value, to add to what it named itself.
#[derive(Default, PartialEq, Eq)]
pub struct PageIds {
    ids: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for PageIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.ids.keys()).finish()
    }
}

impl PageIds {
    /// Reads an event's page URLs and `_ga` value. `context` looks a key up in the event's
    /// context (the batch's read through); `observed_at` is the event's timestamp.
    pub fn read<'v>(
        context: impl Fn(&str) -> Option<&'v Value>,
        properties: &Map<String, Value>,
        observed_at: OffsetDateTime,
    ) -> Self {
        let page = context("page");
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
        let param = |name: &str| urls.iter().find_map(|url| query_param(url, name));

        let mut ids = BTreeMap::new();
        if let Some(fbclid) = param("fbclid") {
            ids.insert("fbc", fbc(fbclid, observed_at));
        }
        for (param_name, id) in URL_CLICK_IDS {
            if let Some(v) = param(param_name) {
                ids.insert(*id, v.to_owned());
            }
        }
        let ga = context("_ga").or_else(|| properties.get("_ga"));
        if let Some(client_id) = ga.and_then(Value::as_str).and_then(ga_client_id) {
            ids.insert("client_id", client_id);
        }
        Self { ids }
    }

    /// Adds each id the event did not name itself: a given value always wins.
    pub fn fill(self, click_ids: &mut BTreeMap<String, String>) {
        for (name, value) in self.ids {
            click_ids.entry(name.to_owned()).or_insert(value);
        }
    }
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

/// The value of the first query parameter `name` of a URL (or a bare `?a=b` query), as it is
/// written: click ids are URL-safe and must not be altered. `None` when absent, empty, longer
/// than [`MAX_ID_LEN`] or holding anything but URL-safe characters.
fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let before_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = before_fragment.split_once('?')?;
    query
        .split(['&', ';'])
        .filter_map(|p| p.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_ID_LEN
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Meta's documented example: this fbclid, first observed at 1554763741205 ms.
    const META_FBCLID: &str = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk";

    fn at_millis(ms: i128) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap()
    }

    fn read(context: &Value, properties: &Value) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        PageIds::read(
            |k| context.get(k),
            properties.as_object().unwrap(),
            at_millis(1_554_763_741_205),
        )
        .fill(&mut out);
        out
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
            read(&ctx, &json!({}))["fbc"],
            format!("fb.1.1554763741205.{META_FBCLID}")
        );
    }

    #[test]
    fn a_given_fbc_is_kept_unchanged_and_never_rebuilt_from_the_url() {
        let ctx = json!({"page": {"url": "https://shop.example/?fbclid=NEWCLICK"}});
        let mut ids = BTreeMap::from([("fbc".to_owned(), "fb.2.1600000000000.OLD".to_owned())]);
        PageIds::read(|k| ctx.get(k), &Map::new(), at_millis(1)).fill(&mut ids);
        assert_eq!(ids["fbc"], "fb.2.1600000000000.OLD");
    }

    #[test]
    fn the_fbclid_keeps_its_case_and_characters() {
        let ctx = json!({"page": {"search": "?utm_source=fb&fbclid=AbC-d_E"}});
        assert!(read(&ctx, &json!({}))["fbc"].ends_with(".AbC-d_E"));
    }

    #[test]
    fn google_and_tiktok_click_ids_are_read_from_the_page_url() {
        let ctx = json!({"page": {"url":
            "https://shop.example/p?gclid=Cj0KCQiA&gbraid=0AAAAA9&wbraid=Cl4KCQ&ttclid=E.C.P.abc#top"}});
        let ids = read(&ctx, &json!({}));
        assert_eq!(ids["gclid"], "Cj0KCQiA");
        assert_eq!(ids["gbraid"], "0AAAAA9");
        assert_eq!(ids["wbraid"], "Cl4KCQ");
        assert_eq!(ids["ttclid"], "E.C.P.abc");
    }

    #[test]
    fn a_page_calls_properties_url_is_read_when_the_context_has_none() {
        let props = json!({"url": "https://shop.example/?gclid=G1", "search": "?ttclid=T1"});
        let ids = read(&json!({}), &props);
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
        assert_eq!(read(&ctx, &json!({}))["client_id"], "1234567890.1700000000");
        let mut ids = BTreeMap::from([("client_id".to_owned(), "9.9".to_owned())]);
        PageIds::read(|k| ctx.get(k), &Map::new(), at_millis(1)).fill(&mut ids);
        assert_eq!(ids["client_id"], "9.9");
    }

    #[test]
    fn unsafe_empty_or_absent_parameters_are_no_click_id() {
        let ctx = json!({"page": {"url":
            "https://shop.example/?gclid=&ttclid=a%40b.example&xgclid=1&fbclid"}});
        assert!(read(&ctx, &json!({})).is_empty());
    }
}
