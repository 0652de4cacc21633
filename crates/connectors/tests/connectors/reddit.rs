//! Reddit Conversions API v2.0: the documented request shape, names, limits, screening,
//! answers.

use super::*;

fn reddit() -> (Destination, Value) {
    vendor(DestinationKind::Reddit)
}

/// The order fixture with Reddit's click id, as ingest collects it from `rdt_cid`.
fn reddit_order() -> OpenedItem {
    order_with_click_id("rdt_cid", "3184742045291813272")
}

#[test]
fn reddit_builds_the_documented_request_with_a_bearer_token() {
    let (d, s) = reddit();
    let request = build(&target(&d, &s), &[reddit_order()]);
    let url = "https://ads-api.reddit.com/api/v2.0/conversions/events/a2_gfgsrrd4ug2t";
    let golden_body = include_str!("../fixtures/reddit_body.json");
    assert_bearer_request(&request, url, "rdt-token", golden_body);
}

#[test]
fn reddit_test_mode_follows_config() {
    let d = destination(
        DestinationKind::Reddit,
        json!({"ad_account_id": "a2_gfgsrrd4ug2t", "test_mode": true}),
    );
    let sent = body(&build(&target(&d, &reddit().1), &[reddit_order()]));
    assert_eq!(sent["test_mode"], true);
}

#[test]
fn reddit_maps_segment_names_to_tracking_types_and_the_rest_to_custom() {
    let (d, s) = reddit();
    let cases = [
        ("Order Completed", json!({"tracking_type": "Purchase"})),
        ("Product Added", json!({"tracking_type": "AddToCart"})),
        ("Products Searched", json!({"tracking_type": "Search"})),
        ("Signed Up", json!({"tracking_type": "SignUp"})),
        ("Product Viewed", json!({"tracking_type": "ViewContent"})),
        (
            "Product Added to Wishlist",
            json!({"tracking_type": "AddToWishlist"}),
        ),
        (
            "Newsletter Joined",
            json!({"tracking_type": "Custom", "custom_event_name": "Newsletter Joined"}),
        ),
    ];
    for (segment, want) in cases {
        let mut o = reddit_order();
        o.item.name = Some(segment.into());
        let sent = body(&build(&target(&d, &s), &[o]));
        assert_eq!(sent["events"][0]["event_type"], want, "{segment}");
    }
    let mut page = reddit_order();
    page.item.event_type = EventType::Page;
    let sent = body(&build(&target(&d, &s), &[page]));
    assert_eq!(
        sent["events"][0]["event_type"]["tracking_type"],
        "PageVisit"
    );
    let mut long = reddit_order();
    long.item.name = Some("x".repeat(100));
    let sent = body(&build(&target(&d, &s), &[long]));
    let custom = sent["events"][0]["event_type"]["custom_event_name"]
        .as_str()
        .unwrap();
    assert_eq!(custom.len(), 64, "Reddit takes at most 64 characters");
}

#[test]
fn reddit_carries_at_most_1000_events_a_request() {
    let (d, s) = reddit();
    assert_carries_at_most(DestinationKind::Reddit, &target(&d, &s), "order", 1000);
}

#[test]
fn reddit_drops_events_older_than_7_days_or_without_a_match_key() {
    let (d, s) = reddit();
    let t = target(&d, &s);
    let mut o = reddit_order();
    o.item.timestamp = NOW - time::Duration::days(8);
    assert_dropped_as_too_old(&t, &o, "reddit_max_age_7_days");
    let o = with_click_id_only(reddit_order());
    assert_click_id_alone_matches(&t, o, "reddit_requires_customer_information");
}

#[test]
fn reddit_sends_only_digests_even_of_the_ip_address() {
    let (d, s) = reddit();
    let mut o = review_item();
    o.item
        .user_data
        .insert(Field::Email, "jane.doe@example.com".into());
    let request = build(&target(&d, &s), &[o]);
    let text = String::from_utf8_lossy(&request.body);
    for raw in REVIEW_RAW
        .iter()
        .chain(&["203.0.113.7", "user-42", "anon-1", "jane.doe"])
    {
        assert!(!text.contains(raw), "{raw} sent to Reddit: {text}");
    }
    let user = &body(&request)["events"][0]["user"];
    assert!(
        user.get("email").is_none(),
        "a non-digest email never leaves"
    );
    assert_eq!(
        user["ip_address"],
        tracklayer_core::identity::sha256_hex("203.0.113.7")
    );
}

#[test]
fn reddit_classifies_its_documented_answers() {
    let k = DestinationKind::Reddit;
    let ok = response(
        200,
        r#"{"message":"Successfully processed 2 conversion events."}"#,
    );
    assert_eq!(classify(k, 2, &ok), Outcome::Delivered);
    for (status, message, retry) in [
        (
            400,
            "There were 1 invalid conversion events. None were processed.",
            false,
        ),
        (401, "UNAUTHORIZED", false),
        (
            403,
            "Missing adsconversions scope to post conversions to Pixel.",
            false,
        ),
        (429, "Too many requests/events within timeframe.", true),
        (
            500,
            "The service is currently unavailable. No conversion events were processed.",
            true,
        ),
    ] {
        let body = format!(r#"{{"error":{{"code":{status},"message":"{message}"}}}}"#);
        let r = response_with(status, &[("Retry-After", "11")], &body);
        match classify(k, 1, &r) {
            Outcome::Retry { after, reason } if retry => {
                assert_eq!(after, Some(Duration::from_secs(11)));
                assert!(reason.contains(message), "{reason}");
            }
            Outcome::Permanent { reason } if !retry => {
                assert_eq!(reason, format!("HTTP {status}: Reddit: {message}"));
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn reddit_names_missing_settings_without_echoing_the_token() {
    let configs = (
        json!({"ad_account_id": "a2_x"}),
        json!({"ad_account_id": "a2/../x"}),
    );
    assert_names_missing_settings(DestinationKind::Reddit, "ad_account_id", configs);
}
