//! LinkedIn Conversions API: `POST {base}/rest/conversionEvents`, a batch of conversion events
//! for one conversion rule, with an OAuth 2.0 access token.
//!
//! Sources: LinkedIn Marketing API, "Conversions API" — Streaming Conversion Events
//! (<https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/conversions-api>)
//! and its schema page
//! (<https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/conversions-api-schema>);
//! the Conversions FAQ
//! (<https://learn.microsoft.com/en-us/linkedin/marketing/conversions/conversions-faq>);
//! LinkedIn's OAuth 2.0 programmatic refresh tokens
//! (<https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens>).
//! * Headers on every call: `LinkedIn-Version: {yyyymm}` ("must be passed as a request header
//!   in all your API requests as per Versioning": `config.api_version`) and
//!   `X-Restli-Protocol-Version: 2.0.0`; a batch adds `X-RestLi-Method: BATCH_CREATE` and
//!   sends `{"elements": [..]}`, answered `{"elements": [{"status": 201}, ..]}` in request
//!   order ([`classify_response`]).
//! * Each element: `conversion` — the rule's URN `urn:lla:llaPartnerConversion:{id}`
//!   (`config.conversion_id`); `conversionHappenedAt` in epoch milliseconds;
//!   `conversionValue{currencyCode, amount}` with the amount as a decimal string; `eventId`,
//!   which deduplicates with the Insight Tag's event id — the message id, as the browser tag
//!   sends it; `user.userIds[{idType, idValue}]` with `SHA256_EMAIL` (rules in
//!   `tracklayer_core::identity::linkedin`) and `LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID`, the
//!   `li_fat_id` click id (from the event or the landing page's query, read at ingest), and
//!   (version 202410 and later) `user.externalIds`, at most one, the hashed external id.
//!   `userInfo` (names in the clear) is never sent: TrackLayer keeps no raw names.
//! * A user needs at least one of those ids ([`matchable`]); an event must reach LinkedIn
//!   within 90 days ([`MAX_AGE`]). A conversion rule has no event name: every event it gets
//!   counts as that conversion, so the destination's `events` must name the events that are
//!   it (a configure-time rule).
//! * Batches of up to 5,000 events, 600 requests a minute (as partners document the limits:
//!   Salesforce Data Cloud's LinkedIn connector,
//!   <https://developer.salesforce.com/docs/data/data-cloud-int/guide/c360-a-linkedincapi-connector.html>).
//! * OAuth: scopes `rw_conversions` (and `r_ads`), granted by a member with a role on the ad
//!   account; the token comes from `POST https://www.linkedin.com/oauth/v2/accessToken` with
//!   `grant_type=refresh_token` ([`tracklayer_core::deliver::oauth`]). A refresh keeps the
//!   refresh token (its lifetime is not extended), so nothing has to be stored back.
//! * Answers: 2xx with per-element statuses; 400, 403, 404, 422 permanent with LinkedIn's
//!   `message`; 401 is the token source's (refreshed once, then permanent); 429 and 5xx retried
//!   after `Retry-After`.

use serde_json::{json, Map, Value};
use time::Duration;
use tracklayer_core::deliver::{
    Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::identity::{is_sha256_hex, Field};

use crate::common::{self, Commerce};

/// The destination kind.
const KIND: DestinationKind = DestinationKind::Linkedin;
/// Most events one request may carry.
pub const BATCH_LIMIT: usize = 5000;
/// Oldest event LinkedIn takes.
pub const MAX_AGE: Duration = Duration::days(90);
/// The token endpoint's path, on `https://www.linkedin.com` (or the destination's endpoint).
pub const TOKEN_PATH: &str = "/oauth/v2/accessToken";
const TOKEN_HOST: &str = "https://www.linkedin.com";

/// The LinkedIn Conversions API connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Linkedin;

/// The `li_fat_id` click id, as ingest collected it.
fn click_id(opened: &OpenedItem) -> Option<&str> {
    common::click_id(&opened.sealed, "li_fat_id")
}

/// The item's digest of `field`, when it is one.
fn digest(opened: &OpenedItem, field: Field) -> Option<String> {
    let hash = opened.item.user_data.get(&field)?;
    is_sha256_hex(hash).then(|| hash.to_ascii_lowercase())
}

/// `user`: `userIds` (the hashed email, the `li_fat_id`) and `externalIds` (the hashed
/// external id).
pub fn user(opened: &OpenedItem) -> Map<String, Value> {
    let mut ids = Vec::new();
    if let Some(email) = digest(opened, Field::Email) {
        ids.push(json!({"idType": "SHA256_EMAIL", "idValue": email}));
    }
    if let Some(click) = click_id(opened) {
        ids.push(json!({"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": click}));
    }
    let mut out = Map::new();
    out.insert("userIds".into(), Value::Array(ids));
    if let Some(external) = digest(opened, Field::ExternalId) {
        out.insert("externalIds".into(), json!([external]));
    }
    out
}

/// Whether LinkedIn can match the event: a hashed email or a `li_fat_id`.
pub fn matchable(opened: &OpenedItem) -> bool {
    digest(opened, Field::Email).is_some() || click_id(opened).is_some()
}

/// One `elements[]` entry for the conversion rule `urn`.
pub fn event(urn: &str, opened: &OpenedItem) -> Value {
    let item = &opened.item;
    let millis = item.timestamp.unix_timestamp_nanos() / 1_000_000;
    let mut e = Map::new();
    e.insert("conversion".into(), urn.into());
    e.insert("conversionHappenedAt".into(), json!(millis as i64));
    let c = Commerce::read(&item.properties);
    if let (Some(value), Some(currency)) = (c.value, c.currency) {
        let amount = value.to_string();
        e.insert(
            "conversionValue".into(),
            json!({"currencyCode": currency, "amount": amount}),
        );
    }
    e.insert("user".into(), Value::Object(user(opened)));
    e.insert("eventId".into(), item.message_id.as_str().into());
    Value::Object(e)
}

/// LinkedIn's error message (`{"message": "..", "status": 400}`, Rest.li's error body).
fn message(v: Option<&Value>) -> Option<String> {
    let v = v?;
    v.get("message")
        .or_else(|| v.get("error").and_then(|e| e.get("message")))
        .and_then(Value::as_str)
        .map(|m| common::truncate_chars(m, 300))
}

/// The outcome of one element of a batch answer, by its own `status`.
fn element_outcome(e: &Value) -> Outcome {
    let status = e.get("status").and_then(Value::as_u64).unwrap_or(0);
    let why = || {
        let m = message(Some(e)).unwrap_or_else(|| "no reason given".into());
        format!("LinkedIn refused the event (status {status}): {m}")
    };
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            after: None,
            reason: why(),
        },
        _ => Outcome::Permanent { reason: why() },
    }
}

/// What an answer means for the request's `items` events: a 2xx with one `elements[]` status
/// per event answers per event; otherwise 2xx is delivered, 408, 429 and 5xx are retried after
/// `Retry-After`, and any other status is permanent with LinkedIn's message.
pub fn classify_response(items: usize, response: &HttpResponse) -> Outcome {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    if (200..300).contains(&response.status) {
        let elements = body
            .as_ref()
            .and_then(|b| b.get("elements"))
            .and_then(Value::as_array);
        if let Some(list) = elements.filter(|l| l.len() == items && items > 0) {
            let outcomes: Vec<(usize, Outcome)> =
                list.iter().map(element_outcome).enumerate().collect();
            if outcomes.iter().all(|(_, o)| *o == Outcome::Delivered) {
                return Outcome::Delivered;
            }
            return Outcome::PerItem(outcomes);
        }
    }
    let m = message(body.as_ref()).unwrap_or_else(|| common::body_excerpt(response));
    let reason = format!("HTTP {}: LinkedIn: {m}", response.status);
    common::status_with_reason(response, reason)
}

impl Connector for Linkedin {
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let conversion = common::required_config(target, "conversion_id")?;
        let urn = format!("urn:lla:llaPartnerConversion:{conversion}");
        let envelope = || {
            if !conversion.bytes().all(|b| b.is_ascii_digit()) {
                return Err("linkedin: config.conversion_id must be digits".into());
            }
            let version = common::required_config(target, "api_version")?;
            let token = common::required_secret(target, "access_token")?;
            let base = common::base_url(target, KIND);
            let headers = vec![
                common::bearer(token),
                ("LinkedIn-Version".to_owned(), version.to_owned()),
                ("X-Restli-Protocol-Version".to_owned(), "2.0.0".to_owned()),
                ("X-RestLi-Method".to_owned(), "BATCH_CREATE".to_owned()),
            ];
            let url = format!("{base}/rest/conversionEvents");
            Ok(common::Envelope::new(url, headers, "elements"))
        };
        common::batch_request(KIND, BATCH_LIMIT, items, envelope, |o| event(&urn, o))
    }

    common::batch_methods!(oauth);

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        common::conversions_api_no_deletion_guidance("LinkedIn", "conversion rule", sent)
    }
}
