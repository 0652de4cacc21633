//! Pinterest Conversions API v5: `POST {base}/v5/ad_accounts/{ad_account_id}/events`, header
//! `Authorization: Bearer {conversion token}`.
//!
//! Source: Pinterest's OpenAPI description of the endpoint (`pinterest/api-description`,
//! `v5/openapi.yaml`, operation `events/create`; the API reference
//! <https://developers.pinterest.com/docs/api/v5/events-create>):
//! * "the authorization header required is `Authorization: Bearer <access_token>`"; a rate
//!   limit of 5,000 calls a minute per ad account; `?test=true` marks a test request ("The
//!   events will not be recorded") — `config.test_mode`.
//! * Body `ConversionEvents`: `{"data": [..]}`, 1 to 1,000 events (`maxItems: 1000`), each with
//!   the required `event_name`, `action_source` (`web`, `offline`, `app_android`, `app_ios`),
//!   `event_time` (Unix seconds), `event_id` ("can be used for deduping between events
//!   ingested via both the conversion API and Pinterest tracking": the message id, as the
//!   browser tag's) and `user_data`; optional `event_source_url` and `custom_data`
//!   (`currency`, `value` as a string, `order_id`, `content_ids`, `contents[{id, item_price`
//!   as a string, `quantity` as an integer, `item_name`, `item_category`, `item_brand}]`,
//!   `num_items`, `search_string`, `content_name`, `content_category`).
//! * `user_data` (`ConversionEventsUserData`): "It is required at least one of 1) em, 2)
//!   hashed_maids or 3) pair client_ip_address + client_user_agent" ([`matchable`]); every
//!   personal field is a list of SHA-256 digests (rules in
//!   `tracklayer_core::identity::pinterest`); `click_id` is "The unique identifier stored in
//!   _epik cookie on your domain or &epik= query parameter in the URL" (not hashed).
//! * `event_name`: `add_payment_info`, `add_to_cart`, `add_to_wishlist`, `app_install`,
//!   `checkout`, `custom`, `initiate_checkout`, `lead`, `page_visit`, `search`, `signup`,
//!   `subscribe`, `view_category`, `view_content`, `watch_video` — "otherwise the event will
//!   not be accepted", so any other name is sent as `custom` ([`EVENT_NAMES`]).
//! * Answers: 200 `ConversionApiResponse` (`events[]` in request order, each `status`
//!   `processed` or `failed` with an `error_message`); 400 (code 4196, invalid request), 401
//!   (code 2, authentication failed), 403 (code 29, not permitted); 422 "Not all events were
//!   successfully processed"; 429 (code 8, rate limit); 503 (code 4197, "The endpoint has been
//!   ramped down"). See [`classify_response`].

use serde_json::{Map, Value};
use tracklayer_core::deliver::{
    Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::identity::Field;

use crate::common::{self, put, Commerce};

/// Most events one request may carry.
pub const BATCH_LIMIT: usize = 1000;
/// The event names Pinterest accepts.
pub const EVENT_NAMES: [&str; 15] = [
    "add_payment_info",
    "add_to_cart",
    "add_to_wishlist",
    "app_install",
    "checkout",
    "custom",
    "initiate_checkout",
    "lead",
    "page_visit",
    "search",
    "signup",
    "subscribe",
    "view_category",
    "view_content",
    "watch_video",
];

/// The Pinterest Conversions API connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pinterest;

/// Pinterest's `user_data` key of each identifier.
fn user_data_key(field: Field) -> Option<&'static str> {
    Some(match field {
        Field::Email => "em",
        Field::Phone => "ph",
        Field::FirstName => "fn",
        Field::LastName => "ln",
        Field::Gender => "ge",
        Field::DateOfBirth => "db",
        Field::City => "ct",
        Field::State => "st",
        Field::Zip => "zp",
        Field::Country => "country",
        Field::ExternalId => "external_id",
    })
}

/// `user_data`: the hashed identifiers (lists of digests), the client's IP address and user
/// agent, and the `epik` click id as `click_id`.
pub fn user_data(opened: &OpenedItem) -> Map<String, Value> {
    let mut out = common::hashed_lists(opened, user_data_key);
    common::put_client(&mut out, &opened.sealed, &[]);
    put(
        &mut out,
        "click_id",
        common::click_id(&opened.sealed, "epik"),
    );
    out
}

/// Whether Pinterest can match the event: `em`, or both `client_ip_address` and
/// `client_user_agent` (TrackLayer collects no mobile advertising ids, `hashed_maids`).
pub fn matchable(user_data: &Map<String, Value>) -> bool {
    common::matchable_by(user_data, &["em"], common::CLIENT_KEYS)
}

fn custom_data(opened: &OpenedItem) -> Map<String, Value> {
    let c = Commerce::read(&opened.item.properties);
    let mut out = Map::new();
    put(&mut out, "currency", c.currency.clone());
    put(&mut out, "value", c.value.as_ref().map(ToString::to_string));
    put(&mut out, "order_id", c.order_id.clone());
    c.put_products_and_search(&mut out, |p| {
        let mut o = Map::new();
        put(&mut o, "id", p.id.clone());
        put(
            &mut o,
            "item_price",
            p.price.as_ref().map(ToString::to_string),
        );
        o.insert("quantity".into(), p.units().into());
        put(&mut o, "item_name", p.name.clone());
        put(&mut o, "item_category", p.category.clone());
        put(&mut o, "item_brand", p.brand.clone());
        o
    });
    out
}

/// One `data[]` entry.
pub fn event(target: &Target<'_>, opened: &OpenedItem) -> Value {
    let mut head = common::event_head(target, opened, "event_name");
    let known = head
        .get("event_name")
        .and_then(Value::as_str)
        .is_some_and(|n| EVENT_NAMES.contains(&n));
    if !known {
        head.insert("event_name".into(), "custom".into());
    }
    let source = if common::on_web(opened) {
        "web"
    } else {
        "offline"
    };
    let (user, custom) = (user_data(opened), custom_data(opened));
    common::capi_event(head, source, common::page_url(opened), user, custom)
}

/// Pinterest's error body (`{"code": 4196, "message": ".."}`) as a reason.
fn error_reason(response: &HttpResponse, body: Option<&Value>) -> String {
    let code = body.and_then(|b| b.get("code")).and_then(Value::as_i64);
    let message = body
        .and_then(|b| b.get("message"))
        .and_then(Value::as_str)
        .map(|m| common::truncate_chars(m, 500))
        .unwrap_or_else(|| common::body_excerpt(response));
    match code {
        Some(code) => format!("HTTP {}: Pinterest code {code}: {message}", response.status),
        None => format!("HTTP {}: Pinterest: {message}", response.status),
    }
}

/// Per-event statuses (`events[]`, in request order), when the body has one for each item.
fn per_event(body: Option<&Value>, items: usize) -> Option<Outcome> {
    let events = body?
        .get("events")
        .or_else(|| body?.get("details")?.get("events"))?
        .as_array()?;
    if events.len() != items || items == 0 {
        return None;
    }
    let outcomes = events.iter().enumerate().map(|(i, e)| {
        let outcome = match e.get("status").and_then(Value::as_str) {
            Some("processed") => Outcome::Delivered,
            _ => Outcome::Permanent {
                reason: format!(
                    "Pinterest did not process the event: {}",
                    e.get("error_message").and_then(Value::as_str).map_or_else(
                        || "no reason given".into(),
                        |m| common::truncate_chars(m, 300)
                    )
                ),
            },
        };
        (i, outcome)
    });
    let outcomes: Vec<(usize, Outcome)> = outcomes.collect();
    if outcomes.iter().all(|(_, o)| *o == Outcome::Delivered) {
        return Some(Outcome::Delivered);
    }
    Some(Outcome::PerItem(outcomes))
}

/// What an answer means for the request's `items` events: a 2xx or a 422 that lists each
/// event's status answers per event (`processed` delivered, `failed` permanent); otherwise
/// 2xx is delivered, 408, 429 and 5xx (503 "ramped down" included) are retried after
/// `Retry-After`, and any other status (400, 401, 403, 422 without statuses) is permanent,
/// with Pinterest's code and message as the reason.
pub fn classify_response(items: usize, response: &HttpResponse) -> Outcome {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let status = response.status;
    if (200..300).contains(&status) || status == 422 {
        if let Some(outcome) = per_event(body.as_ref(), items) {
            return outcome;
        }
    }
    common::status_with_reason(response, error_reason(response, body.as_ref()))
}

impl Connector for Pinterest {
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let envelope = || {
            let account = common::required_config(target, "ad_account_id")?;
            if !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err("pinterest: config.ad_account_id must be digits".into());
            }
            let token = common::required_secret(target, "access_token")?;
            let base = common::base_url(target, DestinationKind::Pinterest);
            let test = common::config_flag(target, "test_mode");
            let query = if test { "?test=true" } else { "" };
            let url = format!("{base}/v5/ad_accounts/{account}/events{query}");
            Ok(common::Envelope::new(
                url,
                vec![common::bearer(token)],
                "data",
            ))
        };
        let kind = DestinationKind::Pinterest;
        common::batch_request(kind, BATCH_LIMIT, items, envelope, |o| event(target, o))
    }

    common::batch_methods!();

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        common::conversions_api_no_deletion_guidance("Pinterest", "ad account", sent)
    }
}
