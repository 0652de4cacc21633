//! The `firehose` kind through the admin API: config and write-only secrets checked when it is
//! configured (422 naming the field), the static keys never shown again, the role ARN shown
//! (it is config, not a secret), and the egress guard applied to the endpoint override.

use super::*;

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE"; // pragma: allowlist secret
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"; // pragma: allowlist secret
const ROLE: &str = "arn:aws:iam::123456789012:role/tracklayer-firehose";

fn firehose(config: Value, secrets: Value) -> Value {
    json!({"name": "Warehouse", "kind": "firehose", "config": config, "secrets": secrets})
}

fn stream(extra: Value) -> Value {
    let mut config = json!({"stream_name": "tracklayer-events", "region": "eu-central-1"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    config
}

#[tokio::test]
async fn a_firehose_destination_is_checked_when_configured_naming_the_field() {
    let app = App::start().await;
    let keys = json!({"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET_KEY});
    let cases = [
        (stream(json!({})), json!({}), "config.role_arn"),
        (
            stream(json!({"role_arn": ROLE})),
            keys.clone(),
            "config.role_arn",
        ),
        (
            stream(json!({"role_arn": "arn:aws:iam::1:role/x"})),
            json!({}),
            "config.role_arn",
        ),
        (
            stream(json!({"stream_name": "a/b", "role_arn": ROLE})),
            json!({}),
            "config.stream_name",
        ),
        (
            stream(json!({"region": "moon-1", "role_arn": ROLE})),
            json!({}),
            "config.region",
        ),
        (
            stream(json!({})),
            json!({"aws_access_key_id": KEY_ID}),
            "secrets.aws_secret_access_key",
        ),
        (
            json!({"region": "eu-central-1", "role_arn": ROLE}),
            json!({}),
            "config.stream_name",
        ),
    ];
    for (config, secrets, field) in cases {
        app.assert_invalid_field(
            Method::POST,
            "/admin/v1/destinations",
            firehose(config, secrets),
            field,
        )
        .await;
    }

    let with_keys = app
        .ok(
            Method::POST,
            "/admin/v1/destinations",
            Some(firehose(stream(json!({})), keys)),
        )
        .await;
    assert_eq!(with_keys["kind"], "firehose");
    assert_eq!(with_keys["consent_purposes"], json!(["analytics"]));
    assert!(!with_keys.to_string().contains(SECRET_KEY), "{with_keys}");

    let with_role = app
        .ok(
            Method::POST,
            "/admin/v1/destinations",
            Some(firehose(stream(json!({"role_arn": ROLE})), json!({}))),
        )
        .await;
    assert_eq!(with_role["config"]["role_arn"], ROLE);
}

#[tokio::test]
async fn a_firehose_endpoint_override_is_held_to_the_egress_guard() {
    // This harness allows private egress (as the tests' fakes need); the instance metadata
    // address, URL credentials and other schemes stay refused.
    let app = App::start().await;
    for endpoint in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "https://user:pw@firehose.eu-central-1.amazonaws.com/", // pragma: allowlist secret
        "ftp://firehose.example/",
    ] {
        let mut spec = firehose(stream(json!({"role_arn": ROLE})), json!({}));
        spec["endpoint"] = json!(endpoint);
        app.assert_invalid_field(Method::POST, "/admin/v1/destinations", spec, "endpoint")
            .await;
    }
}

#[tokio::test]
async fn editors_cannot_point_a_firehose_destination_at_another_stream_or_role() {
    let app = App::start().await;
    let created = app
        .ok(
            Method::POST,
            "/admin/v1/destinations",
            Some(firehose(stream(json!({"role_arn": ROLE})), json!({}))),
        )
        .await;
    let path = format!("/admin/v1/destinations/{}", created["id"].as_str().unwrap());
    for (key, value) in [
        ("stream_name", "attacker-stream"),
        ("role_arn", "arn:aws:iam::210987654321:role/attacker"),
    ] {
        let patch = json!({"config": stream(json!({"role_arn": ROLE, key: value}))});
        let (status, _, v) = app
            .call(Method::PATCH, &path, Some(&app.editor), Some(patch))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["field"], format!("config.{key}"), "{v}");
    }
}
