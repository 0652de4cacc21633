//! What the connectors share: reading a destination's config and secrets, reading Segment
//! ecommerce properties ([`crate::commerce`]), building URLs, and classifying plain HTTP
//! statuses.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracklayer_core::deliver::{
    classify_status, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::event::SealedFields;
use tracklayer_core::identity::{is_sha256_hex, Field};
use tracklayer_core::ingest::scrub;

pub(crate) use crate::commerce::{text, Commerce, Contents, COMMERCE_KEYS};
use crate::names;

/// A string setting of `config`, trimmed, when present and not blank.
pub(crate) fn config_str<'a>(target: &Target<'a>, key: &str) -> Option<&'a str> {
    non_blank(target.destination.config.get(key))
}

/// A boolean setting of `config`: `true` only when set to `true`.
pub(crate) fn config_flag(target: &Target<'_>, key: &str) -> bool {
    target.destination.config.get(key) == Some(&Value::Bool(true))
}

/// `Authorization: Bearer {token}`.
pub(crate) fn bearer(token: &str) -> (String, String) {
    ("Authorization".to_owned(), format!("Bearer {token}"))
}

/// A trimmed, non-blank string.
pub(crate) fn clean(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// The click id `key` (`gclid`, `msclkid`, ...) as ingest collected it, trimmed; none when
/// it is missing or blank.
pub(crate) fn click_id<'a>(sealed: &'a SealedFields, key: &str) -> Option<&'a str> {
    clean(sealed.click_ids.get(key).map(String::as_str))
}

/// The stored event view, as the trace API shows it: ids, type, name (`config.event_names`
/// when it maps the event, else its own), timestamp, properties scrubbed again, and the
/// SHA-256 digests of its identifiers under TrackLayer's field names. Never a clear
/// identifier, IP address or user agent (webhooks add those in their `context`).
pub(crate) fn stored_event(target: &Target<'_>, opened: &OpenedItem) -> Map<String, Value> {
    let item = &opened.item;
    let mut user_data = Map::new();
    for (field, hash) in &item.user_data {
        if is_sha256_hex(hash) {
            let name = serde_json::to_value(field)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            if let Some(name) = name {
                user_data.insert(name, hash.to_ascii_lowercase().into());
            }
        }
    }
    let name = names::overridden(target.destination, item)
        .map(str::to_owned)
        .or_else(|| item.name.clone());
    let timestamp = item
        .timestamp
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut event = Map::new();
    event.insert("messageId".into(), item.message_id.as_str().into());
    event.insert("event_id".into(), item.event_id.to_string().into());
    event.insert("type".into(), item.event_type.as_str().into());
    event.insert("name".into(), name.into());
    event.insert("timestamp".into(), timestamp.into());
    // Scrubbed at ingest; scrubbed again here, as every connector checks what leaves.
    event.insert(
        "properties".into(),
        scrub::scrub(item.properties.clone(), false, &mut scrub::Found::default()),
    );
    event.insert("user_data".into(), Value::Object(user_data));
    event
}

/// A required string setting of `config`.
pub(crate) fn required_config<'a>(target: &Target<'a>, key: &str) -> Result<&'a str, String> {
    config_str(target, key).ok_or_else(|| {
        format!(
            "{}: config.{key} is missing",
            target.destination.kind.as_str()
        )
    })
}

/// A required secret (never echoed in the error).
pub(crate) fn required_secret<'a>(target: &Target<'a>, key: &str) -> Result<&'a str, String> {
    non_blank(target.secrets.get(key)).ok_or_else(|| {
        format!(
            "{}: secrets.{key} is missing",
            target.destination.kind.as_str()
        )
    })
}

/// An optional secret.
pub(crate) fn secret<'a>(target: &Target<'a>, key: &str) -> Option<&'a str> {
    non_blank(target.secrets.get(key))
}

fn non_blank(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The vendor base URL: the target's (an `endpoint` override or the production URL), without
/// a trailing slash; the production URL when the target gives none.
pub(crate) fn base_url<'a>(target: &Target<'a>, kind: DestinationKind) -> &'a str {
    let base = target.base_url.trim().trim_end_matches('/');
    if base.is_empty() {
        crate::default_base_url(kind)
    } else {
        base
    }
}

/// The `Connector` methods a batch connector states by its module's items: `BATCH_LIMIT`,
/// `classify_response` and the shared screening ([`crate::requirements::screen`]).
/// `classify_response` takes the number of items and the response (a vendor that answers per
/// item); with `whole_request`, the response only (a vendor whose answer is one outcome for the
/// whole request). With `oauth`, also `token_endpoint`, on the module's `TOKEN_HOST` and
/// `TOKEN_PATH` for its `KIND` ([`token_url`]).
macro_rules! batch_methods {
    () => {
        fn classify(&self, items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
            classify_response(items.len(), response)
        }

        $crate::common::batch_methods!(@limit_and_screen);
    };
    (whole_request) => {
        fn classify(&self, _items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
            classify_response(response)
        }

        $crate::common::batch_methods!(@limit_and_screen);
    };
    (oauth) => {
        $crate::common::batch_methods!();

        fn token_endpoint(&self, target: &Target<'_>) -> Option<String> {
            let endpoint = (TOKEN_HOST, TOKEN_PATH);
            Some($crate::common::token_url(target, KIND, endpoint))
        }
    };
    (@limit_and_screen) => {
        fn batch_limit(&self, _target: &Target<'_>) -> usize {
            BATCH_LIMIT
        }

        fn screen(&self, target: &Target<'_>, item: &OpenedItem) -> Result<(), DropReason> {
            crate::requirements::screen(target, item)
        }
    };
}
pub(crate) use batch_methods;

/// A vendor's OAuth token endpoint: `path` on its token `host`, or on the destination's
/// endpoint override when it has one (a local fake in tests), like its API.
pub(crate) fn token_url(
    target: &Target<'_>,
    kind: DestinationKind,
    (host, path): (&str, &str),
) -> String {
    let base = target.base_url.trim().trim_end_matches('/');
    let overridden = !base.is_empty() && base != crate::default_base_url(kind);
    format!("{}{path}", if overridden { base } else { host })
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub(crate) fn query_escape(s: &str) -> String {
    tracklayer_core::deliver::oauth::percent_encode(s)
}

/// The first `max` characters of `s`.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => s[..at].to_owned(),
        None => s.to_owned(),
    }
}

/// JSON serialization that cannot fail for `Value`s (object keys are always strings).
pub(crate) fn to_body(value: &Value) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("cannot serialize the request body: {e}"))
}

/// `Content-Type: application/json`.
pub(crate) fn json_header() -> (String, String) {
    ("Content-Type".to_owned(), "application/json".to_owned())
}

/// A POST of the JSON `body` to `url`, with `headers` and then `Content-Type: application/json`.
pub(crate) fn json_post(
    url: String,
    mut headers: Vec<(String, String)>,
    body: Map<String, Value>,
) -> Result<HttpRequest, String> {
    headers.push(json_header());
    Ok(HttpRequest {
        url,
        headers,
        body: to_body(&Value::Object(body))?,
    })
}

/// The item's digests of the email, phone and external id, each under the vendor's name for
/// it (`names`, in that order), as one string each (TikTok's, Reddit's and Microsoft's user
/// objects); a value that is not a SHA-256 digest never leaves.
pub(crate) fn digests(opened: &OpenedItem, names: [&str; 3]) -> Map<String, Value> {
    let mut out = Map::new();
    let fields = [Field::Email, Field::Phone, Field::ExternalId];
    for (field, key) in fields.iter().zip(names) {
        let hash = opened
            .item
            .user_data
            .get(field)
            .filter(|h| is_sha256_hex(h));
        put(&mut out, key, hash.map(|h| h.to_ascii_lowercase()));
    }
    out
}

/// What a vendor's batch request wraps its events in: where it goes, its credential headers,
/// and the body members before and after the events array.
pub(crate) struct Envelope {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Body members before the events.
    pub head: Map<String, Value>,
    /// The key of the events array.
    pub key: &'static str,
    /// Body members after the events.
    pub tail: Map<String, Value>,
}

impl Envelope {
    /// Events under `key`, nothing around them yet.
    pub fn new(url: String, headers: Vec<(String, String)>, key: &'static str) -> Self {
        Self {
            url,
            headers,
            head: Map::new(),
            key,
            tail: Map::new(),
        }
    }
}

/// The envelope of a vendor that takes `secrets.access_token` as a bearer token and names the
/// account in its URL path: `config.{id_key}` (letters, digits, `-` and `_` only, so that it
/// can reach no other path or host) placed by `url` after the base URL, events under `key`.
pub(crate) fn bearer_envelope(
    target: &Target<'_>,
    id_key: &str,
    url: impl FnOnce(&str, &str) -> String,
    key: &'static str,
) -> Result<Envelope, String> {
    let kind = target.destination.kind;
    let id = required_config(target, id_key)?;
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(format!(
            "{}: config.{id_key} must be letters, digits, '_' or '-'",
            kind.as_str()
        ));
    }
    let token = required_secret(target, "access_token")?;
    let url = url(base_url(target, kind), id);
    Ok(Envelope::new(url, vec![bearer(token)], key))
}

/// The one request skeleton of the batch connectors: refuses more than `limit` items (before
/// anything else is read), then POSTs as JSON the `envelope` with one `event` per item, in
/// order, as its events array.
pub(crate) fn batch_request(
    kind: DestinationKind,
    limit: usize,
    items: &[&OpenedItem],
    envelope: impl FnOnce() -> Result<Envelope, String>,
    event: impl Fn(&OpenedItem) -> Value,
) -> Result<HttpRequest, String> {
    within_limit(kind, items, limit)?;
    let Envelope {
        url,
        headers,
        head: mut body,
        key,
        tail,
    } = envelope()?;
    let events: Vec<Value> = items.iter().map(|o| event(o)).collect();
    body.insert(key.to_owned(), Value::Array(events));
    body.extend(tail);
    json_post(url, headers, body)
}

/// The item's hashed identifiers under the keys `key_of` gives, each as a one-digest list
/// (the shape of Meta's, Snap's and Pinterest's `user_data`). Only SHA-256 digests leave:
/// a value that is not one never goes out in the clear.
pub(crate) fn hashed_lists(
    opened: &OpenedItem,
    key_of: impl Fn(Field) -> Option<&'static str>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (field, hash) in &opened.item.user_data {
        if let (Some(key), true) = (key_of(*field), is_sha256_hex(hash)) {
            out.insert(
                key.to_owned(),
                Value::Array(vec![hash.to_ascii_lowercase().into()]),
            );
        }
    }
    out
}

/// A URL as it may leave (a page URL, a referrer): trimmed, not blank, and without the
/// parameters, path segments and credentials that carry identifiers. The one rule ingest
/// applies too ([`scrub::strip_url`]); applied again at egress so that no URL leaves
/// unstripped, whatever queued it.
pub(crate) fn outgoing_url(v: Option<&str>) -> Option<String> {
    clean(v).map(|url| scrub::strip_url(url).into_owned())
}

/// Whether the event happened on a web page: it has a page URL, or came through the
/// browser channel (Snap's `WEB`, Pinterest's `web`; otherwise their offline source).
pub(crate) fn on_web(opened: &OpenedItem) -> bool {
    let on_page = opened
        .sealed
        .page_url
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty());
    on_page || matches!(opened.sealed.channel.as_deref(), Some("browser" | "web"))
}

/// The event's page URL as it may leave ([`outgoing_url`]): the page context's, else the
/// `url` property's.
pub(crate) fn page_url(opened: &OpenedItem) -> Option<String> {
    outgoing_url(opened.sealed.page_url.as_deref())
        .or_else(|| outgoing_url(opened.item.properties.get("url").and_then(Value::as_str)))
}

/// The remaining scalar properties (strings, numbers, booleans), in key order: neither in
/// [`COMMERCE_KEYS`] nor in `also_skip` (what the connector maps besides), and none that
/// names or holds an identifier ([`scrub::may_leave`]: ingest dropped those already).
pub(crate) fn extra_scalars<'a>(
    properties: &'a Value,
    also_skip: &'a [&'a str],
) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
    properties
        .as_object()
        .into_iter()
        .flat_map(|m| m.iter())
        .filter(move |(k, _)| {
            !COMMERCE_KEYS.contains(&k.as_str()) && !also_skip.contains(&k.as_str())
        })
        .filter(|(_, v)| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)))
        .filter(|(k, v)| scrub::may_leave(k, v))
}

/// Adds the remaining scalar properties ([`extra_scalars`]) to `out`, never over a key the
/// connector mapped.
pub(crate) fn add_extra_scalars(
    out: &mut Map<String, Value>,
    properties: &Value,
    also_skip: &[&str],
) {
    for (k, v) in extra_scalars(properties, also_skip) {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// The start of one event as Meta and TikTok take it: the resolved event name under
/// `name_key`, the time in Unix seconds, and the message id as `event_id` (the key both
/// deduplicate browser and server events by).
pub(crate) fn event_head(
    target: &Target<'_>,
    opened: &OpenedItem,
    name_key: &str,
) -> Map<String, Value> {
    let item = &opened.item;
    let mut e = Map::new();
    e.insert(
        name_key.into(),
        names::resolve(target.destination, item).into(),
    );
    e.insert("event_time".into(), item.timestamp.unix_timestamp().into());
    e.insert("event_id".into(), item.message_id.as_str().into());
    e
}

/// Completes an event of the Conversions API shape Meta set and Snap and Pinterest follow:
/// after its head ([`event_head`]), `action_source`, `event_source_url` (when known),
/// `user_data`, and `custom_data` (when not empty).
pub(crate) fn capi_event(
    mut e: Map<String, Value>,
    action_source: &str,
    url: Option<String>,
    user_data: Map<String, Value>,
    custom_data: Map<String, Value>,
) -> Value {
    e.insert("action_source".into(), action_source.into());
    put(&mut e, "event_source_url", url);
    e.insert("user_data".into(), Value::Object(user_data));
    if !custom_data.is_empty() {
        e.insert("custom_data".into(), Value::Object(custom_data));
    }
    Value::Object(e)
}

/// Adds the destination's `config.test_event_code`, when set: Meta and TikTok then show the
/// events in their test-events tools instead of counting them.
pub(crate) fn put_test_event_code(body: &mut Map<String, Value>, target: &Target<'_>) {
    put(
        body,
        "test_event_code",
        config_str(target, "test_event_code"),
    );
}

/// Inserts `key: value` when `value` is present.
pub(crate) fn put(obj: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        obj.insert(key.to_owned(), v.into());
    }
}

/// `client_ip_address` and `client_user_agent`: where [`put_client`] puts them.
pub(crate) const CLIENT_KEYS: [&str; 2] = ["client_ip_address", "client_user_agent"];

/// Whether a vendor can match an event by its user object `user`: it holds one of the `keys`
/// (a hashed identifier, a click id), or both the IP address and the user agent (under the
/// vendor's `client` keys).
pub(crate) fn matchable_by(user: &Map<String, Value>, keys: &[&str], client: [&str; 2]) -> bool {
    keys.iter().any(|k| user.contains_key(*k)) || client.iter().all(|k| user.contains_key(*k))
}

/// Adds the client's IP address and user agent as `client_ip_address` and
/// `client_user_agent`, then the click ids named `click_keys`, each when present (the unhashed
/// part of Meta's and Snap's `user_data`).
pub(crate) fn put_client(out: &mut Map<String, Value>, sealed: &SealedFields, click_keys: &[&str]) {
    let [ip, user_agent] = CLIENT_KEYS;
    put(out, ip, clean(sealed.ip.as_deref()));
    put(out, user_agent, clean(sealed.user_agent.as_deref()));
    for key in click_keys {
        put(out, key, click_id(sealed, key));
    }
}

/// A vendor API that cannot delete what it received, for [`no_deletion_guidance`].
pub(crate) struct NoDeletion<'a> {
    /// The API, possessive: `"TikTok's Events API"`.
    pub api: &'a str,
    /// The vendor: `"TikTok"`.
    pub vendor: &'a str,
    /// What the destination's account is called there: `"pixel"`, `"dataset"`.
    pub account: &'a str,
    /// How to ask the vendor: `"Request the deletion through …"`.
    pub how: &'a str,
}

/// The erasure receipt's `customer_action` for a vendor whose API cannot delete events.
pub(crate) fn no_deletion_guidance(
    v: &NoDeletion<'_>,
    sent: &tracklayer_core::dsr::SentToVendor<'_>,
) -> String {
    let NoDeletion {
        api,
        vendor,
        account,
        how,
    } = v;
    format!(
        "{api} has no endpoint to delete events it received, so TrackLayer could not delete \
         them at {vendor}. {vendor} received {} events of the subject {} for {account} {}. \
         {how} and record {vendor}'s answer.",
        sent.delivered,
        sent.period,
        sent.account_or_deleted()
    )
}

/// [`no_deletion_guidance`] for `vendor`'s Conversions API, whose events only the vendor can
/// delete, asked through its privacy request channel for advertisers (Snap, Pinterest, Reddit,
/// LinkedIn); `account` is what the destination's account is called there.
pub(crate) fn conversions_api_no_deletion_guidance(
    vendor: &str,
    account: &str,
    sent: &tracklayer_core::dsr::SentToVendor<'_>,
) -> String {
    let api = format!("{vendor}'s Conversions API");
    let how =
        format!("Ask {vendor} to delete them through its privacy request channel for advertisers");
    let v = NoDeletion {
        api: &api,
        vendor,
        account,
        how: &how,
    };
    no_deletion_guidance(&v, sent)
}

/// The HTTP-level outcome (2xx delivered; 408, 429, 5xx retry; other statuses permanent).
///
/// `Retry-After` as seconds is always honoured; as an HTTP date it is read against the
/// response's own `Date` header, since a classifier has no clock of its own.
pub(crate) fn status_outcome(response: &HttpResponse) -> Outcome {
    let now = response_date(response);
    let outcome = classify_status(response, now.unwrap_or(OffsetDateTime::UNIX_EPOCH));
    match outcome {
        Outcome::Retry { reason, .. } => retry(response, reason),
        other => other,
    }
}

/// [`status_outcome`], with a refusal (a permanent status) saying which `vendor` refused and
/// what it answered: `HTTP 400: Snap refused the request: {body}`.
pub(crate) fn refused_by(vendor: &str, response: &HttpResponse) -> Outcome {
    match status_outcome(response) {
        Outcome::Permanent { .. } => Outcome::Permanent {
            reason: format!(
                "HTTP {}: {vendor} refused the request: {}",
                response.status,
                body_excerpt(response)
            ),
        },
        other => other,
    }
}

/// [`status_outcome`], with `reason` (read from the vendor's error body) as the reason of a
/// retry or a refusal.
pub(crate) fn status_with_reason(response: &HttpResponse, reason: String) -> Outcome {
    match status_outcome(response) {
        Outcome::Retry { after, .. } => Outcome::Retry { after, reason },
        Outcome::Permanent { .. } => Outcome::Permanent { reason },
        other => other,
    }
}

/// Retry for `reason`, after the response's `Retry-After` when it has one.
pub(crate) fn retry(response: &HttpResponse, reason: String) -> Outcome {
    Outcome::Retry {
        after: retry_after(response),
        reason,
    }
}

/// Refuses a batch larger than the `limit` events the vendor takes in one request.
pub(crate) fn within_limit(
    kind: DestinationKind,
    items: &[&OpenedItem],
    limit: usize,
) -> Result<(), String> {
    if items.len() > limit {
        return Err(format!(
            "{}: {} events exceed the limit of {limit}",
            kind.as_str(),
            items.len()
        ));
    }
    Ok(())
}

/// `Retry-After` in seconds, or as a date relative to the response's `Date` header.
pub(crate) fn retry_after(response: &HttpResponse) -> Option<std::time::Duration> {
    let value = response.header("retry-after")?.trim();
    if value.parse::<u64>().is_ok() {
        return tracklayer_core::deliver::retry_after(response, OffsetDateTime::UNIX_EPOCH);
    }
    let now = response_date(response)?;
    tracklayer_core::deliver::retry_after(response, now)
}

fn response_date(response: &HttpResponse) -> Option<OffsetDateTime> {
    let date = response.header("date")?.trim();
    OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822).ok()
}

/// Whether the HTTP status alone says "try again" (408, 429, 5xx).
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The response body as text, at most 500 characters (for reasons).
pub(crate) fn body_excerpt(response: &HttpResponse) -> String {
    truncate_chars(&String::from_utf8_lossy(&response.body), 500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_escape("a b+c/d=é"), "a%20b%2Bc%2Fd%3D%C3%A9");
        assert_eq!(query_escape("EAAB-x_y.z~"), "EAAB-x_y.z~");
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }

    #[test]
    fn commerce_prefers_revenue_then_total_then_value() {
        let c = Commerce::read(&json!({"total": 20, "value": 30, "currency": "eur"}));
        assert_eq!(c.value, Some(20.into()));
        assert_eq!(c.currency.as_deref(), Some("EUR"));
        let c = Commerce::read(&json!({"revenue": "12.5", "total": 20}));
        assert_eq!(c.value.and_then(|n| n.as_f64()), Some(12.5));
    }

    #[test]
    fn value_and_currency_alone_are_what_the_whole_read_says() {
        let cases = [
            json!({"total": 20, "value": 30, "currency": "eur"}),
            json!({"revenue": "12.5", "total": 20}),
            json!({"value": "not a number", "currency": " usd "}),
            json!({"revenue": "NaN", "products": [{"product_id": "a", "price": 3}]}),
            json!({"products": [{"product_id": "a", "price": 3}], "product_id": "b", "price": 9}),
            json!({"products": [1, "x"], "product_id": "b", "price": 9, "quantity": 2.6}),
            json!({"products": [], "sku": "s", "price": "4.5", "currency": "gbp"}),
            json!({"sku": "s", "price": "free"}),
            json!({"id": "i", "price": 4}),
            json!({"product_id": "p", "quantity": 3}),
            json!({"currency": 978}),
            json!({"currency": ""}),
            json!({}),
            json!("not an object"),
        ];
        for props in cases {
            let whole = Commerce::read(&props);
            assert_eq!(
                Commerce::value_and_currency(&props),
                (whole.value, whole.currency),
                "{props}"
            );
        }
    }

    #[test]
    fn a_single_product_event_is_its_own_product_and_value() {
        let c = Commerce::read(&json!({"product_id": "p1", "price": 5, "quantity": 3}));
        assert_eq!(c.products.len(), 1);
        assert_eq!(c.products[0].id.as_deref(), Some("p1"));
        assert_eq!(c.value.and_then(|n| n.as_f64()), Some(15.0));
    }

    #[test]
    fn a_batch_over_the_limit_is_refused_before_its_envelope_is_read() {
        let item = OpenedItem {
            item: serde_json::from_value(
                json!({"event_id": "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                "message_id": "m1", "event_type": "track", "name": "x",
                "timestamp": "2026-03-01T12:00:00Z", "properties": {}, "user_data": {}}),
            )
            .unwrap(),
            sealed: Default::default(),
        };
        let envelope = || -> Result<Envelope, String> { panic!("read the envelope") };
        let err = batch_request(
            DestinationKind::Snapchat,
            1,
            &[&item, &item],
            envelope,
            |_| Value::Null,
        )
        .unwrap_err();
        assert_eq!(err, "snapchat: 2 events exceed the limit of 1");
        let envelope = || {
            let mut e = Envelope::new("https://x.example/e".into(), vec![], "events");
            e.head.insert("before".into(), 1.into());
            e.tail.insert("after".into(), 2.into());
            Ok(e)
        };
        let request = batch_request(DestinationKind::Snapchat, 1, &[&item], envelope, |o| {
            o.item.message_id.as_str().into()
        })
        .unwrap();
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, json!({"before": 1, "events": ["m1"], "after": 2}));
        assert_eq!(request.url, "https://x.example/e");
    }

    #[test]
    fn malformed_properties_read_as_nothing() {
        for props in [
            json!(null),
            json!([1, 2]),
            json!({"products": "x", "revenue": {}}),
        ] {
            let c = Commerce::read(&props);
            assert!(c.products.is_empty() && c.value.is_none());
        }
    }
}
