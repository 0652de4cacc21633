//! Fakes of the ad-platform conversion APIs added with issue 15. Each checks its vendor's
//! documented request shape and credentials, refuses any identifier that is not a SHA-256
//! digest where the vendor takes hashes, and records the event ids it accepts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{json_body, Fakes};

/// The Snap Conversions API access token the fake expects.
pub const SNAPCHAT_TOKEN: &str = "snapDeliveryTestToken";

/// The ad-platform destinations of issue 15 pointed at the fakes on `base`: (the fake's sink
/// name, the destination definition), with the batch limit each vendor documents.
pub fn ad_destinations(base: &str) -> Vec<(&'static str, Value, usize)> {
    vec![(
        "snapchat",
        json!({"name": "Snap", "kind": "snapchat", "endpoint": base,
               "config": {"pixel_id": "6d2e7a31-delivery"},
               "secrets": {"access_token": SNAPCHAT_TOKEN}}),
        2000,
    )]
}

/// The fakes' routes, on the shared state.
pub(super) fn routes() -> Router<Arc<Fakes>> {
    Router::new().route("/v3/{pixel}/events", post(snapchat))
}

fn is_digest(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks that every listed `keys` of `user` holds only SHA-256 digests.
fn hashed_only(f: &Fakes, sink: &str, user: &Value, keys: &[&str]) {
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
    let data = v["data"].as_array().cloned().unwrap_or_default();
    if data.is_empty() || data.len() > 2000 {
        f.format_error(sink, format!("{} events in one request", data.len()));
    }
    for e in &data {
        f.require_event_members(sink, e);
        hashed_only(&f, sink, &e["user_data"], &["em", "ph", "fn", "ln"]);
    }
    f.accept(
        sink,
        &v,
        data.iter()
            .filter_map(|e| e["event_id"].as_str().map(str::to_owned)),
    );
    Json(json!({"status": "SUCCESS", "reason": "SUCCESS"})).into_response()
}
