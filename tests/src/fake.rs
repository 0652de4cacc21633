//! Fake Meta, GA4, TikTok, webhook, (in [`ads`]) the newer ad-platform servers and (in
//! [`firehose`]) Amazon Data Firehose on loopback. They check each connector's wire
//! format, record the event ids of the requests they accept, and inject faults on demand.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

mod ads;
mod firehose;
pub use ads::{
    ad_destinations, MICROSOFT_ADS_TOKEN, PINTEREST_TOKEN, REDDIT_TOKEN, SEGMENT_WRITE_KEY,
    SNAPCHAT_TOKEN,
};
pub use firehose::{FIREHOSE_KEY_ID, FIREHOSE_SECRET_KEY, FIREHOSE_STREAM};

/// What a fake answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Accept everything.
    Up,
    /// Fail this share of requests, at least (500, 503, 429 + Retry-After, 408, or too slow):
    /// of the first n requests that reach the fake, ⌈n × share⌉ fail, spread evenly, whatever
    /// the order of concurrent requests; which failure each gets is random.
    Flaky(f64),
    /// Answer every request with 503.
    Down,
}

#[derive(Debug, Default)]
struct Sink {
    last_body: Option<Value>,
    /// Every accepted body, for scans of what left.
    bodies: Vec<Value>,
    received: HashMap<String, u32>,
    requests: u64,
    failed: u64,
    /// Requests that reached the fault injection while the sink was flaky (the count its
    /// ⌈n × share⌉ failures are owed against).
    seen: u64,
    format_errors: Vec<String>,
}

/// Expected credentials and fault modes, per destination kind.
#[derive(Debug)]
pub struct Fakes {
    sinks: Mutex<HashMap<String, Sink>>,
    modes: Mutex<HashMap<String, Mode>>,
    seed: AtomicU64,
    pub meta_token: String,
    pub ga4_secret: String,
    pub tiktok_token: String,
    pub webhook_key: Vec<u8>,
    /// How long a "too slow" answer takes (above the egress timeout under test).
    slow: Mutex<Duration>,
    /// How long every accepted request takes to answer.
    latency: Mutex<Duration>,
}

impl Fakes {
    /// Records a format error at `sink` for each member a Meta Conversions API event must have
    /// and `e` lacks (the ad fakes check theirs with `check_batch`).
    fn require_event_members(&self, sink: &str, e: &Value) {
        let members = [
            "event_name",
            "event_time",
            "event_id",
            "action_source",
            "user_data",
        ];
        for member in members {
            if e.get(member).is_none() {
                self.format_error(sink, format!("event without {member}"));
            }
        }
    }

    pub fn new(
        meta_token: &str,
        ga4_secret: &str,
        tiktok_token: &str,
        webhook_secret: &str,
    ) -> Arc<Self> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(webhook_secret.trim_start_matches("whsec_"))
            .expect("whsec_ secret is base64");
        Arc::new(Self {
            sinks: Mutex::new(HashMap::new()),
            modes: Mutex::new(HashMap::new()),
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            meta_token: meta_token.into(),
            ga4_secret: ga4_secret.into(),
            tiktok_token: tiktok_token.into(),
            webhook_key: key,
            slow: Mutex::new(Duration::from_millis(1500)),
            latency: Mutex::new(Duration::ZERO),
        })
    }

    pub fn set_mode(&self, sink: &str, mode: Mode) {
        self.modes.lock().unwrap().insert(sink.into(), mode);
    }

    /// How long an answer meant to time out takes.
    pub fn set_slow(&self, slow: Duration) {
        *self.slow.lock().unwrap() = slow;
    }

    /// Every accepted request answers after `latency` (a realistic destination).
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    /// The last accepted body of `sink`.
    pub fn last_body(&self, sink: &str) -> Option<Value> {
        self.sinks
            .lock()
            .unwrap()
            .get(sink)
            .and_then(|s| s.last_body.clone())
    }

    /// Every accepted body of `sink`, in arrival order.
    pub fn bodies(&self, sink: &str) -> Vec<Value> {
        self.sinks
            .lock()
            .unwrap()
            .get(sink)
            .map(|s| s.bodies.clone())
            .unwrap_or_default()
    }

    fn mode(&self, sink: &str) -> Mode {
        *self.modes.lock().unwrap().get(sink).unwrap_or(&Mode::Up)
    }

    fn random(&self) -> f64 {
        // xorshift: deterministic, good enough for fault injection.
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Event ids accepted by `sink`, with how often each arrived.
    pub fn received(&self, sink: &str) -> HashMap<String, u32> {
        self.sinks
            .lock()
            .unwrap()
            .get(sink)
            .map(|s| s.received.clone())
            .unwrap_or_default()
    }

    /// (requests that reached a flaky fake's fault injection, those it failed on purpose).
    pub fn injected(&self, sink: &str) -> (u64, u64) {
        self.sinks
            .lock()
            .unwrap()
            .get(sink)
            .map(|s| (s.seen, s.failed))
            .unwrap_or_default()
    }

    /// (requests answered 2xx, requests failed on purpose).
    pub fn requests(&self, sink: &str) -> (u64, u64) {
        self.sinks
            .lock()
            .unwrap()
            .get(sink)
            .map(|s| (s.requests, s.failed))
            .unwrap_or_default()
    }

    pub fn format_errors(&self) -> Vec<String> {
        self.sinks
            .lock()
            .unwrap()
            .values()
            .flat_map(|s| s.format_errors.clone())
            .collect()
    }

    fn format_error(&self, sink: &str, e: String) {
        self.sinks
            .lock()
            .unwrap()
            .entry(sink.into())
            .or_default()
            .format_errors
            .push(format!("{sink}: {e}"));
    }

    /// Decides whether this request fails; a failure is answered before anything is recorded.
    async fn fault(&self, sink: &str) -> Option<Response> {
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let fail = match self.mode(sink) {
            Mode::Up => None,
            Mode::Down => Some(0.0),
            Mode::Flaky(rate) => {
                let which = self.random();
                let mut sinks = self.sinks.lock().unwrap();
                let s = sinks.entry(sink.into()).or_default();
                let k = s.seen as f64;
                s.seen += 1;
                // The (k+1)-th request fails when it brings the failures owed, ⌈(k+1) × rate⌉,
                // above those of the first k.
                (((k + 1.0) * rate).ceil() > (k * rate).ceil()).then_some(which)
            }
        };
        let which = fail?;
        self.sinks
            .lock()
            .unwrap()
            .entry(sink.into())
            .or_default()
            .failed += 1;
        if self.mode(sink) == Mode::Down {
            return Some((StatusCode::SERVICE_UNAVAILABLE, "down").into_response());
        }
        Some(match (which * 5.0) as u32 {
            0 => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
            1 => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
            2 => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response(),
            3 => (StatusCode::REQUEST_TIMEOUT, "timeout").into_response(),
            _ => {
                let slow = *self.slow.lock().unwrap();
                tokio::time::sleep(slow).await;
                (StatusCode::OK, "too late").into_response()
            }
        })
    }

    fn accept(&self, sink: &str, body: &Value, ids: impl IntoIterator<Item = String>) {
        let mut sinks = self.sinks.lock().unwrap();
        let s = sinks.entry(sink.into()).or_default();
        s.requests += 1;
        s.last_body = Some(body.clone());
        s.bodies.push(body.clone());
        for id in ids {
            *s.received.entry(id).or_default() += 1;
        }
    }

    /// [`Fakes::accept`] of a request carrying `events`, each received under the string at the
    /// JSON `pointer` in it (an event without one is not counted).
    fn accept_events(&self, sink: &str, body: &Value, events: &[Value], pointer: &str) {
        let ids = events
            .iter()
            .filter_map(|e| e.pointer(pointer)?.as_str().map(str::to_owned));
        self.accept(sink, body, ids);
    }

    /// The JSON body of a request to the fake `sink`, once admitted: an injected fault answers
    /// first; then a request whose credentials the fake `refused` (why, and the vendor's answer)
    /// is recorded as a format error and answered; then a body that is not JSON gets a 400.
    async fn admit(
        &self,
        sink: &str,
        refused: Option<(&str, Response)>,
        body: &Bytes,
    ) -> Result<Value, Response> {
        if let Some(r) = self.fault(sink).await {
            return Err(r);
        }
        if let Some((why, answer)) = refused {
            self.format_error(sink, why.into());
            return Err(answer);
        }
        json_body(body).ok_or_else(|| StatusCode::BAD_REQUEST.into_response())
    }
}

/// Serves every fake on one loopback port; returns its base URL.
pub async fn serve(fakes: Arc<Fakes>) -> String {
    let app = Router::new()
        .route("/{version}/{pixel}/events", post(meta))
        .route("/mp/collect", post(ga4))
        .route("/debug/mp/collect", post(ga4))
        .route("/open_api/v1.3/event/track/", post(tiktok))
        .route("/hook/{name}", post(webhook))
        .merge(ads::routes())
        .merge(firehose::routes())
        .with_state(fakes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn json_body(body: &Bytes) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

async fn meta(
    State(f): State<Arc<Fakes>>,
    Path((version, _pixel)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let authorized = q.get("access_token") == Some(&f.meta_token) && version.starts_with('v');
    let refused = (!authorized).then(|| {
        let error = json!({"error": {"message": "bad token", "code": 190}});
        let answer = (StatusCode::BAD_REQUEST, Json(error)).into_response();
        ("missing access_token or version", answer)
    });
    let v = match f.admit("meta_capi", refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let data = v["data"].as_array().cloned().unwrap_or_default();
    for e in &data {
        f.require_event_members("meta_capi", e);
    }
    let n = data.len();
    f.accept_events("meta_capi", &v, &data, "/event_id");
    Json(json!({"events_received": n, "fbtrace_id": "AbC"})).into_response()
}

async fn ga4(
    State(f): State<Arc<Fakes>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let authorized = q.get("api_secret") == Some(&f.ga4_secret) && q.contains_key("measurement_id");
    let refused = (!authorized).then(|| {
        let answer = StatusCode::FORBIDDEN.into_response();
        ("missing api_secret or measurement_id", answer)
    });
    let v = match f.admit("ga4", refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if v["client_id"].as_str().is_none() {
        f.format_error("ga4", "request without client_id".into());
    }
    let events = v["events"].as_array().cloned().unwrap_or_default();
    if events.len() > 25 {
        f.format_error("ga4", format!("{} events in one request", events.len()));
    }
    f.accept_events("ga4", &v, &events, "/params/transaction_id");
    StatusCode::NO_CONTENT.into_response()
}

async fn tiktok(State(f): State<Arc<Fakes>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers.get("access-token").and_then(|v| v.to_str().ok());
    let refused = (token != Some(f.tiktok_token.as_str())).then(|| {
        let answer = Json(json!({"code": 40105, "message": "invalid access token"}));
        ("missing Access-Token", answer.into_response())
    });
    let v = match f.admit("tiktok", refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if v["event_source"] != "web" || v["event_source_id"].as_str().is_none() {
        f.format_error("tiktok", "missing event_source/event_source_id".into());
    }
    let data = v["data"].as_array().cloned().unwrap_or_default();
    f.accept_events("tiktok", &v, &data, "/event_id");
    Json(json!({"code": 0, "message": "OK", "request_id": "r1"})).into_response()
}

async fn webhook(
    State(f): State<Arc<Fakes>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sink = format!("webhook:{name}");
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&f.webhook_key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let signed = !id.is_empty() && sig.split(' ').any(|s| s == expected);
    let refused = (!signed).then(|| {
        let answer = StatusCode::UNAUTHORIZED.into_response();
        ("bad Standard Webhooks signature", answer)
    });
    let v = match f.admit(&sink, refused, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let events = v["events"].as_array().cloned().unwrap_or_default();
    f.accept_events(&sink, &v, &events, "/messageId");
    StatusCode::NO_CONTENT.into_response()
}
