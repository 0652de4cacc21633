//! What the browser SDKs send, read from their sources (`tests/browser/node_modules`):
//!
//! - `@segment/analytics-next` 1.84 posts each event to `{apiHost}/{first letter of its type}`
//!   (`/v1/t`, `/v1/p`, `/v1/i`, `/v1/s`, `/v1/g`, `/v1/a`; `plugins/segmentio/index.js`), or
//!   batches to `{apiHost}/b` (`batched-dispatcher.js`), as `Content-Type: text/plain` JSON with
//!   `writeKey` in the body and `Authorization: Basic base64(writeKey:)`, `keepalive` on page
//!   unload; it first reads `{cdnURL}/v1/projects/{writeKey}/settings` (`browser/index.js`)
//!   and, unless that document sets `metrics.sampleRate` to 0, posts metrics to
//!   `api.segment.io/v1/m` (`core/stats/remote-metrics.js`).
//! - `@rudderstack/analytics-js` 3.34 reads `{configUrl}/sourceConfig/?writeKey=…` with Basic
//!   auth, posts events to `{dataPlaneUrl}/v1/{type}` with Basic auth and JSON, and with
//!   `useBeacon` sends `sendBeacon` batches to `/beacon/v1/batch?writeKey=…` (no headers).
//!
//! Every one authenticates with the write key and passes the workspace's CORS decision.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tracklayer_core::event::EventType;
use tracklayer_core::ingest::Endpoint;

use crate::problem::Problem;
use crate::tracking::{admit, header_key, track, KeyIn, TrackingState};

/// The SDK-specific routes, merged into the tracking router.
pub fn browser_routes() -> Router<TrackingState> {
    let route = |endpoint: Endpoint, key_in: KeyIn| {
        post(move |State(s): State<TrackingState>, req: Request| track(s, endpoint, req, key_in))
            .options(crate::cors::preflight)
    };
    let short = |t: EventType| route(Endpoint::Single(t), KeyIn::Headers);
    Router::new()
        .route("/v1/t", short(EventType::Track))
        .route("/v1/p", short(EventType::Page))
        .route("/v1/i", short(EventType::Identify))
        .route("/v1/s", short(EventType::Screen))
        .route("/v1/g", short(EventType::Group))
        .route("/v1/a", short(EventType::Alias))
        .route("/v1/b", route(Endpoint::Batch, KeyIn::Headers))
        .route(
            "/beacon/v1/batch",
            route(Endpoint::Batch, KeyIn::HeadersOrQuery),
        )
        .route(
            "/v1/projects/{write_key}/settings",
            get(segment_settings).options(crate::cors::preflight_get),
        )
        .route(
            "/sourceConfig",
            get(rudder_source_config).options(crate::cors::preflight_get),
        )
        .route(
            "/sourceConfig/",
            get(rudder_source_config).options(crate::cors::preflight_get),
        )
}

/// The settings document analytics-next loads from `{cdnURL}/v1/projects/{writeKey}/settings`:
/// one integration, `Segment.io`, sending to `{host}/v1` (this server), no other integrations,
/// no remote plugins or middleware, and remote metrics off, so that nothing goes to a third
/// party.
pub fn segment_settings_document(write_key: &str, host: &str, protocol: &str) -> Value {
    json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": format!("{host}/v1"),
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": false,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    })
}

/// The source configuration rudder-analytics loads: enabled, no device-mode destinations
/// (TrackLayer routes server side), and its error and metrics reporting off.
pub fn rudder_source_config_document(
    source_id: &str,
    workspace_id: &str,
    write_key: &str,
) -> Value {
    json!({
        "isHosted": true,
        "source": {
            "id": source_id,
            "name": "TrackLayer",
            "writeKey": write_key,
            "workspaceId": workspace_id,
            "enabled": true,
            "config": {
                "statsCollection": {
                    "errors": {"enabled": false},
                    "metrics": {"enabled": false},
                }
            },
            "destinations": [],
        }
    })
}

/// This server's host as the browser reached it, and the scheme to reach it by: `http` on a
/// loopback host (a developer's machine, the browser suite), `https` everywhere else.
fn host_and_protocol(headers: &HeaderMap) -> Result<(String, &'static str), Problem> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '@', ' ']))
        .ok_or_else(|| {
            Problem::bad_request("invalid-host", "a Host header is required").field("Host")
        })?;
    let name = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let loopback = name == "localhost"
        || name
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Ok((host.to_owned(), if loopback { "http" } else { "https" }))
}

async fn segment_settings(
    State(s): State<TrackingState>,
    Path(write_key): Path<String>,
    req: Request,
) -> Response {
    let headers = req.headers();
    let (host, protocol) = match host_and_protocol(headers) {
        Ok(hp) => hp,
        Err(p) => return p.into_response(),
    };
    let ip = match s.client(&req) {
        Ok(ip) => ip,
        Err(p) => return p.into_response(),
    };
    match admit(&s, &write_key, headers, ip).await {
        Ok((_, cors)) => crate::cors::allow(
            Json(segment_settings_document(&write_key, &host, protocol)).into_response(),
            &cors,
        ),
        Err(response) => response,
    }
}

async fn rudder_source_config(State(s): State<TrackingState>, req: Request) -> Response {
    let headers = req.headers();
    let presented = match header_key(headers) {
        Ok(k) => k.or_else(|| crate::tracking::query_key(req.uri())),
        Err(p) => return p.into_response(),
    };
    let Some(write_key) = presented else {
        return Problem::unauthorized(
            "no write key: send it as the Basic user name or as ?writeKey=",
        )
        .into_response();
    };
    let ip = match s.client(&req) {
        Ok(ip) => ip,
        Err(p) => return p.into_response(),
    };
    match admit(&s, &write_key, headers, ip).await {
        Ok((key, cors)) => crate::cors::allow(
            Json(rudder_source_config_document(
                key.id.as_str(),
                key.workspace_id.as_str(),
                &write_key,
            ))
            .into_response(),
            &cors,
        ),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_segment_settings_send_only_to_this_server_with_nothing_remote() {
        let doc = segment_settings_document("wk", "127.0.0.1:8080", "http");

        let integrations = doc["integrations"].as_object().unwrap();
        assert_eq!(integrations.keys().collect::<Vec<_>>(), ["Segment.io"]);
        assert_eq!(integrations["Segment.io"]["apiHost"], "127.0.0.1:8080/v1");
        assert_eq!(integrations["Segment.io"]["protocol"], "http");
        assert_eq!(integrations["Segment.io"]["apiKey"], "wk");
        assert_eq!(doc["remotePlugins"], json!([]));
        assert_eq!(
            doc["metrics"]["sampleRate"], 0,
            "else metrics go to api.segment.io"
        );
        assert_eq!(doc["middlewareSettings"], json!({}));
        assert_eq!(doc["legacyVideoPluginsEnabled"], false);
    }

    #[test]
    fn the_rudder_source_config_has_no_device_mode_destination_and_no_reporting() {
        let doc = rudder_source_config_document("key_1", "ws_1", "wk");

        assert_eq!(doc["source"]["id"], "key_1");
        assert_eq!(doc["source"]["enabled"], true);
        assert_eq!(doc["source"]["destinations"], json!([]));
        assert_eq!(
            doc["source"]["config"]["statsCollection"]["errors"]["enabled"],
            false
        );
        assert_eq!(
            doc["source"]["config"]["statsCollection"]["metrics"]["enabled"],
            false
        );
    }

    #[tokio::test]
    async fn an_options_request_lists_exactly_the_methods_of_its_route() {
        use tower::ServiceExt;
        let allow_of = |path: &'static str| async move {
            let router: Router<()> = Router::new()
                .route("/v1/t", post(|| async {}).options(crate::cors::preflight))
                .route(
                    "/sourceConfig/",
                    get(|| async {}).options(crate::cors::preflight_get),
                );
            let req = axum::http::Request::options(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = router.oneshot(req).await.unwrap();
            res.headers()[header::ALLOW].to_str().unwrap().to_owned()
        };
        assert_eq!(allow_of("/v1/t").await, "POST, OPTIONS");
        assert_eq!(allow_of("/sourceConfig/").await, "GET, OPTIONS");
    }

    #[test]
    fn the_scheme_is_http_only_for_a_loopback_host() {
        let of = |host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            host_and_protocol(&h).map(|(_, p)| p)
        };
        assert_eq!(of("127.0.0.1:8080").unwrap(), "http");
        assert_eq!(of("localhost:3000").unwrap(), "http");
        assert_eq!(of("[::1]:3000").unwrap(), "http");
        assert_eq!(of("track.shop.example").unwrap(), "https");
        assert_eq!(of("127.0.0.1.evil.example").unwrap(), "https");
        assert!(of("a/b").is_err());
    }
}
