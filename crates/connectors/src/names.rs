//! Event names: from Segment spec names to each destination's standard events.
//!
//! Resolution, in order:
//! 1. `config.event_names`, an object mapping a Segment name to the destination's name. The
//!    key is the event's name (`event` of a track call, `name` of a page or screen call), the
//!    same name the destination's event filter sees; page and screen calls are also looked up
//!    under `"page"` / `"screen"`, so one entry can map every page view. Keys match exactly
//!    first, then ignoring ASCII case and surrounding whitespace.
//! 2. The standard table below: Segment ecommerce and lifecycle names, and page views.
//! 3. The name itself (a page or screen call without a name: `"page"` / `"screen"`).
//!
//! GA4 sanitizes whatever comes out (see [`crate::ga4::sanitize_name`]).
//!
//! Sources: Segment spec names: <https://segment.com/docs/connections/spec/ecommerce/v2/>
//! and <https://segment.com/docs/connections/spec/b2b-saas/> (`Signed Up`). Meta standard
//! events: <https://developers.facebook.com/docs/meta-pixel/reference#standard-events>. GA4
//! recommended events:
//! <https://developers.google.com/analytics/devguides/collection/ga4/reference/events>. TikTok
//! standard events ("About supported standard events", TikTok Ads Manager help, updated
//! September 2025): <https://ads.tiktok.com/help/article/supported-standard-events>, which
//! lists `Purchase` where older versions of the page listed `CompletePayment`. The kinds added
//! later cite their source at [`STANDARD`].

use serde_json::Value;
use tracklayer_core::destination::{Destination, DestinationKind};
use tracklayer_core::event::{DeliveryItem, EventType};

/// The kinds with a standard table column, in column order.
const COLUMNS: [DestinationKind; 6] = [
    DestinationKind::MetaCapi,
    DestinationKind::Ga4,
    DestinationKind::Tiktok,
    DestinationKind::Snapchat,
    DestinationKind::Pinterest,
    DestinationKind::Reddit,
];

/// One row of the standard table: a Segment name and, per kind of [`COLUMNS`], its standard
/// event (`None`: none, the name passes through).
type Row = (&'static str, [Option<&'static str>; COLUMNS.len()]);

/// The standard table. Snap's column: its v3 event list (`PURCHASE`, `ADD_CART`, `LOGIN`, …;
/// <https://developers.snap.com/api/marketing-api/Conversions-API/Parameters>). Pinterest's:
/// the `event_name` values of its v5 reference (`checkout`, `add_to_cart`, `view_category`,
/// …; `crate::pinterest`). Reddit's: its v2.0 tracking types (`Purchase`, `AddToCart`, …;
/// `crate::reddit`).
#[rustfmt::skip]
const STANDARD: &[Row] = &[
    ("Order Completed", [Some("Purchase"), Some("purchase"), Some("Purchase"), Some("PURCHASE"), Some("checkout"), Some("Purchase")]),
    ("Product Added", [Some("AddToCart"), Some("add_to_cart"), Some("AddToCart"), Some("ADD_CART"), Some("add_to_cart"), Some("AddToCart")]),
    ("Checkout Started", [Some("InitiateCheckout"), Some("begin_checkout"), Some("InitiateCheckout"), Some("START_CHECKOUT"), Some("initiate_checkout"), None]),
    ("Products Searched", [Some("Search"), Some("search"), Some("Search"), Some("SEARCH"), Some("search"), Some("Search")]),
    ("Signed Up", [Some("CompleteRegistration"), Some("sign_up"), Some("CompleteRegistration"), Some("SIGN_UP"), Some("signup"), Some("SignUp")]),
    ("Signed In", [None, None, None, Some("LOGIN"), None, None]),
    ("Product Viewed", [Some("ViewContent"), Some("view_item"), Some("ViewContent"), Some("VIEW_CONTENT"), Some("view_content"), Some("ViewContent")]),
    ("Product Added to Wishlist", [Some("AddToWishlist"), Some("add_to_wishlist"), Some("AddToWishlist"), Some("ADD_TO_WISHLIST"), Some("add_to_wishlist"), Some("AddToWishlist")]),
    ("Payment Info Entered", [Some("AddPaymentInfo"), Some("add_payment_info"), Some("AddPaymentInfo"), Some("ADD_BILLING"), Some("add_payment_info"), None]),
    ("Product Removed", [None, Some("remove_from_cart"), None, None, None, None]),
    ("Cart Viewed", [None, Some("view_cart"), None, None, None, None]),
    ("Product List Viewed", [None, Some("view_item_list"), None, Some("LIST_VIEW"), Some("view_category"), None]),
];

/// The kind whose standard names a kind takes. Microsoft Advertising's UET event actions are
/// GA4's recommended event names (`purchase`, `add_to_cart`, `view_item`, `search`, …: the
/// names Microsoft's CAPI integrations send for them, e.g. Stape's `gaToEventName`), so it
/// reads GA4's column; a page call is UET's `pageLoad` event, which has no name.
fn same_names_as(kind: DestinationKind) -> DestinationKind {
    match kind {
        DestinationKind::MicrosoftAds => DestinationKind::Ga4,
        other => other,
    }
}

/// The standard event a page view becomes.
fn page_view(kind: DestinationKind) -> Option<&'static str> {
    match kind {
        DestinationKind::MetaCapi => Some("PageView"),
        DestinationKind::Ga4 => Some("page_view"),
        DestinationKind::Tiktok => Some("Pageview"),
        DestinationKind::Webhook | DestinationKind::Firehose => None,
        DestinationKind::Snapchat => Some("PAGE_VIEW"),
        DestinationKind::Pinterest => Some("page_visit"),
        DestinationKind::Reddit => Some("PageVisit"),
        DestinationKind::MicrosoftAds | DestinationKind::Segment => None,
        // A LinkedIn conversion rule and a Google Ads conversion action have no event name.
        DestinationKind::Linkedin | DestinationKind::GoogleAds => None,
    }
}

/// The name a destination's event filter and `event_names` keys see: the event's name, or
/// the call type (`"page"`, `"screen"`, ...) when it has none.
pub fn source_name(item: &DeliveryItem) -> &str {
    item.name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(item.event_type.as_str())
}

/// The destination's standard event for an item, if the table has one.
pub fn standard(kind: DestinationKind, item: &DeliveryItem) -> Option<&'static str> {
    if item.event_type == EventType::Page {
        return page_view(kind);
    }
    if item.event_type != EventType::Track {
        return None;
    }
    let name = item.name.as_deref()?.trim();
    let column = COLUMNS.iter().position(|k| *k == same_names_as(kind))?;
    STANDARD
        .iter()
        .find(|(segment, _)| segment.eq_ignore_ascii_case(name))
        .and_then(|(_, names)| names[column])
}

/// The destination's override for an item, from `config.event_names`.
pub fn overridden<'a>(destination: &'a Destination, item: &DeliveryItem) -> Option<&'a str> {
    let map = destination.config.get("event_names")?.as_object()?;
    let lookup = |key: &str| -> Option<&'a str> {
        let exact = map.get(key).and_then(Value::as_str);
        let folded = || {
            map.iter()
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(key.trim()))
                .and_then(|(_, v)| v.as_str())
        };
        exact
            .or_else(folded)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    lookup(source_name(item)).or_else(|| match item.event_type {
        EventType::Page | EventType::Screen => lookup(item.event_type.as_str()),
        _ => None,
    })
}

/// The event name to send: override, else standard event, else the source name.
pub fn resolve(destination: &Destination, item: &DeliveryItem) -> String {
    overridden(destination, item)
        .or_else(|| standard(destination.kind, item))
        .unwrap_or_else(|| source_name(item))
        .to_owned()
}
