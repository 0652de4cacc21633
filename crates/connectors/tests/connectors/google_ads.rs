//! Google Ads click conversions (`uploadClickConversions`): the documented request shape,
//! exactly one click id, consent, limits, screening, partial failures and request errors.

use super::*;

fn google_ads() -> (Destination, Value) {
    vendor(DestinationKind::GoogleAds)
}

/// The order fixture with a `gclid`, as ingest collects it from the landing page.
fn clicked_order() -> OpenedItem {
    order_with_click_id("gclid", "Cj0KCQiAgc-tracklayer-golden")
}

#[test]
fn google_ads_builds_the_documented_upload_with_token_and_developer_token() {
    let (d, s) = google_ads();
    let request = build(&target(&d, &s), &[clicked_order()]);
    assert_eq!(
        request.url,
        "https://googleads.googleapis.com/v22/customers/1234567890:uploadClickConversions"
    );
    let headers = [
        ("authorization", "Bearer ga-access"),
        ("developer-token", "ga-dev-token"),
        ("login-customer-id", "1112223334"),
    ];
    assert_headers(&request, &headers);
    assert_eq!(
        body(&request),
        golden(include_str!("../fixtures/google_ads_body.json"))
    );
}

#[test]
fn google_ads_sends_exactly_one_click_id_gclid_first() {
    let (d, s) = google_ads();
    let mut o = clicked_order();
    o.sealed.click_ids.insert("gbraid".into(), "gb-1".into());
    o.sealed.click_ids.insert("wbraid".into(), "wb-1".into());
    let sent = body(&build(&target(&d, &s), &[o.clone()]));
    let c = sent["conversions"][0].as_object().unwrap();
    let ids: Vec<&str> = ["gclid", "gbraid", "wbraid"]
        .into_iter()
        .filter(|k| c.contains_key(*k))
        .collect();
    assert_eq!(ids, ["gclid"]);
    o.sealed.click_ids.remove("gclid");
    let sent = body(&build(&target(&d, &s), &[o]));
    assert_eq!(sent["conversions"][0]["gbraid"], "gb-1");
    assert!(sent["conversions"][0].get("wbraid").is_none());
}

#[test]
fn google_ads_sends_no_identifier_when_ad_user_data_is_denied_and_the_message_id_without_an_order()
{
    let (d, s) = google_ads();
    let mut o = clicked_order();
    o.item.consent.ad_user_data = Some(false);
    o.item.properties["order_id"] = Value::Null;
    let sent = body(&build(&target(&d, &s), &[o]));
    let c = &sent["conversions"][0];
    assert!(c.get("userIdentifiers").is_none(), "{c}");
    assert_eq!(c["consent"]["adUserData"], "DENIED");
    assert_eq!(c["orderId"], "msg-order-1");
    let sent = review_body_with_raw_identifiers(DestinationKind::GoogleAds, &[]);
    let ids = &sent["conversions"][0]["userIdentifiers"];
    assert!(!ids.to_string().contains("jane.doe"), "{ids}");
}

#[test]
fn google_ads_asks_for_tokens_at_googles_oauth_endpoint_or_the_endpoint_override() {
    let (mut d, s) = google_ads();
    let c = connector(DestinationKind::GoogleAds);
    let url = c.token_endpoint(&target(&d, &s));
    assert_eq!(url.as_deref(), Some("https://oauth2.googleapis.com/token"));
    d.endpoint = Some("http://127.0.0.1:9".into());
    let url = c.token_endpoint(&target(&d, &s));
    assert_eq!(url.as_deref(), Some("http://127.0.0.1:9/token"));
}

#[tokio::test]
async fn google_ads_resends_once_with_a_refreshed_token_after_a_401() {
    // Google's answer to an expired or revoked access token (AIP-193 error model).
    let unauthenticated = json!({"error": {"code": 401, "status": "UNAUTHENTICATED",
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."}});
    let refused = unauthenticated.to_string();
    assert_refreshes_once_on_401(DestinationKind::GoogleAds, &clicked_order(), &refused).await;
}

#[test]
fn google_ads_carries_at_most_2000_conversions_a_request() {
    let (d, s) = google_ads();
    assert_carries_at_most(DestinationKind::GoogleAds, &target(&d, &s), "order", 2000);
}

#[test]
fn google_ads_drops_events_older_than_90_days_or_without_a_click_id() {
    let (d, s) = google_ads();
    let t = target(&d, &s);
    let mut o = clicked_order();
    o.item.timestamp = NOW - time::Duration::days(91);
    assert!(matches!(screen(&t, &o), Err(DropReason::Age(_))));
    assert_dropped_as_invalid(&t, &fixture("order"), "google_ads_requires_click_id");
}

/// A 200 whose `partialFailureError` lists `(index, family, code)` row errors.
fn partial_failure(rows: &[(usize, &str, &str)]) -> HttpResponse {
    let errors: Vec<Value> = rows
        .iter()
        .map(|(i, family, code)| {
            json!({"errorCode": {*family: *code}, "message": format!("{code} happened"),
                   "location": {"fieldPathElements": [{"fieldName": "conversions", "index": i}]}})
        })
        .collect();
    let body = json!({"partialFailureError": {"code": 3, "message": "partial",
        "details": [{"@type": "type.googleapis.com/google.ads.googleads.v22.errors.GoogleAdsFailure",
                     "errors": errors}]},
        "results": [{}, {}, {}, {}, {}]});
    response(200, &body.to_string())
}

#[test]
fn google_ads_classifies_each_row_of_a_partial_failure() {
    let ok = response(200, r#"{"results":[{"gclid":"x"}],"jobId":"1"}"#);
    assert_eq!(
        classify(DestinationKind::GoogleAds, 1, &ok),
        Outcome::Delivered
    );
    let rows = [
        (0, "conversionUploadError", "CLICK_NOT_FOUND"),
        (1, "conversionUploadError", "TOO_RECENT_EVENT"),
        (
            2,
            "conversionUploadError",
            "CLICK_CONVERSION_ALREADY_EXISTS",
        ),
        (3, "internalError", "TRANSIENT_ERROR"),
    ];
    let Outcome::PerItem(list) = classify(DestinationKind::GoogleAds, 5, &partial_failure(&rows))
    else {
        panic!("per conversion")
    };
    assert!(permanent_reason(list[0].1.clone()).contains("CLICK_NOT_FOUND happened"));
    match &list[1].1 {
        Outcome::Retry { after, .. } => assert_eq!(*after, Some(Duration::from_secs(6 * 3600))),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        list[2].1,
        Outcome::Delivered,
        "already recorded by an earlier attempt"
    );
    assert!(is_retry(&list[3].1));
    assert_eq!(list[4].1, Outcome::Delivered);
}

#[test]
fn google_ads_request_errors_are_retried_or_name_the_setting_to_fix() {
    let quota = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}"#;
    assert_retried_after(DestinationKind::GoogleAds, &[429], 60, quota);
    assert!(is_retry(&classify(
        DestinationKind::GoogleAds,
        1,
        &response(503, "")
    )));
    let denied = json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "denied",
        "details": [{"errors": [{"errorCode": {"authorizationError": "DEVELOPER_TOKEN_NOT_APPROVED"},
                                 "message": "The developer token is only approved for test accounts."}]}]}});
    let why = permanent_reason(classify(
        DestinationKind::GoogleAds,
        1,
        &response(403, &denied.to_string()),
    ));
    assert!(why.contains("DEVELOPER_TOKEN_NOT_APPROVED"), "{why}");
    assert!(why.contains("secrets.developer_token"), "{why}");
}
