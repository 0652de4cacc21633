//! Microsoft Advertising UET Conversions API (CAPI):
//! `POST {base}/v1/{tag_id}/events`, header `Authorization: Bearer {CAPI token}`.
//!
//! Sources: Microsoft Advertising, "Conversions API (CAPI) Guide"
//! (<https://learn.microsoft.com/en-us/advertising/guides/uet-conversion-api-integration>) and
//! its help page (<https://learn.microsoft.com/en-us/advertising/msa-help/hlp_ba_conc_aboutcapi>);
//! the endpoint and header as Microsoft's answer to "Conversions API CAPI creation" gives them
//! (<https://learn.microsoft.com/en-us/answers/questions/5840634/conversions-api-capi-creation>:
//! "send events to the CAPI endpoint `https://capi.uet.microsoft.com/v1/{tagID}/events` with
//! the header `Authorization: Bearer <ApiToken>`"); the body and event members as the
//! integrations built on the guide send them (Stape's tag, `stape-io/microsoft-capi-tag`;
//! walkerOS's Bing UET CAPI destination, <https://www.walkeros.io/docs/destinations/server/bing>;
//! PostHog's `template-microsoft-ads`):
//! * Body `{"data": [..], "continueOnValidationError": true, "dataProvider": "tracklayer"}`:
//!   with `continueOnValidationError` Microsoft "continues to ingest events despite validation
//!   errors", so one malformed event does not refuse the others of its batch.
//! * Each event: `eventType` (`pageLoad` for a page call, else `custom` with `eventName`, the
//!   event action a custom conversion goal matches), `eventId` (the message id: "use a shared
//!   eventId so Microsoft Advertising can avoid double-counting" with the UET tag),
//!   `eventTime` (Unix seconds), `eventSourceUrl` (the page URL, stripped as every URL that
//!   leaves), `adStorageConsent` (`G` when the destination requires the `advertising`
//!   purpose, its default, else `D`: [`ad_storage_consent`]), `userData`
//!   (`em`, `ph`, `externalId` as SHA-256 digests, `msclkid`, `clientIpAddress`,
//!   `clientUserAgent`) and `customData` (`pageType`, `value`, `currency`, `transactionId`,
//!   `itemIds`, `items[{id, name, price, quantity}]`, `searchTerm`).
//! * `msclkid` is the Microsoft click id of the landing page URL ("capture the landing-page
//!   click ID and resend it with subsequent events"), as ingest collected it
//!   (`tracklayer_core::click_ids`).
//! * At most [`BATCH_LIMIT`] events a request (the batch limit of the vendor connectors built
//!   with Microsoft on the guide, e.g. Tealium's "Max number of requests: 1,000").
//! * Answers: 2xx delivered; 400 (validation of the request as a whole), 401 (token), 403 and
//!   404 (tag) permanent; 408, 429 and 5xx retried after `Retry-After` ([`classify_response`]).

use serde_json::{Map, Value};
use tracklayer_core::consent::Purpose;
use tracklayer_core::deliver::{
    Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::event::EventType;

use crate::common::{self, clean, put, Commerce, Contents};

/// Most events one request may carry.
pub const BATCH_LIMIT: usize = 1000;
/// Who sends the events (`dataProvider`).
pub const DATA_PROVIDER: &str = "tracklayer";
/// UET's `pageType` (dynamic remarketing) of the Segment ecommerce events that have one.
pub const PAGE_TYPES: &[(&str, &str)] = &[
    ("Order Completed", "purchase"),
    ("Product Viewed", "product"),
    ("Cart Viewed", "cart"),
    ("Products Searched", "searchresults"),
    ("Product List Viewed", "category"),
];

/// The Microsoft Advertising UET Conversions API connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct MicrosoftAds;

/// `userData`: the hashed email, phone and external id, the click id, the IP address and
/// the user agent.
pub fn user_data(opened: &OpenedItem) -> Map<String, Value> {
    let mut out = common::digests(opened, ["em", "ph", "externalId"]);
    let s = &opened.sealed;
    put(&mut out, "msclkid", click_id(opened));
    put(&mut out, "clientIpAddress", clean(s.ip.as_deref()));
    put(&mut out, "clientUserAgent", clean(s.user_agent.as_deref()));
    out
}

/// The `msclkid` click id, as ingest collected it.
fn click_id(opened: &OpenedItem) -> Option<&str> {
    common::click_id(&opened.sealed, "msclkid")
}

/// Whether Microsoft can match the event: a click id, a hashed email, phone or external id,
/// or both the IP address and the user agent.
pub fn matchable(opened: &OpenedItem) -> bool {
    let keys = ["msclkid", "em", "ph", "externalId"];
    common::matchable_by(
        &user_data(opened),
        &keys,
        ["clientIpAddress", "clientUserAgent"],
    )
}

fn custom_data(opened: &OpenedItem) -> Map<String, Value> {
    let c = Commerce::read(&opened.item.properties);
    let mut out = Map::new();
    let name = opened.item.name.as_deref().map(str::trim).unwrap_or("");
    let page_type = PAGE_TYPES
        .iter()
        .find(|(segment, _)| segment.eq_ignore_ascii_case(name))
        .map(|(_, t)| *t);
    put(&mut out, "pageType", page_type);
    put(&mut out, "value", c.value.clone());
    put(&mut out, "currency", c.currency.clone());
    put(&mut out, "transactionId", c.order_id.clone());
    let contents = Contents::of(&c, |p| {
        let mut o = Map::new();
        put(&mut o, "id", p.id.clone());
        put(&mut o, "name", p.name.clone());
        put(&mut o, "price", p.price.clone());
        o.insert("quantity".into(), p.units().into());
        o
    });
    if let Some(Contents { contents, ids, .. }) = contents {
        out.insert("itemIds".into(), Value::Array(ids));
        out.insert("items".into(), Value::Array(contents));
    }
    put(&mut out, "searchTerm", c.query.clone());
    out
}

/// `adStorageConsent`: `G` (granted) when the destination sends only events whose consent
/// covers the `advertising` purpose (its default), else `D`: an event that may have gone
/// without that consent is never declared granted.
fn ad_storage_consent(target: &Target<'_>) -> &'static str {
    let purposes = &target.destination.consent_purposes;
    if purposes.contains(&Purpose::advertising()) {
        "G"
    } else {
        "D"
    }
}

/// One `data[]` entry.
pub fn event(target: &Target<'_>, opened: &OpenedItem) -> Value {
    let mut e = Map::new();
    if opened.item.event_type == EventType::Page {
        e.insert("eventType".into(), "pageLoad".into());
    } else {
        e.insert("eventType".into(), "custom".into());
        let name = crate::names::resolve(target.destination, &opened.item);
        e.insert("eventName".into(), name.into());
    }
    e.insert("eventId".into(), opened.item.message_id.as_str().into());
    e.insert(
        "eventTime".into(),
        opened.item.timestamp.unix_timestamp().into(),
    );
    put(&mut e, "eventSourceUrl", common::page_url(opened));
    e.insert("adStorageConsent".into(), ad_storage_consent(target).into());
    e.insert("userData".into(), Value::Object(user_data(opened)));
    let custom = custom_data(opened);
    if !custom.is_empty() {
        e.insert("customData".into(), Value::Object(custom));
    }
    Value::Object(e)
}

/// What an answer means for the whole request: 2xx delivered; 408, 429 and 5xx retried after
/// `Retry-After`; any other status permanent, with Microsoft's answer as the reason.
pub fn classify_response(response: &HttpResponse) -> Outcome {
    common::refused_by("Microsoft Advertising", response)
}

impl Connector for MicrosoftAds {
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let envelope = || {
            let url = |base: &str, tag: &str| format!("{base}/v1/{tag}/events");
            let mut e = common::bearer_envelope(target, "tag_id", url, "data")?;
            e.tail
                .insert("continueOnValidationError".into(), true.into());
            e.tail.insert("dataProvider".into(), DATA_PROVIDER.into());
            Ok(e)
        };
        let kind = DestinationKind::MicrosoftAds;
        common::batch_request(kind, BATCH_LIMIT, items, envelope, |o| event(target, o))
    }

    common::batch_methods!(whole_request);

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        let microsoft = common::NoDeletion {
            api: "Microsoft Advertising's Conversions API",
            vendor: "Microsoft Advertising",
            account: "UET tag",
            how: "Ask Microsoft to delete them through its privacy request channel for advertisers",
        };
        common::no_deletion_guidance(&microsoft, sent)
    }
}
