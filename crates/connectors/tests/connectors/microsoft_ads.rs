//! Microsoft Advertising UET Conversions API: the documented request shape, names, limits,
//! screening, answers.

use super::*;

fn uet() -> (Destination, Value) {
    vendor(DestinationKind::MicrosoftAds)
}

/// The order fixture with Microsoft's click id, as ingest collects it from `msclkid`.
fn uet_order() -> OpenedItem {
    order_with_click_id("msclkid", "cdd4afcccb1c9a4cad9544dd7e5006d5")
}

#[test]
fn microsoft_ads_builds_the_documented_request_with_a_bearer_token() {
    let (d, s) = uet();
    let request = build(&target(&d, &s), &[uet_order()]);
    let url = "https://capi.uet.microsoft.com/v1/343003931/events";
    let golden_body = include_str!("../fixtures/microsoft_ads_body.json");
    assert_bearer_request(&request, url, "uet-token", golden_body);
}

#[test]
fn microsoft_ads_sends_a_page_call_as_page_load_without_a_name() {
    let (d, s) = uet();
    let sent = body(&build(&target(&d, &s), &[fixture("page")]));
    let event = &sent["data"][0];
    assert_eq!(event["eventType"], "pageLoad");
    assert!(event.get("eventName").is_none(), "{event}");
}

#[test]
fn microsoft_ads_maps_segment_names_to_uet_event_actions_and_keeps_the_rest() {
    let (d, s) = uet();
    let cases = [
        ("Order Completed", "purchase", Some("purchase")),
        ("Product Added", "add_to_cart", None),
        ("Checkout Started", "begin_checkout", None),
        ("Products Searched", "search", Some("searchresults")),
        ("Product Viewed", "view_item", Some("product")),
        ("Cart Viewed", "view_cart", Some("cart")),
        ("Product List Viewed", "view_item_list", Some("category")),
        ("Newsletter Joined", "Newsletter Joined", None),
    ];
    for (segment, action, page_type) in cases {
        let mut o = uet_order();
        o.item.name = Some(segment.into());
        let sent = body(&build(&target(&d, &s), &[o]));
        let event = &sent["data"][0];
        assert_eq!(event["eventType"], "custom", "{segment}");
        assert_eq!(event["eventName"], action, "{segment}");
        assert_eq!(
            event["customData"]["pageType"].as_str(),
            page_type,
            "{segment}"
        );
    }
    let d = destination(
        DestinationKind::MicrosoftAds,
        json!({"tag_id": "343003931", "event_names": {"Order Completed": "sale"}}),
    );
    let sent = body(&build(&target(&d, &s), &[uet_order()]));
    assert_eq!(
        sent["data"][0]["eventName"], "sale",
        "config.event_names wins"
    );
}

#[test]
fn microsoft_ads_declares_ad_storage_granted_only_when_advertising_consent_is_required() {
    let (mut d, s) = uet();
    let sent = body(&build(&target(&d, &s), &[uet_order()]));
    assert_eq!(sent["data"][0]["adStorageConsent"], "G");
    d.consent_purposes = vec![tracklayer_core::consent::Purpose::analytics()];
    let sent = body(&build(&target(&d, &s), &[uet_order()]));
    assert_eq!(sent["data"][0]["adStorageConsent"], "D");
}

#[test]
fn microsoft_ads_dedups_with_the_uet_tag_by_the_message_id() {
    let (d, s) = uet();
    let mut second = uet_order();
    second.item.message_id = tracklayer_core::event::MessageId::parse("msg-order-2").unwrap();
    let sent = body(&build(&target(&d, &s), &[uet_order(), second]));
    assert_eq!(sent["data"][0]["eventId"], "msg-order-1");
    assert_eq!(sent["data"][1]["eventId"], "msg-order-2");
}

#[test]
fn microsoft_ads_carries_at_most_1000_events_a_request() {
    let (d, s) = uet();
    assert_carries_at_most(
        DestinationKind::MicrosoftAds,
        &target(&d, &s),
        "order",
        1000,
    );
}

#[test]
fn microsoft_ads_drops_events_without_a_match_key() {
    let (d, s) = uet();
    let t = target(&d, &s);
    let o = with_click_id_only(uet_order());
    assert_click_id_alone_matches(&t, o, "microsoft_ads_requires_customer_information");
}

#[test]
fn microsoft_ads_sends_identifiers_only_as_digests() {
    let sent = review_body_with_raw_identifiers(DestinationKind::MicrosoftAds, &["203.0.113.7"]);
    let user = &sent["data"][0]["userData"];
    assert!(user.get("em").is_none(), "a non-digest email never leaves");
    assert_digests(user, &["ph", "externalId"]);
}

#[test]
fn microsoft_ads_classifies_its_answers_honouring_retry_after() {
    let k = DestinationKind::MicrosoftAds;
    assert_eq!(classify(k, 2, &response(200, "{}")), Outcome::Delivered);
    for status in [400, 401, 403, 404] {
        let r = response(
            status,
            r#"{"error":{"code":"InvalidRequest","message":"bad"}}"#,
        );
        let reason = permanent_reason(classify(k, 1, &r));
        assert!(
            reason.starts_with(&format!("HTTP {status}: Microsoft Advertising refused"))
                && reason.contains("InvalidRequest"),
            "{reason}"
        );
    }
    assert_retried_after(k, &[429, 500, 503], 17, "");
}

#[test]
fn microsoft_ads_names_missing_settings_without_echoing_the_token() {
    let configs = (json!({"tag_id": "343003931"}), json!({"tag_id": "34/../x"}));
    assert_names_missing_settings(DestinationKind::MicrosoftAds, "tag_id", configs);
}
