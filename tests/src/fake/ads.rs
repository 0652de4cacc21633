//! Fakes of the ad-platform conversion APIs added with issue 15. Each checks its vendor's
//! documented request shape and credentials, refuses any identifier that is not a SHA-256
//! digest where the vendor takes hashes, and records the event ids it accepts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{json_body, Fakes};

/// The Snap Conversions API access token the fake expects.
pub const SNAPCHAT_TOKEN: &str = "snapDeliveryTestToken";
/// The Pinterest conversion token the fake expects (as `Authorization: Bearer`).
pub const PINTEREST_TOKEN: &str = "pinterestDeliveryTestToken";
/// The Reddit conversion access token the fake expects (as `Authorization: Bearer`).
pub const REDDIT_TOKEN: &str = "redditDeliveryTestToken";
/// The Pinterest ad account the fake serves.
const PINTEREST_ACCOUNT: &str = "549757463328";

/// The ad-platform destinations of issue 15 (and Firehose) pointed at the fakes on `base`: (the fake's sink
/// name, the destination definition), with the batch limit each vendor documents.
pub fn ad_destinations(base: &str) -> Vec<(&'static str, Value, usize)> {
    vec![
        (
            "snapchat",
            json!({"name": "Snap", "kind": "snapchat", "endpoint": base,
                   "config": {"pixel_id": "6d2e7a31-delivery"},
                   "secrets": {"access_token": SNAPCHAT_TOKEN}}),
            2000,
        ),
        (
            "pinterest",
            json!({"name": "Pinterest", "kind": "pinterest", "endpoint": base,
                   "config": {"ad_account_id": PINTEREST_ACCOUNT},
                   "secrets": {"access_token": PINTEREST_TOKEN}}),
            1000,
        ),
        (
            "reddit",
            json!({"name": "Reddit", "kind": "reddit", "endpoint": base,
                   "config": {"ad_account_id": "a2_delivery"},
                   "secrets": {"access_token": REDDIT_TOKEN}}),
            1000,
        ),
        (
            "firehose",
            json!({"name": "Firehose", "kind": "firehose", "endpoint": base,
                   "config": {"stream_name": super::FIREHOSE_STREAM, "region": "us-east-1"},
                   "secrets": {"aws_access_key_id": super::FIREHOSE_KEY_ID,
                               "aws_secret_access_key": super::FIREHOSE_SECRET_KEY}}),
            500,
        ),
    ]
}

/// The fakes' routes, on the shared state.
pub(super) fn routes() -> Router<Arc<Fakes>> {
    Router::new()
        .route("/v3/{pixel}/events", post(snapchat))
        .route("/v5/ad_accounts/{account}/events", post(pinterest))
        .route("/api/v2.0/conversions/events/{account}", post(reddit))
}

/// Whether the request carries `Authorization: Bearer {token}`.
fn bearer(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {token}"))
}

/// Checks a vendor batch: 1 to `max` events under `key`, each with the `required` fields and
/// digests only under the `hashed` keys of its `user` object. Returns the events.
fn check_batch(
    f: &Fakes,
    sink: &str,
    body: &Value,
    (key, max): (&str, usize),
    required: &[&str],
    (user, hashed): (&str, &[&str]),
) -> Vec<Value> {
    let events = body[key].as_array().cloned().unwrap_or_default();
    if events.is_empty() || events.len() > max {
        f.format_error(sink, format!("{} events in one request", events.len()));
    }
    for e in &events {
        for field in required {
            if e.get(*field).is_none() {
                f.format_error(sink, format!("event without {field}"));
            }
        }
        hashed_only(f, sink, &e[user], hashed);
    }
    events
}

fn is_digest(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks that every listed `keys` of `user` holds only SHA-256 digests.
pub(super) fn hashed_only(f: &Fakes, sink: &str, user: &Value, keys: &[&str]) {
    for key in keys {
        let Some(v) = user.get(*key) else { continue };
        let all = match v {
            Value::Array(a) => a.iter().all(is_digest),
            other => is_digest(other),
        };
        if !all {
            f.format_error(sink, format!("user_data.{key} is not a SHA-256 digest"));
        }
    }
}

async fn snapchat(
    State(f): State<Arc<Fakes>>,
    Path(_pixel): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let sink = "snapchat";
    if let Some(r) = f.fault(sink).await {
        return r;
    }
    if q.get("access_token").map(String::as_str) != Some(SNAPCHAT_TOKEN) {
        f.format_error(sink, "missing access_token".into());
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    let Some(v) = json_body(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let required = [
        "event_name",
        "event_time",
        "event_id",
        "action_source",
        "user_data",
    ];
    let user = ("user_data", ["em", "ph", "fn", "ln"].as_slice());
    let data = check_batch(&f, sink, &v, ("data", 2000), &required, user);
    f.accept(
        sink,
        &v,
        data.iter()
            .filter_map(|e| e["event_id"].as_str().map(str::to_owned)),
    );
    Json(json!({"status": "SUCCESS", "reason": "SUCCESS"})).into_response()
}

/// Pinterest's `user_data` keys that take SHA-256 digests.
const PINTEREST_HASHED: [&str; 11] = [
    "em",
    "ph",
    "fn",
    "ln",
    "ge",
    "db",
    "ct",
    "st",
    "zp",
    "country",
    "external_id",
];

async fn pinterest(
    State(f): State<Arc<Fakes>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sink = "pinterest";
    if let Some(r) = f.fault(sink).await {
        return r;
    }
    if !bearer(&headers, PINTEREST_TOKEN) || account != PINTEREST_ACCOUNT {
        f.format_error(sink, "missing bearer token or wrong ad account".into());
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": 2, "message": "Authentication failed."})),
        )
            .into_response();
    }
    let Some(v) = json_body(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let required = [
        "event_name",
        "action_source",
        "event_time",
        "user_data",
        "event_id",
    ];
    let user = ("user_data", PINTEREST_HASHED.as_slice());
    let data = check_batch(&f, sink, &v, ("data", 1000), &required, user);
    for e in &data {
        let u = &e["user_data"];
        let matchable = u.get("em").is_some()
            || (u.get("client_ip_address").is_some() && u.get("client_user_agent").is_some());
        if !matchable {
            f.format_error(
                sink,
                "user_data without em or IP address and user agent".into(),
            );
        }
    }
    f.accept(
        sink,
        &v,
        data.iter()
            .filter_map(|e| e["event_id"].as_str().map(str::to_owned)),
    );
    let events: Vec<Value> = data
        .iter()
        .map(|_| json!({"status": "processed"}))
        .collect();
    Json(
        json!({"num_events_received": data.len(), "num_events_processed": data.len(),
                "events": events}),
    )
    .into_response()
}

async fn reddit(State(f): State<Arc<Fakes>>, headers: HeaderMap, body: Bytes) -> Response {
    let sink = "reddit";
    if let Some(r) = f.fault(sink).await {
        return r;
    }
    if !bearer(&headers, REDDIT_TOKEN) {
        f.format_error(sink, "missing bearer token".into());
        let error = json!({"error": {"code": 401, "message": "UNAUTHORIZED"}});
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    let Some(v) = json_body(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !v["test_mode"].is_boolean() {
        f.format_error(sink, "test_mode is not a boolean".into());
    }
    let required = ["event_at", "event_type", "event_metadata", "user"];
    let hashed = ["email", "phone_number", "external_id", "ip_address"];
    let events = check_batch(&f, sink, &v, ("events", 1000), &required, ("user", &hashed));
    let ids = events.iter().filter_map(|e| {
        e["event_metadata"]["conversion_id"]
            .as_str()
            .map(str::to_owned)
    });
    f.accept(sink, &v, ids);
    let message = format!("Successfully processed {} conversion events.", events.len());
    Json(json!({ "message": message })).into_response()
}
