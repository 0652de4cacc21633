//! What each destination requires of an event, stated once: the connectors' [`screen`]ing
//! drops what breaks a rule, and ingest checks the same rules ([`unmet`], handed to
//! `IngestService::with_requirements`) to answer the client with a warning naming the
//! destination and the rule, instead of accepting an event that will silently never arrive.
//!
//! | kind | rule | the event is dropped when |
//! |---|---|---|
//! | `meta_capi` | `meta_max_age_7_days` | its timestamp is over 7 days old |
//! | `meta_capi` | `meta_requires_customer_information` | it has no hashed identifier and no click id or IP/UA (`user_data` empty) |
//! | `meta_capi` | `purchase_requires_value` | a `Purchase` has no numeric `revenue`/`total`/`value` (`"49,90"` is not a number) |
//! | `meta_capi` | `purchase_requires_currency` | a `Purchase` has no `currency` |
//! | `ga4` | `ga4_max_age_72_hours` | its timestamp is over 72 hours old |
//! | `ga4` | `ga4_requires_client_id` | it has no `context.client_id` (or `ga_client_id`) and no `anonymousId` |
//! | `ga4` | `ga4_event_name_invalid` | no valid GA4 event name can be made of its name |
//!
//! | `snapchat` | `snapchat_max_age_37_days` | its timestamp is over 37 days old |
//! | `snapchat` | `snapchat_requires_customer_information` | it has no hashed email or phone and not both IP address and user agent |
//! | `pinterest` | `pinterest_requires_customer_information` | it has no hashed email and not both IP address and user agent |
//! | `reddit` | `reddit_max_age_7_days` | its timestamp is over 7 days old |
//! | `reddit` | `reddit_requires_customer_information` | it has no click id, no hashed email or external id, and not both IP address and user agent |
//! | `microsoft_ads` | `microsoft_ads_requires_customer_information` | it has no `msclkid`, no hashed email, phone or external id, and not both IP address and user agent |
//! | `linkedin` | `linkedin_max_age_90_days` | its timestamp is over 90 days old |
//! | `linkedin` | `linkedin_requires_customer_information` | it has no hashed email and no `li_fat_id` click id |
//! | `google_ads` | `google_ads_max_age_90_days` | its timestamp is over 90 days old |
//! | `google_ads` | `google_ads_requires_click_id` | it has no `gclid`, `gbraid` or `wbraid` |
//!
//! TikTok, webhooks, Segment-compatible APIs and Firehose take every event they are routed (Firehose dead-letters a
//! record over 1,000 KiB: its `screen`, not a rule of the event).

use time::Duration;
use tracklayer_core::deliver::{DropReason, OpenedItem, Target};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::ingest::Unmet;

use crate::common::{self, Commerce};
use crate::{ga4, google_ads, linkedin, meta, microsoft_ads, names, pinterest, reddit, snapchat};

/// A broken rule, and whether it is one of age (the event came too late).
struct Broken {
    unmet: Unmet,
    age: bool,
}

fn broken(rule: &'static str, detail: String) -> Option<Broken> {
    Some(Broken {
        unmet: Unmet { rule, detail },
        age: false,
    })
}

/// The first rule of its destination's kind that `opened` breaks, if any.
pub fn unmet(target: &Target<'_>, opened: &OpenedItem) -> Option<Unmet> {
    check(target, opened).map(|b| b.unmet)
}

/// What a connector's `screen` answers: the first broken rule as a [`DropReason`].
pub(crate) fn screen(target: &Target<'_>, opened: &OpenedItem) -> Result<(), DropReason> {
    match check(target, opened) {
        None => Ok(()),
        Some(Broken { unmet, age: true }) => Err(DropReason::Age(unmet.detail)),
        Some(Broken { unmet, age: false }) => Err(DropReason::Invalid(unmet.detail)),
    }
}

fn check(target: &Target<'_>, opened: &OpenedItem) -> Option<Broken> {
    let kind = target.destination.kind;
    if let Some(old) = age_limit(kind).and_then(|limit| too_old(target, opened, limit)) {
        return Some(old);
    }
    match kind {
        DestinationKind::MetaCapi => meta_rules(target, opened),
        DestinationKind::Ga4 => ga4_rules(target, opened),
        DestinationKind::Snapchat => snapchat_rules(opened),
        DestinationKind::Pinterest => pinterest_rules(opened),
        DestinationKind::Reddit => unless_matchable(
            reddit::matchable(opened),
            "reddit_requires_customer_information",
            "Reddit needs a click id, a hashed email or external id, or both the IP address and \
             the user agent",
        ),
        DestinationKind::MicrosoftAds => unless_matchable(
            microsoft_ads::matchable(opened),
            "microsoft_ads_requires_customer_information",
            "Microsoft Advertising needs a click id (msclkid), a hashed email, phone or external \
             id, or both the IP address and the user agent",
        ),
        DestinationKind::Linkedin => unless_matchable(
            linkedin::matchable(opened),
            "linkedin_requires_customer_information",
            "LinkedIn needs a hashed email or a li_fat_id click id",
        ),
        DestinationKind::GoogleAds => unless_matchable(
            google_ads::click_id(opened).is_some(),
            "google_ads_requires_click_id",
            "Google Ads click conversions need a gclid, gbraid or wbraid",
        ),
        DestinationKind::Tiktok
        | DestinationKind::Webhook
        | DestinationKind::Segment
        | DestinationKind::Firehose => None,
    }
}

/// The oldest event a vendor takes: the rule, the vendor, the limit and the limit in words.
fn age_limit(
    kind: DestinationKind,
) -> Option<(&'static str, &'static str, Duration, &'static str)> {
    match kind {
        DestinationKind::MetaCapi => Some(("meta_max_age_7_days", "Meta", meta::MAX_AGE, "7 days")),
        DestinationKind::Ga4 => Some(("ga4_max_age_72_hours", "GA4", ga4::MAX_AGE, "72 hours")),
        DestinationKind::Snapchat => Some((
            "snapchat_max_age_37_days",
            "Snap",
            snapchat::MAX_AGE,
            "37 days",
        )),
        DestinationKind::Reddit => {
            Some(("reddit_max_age_7_days", "Reddit", reddit::MAX_AGE, "7 days"))
        }
        DestinationKind::Linkedin => Some((
            "linkedin_max_age_90_days",
            "LinkedIn",
            linkedin::MAX_AGE,
            "90 days",
        )),
        DestinationKind::GoogleAds => Some((
            "google_ads_max_age_90_days",
            "Google Ads",
            google_ads::MAX_AGE,
            "90 days",
        )),
        DestinationKind::Tiktok
        | DestinationKind::Webhook
        | DestinationKind::Pinterest
        | DestinationKind::MicrosoftAds
        | DestinationKind::Segment
        | DestinationKind::Firehose => None,
    }
}

/// An event older than a vendor takes (`limit`, named in words).
fn too_old(
    target: &Target<'_>,
    opened: &OpenedItem,
    (rule, vendor, limit, words): (&'static str, &str, Duration, &str),
) -> Option<Broken> {
    let age = target.now - opened.item.timestamp;
    (age > limit).then(|| Broken {
        unmet: Unmet {
            rule,
            detail: format!(
                "{vendor} accepts events up to {words} old; this one is {} hours old",
                age.whole_hours()
            ),
        },
        age: true,
    })
}

fn meta_rules(target: &Target<'_>, opened: &OpenedItem) -> Option<Broken> {
    if !meta::has_user_data(opened) {
        return broken(
            "meta_requires_customer_information",
            "Meta needs at least one customer information parameter (user_data)".into(),
        );
    }
    if names::resolve(target.destination, &opened.item) == "Purchase" {
        let (value, currency) = Commerce::value_and_currency(&opened.item.properties);
        let need = "Meta Purchase events need value and currency";
        if value.is_none() {
            let given = ["revenue", "total", "value"]
                .into_iter()
                .find_map(|k| Some((k, opened.item.properties.get(k)?)));
            let detail = match given {
                Some((k, v)) => format!("{need}: properties.{k} is {v}, not a number"),
                None => format!("{need}: properties.revenue (or total, value) is missing"),
            };
            return broken("purchase_requires_value", detail);
        }
        if currency.is_none() {
            return broken(
                "purchase_requires_currency",
                format!("{need}: properties.currency is missing"),
            );
        }
    }
    None
}

fn ga4_rules(target: &Target<'_>, opened: &OpenedItem) -> Option<Broken> {
    if ga4::client_id(opened).is_none() {
        return broken(
            "ga4_requires_client_id",
            "GA4 needs a client id (context client_id or an anonymous id)".into(),
        );
    }
    if ga4::event_name(target, opened).is_none() {
        return broken(
            "ga4_event_name_invalid",
            format!(
                "no valid GA4 event name can be made from {:?}",
                common::truncate_chars(&names::resolve(target.destination, &opened.item), 60)
            ),
        );
    }
    None
}

/// The rule `rule` broken, with `detail`, unless the vendor can match the event.
fn unless_matchable(matchable: bool, rule: &'static str, detail: &str) -> Option<Broken> {
    if matchable {
        return None;
    }
    broken(rule, detail.into())
}

fn snapchat_rules(opened: &OpenedItem) -> Option<Broken> {
    unless_matchable(
        snapchat::matchable(&snapchat::user_data(opened)),
        "snapchat_requires_customer_information",
        "Snap needs a hashed email or phone, or both the IP address and the user agent",
    )
}

fn pinterest_rules(opened: &OpenedItem) -> Option<Broken> {
    unless_matchable(
        pinterest::matchable(&pinterest::user_data(opened)),
        "pinterest_requires_customer_information",
        "Pinterest needs a hashed email, or both the IP address and the user agent",
    )
}
