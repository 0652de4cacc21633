//! GA4 Measurement Protocol: `POST {base}/mp/collect?measurement_id=…&api_secret=…`.
//!
//! Sources (Google for Developers):
//! * Sending events:
//!   <https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events>
//!   (request body `client_id`, `user_id`, `timestamp_micros`, `consent`, `user_data`,
//!   `events[{name, params}]`; events can be backdated up to 72 hours; limits: 25 events a
//!   request, 25 parameters an event, names of 40 characters that start with a letter and
//!   hold only letters, digits and underscores, parameter values of 100 characters).
//! * Reference: <https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference>
//!   (`consent.ad_user_data` / `ad_personalization`: `"GRANTED"` or `"DENIED"`; reserved
//!   names and the reserved prefixes `_`, `firebase_`, `ga_`, `google_`, `gtag.`).
//! * User-provided data:
//!   <https://developers.google.com/analytics/devguides/collection/ga4/uid-data>
//!   (`user_data.sha256_email_address[]`, `sha256_phone_number[]`, `address[]` with
//!   `sha256_first_name`, `sha256_last_name` hashed and `city`, `region`, `postal_code`,
//!   `country` in clear).
//! * Validating events:
//!   <https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events>
//!   (`/debug/mp/collect` answers `{"validationMessages":[{fieldPath, description,
//!   validationCode}]}`; `/mp/collect` returns no HTTP error "even if an event is malformed").
//! * Event collection limits (Analytics Help 9267744): `page_location` 1,000 characters,
//!   `page_title` 300, `page_referrer` 420; 200 items an event.
//!
//! `client_id`, `user_id`, `consent` and `user_data` sit at request level, so one request
//! carries the events of one client only, with the same user id, consent and user data:
//! [`crate::batches`] groups items that way (by [`Connector::group_key`]), and [`Ga4::build`](Connector::build) refuses a mix.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use time::Duration;
use tracklayer_core::deliver::{
    Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::event::ForwardedConsent;
use tracklayer_core::identity::{is_sha256_hex, Field};

use crate::common::{self, extra_scalars, put, query_escape, truncate_chars, Commerce};
use crate::names;

/// Most events one request may carry.
pub const BATCH_LIMIT: usize = 25;
/// Oldest event GA4 accepts.
pub const MAX_AGE: Duration = Duration::hours(72);
/// Longest event or parameter name.
pub const MAX_NAME_LEN: usize = 40;
/// Most parameters an event may carry.
pub const MAX_PARAMS: usize = 25;
/// Longest string parameter value (`page_location`, `page_title` and `page_referrer` have
/// their own limits).
pub const MAX_VALUE_LEN: usize = 100;
/// Most items an event may carry.
pub const MAX_ITEMS: usize = 200;

/// Event names GA4 keeps for itself.
pub const RESERVED_EVENT_NAMES: &[&str] = &[
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_impression",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_remove",
    "app_store_refund",
    "app_store_subscription_cancel",
    "app_store_subscription_convert",
    "app_store_subscription_renew",
    "app_update",
    "app_upgrade",
    "dynamic_link_app_open",
    "dynamic_link_app_update",
    "dynamic_link_first_open",
    "error",
    "first_open",
    "first_visit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "os_update",
    "session_start",
    "user_engagement",
];

/// Name prefixes GA4 keeps for itself (`_` and `gtag.` cannot survive sanitizing).
pub const RESERVED_PREFIXES: &[&str] = &["firebase_", "ga_", "google_"];

/// The GA4 Measurement Protocol connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ga4;

/// Maps a name to GA4's rules: snake_case (`Order Completed` → `order_completed`,
/// `productAdded` → `product_added`), only `[a-z0-9_]`, at most 40 characters, starting with
/// a letter, not reserved. `None` when nothing valid remains.
pub fn sanitize_name(raw: &str) -> Option<String> {
    let name = snake_case(raw)?;
    if RESERVED_EVENT_NAMES.contains(&name.as_str()) {
        return None;
    }
    Some(name)
}

/// As [`sanitize_name`], for parameter names (which have no reserved list of their own).
pub fn sanitize_param_name(raw: &str) -> Option<String> {
    snake_case(raw)
}

fn snake_case(raw: &str) -> Option<String> {
    let chars: Vec<char> = raw.trim().chars().collect();
    let mut out = String::with_capacity(chars.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push('_');
        }
    }
    let mut collapsed = String::with_capacity(out.len());
    for c in out.chars() {
        if !(c == '_' && collapsed.ends_with('_')) {
            collapsed.push(c);
        }
    }
    let trimmed = collapsed.trim_matches('_');
    let cut = truncate_chars(trimmed, MAX_NAME_LEN);
    let name = cut.trim_end_matches('_').to_owned();
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return None;
    }
    Some(name)
}

/// The client id: the `client_id` click id (the `_ga` cookie's), else the anonymous id.
pub fn client_id(opened: &OpenedItem) -> Option<&str> {
    opened.sealed.ga4_client_id()
}

/// The event name for an item, sanitized.
pub fn event_name(target: &Target<'_>, opened: &OpenedItem) -> Option<String> {
    sanitize_name(&names::resolve(target.destination, &opened.item))
}

fn consent(c: ForwardedConsent) -> Option<Value> {
    consent_words(c, ("ad_user_data", "ad_personalization"))
}

/// Consent Mode v2's `ad_user_data` and `ad_personalization` as `"GRANTED"` or `"DENIED"`
/// under the vendor's `keys` (GA4's snake case, Google Ads' camel case); `None` when the
/// event gave neither.
pub(crate) fn consent_words(c: ForwardedConsent, keys: (&str, &str)) -> Option<Value> {
    let word = |granted: bool| if granted { "GRANTED" } else { "DENIED" };
    let mut out = Map::new();
    put(&mut out, keys.0, c.ad_user_data.map(word));
    put(&mut out, keys.1, c.ad_personalization.map(word));
    (!out.is_empty()).then_some(Value::Object(out))
}

/// `user_data`, unless the event denies `ad_user_data` (then no user-provided data leaves).
fn user_data(opened: &OpenedItem) -> Option<Value> {
    if opened.item.consent.ad_user_data == Some(false) {
        return None;
    }
    let hashed = |field: Field| {
        opened
            .item
            .user_data
            .get(&field)
            .filter(|h| is_sha256_hex(h))
            .map(|h| h.to_ascii_lowercase())
    };
    let plain = |field: Field| {
        opened
            .sealed
            .plain
            .get(&field)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut out = Map::new();
    put(
        &mut out,
        "sha256_email_address",
        hashed(Field::Email).map(|h| json!([h])),
    );
    put(
        &mut out,
        "sha256_phone_number",
        hashed(Field::Phone).map(|h| json!([h])),
    );
    let mut address = Map::new();
    put(&mut address, "sha256_first_name", hashed(Field::FirstName));
    put(&mut address, "sha256_last_name", hashed(Field::LastName));
    put(&mut address, "city", plain(Field::City));
    put(&mut address, "region", plain(Field::State));
    put(&mut address, "postal_code", plain(Field::Zip));
    put(&mut address, "country", plain(Field::Country));
    if !address.is_empty() {
        out.insert("address".into(), json!([address]));
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// What one request shares: client id, user id, consent, user data.
#[derive(Debug, Clone, PartialEq)]
struct RequestKey {
    client_id: String,
    user_id: Option<String>,
    consent: Option<Value>,
    user_data: Option<Value>,
}

fn request_key(opened: &OpenedItem) -> Option<RequestKey> {
    Some(RequestKey {
        client_id: client_id(opened)?.to_owned(),
        user_id: opened
            .sealed
            .user_id
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        consent: consent(opened.item.consent),
        user_data: user_data(opened),
    })
}

/// A parameter value as GA4 takes it: strings cut to `max` characters, numbers as they
/// are, booleans as `"true"`/`"false"`; anything else is left out.
fn param_value(v: &Value, max: usize) -> Option<Value> {
    match v {
        Value::String(s) => Some(Value::String(truncate_chars(s, max))),
        Value::Number(_) => Some(v.clone()),
        Value::Bool(b) => Some(Value::String(b.to_string())),
        _ => None,
    }
}

fn items_param(c: &Commerce) -> Option<Value> {
    let items: Vec<Value> = c
        .products
        .iter()
        .filter(|p| p.id.is_some() || p.name.is_some())
        .take(MAX_ITEMS)
        .map(|p| {
            let mut o = Map::new();
            let s = |v: &Option<String>| v.as_deref().map(|t| truncate_chars(t, MAX_VALUE_LEN));
            put(&mut o, "item_id", s(&p.id));
            put(&mut o, "item_name", s(&p.name));
            put(&mut o, "price", p.price.clone());
            put(&mut o, "quantity", p.quantity.clone());
            put(&mut o, "item_brand", s(&p.brand));
            put(&mut o, "item_category", s(&p.category));
            put(&mut o, "item_variant", s(&p.variant));
            put(&mut o, "coupon", s(&p.coupon));
            Value::Object(o)
        })
        .collect();
    (!items.is_empty()).then_some(Value::Array(items))
}

/// Properties the standard parameters map besides the common ecommerce ones.
const GA4_MAPPED: &[&str] = &[
    "coupon",
    "shipping",
    "tax",
    "affiliation",
    "url",
    "title",
    "referrer",
];

/// The parameters of one event: GA4's ecommerce and page parameters first, then the other
/// scalar properties in key order, names sanitized, the first of each name kept, at most 25.
pub fn params(opened: &OpenedItem) -> Map<String, Value> {
    let props = &opened.item.properties;
    let c = Commerce::read(props);
    let text = |key: &str| common::text(props.get(key));
    let mut ordered: Vec<(String, Value, usize)> = Vec::new();
    let mut add = |name: &str, value: Option<Value>, max: usize| {
        if let Some(v) = value {
            ordered.push((name.to_owned(), v, max));
        }
    };
    let commerce = [
        ("currency", c.currency.clone().map(Value::from)),
        ("value", c.value.clone().map(Value::from)),
        ("transaction_id", c.order_id.clone().map(Value::from)),
        ("coupon", c.coupon.clone().map(Value::from)),
        ("shipping", c.shipping.clone().map(Value::from)),
        ("tax", c.tax.clone().map(Value::from)),
        ("affiliation", c.affiliation.clone().map(Value::from)),
        ("search_term", c.query.clone().map(Value::from)),
    ];
    for (name, value) in commerce {
        add(name, value, MAX_VALUE_LEN);
    }
    let url = |key: &str| common::outgoing_url(props.get(key).and_then(Value::as_str));
    let page_url = common::outgoing_url(opened.sealed.page_url.as_deref()).or_else(|| url("url"));
    add("page_location", page_url.map(Value::from), 1000);
    add("page_title", text("title").map(Value::from), 300);
    add("page_referrer", url("referrer").map(Value::from), 420);
    for (k, v) in extra_scalars(props, GA4_MAPPED) {
        add(k, Some(v.clone()), MAX_VALUE_LEN);
    }

    let mut out = Map::new();
    // `items` is an array, the one non-scalar parameter; it counts toward the 25.
    let items = items_param(&c);
    let room = MAX_PARAMS - usize::from(items.is_some());
    for (raw, value, max) in ordered {
        if out.len() >= room {
            break;
        }
        let Some(name) = sanitize_param_name(&raw) else {
            continue;
        };
        if out.contains_key(&name) || name == "items" {
            continue;
        }
        if let Some(v) = param_value(&value, max) {
            out.insert(name, v);
        }
    }
    if let Some(items) = items {
        out.insert("items".into(), items);
    }
    out
}

fn micros(opened: &OpenedItem) -> i64 {
    i64::try_from(opened.item.timestamp.unix_timestamp_nanos() / 1000).unwrap_or(0)
}

/// The request URL (`/debug/mp/collect` when `config.validate` is true).
pub fn url(target: &Target<'_>) -> Result<String, String> {
    let measurement_id = common::required_config(target, "measurement_id")?;
    let secret = common::required_secret(target, "api_secret")?;
    let base = common::base_url(target, DestinationKind::Ga4);
    let validate = target
        .destination
        .config
        .get("validate")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let path = if validate {
        "/debug/mp/collect"
    } else {
        "/mp/collect"
    };
    Ok(format!(
        "{base}{path}?measurement_id={}&api_secret={}",
        query_escape(measurement_id),
        query_escape(secret)
    ))
}

/// The index an event-level validation message points at (`events[3].params`, or
/// "Event at index: [3] ...").
fn message_index(message: &Value) -> Option<usize> {
    let after = |s: &str, marker: &str| -> Option<usize> {
        let start = s.find(marker)? + marker.len();
        let digits: String = s[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let path = message
        .get("fieldPath")
        .and_then(Value::as_str)
        .unwrap_or("");
    let description = message
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    after(path, "events[").or_else(|| after(description, "index: ["))
}

fn message_text(message: &Value) -> String {
    let field = |k: &str| message.get(k).and_then(Value::as_str).unwrap_or("");
    let text = format!(
        "{} {}: {}",
        field("validationCode"),
        field("fieldPath"),
        field("description")
    );
    truncate_chars(text.trim(), 500)
}

/// What a Measurement Protocol response means. `/mp/collect` answers 2xx even for malformed
/// events: delivered. `/debug/mp/collect` lists `validationMessages`: none, delivered; each
/// pointing at an event, per item; any other, the whole request is permanent.
pub fn classify_response(items: usize, response: &HttpResponse) -> Outcome {
    if !(200..300).contains(&response.status) {
        return common::status_outcome(response);
    }
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let messages = body
        .as_ref()
        .and_then(|b| b.get("validationMessages"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if messages.is_empty() {
        return Outcome::Delivered;
    }
    let mut per_item: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut whole: Vec<String> = Vec::new();
    for m in &messages {
        match message_index(m).filter(|i| *i < items) {
            Some(i) => per_item.entry(i).or_default().push(message_text(m)),
            None => whole.push(message_text(m)),
        }
    }
    if !whole.is_empty() {
        let mut all = whole;
        all.extend(per_item.into_values().flatten());
        return Outcome::Permanent {
            reason: format!("GA4 validation: {}", all.join("; ")),
        };
    }
    Outcome::PerItem(
        (0..items)
            .map(|i| match per_item.remove(&i) {
                Some(texts) => (
                    i,
                    Outcome::Permanent {
                        reason: format!("GA4 validation: {}", texts.join("; ")),
                    },
                ),
                None => (i, Outcome::Delivered),
            })
            .collect(),
    )
}

impl Connector for Ga4 {
    fn batch_limit(&self, _target: &Target<'_>) -> usize {
        BATCH_LIMIT
    }

    /// GA4 puts client id, user id, consent and user data at request level: only items that
    /// agree on all four may share a request ([`crate::batches`] groups by this key).
    fn group_key(&self, opened: &OpenedItem) -> Option<String> {
        request_key(opened).map(|k| {
            serde_json::json!([k.client_id, k.user_id, k.consent, k.user_data]).to_string()
        })
    }

    fn screen(&self, target: &Target<'_>, opened: &OpenedItem) -> Result<(), DropReason> {
        crate::requirements::screen(target, opened)
    }

    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let (first, _) = items
            .split_first()
            .ok_or_else(|| "ga4: a request needs at least one event".to_owned())?;
        common::within_limit(DestinationKind::Ga4, items, BATCH_LIMIT)?;
        let key = request_key(first).ok_or_else(|| "ga4: an event has no client id".to_owned())?;
        let mut events = Vec::with_capacity(items.len());
        for opened in items {
            if request_key(opened).as_ref() != Some(&key) {
                return Err(
                    "ga4: one request carries one client id, user id, consent and \
                     user data; group items with tracklayer_connectors::batches"
                        .into(),
                );
            }
            let name = event_name(target, opened)
                .ok_or_else(|| "ga4: an event has no valid name (screen it first)".to_owned())?;
            events.push(json!({
                "name": name,
                "params": Value::Object(params(opened)),
                "timestamp_micros": micros(opened),
            }));
        }
        let mut body = Map::new();
        body.insert("client_id".into(), key.client_id.into());
        put(&mut body, "user_id", key.user_id);
        body.insert("timestamp_micros".into(), micros(first).into());
        put(&mut body, "consent", key.consent);
        put(&mut body, "user_data", key.user_data);
        body.insert("events".into(), Value::Array(events));
        common::json_post(url(target)?, vec![], body)
    }

    fn classify(&self, items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
        classify_response(items.len(), response)
    }

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        let (n, period) = (sent.delivered, sent.period);
        format!(
            "The GA4 Measurement Protocol cannot delete data, so TrackLayer could not \
             delete it at Google. Google Analytics received {n} events of the subject \
             {period} for {}. Delete the user there with the GA4 User Deletion API or \
             Admin > Data deletion requests, using the subject's user id or client id.",
            sent.account_or_deleted()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_splits_words_camel_case_and_acronyms() {
        for (name, snake) in [
            ("Order Completed", "order_completed"),
            ("productAdded", "product_added"),
            ("HTTPRequest sent", "http_request_sent"),
            ("add_to_cart", "add_to_cart"),
            ("  Step 2 -- Done! ", "step_2_done"),
        ] {
            assert_eq!(sanitize_name(name).as_deref(), Some(snake), "{name:?}");
        }
    }

    #[test]
    fn names_that_cannot_start_with_a_letter_or_are_reserved_are_refused() {
        for bad in [
            "",
            "  ",
            "2fa enabled",
            "!!!",
            "session_start",
            "Firebase Thing",
            "ga_x",
        ] {
            assert_eq!(sanitize_name(bad), None, "{bad:?}");
        }
        assert_eq!(sanitize_param_name("google_id"), None);
        assert_eq!(sanitize_param_name("_private").as_deref(), Some("private"));
    }

    #[test]
    fn message_indices_come_from_the_field_path_or_the_description() {
        let m = json!({"fieldPath": "events[2].params.items", "description": "x"});
        assert_eq!(message_index(&m), Some(2));
        let m =
            json!({"fieldPath": "events", "description": "Event at index: [7] has invalid name"});
        assert_eq!(message_index(&m), Some(7));
        let m = json!({"fieldPath": "client_id", "description": "required"});
        assert_eq!(message_index(&m), None);
    }
}
