//! `GET /admin/v1/events` without `message_id`: the event debugger's list of the newest events
//! of the last hour for any role, of the caller's workspace only, by `type` and `name`; a bad
//! filter is a problem naming it; `?message_id=` keeps finding one event.

use super::*;

impl App {
    async fn events(&self, query: &str, token: &str) -> (StatusCode, HeaderMap, Value) {
        self.call(
            Method::GET,
            &format!("/admin/v1/events{query}"),
            Some(token),
            None,
        )
        .await
    }
}

#[tokio::test]
async fn a_viewer_lists_the_newest_events_first_by_type_and_name_without_raw_identifiers() {
    // Arrange: a purchase with an email, a second later a page view.
    let app = App::start().await;
    app.new_destination().await;
    app.segment(
        "/v1/track",
        json!({"event": "Order Completed", "userId": "user-1", "messageId": "m-order",
               "context": {"traits": {"email": "alice@example.com"}}}),
    )
    .await;
    app.clock.advance(Duration::seconds(1));
    app.segment(
        "/v1/page",
        json!({"name": "Pricing", "anonymousId": "anon-1", "messageId": "m-page"}),
    )
    .await;

    // Act
    let (status, _, all) = app.events("", &app.viewer).await;
    let (_, _, pages) = app.events("?type=page", &app.viewer).await;
    let (_, _, named) = app.events("?name=ORDER&limit=1", &app.viewer).await;
    let (_, _, one) = app
        .events("?message_id=m-order&type=track", &app.viewer)
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{all}");
    let names = each_str(&all["traces"], "name");
    assert_eq!(names, ["Pricing", "Order Completed"], "newest first: {all}");
    assert_eq!(all["traces"][1]["message_id"], "m-order");
    assert_eq!(all["traces"][1]["routing"][0]["routed"], true, "{all}");
    for raw in ["user-1", "alice@example.com", "anon-1"] {
        assert!(!all.to_string().contains(raw), "{raw} in {all}");
    }
    assert_eq!(pages["traces"].as_array().unwrap().len(), 1, "{pages}");
    assert_eq!(pages["traces"][0]["type"], "page");
    assert_eq!(named["traces"].as_array().unwrap().len(), 1, "{named}");
    assert_eq!(named["traces"][0]["name"], "Order Completed");
    assert_eq!(one["traces"][0]["message_id"], "m-order", "{one}");
}

#[tokio::test]
async fn the_list_holds_only_the_callers_workspace_and_the_last_hour() {
    let app = App::start().await;
    app.tracked_event().await;

    let (_, _, theirs) = app.events("", &app.other).await;
    app.clock.advance(Duration::minutes(61));
    let (status, _, later) = app.events("", &app.viewer).await;

    assert_eq!(theirs["traces"], json!([]), "another workspace: {theirs}");
    assert_eq!(status, StatusCode::OK, "{later}");
    assert_eq!(later["traces"], json!([]), "older than an hour: {later}");
}

#[tokio::test]
async fn a_bad_filter_is_a_problem_naming_its_field() {
    let app = App::start().await;
    for (query, field) in [
        ("?type=purchase".to_owned(), "type"),
        ("?limit=0".to_owned(), "limit"),
        ("?limit=101".to_owned(), "limit"),
        ("?limit=ten".to_owned(), "limit"),
        (format!("?name={}", "n".repeat(201)), "name"),
    ] {
        let (status, headers, v) = app.events(&query, &app.viewer).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert_eq!(v["field"], field, "{query}: {v}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    }
}
