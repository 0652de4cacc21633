//! Google Ads click conversions: `POST {base}/{api_version}/customers/{customer_id}:uploadClickConversions`
//! (the Google Ads API's `ConversionUploadService.UploadClickConversions`, REST), with an OAuth
//! 2.0 access token, the `developer-token` header and, for a manager account, `login-customer-id`.
//!
//! **Why this API and not the Data Manager API:** delivery needs each event's outcome when it
//! sends it (delivered, retried, dead-lettered). `uploadClickConversions` answers in the same
//! call with one error per failed conversion (`partialFailureError`, located by the
//! conversion's index), which maps onto per-item outcomes; the Data Manager API ingests
//! asynchronously and reports diagnostics per request later, which would leave every event
//! "delivered" before Google has looked at it. The click conversion is also the documented
//! upload for `gclid`/`gbraid`/`wbraid` with a per-conversion `consent`.
//!
//! Sources (Google Ads API reference, v22–v26 alike):
//! `UploadClickConversionsRequest`
//! (<https://developers.google.com/google-ads/api/reference/rpc/latest/UploadClickConversionsRequest>):
//! "Always set `partial_failure = true` … Setting `partial_failure = false` or omitting the field
//! is not supported"; `validate_only` ("validated but not executed": `config.validate_only`).
//! `ClickConversion` / `ClickConversionResult`
//! (<https://developers.google.com/google-ads/api/reference/rpc/latest/ClickConversionResult>):
//! `gclid`, `gbraid` ("clicks associated with app conversions"), `wbraid` ("… web
//! conversions") — exactly one per conversion ([`click_id`]); `conversionAction`, the resource
//! name `customers/{customer_id}/conversionActions/{conversion_action_id}`;
//! `conversionDateTime` as `"yyyy-mm-dd hh:mm:ss+|-hh:mm"`; `userIdentifiers`: "Only
//! hashed_email and hashed_phone_number are supported for conversion uploads. The maximum
//! number of user identifiers for each conversion is 5" (so no address is sent; hashing per
//! `tracklayer_core::identity::google`: "trim …, convert email addresses to lowercase, and
//! format phone numbers in E.164"); `consent{adUserData, adPersonalization}` as `GRANTED` /
//! `DENIED`, from Consent Mode v2 ([`crate::ga4::consent_words`]); with `ad_user_data` denied
//! no identifier leaves. `orderId` ("an order id can only be used for one conversion per
//! conversion action"): the event's `order_id` (the browser tag's `transaction_id`), else
//! its message id, so that Google drops a repeated upload of the same event.
//! Limits (<https://developers.google.com/google-ads/api/docs/best-practices/quotas>):
//! "Conversion Upload Service requests: 2,000 conversions per request"
//! (`TOO_MANY_CONVERSIONS_IN_REQUEST`, "Upload fewer than 2001 events").
//! Errors (`ConversionUploadErrorEnum`,
//! <https://developers.google.com/google-ads/api/reference/rpc/latest/ConversionUploadErrorEnum.ConversionUploadError>),
//! see [`row_outcome`]: `TOO_RECENT_EVENT` ("occurred less than 6 hours ago. Retry after 6
//! hours") and `TOO_RECENT_CONVERSION_ACTION` ("Try importing again in 6 hours") are retried
//! after 6 hours; `CLICK_CONVERSION_ALREADY_EXISTS` and `ORDER_ID_ALREADY_IN_USE` mean an
//! earlier attempt was recorded: delivered; `internalError` and `quotaError` are retried;
//! any other row error is permanent with Google's message. A request-level error (REST
//! `{"error": {code, message, status, details[GoogleAdsFailure]}}`): 429 and 5xx retried after
//! `Retry-After`, 401 the token source's, any other permanent, naming
//! `secrets.developer_token` or `config.login_customer_id` when Google's code points at them.
//! OAuth: scope `https://www.googleapis.com/auth/adwords`; tokens from
//! `POST https://oauth2.googleapis.com/token` ([`tracklayer_core::deliver::oauth`]).

use std::time::Duration as StdDuration;

use serde_json::{json, Map, Value};
use time::Duration;
use tracklayer_core::deliver::{
    Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;
use tracklayer_core::identity::{is_sha256_hex, Field};

use crate::common::{self, put, Commerce};

/// The destination kind.
const KIND: DestinationKind = DestinationKind::GoogleAds;
/// Most conversions one request may carry.
pub const BATCH_LIMIT: usize = 2000;
/// Oldest event sent: Google's longest click-through conversion window.
pub const MAX_AGE: Duration = Duration::days(90);
/// How long Google asks to wait after `TOO_RECENT_EVENT` or `TOO_RECENT_CONVERSION_ACTION`.
pub const TOO_RECENT_WAIT: StdDuration = StdDuration::from_secs(6 * 3600);
/// The click ids, in the order one is chosen when an event has several.
pub const CLICK_IDS: [&str; 3] = ["gclid", "gbraid", "wbraid"];
/// Google's OAuth token endpoint: this path on this host (or on the endpoint override).
const TOKEN_HOST: &str = "https://oauth2.googleapis.com";
const TOKEN_PATH: &str = "/token";

/// The Google Ads click conversion connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoogleAds;

/// The one click id a conversion carries: `gclid`, else `gbraid`, else `wbraid`, with its
/// field name.
pub fn click_id(opened: &OpenedItem) -> Option<(&'static str, &str)> {
    CLICK_IDS.iter().find_map(|name| {
        let v = common::click_id(&opened.sealed, name)?;
        Some((*name, v))
    })
}

/// `userIdentifiers`: the hashed email and phone number, unless the event denies
/// `ad_user_data`.
fn user_identifiers(opened: &OpenedItem) -> Vec<Value> {
    if opened.item.consent.ad_user_data == Some(false) {
        return Vec::new();
    }
    let keys = [
        (Field::Email, "hashedEmail"),
        (Field::Phone, "hashedPhoneNumber"),
    ];
    keys.iter()
        .filter_map(|(field, key)| {
            let hash = opened.item.user_data.get(field)?;
            is_sha256_hex(hash).then(|| json!({ *key: hash.to_ascii_lowercase() }))
        })
        .collect()
}

/// One `conversions[]` entry for the conversion action `action` (a resource name).
pub fn conversion(action: &str, opened: &OpenedItem) -> Value {
    let item = &opened.item;
    let mut c = Map::new();
    if let Some((name, value)) = click_id(opened) {
        c.insert(name.into(), value.into());
    }
    c.insert("conversionAction".into(), action.into());
    let at = item.timestamp.to_offset(time::UtcOffset::UTC);
    let when = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00:00",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    c.insert("conversionDateTime".into(), when.into());
    let commerce = Commerce::read(&item.properties);
    put(&mut c, "conversionValue", commerce.value);
    put(&mut c, "currencyCode", commerce.currency);
    let order = commerce
        .order_id
        .unwrap_or_else(|| item.message_id.as_str().to_owned());
    c.insert("orderId".into(), order.into());
    let ids = user_identifiers(opened);
    if !ids.is_empty() {
        c.insert("userIdentifiers".into(), Value::Array(ids));
    }
    let consent = crate::ga4::consent_words(item.consent, ("adUserData", "adPersonalization"));
    put(&mut c, "consent", consent);
    Value::Object(c)
}

/// A Google Ads error: its family (`conversionUploadError`), code and message.
struct AdsError {
    family: String,
    code: String,
    message: String,
    /// The conversion it is about (`location.fieldPathElements` `conversions[i]`).
    index: Option<usize>,
}

/// The errors of a `Status` (`partialFailureError`, or a REST `error`): each
/// `GoogleAdsFailure` detail's `errors[]`.
fn ads_errors(status: &Value) -> Vec<AdsError> {
    let details = status.get("details").and_then(Value::as_array);
    let errors = details
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("errors").and_then(Value::as_array))
        .flatten();
    errors
        .map(|e| {
            let (family, code) = e
                .get("errorCode")
                .and_then(Value::as_object)
                .and_then(|o| o.iter().next())
                .map(|(f, c)| (f.clone(), c.as_str().unwrap_or_default().to_owned()))
                .unwrap_or_default();
            let path = e
                .pointer("/location/fieldPathElements")
                .and_then(Value::as_array);
            let index = path
                .into_iter()
                .flatten()
                .find(|p| p["fieldName"] == "conversions")
                .and_then(|p| p["index"].as_u64())
                .map(|i| i as usize);
            let message = e["message"].as_str().unwrap_or_default();
            AdsError {
                family,
                code,
                message: common::truncate_chars(message, 300),
                index,
            }
        })
        .collect()
}

/// What one row error means for its conversion.
fn row_outcome(e: &AdsError) -> Outcome {
    let reason = format!("Google Ads {} {}: {}", e.family, e.code, e.message);
    match (e.family.as_str(), e.code.as_str()) {
        (
            "conversionUploadError",
            "CLICK_CONVERSION_ALREADY_EXISTS" | "ORDER_ID_ALREADY_IN_USE",
        ) => Outcome::Delivered,
        ("conversionUploadError", "TOO_RECENT_EVENT" | "TOO_RECENT_CONVERSION_ACTION") => {
            Outcome::Retry {
                after: Some(TOO_RECENT_WAIT),
                reason,
            }
        }
        ("internalError" | "quotaError", _) => Outcome::Retry {
            after: None,
            reason,
        },
        _ => Outcome::Permanent { reason },
    }
}

/// The per-conversion outcomes of a 2xx answer with a `partialFailureError`.
fn partial(items: usize, status: &Value) -> Outcome {
    let errors = ads_errors(status);
    let mut outcomes: Vec<(usize, Outcome)> = (0..items).map(|i| (i, Outcome::Delivered)).collect();
    for e in &errors {
        let all = 0..items;
        let which: Vec<usize> = match e.index {
            Some(i) if i < items => vec![i],
            Some(_) => continue,
            None => all.collect(),
        };
        for i in which {
            if outcomes[i].1 == Outcome::Delivered {
                outcomes[i].1 = row_outcome(e);
            }
        }
    }
    if outcomes.iter().all(|(_, o)| *o == Outcome::Delivered) {
        return Outcome::Delivered;
    }
    Outcome::PerItem(outcomes)
}

/// The reason of a request-level error, naming the setting at fault when Google's code
/// points at one.
fn request_reason(response: &HttpResponse, body: Option<&Value>) -> String {
    let error = body.and_then(|b| b.get("error"));
    let first = error.map(ads_errors).unwrap_or_default().into_iter().next();
    let message = first
        .as_ref()
        .map(|e| format!("{} {}: {}", e.family, e.code, e.message))
        .or_else(|| {
            let m = error?.get("message")?.as_str()?;
            Some(common::truncate_chars(m, 300))
        })
        .unwrap_or_else(|| common::body_excerpt(response));
    let code = first.map(|e| e.code).unwrap_or_default();
    let fix = if code.contains("DEVELOPER_TOKEN") {
        " (check secrets.developer_token)"
    } else if code.contains("LOGIN_CUSTOMER_ID") {
        " (check config.login_customer_id)"
    } else {
        ""
    };
    format!("HTTP {}: Google Ads {message}{fix}", response.status)
}

/// What an answer means for the request's `items` conversions: a 2xx without
/// `partialFailureError` is delivered, with one answers per conversion ([`row_outcome`]);
/// otherwise 408, 429 and 5xx are retried after `Retry-After` and any other status is
/// permanent with Google's error.
pub fn classify_response(items: usize, response: &HttpResponse) -> Outcome {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    if (200..300).contains(&response.status) {
        let failure = body.as_ref().and_then(|b| b.get("partialFailureError"));
        return match failure {
            Some(status) if !status.is_null() && items > 0 => partial(items, status),
            _ => Outcome::Delivered,
        };
    }
    common::status_with_reason(response, request_reason(response, body.as_ref()))
}

impl Connector for GoogleAds {
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let customer = common::required_config(target, "customer_id")?;
        let action_id = common::required_config(target, "conversion_action_id")?;
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(customer) || !all_digits(action_id) {
            return Err(
                "google_ads: config.customer_id and conversion_action_id must be digits".into(),
            );
        }
        let action = format!("customers/{customer}/conversionActions/{action_id}");
        let envelope = || {
            let version = common::required_config(target, "api_version")?;
            let token = common::required_secret(target, "access_token")?;
            let developer = common::required_secret(target, "developer_token")?;
            let mut headers = vec![
                common::bearer(token),
                ("developer-token".to_owned(), developer.to_owned()),
            ];
            if let Some(login) = common::config_str(target, "login_customer_id") {
                headers.push(("login-customer-id".to_owned(), login.to_owned()));
            }
            let base = common::base_url(target, KIND);
            let url = format!("{base}/{version}/customers/{customer}:uploadClickConversions");
            let mut e = common::Envelope::new(url, headers, "conversions");
            e.tail.insert("partialFailure".into(), true.into());
            let validate = common::config_flag(target, "validate_only");
            e.tail.insert("validateOnly".into(), validate.into());
            Ok(e)
        };
        common::batch_request(KIND, BATCH_LIMIT, items, envelope, |o| {
            conversion(&action, o)
        })
    }

    common::batch_methods!(oauth);

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        let google = common::NoDeletion {
            api: "The Google Ads API's conversion upload",
            vendor: "Google",
            account: "conversion action",
            how: "Ask Google to delete them through the Google Ads privacy request channel",
        };
        common::no_deletion_guidance(&google, sent)
    }
}
