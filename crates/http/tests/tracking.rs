//! The tracking API through the real router, backed by the embedded adapters (in-memory
//! SQLite, durable SQLite queue, file keyring on a temporary directory).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tower::ServiceExt;
use tracklayer_core::clock::{Clock, FixedClock, Ids, SystemIds};
use tracklayer_core::control_plane::Control;
use tracklayer_core::crypto::WorkspaceKeys;
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{EventId, MessageId, QueueBody, StoredEvent};
use tracklayer_core::identity::sha256_hex;
use tracklayer_core::ingest::{
    IngestConfig, IngestPorts, IngestService, RecordThenEnqueue, MAX_REQUEST_BYTES,
};
use tracklayer_core::keys::{ApiKeyRecord, KeyKind, Role};
use tracklayer_core::ports::{
    ControlStore, EventInspection, EventWriter, IngestStore, Keyring, NewEvent, Page, QueueConsumer,
};
use tracklayer_core::services::ReadPorts;
use tracklayer_core::testkit::track_call;
use tracklayer_core::workspace::{Cidr, KeyRef, Region, Workspace, WorkspaceId};
use tracklayer_http::{tracking_router, TrackingConfig, TrackingState};
use tracklayer_local::{
    FileKeyring, SqliteControlStore, SqliteDeliveryQueue, SqliteEventStore, SqliteIngestStore,
};

const PROBLEM_JSON: &str = "application/problem+json";
const ENDPOINTS: &str = include_str!("fixtures/endpoints.json");

// ---------------------------------------------------------------------------------------------
// Harness

/// How a test's event store misbehaves.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Transient,
    Permanent,
}

#[path = "support/stores.rs"]
mod stores;
use stores::{Stores, T0};

/// An internal cause that must never reach a response body.
const CAUSE: &str = "disk I/O error on /var/lib/tracklayer/secret-volume";
/// What a failing store's error says, which no answer may repeat.
const STORE_INTERNALS: &[&str] = &[CAUSE, "secret-volume", "events.record", "disk I/O"];

/// The real event writer, except that `record` fails (ingest holds the writer role only).
struct FailingEvents {
    inner: SqliteEventStore,
    failure: Failure,
}

#[async_trait]
impl EventWriter for FailingEvents {
    async fn record(
        &self,
        _events: &[NewEvent],
        _now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        let cause = std::io::Error::other(CAUSE);
        Err(match self.failure {
            Failure::Transient => StoreError::transient("events.record", cause),
            Failure::Permanent => StoreError::permanent("events.record", cause),
        })
    }

    async fn forget(
        &self,
        ws: &WorkspaceId,
        events: &[(EventId, MessageId)],
    ) -> Result<(), StoreError> {
        self.inner.forget(ws, events).await
    }
}

struct Options {
    region: Region,
    rate_limit_per_key: u32,
    destinations: Vec<Value>,
    failure: Option<Failure>,
    /// The ingest service's id generator (prepare calls it for every event).
    ingest_ids: Option<Arc<dyn Ids>>,
    /// Preparation slots and queue; every request is prepared off the async workers.
    prepare: Option<(usize, usize)>,
    /// Requests in flight between preparation and storage, and how many may wait.
    in_flight: Option<(usize, usize)>,
    trusted_proxies: usize,
    rate_limit_per_ip: u32,
    gzip_max_ratio: usize,
    ip_blocklist: Vec<&'static str>,
    allowed_origins: Vec<&'static str>,
    bot_filter: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            region: Region::Eu,
            rate_limit_per_key: 1_000,
            destinations: vec![webhook()],
            failure: None,
            ingest_ids: None,
            prepare: None,
            in_flight: None,
            trusted_proxies: 0,
            rate_limit_per_ip: TrackingConfig::default().rate_limit_per_ip,
            gzip_max_ratio: TrackingConfig::default().gzip_max_ratio,
            ip_blocklist: Vec::new(),
            allowed_origins: Vec::new(),
            bot_filter: true,
        }
    }
}

fn webhook() -> Value {
    json!({
        "name": "Warehouse",
        "kind": "webhook",
        "config": {"url": "https://hooks.example.com/tracklayer"},
        "secrets": {"signing_secret": format!("whsec_{}", b64("test signing secret"))}
    })
}

fn meta() -> Value {
    json!({
        "name": "Meta",
        "kind": "meta_capi",
        "config": {"pixel_id": "1234567890", "api_version": "v21.0"},
        "secrets": {"access_token": "EAAB-test-token"}
    })
}

/// One workspace with one write key, served by the real router.
struct App {
    router: Router,
    control: Arc<SqliteControlStore>,
    events: Arc<SqliteEventStore>,
    queue: Arc<SqliteDeliveryQueue>,
    stats: Arc<tracklayer_local::SqliteStats>,
    keyring: Arc<FileKeyring>,
    clock: Arc<FixedClock>,
    ids: Arc<SystemIds>,
    workspace: Workspace,
    key: ApiKeyRecord,
    write_key: String,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start() -> Self {
        Self::with(Options::default()).await
    }

    async fn with(options: Options) -> Self {
        let stores = Stores::in_memory();
        let admin = stores.control_plane();
        let mut workspace = admin
            .create_workspace(options.region, "HTTP tests")
            .await
            .unwrap();
        if !options.ip_blocklist.is_empty()
            || !options.allowed_origins.is_empty()
            || !options.bot_filter
        {
            workspace.security.bot_filter = options.bot_filter;
            workspace.security.ip_blocklist = options
                .ip_blocklist
                .iter()
                .map(|c| Cidr::parse(c).unwrap())
                .collect();
            workspace.security.allowed_origins = options
                .allowed_origins
                .iter()
                .map(|o| tracklayer_core::cors::AllowedOrigin::parse(o).unwrap())
                .collect();
            stores.control.update_workspace(&workspace).await.unwrap();
        }
        let issued = admin
            .issue_key(
                &workspace,
                KeyKind::Ingest,
                None,
                None,
                "test write key",
                90,
            )
            .await
            .unwrap();
        for spec in options.destinations {
            admin
                .add_destination(&workspace, serde_json::from_value(spec).unwrap())
                .await
                .unwrap();
        }

        let stats = Arc::new(tracklayer_local::SqliteStats::new(stores.db.clone()));
        let store: Arc<dyn IngestStore> = match options.failure {
            None => Arc::new(SqliteIngestStore::new(
                stores.db.clone(),
                stores.clock.clone(),
            )),
            Some(failure) => Arc::new(RecordThenEnqueue::new(
                Arc::new(FailingEvents {
                    inner: SqliteEventStore::new(stores.db.clone()),
                    failure,
                }),
                stores.queue.clone(),
            )),
        };
        let mut ingest_config = IngestConfig::new(options.region);
        if let Some((slots, queue)) = options.prepare {
            ingest_config.prepare_slots = slots;
            ingest_config.prepare_queue = queue;
            ingest_config.prepare_inline_below = 0;
        }
        if let Some((slots, queue)) = options.in_flight {
            ingest_config.max_in_flight = slots;
            ingest_config.in_flight_queue = queue;
        }
        let ingest = Arc::new(
            IngestService::new(
                IngestPorts {
                    read: ReadPorts {
                        control: stores.control.clone(),
                        keyring: stores.keyring.clone(),
                        clock: stores.clock.clone(),
                        ids: options.ingest_ids.unwrap_or_else(|| stores.ids.clone()),
                    },
                    store,
                    suppressions: Arc::new(tracklayer_local::SqliteDsrStore::new(
                        stores.db.clone(),
                    )),
                    stats: stats.clone(),
                },
                ingest_config,
            )
            .with_requirements(tracklayer_connectors::requirements::unmet),
        );
        let config = TrackingConfig {
            rate_limit_per_key: options.rate_limit_per_key,
            rate_limit_per_ip: options.rate_limit_per_ip,
            gzip_max_ratio: options.gzip_max_ratio,
            trusted_proxies: options.trusted_proxies,
            ..TrackingConfig::default()
        };
        Self {
            router: tracking_router(TrackingState::new(ingest, config)),
            control: stores.control.clone(),
            events: stores.events.clone(),
            queue: stores.queue.clone(),
            stats,
            keyring: stores.keyring.clone(),
            clock: stores.clock.clone(),
            ids: stores.ids.clone(),
            workspace,
            key: issued.record,
            write_key: issued.secret.expose_secret().to_owned(),
            _dir: stores.dir,
        }
    }

    fn admin(&self) -> Control<'_> {
        Control {
            store: self.control.as_ref(),
            keyring: self.keyring.as_ref(),
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Reply {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// POSTs JSON with the write key as the Basic user name.
    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_with_key(path, &self.write_key, body).await
    }

    /// POSTs one `track` call with this message id to `/v1/track` with the write key.
    async fn track(&self, message_id: &str) -> Reply {
        self.post("/v1/track", &track_call(message_id)).await
    }

    /// POSTs one `track` call with the write key, from behind proxies that wrote this
    /// `X-Forwarded-For`.
    async fn track_forwarded_for(&self, forwarded: &str) -> Reply {
        let request = post("/v1/track")
            .header(header::AUTHORIZATION, basic(&self.write_key))
            .header("x-forwarded-for", forwarded)
            .body(Body::from(track_call("m1").to_string()))
            .unwrap();
        self.send(request).await
    }

    /// Posts `body` to `path`, authenticated by `key` as its Basic user name.
    async fn post_with_key(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.post_authorized(path, Some(&basic(key)), body).await
    }

    /// Posts `body` to `path` with this `Authorization` header, or without one.
    async fn post_authorized(
        &self,
        path: &str,
        authorization: Option<&str>,
        body: &Value,
    ) -> Reply {
        let mut request = post(path);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        self.send(request.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn depth(&self, kind: DestinationKind) -> u64 {
        self.queue.depth(kind).await.unwrap().visible
    }

    /// Every queued message of a kind, parsed, its items by reference rebuilt from their
    /// stored events as delivery does.
    async fn drain(&self, kind: DestinationKind) -> Vec<QueueBody> {
        use tracklayer_core::event::Body;
        use tracklayer_core::ports::EventReader;
        let received = self
            .queue
            .receive(kind, 100, Duration::from_secs(60))
            .await
            .unwrap();
        let mut out = Vec::new();
        for r in &received {
            out.push(match r.decode_stored().expect("a queue body") {
                Body::Value(body) => body,
                Body::Reference(refs) => {
                    let ids = refs.event_ids();
                    let now = self.clock.now();
                    let found = self.events.events(&refs.workspace_id, &ids, now).await;
                    let by_id = found.unwrap().into_iter().map(|e| (e.event_id, e));
                    let records = self
                        .events
                        .operational_records(&refs.workspace_id, &ids, now);
                    let records = records.await.unwrap().into_iter();
                    let records = records.map(|o| (o.event_id, o.sealed)).collect();
                    let shared = match &r.shared {
                        Some(b) => tracklayer_core::event::decode_shared(b).unwrap(),
                        None => Default::default(),
                    };
                    let hydrated = refs.hydrate(&by_id.collect(), &records, &shared);
                    assert_eq!(hydrated.gone, [], "every queued item's event is stored");
                    hydrated.body
                }
            });
        }
        out
    }

    async fn keys(&self) -> WorkspaceKeys {
        let ws = &self.workspace;
        let dk = self
            .keyring
            .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
            .await
            .unwrap();
        WorkspaceKeys::new(&dk)
    }

    /// Stored events of an anonymous id.
    async fn stored_for_anonymous_id(&self, anonymous_id: &str) -> Vec<StoredEvent> {
        let subject = self
            .keys()
            .await
            .subject_index("anonymous_id", anonymous_id);
        self.events
            .events_by_subject(
                &self.workspace.id,
                &subject,
                Page::first(100),
                self.clock.now(),
            )
            .await
            .unwrap()
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with this status and a `type` ending in `slug`.
    fn assert_problem(&self, status: StatusCode, slug: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type(), PROBLEM_JSON);
        let body = self.json();
        let kind = body["type"].as_str().expect("a type");
        assert!(kind.ends_with(&format!("/{slug}")), "type {kind}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "a detail: {body}"
        );
        assert_eq!(body["status"], status.as_u16());
        body
    }

    /// Asserts a 401 problem whose detail names `reason`.
    fn assert_unauthorized_because(&self, reason: &str) -> Value {
        let body = self.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{body}");
        body
    }

    /// Asserts the body says none of `internals`.
    fn assert_hides(&self, internals: &[&str]) {
        for internal in internals {
            assert!(!self.text.contains(internal), "{internal}: {}", self.text);
        }
    }

    fn assert_accepted(&self, accepted: u64) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        let body = self.json();
        assert_eq!(body["success"], true);
        assert_eq!(body["accepted"], accepted, "{body}");
        body
    }
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
}

fn b64(data: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn basic(key: &str) -> String {
    format!("Basic {}", b64(&format!("{key}:")))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A well-formed key that no workspace issued.
fn foreign_key(region: &str) -> String {
    format!("tl_ingest_{region}_{}_{}", "q".repeat(16), "Z".repeat(32))
}

// ---------------------------------------------------------------------------------------------
// Endpoints

#[tokio::test]
async fn accepts_a_valid_event_on_each_of_the_seven_endpoints() {
    let app = App::start().await;
    let bodies: serde_json::Map<String, Value> = serde_json::from_str(ENDPOINTS).unwrap();
    assert_eq!(bodies.len(), 7);

    for (path, body) in &bodies {
        let reply = app.post(path, body).await;
        let body = reply.assert_accepted(1);
        assert_eq!(body["rejected"], json!([]), "{path}");
    }

    assert_eq!(app.depth(DestinationKind::Webhook).await, 7);
}

#[tokio::test]
async fn healthz_answers_200() {
    let app = App::start().await;

    let reply = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["status"], "ok");
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[tokio::test]
async fn every_tracking_answer_is_nosniff() {
    let app = App::start().await;

    let accepted = app.track("m1").await;
    let refused = app
        .send(post("/v1/track").body(Body::from("{}")).unwrap())
        .await;

    for reply in [accepted, refused] {
        assert_eq!(
            reply.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{}",
            reply.status
        );
    }
}

#[tokio::test]
async fn a_method_a_tracking_route_does_not_take_is_a_405_problem_with_allow() {
    let app = App::start().await;

    let reply = app
        .send(
            Request::builder()
                .method(Method::GET)
                .uri("/v1/batch")
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(reply.headers[header::ALLOW], "POST,OPTIONS");
    assert_eq!(
        reply.json()["type"],
        "https://tracklayer.io/problems/method-not-allowed"
    );
}

#[tokio::test]
async fn accepts_the_write_key_as_the_basic_user_name_with_an_empty_password() {
    let app = App::start().await;

    let reply = app.track("m1").await;

    reply.assert_accepted(1);
}

#[tokio::test]
async fn accepts_the_write_key_as_a_bearer_token() {
    let app = App::start().await;

    let reply = app
        .post_authorized(
            "/v1/track",
            Some(&format!("Bearer {}", app.write_key)),
            &track_call("m1"),
        )
        .await;

    reply.assert_accepted(1);
}

#[tokio::test]
async fn accepts_the_write_key_in_the_body() {
    let app = App::start().await;
    let mut single = track_call("m1");
    single["writeKey"] = json!(app.write_key);
    let batch = json!({"writeKey": app.write_key, "batch": [track_call("m2")]});

    for (path, body) in [("/v1/track", single), ("/v1/batch", batch)] {
        let reply = app.post_authorized(path, None, &body).await;
        reply.assert_accepted(1);
    }
}

#[tokio::test]
async fn refuses_a_request_without_a_write_key_with_401() {
    let app = App::start().await;

    let reply = app
        .post_authorized("/v1/track", None, &track_call("m1"))
        .await;

    reply.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn refuses_an_unknown_key_with_401_problem_json() {
    let app = App::start().await;
    // Change the last character of the secret (to one it is not already).
    let (head, last) = app.write_key.split_at(app.write_key.len() - 1);
    let wrong_secret = format!("{head}{}", if last == "X" { "Y" } else { "X" });

    for key in [foreign_key("eu"), "not-a-key".to_owned(), wrong_secret] {
        let reply = app
            .post_with_key("/v1/track", &key, &track_call("m1"))
            .await;
        reply.assert_unauthorized_because("not known");
    }
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
}

#[tokio::test]
async fn refuses_a_revoked_key_with_401() {
    let app = App::start().await;
    app.admin().revoke_key(&app.key).await.unwrap();

    let reply = app.track("m1").await;

    reply.assert_unauthorized_because("revoked");
}

#[tokio::test]
async fn a_key_revoked_after_use_by_another_process_stops_working_within_5_seconds() {
    let app = App::start().await;
    app.track("m1").await.assert_accepted(1);
    app.admin().revoke_key(&app.key).await.unwrap();
    app.clock.advance(time::Duration::seconds(5));

    let reply = app.track("m2").await;

    reply.assert_unauthorized_because("revoked");
}

#[tokio::test]
async fn refuses_an_expired_key_with_401() {
    let app = App::start().await;
    app.clock.advance(time::Duration::days(91));

    let reply = app.track("m1").await;

    reply.assert_unauthorized_because("expired");
}

#[tokio::test]
async fn refuses_an_admin_token_as_a_write_key() {
    let app = App::start().await;
    let pat = app
        .admin()
        .issue_key(
            &app.workspace,
            KeyKind::Pat,
            Some(Role::Admin),
            None,
            "pat",
            90,
        )
        .await
        .unwrap();

    let reply = app
        .post_with_key("/v1/track", pat.secret.expose_secret(), &track_call("m1"))
        .await;

    reply.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn refuses_a_key_whose_kind_label_was_changed_whatever_the_pair() {
    let app = App::start().await;
    let mut keys = vec![("ingest", app.write_key.clone())];
    for (kind, role) in [
        (KeyKind::Pat, Some(Role::Admin)),
        (KeyKind::Svc, Some(Role::Viewer)),
    ] {
        let issued = app
            .admin()
            .issue_key(&app.workspace, kind, role, None, "token", 90)
            .await
            .unwrap();
        keys.push((kind.as_str(), issued.secret.expose_secret().to_owned()));
    }
    for (from, key) in &keys {
        for to in ["ingest", "pat", "svc"] {
            if to == *from {
                continue;
            }
            // bcrypt covers only the secret: the relabelled key's secret is genuine.
            let (_, rest) = key.strip_prefix("tl_").unwrap().split_once('_').unwrap();
            let forged = format!("tl_{to}_{rest}");
            let reply = app
                .post_with_key("/v1/track", &forged, &track_call("m1"))
                .await;
            reply.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
}

#[tokio::test]
async fn answers_421_with_the_right_endpoint_for_a_key_of_the_other_region() {
    let app = App::start().await;

    let reply = app
        .post_with_key("/v1/track", &foreign_key("us"), &track_call("m1"))
        .await;

    let body = reply.assert_problem(StatusCode::MISDIRECTED_REQUEST, "wrong-region");
    assert_eq!(body["endpoint"], TrackingConfig::default().endpoints.us);
    assert_eq!(body["region"], "us");
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Bodies and limits

#[tokio::test]
async fn accepts_gzipped_json_labelled_as_a_form_like_the_rudderstack_node_sdk_sends() {
    let app = App::start().await;
    let body = json!({"batch": [track_call("m1"), track_call("m2")]});

    let reply = app
        .send(
            post("/v1/batch")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::CONTENT_ENCODING, "gzip")
                .header(header::AUTHORIZATION, basic(&app.write_key))
                .body(Body::from(gzip(body.to_string().as_bytes())))
                .unwrap(),
        )
        .await;

    reply.assert_accepted(2);
}

#[tokio::test]
async fn refuses_a_gzip_bomb_with_413() {
    let app = App::start().await;
    let mut inflated = br#"{"batch":[{"type":"track","event":"e","userId":"u"}],"pad":""#.to_vec();
    inflated.extend(std::iter::repeat_n(b'a', 20 * 1024 * 1024));
    inflated.extend_from_slice(br#""}"#);
    let bomb = gzip(&inflated);
    assert!(bomb.len() < 100 * 1024, "{} compressed bytes", bomb.len());

    let reply = app
        .send(
            post("/v1/batch")
                .header(header::CONTENT_ENCODING, "gzip")
                .header(header::AUTHORIZATION, basic(&app.write_key))
                .body(Body::from(bomb))
                .unwrap(),
        )
        .await;

    reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
}

#[tokio::test]
async fn refuses_a_body_over_500_kb_with_413() {
    let app = App::start().await;
    let events: Vec<Value> = (0..30)
        .map(|i| {
            let mut e = track_call(&format!("m{i}"));
            e["properties"]["note"] = json!("x".repeat(20 * 1024));
            e
        })
        .collect();
    let body = json!({ "batch": events });
    assert!(body.to_string().len() > 500 * 1024);

    let reply = app.post("/v1/batch", &body).await;

    reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
}

#[tokio::test]
async fn refuses_a_single_event_over_32_kb_with_413() {
    let app = App::start().await;
    let mut big = track_call("m1");
    big["properties"]["note"] = json!("x".repeat(33 * 1024));

    let reply = app.post("/v1/track", &big).await;

    let body = reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert_eq!(body["field"], "/");
}

#[tokio::test]
async fn refuses_a_batch_of_2501_events_with_400_naming_the_batch() {
    let app = App::start().await;
    let events: Vec<Value> = (0..2_501)
        .map(|i| json!({"type": "track", "event": "e", "userId": "u", "messageId": i.to_string()}))
        .collect();

    let reply = app.post("/v1/batch", &json!({ "batch": events })).await;

    let body = reply.assert_problem(StatusCode::BAD_REQUEST, "invalid-request");
    assert_eq!(body["field"], "/batch");
    assert!(body["detail"].as_str().unwrap().contains("2500"), "{body}");
}

#[tokio::test]
async fn accepts_a_partial_batch_with_200_listing_each_rejected_event() {
    let app = App::start().await;
    let mut no_event = track_call("m-bad");
    no_event.as_object_mut().unwrap().remove("event");

    let reply = app
        .post(
            "/v1/batch",
            &json!({"batch": [track_call("m-ok-1"), no_event, track_call("m-ok-2")]}),
        )
        .await;

    let body = reply.assert_accepted(2);
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["messageId"], "m-bad");
    assert_eq!(rejected[0]["field"], "/event");
    assert!(rejected[0]["detail"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    let queued = app.drain(DestinationKind::Webhook).await;
    let ids: Vec<_> = queued
        .iter()
        .flat_map(|m| &m.items)
        .map(|i| i.message_id.as_str())
        .collect();
    assert_eq!(ids, ["m-ok-1", "m-ok-2"]);
}

#[tokio::test]
async fn refuses_a_request_with_no_valid_event_with_400_listing_the_errors() {
    let app = App::start().await;
    let mut anonymous = track_call("m-1");
    anonymous.as_object_mut().unwrap().remove("anonymousId");
    let mut untyped = track_call("m-2");
    untyped["type"] = json!("purchase");

    let reply = app
        .post("/v1/batch", &json!({"batch": [anonymous, untyped]}))
        .await;

    let body = reply.assert_problem(StatusCode::BAD_REQUEST, "no-valid-event");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["index"], 0);
    assert_eq!(errors[0]["messageId"], "m-1");
    assert_eq!(errors[0]["field"], "/userId");
    assert_eq!(errors[1]["index"], 1);
    assert_eq!(errors[1]["field"], "/type");
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
}

#[tokio::test]
async fn refuses_a_body_that_is_not_json_with_400() {
    let app = App::start().await;

    for path in ["/v1/batch", "/v1/track"] {
        let reply = app
            .send(
                post(path)
                    .header(header::AUTHORIZATION, basic(&app.write_key))
                    .body(Body::from("event=Order+Completed&userId=u"))
                    .unwrap(),
            )
            .await;
        reply.assert_problem(StatusCode::BAD_REQUEST, "invalid-json");
    }
}

// ---------------------------------------------------------------------------------------------
// Dedup and rate limit

#[tokio::test]
async fn the_same_message_id_twice_is_answered_200_both_times_but_stored_and_queued_once() {
    let app = App::start().await;

    let first = app.track("m-dup").await;
    let second = app.track("m-dup").await;

    assert_eq!(first.assert_accepted(1)["duplicates"], 0);
    assert_eq!(second.assert_accepted(1)["duplicates"], 1);
    assert_eq!(app.stored_for_anonymous_id("anon-1").await.len(), 1);
    let queued = app.drain(DestinationKind::Webhook).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].items.len(), 1);
    assert_eq!(queued[0].items[0].message_id.as_str(), "m-dup");
}

#[tokio::test]
async fn a_message_id_is_new_again_after_24_hours() {
    let app = App::start().await;
    app.track("m-again").await.assert_accepted(1);
    app.clock
        .advance(time::Duration::hours(24) + time::Duration::seconds(1));

    let reply = app.track("m-again").await;

    assert_eq!(reply.assert_accepted(1)["duplicates"], 0);
    assert_eq!(app.depth(DestinationKind::Webhook).await, 2);
}

#[tokio::test]
async fn a_message_id_repeated_within_one_batch_counts_as_an_accepted_duplicate() {
    let app = App::start().await;

    let reply = app
        .post(
            "/v1/batch",
            &json!({"batch": [track_call("m-dup"), track_call("m-dup")]}),
        )
        .await;

    let body = reply.assert_accepted(2);
    assert_eq!(body["duplicates"], 1);
    assert_eq!(app.stored_for_anonymous_id("anon-1").await.len(), 1);
}

#[tokio::test]
async fn answers_429_with_retry_after_over_the_rate_limit() {
    let app = App::with(Options {
        rate_limit_per_key: 2,
        ..Options::default()
    })
    .await;

    let first = app.track("m1").await;
    let second = app.track("m2").await;
    let third = app.track("m3").await;

    first.assert_accepted(1);
    second.assert_accepted(1);
    third.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    let retry_after: u64 = third.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
}

// ---------------------------------------------------------------------------------------------
// Privacy through the API

#[tokio::test]
async fn a_gpc_header_keeps_a_us_event_from_advertising_destinations() {
    let app = App::with(Options {
        region: Region::Us,
        destinations: vec![meta(), webhook()],
        ..Options::default()
    })
    .await;

    let reply = app
        .send(
            post("/v1/track")
                .header(header::AUTHORIZATION, basic(&app.write_key))
                .header("Sec-GPC", "1")
                .body(Body::from(track_call("m1").to_string()))
                .unwrap(),
        )
        .await;
    app.track("m2").await.assert_accepted(1);

    reply.assert_accepted(1);
    let meta_ids: Vec<_> = app
        .drain(DestinationKind::MetaCapi)
        .await
        .iter()
        .flat_map(|m| m.items.clone())
        .map(|i| i.message_id.to_string())
        .collect();
    assert_eq!(meta_ids, ["m2"]);
    assert_eq!(app.depth(DestinationKind::Webhook).await, 2);
}

/// Each queued item of a kind: its message id, event id and sealed fields, opened.
async fn queued_sealed(
    app: &App,
    kind: DestinationKind,
) -> Vec<(String, EventId, tracklayer_core::event::SealedFields)> {
    let keys = app.keys().await;
    let mut out = Vec::new();
    for message in app.drain(kind).await {
        for item in &message.items {
            // As delivery opens it: the item's sealed fields (by reference, its event's shared
            // ones), and by reference the IP and user agent of its event's operational record.
            assert!(
                item.sealed.is_some() || item.shared.is_some(),
                "a sealed part"
            );
            let sealed = tracklayer_core::deliver::open_sealed(&keys, &message, item).unwrap();
            out.push((item.message_id.to_string(), item.event_id, sealed));
        }
    }
    out
}

/// The user agent sealed in each queued webhook item.
async fn queued_user_agents(app: &App) -> Vec<Option<String>> {
    queued_sealed(app, DestinationKind::Webhook)
        .await
        .into_iter()
        .map(|(_, _, sealed)| sealed.user_agent)
        .collect()
}

#[tokio::test]
async fn a_server_sdks_user_agent_is_not_sent_as_the_visitors_but_a_browsers_is() {
    let app = App::with(Options {
        destinations: vec![webhook()],
        allowed_origins: vec!["https://shop.example"],
        ..Options::default()
    })
    .await;
    let request = |id: &str, origin: Option<&str>| {
        let mut r = post("/v1/track")
            .header(header::AUTHORIZATION, basic(&app.write_key))
            // A browser's user agent (a crawler's would be dropped by the bot filter).
            .header(header::USER_AGENT, CHROME);
        if let Some(origin) = origin {
            r = r.header(header::ORIGIN, origin);
        }
        r.body(Body::from(track_call(id).to_string())).unwrap()
    };

    app.send(request("server", None)).await.assert_accepted(1);
    app.send(request("browser", Some("https://shop.example")))
        .await
        .assert_accepted(1);

    assert_eq!(
        queued_user_agents(&app).await,
        [None, Some(CHROME.to_owned())]
    );
}

#[tokio::test]
async fn queued_messages_carry_hashes_not_raw_identifiers() {
    let app = App::with(Options {
        region: Region::Us,
        destinations: vec![meta(), webhook()],
        ..Options::default()
    })
    .await;
    let mut event = track_call("m1");
    event["userId"] = json!("user-5531-privacy");
    event["context"] = json!({
        "ip": "198.51.100.23",
        "traits": {"email": "Quentin.Probe@Example.com", "phone": "+1 (800) 555-0199"}
    });
    event["properties"]["email"] = json!("quentin.probe@example.com");

    app.post("/v1/track", &event).await.assert_accepted(1);

    let queued = app.drain(DestinationKind::MetaCapi).await;
    assert_eq!(queued.len(), 1);
    let text = serde_json::to_string(&queued).unwrap();
    for raw in [
        "quentin",
        "Quentin",
        "555-0199",
        "5550199",
        "198.51.100.23",
        "user-5531",
    ] {
        assert!(!text.contains(raw), "{raw} queued: {text}");
    }
    assert!(text.contains(&sha256_hex("quentin.probe@example.com")));
}

// ---------------------------------------------------------------------------------------------
// Warnings: accepted, but a destination will drop it

#[tokio::test]
async fn a_meta_purchase_with_a_comma_revenue_is_accepted_with_a_warning_naming_meta_and_the_rule()
{
    let app = App::with(Options {
        region: Region::Us,
        destinations: vec![meta(), webhook()],
        ..Options::default()
    })
    .await;
    let mut event = track_call("p1");
    event["properties"] = json!({"revenue": "49,90", "currency": "EUR"});
    event["context"] = json!({"traits": {"email": "jane@example.com"}});
    event["propertis"] = json!({"note": "typo"});

    let body = app.post("/v1/track", &event).await.assert_accepted(1);
    let mut fine = track_call("p2");
    fine["context"] = event["context"].clone();
    let clean = app.post("/v1/track", &fine).await.assert_accepted(1);

    let warnings = body["warnings"].as_array().expect("warnings");
    let rules: Vec<_> = warnings.iter().map(|w| w["rule"].clone()).collect();
    assert_eq!(
        rules,
        [json!("unknown_member"), json!("purchase_requires_value")]
    );
    let meta = &warnings[1];
    assert_eq!(meta["index"], 0);
    assert_eq!(meta["messageId"], "p1");
    assert_eq!(meta["kind"], "meta_capi");
    assert!(
        meta["destination"].as_str().unwrap().starts_with("dst_"),
        "{meta}"
    );
    assert!(meta["detail"].as_str().unwrap().contains("49,90"), "{meta}");
    assert!(warnings[0]["detail"]
        .as_str()
        .unwrap()
        .contains("propertis"));
    assert!(
        clean.get("warnings").is_none(),
        "no member when empty: {clean}"
    );
    let health = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .json();
    assert_eq!(health["ingest"]["warnings"], 2);
}

// ---------------------------------------------------------------------------------------------
// Failures

#[tokio::test]
async fn a_transient_store_failure_is_a_503_with_retry_after_and_no_internals() {
    let app = App::with(Options {
        failure: Some(Failure::Transient),
        ..Options::default()
    })
    .await;

    let reply = app.track("m1").await;

    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    reply.assert_hides(STORE_INTERNALS);
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
}

#[tokio::test]
async fn a_permanent_store_failure_is_an_opaque_500() {
    let app = App::with(Options {
        failure: Some(Failure::Permanent),
        ..Options::default()
    })
    .await;

    let reply = app.track("m1").await;

    let body = reply.assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    reply.assert_hides(STORE_INTERNALS);
    reply.assert_hides(&["storage rejected"]);
    assert!(
        body["detail"].as_str().unwrap().contains("request id"),
        "{body}"
    );
}

#[tokio::test]
async fn fails_closed_with_503_when_the_workspace_key_is_unavailable() {
    let app = App::start().await;
    let mut byok = app.workspace.clone();
    byok.key_ref = KeyRef::Customer {
        key_arn: "arn:aws:kms:eu-central-1:111122223333:key/disabled".into(),
    };
    app.control.update_workspace(&byok).await.unwrap();

    let reply = app.track("m1").await;

    let body = reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "key-unavailable");
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    assert!(!reply.text.contains("arn:aws"), "{body}");
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
    assert!(app.stored_for_anonymous_id("anon-1").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Recorded SDK traffic

/// A request recorded from a real SDK (`tests/fixtures/sdk/*.json` at the repository root).
struct Recorded {
    name: String,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    body: Value,
}

fn recorded_sdk_requests() -> Vec<Recorded> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sdk");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the SDK recordings in {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            Recorded {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                method: v["method"].as_str().unwrap().parse().unwrap(),
                path: v["path"].as_str().unwrap().to_owned(),
                headers: v["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect(),
                gzip: v["gzip"].as_bool().unwrap_or(false),
                body: v["body"].clone(),
            }
        })
        .collect()
}

impl Recorded {
    /// The request again, with the recorded placeholder key replaced by `write_key`.
    fn replay(&self, write_key: &str) -> Request<Body> {
        let placeholder = basic("WRITE_KEY");
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(&self.path);
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if lower == "content-length" || lower == "host" || lower == "connection" {
                continue;
            }
            let value = if value == &placeholder {
                basic(write_key)
            } else {
                value.clone()
            };
            request = request.header(name.as_str(), value);
        }
        let json = self.body.to_string().replace("WRITE_KEY", write_key);
        let bytes = if self.gzip {
            gzip(json.as_bytes())
        } else {
            json.into_bytes()
        };
        request.body(Body::from(bytes)).unwrap()
    }
}

#[tokio::test]
async fn accepts_every_message_of_the_recorded_sdk_requests() {
    let recordings = recorded_sdk_requests();
    assert!(recordings.len() >= 4, "{} recordings", recordings.len());

    for recorded in recordings {
        // Recordings reuse message ids: each replays into a workspace of its own.
        let app = App::start().await;
        let sent = recorded.body["batch"].as_array().map_or(1, Vec::len) as u64;

        let reply = app.send(recorded.replay(&app.write_key)).await;

        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: {}",
            recorded.name,
            reply.text
        );
        let body = reply.json();
        assert_eq!(body["accepted"], sent, "{}: {body}", recorded.name);
        assert_eq!(body["rejected"], json!([]), "{}: {body}", recorded.name);
        assert_eq!(body["duplicates"], 0, "{}: {body}", recorded.name);
        let items: usize = app
            .drain(DestinationKind::Webhook)
            .await
            .iter()
            .map(|m| m.items.len())
            .sum();
        assert_eq!(items as u64, sent, "{}", recorded.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Heavy requests (security review #3)

/// The review's payload scaled: 2,500 tiny events under a batch-level `context` of `keys`
/// keys, which every event used to receive a copy of.
fn wide_context_batch(keys: usize) -> Value {
    let context: serde_json::Map<String, Value> =
        (0..keys).map(|i| (format!("k{i}"), json!(1))).collect();
    let event = json!({"type": "track", "event": "e", "userId": "u"});
    json!({"context": context, "batch": vec![event; 2_500]})
}

#[tokio::test]
async fn a_batch_level_context_with_thousands_of_keys_is_refused_with_422_naming_it() {
    let app = App::start().await;

    let reply = app.post("/v1/batch", &wide_context_batch(5_000)).await;

    let body = reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "too-many-keys");
    assert_eq!(body["field"], "/context");
    assert_eq!(app.depth(DestinationKind::Webhook).await, 0);
}

/// Ids whose every call waits, once armed, until the test releases it: a preparation that
/// stays in flight for as long as the test needs, observable when it starts.
struct HeldIds {
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    released: std::sync::Mutex<bool>,
    wake: std::sync::Condvar,
}

impl HeldIds {
    fn new() -> (Arc<Self>, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let (entered, rx) = tokio::sync::mpsc::unbounded_channel();
        let ids = Arc::new(Self {
            entered,
            released: std::sync::Mutex::new(false),
            wake: std::sync::Condvar::new(),
        });
        (ids, rx)
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.wake.notify_all();
    }
}

impl Ids for HeldIds {
    fn uuid_v7(&self, now: OffsetDateTime) -> uuid::Uuid {
        let _ = self.entered.send(());
        let mut released = self.released.lock().unwrap();
        while !*released {
            released = self.wake.wait(released).unwrap();
        }
        SystemIds.uuid_v7(now)
    }

    fn token(&self, len: usize) -> String {
        SystemIds.token(len)
    }

    fn fill(&self, buf: &mut [u8]) {
        SystemIds.fill(buf);
    }
}

/// `fut`'s output if it finishes within `limit`. Timed by a thread, not by the runtime's
/// timer: that runs on the workers, which the test may find held.
async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    let (expired, expiry) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        let _ = expired.send(());
    });
    tokio::select! {
        output = fut => Some(output),
        _ = expiry => None,
    }
}

impl App {
    /// Spawns a `track` call with the write key on the runtime, as a server runs each request,
    /// so that the test can hold it in flight ([`HeldIds`]) and await its answer later.
    fn spawn_track(
        &self,
        message_id: &str,
    ) -> tokio::task::JoinHandle<Result<axum::response::Response, std::convert::Infallible>> {
        let request = post("/v1/track")
            .header(header::AUTHORIZATION, basic(&self.write_key))
            .body(Body::from(track_call(message_id).to_string()))
            .unwrap();
        tokio::spawn(self.router.clone().oneshot(request))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_two_preparations_hold_both_runtime_workers() {
    let (ids, mut entered) = HeldIds::new();
    let app = App::with(Options {
        ingest_ids: Some(ids.clone()),
        prepare: Some((2, 0)),
        ..Options::default()
    })
    .await;
    let heavy: Vec<_> = ["h1", "h2"]
        .into_iter()
        .map(|id| app.spawn_track(id))
        .collect();
    for _ in 0..2 {
        entered.recv().await.unwrap();
    }

    // Spawned, so that it needs a runtime worker like any request of a real server.
    let healthz = tokio::spawn(
        app.router
            .clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap()),
    );
    let answered = within(Duration::from_secs(20), healthz).await;
    // Released before asserting: a failed assertion must not leave the workers held.
    ids.release();

    let status = answered
        .expect("/healthz answers while both preparations are in flight")
        .unwrap()
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    for request in heavy {
        assert_eq!(request.await.unwrap().unwrap().status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_finding_every_preparation_slot_and_the_queue_full_gets_503_with_retry_after() {
    let (ids, mut entered) = HeldIds::new();
    let app = App::with(Options {
        ingest_ids: Some(ids.clone()),
        prepare: Some((1, 0)),
        ..Options::default()
    })
    .await;
    let first = app.spawn_track("m1");
    entered.recv().await.unwrap();

    let second = app.track("m2").await;
    ids.release();

    second.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "busy");
    assert_eq!(second.headers[header::RETRY_AFTER], "1");
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_finding_every_in_flight_place_and_its_queue_taken_gets_503_with_retry_after() {
    // Preparation has room; what is full is the bound on prepared batches awaiting storage.
    let (ids, mut entered) = HeldIds::new();
    let app = App::with(Options {
        ingest_ids: Some(ids.clone()),
        prepare: Some((4, 4)),
        in_flight: Some((1, 0)),
        ..Options::default()
    })
    .await;
    let first = app.spawn_track("m1");
    entered.recv().await.unwrap();

    let second = app.spawn_track("m2");
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), second).await;
    ids.release();

    let second = second
        .expect("refused at once, not prepared behind the held request")
        .unwrap()
        .unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers()[header::RETRY_AFTER], "1");
    let body = to_bytes(second.into_body(), usize::MAX).await.unwrap();
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("/busy"),
        "{problem}"
    );
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    // The place is free again: the refused event can be sent again and is stored.
    assert_eq!(app.track("m2").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Client addresses behind proxies (security review #10)

#[tokio::test]
async fn a_spoofed_leftmost_forwarded_for_entry_does_not_pass_the_blocklist() {
    let app = App::with(Options {
        trusted_proxies: 1,
        ip_blocklist: vec!["203.0.113.0/24"],
        ..Options::default()
    })
    .await;

    // The client wrote "1.2.3.4"; the proxy appended the blocked address it saw.
    let reply = app.track_forwarded_for("1.2.3.4, 203.0.113.9").await;
    reply.assert_problem(StatusCode::FORBIDDEN, "blocked");

    let reply = app.track_forwarded_for("203.0.113.9, 198.51.100.1").await;
    reply.assert_accepted(1);
}

#[tokio::test]
async fn a_malformed_or_short_forwarded_for_header_is_a_400_naming_it() {
    let app = App::with(Options {
        trusted_proxies: 2,
        ..Options::default()
    })
    .await;

    // Shorter than the chain of two proxies, then a proxy's entry that is not an address.
    for forwarded in ["198.51.100.1", "198.51.100.1, unknown"] {
        let reply = app.track_forwarded_for(forwarded).await;
        let body = reply.assert_problem(StatusCode::BAD_REQUEST, "invalid-forwarded-for");
        assert_eq!(body["field"], "X-Forwarded-For", "{forwarded}");
    }
    app.track_forwarded_for("1.2.3.4, 2001:db8::1, [2001:db8::2]:443")
        .await
        .assert_accepted(1);
}

// ---------------------------------------------------------------------------------------------
// Abuse limits per source address and on gzip (issue 13, item 6)

/// A POST of `body` to /v1/track from `peer` (the socket address `serve` gives the router).
fn from_peer(peer: [u8; 4], authorization: &str, body: Body) -> Request<Body> {
    let mut request = post("/v1/track")
        .header(header::AUTHORIZATION, authorization)
        .body(body)
        .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            peer, 40_000,
        ))));
    request
}

async fn per_ip_app(rate_limit_per_ip: u32) -> App {
    App::with(Options {
        rate_limit_per_ip,
        ..Options::default()
    })
    .await
}

/// Sends three requests at once: each takes its address's token when first polled, in order,
/// before any of them awaits anything (so no token refills in between).
async fn three_at_once(app: &App, requests: [Request<Body>; 3]) -> [Reply; 3] {
    let [a, b, c] = requests;
    let (a, b, c) = tokio::join!(app.send(a), app.send(b), app.send(c));
    [a, b, c]
}

#[tokio::test]
async fn one_address_is_limited_whatever_write_key_it_presents_even_a_wrong_one() {
    let app = per_ip_app(2).await;
    let peer = [198, 51, 100, 7];
    let event = || Body::from(track_call("m1").to_string());

    let [right, wrong, limited] = three_at_once(
        &app,
        [
            from_peer(peer, &basic(&app.write_key), event()),
            from_peer(peer, &basic("tl_ingest_wrong"), event()),
            from_peer(peer, &basic("tl_ingest_other"), event()),
        ],
    )
    .await;

    right.assert_accepted(1);
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    // The third is refused before its key is checked: no 401, no key lookup.
    let body = limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert!(
        body["detail"].as_str().unwrap().contains("per address"),
        "{body}"
    );
    assert_eq!(limited.headers[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn a_body_flood_from_one_address_is_refused_before_its_bodies_are_read() {
    let app = per_ip_app(2).await;
    // Over the request limit: a body that is read is a 413.
    let flood = || {
        let body = Body::from(vec![b' '; MAX_REQUEST_BYTES + 1]);
        from_peer([198, 51, 100, 8], &basic(&app.write_key), body)
    };

    let [first, second, third] = three_at_once(&app, [flood(), flood(), flood()]).await;

    assert_eq!(
        first.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        first.text
    );
    assert_eq!(
        second.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        second.text
    );
    third.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
}

#[tokio::test]
async fn forwarded_for_entries_do_not_pick_the_bucket_without_a_trusted_proxy() {
    let app = per_ip_app(2).await;
    let spoofed = |i: u8| {
        let mut request = from_peer(
            [198, 51, 100, 9],
            &basic(&app.write_key),
            Body::from(track_call(&format!("m{i}")).to_string()),
        );
        let forwarded = format!("203.0.113.{i}").parse().unwrap();
        request.headers_mut().insert("x-forwarded-for", forwarded);
        request
    };

    let [first, second, third] = three_at_once(&app, [spoofed(1), spoofed(2), spoofed(3)]).await;

    first.assert_accepted(1);
    second.assert_accepted(1);
    third.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
}

#[tokio::test]
async fn many_addresses_each_have_their_own_bucket_and_one_spent_blocks_only_itself() {
    let app = per_ip_app(1).await;
    let from = |last: u8, id: &str| {
        let body = Body::from(track_call(id).to_string());
        from_peer([192, 0, 2, last], &basic(&app.write_key), body)
    };

    let (first, again) = tokio::join!(app.send(from(1, "m1")), app.send(from(1, "m1b")));
    first.assert_accepted(1);
    again.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");

    for i in 2..=20u8 {
        app.send(from(i, &format!("m{i}"))).await.assert_accepted(1);
    }
}

/// A batch of 20 events with 20,000-character properties: about 400 KB, under the request
/// limit, but gzip makes it about a thousand times smaller.
fn compressible_batch() -> (Vec<u8>, Vec<u8>) {
    let filler = "a".repeat(20_000);
    let events: Vec<Value> = (0..20)
        .map(|i| json!({"type": "track", "event": "e", "userId": "u", "messageId": format!("m{i}"), "properties": {"note": filler}}))
        .collect();
    let inflated = json!({ "batch": events }).to_string().into_bytes();
    assert!(inflated.len() < MAX_REQUEST_BYTES);
    let compressed = gzip(&inflated);
    assert!(
        compressed.len() * 100 < inflated.len(),
        "{} bytes",
        compressed.len()
    );
    (inflated, compressed)
}

#[tokio::test]
async fn a_gzip_body_past_the_ratio_cap_is_a_413_naming_the_body() {
    let (_, compressed) = compressible_batch();
    let gzipped = |app: &App| {
        post("/v1/batch")
            .header(header::CONTENT_ENCODING, "gzip")
            .header(header::AUTHORIZATION, basic(&app.write_key))
            .body(Body::from(compressed.clone()))
            .unwrap()
    };

    let app = App::start().await;
    let body = app
        .send(gzipped(&app))
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert_eq!(body["field"], "body");
    assert!(
        body["detail"].as_str().unwrap().contains("100 times"),
        "{body}"
    );

    // The same body with the ratio cap raised: only the cap refused it.
    let lax = App::with(Options {
        gzip_max_ratio: 10_000,
        ..Options::default()
    })
    .await;
    lax.send(gzipped(&lax)).await.assert_accepted(20);
}

// ---------------------------------------------------------------------------------------------
// From the browser: client IP and user agent, GPC, click ids

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// Meta's documented example ClickID.
const FBCLID: &str = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"; // pragma: allowlist secret

/// A page call as analytics-next sends it to `/v1/p` from `https://shop.example`: text/plain,
/// Basic auth, from a visitor at 203.0.113.7 landing from an ad with click ids in the URL.
fn browser_page(app: &App, message_id: &str, gpc: bool) -> Request<Body> {
    let url = format!("https://shop.example/landing?fbclid={FBCLID}&gclid=Cj0KCQiA&ttclid=E.C.P.tt1&email=a%40b.example");
    let body = json!({
        "type": "page",
        "messageId": message_id,
        "anonymousId": "anon-browser",
        "timestamp": "2026-03-01T11:59:58.123Z",
        "properties": {"url": url, "path": "/landing"},
        "context": {"page": {"url": url}, "_ga": "GA1.1.1234567890.1700000000"},
    });
    let mut request = post("/v1/p")
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::AUTHORIZATION, basic(&app.write_key))
        .header(header::ORIGIN, "https://shop.example")
        .header(header::USER_AGENT, CHROME);
    if gpc {
        request = request.header("Sec-GPC", "1");
    }
    let mut request = request.body(Body::from(body.to_string())).unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [203, 0, 113, 7],
            50_000,
        ))));
    request
}

async fn browser_app() -> App {
    App::with(Options {
        region: Region::Us,
        destinations: vec![meta(), webhook()],
        allowed_origins: vec!["https://shop.example"],
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_browser_page_call_gives_meta_the_visitors_ip_agent_and_the_fbc_of_its_fbclid() {
    let app = browser_app().await;

    app.send(browser_page(&app, "b1", false))
        .await
        .assert_accepted(1);

    let meta = queued_sealed(&app, DestinationKind::MetaCapi).await;
    assert_eq!(meta.len(), 1);
    let (_, event_id, sealed) = &meta[0];
    assert_eq!(sealed.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(sealed.user_agent.as_deref(), Some(CHROME));
    // Meta's format: fb.1.{the event's time in ms}.{fbclid as given}.
    assert_eq!(
        sealed.click_ids["fbc"],
        format!("fb.1.{}.{FBCLID}", 1_772_366_398_123_i64)
    );
    assert_eq!(sealed.click_ids["gclid"], "Cj0KCQiA");
    assert_eq!(sealed.click_ids["ttclid"], "E.C.P.tt1");
    assert_eq!(sealed.click_ids["client_id"], "1234567890.1700000000");
    // The page URL that leaves keeps its click ids but not the email.
    let page_url = sealed.page_url.as_deref().unwrap();
    assert!(
        page_url.contains("fbclid=") && !page_url.contains("b.example"),
        "{page_url}"
    );
    // The IP and user agent are stored only sealed, for 30 days.
    let operational = app
        .events
        .operational(&app.workspace.id, event_id, T0)
        .await
        .unwrap()
        .expect("an operational record");
    assert_eq!(operational.expires_at, T0 + time::Duration::days(30));
    let stored = serde_json::to_string(&app.stored_for_anonymous_id("anon-browser").await).unwrap();
    for raw in ["203.0.113.7", "Chrome/131", FBCLID, "Cj0KCQiA"] {
        assert!(!stored.contains(raw), "{raw} stored in the clear");
    }
}

#[tokio::test]
async fn a_browser_request_with_sec_gpc_reaches_the_webhook_but_not_meta() {
    let app = browser_app().await;

    app.send(browser_page(&app, "with-gpc", true))
        .await
        .assert_accepted(1);
    app.send(browser_page(&app, "without", false))
        .await
        .assert_accepted(1);

    let meta: Vec<_> = queued_sealed(&app, DestinationKind::MetaCapi)
        .await
        .into_iter()
        .map(|(m, _, _)| m)
        .collect();
    assert_eq!(meta, ["without"]);
    assert_eq!(app.depth(DestinationKind::Webhook).await, 2);
    let stored = app.stored_for_anonymous_id("anon-browser").await;
    let gpc = stored
        .iter()
        .find(|e| e.message_id.as_str() == "with-gpc")
        .unwrap();
    let to_meta = gpc
        .routing
        .iter()
        .find(|r| r.kind == DestinationKind::MetaCapi)
        .unwrap();
    assert!(!to_meta.routed);
    assert_eq!(
        to_meta.consent.reason,
        "advertising denied by global privacy control"
    );
}

// ---------------------------------------------------------------------------------------------
// Bot filtering

const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const BINGBOT: &str = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
const AHREFSBOT: &str = "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)";
const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// A track call from a page of `https://shop.example` in a browser with this user agent.
fn from_browser(app: &App, message_id: &str, user_agent: &str) -> Request<Body> {
    post("/v1/t")
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::AUTHORIZATION, basic(&app.write_key))
        .header(header::ORIGIN, "https://shop.example")
        .header(header::USER_AGENT, user_agent)
        .body(Body::from(track_call(message_id).to_string()))
        .unwrap()
}

/// The workspace's ingest counter `c` over the last day.
async fn ingest_count(app: &App, c: tracklayer_core::stats::IngestCounter) -> u64 {
    use tracklayer_core::stats::{StatsKey, StatsQuery, StatsReader};
    let q = StatsQuery::new(
        T0 - time::Duration::days(1),
        T0 + time::Duration::hours(1),
        T0,
    );
    app.stats
        .sum(&app.workspace.id, &q)
        .await
        .unwrap()
        .get(&StatsKey::Ingest(c))
}

async fn bot_app(bot_filter: bool) -> App {
    App::with(Options {
        destinations: vec![webhook()],
        allowed_origins: vec!["https://shop.example"],
        bot_filter,
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn crawler_events_are_answered_accepted_but_dropped_before_routing_and_counted() {
    let app = bot_app(true).await;

    for (i, ua) in [GOOGLEBOT, BINGBOT, AHREFSBOT, HEADLESS].iter().enumerate() {
        let body = app
            .send(from_browser(&app, &format!("bot-{i}"), ua))
            .await
            .assert_accepted(1);
        assert_eq!(body["bots"], 1, "{ua}");
    }
    for (i, ua) in [CHROME, SAFARI, FIREFOX].iter().enumerate() {
        let body = app
            .send(from_browser(&app, &format!("human-{i}"), ua))
            .await
            .assert_accepted(1);
        assert_eq!(body["bots"], 0, "{ua}");
    }

    let delivered: Vec<_> = queued_sealed(&app, DestinationKind::Webhook)
        .await
        .into_iter()
        .map(|(m, _, _)| m)
        .collect();
    assert_eq!(delivered, ["human-0", "human-1", "human-2"]);
    assert_eq!(app.stored_for_anonymous_id("anon-1").await.len(), 3);
    use tracklayer_core::stats::IngestCounter;
    assert_eq!(ingest_count(&app, IngestCounter::Bots).await, 4);
    assert_eq!(ingest_count(&app, IngestCounter::Accepted).await, 7);
}

#[tokio::test]
async fn a_server_forwarded_event_is_judged_by_its_own_user_agent_not_the_servers() {
    let app = bot_app(true).await;
    let server = |id: &str, context: Value| {
        let mut event = track_call(id);
        event["context"] = context;
        post("/v1/track")
            .header(header::AUTHORIZATION, basic(&app.write_key))
            .header(header::USER_AGENT, "analytics-python/2.4.0")
            .body(Body::from(event.to_string()))
            .unwrap()
    };

    let crawled = app
        .send(server("crawled", json!({"userAgent": GOOGLEBOT})))
        .await;
    let plain = app.send(server("server", json!({}))).await;

    assert_eq!(crawled.assert_accepted(1)["bots"], 1);
    assert_eq!(plain.assert_accepted(1)["bots"], 0);
    assert_eq!(app.depth(DestinationKind::Webhook).await, 1);
}

#[tokio::test]
async fn with_the_bot_filter_off_crawler_events_are_delivered() {
    let app = bot_app(false).await;

    for (i, ua) in [GOOGLEBOT, HEADLESS].iter().enumerate() {
        let body = app
            .send(from_browser(&app, &format!("bot-{i}"), ua))
            .await
            .assert_accepted(1);
        assert_eq!(body["bots"], 0);
    }

    assert_eq!(app.depth(DestinationKind::Webhook).await, 2);
    let bots = ingest_count(&app, tracklayer_core::stats::IngestCounter::Bots).await;
    assert_eq!(bots, 0);
}
