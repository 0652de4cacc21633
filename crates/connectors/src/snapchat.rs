//! Snap Conversions API v3: `POST {base}/v3/{pixel_id}/events?access_token={token}`.
//!
//! Sources (Snap for Developers, Marketing API → Conversions API):
//! * Using the API (<https://developers.snap.com/api/marketing-api/Conversions-API/UsingTheAPI>):
//!   the web endpoint `https://tr.snapchat.com/v3/{PIXEL_ID}/events?access_token={TOKEN}`, the
//!   body `{"data": [{event_name, event_time, event_id, action_source, event_source_url,
//!   user_data{em: [..], ph: [..]}, custom_data{currency, value, contents[{id, quantity,
//!   item_price, brand}]}}]}` (its request example is `tests/fixtures/snapchat_body.json`'s
//!   model), and the matching rule: "At least one of the following to match your events to
//!   Snapchatters: em (hashed email), ph (hashed phone number), client_ip_address &
//!   client_user_agent, …".
//! * Parameters (<https://developers.snap.com/api/marketing-api/Conversions-API/Parameters>):
//!   `user_data` keys `em`, `ph`, `fn`, `ln` (hashed; rules in
//!   `tracklayer_core::identity::snapchat`), `client_ip_address`, `client_user_agent`,
//!   `sc_click_id` (the `ScCid` URL parameter) and `sc_cookie1` (not hashed).
//! * Introduction (<https://developers.snap.com/api/marketing-api/Conversions-API/Introduction>):
//!   "events can have a date (timestamp) of maximum 37 days back to be eligible to be
//!   reported".
//! * Best Practices (<https://developers.snap.com/api/marketing-api/Conversions-API/BestPractices>):
//!   send `event_id` on every event, the same as the pixel's `client_dedup_id` — the message
//!   id here, as for Meta and TikTok.
//! * Events per request: 2,000. Snap's pages above state no number; the Snap Conversions API
//!   collection of the Marketing API ("Multiple events can be sent in a single request (up to
//!   2,000 per request)", api-evangelist/snapchat, `snapchat-conversion-events-api`) and
//!   Tealium's Snapchat Conversions connector ("Max number of requests: 2000",
//!   <https://docs.tealium.com/server-side-connectors/snapchat-conversions-connector/>) do.
//! * Answers: Snap documents no error-code table for v3 as read here, so the HTTP status
//!   decides ([`common::status_outcome`]): 2xx delivered; 408, 429 and 5xx retried after
//!   `Retry-After`; any other status permanent, with Snap's body as the reason.
//!
//! Standard event names (`event_name`): Snap's v3 event list (`PAGE_VIEW`, `VIEW_CONTENT`,
//! `ADD_CART`, `ADD_TO_WISHLIST`, `SIGN_UP`, `SEARCH`, `PURCHASE`, `ADD_BILLING`,
//! `START_CHECKOUT`, `LIST_VIEW`, `LOGIN`, …) in the standard table of `crate::names`.

use serde_json::{Map, Value};
use time::Duration;
use tracklayer_core::deliver::{
    Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::identity::Field;

use crate::common::{self, put, query_escape, Commerce, Contents};

/// Most events one request may carry.
pub const BATCH_LIMIT: usize = 2000;
/// Oldest event Snap reports.
pub const MAX_AGE: Duration = Duration::days(37);

/// The Snap Conversions API connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapchat;

/// Snap's `user_data` key of each identifier the Snap profile hashes.
fn user_data_key(field: Field) -> Option<&'static str> {
    match field {
        Field::Email => Some("em"),
        Field::Phone => Some("ph"),
        Field::FirstName => Some("fn"),
        Field::LastName => Some("ln"),
        _ => None,
    }
}

/// `user_data`: the hashed identifiers (digests only, as lists like Snap's example), the
/// client's IP address and user agent, and Snap's click id and cookie.
pub fn user_data(opened: &OpenedItem) -> Map<String, Value> {
    let mut out = common::hashed_lists(opened, user_data_key);
    common::put_client(&mut out, &opened.sealed, &["sc_click_id", "sc_cookie1"]);
    out
}

/// Whether Snap can match the event: `em`, `ph`, or both `client_ip_address` and
/// `client_user_agent` (Using the API, "At least one of the following").
pub fn matchable(user_data: &Map<String, Value>) -> bool {
    common::matchable_by(user_data, &["em", "ph"], common::CLIENT_KEYS)
}

/// A number as Snap's example writes it: a string (`"10"`, `"5"`).
fn as_text(n: Option<&serde_json::Number>) -> Option<String> {
    n.map(ToString::to_string)
}

fn custom_data(opened: &OpenedItem) -> Map<String, Value> {
    let c = Commerce::read(&opened.item.properties);
    let mut out = Map::new();
    put(&mut out, "currency", c.currency.clone());
    put(&mut out, "value", as_text(c.value.as_ref()));
    put(&mut out, "order_id", c.order_id.clone());
    let contents = Contents::of(&c, |p| {
        let mut o = Map::new();
        put(&mut o, "id", p.id.clone());
        o.insert("quantity".into(), p.units().to_string().into());
        put(&mut o, "item_price", as_text(p.price.as_ref()));
        put(&mut o, "brand", p.brand.clone());
        o
    });
    if let Some(list) = contents {
        out.insert("contents".into(), Value::Array(list.contents));
    }
    out
}

/// `WEB` for an event on a page (a page URL, or the browser channel), else `OFFLINE`: the
/// pixel endpoint takes web and offline events (Introduction; app events need a Snap App
/// ID and `app_data`, which TrackLayer does not collect).
fn action_source(opened: &OpenedItem) -> &'static str {
    if common::on_web(opened) {
        "WEB"
    } else {
        "OFFLINE"
    }
}

/// One `data[]` entry.
pub fn event(target: &Target<'_>, opened: &OpenedItem) -> Value {
    common::capi_event(
        common::event_head(target, opened, "event_name"),
        action_source(opened),
        common::page_url(opened),
        user_data(opened),
        custom_data(opened),
    )
}

/// What a Conversions API answer means for the whole request (see the module notes).
pub fn classify_response(response: &HttpResponse) -> Outcome {
    common::refused_by("Snap", response)
}

impl Connector for Snapchat {
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let envelope = || {
            let pixel = common::required_config(target, "pixel_id")?;
            let token = common::required_secret(target, "access_token")?;
            let base = common::base_url(target, DestinationKind::Snapchat);
            let url = format!(
                "{base}/v3/{}/events?access_token={}",
                query_escape(pixel),
                query_escape(token)
            );
            Ok(common::Envelope::new(url, Vec::new(), "data"))
        };
        let kind = DestinationKind::Snapchat;
        common::batch_request(kind, BATCH_LIMIT, items, envelope, |o| event(target, o))
    }

    common::batch_methods!(whole_request);

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        common::conversions_api_no_deletion_guidance("Snap", "pixel", sent)
    }
}
