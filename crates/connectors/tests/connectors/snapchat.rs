//! Snap Conversions API v3: the documented request shape, names, limits, screening, answers.

use super::*;

fn snap() -> (Destination, Value) {
    vendor(DestinationKind::Snapchat)
}

/// The order fixture with Snap's click id and cookie, as ingest collects them.
fn snap_order() -> OpenedItem {
    let mut o = fixture("order");
    let ids = &mut o.sealed.click_ids;
    ids.insert(
        "sc_click_id".into(),
        "a3f4b5c6-d7e8-9012-3456-7890abcdef12".into(),
    );
    ids.insert("sc_cookie1".into(), "7d1e5c2a-cookie".into());
    o
}

#[test]
fn snapchat_builds_the_documented_request_with_the_token_in_the_query() {
    let (d, s) = snap();
    let request = build(&target(&d, &s), &[snap_order()]);
    assert_eq!(
        request.url,
        "https://tr.snapchat.com/v3/6d2e7a31-snap-pixel/events?access_token=snap-token"
    );
    assert_golden_json(&request, include_str!("../fixtures/snapchat_body.json"));
}

#[test]
fn snapchat_request_has_the_keys_of_snaps_published_example() {
    // Using the API, "Request Body Example" (web fields): every event key and user_data key
    // Snap shows is one this connector fills, and it sends no top-level key Snap lacks.
    let (d, s) = snap();
    let sent = body(&build(&target(&d, &s), &[snap_order()]));
    let event = sent["data"][0].as_object().unwrap();
    let documented = [
        "event_name",
        "event_time",
        "event_id",
        "action_source",
        "event_source_url",
        "user_data",
        "custom_data",
    ];
    let mut keys: Vec<&str> = event.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut documented = documented.to_vec();
    documented.sort_unstable();
    assert_eq!(keys, documented);
    assert_eq!(
        sent.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["data"]
    );
    let contents = &event["custom_data"]["contents"][0];
    for key in ["id", "quantity", "item_price"] {
        assert!(
            contents[key].is_string(),
            "{key} is a string as in Snap's example"
        );
    }
}

#[test]
fn snapchat_maps_segment_ecommerce_names_to_snap_standard_events() {
    let (d, _) = snap();
    let cases = [
        ("Order Completed", "PURCHASE"),
        ("Product Added", "ADD_CART"),
        ("Checkout Started", "START_CHECKOUT"),
        ("Products Searched", "SEARCH"),
        ("Signed Up", "SIGN_UP"),
        ("Product Viewed", "VIEW_CONTENT"),
        ("Product Added to Wishlist", "ADD_TO_WISHLIST"),
        ("Payment Info Entered", "ADD_BILLING"),
        ("Product List Viewed", "LIST_VIEW"),
        ("Newsletter Joined", "Newsletter Joined"),
    ];
    for (segment, want) in cases {
        let item = bare(EventType::Track, Some(segment), NOW);
        assert_eq!(names::resolve(&d, &item.item), want, "{segment}");
    }
    let page = bare(EventType::Page, None, NOW);
    assert_eq!(names::resolve(&d, &page.item), "PAGE_VIEW");
}

#[test]
fn snapchat_event_name_overrides_come_from_config() {
    let d = destination(
        DestinationKind::Snapchat,
        json!({"pixel_id": "p1", "event_names": {"Newsletter Joined": "SUBSCRIBE"}}),
    );
    let item = bare(EventType::Track, Some("Newsletter Joined"), NOW);
    assert_eq!(names::resolve(&d, &item.item), "SUBSCRIBE");
}

#[test]
fn snapchat_carries_at_most_2000_events_a_request() {
    let (d, s) = snap();
    assert_carries_at_most(DestinationKind::Snapchat, &target(&d, &s), "order", 2000);
    let items: Vec<OpenedItem> = (0..4500).map(|_| fixture("order")).collect();
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let sizes: Vec<usize> = batches(&target(&d, &s), &refs)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, vec![2000, 2000, 500]);
}

#[test]
fn snapchat_drops_events_older_than_37_days() {
    let (d, s) = snap();
    let t = target(&d, &s);
    let mut o = snap_order();
    o.item.timestamp = NOW - time::Duration::days(37) + time::Duration::minutes(1);
    assert_eq!(screen(&t, &o), Ok(()));
    o.item.timestamp = NOW - time::Duration::days(38);
    assert_dropped_as_too_old(&t, &o, "snapchat_max_age_37_days");
}

#[test]
fn snapchat_drops_events_it_cannot_match_to_a_snapchatter() {
    let (d, s) = snap();
    let t = target(&d, &s);
    let mut o = snap_order();
    o.item.user_data.clear();
    // IP address and user agent together still match.
    assert_eq!(screen(&t, &o), Ok(()));
    o.sealed.user_agent = None;
    assert_dropped_as_invalid(&t, &o, "snapchat_requires_customer_information");
    o.item.user_data.insert(
        Field::Phone,
        "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383".into(),
    );
    assert_eq!(screen(&t, &o), Ok(()));
}

#[test]
fn snapchat_sends_offline_without_a_page_and_web_with_one() {
    let (d, s) = snap();
    let mut o = snap_order();
    o.sealed.page_url = None;
    o.sealed.channel = Some("server".into());
    let sent = body(&build(&target(&d, &s), &[o.clone(), snap_order()]));
    assert_eq!(sent["data"][0]["action_source"], "OFFLINE");
    assert!(sent["data"][0].get("event_source_url").is_none());
    assert_eq!(sent["data"][1]["action_source"], "WEB");
}

#[test]
fn snapchat_sends_only_digests_and_no_raw_identifier() {
    // The client's IP address goes as client_ip_address.
    let sent = review_body_with_raw_identifiers(DestinationKind::Snapchat, &["203.0.113.7"]);
    let user = sent["data"][0]["user_data"].as_object().unwrap();
    assert!(user.get("em").is_none(), "a non-digest email never leaves");
    assert_digests(&sent["data"][0]["user_data"], &["ph", "fn", "ln"]);
    assert!(user.get("external_id").is_none() && user.get("ct").is_none());
}

#[test]
fn snapchat_classifies_answers_by_status_honouring_retry_after() {
    let k = DestinationKind::Snapchat;
    let ok = response(200, r#"{"status":"SUCCESS","reason":"SUCCESS"}"#);
    assert_eq!(classify(k, 2, &ok), Outcome::Delivered);
    assert_retried_after(k, &[408, 429, 500, 502, 503], 30, "busy");
    for status in [400, 401, 403, 404, 413] {
        let r = response(status, r#"{"status":"FAILED","reason":"invalid pixel"}"#);
        let reason = permanent_reason(classify(k, 1, &r));
        assert!(reason.contains("invalid pixel") && reason.contains(&status.to_string()));
    }
}

#[test]
fn snapchat_names_missing_settings_without_echoing_the_token() {
    let configs = (json!({"pixel_id": "p1"}), json!({}));
    assert_names_missing_settings(DestinationKind::Snapchat, "pixel_id", configs);
}
