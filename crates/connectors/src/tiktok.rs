//! TikTok Events API 2.0: `POST {base}/open_api/v1.3/event/track/`, header `Access-Token`.
//!
//! Sources:
//! * TikTok Events API 2.0 (Business API portal,
//!   <https://business-api.tiktok.com/portal/docs?id=1771101276978178>) and its sample
//!   request: `event_source: "web"`, `event_source_id` (the pixel code), `test_event_code`,
//!   `data[{event, event_time (Unix seconds), event_id, user{email, phone, external_id
//!   (SHA-256, hashed client side), ttclid, ttp, ip, user_agent}, page{url, referrer},
//!   properties{contents[{content_id, content_name, ...}], content_type, value, currency,
//!   order_id, query}}]`, up to 1,000 events a request.
//! * Standard events ("About supported standard events", TikTok Ads Manager help, updated
//!   September 2025, <https://ads.tiktok.com/help/article/supported-standard-events>).
//! * Response codes: the body's `code` 0 is success, 40100 the rate limit ("You've hit the
//!   rate limit for this API", TikTok business API error table). 5xxxx codes are TikTok-side
//!   failures (TikTok's error tables mark system errors "Retry"). RudderStack's production
//!   handler (`rudderlabs/rudder-transformer`, `src/v0/destinations/tiktok_ads/
//!   networkHandler.js`) treats 20001 (partial success) as delivered and 40700 as a server
//!   error; so does this one. The Events API reports no per-event index on failure, so
//!   outcomes cover the whole request. No age limit is documented for web events, so none is
//!   screened.

use serde_json::{Map, Value};
use tracklayer_core::deliver::{Connector, HttpRequest, HttpResponse, OpenedItem, Outcome, Target};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;

use crate::common::{self, body_excerpt, clean, put, retryable_status, Commerce};

/// Most events one request may carry.
pub const BATCH_LIMIT: usize = 1000;
/// The request path under the base URL.
pub const PATH: &str = "/open_api/v1.3/event/track/";
/// Response codes meaning "try again later": the rate limit, and 40700, which production
/// integrations treat as a server error.
pub const RETRY_CODES: [i64; 2] = [40100, 40700];
/// Response codes meaning success: 0, and 20001 (partial success).
pub const SUCCESS_CODES: [i64; 2] = [0, 20001];

/// The TikTok Events API connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tiktok;

fn user(opened: &OpenedItem) -> Map<String, Value> {
    let mut out = common::digests(opened, ["email", "phone", "external_id"]);
    let s = &opened.sealed;
    put(&mut out, "ip", clean(s.ip.as_deref()));
    put(&mut out, "user_agent", clean(s.user_agent.as_deref()));
    put(&mut out, "ttclid", common::click_id(s, "ttclid"));
    put(&mut out, "ttp", common::click_id(s, "ttp"));
    out
}

/// Properties `page` maps besides the common ecommerce ones.
const TIKTOK_MAPPED: &[&str] = &["url", "referrer"];

fn properties(opened: &OpenedItem) -> Map<String, Value> {
    let props = &opened.item.properties;
    let c = Commerce::read(props);
    let mut out = Map::new();
    let contents: Vec<Value> = c
        .products
        .iter()
        .filter(|p| p.id.is_some())
        .map(|p| {
            let mut o = Map::new();
            put(&mut o, "content_id", p.id.clone());
            put(&mut o, "content_name", p.name.clone());
            put(&mut o, "content_category", p.category.clone());
            put(&mut o, "brand", p.brand.clone());
            put(&mut o, "price", p.price.clone());
            put(&mut o, "quantity", p.quantity.clone());
            Value::Object(o)
        })
        .collect();
    if !contents.is_empty() {
        out.insert("contents".into(), Value::Array(contents));
        out.insert("content_type".into(), "product".into());
    }
    put(&mut out, "value", c.value.clone());
    put(&mut out, "currency", c.currency.clone());
    put(&mut out, "order_id", c.order_id.clone());
    put(&mut out, "query", c.query.clone());
    common::add_extra_scalars(&mut out, props, TIKTOK_MAPPED);
    out
}

/// One `data[]` entry.
pub fn event(target: &Target<'_>, opened: &OpenedItem) -> Value {
    let mut e = common::event_head(target, opened, "event");
    e.insert("user".into(), Value::Object(user(opened)));
    let mut page = Map::new();
    let prop_url =
        |key: &str| common::outgoing_url(opened.item.properties.get(key).and_then(Value::as_str));
    let url = common::outgoing_url(opened.sealed.page_url.as_deref()).or_else(|| prop_url("url"));
    put(&mut page, "url", url);
    put(&mut page, "referrer", prop_url("referrer"));
    if !page.is_empty() {
        e.insert("page".into(), Value::Object(page));
    }
    let props = properties(opened);
    if !props.is_empty() {
        e.insert("properties".into(), Value::Object(props));
    }
    Value::Object(e)
}

/// What an Events API response means for the whole request.
pub fn classify_response(response: &HttpResponse) -> Outcome {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let code = body
        .as_ref()
        .and_then(|b| b.get("code"))
        .and_then(Value::as_i64);
    let Some(code) = code else {
        return match response.status {
            200..=299 => Outcome::Permanent {
                reason: format!(
                    "HTTP {}: TikTok answered without a code: {}",
                    response.status,
                    body_excerpt(response)
                ),
            },
            _ => common::status_outcome(response),
        };
    };
    let message = body
        .as_ref()
        .and_then(|b| b.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let reason = format!(
        "HTTP {}: TikTok code {code}: {}",
        response.status,
        common::truncate_chars(message, 500)
    );
    if retryable_status(response.status)
        || RETRY_CODES.contains(&code)
        || (50000..60000).contains(&code)
    {
        common::retry(response, reason)
    } else if SUCCESS_CODES.contains(&code) && (200..300).contains(&response.status) {
        Outcome::Delivered
    } else {
        Outcome::Permanent { reason }
    }
}

impl Connector for Tiktok {
    fn batch_limit(&self, _target: &Target<'_>) -> usize {
        BATCH_LIMIT
    }

    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let envelope = || {
            let pixel = common::required_config(target, "pixel_code")?;
            let token = common::required_secret(target, "access_token")?;
            let base = common::base_url(target, DestinationKind::Tiktok);
            let auth = ("Access-Token".to_owned(), token.to_owned());
            let mut e = common::Envelope::new(format!("{base}{PATH}"), vec![auth], "data");
            e.head.insert("event_source".into(), "web".into());
            e.head.insert("event_source_id".into(), pixel.into());
            common::put_test_event_code(&mut e.head, target);
            Ok(e)
        };
        let kind = DestinationKind::Tiktok;
        common::batch_request(kind, BATCH_LIMIT, items, envelope, |o| event(target, o))
    }

    fn classify(&self, _items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
        classify_response(response)
    }

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        let tiktok = common::NoDeletion {
            api: "TikTok's Events API",
            vendor: "TikTok",
            account: "pixel",
            how: "Request the deletion through TikTok for Business (privacy / data-subject \
                  request channel)",
        };
        common::no_deletion_guidance(&tiktok, sent)
    }
}
