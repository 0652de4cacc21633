//! Meta Conversions API: `POST {base}/{api_version}/{pixel_id}/events`.
//!
//! Sources (Meta for Developers):
//! * Parameters: <https://developers.facebook.com/docs/marketing-api/conversions-api/parameters>
//!   ("Website events shared using the Conversions API require the `client_user_agent`,
//!   `action_source`, and `event_source_url` parameters, while non-web events require only
//!   `action_source`").
//! * Server event parameters:
//!   <https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event>
//!   (`event_time` "can be up to 7 days before you send an event to Meta. If any
//!   `event_time` in `data` is greater than 7 days in the past, we return an error for the
//!   entire request and process no events"; `event_id` deduplicates with the browser pixel).
//! * Customer information parameters:
//!   <https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters>
//!   (`em`, `ph`, `fn`, `ln`, `db`, `ge`, `ct`, `st`, `zp`, `country`, `external_id`: "string
//!   or `list<string>`", hashed; `client_ip_address`, `client_user_agent`, `fbc`, `fbp`: not
//!   hashed). Lists are sent, as Meta's Business SDKs do.
//! * Custom data parameters:
//!   <https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/custom-data>
//!   (`value`, `currency`, `order_id`, `contents[{id, quantity, item_price}]`, `content_ids`,
//!   `content_type`, `num_items`, `search_string`, `content_name`, `content_category`).
//! * Graph API error handling:
//!   <https://developers.facebook.com/docs/graph-api/using-graph-api/error-handling>
//!   (codes 1 and 2 "temporary issue due to downtime", 4, 17, 341 and 613 rate limits: "wait
//!   and retry"; `is_transient`).
//! * Securing requests (`appsecret_proof` = hex HMAC-SHA256 of the token, keyed with the app
//!   secret): <https://developers.facebook.com/docs/graph-api/securing-requests>.
//!
//! Meta accepts or rejects a request as a whole ("we return an error for the entire request
//! and process no events"), so [`MetaCapi::classify`](Connector::classify) never answers per
//! item. That is also why screening drops, before building, what would poison a whole
//! batch: events older than 7 days, events without any customer information, and `Purchase`
//! events without `value` and `currency`.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use time::Duration;
use tracklayer_core::deliver::{
    Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::identity::Field;

use crate::common::{self, put, query_escape, retryable_status, Commerce};

/// Most events one request may carry.
pub const BATCH_LIMIT: usize = 1000;
/// Oldest event Meta accepts.
pub const MAX_AGE: Duration = Duration::days(7);
/// Graph API error codes that mean "wait and retry": 1 (API Unknown), 2 (API Service),
/// 4 (application rate limit), 17 (user rate limit), 341 (application limit), 613 (call
/// rate limit).
pub const TRANSIENT_CODES: [i64; 6] = [1, 2, 4, 17, 341, 613];
/// `action_source` values Meta accepts (used when an event or a destination names its own).
pub const ACTION_SOURCES: [&str; 9] = tracklayer_core::destination::META_ACTION_SOURCES;

/// The Meta Conversions API connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaCapi;

/// Meta's `user_data` key for each hashed identifier.
pub fn user_data_key(field: Field) -> &'static str {
    match field {
        Field::Email => "em",
        Field::Phone => "ph",
        Field::FirstName => "fn",
        Field::LastName => "ln",
        Field::DateOfBirth => "db",
        Field::Gender => "ge",
        Field::City => "ct",
        Field::State => "st",
        Field::Zip => "zp",
        Field::Country => "country",
        Field::ExternalId => "external_id",
    }
}

/// `appsecret_proof`: lowercase hex HMAC-SHA256 of the access token, keyed with the app
/// secret.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail here.
    match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(access_token.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// `action_source`, the first of:
/// 1. the event's own `action_source` property, when it is one Meta knows;
/// 2. its `context.channel`: `browser` → `website`, `mobile` → `app`, or one of Meta's own
///    values (`server` says nothing about where the customer acted, and falls through);
/// 3. its page context: `website` when it has a page URL;
/// 4. the destination's `config.action_source` (validated against Meta's list);
/// 5. `other`.
///
/// A `website` from 2–4 needs the page URL and the user agent (Meta requires both for
/// website events, and one invalid event fails the whole request): without them the next
/// source is asked.
pub fn action_source(target: &Target<'_>, opened: &OpenedItem) -> &'static str {
    let known_value = |v: &str| {
        ACTION_SOURCES
            .iter()
            .find(|s| s.eq_ignore_ascii_case(v.trim()))
    };
    let own = ["action_source", "actionSource"]
        .iter()
        .find_map(|k| known_value(opened.item.properties.get(*k)?.as_str()?));
    if let Some(source) = own {
        return source;
    }
    let known = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    let web_ready = known(&opened.sealed.page_url) && known(&opened.sealed.user_agent);
    let channel = match opened.sealed.channel.as_deref() {
        Some("browser" | "web") => Some(&"website"),
        Some("mobile") => Some(&"app"),
        Some(other) => known_value(other),
        None => None,
    };
    let page = known(&opened.sealed.page_url).then_some(&"website");
    let configured = common::config_str(target, "action_source").and_then(known_value);
    [channel, page, configured]
        .into_iter()
        .flatten()
        .find(|s| **s != "website" || web_ready)
        .copied()
        .unwrap_or("other")
}

pub(crate) fn user_data(opened: &OpenedItem) -> Map<String, Value> {
    let mut out = common::hashed_lists(opened, |f| Some(user_data_key(f)));
    common::put_client(&mut out, &opened.sealed, &CLIENT_CLICK_IDS);
    out
}

/// The click ids `user_data` carries unhashed.
const CLIENT_CLICK_IDS: [&str; 2] = ["fbp", "fbc"];

/// Whether [`user_data`] holds anything, without building it: ingest asks it of every event
/// routed to Meta (building it was 2 % of `serve`'s core under load).
pub(crate) fn has_user_data(opened: &OpenedItem) -> bool {
    let sealed = &opened.sealed;
    opened
        .item
        .user_data
        .values()
        .any(|hash| tracklayer_core::identity::is_sha256_hex(hash))
        || common::clean(sealed.ip.as_deref()).is_some()
        || common::clean(sealed.user_agent.as_deref()).is_some()
        || CLIENT_CLICK_IDS
            .iter()
            .any(|k| common::click_id(sealed, k).is_some())
}

/// Properties `custom_data` maps besides the common ecommerce ones (`url` is
/// `event_source_url`).
const META_MAPPED: &[&str] = &["name", "category", "action_source", "actionSource", "url"];

fn custom_data(opened: &OpenedItem) -> Map<String, Value> {
    let props = &opened.item.properties;
    let c = Commerce::read(props);
    let mut out = Map::new();
    put(&mut out, "value", c.value.clone());
    put(&mut out, "currency", c.currency.clone());
    put(&mut out, "order_id", c.order_id.clone());
    c.put_products_and_search(&mut out, |p| {
        let mut o = Map::new();
        put(&mut o, "id", p.id.clone());
        o.insert("quantity".into(), p.units().into());
        put(&mut o, "item_price", p.price.clone());
        o
    });
    if out.contains_key("contents") {
        out.insert("content_type".into(), "product".into());
    }
    common::add_extra_scalars(&mut out, props, META_MAPPED);
    out
}

/// One `data[]` entry.
pub fn event(target: &Target<'_>, opened: &OpenedItem) -> Value {
    common::capi_event(
        common::event_head(target, opened, "event_name"),
        action_source(target, opened),
        common::outgoing_url(opened.sealed.page_url.as_deref()),
        user_data(opened),
        custom_data(opened),
    )
}

/// The request URL (the access token and proof in the query, as the Graph API wants them).
pub fn url(target: &Target<'_>) -> Result<String, String> {
    let pixel = common::required_config(target, "pixel_id")?;
    let version = common::required_config(target, "api_version")?;
    if !pixel.bytes().all(|b| b.is_ascii_digit()) {
        return Err("meta_capi: config.pixel_id must be digits".into());
    }
    if !version
        .bytes()
        .all(|b| b == b'v' || b == b'.' || b.is_ascii_digit())
    {
        return Err("meta_capi: config.api_version must look like v21.0".into());
    }
    let token = common::required_secret(target, "access_token")?;
    let base = common::base_url(target, DestinationKind::MetaCapi);
    let mut url = format!(
        "{base}/{version}/{pixel}/events?access_token={}",
        query_escape(token)
    );
    if let Some(app_secret) = common::secret(target, "app_secret") {
        url.push_str("&appsecret_proof=");
        url.push_str(&appsecret_proof(app_secret, token));
    }
    Ok(url)
}

fn error_reason(status: u16, error: &Map<String, Value>) -> String {
    let code = error.get("code").and_then(Value::as_i64);
    let subcode = error.get("error_subcode").and_then(Value::as_i64);
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    let message = common::truncate_chars(message, 500);
    let mut reason = format!("HTTP {status}: Meta {kind}");
    if let Some(code) = code {
        reason.push_str(&format!(" code {code}"));
    }
    if let Some(subcode) = subcode {
        reason.push_str(&format!(" subcode {subcode}"));
    }
    reason.push_str(&format!(": {message}"));
    if let Some(user_msg) = error.get("error_user_msg").and_then(Value::as_str) {
        reason.push_str(&format!(" ({})", common::truncate_chars(user_msg, 300)));
    }
    if let Some(trace) = error.get("fbtrace_id").and_then(Value::as_str) {
        reason.push_str(&format!(" [fbtrace_id {trace}]"));
    }
    reason
}

/// What a Conversions API response means for the whole request.
pub fn classify_response(response: &HttpResponse) -> Outcome {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let error = body
        .as_ref()
        .and_then(|b| b.get("error"))
        .and_then(Value::as_object);
    let status = response.status;
    match error {
        None if (200..300).contains(&status) => Outcome::Delivered,
        None => common::status_outcome(response),
        Some(error) => {
            let code = error.get("code").and_then(Value::as_i64);
            let transient = error
                .get("is_transient")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let reason = error_reason(status, error);
            if retryable_status(status)
                || transient
                || code.is_some_and(|c| TRANSIENT_CODES.contains(&c))
            {
                common::retry(response, reason)
            } else {
                Outcome::Permanent { reason }
            }
        }
    }
}

impl Connector for MetaCapi {
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let envelope = || {
            let mut e = common::Envelope::new(url(target)?, Vec::new(), "data");
            common::put_test_event_code(&mut e.tail, target);
            Ok(e)
        };
        let kind = DestinationKind::MetaCapi;
        common::batch_request(kind, BATCH_LIMIT, items, envelope, |o| event(target, o))
    }

    common::batch_methods!(whole_request);

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        let meta = common::NoDeletion {
            api: "Meta's Conversions API",
            vendor: "Meta",
            account: "dataset",
            how: "Submit the deletion through Meta's own process for Business Tools data \
                  (Events Manager / Meta's data-subject request channel)",
        };
        common::no_deletion_guidance(&meta, sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn has_user_data_says_whether_user_data_holds_anything() {
        let digest = "a".repeat(64);
        let with = |user_data: serde_json::Value, sealed: serde_json::Value| OpenedItem {
            item: serde_json::from_value(serde_json::json!({
                "event_id": "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                "message_id": "m1", "event_type": "track", "name": "Order Completed",
                "timestamp": "2026-03-01T12:00:00Z", "properties": {}, "user_data": user_data}))
            .unwrap(),
            sealed: serde_json::from_value(sealed).unwrap(),
        };
        let none = serde_json::json!({});
        let cases = [
            (none.clone(), none.clone(), false),
            (serde_json::json!({"email": digest}), none.clone(), true),
            (serde_json::json!({"email": "ABC"}), none.clone(), false),
            (
                serde_json::json!({"external_id": digest.to_uppercase()}),
                none.clone(),
                true,
            ),
            (none.clone(), serde_json::json!({"ip": "203.0.113.9"}), true),
            (none.clone(), serde_json::json!({"ip": "  "}), false),
            (
                none.clone(),
                serde_json::json!({"user_agent": "Mozilla/5.0"}),
                true,
            ),
            (
                none.clone(),
                serde_json::json!({"click_ids": {"fbp": "fb.1.1.2"}}),
                true,
            ),
            (
                none.clone(),
                serde_json::json!({"click_ids": {"fbc": " "}}),
                false,
            ),
            (
                none.clone(),
                serde_json::json!({"click_ids": {"gclid": "G1", "ttp": "t"}}),
                false,
            ),
            (
                none.clone(),
                serde_json::json!({"page_url": "https://a.example/"}),
                false,
            ),
        ];
        for (given, sealed, expected) in cases {
            let opened = with(given.clone(), sealed.clone());
            assert_eq!(
                has_user_data(&opened),
                !user_data(&opened).is_empty(),
                "{given} {sealed}"
            );
            assert_eq!(has_user_data(&opened), expected, "{given} {sealed}");
        }
    }

    #[test]
    fn appsecret_proof_is_hex_hmac_sha256_of_the_token() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            appsecret_proof("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn an_unparseable_error_body_falls_back_to_the_status() {
        assert!(matches!(
            classify_response(&resp(503, "<html>")),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify_response(&resp(400, "")),
            Outcome::Permanent { .. }
        ));
        assert_eq!(
            classify_response(&resp(200, "not json")),
            Outcome::Delivered
        );
    }

    #[test]
    fn the_reason_carries_code_subcode_and_trace_but_stays_short() {
        let long = "x".repeat(5000);
        let body = format!(
            r#"{{"error":{{"message":"{long}","type":"OAuthException","code":100,"error_subcode":33,"fbtrace_id":"T"}}}}"#
        );
        match classify_response(&resp(400, &body)) {
            Outcome::Permanent { reason } => {
                assert!(reason.starts_with("HTTP 400: Meta OAuthException code 100 subcode 33"));
                assert!(reason.ends_with("[fbtrace_id T]"));
                assert!(reason.chars().count() <= 1000);
            }
            other => panic!("{other:?}"),
        }
    }
}
