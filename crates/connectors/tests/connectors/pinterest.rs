//! Pinterest Conversions API v5: the documented request shape, names, limits, screening,
//! answers.

use super::*;

/// Pinterest's own `click_id` example (v5 OpenAPI, `ConversionEventsUserDataProperties`).
const EPIK: &str = "dj0yJnU9b2JDcFFHekV4SHJNcmVrbFBkUEdqakh0akdUT1VjVVUmcD0yJm49cnNBQ3F2Q2dOVDBXWWhkWklrUGxBUSZ0PUFBQUFBR1BaY3Bv"; // pragma: allowlist secret

fn pin() -> (Destination, Value) {
    vendor(DestinationKind::Pinterest)
}

/// The order fixture with the `epik` click id, as ingest collects it.
fn pin_order() -> OpenedItem {
    let mut o = fixture("order");
    o.sealed.click_ids.insert("epik".into(), EPIK.into());
    o
}

#[test]
fn pinterest_builds_the_documented_request_with_a_bearer_token() {
    let (d, s) = pin();
    let request = build(&target(&d, &s), &[pin_order()]);
    assert_eq!(
        request.url,
        "https://api.pinterest.com/v5/ad_accounts/549757463328/events"
    );
    assert_eq!(header(&request, "authorization"), Some("Bearer pina-token"));
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(
        body(&request),
        golden(include_str!("../fixtures/pinterest_body.json"))
    );
    assert!(
        !request.url.contains("pina-token"),
        "the token stays out of the URL"
    );
}

#[test]
fn pinterest_request_has_only_keys_of_pinterests_schema() {
    // `ConversionEvents` (v5 OpenAPI): every required key is sent, and nothing outside the
    // schema (its objects are `additionalProperties: false`).
    let (d, s) = pin();
    let sent = body(&build(&target(&d, &s), &[pin_order()]));
    let event = sent["data"][0].as_object().unwrap();
    for key in [
        "event_name",
        "action_source",
        "event_time",
        "user_data",
        "event_id",
    ] {
        assert!(event.contains_key(key), "required {key}");
    }
    let allowed = [
        "event_name",
        "action_source",
        "event_time",
        "user_data",
        "event_id",
        "event_source_url",
        "custom_data",
    ];
    assert!(
        event.keys().all(|k| allowed.contains(&k.as_str())),
        "{event:?}"
    );
    let custom_allowed = [
        "content_brand",
        "content_category",
        "content_ids",
        "content_name",
        "contents",
        "currency",
        "num_items",
        "order_id",
        "search_string",
        "value",
    ];
    let custom = event["custom_data"].as_object().unwrap();
    assert!(custom.keys().all(|k| custom_allowed.contains(&k.as_str())));
    assert!(
        custom["value"].is_string(),
        "value is a string in Pinterest's schema"
    );
    assert!(custom["contents"][0]["quantity"].is_u64());
    assert_eq!(
        sent.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["data"]
    );
}

#[test]
fn pinterest_test_mode_marks_the_request_as_a_test() {
    let d = destination(
        DestinationKind::Pinterest,
        json!({"ad_account_id": "549757463328", "test_mode": true}),
    );
    let s = pin().1;
    let request = build(&target(&d, &s), &[pin_order()]);
    assert!(request
        .url
        .ends_with("/v5/ad_accounts/549757463328/events?test=true"));
}

#[test]
fn pinterest_maps_segment_names_and_sends_unknown_ones_as_custom() {
    let (d, s) = pin();
    let cases = [
        ("Order Completed", "checkout"),
        ("Product Added", "add_to_cart"),
        ("Checkout Started", "initiate_checkout"),
        ("Products Searched", "search"),
        ("Signed Up", "signup"),
        ("Product Viewed", "view_content"),
        ("Product Added to Wishlist", "add_to_wishlist"),
        ("Payment Info Entered", "add_payment_info"),
        ("Product List Viewed", "view_category"),
        ("Newsletter Joined", "custom"),
    ];
    for (segment, want) in cases {
        let mut o = pin_order();
        o.item.name = Some(segment.into());
        let sent = body(&build(&target(&d, &s), &[o]));
        assert_eq!(sent["data"][0]["event_name"], want, "{segment}");
    }
    let mut page = pin_order();
    page.item.event_type = EventType::Page;
    let sent = body(&build(&target(&d, &s), &[page]));
    assert_eq!(sent["data"][0]["event_name"], "page_visit");
    let d = destination(
        DestinationKind::Pinterest,
        json!({"ad_account_id": "1", "event_names": {"Newsletter Joined": "lead"}}),
    );
    let mut o = pin_order();
    o.item.name = Some("Newsletter Joined".into());
    assert_eq!(
        body(&build(&target(&d, &s), &[o]))["data"][0]["event_name"],
        "lead"
    );
}

#[test]
fn pinterest_carries_at_most_1000_events_a_request() {
    let (d, s) = pin();
    assert_carries_at_most(DestinationKind::Pinterest, &target(&d, &s), "order", 1000);
}

#[test]
fn pinterest_drops_events_it_cannot_match() {
    let (d, s) = pin();
    let t = target(&d, &s);
    let mut o = pin_order();
    o.item.user_data.remove(&Field::Email);
    assert_eq!(
        screen(&t, &o),
        Ok(()),
        "IP address and user agent together match"
    );
    o.sealed.ip = None;
    assert_dropped_as_invalid(&t, &o, "pinterest_requires_customer_information");
    o.item.user_data.insert(
        Field::Email,
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f".into(),
    );
    assert_eq!(screen(&t, &o), Ok(()));
}

#[test]
fn pinterest_sends_only_digests_and_no_raw_identifier() {
    // The client's IP address goes as client_ip_address.
    let sent = review_body_with_raw_identifiers(DestinationKind::Pinterest, &["203.0.113.7"]);
    let user = sent["data"][0]["user_data"].as_object().unwrap();
    assert!(user.get("em").is_none() && user.get("ct").is_none());
    assert_digests(
        &sent["data"][0]["user_data"],
        &["ph", "fn", "ln", "external_id"],
    );
}

#[test]
fn pinterest_classifies_its_documented_answers() {
    let k = DestinationKind::Pinterest;
    let processed = r#"{"num_events_received":2,"num_events_processed":2,
        "events":[{"status":"processed"},{"status":"processed"}]}"#;
    assert_eq!(
        classify(k, 2, &response(200, processed)),
        Outcome::Delivered
    );
    let partial = r#"{"code":0,"message":"Not all events were successfully processed",
        "details":{"events":[{"status":"processed"},
        {"status":"failed","error_message":"event_time too old"}]}}"#;
    match classify(k, 2, &response(422, partial)) {
        Outcome::PerItem(list) => {
            assert_eq!(list[0], (0, Outcome::Delivered));
            assert!(
                matches!(&list[1], (1, Outcome::Permanent { reason }) if reason.contains("too old"))
            );
        }
        other => panic!("{other:?}"),
    }
    let failed_in_200 = r#"{"events":[{"status":"failed","error_message":"bad em"}]}"#;
    assert!(matches!(
        classify(k, 1, &response(200, failed_in_200)),
        Outcome::PerItem(_)
    ));
    for (status, code, retry) in [
        (400, 4196, false),
        (401, 2, false),
        (403, 29, false),
        (422, 1, false),
        (429, 8, true),
        (503, 4197, true),
        (500, 1, true),
    ] {
        let body = format!(r#"{{"code":{code},"message":"documented answer"}}"#);
        let r = response_with(status, &[("Retry-After", "7")], &body);
        match classify(k, 1, &r) {
            Outcome::Retry { after, reason } if retry => {
                assert_eq!(after, Some(Duration::from_secs(7)), "{status}");
                assert!(
                    reason.contains(&format!("Pinterest code {code}")),
                    "{reason}"
                );
            }
            Outcome::Permanent { reason } if !retry => {
                assert!(reason.contains(&format!("HTTP {status}: Pinterest code {code}")));
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn pinterest_names_missing_settings_without_echoing_the_token() {
    let configs = (
        json!({"ad_account_id": "1"}),
        json!({"ad_account_id": "../1"}),
    );
    assert_names_missing_settings(DestinationKind::Pinterest, "ad_account_id", configs);
}
