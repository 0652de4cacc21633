//! Reddit Conversions API v2.0: `POST {base}/api/v2.0/conversions/events/{ad_account_id}`,
//! header `Authorization: Bearer {conversion access token}`.
//!
//! Sources: Reddit Ads API v2 reference, Conversions API
//! (<https://ads-api.reddit.com/docs/v2/#tag/Conversions>), as captured verbatim in Segment's
//! Reddit Conversions API destination (`segmentio/action-destinations`,
//! `reddit-conversions-api/V3-API-REFERENCE.md` § "Migration: v2.0 → v3", which lists the v2.0
//! names, and `types-v2.ts`, Segment's production v2.0 body):
//! * Body `{"test_mode": bool, "events": [..]}` (`config.test_mode`); each event has `event_at`
//!   (ISO 8601), `event_type{tracking_type, custom_event_name}` (`PageVisit`, `ViewContent`,
//!   `Search`, `AddToCart`, `AddToWishlist`, `Purchase`, `Lead`, `SignUp`, or `Custom` with a
//!   `custom_event_name` of at most 64 characters), `click_id` (the `rdt_cid` URL parameter),
//!   `event_metadata{conversion_id, currency, value_decimal, item_count, products[{id, name,
//!   category}]}` and `user{email, phone_number, external_id, ip_address (hashed), user_agent}`.
//! * `conversion_id`: "unique per distinct event, shared across Pixel + CAPI" — the message id,
//!   as the pixel's `conversionId`; events "must be sent within seven days after they occur"
//!   ([`MAX_AGE`]); at most 1,000 events a request ("Bad Request: Exceeded max 1,000
//!   events/call").
//! * Match keys: at least one of `click_id`, `uuid`, `email`, `ip_address` + `user_agent`,
//!   `idfa`/`aaid`, `external_id` ([`matchable`]). "Signals can be sent unhashed or
//!   pre-hashed. Reddit recommends SHA-256": every one is hashed here, the IP address too
//!   (as Segment's v2.0 body does), so no raw identifier leaves.
//! * Answers: 400 (invalid events, or more than 1,000), 401 (`No bearer token provided`,
//!   `UNAUTHORIZED`) and 403 (no permission for the account, missing `adsconversions` scope)
//!   are permanent; 429 (rate limited) and 500 ("The service is currently unavailable. No
//!   conversion events were processed.") are retried after `Retry-After` ([`classify_response`]).

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::Duration;
use tracklayer_core::deliver::{
    Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::identity::sha256_hex;

use crate::common::{self, clean, put, Commerce, Contents};

/// Most events one request may carry.
pub const BATCH_LIMIT: usize = 1000;
/// Oldest event Reddit takes.
pub const MAX_AGE: Duration = Duration::days(7);
/// Reddit's tracking types; any other event name is sent as `Custom`.
pub const TRACKING_TYPES: [&str; 8] = [
    "PageVisit",
    "ViewContent",
    "Search",
    "AddToCart",
    "AddToWishlist",
    "Purchase",
    "Lead",
    "SignUp",
];
/// Reddit's tracking type for each Segment spec name (page views: [`PAGE_VISIT`]).
pub const STANDARD_EVENTS: &[(&str, &str)] = &[
    ("Order Completed", "Purchase"),
    ("Product Added", "AddToCart"),
    ("Products Searched", "Search"),
    ("Signed Up", "SignUp"),
    ("Product Viewed", "ViewContent"),
    ("Product Added to Wishlist", "AddToWishlist"),
];
/// The tracking type of a page call.
pub const PAGE_VISIT: &str = "PageVisit";
/// Longest `custom_event_name` Reddit takes.
const CUSTOM_NAME_MAX: usize = 64;

/// The Reddit Conversions API connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reddit;

/// `user`: the hashed email, phone number and external id, the hashed IP address, and the
/// user agent.
pub fn user(opened: &OpenedItem) -> Map<String, Value> {
    let mut out = common::digests(opened, ["email", "phone_number", "external_id"]);
    let s = &opened.sealed;
    put(
        &mut out,
        "ip_address",
        clean(s.ip.as_deref()).map(sha256_hex),
    );
    put(&mut out, "user_agent", clean(s.user_agent.as_deref()));
    out
}

/// The `rdt_cid` click id, as ingest collected it.
fn click_id(opened: &OpenedItem) -> Option<&str> {
    common::click_id(&opened.sealed, "rdt_cid")
}

/// Whether Reddit can match the event: a click id, a hashed email or external id, or both
/// the IP address and the user agent.
pub fn matchable(opened: &OpenedItem) -> bool {
    let keys = ["email", "external_id"];
    click_id(opened).is_some()
        || common::matchable_by(&user(opened), &keys, ["ip_address", "user_agent"])
}

/// `event_type`: a Reddit tracking type, or `Custom` with the name (at most 64 characters).
fn event_type(target: &Target<'_>, opened: &OpenedItem) -> Value {
    let name = crate::names::resolve(target.destination, &opened.item);
    if TRACKING_TYPES.contains(&name.as_str()) {
        json!({ "tracking_type": name })
    } else {
        let custom = common::truncate_chars(&name, CUSTOM_NAME_MAX);
        json!({ "tracking_type": "Custom", "custom_event_name": custom })
    }
}

fn event_metadata(opened: &OpenedItem) -> Map<String, Value> {
    let c = Commerce::read(&opened.item.properties);
    let mut out = Map::new();
    out.insert(
        "conversion_id".into(),
        opened.item.message_id.as_str().into(),
    );
    put(&mut out, "currency", c.currency.clone());
    put(&mut out, "value_decimal", c.value.clone());
    let contents = Contents::of(&c, |p| {
        let mut o = Map::new();
        put(&mut o, "id", p.id.clone());
        put(&mut o, "name", p.name.clone());
        put(&mut o, "category", p.category.clone());
        o
    });
    if let Some(Contents {
        contents, units, ..
    }) = contents
    {
        out.insert("item_count".into(), units.into());
        out.insert("products".into(), Value::Array(contents));
    }
    out
}

/// One `events[]` entry.
pub fn event(target: &Target<'_>, opened: &OpenedItem) -> Value {
    let mut e = Map::new();
    let at = opened.item.timestamp.format(&Rfc3339).unwrap_or_default();
    e.insert("event_at".into(), at.into());
    e.insert("event_type".into(), event_type(target, opened));
    put(&mut e, "click_id", click_id(opened));
    e.insert(
        "event_metadata".into(),
        Value::Object(event_metadata(opened)),
    );
    e.insert("user".into(), Value::Object(user(opened)));
    Value::Object(e)
}

/// Reddit's error message (`{"error": {"message": ..}}` or `{"message": ..}`), else the body.
fn error_reason(response: &HttpResponse) -> String {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let message = body.as_ref().and_then(|b| {
        b.get("error")
            .and_then(|e| e.get("message").or(Some(e)))
            .or_else(|| b.get("message"))
            .and_then(Value::as_str)
            .map(|m| common::truncate_chars(m, 500))
    });
    let message = message.unwrap_or_else(|| common::body_excerpt(response));
    format!("HTTP {}: Reddit: {message}", response.status)
}

/// What an answer means for the whole request: 2xx delivered; 408, 429 and 5xx retried after
/// `Retry-After`; any other status permanent, with Reddit's message as the reason.
pub fn classify_response(response: &HttpResponse) -> Outcome {
    common::status_with_reason(response, error_reason(response))
}

impl Connector for Reddit {
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let envelope = || {
            let url =
                |base: &str, account: &str| format!("{base}/api/v2.0/conversions/events/{account}");
            let mut e = common::bearer_envelope(target, "ad_account_id", url, "events")?;
            let test = common::config_flag(target, "test_mode");
            e.head.insert("test_mode".into(), test.into());
            Ok(e)
        };
        let kind = DestinationKind::Reddit;
        common::batch_request(kind, BATCH_LIMIT, items, envelope, |o| event(target, o))
    }

    common::batch_methods!(whole_request);

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        common::conversions_api_no_deletion_guidance("Reddit", "ad account", sent)
    }
}
