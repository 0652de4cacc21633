//! LinkedIn Conversions API: the documented request shape (LinkedIn's "Stream multiple
//! conversion events" example), limits, screening, answers, and the OAuth token endpoint.

use super::*;

fn linkedin() -> (Destination, Value) {
    vendor(DestinationKind::Linkedin)
}

/// The order fixture with LinkedIn's click id (the documented example's tracking UUID), as
/// ingest collects it from `li_fat_id`, and the access token the token source issued.
fn linkedin_order() -> OpenedItem {
    order_with_click_id("li_fat_id", "df5gf5-gh6t7-ph4j7h-fgf6n1")
}

#[test]
fn linkedin_builds_the_documented_batch_create_request_with_the_issued_token() {
    let (d, s) = linkedin();
    let request = build(&target(&d, &s), &[linkedin_order()]);
    assert_eq!(
        request.url,
        "https://api.linkedin.com/rest/conversionEvents"
    );
    let headers = [
        ("authorization", "Bearer li-access"),
        ("linkedin-version", "202510"),
        ("x-restli-protocol-version", "2.0.0"),
        ("x-restli-method", "BATCH_CREATE"),
        ("content-type", "application/json"),
    ];
    assert_headers(&request, &headers);
    assert_eq!(
        body(&request),
        golden(include_str!("../fixtures/linkedin_body.json"))
    );
}

#[test]
fn linkedin_sends_no_value_without_a_currency_and_no_raw_identifier() {
    let (d, s) = linkedin();
    let mut o = linkedin_order();
    o.item.properties["currency"] = Value::Null;
    let sent = body(&build(&target(&d, &s), &[o]));
    assert!(sent["elements"][0].get("conversionValue").is_none());
    let sent = review_body_with_raw_identifiers(DestinationKind::Linkedin, &[]);
    let ids = &sent["elements"][0]["user"]["userIds"];
    assert_eq!(
        ids.as_array().unwrap().len(),
        0,
        "a raw email never leaves: {ids}"
    );
    assert!(sent["elements"][0].get("userInfo").is_none());
}

#[test]
fn linkedin_asks_for_tokens_at_its_oauth_endpoint_or_the_endpoint_override() {
    let (mut d, s) = linkedin();
    let c = connector(DestinationKind::Linkedin);
    assert_eq!(
        c.token_endpoint(&target(&d, &s)).as_deref(),
        Some("https://www.linkedin.com/oauth/v2/accessToken")
    );
    d.endpoint = Some("http://127.0.0.1:9/".into());
    assert_eq!(
        c.token_endpoint(&target(&d, &s)).as_deref(),
        Some("http://127.0.0.1:9/oauth/v2/accessToken")
    );
    let request = build(&target(&d, &s), &[linkedin_order()]);
    assert_eq!(request.url, "http://127.0.0.1:9/rest/conversionEvents");
}

#[tokio::test]
async fn linkedin_resends_once_with_a_refreshed_token_after_a_401() {
    // LinkedIn's answer to a revoked access token (serviceErrorCode 65601).
    let revoked = r#"{"status":401,"serviceErrorCode":65601,"code":"REVOKED_ACCESS_TOKEN","message":"The token used in the request has been revoked by the user"}"#;
    assert_refreshes_once_on_401(DestinationKind::Linkedin, &linkedin_order(), revoked).await;
}

#[test]
fn linkedin_carries_at_most_5000_events_a_request() {
    let (d, s) = linkedin();
    assert_carries_at_most(DestinationKind::Linkedin, &target(&d, &s), "order", 5000);
}

#[test]
fn linkedin_drops_events_older_than_90_days_or_without_an_email_or_click_id() {
    let (d, s) = linkedin();
    let t = target(&d, &s);
    let mut o = linkedin_order();
    o.item.timestamp = NOW - time::Duration::days(91);
    assert_dropped_as_too_old(&t, &o, "linkedin_max_age_90_days");
    let mut o = linkedin_order();
    o.item.user_data.remove(&Field::Email);
    assert_click_id_alone_matches(&t, o, "linkedin_requires_customer_information");
}

#[test]
fn linkedin_answers_per_element_in_request_order() {
    let ok = response(200, r#"{"elements":[{"status":201},{"status":201}]}"#);
    assert_eq!(
        classify(DestinationKind::Linkedin, 2, &ok),
        Outcome::Delivered
    );
    let mixed = response(
        200,
        r#"{"elements":[{"status":201},{"status":400,"message":"Invalid conversion"},{"status":429}]}"#,
    );
    let Outcome::PerItem(list) = classify(DestinationKind::Linkedin, 3, &mixed) else {
        panic!("per element")
    };
    assert_eq!(list[0], (0, Outcome::Delivered));
    assert!(permanent_reason(list[1].1.clone()).contains("Invalid conversion"));
    assert!(is_retry(&list[2].1));
}

#[test]
fn linkedin_retries_throttling_and_server_errors_and_gives_up_on_refusals() {
    assert_retried_after(DestinationKind::Linkedin, &[429], 30, r#"{"status":429}"#);
    assert!(is_retry(&classify(
        DestinationKind::Linkedin,
        1,
        &response(503, "")
    )));
    for status in [400, 403, 404, 422] {
        let refused = response(
            status,
            r#"{"serviceErrorCode":100,"message":"Not enough permissions","status":403}"#,
        );
        let why = permanent_reason(classify(DestinationKind::Linkedin, 1, &refused));
        assert!(why.contains("LinkedIn: Not enough permissions"), "{why}");
    }
}
