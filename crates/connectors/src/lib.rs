//! Destination wire formats, one module per vendor: [`meta`] (Meta Conversions API), [`ga4`]
//! (GA4 Measurement Protocol), [`tiktok`] (TikTok Events API 2.0), [`webhook`] (Standard
//! Webhooks), [`snapchat`] (Snap Conversions API v3), [`pinterest`] (Pinterest
//! Conversions API v5), [`reddit`] (Reddit Conversions API v2.0), [`microsoft_ads`] (Microsoft
//! Advertising UET Conversions API), [`linkedin`] (LinkedIn Conversions API) and [`google_ads`]
//! (Google Ads click conversions), both with OAuth 2.0 access tokens, [`segment`] (any
//! Segment-compatible HTTP API) and [`firehose`] (Amazon Data Firehose `PutRecordBatch`), plus
//! [`names`], the mapping from Segment event names to each vendor's standard events.
//!
//! Pure code: each connector turns opened [`DeliveryItem`](tracklayer_core::event::DeliveryItem)s
//! into an [`HttpRequest`](tracklayer_core::deliver::HttpRequest) and a vendor's answer into an
//! [`Outcome`](tracklayer_core::deliver::Outcome). No I/O, no clock (time comes in
//! [`Target::now`]), no HTTP client.
//!
//! A delivery loop uses a connector like this: [`Connector::screen`] each item (dropping the
//! ones that can never be sent), split the rest with [`batches`] (GA4 needs more than a
//! count: one request per client), [`Connector::build`] one request per batch, send it, and
//! [`Connector::classify`] the answer.

mod commerce;
mod common;
#[cfg(test)]
mod erasure_guidance_tests;
pub mod firehose;
pub mod ga4;
pub mod google_ads;
pub mod linkedin;
pub mod meta;
pub mod microsoft_ads;
pub mod names;
pub mod pinterest;
pub mod reddit;
pub mod requirements;
pub mod segment;
pub mod snapchat;
pub mod tiktok;
pub mod webhook;

use tracklayer_core::deliver::{Connector, OpenedItem, Target};
use tracklayer_core::destination::DestinationKind;

pub use webhook::sign_webhook;

static META: meta::MetaCapi = meta::MetaCapi;
static GA4: ga4::Ga4 = ga4::Ga4;
static TIKTOK: tiktok::Tiktok = tiktok::Tiktok;
static WEBHOOK: webhook::Webhook = webhook::Webhook;
static SNAPCHAT: snapchat::Snapchat = snapchat::Snapchat;
static PINTEREST: pinterest::Pinterest = pinterest::Pinterest;
static REDDIT: reddit::Reddit = reddit::Reddit;
static MICROSOFT_ADS: microsoft_ads::MicrosoftAds = microsoft_ads::MicrosoftAds;
static SEGMENT: segment::Segment = segment::Segment;
static LINKEDIN: linkedin::Linkedin = linkedin::Linkedin;
static GOOGLE_ADS: google_ads::GoogleAds = google_ads::GoogleAds;
static FIREHOSE: firehose::Firehose = firehose::Firehose;

/// The connector of a destination kind.
pub fn connector(kind: DestinationKind) -> &'static dyn Connector {
    match kind {
        DestinationKind::MetaCapi => &META,
        DestinationKind::Ga4 => &GA4,
        DestinationKind::Tiktok => &TIKTOK,
        DestinationKind::Webhook => &WEBHOOK,
        DestinationKind::Snapchat => &SNAPCHAT,
        DestinationKind::Pinterest => &PINTEREST,
        DestinationKind::Reddit => &REDDIT,
        DestinationKind::MicrosoftAds => &MICROSOFT_ADS,
        DestinationKind::Segment => &SEGMENT,
        DestinationKind::Linkedin => &LINKEDIN,
        DestinationKind::GoogleAds => &GOOGLE_ADS,
        DestinationKind::Firehose => &FIREHOSE,
    }
}

/// The vendor's production base URL. Webhooks have none (`""`): their URL is the
/// destination's `endpoint`, else `config.url`; Firehose's depends on `config.region`.
pub fn default_base_url(kind: DestinationKind) -> &'static str {
    match kind {
        DestinationKind::MetaCapi => "https://graph.facebook.com",
        DestinationKind::Ga4 => "https://www.google-analytics.com",
        DestinationKind::Tiktok => "https://business-api.tiktok.com",
        DestinationKind::Webhook => "",
        DestinationKind::Snapchat => "https://tr.snapchat.com",
        DestinationKind::Pinterest => "https://api.pinterest.com",
        DestinationKind::Reddit => "https://ads-api.reddit.com",
        DestinationKind::MicrosoftAds => "https://capi.uet.microsoft.com",
        // Segment's US endpoint; EU workspaces and other Segment-compatible APIs set `endpoint`.
        DestinationKind::Segment => "https://api.segment.io",
        DestinationKind::Linkedin => "https://api.linkedin.com",
        DestinationKind::GoogleAds => "https://googleads.googleapis.com",
        // Regional: `https://firehose.<config.region>.amazonaws.com` (the connector's URL).
        DestinationKind::Firehose => "",
    }
}

/// Splits screened items into the batches one request each may carry, in order: items that
/// may share a request ([`Connector::group_key`]; GA4: one client id, user id, consent and
/// user data) in chunks of [`Connector::batch_limit`]. The delivery service's own grouping
/// ([`tracklayer_core::deliver::batches`]), for the destination's connector.
pub fn batches<'a>(target: &Target<'_>, items: &[&'a OpenedItem]) -> Vec<Vec<&'a OpenedItem>> {
    tracklayer_core::deliver::batches(connector(target.destination.kind), target, items)
}
