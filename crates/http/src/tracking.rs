//! The Segment-compatible tracking API: `POST /v1/{batch,track,identify,page,screen,group,alias}`
//! and `GET /healthz`, described by `GET /v1/openapi.json` ([`crate::tracking_openapi`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::json;
use tracklayer_core::event::EventType;
use tracklayer_core::ingest::{
    parse_body, Endpoint, IngestError, IngestService, RequestMeta, MAX_EVENT_BYTES,
    MAX_REQUEST_BYTES,
};

use crate::body::{read_body_with, BodyLimits};
pub use crate::client_ip::ClientIp;
use crate::limits::{RateLimits, Rates};
use crate::problem::Problem;
use crate::regions::RegionEndpoints;

/// Settings of the tracking API.
#[derive(Debug, Clone)]
pub struct TrackingConfig {
    /// Requests per second per write key (token bucket), default 1,000.
    pub rate_limit_per_key: u32,
    /// Requests per second per client IP (IPv6: per /64), whatever the key, default 1,000;
    /// taken before the body is read (see [`crate::limits`]).
    pub rate_limit_per_ip: u32,
    /// Requests per second per client IP with a browser-facing write key (public, so any
    /// visitor holds it), default 20: a page sends a handful per view.
    pub browser_rate_limit_per_ip: u32,
    /// Decompressed bytes per compressed byte of a gzip/deflate body, default
    /// [`crate::body::DEFAULT_INFLATE_RATIO`] (100); the absolute cap is the request limit.
    pub gzip_max_ratio: usize,
    /// Public base URL of each region, for 421 answers.
    pub endpoints: RegionEndpoints,
    /// How many trusted proxies in front of the server append to `X-Forwarded-For`; the
    /// client is the entry the outermost one appended. 0: the header is ignored.
    pub trusted_proxies: usize,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_key: Rates::default().per_key,
            rate_limit_per_ip: Rates::default().per_ip,
            browser_rate_limit_per_ip: Rates::default().browser_per_ip,
            gzip_max_ratio: crate::body::DEFAULT_INFLATE_RATIO,
            endpoints: RegionEndpoints::default(),
            trusted_proxies: 0,
        }
    }
}

/// Shared state of the tracking routes.
#[derive(Debug, Clone)]
pub struct TrackingState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ingest: Arc<IngestService>,
    config: TrackingConfig,
    limits: RateLimits,
}

impl TrackingState {
    pub fn new(ingest: Arc<IngestService>, config: TrackingConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                ingest,
                limits: RateLimits::new(Rates {
                    per_key: config.rate_limit_per_key,
                    per_ip: config.rate_limit_per_ip,
                    browser_per_ip: config.browser_rate_limit_per_ip,
                }),
                config,
            }),
        }
    }

    /// The client address of a request (see [`crate::client_ip`]), once it has taken a token
    /// of its address: every tracking request calls this first.
    pub(crate) fn client(&self, req: &Request) -> Result<Option<IpAddr>, Problem> {
        let ip = client_ip(req, self.inner.config.trusted_proxies)?;
        self.inner.limits.source(ip, Instant::now())?;
        Ok(ip)
    }
}

/// The tracking routes.
pub fn tracking_router(state: TrackingState) -> Router {
    let route = |endpoint: Endpoint| {
        post(move |State(s): State<TrackingState>, req: Request| {
            track(s, endpoint, req, KeyIn::Headers)
        })
        .options(crate::cors::preflight)
    };
    Router::new()
        .route("/v1/batch", route(Endpoint::Batch))
        .route("/v1/import", route(Endpoint::Batch))
        .route("/v1/track", route(Endpoint::Single(EventType::Track)))
        .route("/v1/identify", route(Endpoint::Single(EventType::Identify)))
        .route("/v1/page", route(Endpoint::Single(EventType::Page)))
        .route("/v1/screen", route(Endpoint::Single(EventType::Screen)))
        .route("/v1/group", route(Endpoint::Single(EventType::Group)))
        .route("/v1/alias", route(Endpoint::Single(EventType::Alias)))
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(crate::tracking_openapi::openapi))
        .merge(crate::browser::browser_routes())
        .method_not_allowed_fallback(crate::problem::method_not_allowed)
        .layer(axum::middleware::map_response(
            crate::headers::every_response,
        ))
        .with_state(state)
}

/// Liveness, with this process's key-verification counters (failed authentications by API,
/// bcrypt runs, 429s for repeated failures) and the warnings ingest answered, for the operator.
async fn healthz(State(s): State<TrackingState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "region": s.inner.ingest.region(),
        "authentication": s.inner.ingest.verifier().stats(),
        "ingest": {
            "warnings": s.inner.ingest.warnings_total(),
            "origins_refused": s.inner.ingest.origins_refused_total(),
        },
    }))
}

/// The write key from `Authorization: Basic base64(key:)` or `Authorization: Bearer key`.
pub(crate) fn header_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthorized("the Authorization header is not valid text"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| Problem::unauthorized("the Basic credentials are not valid base64"))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| Problem::unauthorized("the Basic credentials are not valid text"))?;
            let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
            Ok(Some(user.to_owned()))
        }
        "bearer" => Ok(Some(rest.trim().to_owned())),
        _ => Err(Problem::unauthorized(
            "use Basic (write key as user name) or Bearer authorization",
        )),
    }
}

/// The client address of a tracking request (see [`crate::client_ip`]).
pub fn client_ip(req: &Request, trusted_proxies: usize) -> Result<Option<IpAddr>, Problem> {
    crate::client_ip::client_ip(req.headers(), req.extensions(), trusted_proxies)
}

/// Where a write key may be presented besides the body's `writeKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyIn {
    /// `Authorization` (Basic or Bearer).
    Headers,
    /// Also the `writeKey` query parameter: for RudderStack's `sendBeacon`, which cannot
    /// set headers.
    HeadersOrQuery,
}

/// The `writeKey` query parameter.
pub(crate) fn query_key(uri: &axum::http::Uri) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Q {
        #[serde(rename = "writeKey")]
        write_key: Option<String>,
    }
    axum::extract::Query::<Q>::try_from_uri(uri)
        .ok()?
        .0
        .write_key
}

/// Verifies a write key presented by a request with these headers and applies the CORS
/// decision of its workspace.
pub(crate) async fn admit(
    state: &TrackingState,
    presented: &str,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<
    (
        tracklayer_core::keys::ApiKeyRecord,
        tracklayer_core::cors::Cors,
    ),
    Response,
> {
    let inner = &state.inner;
    let key = inner
        .ingest
        .authenticate_from(presented, ip)
        .await
        .map_err(|e| ingest_problem(&e, &inner.config).into_response())?;
    let cors = inner
        .ingest
        .check_origin(&key, crate::cors::origin(headers))
        .await
        .map_err(|e| ingest_problem(&e, &inner.config).into_response())?;
    Ok((key, cors))
}

pub(crate) async fn track(
    state: TrackingState,
    endpoint: Endpoint,
    req: Request,
    key_in: KeyIn,
) -> Response {
    let inner = &state.inner;
    let ip = match state.client(&req) {
        Ok(ip) => ip,
        Err(p) => return p.into_response(),
    };
    let meta = RequestMeta {
        ip,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        gpc: req
            .headers()
            .get("sec-gpc")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "1"),
        // Browsers send `Origin` on every cross-origin POST; server SDKs do not. (A
        // browser-facing write key will mark browser traffic too.)
        browser: req.headers().contains_key(header::ORIGIN),
    };
    let (parts, body) = req.into_parts();
    let from_header = match header_key(&parts.headers) {
        Ok(k) => k,
        Err(p) => return p.into_response(),
    };
    let limits = BodyLimits {
        max_inflate_ratio: inner.config.gzip_max_ratio,
        ..BodyLimits::new(MAX_REQUEST_BYTES)
    };
    let bytes = match read_body_with(&parts.headers, body, limits).await {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let parsed = match parse_body(endpoint, &bytes) {
        Ok(p) => p,
        // A single call has no batch to point into: the event is the whole body.
        Err(IngestError::EventTooLarge { .. }) if endpoint != Endpoint::Batch => {
            return Problem::too_large(format!("the event is larger than {MAX_EVENT_BYTES} bytes"))
                .field("/")
                .into_response();
        }
        Err(e) => return ingest_problem(&e, &inner.config).into_response(),
    };
    let from_query = (key_in == KeyIn::HeadersOrQuery)
        .then(|| query_key(&parts.uri))
        .flatten();
    let Some(presented) = from_header
        .or_else(|| parsed.write_key.clone())
        .or(from_query)
    else {
        return Problem::unauthorized(
            "no write key: send it as the Basic user name, as a Bearer token, or as writeKey",
        )
        .into_response();
    };
    let (key, cors) = match admit(&state, &presented, &parts.headers, meta.ip).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    crate::cors::allow(admitted(inner, &key, &parsed, &meta).await, &cors)
}

/// The answer to an authenticated request from an allowed origin (or none).
async fn admitted(
    inner: &Inner,
    key: &tracklayer_core::keys::ApiKeyRecord,
    parsed: &tracklayer_core::ingest::ParsedBody<'_>,
    meta: &RequestMeta,
) -> Response {
    if let Err(problem) = inner.limits.key(key, meta.ip, Instant::now()) {
        return problem.into_response();
    }
    match inner.ingest.ingest(key, parsed, meta).await {
        Ok(outcome) => {
            let mut body = json!({
                "success": true,
                "accepted": outcome.accepted,
                "duplicates": outcome.duplicates,
                "rejected": outcome.rejected,
                "invalid_identifiers": outcome.invalid_identifiers,
                "suppressed": outcome.suppressed,
                "bots": outcome.bots,
            });
            // Extra members only, and only when there is something to say.
            if !outcome.warnings.is_empty() {
                body["warnings"] = json!(outcome.warnings);
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => ingest_problem(&e, &inner.config).into_response(),
    }
}

/// The one mapping of ingest's errors to problem+json (a request's fault: 4xx naming the
/// field; storage and key-service failures: 503 to retry or an opaque 500).
pub fn ingest_problem(e: &IngestError, config: &TrackingConfig) -> Problem {
    match e {
        IngestError::NotJson(detail) => Problem::bad_request(
            "invalid-json",
            format!("the body is not valid JSON: {detail}"),
        ),
        IngestError::Invalid { field, detail } => {
            Problem::bad_request("invalid-request", detail.clone()).field(field.clone())
        }
        IngestError::TooManyKeys { field, keys, limit } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too-many-keys",
            "Unprocessable Content",
            format!(
                "{field} has {keys} keys; batch-level objects are read by every event and may have at most {limit}"
            ),
        )
        .field(field.clone()),
        IngestError::Busy => Problem::unavailable(
            "busy",
            "the server is busy preparing other requests; retry",
            1,
        ),
        IngestError::RequestTooLarge => Problem::too_large(e.to_string()),
        IngestError::EventTooLarge { index } => Problem::too_large(e.to_string())
            .field(format!("/batch/{index}"))
            .with("index", *index),
        IngestError::NothingValid { rejected } => {
            let first = rejected
                .first()
                .map(|r| format!(": event {} {} {}", r.index, r.field, r.detail))
                .unwrap_or_default();
            let mut p = Problem::bad_request(
                "no-valid-event",
                format!("no event in the request was valid{first}"),
            )
            .with("errors", serde_json::to_value(rejected).unwrap_or_default());
            if let Some(r) = rejected.first() {
                p = p.field(r.field.clone());
            }
            p
        }
        IngestError::Unauthorized(refusal) => Problem::unauthorized(refusal.detail()),
        IngestError::Blocked => Problem::blocked(),
        IngestError::OriginRefused { origin } => crate::cors::refused(origin),
        IngestError::Throttled { retry_after } => Problem::too_many_failures(*retry_after),
        IngestError::WrongRegion { region } => Problem::wrong_region(
            "this workspace's data",
            *region,
            config.endpoints.of(*region),
        ),
        IngestError::KeyUnavailable(_) => {
            tracing::warn!(error = %e, "workspace key unavailable: refusing to store");
            Problem::key_unavailable(
                "the workspace's encryption key is unavailable (disabled or revoked); nothing was stored",
            )
        }
        IngestError::Store(err) => Problem::from_store_error(err, "ingest failed"),
        IngestError::Key(err) => Problem::from_key_error(err, "ingest failed"),
    }
}
