//! Fakes of the ad-platform conversion APIs added with issue 15. Each checks its vendor's
//! documented request shape and credentials, refuses any identifier that is not a SHA-256
//! digest where the vendor takes hashes, and records the event ids it accepts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
/// The Microsoft Advertising CAPI token the fake expects (as `Authorization: Bearer`).
pub const MICROSOFT_ADS_TOKEN: &str = "uetDeliveryTestToken";
/// The Segment write key the fake expects (as the user of `Authorization: Basic`).
pub const SEGMENT_WRITE_KEY: &str = "segmentDeliveryTestWriteKey";
/// The OAuth client and refresh token the fake token endpoints (LinkedIn's, Google's) take.
pub const OAUTH_CLIENT: (&str, &str, &str) = (
    "oauthDeliveryClient",
    "oauthDeliveryClientSecret", // pragma: allowlist secret
    "oauthDeliveryRefreshToken", // pragma: allowlist secret
);
/// The Google Ads developer token the fake expects.
pub const GOOGLE_ADS_DEVELOPER_TOKEN: &str = "googleAdsDeliveryDeveloperToken";
/// Requests one access token serves before the fake API answers 401 to the next and
/// revokes it (so that delivery must refresh, many batches at once, mid-run).
const OAUTH_TOKEN_USES: usize = 20;
/// The fakes' access tokens, `oauth-{index}`: how many requests each served.
static OAUTH_TOKENS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
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
            "microsoft_ads",
            json!({"name": "Microsoft Advertising", "kind": "microsoft_ads", "endpoint": base,
                   "config": {"tag_id": "343003931"},
                   "secrets": {"access_token": MICROSOFT_ADS_TOKEN}}),
            1000,
        ),
        (
            // Segment counts bytes (500 KB a request); 5,000 calls is only the count bound.
            "segment",
            json!({"name": "Segment", "kind": "segment", "endpoint": base,
                   "config": {"identifiers": "hashed"},
                   "secrets": {"write_key": SEGMENT_WRITE_KEY}}),
            5000,
        ),
        (
            "linkedin",
            json!({"name": "LinkedIn", "kind": "linkedin", "endpoint": base,
                   "config": {"conversion_id": "104012", "api_version": "202510"},
                   "events": {"allow": ["Order Completed"]},
                   "secrets": oauth_secrets(None)}),
            5000,
        ),
        (
            "google_ads",
            json!({"name": "Google Ads", "kind": "google_ads", "endpoint": base,
                   "config": {"customer_id": "1234567890", "conversion_action_id": "987654321",
                              "api_version": "v22"},
                   "events": {"allow": ["Order Completed"]},
                   "secrets": oauth_secrets(Some(GOOGLE_ADS_DEVELOPER_TOKEN))}),
            2000,
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

/// The fakes' OAuth client as a destination's secrets, with a developer token if given.
fn oauth_secrets(developer_token: Option<&str>) -> Value {
    let (id, secret, refresh) = OAUTH_CLIENT;
    let mut v = json!({"client_id": id, "client_secret": secret, "refresh_token": refresh});
    if let Some(t) = developer_token {
        v["developer_token"] = t.into();
    }
    v
}

/// The fakes' routes, on the shared state.
pub(super) fn routes() -> Router<Arc<Fakes>> {
    Router::new()
        .route("/v3/{pixel}/events", post(snapchat))
        .route("/v5/ad_accounts/{account}/events", post(pinterest))
        .route("/api/v2.0/conversions/events/{account}", post(reddit))
        .route("/v1/{tag}/events", post(microsoft_ads))
        .route("/v1/batch", post(segment))
        .route("/oauth/v2/accessToken", post(oauth_token))
        .route("/rest/conversionEvents", post(linkedin))
        .route("/token", post(oauth_token))
        .route("/{version}/customers/{upload}", post(google_ads))
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

/// Checks that every value of the object `user` is a SHA-256 digest (or a list of them).
pub(super) fn digests_only(f: &Fakes, sink: &str, user: &Value) {
    let keys: Vec<&str> = user
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    hashed_only(f, sink, user, &keys);
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
    let token = q.get("access_token").map(String::as_str);
    let refused = (token != Some(SNAPCHAT_TOKEN)).then(|| {
        let answer = (StatusCode::UNAUTHORIZED, "bad token").into_response();
        ("missing access_token", answer)
    });
    let v = match f.admit(sink, refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
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
    f.accept_events(sink, &v, &data, "/event_id");
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
    let authorized = bearer(&headers, PINTEREST_TOKEN) && account == PINTEREST_ACCOUNT;
    let refused = (!authorized).then(|| {
        let error = json!({"code": 2, "message": "Authentication failed."});
        let answer = (StatusCode::UNAUTHORIZED, Json(error)).into_response();
        ("missing bearer token or wrong ad account", answer)
    });
    let v = match f.admit(sink, refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
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
    f.accept_events(sink, &v, &data, "/event_id");
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
    let refused = (!bearer(&headers, REDDIT_TOKEN)).then(|| {
        let error = json!({"error": {"code": 401, "message": "UNAUTHORIZED"}});
        let answer = (StatusCode::UNAUTHORIZED, Json(error)).into_response();
        ("missing bearer token", answer)
    });
    let v = match f.admit(sink, refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v["test_mode"].is_boolean() {
        f.format_error(sink, "test_mode is not a boolean".into());
    }
    let required = ["event_at", "event_type", "event_metadata", "user"];
    let hashed = ["email", "phone_number", "external_id", "ip_address"];
    let events = check_batch(&f, sink, &v, ("events", 1000), &required, ("user", &hashed));
    f.accept_events(sink, &v, &events, "/event_metadata/conversion_id");
    let message = format!("Successfully processed {} conversion events.", events.len());
    Json(json!({ "message": message })).into_response()
}

async fn microsoft_ads(State(f): State<Arc<Fakes>>, headers: HeaderMap, body: Bytes) -> Response {
    let sink = "microsoft_ads";
    let refused = (!bearer(&headers, MICROSOFT_ADS_TOKEN)).then(|| {
        (
            "missing bearer token",
            StatusCode::UNAUTHORIZED.into_response(),
        )
    });
    let v = match f.admit(sink, refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v["dataProvider"].is_string() {
        f.format_error(sink, "no dataProvider".into());
    }
    let required = ["eventType", "eventId", "eventTime", "userData"];
    let hashed = ["em", "ph", "externalId"];
    let events = check_batch(
        &f,
        sink,
        &v,
        ("data", 1000),
        &required,
        ("userData", &hashed),
    );
    f.accept_events(sink, &v, &events, "/eventId");
    StatusCode::OK.into_response()
}

async fn segment(State(f): State<Arc<Fakes>>, headers: HeaderMap, body: Bytes) -> Response {
    use base64::Engine;
    let sink = "segment";
    if let Some(r) = f.fault(sink).await {
        return r;
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SEGMENT_WRITE_KEY}:"));
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(format!("Basic {basic}").as_str()) {
        f.format_error(sink, "not Basic auth with the write key".into());
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if body.len() > 500 * 1024 {
        f.format_error(sink, format!("a batch of {} bytes", body.len()));
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Some(v) = json_body(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let calls = v["batch"].as_array().cloned().unwrap_or_default();
    for c in &calls {
        if serde_json::to_vec(c).map_or(0, |b| b.len()) > 32 * 1024 {
            f.format_error(sink, "a call over 32 KB".into());
        }
        if c["messageId"].as_str().is_none() || c["anonymousId"].as_str().is_none() {
            f.format_error(sink, "a call without messageId or anonymousId".into());
        }
        digests_only(&f, sink, &c["context"]["traits"]);
    }
    f.accept_events(sink, &v, &calls, "/messageId");
    Json(json!({"success": true})).into_response()
}

/// LinkedIn's and Google's OAuth token endpoint: a form-encoded refresh-token grant of the
/// fakes' client issues a new token for an hour; anything else is `invalid_grant`.
async fn oauth_token(State(f): State<Arc<Fakes>>, headers: HeaderMap, body: Bytes) -> Response {
    // The fake's values are all unreserved characters: no percent-decoding needed.
    let text = String::from_utf8_lossy(&body);
    let form: HashMap<&str, &str> = text.split('&').filter_map(|p| p.split_once('=')).collect();
    let field = |k: &str| form.get(k).copied();
    let form_encoded = headers
        .get("content-type")
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    let (id, secret, refresh) = OAUTH_CLIENT;
    let ok = form_encoded
        && field("grant_type") == Some("refresh_token")
        && field("client_id") == Some(id)
        && field("client_secret") == Some(secret)
        && field("refresh_token") == Some(refresh);
    if !ok {
        f.format_error("oauth", format!("bad token request: {:?}", form.keys()));
        let error = json!({"error": "invalid_grant", "error_description": "bad grant"});
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    let mut tokens = OAUTH_TOKENS.lock().unwrap();
    tokens.push(0);
    let token = format!("oauth-{}", tokens.len() - 1);
    Json(json!({"access_token": token, "expires_in": 3600})).into_response()
}

/// Whether the request carries a bearer token the fakes issued and have not revoked, counting
/// the use.
fn oauth_bearer(headers: &HeaderMap) -> bool {
    let index = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer oauth-")?.parse::<usize>().ok());
    let mut tokens = OAUTH_TOKENS.lock().unwrap();
    let Some(uses) = index.and_then(|i| tokens.get_mut(i)) else {
        return false;
    };
    *uses += 1;
    *uses <= OAUTH_TOKEN_USES
}

async fn linkedin(State(f): State<Arc<Fakes>>, headers: HeaderMap, body: Bytes) -> Response {
    let sink = "linkedin";
    if let Some(r) = f.fault(sink).await {
        return r;
    }
    if !oauth_bearer(&headers) {
        let error = json!({"status": 401, "serviceErrorCode": 65601, "message": "The token used in the request has been revoked by the user"});
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    let restli = [
        ("linkedin-version", "202510"),
        ("x-restli-protocol-version", "2.0.0"),
        ("x-restli-method", "BATCH_CREATE"),
    ];
    for (name, want) in restli {
        if headers.get(name).and_then(|v| v.to_str().ok()) != Some(want) {
            f.format_error(sink, format!("{name} is not {want}"));
        }
    }
    let Some(v) = json_body(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let required = ["conversion", "conversionHappenedAt", "user", "eventId"];
    let events = check_batch(&f, sink, &v, ("elements", 5000), &required, ("user", &[]));
    for e in &events {
        for id in e["user"]["userIds"].as_array().into_iter().flatten() {
            if id["idType"] == "SHA256_EMAIL" && !is_digest(&id["idValue"]) {
                f.format_error(sink, "SHA256_EMAIL is not a SHA-256 digest".into());
            }
        }
    }
    f.accept_events(sink, &v, &events, "/eventId");
    let statuses: Vec<Value> = events.iter().map(|_| json!({"status": 201})).collect();
    Json(json!({ "elements": statuses })).into_response()
}

async fn google_ads(
    State(f): State<Arc<Fakes>>,
    Path((_version, upload)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sink = "google_ads";
    if upload != "1234567890:uploadClickConversions" {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(r) = f.fault(sink).await {
        return r;
    }
    if !oauth_bearer(&headers) {
        let error = json!({"error": {"code": 401, "status": "UNAUTHENTICATED",
            "message": "Request had invalid authentication credentials."}});
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    let developer = headers.get("developer-token").and_then(|v| v.to_str().ok());
    if developer != Some(GOOGLE_ADS_DEVELOPER_TOKEN) {
        f.format_error(sink, "missing developer-token".into());
    }
    let Some(v) = json_body(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if v["partialFailure"] != true {
        f.format_error(sink, "partialFailure is not true".into());
    }
    let required = ["conversionAction", "conversionDateTime", "orderId"];
    let conversions = check_batch(
        &f,
        sink,
        &v,
        ("conversions", 2000),
        &required,
        ("user", &[]),
    );
    for c in &conversions {
        let clicks = ["gclid", "gbraid", "wbraid"]
            .iter()
            .filter(|k| c.get(**k).is_some())
            .count();
        if clicks != 1 {
            f.format_error(sink, format!("{clicks} click ids in one conversion"));
        }
        for id in c["userIdentifiers"].as_array().into_iter().flatten() {
            hashed_only(&f, sink, id, &["hashedEmail", "hashedPhoneNumber"]);
        }
    }
    f.accept_events(sink, &v, &conversions, "/orderId");
    let results: Vec<Value> = conversions.iter().map(|_| json!({})).collect();
    Json(json!({ "results": results, "jobId": "1" })).into_response()
}
