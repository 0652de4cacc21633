//! The ad-platform destination kinds added with issue 15, through the admin API: each one's
//! config and write-only secrets are checked when it is configured (422 naming the field),
//! secrets never come back, and the OpenAPI document lists the kind.

use super::*;
use tracklayer_core::deliver::HttpRequest;

fn snapchat() -> Value {
    json!({"name": "Snap", "kind": "snapchat",
           "config": {"pixel_id": "6d2e7a31-snap-pixel"},
           "secrets": {"access_token": "snap-token-never-shown"}})
}

#[tokio::test]
async fn a_snapchat_destination_is_checked_when_configured_naming_the_field() {
    let refused = [
        (json!({"pixel_id": "../v2/conversion"}), "config.pixel_id"),
        (json!({}), "config.pixel_id"),
        (json!({"pixel_id": "p1", "pixel": "x"}), "config.pixel"),
    ];
    let accepted = snapchat()["config"].clone();
    check_configure_time_rules("snapchat", &refused, accepted).await;
}

#[tokio::test]
async fn editors_cannot_move_a_snapchat_destination_to_another_pixel() {
    let patch = json!({"config": {"pixel_id": "attacker-pixel"}});
    editors_cannot_patch(snapchat(), patch, "config.pixel_id").await;
}

#[tokio::test]
async fn editors_cannot_switch_a_segment_destination_from_scrubbed_to_hashed_identifiers() {
    let scrubbed = json!({"name": "Segment", "kind": "segment",
        "config": {"identifiers": "scrubbed"}, "secrets": {"write_key": "wk"}});
    let patch = json!({"config": {"identifiers": "hashed"}});
    editors_cannot_patch(scrubbed, patch, "config.identifiers").await;
}

/// An admin creates `spec`; an editor's `patch` of it is refused (403) naming `field`.
async fn editors_cannot_patch(spec: Value, patch: Value, field: &str) {
    let app = App::start().await;
    let created = app.post("/admin/v1/destinations", spec).await;
    let path = format!("/admin/v1/destinations/{}", created["id"].as_str().unwrap());
    let (status, _, v) = app
        .call(Method::PATCH, &path, Some(&app.editor), Some(patch))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["field"], field);
}

/// Creates destinations of `kind` with each of the `refused` configs (and a token) and with the
/// `accepted` config but no token (an access token; for Segment a write key), and expects 422
/// naming the field at fault; then creates one with the `accepted` config and a token and
/// expects it stored for `advertising` (Segment: `analytics`), the token never shown.
async fn check_configure_time_rules(
    kind: &str,
    refused: &[(Value, &str)],
    accepted: Value,
) -> (App, String) {
    let secret = match kind {
        "segment" => "write_key",
        _ => "access_token",
    };
    let missing = format!("secrets.{secret}");
    let refused = Refused {
        configs: refused,
        secrets: &[(json!({}), missing.as_str())],
    };
    let accepted = Accepted {
        config: accepted,
        secrets: json!({ secret: "token-never-shown" }),
        events: json!("all"),
    };
    check_rules_with(kind, refused, accepted).await
}

/// A destination its kind's rules accept: config, secrets (each ending in `-never-shown`) and
/// event filter.
struct Accepted {
    config: Value,
    secrets: Value,
    events: Value,
}

/// What a kind's rules refuse, each with the field at fault: configs (sent with the accepted
/// secrets) and secrets (sent with the accepted config).
struct Refused<'a> {
    configs: &'a [(Value, &'a str)],
    secrets: &'a [(Value, &'a str)],
}

/// Creates destinations of `kind` with each of the `refused` configs and secrets and expects
/// 422 naming the field at fault; then creates the `accepted` one and expects it stored for
/// `advertising` (Segment: `analytics`), the secrets never shown. Answers the app and the
/// created destination's id.
async fn check_rules_with(kind: &str, refused: Refused<'_>, accepted: Accepted) -> (App, String) {
    let app = App::start().await;
    let Accepted {
        config,
        secrets,
        events,
    } = &accepted;
    let spec = |config: &Value, secrets: &Value| json!({"name": kind, "kind": kind, "config": config, "secrets": secrets, "events": events});
    let bad_configs = refused
        .configs
        .iter()
        .map(|(c, field)| (spec(c, secrets), *field));
    let bad_secrets = refused
        .secrets
        .iter()
        .map(|(s, field)| (spec(config, s), *field));
    for (bad, field) in bad_configs.chain(bad_secrets) {
        app.assert_invalid_field(Method::POST, "/admin/v1/destinations", bad, field)
            .await;
    }
    let purpose = match kind {
        "segment" => "analytics",
        _ => "advertising",
    };
    let created = app
        .post("/admin/v1/destinations", spec(config, secrets))
        .await;
    assert_eq!(created["kind"], kind);
    assert_eq!(created["consent_purposes"], json!([purpose]));
    assert!(!created.to_string().contains("never-shown"), "{created}");
    (app, created["id"].as_str().unwrap_or_default().to_owned())
}

/// Sends destination `id`'s test event as an admin and expects it delivered, the answer never
/// showing the token; answers the one request it sent.
async fn delivered_test_event(app: &App, id: &str) -> HttpRequest {
    let (status, _, answer) = app.send_test_event(id, &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "delivered", "{answer}");
    assert!(!answer.to_string().contains("never-shown"), "{answer}");
    app.egress.sent().pop().expect("one request")
}

#[tokio::test]
async fn a_linkedin_destination_takes_oauth_secrets_write_only_naming_the_field_at_fault() {
    let oauth = json!({"client_id": "id-never-shown", "client_secret": "secret-never-shown",
                       "refresh_token": "refresh-never-shown"});
    let config = json!({"conversion_id": "104012", "api_version": "202510"});
    let refused = Refused {
        configs: &[
            (
                json!({"conversion_id": "104012/../x", "api_version": "202510"}),
                "config.conversion_id",
            ),
            (
                json!({"conversion_id": "104012", "api_version": "v2"}),
                "config.api_version",
            ),
        ],
        secrets: &[(
            json!({"access_token": "a-token-is-not-taken"}),
            "secrets.client_id",
        )],
    };
    let events = json!({"allow": ["Order Completed"]});
    let accepted = Accepted {
        config,
        secrets: oauth,
        events,
    };
    check_rules_with("linkedin", refused, accepted).await;
}

#[tokio::test]
async fn a_google_ads_destination_needs_a_developer_token_and_one_conversion_action() {
    let secrets = json!({"client_id": "id-never-shown", "client_secret": "secret-never-shown",
                         "refresh_token": "refresh-never-shown",
                         "developer_token": "dev-never-shown"});
    let config = json!({"customer_id": "1234567890", "conversion_action_id": "987654321",
                        "api_version": "v22"});
    let mut no_developer_token = secrets.clone();
    no_developer_token
        .as_object_mut()
        .unwrap()
        .remove("developer_token");
    let refused = Refused {
        configs: &[(
            json!({"customer_id": "123-456-7890", "conversion_action_id": "1", "api_version": "v22"}),
            "config.customer_id",
        )],
        secrets: &[(no_developer_token, "secrets.developer_token")],
    };
    let events = json!({"allow": ["Order Completed"]});
    let accepted = Accepted {
        config,
        secrets,
        events,
    };
    check_rules_with("google_ads", refused, accepted).await;
}

#[tokio::test]
async fn a_pinterest_destination_is_checked_when_configured_naming_the_field() {
    let refused = [
        (
            json!({"ad_account_id": "../549757463328"}),
            "config.ad_account_id",
        ),
        (
            json!({"ad_account_id": "1", "test_mode": "yes"}),
            "config.test_mode",
        ),
    ];
    let accepted = json!({"ad_account_id": "549757463328"});
    check_configure_time_rules("pinterest", &refused, accepted).await;
}

#[tokio::test]
async fn a_reddit_destination_is_checked_when_configured_naming_the_field() {
    let refused = [(
        json!({"ad_account_id": "a2_x/../y"}),
        "config.ad_account_id",
    )];
    let accepted = json!({"ad_account_id": "a2_gfgsrrd4ug2t"});
    check_configure_time_rules("reddit", &refused, accepted).await;
}

#[tokio::test]
async fn a_microsoft_ads_destination_is_checked_when_configured_and_its_test_event_reaches_uet() {
    let refused = [
        (json!({"tag_id": "343003931/../x"}), "config.tag_id"),
        (
            json!({"tag_id": "343003931", "data_provider": "x"}),
            "config.data_provider",
        ),
    ];
    let accepted = json!({"tag_id": "343003931"});
    let (app, id) = check_configure_time_rules("microsoft_ads", &refused, accepted).await;
    // Its test event goes to the UET endpoint with the token.
    let request = delivered_test_event(&app, &id).await;
    let tag_url = "https://capi.uet.microsoft.com/v1/343003931/events";
    assert_eq!(request.url, tag_url);
    let auth = (
        "Authorization".to_owned(),
        "Bearer token-never-shown".to_owned(),
    );
    assert!(request.headers.contains(&auth));
}

#[tokio::test]
async fn a_segment_destination_is_checked_when_configured_and_its_endpoint_passes_the_egress_guard()
{
    let refused = [(json!({"identifiers": "raw"}), "config.identifiers")];
    let accepted = json!({"identifiers": "hashed"});
    let (app, id) = check_configure_time_rules("segment", &refused, accepted).await;
    // Its test event goes to Segment's batch endpoint.
    let request = delivered_test_event(&app, &id).await;
    assert_eq!(request.url, "https://api.segment.io/v1/batch");
    // A write key is the user name of HTTP basic authentication: it holds no colon.
    let colon = json!({"name": "Segment", "kind": "segment",
        "config": {"identifiers": "hashed"}, "secrets": {"write_key": "wk:with-colon"}});
    app.assert_invalid_field(
        Method::POST,
        "/admin/v1/destinations",
        colon,
        "secrets.write_key",
    )
    .await;
    // The endpoint goes through the egress guard like a webhook's URL: this app runs with
    // private egress allowed (as `serve --allow-private-egress`), which still never reaches
    // cloud metadata nor a public address over plain http.
    for endpoint in ["https://169.254.169.254", "http://8.8.8.8"] {
        let spec = json!({"name": "Segment", "kind": "segment", "endpoint": endpoint,
            "config": {"identifiers": "scrubbed"}, "secrets": {"write_key": "wk"}});
        app.assert_invalid_field(Method::POST, "/admin/v1/destinations", spec, "endpoint")
            .await;
    }
    let loopback = json!({"name": "Segment", "kind": "segment", "endpoint": "http://127.0.0.1:9",
        "config": {"identifiers": "scrubbed"}, "secrets": {"write_key": "wk"}});
    app.ok(Method::POST, "/admin/v1/destinations", Some(loopback))
        .await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_destination_kind() {
    let app = App::start().await;
    let doc = app.get("/admin/v1/openapi.json").await;
    let kinds = &doc["components"]["schemas"]["DestinationKind"]["enum"];
    for kind in tracklayer_core::destination::DestinationKind::ALL {
        assert!(
            kinds.as_array().unwrap().contains(&json!(kind.as_str())),
            "{kind} missing from {kinds}"
        );
    }
}
