//! Ad click ids of the conversion APIs added with issue 15 (Snapchat, Pinterest, Reddit,
//! LinkedIn, Microsoft Advertising, Google Ads app/iOS click ids): from the event, else from
//! the landing page URL's query, where the ad platform appended them to the click.
//!
//! | stored as | event keys (context, then properties) | URL query parameter (any case) |
//! |---|---|---|
//! | `sc_click_id` | `sc_click_id`, `ScCid` | `ScCid` |
//! | `sc_cookie1` | `sc_cookie1` | — |
//! | `epik` | `epik`, `click_id` of Pinterest | `epik` |
//! | `rdt_cid` | `rdt_cid` | `rdt_cid` |
//! | `li_fat_id` | `li_fat_id` | `li_fat_id` |
//! | `msclkid` | `msclkid` | `msclkid` |
//! | `gbraid`, `wbraid` | `gbraid`, `wbraid` | `gbraid`, `wbraid` |
//!
//! Sources for the parameter names: Snap (`sc_click_id`, "Retrieved from the ScCid … query
//! parameter", and `sc_cookie1`:
//! <https://developers.snap.com/api/marketing-api/Conversions-API/Parameters>); the others as
//! each connector module cites them.
//!
//! A click id leaves unhashed, so only a value that can be nothing else is taken: 1 to 512
//! RFC 3986 unreserved characters (letters, digits, `-._~`) — no whitespace, no `@`, no
//! percent-escape that could hide an email or phone number. One found in the event wins over
//! the URL's; one already collected (by the older table in `identifiers`) is kept.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::inherit::Layered;

/// One click id: its stored name, the event keys that may hold it, its URL query parameter.
struct AdClickId {
    name: &'static str,
    keys: &'static [&'static str],
    query: Option<&'static str>,
}

const AD_CLICK_IDS: &[AdClickId] = &[
    AdClickId {
        name: "sc_click_id",
        keys: &["sc_click_id", "ScCid"],
        query: Some("ScCid"),
    },
    AdClickId {
        name: "sc_cookie1",
        keys: &["sc_cookie1"],
        query: None,
    },
    AdClickId {
        name: "epik",
        keys: &["epik"],
        query: Some("epik"),
    },
    AdClickId {
        name: "rdt_cid",
        keys: &["rdt_cid"],
        query: Some("rdt_cid"),
    },
    AdClickId {
        name: "li_fat_id",
        keys: &["li_fat_id"],
        query: Some("li_fat_id"),
    },
    AdClickId {
        name: "msclkid",
        keys: &["msclkid"],
        query: Some("msclkid"),
    },
    AdClickId {
        name: "gbraid",
        keys: &["gbraid"],
        query: Some("gbraid"),
    },
    AdClickId {
        name: "wbraid",
        keys: &["wbraid"],
        query: Some("wbraid"),
    },
];

/// Longest click id taken.
const MAX_LEN: usize = 512;

/// Whether `v` may be a click id: 1 to [`MAX_LEN`] unreserved URL characters.
fn usable(v: &str) -> bool {
    (1..=MAX_LEN).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The value of query parameter `name` (ASCII case ignored) in `url`, if usable.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split('#').next()?.split_once('?')?.1;
    query
        .split(['&', ';'])
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_owned())
        .filter(|v| usable(v))
}

/// Adds the click ids of [`AD_CLICK_IDS`] found in the event (context, then properties) or,
/// failing that, in its page URL (`context.page.url`, else `properties.url`).
pub(super) fn collect(
    context: &Layered<'_>,
    properties: &Map<String, Value>,
    out: &mut BTreeMap<String, String>,
) {
    let page_url = context
        .get("page")
        .and_then(|p| p.get("url"))
        .or_else(|| properties.get("url"))
        .and_then(Value::as_str);
    for id in AD_CLICK_IDS {
        if out.contains_key(id.name) {
            continue;
        }
        let in_event = id.keys.iter().find_map(|k| {
            [context.get(k), properties.get(*k)]
                .into_iter()
                .flatten()
                .filter_map(text)
                .find(|v| usable(v))
        });
        let found = in_event.or_else(|| query_param(page_url?, id.query?));
        if let Some(v) = found {
            out.insert(id.name.to_owned(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn collected(context: Value, properties: Value) -> BTreeMap<String, String> {
        let ctx = context.as_object().cloned().unwrap_or_default();
        let props = properties.as_object().cloned().unwrap_or_default();
        let mut out = BTreeMap::new();
        collect(&Layered::new(&ctx, None), &props, &mut out);
        out
    }

    #[test]
    fn click_ids_are_read_from_the_landing_page_query_in_any_case() {
        let url = "https://shop.example/p?utm_source=x&sccid=5f1c-2a&epik=dj0yJnU9&RDT_CID=r-1\
                   &li_fat_id=7b2a&msclkid=9f8e7d&gbraid=0AAAA&wbraid=CjkK#top";
        let got = collected(json!({"page": {"url": url}}), json!({}));
        let want: BTreeMap<String, String> = [
            ("sc_click_id", "5f1c-2a"),
            ("epik", "dj0yJnU9"),
            ("rdt_cid", "r-1"),
            ("li_fat_id", "7b2a"),
            ("msclkid", "9f8e7d"),
            ("gbraid", "0AAAA"),
            ("wbraid", "CjkK"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_click_id_in_the_event_wins_over_the_page_url() {
        let got = collected(
            json!({"ScCid": "from-context", "page": {"url": "https://a.example/?ScCid=from-url"}}),
            json!({"sc_cookie1": "cookie-1"}),
        );
        assert_eq!(got["sc_click_id"], "from-context");
        assert_eq!(got["sc_cookie1"], "cookie-1");
    }

    #[test]
    fn a_page_call_without_context_page_uses_its_url_property() {
        let got = collected(
            json!({}),
            json!({"url": "https://a.example/l?msclkid=abc123"}),
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
            let got = collected(json!({"rdt_cid": bad, "page": {"url": url}}), json!({}));
            assert!(got.is_empty(), "{bad}: {got:?}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        assert!(collected(json!({"msclkid": long}), json!({})).is_empty());
    }

    #[test]
    fn a_click_id_collected_already_is_kept() {
        let ctx = json!({"page": {"url": "https://a.example/?gbraid=new"}});
        let ctx = ctx.as_object().cloned().unwrap();
        let mut out = BTreeMap::from([("gbraid".to_owned(), "kept".to_owned())]);
        collect(&Layered::new(&ctx, None), &Map::new(), &mut out);
        assert_eq!(out["gbraid"], "kept");
    }
}
