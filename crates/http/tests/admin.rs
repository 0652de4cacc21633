//! The admin API through the real router, on the embedded adapters (SQLite in a temporary
//! directory, file keyring), with a recording egress in place of the network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;
use tracklayer_core::admin::{AdminError, AdminService, Principal, WorkspacePatch};
use tracklayer_core::audit::AuditFilter;
use tracklayer_core::clock::{FixedClock, SystemIds};
use tracklayer_core::control_plane::{Control, IssuedKey};
use tracklayer_core::dsr::service::DsrService;
use tracklayer_core::event::StoredEvent;
use tracklayer_core::ingest::IngestService;
use tracklayer_core::keys::verifier::VerifierConfig;
use tracklayer_core::keys::{KeyKind, Role};
use tracklayer_core::ports::{ControlReader, ControlStore, Egress};
use tracklayer_core::services::{CommonPorts, Ports, Services, ServicesConfig};
use tracklayer_core::testkit::egress::RecordingEgress;
use tracklayer_core::user_id::UserId;
use tracklayer_core::workspace::{Region, WorkspaceId};
use tracklayer_http::admin::{DestinationTester, TEST_EVENT_NAME};
use tracklayer_http::{
    admin_router, scim_router, tracking_router, AdminConfig, AdminState, TrackingConfig,
    TrackingState,
};
use tracklayer_local::{
    Db, FileKeyring, SqliteAuditLog, SqliteControlStore, SqliteDeliveryLog, SqliteDsrStore,
};

#[path = "support/stores.rs"]
mod stores;
use stores::{Stores, T0};

#[path = "admin/ad_destinations.rs"]
mod ad_destinations;
#[path = "admin/bot_filter.rs"]
mod bot_filter;
#[path = "admin/cors.rs"]
mod cors;
#[path = "admin/delivery_log.rs"]
mod delivery_log;
#[path = "admin/firehose_destinations.rs"]
mod firehose_destinations;
#[path = "admin/recent_events.rs"]
mod recent_events;
#[path = "admin/saml.rs"]
mod saml;
#[path = "admin/scim.rs"]
mod scim;
#[path = "admin/scim_groups.rs"]
mod scim_groups;
#[path = "admin/scim_users.rs"]
mod scim_users;
#[path = "admin/sessions.rs"]
mod sessions;
#[path = "admin/stats.rs"]
mod stats;

const PROBLEM_JSON: &str = "application/problem+json";
/// A destination secret that must never come back.
const SECRET: &str = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LW5ldmVyLXNob3du"; // pragma: allowlist secret
/// A well-formed token of the US region (this server serves the EU).
const US_TOKEN: &str = "tl_pat_us_0123456789abcdef_0123456789abcdef0123456789abcdef"; // pragma: allowlist secret
const META_TOKEN: &str = "EAAB-meta-access-token-never-shown-9Z7Q"; // pragma: allowlist secret

// ---------------------------------------------------------------------------------------------
// Harness

/// One workspace served by the real routers, with tokens of each role and a second workspace.
struct App {
    router: Router,
    db_path: PathBuf,
    clock: Arc<FixedClock>,
    egress: Arc<RecordingEgress>,
    ws: WorkspaceId,
    write_key: String,
    admin: String,
    editor: String,
    viewer: String,
    /// An admin token of another workspace.
    other: String,
    /// A destination of the other workspace.
    other_destination: String,
    dsr: Arc<DsrService>,
    /// The control plane behind the router, for what no token can reach (the operator).
    service: Arc<AdminService>,
    /// Ingest behind the tracking routes, sharing the admin API's key verifier.
    ingest: Arc<IngestService>,
    /// The stores, as another process (the operator CLI) on the same data sees them.
    control: Arc<SqliteControlStore>,
    keyring: Arc<FileKeyring>,
    _dir: tempfile::TempDir,
}

/// Mails of the DSR service, dropped (the DSR suites in tracklayer-local read them).
struct NoMail;

#[async_trait]
impl tracklayer_core::ports::Mailer for NoMail {
    async fn send(
        &self,
        _mail: &tracklayer_core::ports::Mail,
    ) -> Result<(), tracklayer_core::error::MailError> {
        Ok(())
    }
}

impl App {
    async fn start() -> Self {
        Self::build(None).await
    }

    /// An app whose test sends go out over the network (to loopback listeners) through the
    /// real egress client, as `serve --allow-private-egress` sends them.
    async fn on_the_network() -> Self {
        let egress = tracklayer_egress::HttpEgress::new(tracklayer_egress::EgressConfig {
            policy: tracklayer_egress::EgressPolicy {
                allow_private: true,
            },
            ..Default::default()
        })
        .unwrap();
        Self::build(Some(Arc::new(egress))).await
    }

    async fn build(network: Option<Arc<dyn Egress>>) -> Self {
        let stores = Stores::on_disk();
        let ops = stores.control_plane();
        let boot = ops.bootstrap(Region::Eu, "Admin tests").await.unwrap();
        let other = ops.bootstrap(Region::Eu, "Another team").await.unwrap();
        let svc = |role| {
            let ws = boot.workspace.clone();
            async move {
                ops.issue_key(&ws, KeyKind::Svc, Some(role), None, "role token", 90)
                    .await
                    .unwrap()
                    .secret
                    .expose_secret()
                    .to_owned()
            }
        };
        let editor = svc(Role::Editor).await;
        let viewer = svc(Role::Viewer).await;
        let other_destination = ops
            .add_destination(&other.workspace, serde_json::from_value(webhook()).unwrap())
            .await
            .unwrap()
            .id
            .to_string();

        // Test destinations point at names this sandbox cannot resolve.
        let ports = Ports {
            common: CommonPorts {
                control: stores.control.clone(),
                keyring: stores.keyring.clone(),
                audit: Arc::new(SqliteAuditLog::new(
                    stores.db.clone(),
                    stores.keyring.clone(),
                )),
                delivery_log: Arc::new(SqliteDeliveryLog::new(stores.db.clone())),
                queue: stores.queue.clone(),
                dsr: Arc::new(SqliteDsrStore::new(stores.db.clone())),
                mailer: Arc::new(NoMail),
                clock: stores.clock.clone(),
                ids: stores.ids.clone(),
            },
            events: stores.events.clone(),
            ingest_store: Arc::new(tracklayer_local::SqliteIngestStore::new(
                stores.db.clone(),
                stores.clock.clone(),
            )),
            sessions: Arc::new(tracklayer_local::SqliteSessionStore::new(stores.db.clone())),
            url_guard: Arc::new(tracklayer_egress::EgressPolicy {
                allow_private: true,
            }),
            stats: Arc::new(tracklayer_local::SqliteStats::new(stores.db.clone())),
            connectors: tracklayer_connectors::connector,
            requirements: tracklayer_connectors::requirements::unmet,
            base_urls: tracklayer_connectors::default_base_url,
        };
        let egress = Arc::new(RecordingEgress::answering(200, br#"{"received":1}"#));
        let tester = DestinationTester::new(&ports, network.unwrap_or_else(|| egress.clone()));
        // Wired as `serve` wires them: one key verifier, one invalidation bus; an erasure
        // submitted through the admin API reaches ingest's cached suppression list through it.
        let Services {
            ingest,
            dsr,
            admin: service,
            ..
        } = Services::new(&ports, egress.clone(), ServicesConfig::new(Region::Eu));
        let state =
            AdminState::new(service.clone(), tester, AdminConfig::default()).with_dsr(dsr.clone());
        let router = tracking_router(TrackingState::new(
            ingest.clone(),
            TrackingConfig::default(),
        ))
        .merge(scim_router(state.clone()))
        .merge(admin_router(state));
        Self {
            router,
            db_path: stores.db_path(),
            clock: stores.clock.clone(),
            egress,
            ws: boot.workspace.id.clone(),
            write_key: boot.write_key.expose_secret().to_owned(),
            admin: boot.admin_token.expose_secret().to_owned(),
            editor,
            viewer,
            other: other.admin_token.expose_secret().to_owned(),
            other_destination,
            dsr,
            service,
            ingest,
            control: stores.control.clone(),
            keyring: stores.keyring.clone(),
            _dir: stores.dir,
        }
    }

    /// The callers of the RBAC matrix: admin, editor, viewer, no token, another workspace's
    /// admin.
    fn callers(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("admin", Some(&self.admin)),
            ("editor", Some(&self.editor)),
            ("viewer", Some(&self.viewer)),
            ("no token", None),
            ("another workspace", Some(&self.other)),
        ]
    }

    /// Submits a data-subject request as the admin; returns its id.
    async fn new_request(&self, kind: &str) -> String {
        let v = self
            .post(
                "/admin/v1/data_subject_requests",
                json!({"type": kind, "subject": {"email": "subject@example.com"}}),
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// A completed access request; returns its id.
    async fn completed_access_request(&self) -> String {
        let id = self.new_request("access").await;
        for _ in 0..5 {
            self.dsr.run().await;
        }
        id
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.raw(method, path, token, body.map(|b| b.to_string()))
            .await
    }

    /// [`Self::call`] with the admin's token.
    async fn as_admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.call(method, path, Some(&self.admin), body).await
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = to_bytes(resp.into_body(), 10 << 20).await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        if !status.is_success() {
            assert_eq!(
                headers[header::CONTENT_TYPE],
                PROBLEM_JSON,
                "{status} {value}"
            );
        }
        (status, headers, value)
    }

    /// The `changed` summary of the latest security-settings change in the audit log.
    async fn last_security_change(&self) -> Value {
        let log = self.get("/admin/v1/audit-log?action=security.update").await;
        let entries = log["entries"].as_array().expect("entries");
        entries.last().expect("an entry")["summary"]["changed"].clone()
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, _, v) = self.as_admin(method, path, body).await;
        assert!(status.is_success(), "{status} {v}");
        v
    }

    /// Replaces the security settings (`PUT /admin/v1/security`) as the admin.
    async fn replace_security(&self, ip_blocklist: &[&str], egress_paused: bool) {
        let body = json!({"ip_blocklist": ip_blocklist, "egress_paused": egress_paused});
        self.put("/admin/v1/security", body).await;
    }

    /// Sends `body` as the admin and asserts a 422 problem naming `field`.
    async fn assert_invalid_field(&self, method: Method, path: &str, body: Value, field: &str) {
        let (status, _, v) = self.as_admin(method, path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }

    /// [`Self::ok`] for a `GET`.
    async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, None).await
    }

    /// [`Self::ok`] for a `POST` of `body`.
    async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(Method::POST, path, Some(body)).await
    }

    /// [`Self::ok`] for a `PUT` of `body`.
    async fn put(&self, path: &str, body: Value) -> Value {
        self.ok(Method::PUT, path, Some(body)).await
    }

    /// [`Self::ok`] for a `PATCH` of `body`.
    async fn patch(&self, path: &str, body: Value) -> Value {
        self.ok(Method::PATCH, path, Some(body)).await
    }

    /// Sends a destination's test event (`POST /admin/v1/destinations/{id}/test`) as `token`.
    async fn send_test_event(
        &self,
        destination: &str,
        token: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let path = format!("/admin/v1/destinations/{destination}/test");
        self.call(Method::POST, &path, Some(token), None).await
    }

    /// Downloads the export of the access request `request` as the admin.
    async fn export(&self, request: &str) -> (StatusCode, HeaderMap, Value) {
        let path = format!("/admin/v1/data_subject_requests/{request}/export");
        self.as_admin(Method::GET, &path, None).await
    }

    async fn new_destination(&self) -> String {
        let v = self.post("/admin/v1/destinations", webhook()).await;
        v["id"].as_str().unwrap().to_owned()
    }

    async fn new_key(&self) -> (String, String) {
        let v = self
            .post(
                "/admin/v1/api-keys",
                json!({"kind": "svc", "role": "viewer"}),
            )
            .await;
        (
            v["key"]["id"].as_str().unwrap().to_owned(),
            v["secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn new_user(&self, role: &str) -> String {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let v = self
            .post(
                "/admin/v1/users",
                json!({"email": format!("person{n}@example.com"), "role": role}),
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// Tracks one event with the write key; returns its id (`evt_…`).
    async fn tracked_event(&self) -> String {
        self.track_user("user-1").await;
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        let doc: String = conn
            .query_row(
                "SELECT doc FROM events WHERE workspace =
                 (SELECT number FROM workspace_numbers WHERE workspace_id = ?1) LIMIT 1",
                [self.ws.as_str()],
                |r| {
                    Ok(
                        tracklayer_local::event_row_json(self.ws.as_str(), r.get_ref(0)?)
                            .unwrap()
                            .to_string(),
                    )
                },
            )
            .unwrap();
        let e: StoredEvent = serde_json::from_str(&doc).unwrap();
        e.event_id.to_string()
    }

    /// Tracks one `Order Completed` of `user_id` with the write key; returns the answer.
    async fn track_user(&self, user_id: &str) -> Value {
        self.segment(
            "/v1/track",
            json!({"event": "Order Completed", "userId": user_id,
                   "properties": {"revenue": 10}}),
        )
        .await
    }

    /// Sends one Segment call (`path`: `/v1/track`, `/v1/page`, ...) with the write key;
    /// returns the answer, which must be 200.
    async fn segment(&self, path: &str, body: Value) -> Value {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.write_key));
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Basic {auth}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap()
    }

    fn queued_messages(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
            .unwrap()
    }

    fn stored_events(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap()
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The string `member` of each object of the array `list`.
fn each_str<'a>(list: &'a Value, member: &str) -> Vec<&'a str> {
    let list = list.as_array().expect("an array");
    list.iter().map(|o| o[member].as_str().unwrap()).collect()
}

fn webhook() -> Value {
    json!({
        "name": "Warehouse",
        "kind": "webhook",
        "config": {"url": "https://hooks.example.com/tracklayer"},
        "secrets": {"signing_secret": SECRET}
    })
}

fn meta() -> Value {
    json!({
        "name": "Meta",
        "kind": "meta_capi",
        "config": {"pixel_id": "1234567890", "api_version": "v21.0"},
        "secrets": {"access_token": META_TOKEN}
    })
}

// ---------------------------------------------------------------------------------------------
// RBAC matrix

/// What a route needs in its path, made fresh for every call.
#[derive(Debug, Clone, Copy)]
enum Target {
    None,
    Destination,
    Key,
    User,
    Event,
    Request,
    Export,
    /// A well-formed session id that names no session.
    UnknownSession,
    /// The call closes the workspace: each caller gets a fresh one, and [`WORKSPACE`] in the
    /// body stands for its id.
    Closure,
}

/// Stands for the id of the workspace under test in a request body.
const WORKSPACE: &str = "{workspace}";

/// One route and its designed answer to: admin, editor, viewer, no token, another workspace's
/// admin.
struct Row {
    method: Method,
    path: &'static str,
    target: Target,
    body: Option<fn() -> Value>,
    expect: [u16; 5],
}

fn row(
    method: Method,
    path: &'static str,
    target: Target,
    body: Option<fn() -> Value>,
    expect: [u16; 5],
) -> Row {
    Row {
        method,
        path,
        target,
        body,
        expect,
    }
}

/// Whitepaper §04 as the control plane implements it. Objects of another workspace are not
/// found (404); its own workspace-level resources answer normally.
fn matrix() -> Vec<Row> {
    use Method as M;
    use Target as T;
    vec![
        row(
            M::GET,
            "/admin/v1/workspace",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::PATCH,
            "/admin/v1/workspace",
            T::None,
            Some(|| json!({"name": "Renamed"})),
            [200, 200, 403, 401, 200],
        ),
        row(
            M::PATCH,
            "/admin/v1/workspace",
            T::None,
            Some(|| json!({"event_retention_days": 90})),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::POST,
            "/admin/v1/workspace/close",
            T::Closure,
            // Another workspace's admin names this workspace, not its own: refused.
            Some(|| json!({"confirm": WORKSPACE})),
            [200, 403, 403, 401, 422],
        ),
        row(
            M::GET,
            "/admin/v1/consent-policy",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::PUT,
            "/admin/v1/consent-policy",
            T::None,
            Some(|| json!({"eu_default": "opt_in", "us_default": "opt_in", "honor_gpc": true})),
            [200, 200, 403, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/security",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::PUT,
            "/admin/v1/security",
            T::None,
            Some(|| json!({"ip_blocklist": ["203.0.113.0/24"], "egress_paused": false})),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::PATCH,
            "/admin/v1/security",
            T::None,
            Some(|| json!({"egress_paused": false})),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::PUT,
            "/admin/v1/sso/saml",
            T::None,
            Some(|| saml::connection(false)),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/sso/saml",
            T::None,
            None,
            [200, 403, 403, 401, 200],
        ),
        row(
            M::DELETE,
            "/admin/v1/sso/saml",
            T::None,
            None,
            [204, 403, 403, 401, 204],
        ),
        row(
            M::GET,
            "/admin/v1/sso/scim-group-roles",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::PUT,
            "/admin/v1/sso/scim-group-roles",
            T::None,
            Some(|| json!({"groups": []})),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/cors",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::PUT,
            "/admin/v1/cors",
            T::None,
            Some(|| json!({"allowed_origins": ["https://shop.example"]})),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/bot-filter",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::PUT,
            "/admin/v1/bot-filter",
            T::None,
            Some(|| json!({"enabled": true})),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/retention",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::PUT,
            "/admin/v1/retention",
            T::None,
            Some(|| json!({"event_retention_days": 90})),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::PUT,
            "/admin/v1/encryption-key",
            T::None,
            Some(|| json!({"key_arn": null})),
            [200, 403, 403, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/users",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::POST,
            "/admin/v1/users",
            T::None,
            Some(|| {
                let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                json!({"email": format!("invitee{n}@example.com"), "role": "viewer"})
            }),
            [201, 403, 403, 401, 201],
        ),
        row(
            M::PATCH,
            "/admin/v1/users/{id}",
            T::User,
            Some(|| json!({"role": "editor"})),
            [200, 403, 403, 401, 404],
        ),
        row(
            M::DELETE,
            "/admin/v1/users/{id}",
            T::User,
            None,
            [204, 403, 403, 401, 404],
        ),
        row(
            M::GET,
            "/admin/v1/users/{id}/sessions",
            T::User,
            None,
            [200, 403, 403, 401, 404],
        ),
        row(
            M::DELETE,
            "/admin/v1/sessions/{id}",
            T::UnknownSession,
            None,
            [404, 404, 404, 401, 404],
        ),
        row(
            M::GET,
            "/admin/v1/api-keys",
            T::None,
            None,
            [200, 403, 403, 401, 200],
        ),
        row(
            M::POST,
            "/admin/v1/api-keys",
            T::None,
            Some(|| json!({"kind": "ingest"})),
            [201, 403, 403, 401, 201],
        ),
        row(
            M::POST,
            "/admin/v1/api-keys/{id}/rotate",
            T::Key,
            Some(|| json!({"overlap_days": 1})),
            [201, 403, 403, 401, 404],
        ),
        row(
            M::POST,
            "/admin/v1/api-keys/{id}/revoke",
            T::Key,
            None,
            [200, 403, 403, 401, 404],
        ),
        row(
            M::DELETE,
            "/admin/v1/api-keys/{id}",
            T::Key,
            None,
            [200, 403, 403, 401, 404],
        ),
        row(
            M::GET,
            "/admin/v1/destinations",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::POST,
            "/admin/v1/destinations",
            T::None,
            Some(webhook),
            [201, 403, 403, 401, 201],
        ),
        row(
            M::GET,
            "/admin/v1/destinations/{id}",
            T::Destination,
            None,
            [200, 200, 200, 401, 404],
        ),
        row(
            M::PATCH,
            "/admin/v1/destinations/{id}",
            T::Destination,
            Some(|| json!({"name": "Renamed", "events": {"deny": ["Signed Up"]}})),
            [200, 200, 403, 401, 404],
        ),
        row(
            M::PATCH,
            "/admin/v1/destinations/{id}",
            T::Destination,
            Some(|| json!({"secrets": {"signing_secret": SECRET}})),
            [200, 403, 403, 401, 404],
        ),
        row(
            M::PATCH,
            "/admin/v1/destinations/{id}",
            T::Destination,
            Some(|| json!({"config": {"url": "https://elsewhere.example.com/hook"}})),
            [200, 403, 403, 401, 404],
        ),
        row(
            M::PATCH,
            "/admin/v1/destinations/{id}",
            T::Destination,
            Some(|| json!({"consent_purposes": ["analytics"]})),
            [200, 403, 403, 401, 404],
        ),
        row(
            M::DELETE,
            "/admin/v1/destinations/{id}",
            T::Destination,
            None,
            [204, 403, 403, 401, 404],
        ),
        row(
            M::POST,
            "/admin/v1/destinations/{id}/pause",
            T::Destination,
            None,
            [200, 200, 403, 401, 404],
        ),
        row(
            M::POST,
            "/admin/v1/destinations/{id}/resume",
            T::Destination,
            None,
            [200, 200, 403, 401, 404],
        ),
        row(
            M::POST,
            "/admin/v1/destinations/{id}/test",
            T::Destination,
            None,
            [200, 200, 403, 401, 404],
        ),
        row(
            M::GET,
            "/admin/v1/destinations/{id}/delivery-log",
            T::Destination,
            None,
            [200, 200, 200, 401, 404],
        ),
        row(
            M::POST,
            "/admin/v1/destinations/{id}/replay",
            T::Destination,
            Some(|| json!({})),
            [200, 200, 403, 401, 404],
        ),
        // Without `message_id` it is the list of recent events (viewer+), of the caller's own
        // workspace only (another workspace's admin gets its own, empty list).
        row(
            M::GET,
            "/admin/v1/events",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/events/{id}",
            T::Event,
            None,
            [200, 200, 200, 401, 404],
        ),
        row(
            M::GET,
            "/admin/v1/stats",
            T::None,
            None,
            [200, 200, 200, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/audit-log",
            T::None,
            None,
            [200, 403, 403, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/audit-log/verify",
            T::None,
            None,
            [200, 403, 403, 401, 200],
        ),
        row(
            M::POST,
            "/admin/v1/data_subject_requests",
            T::None,
            Some(|| json!({"type": "erasure", "subject": {"email": "someone@example.com"}})),
            [202, 403, 403, 401, 202],
        ),
        row(
            M::GET,
            "/admin/v1/data_subject_requests",
            T::None,
            None,
            [200, 403, 403, 401, 200],
        ),
        row(
            M::GET,
            "/admin/v1/data_subject_requests/{id}",
            T::Request,
            None,
            [200, 403, 403, 401, 404],
        ),
        row(
            M::GET,
            "/admin/v1/data_subject_requests/{id}/export",
            T::Export,
            None,
            [200, 403, 403, 401, 404],
        ),
        row(
            M::GET,
            "/admin/v1/openapi.json",
            T::None,
            None,
            [200, 200, 200, 200, 200],
        ),
    ]
}

#[tokio::test]
async fn every_route_answers_each_role_and_another_workspace_as_designed() {
    let shared = App::start().await;
    let event = shared.tracked_event().await;
    let mut failures = Vec::new();
    let rows = matrix();
    for r in &rows {
        for i in 0..5 {
            let fresh;
            let app = if matches!(r.target, Target::Closure) {
                fresh = App::start().await;
                &fresh
            } else {
                &shared
            };
            let (who, token) = app.callers()[i];
            // A fresh target per call, so that one caller's success cannot change another's.
            let id = match r.target {
                Target::None | Target::Closure => String::new(),
                Target::Destination => app.new_destination().await,
                Target::Key => app.new_key().await.0,
                Target::User => app.new_user("viewer").await,
                Target::Event => event.clone(),
                Target::Request => app.new_request("erasure").await,
                Target::Export => app.completed_access_request().await,
                Target::UnknownSession => "ses_nosuchsession".to_owned(),
            };
            let path = r.path.replace("{id}", &id);
            let body = r.body.map(|b| {
                serde_json::from_str(&b().to_string().replace(WORKSPACE, app.ws.as_str())).unwrap()
            });
            let (status, _, v) = app.call(r.method.clone(), &path, token, body).await;
            if status.as_u16() != r.expect[i] {
                failures.push(format!(
                    "{} {} as {who}: expected {}, got {status} {v}",
                    r.method, r.path, r.expect[i]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every route of the OpenAPI document is in the matrix.
    let doc = shared.get("/admin/v1/openapi.json").await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let covered = rows
                .iter()
                .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method));
            assert!(covered, "{method} {path} is not in the RBAC matrix");
        }
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let app = App::start().await;
    let (id, secret) = app.new_key().await;
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/workspace", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    app.ok(
        Method::POST,
        &format!("/admin/v1/api-keys/{id}/revoke"),
        None,
    )
    .await;

    let (status, headers, v) = app
        .call(Method::GET, "/admin/v1/workspace", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["detail"], "the API key was revoked");
    assert!(headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
}

// ---------------------------------------------------------------------------------------------
// Key verification: a key is what its stored record says, failures cost no bcrypt twice, and
// admin changes reach the tracking API at once

/// `key` with its kind label replaced: the secret (all bcrypt covers) stays valid.
fn relabel(key: &str, to: &str) -> String {
    let rest = key.strip_prefix("tl_").unwrap();
    let (_, rest) = rest.split_once('_').unwrap();
    format!("tl_{to}_{rest}")
}

/// `key` with another secret of the same shape.
fn wrong_secret(key: &str) -> String {
    let (prefix, secret) = key.rsplit_once('_').unwrap();
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    format!("{prefix}_{flipped}{}", &secret[1..])
}

/// `key` with the `n`th made-up secret.
fn nth_secret(key: &str, n: u32) -> String {
    let (prefix, _) = key.rsplit_once('_').unwrap();
    format!("{prefix}_X{n:031}")
}

impl App {
    /// `POST /v1/track` with `key` as the Bearer token, from `ip` when given.
    async fn track_as(&self, key: &str, ip: Option<[u8; 4]>) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/v1/track")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"event": "Order Completed", "userId": "user-1"}).to_string(),
            ))
            .unwrap();
        if let Some(ip) = ip {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        }
        self.send(req).await
    }

    /// `GET /admin/v1/users` with `token`, from `ip` when given.
    async fn users_as(&self, token: &str, ip: Option<[u8; 4]>) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri("/admin/v1/users")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        if let Some(ip) = ip {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        }
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    fn bcrypt_runs(&self) -> u64 {
        self.ingest.verifier().stats().bcrypt_runs
    }

    fn queued_for(&self, destination: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM queue WHERE destination_id = ?1",
            [destination],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// The stores as another process on the same data sees them.
    fn other_process(&self) -> Control<'_> {
        Control {
            store: self.control.as_ref(),
            keyring: self.keyring.as_ref(),
            clock: self.clock.as_ref(),
            ids: &SystemIds,
        }
    }

    /// A personal access token of `user`, issued by the operator ("laptop", 90 days).
    async fn issue_pat(&self, user: &str) -> IssuedKey {
        let ws = self.control.workspace(&self.ws, T0).await.unwrap().unwrap();
        self.other_process()
            .issue_key(
                &ws,
                KeyKind::Pat,
                None,
                Some(UserId::parse(user).unwrap()),
                "laptop",
                90,
            )
            .await
            .unwrap()
    }

    /// The secret of a new personal access token of `user` ([`Self::issue_pat`]).
    async fn pat_of(&self, user: &str) -> String {
        self.issue_pat(user).await.secret.expose_secret().to_owned()
    }
}

#[tokio::test]
async fn a_key_relabelled_as_another_kind_is_refused_by_both_apis() {
    let app = App::start().await;
    // An ingest write key, the owner's personal token, a viewer service token.
    let keys = [
        ("ingest", app.write_key.clone()),
        ("pat", app.admin.clone()),
        ("svc", app.viewer.clone()),
    ];
    let mut failures = Vec::new();
    for (from, key) in &keys {
        for to in ["ingest", "pat", "svc"] {
            if to == *from {
                continue;
            }
            let forged = relabel(key, to);
            for (api, (status, _, v)) in [
                ("admin API", app.users_as(&forged, None).await),
                ("tracking API", app.track_as(&forged, None).await),
            ] {
                if status != StatusCode::UNAUTHORIZED {
                    failures.push(format!("{from} key as {to} on the {api}: {status} {v}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The genuine keys still work where they belong.
    assert_eq!(app.users_as(&app.viewer, None).await.0, StatusCode::OK);
    assert_eq!(app.track_as(&app.write_key, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_repeated_wrong_secret_runs_bcrypt_once_and_is_counted_for_the_operator() {
    let app = App::start().await;
    let forged = wrong_secret(&app.write_key);
    let before = app.bcrypt_runs();

    for _ in 0..3 {
        let (status, _, v) = app.track_as(&forged, Some([198, 51, 100, 1])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    }
    let token = wrong_secret(&app.admin);
    for _ in 0..3 {
        let (status, _, v) = app.users_as(&token, Some([198, 51, 100, 1])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    }

    assert_eq!(app.bcrypt_runs() - before, 2, "one bcrypt per wrong secret");
    let counts = app.ingest.verifier().stats();
    assert_eq!((counts.tracking_failures, counts.admin_failures), (3, 3));
    let (_, _, health) = app
        .send(
            Request::builder()
                .uri("/healthz")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(health["authentication"]["admin_failures"], 3, "{health}");
}

#[tokio::test]
async fn failures_past_the_limit_from_one_address_answer_429_with_retry_after() {
    let app = App::start().await;
    let (attacker, neighbour) = (Some([198, 51, 100, 7]), Some([198, 51, 100, 8]));
    // The write key was verified before the attack.
    assert_eq!(
        app.track_as(&app.write_key, neighbour).await.0,
        StatusCode::OK
    );
    let limit = VerifierConfig::new(Region::Eu).max_failures;
    for i in 0..limit {
        // Each a different wrong secret: each costs a bcrypt.
        let (status, _, v) = app.track_as(&nth_secret(&app.write_key, i), attacker).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {i}: {v}");
    }
    let runs = app.bcrypt_runs();

    for (api, (status, headers, v)) in [
        (
            "tracking",
            app.track_as(&nth_secret(&app.write_key, limit), attacker)
                .await,
        ),
        (
            "admin",
            app.users_as(&wrong_secret(&app.viewer), attacker).await,
        ),
    ] {
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{api}: {v}");
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(headers[header::RETRY_AFTER], "60", "{api}");
    }
    assert_eq!(
        app.bcrypt_runs(),
        runs,
        "a throttled address costs no bcrypt"
    );
    assert_eq!(
        app.track_as(&app.write_key, attacker).await.0,
        StatusCode::OK,
        "a verified key is not throttled"
    );
    assert_eq!(
        app.users_as(&wrong_secret(&app.viewer), neighbour).await.0,
        StatusCode::UNAUTHORIZED,
        "another address is not throttled"
    );

    app.clock.advance(Duration::seconds(60));
    let (status, _, v) = app
        .track_as(&nth_secret(&app.write_key, limit), attacker)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the window ended: {v}");
}

#[tokio::test]
async fn a_blocked_address_is_refused_before_bcrypt_on_both_apis() {
    let app = App::start().await;
    app.replace_security(&["203.0.113.0/24"], false).await;
    let runs = app.bcrypt_runs();

    let (status, _, v) = app
        .track_as(&wrong_secret(&app.write_key), Some([203, 0, 113, 9]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        v["type"].as_str().unwrap().rsplit('/').next(),
        Some("blocked")
    );
    let (status, _, v) = app
        .users_as(&wrong_secret(&app.viewer), Some([203, 0, 113, 9]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");

    assert_eq!(app.bcrypt_runs(), runs);
}

#[tokio::test]
async fn a_write_key_revoked_through_the_admin_api_is_refused_by_the_very_next_request() {
    let app = App::start().await;
    let created = app
        .post("/admin/v1/api-keys", json!({"kind": "ingest"}))
        .await;
    let key = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.track_as(&key, None).await.0, StatusCode::OK);

    app.ok(
        Method::POST,
        &format!("/admin/v1/api-keys/{id}/revoke"),
        None,
    )
    .await;

    let (status, _, v) = app.track_as(&key, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["detail"], "the API key was revoked");
}

#[tokio::test]
async fn a_destination_created_through_the_admin_api_receives_the_very_next_event() {
    let app = App::start().await;
    assert_eq!(app.track_as(&app.write_key, None).await.0, StatusCode::OK);

    let destination = app.new_destination().await;
    let (status, _, v) = app.track_as(&app.write_key, None).await;

    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(app.queued_for(&destination), 1);
}

#[tokio::test]
async fn a_key_revoked_by_another_process_is_refused_after_5_seconds_and_not_before() {
    let app = App::start().await;
    assert_eq!(app.track_as(&app.write_key, None).await.0, StatusCode::OK);
    let ws = app.control.workspace(&app.ws, T0).await.unwrap().unwrap();
    let write_key = app
        .control
        .api_keys(&app.ws, T0)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kind == KeyKind::Ingest && k.workspace_id == ws.id)
        .unwrap();
    let runs = app.bcrypt_runs();

    // The operator CLI revokes it in the same data directory: no message reaches this process.
    app.other_process().revoke_key(&write_key).await.unwrap();

    app.clock.advance(Duration::milliseconds(4_999));
    assert_eq!(
        app.track_as(&app.write_key, None).await.0,
        StatusCode::OK,
        "verified 4.999 s ago: not read again yet"
    );
    app.clock.advance(Duration::milliseconds(1));
    let (status, _, v) = app.track_as(&app.write_key, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["detail"], "the API key was revoked");
    assert_eq!(
        app.bcrypt_runs(),
        runs,
        "revalidation reads the record, no bcrypt"
    );
}

#[tokio::test]
async fn only_its_own_user_rotates_a_personal_token_and_another_admin_may_only_revoke_it() {
    let app = App::start().await;
    let user = app.new_user("admin").await;
    let own = app.issue_pat(&user).await;
    let own_token = own.secret.expose_secret().to_owned();
    let owners_key = app
        .control
        .api_keys(&app.ws, T0)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.user_id == Some(UserId::owner()))
        .unwrap();

    // The second admin asks for the owner's new token: refused, nothing issued.
    let (status, _, v) = app
        .call(
            Method::POST,
            &format!("/admin/v1/api-keys/{}/rotate", owners_key.id),
            Some(&own_token),
            Some(json!({"overlap_days": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(app.users_as(&app.admin, None).await.0, StatusCode::OK);

    // Each rotates their own.
    let (status, _, v) = app
        .call(
            Method::POST,
            &format!("/admin/v1/api-keys/{}/rotate", own.record.id),
            Some(&own_token),
            Some(json!({"overlap_days": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");

    // And may revoke the other's.
    let (status, _, v) = app
        .as_admin(
            Method::POST,
            &format!("/admin/v1/api-keys/{}/revoke", own.record.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

// ---------------------------------------------------------------------------------------------
// Audit log

#[tokio::test]
async fn the_audit_log_reports_the_first_entry_edited_in_the_database() {
    let app = App::start().await;
    let dst = app.new_destination().await;
    app.ok(
        Method::POST,
        &format!("/admin/v1/destinations/{dst}/pause"),
        None,
    )
    .await;
    app.patch("/admin/v1/workspace", json!({"event_retention_days": 30}))
        .await;
    let v = app.get("/admin/v1/audit-log/verify").await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["entries_checked"], 4, "the genesis entry and three");

    // Someone with database access rewrites history: the pause was never by this actor.
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    let doc: String = conn
        .query_row(
            "SELECT doc FROM audit_log WHERE workspace_id = ?1 AND seq = 3",
            [app.ws.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    let mut entry: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(entry["action"], "destination.pause");
    entry["actor"] = json!("user:usr_somebody_else");
    conn.execute(
        "UPDATE audit_log SET doc = ?1 WHERE workspace_id = ?2 AND seq = 3",
        rusqlite::params![entry.to_string(), app.ws.as_str()],
    )
    .unwrap();

    let v = app.get("/admin/v1/audit-log/verify").await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["first_invalid_seq"], 3);
    assert_eq!(v["first_broken_seq"], 3, "the earlier name stays");
    assert_eq!(v["reason"], "hmac mismatch");
}

#[tokio::test]
async fn the_audit_log_lists_mutations_filtered_by_action_and_actor() {
    let app = App::start().await;
    app.new_destination().await;
    app.new_key().await;
    let all = app.get("/admin/v1/audit-log").await;
    let actions = each_str(&all["entries"], "action");
    assert_eq!(actions, ["destination.create", "api_key.create"]);

    let v = app
        .get("/admin/v1/audit-log?action=api_key.create&actor=user:usr_owner&limit=10")
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    assert_eq!(v["next_after"], Value::Null);
    let v = app
        .get("/admin/v1/audit-log?since=2026-03-02T00:00:00Z")
        .await;
    assert!(v["entries"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_path_under_v1_points_to_the_tracking_api_not_the_admin_openapi() {
    let app = App::start().await;

    let (tracking, headers, v) = app.call(Method::POST, "/v1/events", None, None).await;
    let (admin, _, w) = app.call(Method::GET, "/admin/v1/nothing", None, None).await;

    assert_eq!(tracking, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("/v1/batch"), "{detail}");
    assert!(!detail.contains("openapi"), "{detail}");
    assert_eq!(admin, StatusCode::NOT_FOUND);
    assert!(w["detail"]
        .as_str()
        .unwrap()
        .contains("/admin/v1/openapi.json"));
}

#[tokio::test]
async fn every_admin_answer_is_no_store_and_nosniff_above_all_one_showing_a_secret() {
    let app = App::start().await;
    let (id, _) = app.new_key().await;

    let answers = [
        (
            "create",
            app.as_admin(
                Method::POST,
                "/admin/v1/api-keys",
                Some(json!({"kind": "svc", "role": "viewer"})),
            )
            .await,
        ),
        (
            "rotate",
            app.as_admin(
                Method::POST,
                &format!("/admin/v1/api-keys/{id}/rotate"),
                Some(json!({"overlap_days": 1})),
            )
            .await,
        ),
        (
            "list",
            app.call(Method::GET, "/admin/v1/api-keys", Some(&app.admin), None)
                .await,
        ),
        (
            "unauthenticated",
            app.call(Method::GET, "/admin/v1/workspace", None, None)
                .await,
        ),
        (
            "unknown route",
            app.call(Method::GET, "/admin/v1/nothing", Some(&app.admin), None)
                .await,
        ),
    ];

    for (what, (status, headers, body)) in &answers {
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "no-store",
            "{what} {status}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
        if ["create", "rotate"].contains(what) {
            assert!(body["secret"].is_string(), "{what} shows a secret: {body}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

#[tokio::test]
async fn a_rotated_key_works_until_the_overlap_ends_next_to_its_successor() {
    let app = App::start().await;
    let (old_id, old_secret) = app.new_key().await;

    let v = app
        .post(
            &format!("/admin/v1/api-keys/{old_id}/rotate"),
            json!({"overlap_days": 2}),
        )
        .await;
    let new_id = v["key"]["id"].as_str().unwrap().to_owned();
    let new_secret = v["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert_eq!(v["key"]["role"], "viewer");

    // Both are listed; the old one now ends with the overlap.
    let keys = app.get("/admin/v1/api-keys").await;
    let find = |id: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed"))
    };
    let overlap_end = T0 + Duration::days(2);
    assert_eq!(
        find(&old_id)["expires_at"],
        overlap_end
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    find(&new_id);
    assert!(!keys
        .to_string()
        .contains(&old_secret[old_secret.len() - 32..]));

    for secret in [&old_secret, &new_secret] {
        let (status, _, _) = app
            .call(Method::GET, "/admin/v1/workspace", Some(secret), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    app.clock.advance(Duration::days(2) + Duration::seconds(1));
    let (status, _, v) = app
        .call(Method::GET, "/admin/v1/workspace", Some(&old_secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/workspace", Some(&new_secret), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_new_key_shows_its_secret_once_and_listings_never() {
    let app = App::start().await;
    let (status, _, v) = app
        .as_admin(
            Method::POST,
            "/admin/v1/api-keys",
            Some(json!({"kind": "ingest", "name": "web", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = v["secret"].as_str().unwrap();
    assert!(secret.starts_with("tl_ingest_eu_"));
    assert_eq!(v["key"]["role"], Value::Null);
    assert_eq!(
        v["key"]["expires_at"],
        (T0 + Duration::days(30))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let list = app.get("/admin/v1/api-keys").await;
    assert!(!list.to_string().contains(secret));
    let audit = app.get("/admin/v1/audit-log").await;
    assert!(!audit.to_string().contains(secret));
}

// ---------------------------------------------------------------------------------------------
// Destinations

#[tokio::test]
async fn destination_secrets_are_never_returned_only_fingerprint_and_last_four() {
    let app = App::start().await;
    let mut bodies = Vec::new();
    let (status, _, created) = app
        .as_admin(Method::POST, "/admin/v1/destinations", Some(meta()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_owned();
    let hint = &created["secrets"]["access_token"];
    assert_eq!(hint["last4"], "9Z7Q");
    assert_eq!(hint["fingerprint"].as_str().unwrap().len(), 12);
    bodies.push(created.clone());

    bodies.push(app.get(&format!("/admin/v1/destinations/{id}")).await);
    bodies.push(app.get("/admin/v1/destinations").await);
    let replaced = "EAAB-a-new-token-also-never-shown-K2P8"; // pragma: allowlist secret
    let patched = app
        .patch(
            &format!("/admin/v1/destinations/{id}"),
            json!({"secrets": {"access_token": replaced}, "name": "Meta (prod)"}),
        )
        .await;
    assert_eq!(patched["secrets"]["access_token"]["last4"], "K2P8");
    bodies.push(patched);
    bodies.push(app.get("/admin/v1/audit-log").await);

    for body in &bodies {
        let text = body.to_string();
        for secret in [META_TOKEN, replaced] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
            assert!(
                !text.contains(&secret[..12]),
                "part of a secret leaked: {text}"
            );
        }
    }
    let audit = bodies.last().unwrap();
    let update = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "destination.update")
        .unwrap();
    assert_eq!(
        update["summary"]["secrets"]["access_token"],
        json!({"from": hint["fingerprint"],
               "to": bodies[3]["secrets"]["access_token"]["fingerprint"]})
    );
}

#[tokio::test]
async fn secret_fingerprints_are_keyed_per_workspace_not_a_sha256_prefix() {
    let app = App::start().await;
    let fingerprint = |v: &Value| v["secrets"]["access_token"]["fingerprint"].clone();

    let first = app.post("/admin/v1/destinations", meta()).await;
    let second = app.post("/admin/v1/destinations", meta()).await;
    let (status, _, elsewhere) = app
        .call(
            Method::POST,
            "/admin/v1/destinations",
            Some(&app.other),
            Some(meta()),
        )
        .await;

    assert_eq!(status, StatusCode::CREATED);
    let plain = &tracklayer_core::identity::sha256_hex(META_TOKEN)[..12];
    assert_ne!(fingerprint(&first), json!(plain));
    assert_eq!(fingerprint(&first), fingerprint(&second));
    assert_ne!(fingerprint(&first), fingerprint(&elsewhere));
}

fn ga4() -> Value {
    json!({"name": "GA4", "kind": "ga4", "config": {"measurement_id": "G-ABC123"},
           "secrets": {"api_secret": "ga4-api-secret-never-shown"}})
}

fn tiktok() -> Value {
    json!({"name": "TikTok", "kind": "tiktok", "config": {"pixel_code": "CPIXEL123"},
           "secrets": {"access_token": "tiktok-token-never-shown"}})
}

#[tokio::test]
async fn editors_cannot_change_where_a_destination_sends_or_its_consent_purposes() {
    let app = App::start().await;
    let cases = [
        (
            meta(),
            json!({"endpoint": "https://capi.example.com"}),
            "endpoint",
        ),
        (
            meta(),
            json!({"config": {"pixel_id": "999", "api_version": "v21.0"}}),
            "config.pixel_id",
        ),
        (meta(), json!({"consent_purposes": []}), "consent_purposes"),
        (
            ga4(),
            json!({"config": {"measurement_id": "G-OTHER1"}}),
            "config.measurement_id",
        ),
        (
            ga4(),
            json!({"endpoint": "https://mp.example.com"}),
            "endpoint",
        ),
        (
            tiktok(),
            json!({"config": {"pixel_code": "CATTACKER"}}),
            "config.pixel_code",
        ),
        (
            webhook(),
            json!({"config": {"url": "https://attacker.example.com/in"}}),
            "config.url",
        ),
        (
            webhook(),
            json!({"consent_purposes": ["analytics"]}),
            "consent_purposes",
        ),
    ];
    for (spec, patch, field) in cases {
        let created = app.post("/admin/v1/destinations", spec).await;
        let path = format!("/admin/v1/destinations/{}", created["id"].as_str().unwrap());

        let (status, _, v) = app
            .call(Method::PATCH, &path, Some(&app.editor), Some(patch.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{patch}: {v}");
        assert_eq!(v["field"], field, "{patch}: {v}");
        let unchanged = app.get(&path).await;
        assert_eq!(unchanged, created, "{patch}");

        let changed = app.patch(&path, patch.clone()).await;
        assert_ne!(changed, created, "{patch}");
    }
}

#[tokio::test]
async fn editors_change_names_filters_and_settings_that_do_not_route() {
    let app = App::start().await;
    let created = app.post("/admin/v1/destinations", meta()).await;
    let path = format!("/admin/v1/destinations/{}", created["id"].as_str().unwrap());
    // The whole config sent back with the routing keys as they are is no routing change.
    let patch = json!({"name": "Meta (test)", "paused": true,
        "events": {"allow": ["Order Completed"]},
        "config": {"pixel_id": "1234567890", "api_version": "v22.0", "test_event_code": "TEST1"}});

    let (status, _, v) = app
        .call(Method::PATCH, &path, Some(&app.editor), Some(patch))
        .await;

    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["config"]["test_event_code"], "TEST1");
    assert_eq!(v["name"], "Meta (test)");
}

#[tokio::test]
async fn a_destination_update_is_audited_with_old_and_new_values_and_only_secret_fingerprints() {
    let app = App::start().await;
    let created = app.post("/admin/v1/destinations", meta()).await;
    let id = created["id"].as_str().unwrap();
    let new_token = "EAAB-rotated-token-never-shown-X1Y2"; // pragma: allowlist secret
    let updated = app
        .patch(
            &format!("/admin/v1/destinations/{id}"),
            json!({"endpoint": "https://capi.example.com",
                "config": {"pixel_id": "555", "api_version": "v21.0"},
                "consent_purposes": ["advertising", "analytics"],
                "secrets": {"access_token": new_token}}),
        )
        .await;

    let log = app
        .get("/admin/v1/audit-log?action=destination.update")
        .await;
    let entry = &log["entries"][0];
    assert_eq!(entry["target"], id);
    assert_eq!(
        entry["summary"]["changed"],
        json!({
            "config.pixel_id": {"from": "1234567890", "to": "555"},
            "consent_purposes": {"from": ["advertising"], "to": ["advertising", "analytics"]},
            "endpoint": {"from": null, "to": "https://capi.example.com"},
        })
    );
    assert_eq!(
        entry["summary"]["secrets"],
        json!({"access_token": {
            "from": created["secrets"]["access_token"]["fingerprint"],
            "to": updated["secrets"]["access_token"]["fingerprint"],
        }})
    );
    let text = log.to_string();
    assert!(
        !text.contains(new_token) && !text.contains(META_TOKEN),
        "{text}"
    );
}

/// A loopback HTTP listener that answers 200 to everything and keeps the bytes it received.
struct Listener {
    url: String,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Listener {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", socket.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (bytes, count) = (received.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = socket.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let bytes = bytes.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 64 * 1024];
                    let mut request = Vec::new();
                    // Headers, then as much body as Content-Length says.
                    loop {
                        let n = conn.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if request.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    bytes.lock().unwrap().extend_from_slice(&request);
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                        .await;
                });
            }
        });
        Self {
            url,
            received,
            connections,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn an_editor_cannot_point_a_destination_at_a_listener_to_receive_its_secret() {
    let app = App::on_the_network().await;
    let (legit, attacker) = (Listener::start().await, Listener::start().await);
    // The admin points Meta at the workspace's own (legitimate) gateway.
    let mut spec = meta();
    spec["endpoint"] = json!(legit.url);
    let created = app.post("/admin/v1/destinations", spec).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/admin/v1/destinations/{id}");

    // The editor tries every way to redirect it, then asks for a test send.
    for patch in [
        json!({"endpoint": attacker.url}),
        json!({"endpoint": null}),
        json!({"config": {"pixel_id": "666", "api_version": "v21.0"}}),
    ] {
        let (status, _, v) = app
            .call(Method::PATCH, &path, Some(&app.editor), Some(patch.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{patch}: {v}");
    }
    let (status, _, v) = app.send_test_event(id, &app.editor).await;

    // The test event went where the admin said, with the token; the attacker got nothing.
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "delivered", "{v}");
    assert!(legit.text().contains(META_TOKEN), "{}", legit.text());
    assert_eq!(
        attacker
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert!(!attacker.text().contains(META_TOKEN));
}

#[tokio::test]
async fn a_test_send_is_audited_with_its_outcome() {
    let app = App::start().await;
    let id = app.new_destination().await;

    app.send_test_event(&id, &app.editor).await;

    let log = app.get("/admin/v1/audit-log?action=destination.test").await;
    let entry = &log["entries"][0];
    assert_eq!(entry["target"], id);
    assert!(
        entry["actor"].as_str().unwrap().starts_with("svc:"),
        "{entry}"
    );
    assert_eq!(
        entry["summary"],
        json!({"outcome": "delivered", "http_status": 200})
    );
}

#[tokio::test]
async fn another_workspaces_destination_is_not_found_and_not_listed() {
    let app = App::start().await;
    let path = format!("/admin/v1/destinations/{}", app.other_destination);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Mine now"}))),
        (Method::DELETE, None),
    ] {
        let (status, _, v) = app
            .call(method.clone(), &path, Some(&app.admin), body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {v}");
        assert_eq!(v["detail"], "destination not found");
    }
    let list = app.get("/admin/v1/destinations").await;
    assert!(!list.to_string().contains(&app.other_destination));
    // Still there for its own workspace.
    let (status, _, _) = app.call(Method::GET, &path, Some(&app.other), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_test_event_reaches_the_destination_and_is_not_stored() {
    let app = App::start().await;
    let id = app.new_destination().await;

    let (status, _, v) = app.send_test_event(&id, &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    assert_eq!(v["outcome"], "delivered", "{v}");
    assert_eq!(v["http_status"], 200);
    assert_eq!(v["event_name"], TEST_EVENT_NAME);
    let sent = app.egress.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url, "https://hooks.example.com/tracklayer");
    assert!(String::from_utf8_lossy(&sent[0].body).contains(TEST_EVENT_NAME));
    assert!(sent[0]
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("webhook-signature")));
    assert_eq!(app.stored_events(), 0);
    let log = app
        .get(&format!("/admin/v1/destinations/{id}/delivery-log"))
        .await;
    assert_eq!(log, json!({"deliveries": [], "next_cursor": null}));
}

#[tokio::test]
async fn patching_security_changes_only_the_fields_sent_and_is_audited_with_old_and_new_values() {
    let app = App::start().await;
    app.replace_security(&["203.0.113.0/24"], false).await;

    let v = app
        .patch("/admin/v1/security", json!({"egress_paused": true}))
        .await;

    let want = json!({"ip_blocklist": ["203.0.113.0/24"], "egress_paused": true});
    assert_eq!(v, want);
    assert_eq!(app.get("/admin/v1/security").await, want);
    let (status, _, v) = app.track_as(&app.write_key, Some([203, 0, 113, 9])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the blocklist stayed: {v}");
    let log = app.get("/admin/v1/audit-log?action=security.update").await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(
        entries.last().unwrap()["summary"]["changed"],
        json!({"egress_paused": {"from": false, "to": true}}),
        "{log}"
    );
}

#[tokio::test]
async fn a_security_patch_reaches_ingest_at_once() {
    let app = App::start().await;
    let (status, _, _) = app.track_as(&app.write_key, Some([198, 51, 100, 7])).await;
    assert!(status.is_success(), "{status}");

    app.patch(
        "/admin/v1/security",
        json!({"ip_blocklist": ["198.51.100.0/24"]}),
    )
    .await;

    let (status, _, v) = app.track_as(&app.write_key, Some([198, 51, 100, 7])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(app.get("/admin/v1/security").await["egress_paused"], false);
}

#[tokio::test]
async fn replacing_security_without_a_field_is_refused_naming_the_field() {
    let app = App::start().await;
    app.replace_security(&["203.0.113.0/24"], false).await;

    for (body, field) in [
        (json!({"egress_paused": true}), "ip_blocklist"),
        (json!({"ip_blocklist": []}), "egress_paused"),
    ] {
        app.assert_invalid_field(Method::PUT, "/admin/v1/security", body, field)
            .await;
    }
    assert_eq!(
        app.get("/admin/v1/security").await,
        json!({"ip_blocklist": ["203.0.113.0/24"], "egress_paused": false})
    );
    let (_, _, doc) = app
        .call(Method::GET, "/admin/v1/openapi.json", None, None)
        .await;
    let patch = &doc["paths"]["/admin/v1/security"]["patch"];
    assert_eq!(patch["operationId"], "patchSecurity", "{patch}");
}

#[tokio::test]
async fn a_keys_last_use_is_recorded_at_most_once_a_minute() {
    let app = App::start().await;
    let last_used = || async {
        let keys = app.get("/admin/v1/api-keys").await;
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| app.write_key.starts_with(k["prefix"].as_str().unwrap()))
            .map(|k| k["last_used_at"].clone())
            .unwrap_or_else(|| panic!("the write key is not listed: {keys}"))
    };
    let at = |t: OffsetDateTime| {
        json!(t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap())
    };

    for _ in 0..3 {
        let (status, _, v) = app.track_as(&app.write_key, None).await;
        assert!(status.is_success(), "{status} {v}");
        app.clock.advance(Duration::seconds(10));
    }
    assert_eq!(
        last_used().await,
        at(T0),
        "one write for three requests within a minute"
    );

    app.clock.advance(Duration::seconds(31));
    let (status, _, _) = app.track_as(&app.write_key, None).await;
    assert!(status.is_success());
    assert_eq!(last_used().await, at(T0 + Duration::seconds(61)));
}

#[tokio::test]
async fn a_test_event_is_refused_while_egress_is_paused() {
    let app = App::start().await;
    let id = app.new_destination().await;
    app.replace_security(&[], true).await;
    let (status, _, v) = app.send_test_event(&id, &app.admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(app.egress.sent().is_empty());
}

#[tokio::test]
async fn each_destination_says_when_the_workspaces_egress_is_paused() {
    let app = App::start().await;
    let id = app.new_destination().await;
    let one = format!("/admin/v1/destinations/{id}");
    assert_eq!(app.get(&one).await["egress_paused"], false);

    app.replace_security(&[], true).await;

    let (status, _, v) = app.call(Method::GET, &one, Some(&app.viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&v["paused"], &v["egress_paused"]),
        (&json!(false), &json!(true)),
        "{v}"
    );
    let all = app.get("/admin/v1/destinations").await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|d| d["egress_paused"] == true),
        "{all}"
    );
}

#[tokio::test]
async fn an_event_trace_shows_decisions_without_raw_identifiers() {
    let app = App::start().await;
    app.new_destination().await;
    let id = app.tracked_event().await;
    let v = app.get(&format!("/admin/v1/events/{id}")).await;
    assert_eq!(v["event_id"], id);
    assert_eq!(v["name"], "Order Completed");
    assert_eq!(v["routing"][0]["routed"], true, "{v}");
    assert!(v["routing"][0]["consent"]["reason"].is_string());
    assert!(!v.to_string().contains("user-1"), "{v}");
}

#[tokio::test]
async fn an_event_trace_is_found_by_its_message_id_in_the_callers_workspace_only() {
    let app = App::start().await;
    app.new_destination().await;
    let id = app.tracked_event().await;
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    let doc: String = conn
        .query_row(
            "SELECT w.workspace_id, e.doc FROM events e
             JOIN workspace_numbers w ON w.number = e.workspace
             WHERE e.event_id = unhex(substr(?1, 5))",
            [&id],
            |r| {
                Ok(
                    tracklayer_local::event_row_json(&r.get::<_, String>(0)?, r.get_ref(1)?)
                        .unwrap()
                        .to_string(),
                )
            },
        )
        .unwrap();
    let mine: StoredEvent = serde_json::from_str(&doc).unwrap();
    let path = format!("/admin/v1/events?message_id={}", mine.message_id);
    // Another workspace holds an event with the same messageId.
    let theirs_ws = app
        .call(Method::GET, "/admin/v1/workspace", Some(&app.other), None)
        .await
        .2["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut theirs = mine.clone();
    theirs.workspace_id = serde_json::from_value(json!(theirs_ws)).unwrap();
    theirs.event_id = tracklayer_core::event::EventId(uuid::Uuid::now_v7());
    let store =
        tracklayer_local::SqliteEventStore::new(tracklayer_local::Db::open(&app.db_path).unwrap());
    let recorded = tracklayer_core::ports::EventWriter::record(
        &store,
        &[tracklayer_core::ports::NewEvent {
            event: theirs.clone(),
            operational: None,
            dedup_until: T0 + Duration::hours(24),
        }],
        T0,
    )
    .await
    .unwrap();
    assert_eq!(recorded, vec![true]);

    let (status, _, v) = app.call(Method::GET, &path, Some(&app.viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let traces = v["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "{v}");
    assert_eq!(traces[0]["event_id"], id);
    assert_eq!(traces[0]["routing"][0]["routed"], true, "{v}");
    assert!(!v.to_string().contains("user-1"), "{v}");

    let (status, _, v) = app.call(Method::GET, &path, Some(&app.other), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["traces"][0]["event_id"], theirs.event_id.to_string());
    assert_eq!(v["traces"].as_array().unwrap().len(), 1, "{v}");

    // After the dedup window (24 hours) the messageId leads nowhere.
    app.clock.advance(Duration::hours(25));
    let (status, _, v) = app.call(Method::GET, &path, Some(&app.viewer), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["field"], "message_id", "{v}");
}

#[tokio::test]
async fn an_unknown_or_invalid_message_id_is_a_problem_naming_it() {
    let app = App::start().await;
    for (path, expected) in [
        (
            "/admin/v1/events?message_id=never-sent".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/admin/v1/events?message_id={}", "m".repeat(257)),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/admin/v1/events?message_id=".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/admin/v1/events?message_id=a%0Ab".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, headers, v) = app.call(Method::GET, &path, Some(&app.viewer), None).await;
        assert_eq!(status, expected, "{path}: {v}");
        assert_eq!(v["field"], "message_id", "{path}: {v}");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{path}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Users

#[tokio::test]
async fn an_admin_changes_the_owners_email_and_the_audit_holds_only_fingerprints() {
    let app = App::start().await;
    let users = app.get("/admin/v1/users").await;
    let owner = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "usr_owner")
        .unwrap();
    assert!(
        owner["email"].as_str().unwrap().ends_with(".invalid"),
        "{owner}"
    );

    let v = app
        .patch(
            "/admin/v1/users/usr_owner",
            json!({"email": "  Owner@Shop.Example "}),
        )
        .await;
    assert_eq!(v["email"], "owner@shop.example", "{v}");
    assert_eq!(v["role"], "admin", "{v}");
    let users = app.get("/admin/v1/users").await;
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["id"] == "usr_owner" && u["email"] == "owner@shop.example"));

    let log = app.get("/admin/v1/audit-log?action=user.set_email").await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{log}");
    let entry = &entries[0];
    assert_eq!(entry["target"], "usr_owner");
    let (from, to) = (&entry["summary"]["from"], &entry["summary"]["to"]);
    assert!(from.is_string() && to.is_string() && from != to, "{entry}");
    let text = entry.to_string();
    assert!(
        !text.contains("shop.example") && !text.contains(".invalid"),
        "{text}"
    );
}

#[tokio::test]
async fn a_users_email_is_validated_and_unique_in_the_workspace() {
    let app = App::start().await;
    let taken = app
        .post(
            "/admin/v1/users",
            json!({"email": "taken@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(taken["email"], "taken@example.com");
    for email in ["TAKEN@example.com", "taken@example.com"] {
        let (status, _, v) = app
            .as_admin(
                Method::PATCH,
                "/admin/v1/users/usr_owner",
                Some(json!({ "email": email })),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{email}: {v}");
    }
    for email in [
        "not-an-email",
        "a b@example.com",
        "@example.com",
        "x@localhost",
    ] {
        app.assert_invalid_field(
            Method::PATCH,
            "/admin/v1/users/usr_owner",
            json!({ "email": email }),
            "email",
        )
        .await;
    }
    let (status, _, v) = app
        .as_admin(
            Method::PATCH,
            "/admin/v1/users/usr_nobody",
            Some(json!({"email": "new@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}

/// The id is parsed where it enters, before the caller's rights or the body are looked at:
/// a malformed id names no user, like an unknown one.
#[tokio::test]
async fn a_malformed_user_id_names_no_user_whatever_the_body() {
    let app = App::start().await;
    for (method, body) in [
        (Method::PATCH, Some(json!({"role": "superuser"}))),
        (Method::PATCH, Some(json!({"email": "new@example.com"}))),
        (Method::DELETE, None),
    ] {
        for id in ["USR_OWNER", "owner", "usr_", "usr_a-b"] {
            let (status, _, v) = app
                .as_admin(
                    method.clone(),
                    &format!("/admin/v1/users/{id}"),
                    body.clone(),
                )
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {id}: {v}");
            assert_eq!(v["detail"], "user not found", "{v}");
        }
    }
}

#[tokio::test]
async fn a_user_changes_their_own_email_but_not_anothers_nor_their_role() {
    let app = App::start().await;
    let user = app.new_user("viewer").await;
    let token = app.pat_of(&user).await;
    let own = format!("/admin/v1/users/{user}");
    let (status, _, v) = app
        .call(
            Method::PATCH,
            &own,
            Some(&token),
            Some(json!({"email": "me@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["email"], "me@example.com");
    for (path, body) in [
        (
            "/admin/v1/users/usr_owner",
            json!({"email": "mine@example.com"}),
        ),
        (own.as_str(), json!({"role": "admin"})),
    ] {
        let (status, _, v) = app
            .call(Method::PATCH, path, Some(&token), Some(body))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {v}");
    }
    // A service token is no user: only an admin one changes emails.
    let (status, _, v) = app
        .call(
            Method::PATCH,
            &own,
            Some(&app.editor),
            Some(json!({"email": "editor@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn the_last_admin_can_be_neither_demoted_nor_removed() {
    let app = App::start().await;
    let (status, _, v) = app
        .as_admin(
            Method::PATCH,
            "/admin/v1/users/usr_owner",
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (status, _, v) = app
        .as_admin(Method::DELETE, "/admin/v1/users/usr_owner", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");

    // With a second admin, the owner may step down.
    let second = app.new_user("admin").await;
    app.patch("/admin/v1/users/usr_owner", json!({"role": "editor"}))
        .await;
    let users = app.get("/admin/v1/users").await;
    let roles: Vec<(String, String)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap().into(),
                u["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(roles.contains(&("usr_owner".into(), "editor".into())));
    assert!(roles.contains(&(second, "admin".into())));
    // The owner's token now carries the editor role.
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/api-keys", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Two admins changing each other at the same moment: exactly one succeeds, the other gets
/// 409, and an admin remains.
async fn two_admins_at_once(method: Method, body: Option<Value>) {
    let app = App::start().await;
    let second = app.new_user("admin").await;
    let second_path = format!("/admin/v1/users/{second}");
    // A service token acts on both: its role is its own, whatever happens to the users.
    let svc = app
        .post(
            "/admin/v1/api-keys",
            json!({"kind": "svc", "role": "admin"}),
        )
        .await;
    let token = svc["secret"].as_str();
    let (a, b) = tokio::join!(
        app.call(
            method.clone(),
            "/admin/v1/users/usr_owner",
            token,
            body.clone()
        ),
        app.call(method.clone(), &second_path, token, body.clone()),
    );
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    let ok = if method == Method::DELETE { 204 } else { 200 };
    assert_eq!(statuses, [ok, 409], "{} {}", a.2, b.2);
    let admins = app
        .service
        .users(&Principal::operator(&app.ws))
        .await
        .unwrap()
        .iter()
        .filter(|u| u.role == Role::Admin)
        .count();
    assert_eq!(admins, 1);
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    two_admins_at_once(Method::PATCH, Some(json!({"role": "editor"}))).await;
}

#[tokio::test]
async fn two_admins_removing_each_other_at_once_leave_one_admin() {
    two_admins_at_once(Method::DELETE, None).await;
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn validation_errors_name_the_field() {
    let app = App::start().await;
    let cases = [
        (
            Method::POST,
            "/admin/v1/destinations",
            json!({"name": "M", "kind": "meta_capi",
            "config": {"pixel_id": "abc", "api_version": "v21.0"},
            "secrets": {"access_token": "t"}}),
            422,
            "config.pixel_id",
        ),
        (
            Method::POST,
            "/admin/v1/destinations",
            json!({"name": "G", "kind": "ga4",
            "config": {"measurement_id": "G-ABC"}}),
            422,
            "secrets.api_secret",
        ),
        (
            Method::POST,
            "/admin/v1/destinations",
            json!({"name": "W", "kind": "webhook",
            "secrets": {"signing_secret": 7}}),
            400,
            "secrets.signing_secret",
        ),
        (
            Method::POST,
            "/admin/v1/destinations",
            json!({"name": "W", "kind": "fax"}),
            400,
            "kind",
        ),
        (
            Method::PATCH,
            "/admin/v1/workspace",
            json!({"event_retention_days": 400}),
            422,
            "event_retention_days",
        ),
        (
            Method::PATCH,
            "/admin/v1/workspace",
            json!({"event_retention_days": "long"}),
            400,
            "event_retention_days",
        ),
        (
            Method::PATCH,
            "/admin/v1/workspace",
            json!({"colour": "blue"}),
            400,
            "",
        ),
        (
            Method::PUT,
            "/admin/v1/security",
            json!({"ip_blocklist": ["10.0.0.0/8", "not-an-ip"]}),
            422,
            "ip_blocklist[1]",
        ),
        (
            Method::POST,
            "/admin/v1/users",
            json!({"email": "not an email", "role": "viewer"}),
            422,
            "email",
        ),
        (
            Method::POST,
            "/admin/v1/api-keys",
            json!({"kind": "svc"}),
            422,
            "role",
        ),
        (
            Method::POST,
            "/admin/v1/api-keys",
            json!({"kind": "ingest", "expires_in_days": 91}),
            422,
            "expires_in_days",
        ),
        (
            Method::PUT,
            "/admin/v1/consent-policy",
            json!({"eu_default": "maybe", "us_default": "opt_out", "honor_gpc": true}),
            400,
            "eu_default",
        ),
        (
            Method::PUT,
            "/admin/v1/consent-policy",
            json!({"eu_default": "opt_in", "us_default": "opt_out", "honor_gpc": true,
                "gpc": "sometimes"}),
            400,
            "gpc",
        ),
        (
            Method::POST,
            "/admin/v1/destinations",
            json!({"name": "W", "kind": "webhook",
            "config": {"url": "https://hooks.example.com/in"},
            "secrets": {"signing_secret": "whsec_not base64!"}}),
            422,
            "secrets.signing_secret",
        ),
        (
            Method::POST,
            "/admin/v1/destinations",
            json!({"name": "W", "kind": "webhook", "endpoint": "https://other.example.com",
            "config": {"url": "https://hooks.example.com/in"},
            "secrets": {"signing_secret": SECRET}}),
            422,
            "endpoint",
        ),
        (
            Method::POST,
            "/admin/v1/destinations",
            json!({"name": "Warehouse\u{202e}exe.gpj", "kind": "webhook",
            "config": {"url": "https://hooks.example.com/in"},
            "secrets": {"signing_secret": SECRET}}),
            422,
            "name",
        ),
        (
            Method::PATCH,
            "/admin/v1/workspace",
            json!({"name": "Acme\u{0}"}),
            422,
            "name",
        ),
        (
            Method::PATCH,
            "/admin/v1/workspace",
            json!({"name": "Acme\u{2066}Evil\u{2069}"}),
            422,
            "name",
        ),
        (
            Method::POST,
            "/admin/v1/api-keys",
            json!({"kind": "ingest", "name": "web\u{1b}[31msite"}),
            422,
            "name",
        ),
        (
            Method::POST,
            "/admin/v1/api-keys",
            json!({"kind": "ingest", "name": "web\u{200b}site"}),
            422,
            "name",
        ),
    ];
    for (method, path, body, status, field) in cases {
        let (got, _, v) = app
            .call(method.clone(), path, Some(&app.admin), Some(body.clone()))
            .await;
        assert_eq!(got.as_u16(), status, "{method} {path} {body}: {v}");
        if field.is_empty() {
            assert!(v["detail"].as_str().unwrap().contains("colour"), "{v}");
        } else {
            assert_eq!(v["field"], field, "{method} {path} {body}: {v}");
        }
    }
    let (status, _, v) = app
        .as_admin(Method::GET, "/admin/v1/audit-log?limit=5000", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "limit");
    let (status, _, v) = app
        .as_admin(Method::GET, "/admin/v1/audit-log?since=yesterday", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "since");
}

#[tokio::test]
async fn malformed_bodies_unknown_routes_and_methods_answer_problem_json() {
    let app = App::start().await;
    for body in ["{", "[]", "42", "", "{\"name\": \"a\"} trailing"] {
        let (status, _, v) = app
            .raw(
                Method::PATCH,
                "/admin/v1/workspace",
                Some(&app.admin),
                Some(body.into()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {v}");
    }
    let (status, _, _) = app
        .raw(
            Method::POST,
            "/admin/v1/api-keys",
            Some(&app.admin),
            Some("x".repeat(100_000)),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/nothing-here", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = app
        .call(Method::PUT, "/admin/v1/workspace", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(headers[header::ALLOW].to_str().unwrap().contains("PATCH"));
    let (status, _, v) = app
        .call(Method::GET, "/admin/v1/workspace", Some(US_TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{v}");
    assert_eq!(v["endpoint"], "https://us.api.tracklayer.io");
    let (status, _, _) = app
        .call(
            Method::GET,
            "/admin/v1/workspace",
            Some(&app.write_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_is_3_1_with_bearer_auth_and_problem_errors() {
    let app = App::start().await;
    let (status, _, doc) = app
        .call(Method::GET, "/admin/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if path.ends_with("openapi.json") {
                continue;
            }
            assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
            for status in ["401", "500", "503"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
    }
    assert_eq!(
        doc["components"]["responses"]["Unauthorized"]["content"][PROBLEM_JSON]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
}

#[tokio::test]
async fn replay_takes_an_optional_time_range() {
    let app = App::start().await;
    let id = app.new_destination().await;
    let v = app
        .ok(
            Method::POST,
            &format!("/admin/v1/destinations/{id}/replay"),
            None,
        )
        .await;
    assert_eq!(v["replayed_messages"], 0);
    let v = app
        .post(
            &format!("/admin/v1/destinations/{id}/replay"),
            json!({"since": "2026-03-01T00:00:00Z", "until": "2026-03-02t00:00:00z"}),
        )
        .await;
    assert_eq!(v["destination_id"], id);
    let (status, _, v) = app
        .as_admin(
            Method::POST,
            &format!("/admin/v1/destinations/{id}/replay"),
            Some(json!({"since": "last week"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "since");
}

// ---------------------------------------------------------------------------------------------
// Data lifecycle: retention, BYOK, region

const CUSTOMER_KEY: &str =
    "arn:aws:kms:eu-central-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";

impl App {
    /// Where the file keyring looks for the customer key `CUSTOMER_KEY` (its "KMS key").
    fn customer_key_file(&self) -> PathBuf {
        FileKeyring::customer_key_file(&self._dir.path().join("customer-keys"), CUSTOMER_KEY)
    }

    /// (message id, expiry) of the workspace's stored events, by message id.
    fn expiry_of_events(&self) -> Vec<(String, String)> {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT doc FROM events WHERE workspace =
                 (SELECT number FROM workspace_numbers WHERE workspace_id = ?1)",
            )
            .unwrap();
        let mut out: Vec<(String, String)> = stmt
            .query_map([self.ws.as_str()], |r| {
                Ok(
                    tracklayer_local::event_row_json(self.ws.as_str(), r.get_ref(0)?)
                        .unwrap()
                        .to_string(),
                )
            })
            .unwrap()
            .map(|d| {
                let v: Value = serde_json::from_str(&d.unwrap()).unwrap();
                (
                    v["message_id"].as_str().unwrap().to_owned(),
                    v["expires_at"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    async fn track(&self, message_id: &str) -> (StatusCode, Value) {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.write_key));
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/track")
            .header(header::AUTHORIZATION, format!("Basic {auth}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"event": "Order Completed", "userId": "user-1",
                       "messageId": message_id})
                .to_string(),
            ))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn audit_actions(&self) -> Vec<Value> {
        self.get("/admin/v1/audit-log?limit=1000").await["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn retention_shows_every_data_class_and_only_admins_change_it() {
    let app = App::start().await;
    let v = app.get("/admin/v1/retention").await;
    assert_eq!(
        v,
        json!({"event_retention_days": 180, "ip_user_agent_retention_days": 30,
               "delivery_log_retention_days": 30, "audit_log_retention_days": 365,
               "account_data_days_after_end": 90})
    );
    let (status, _, _) = app
        .call(
            Method::PUT,
            "/admin/v1/retention",
            Some(&app.editor),
            Some(json!({"event_retention_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for bad in [json!(0), json!(366), json!(70000), json!(-1)] {
        app.assert_invalid_field(
            Method::PUT,
            "/admin/v1/retention",
            json!({"event_retention_days": bad}),
            "event_retention_days",
        )
        .await;
    }
    let v = app
        .put("/admin/v1/retention", json!({"event_retention_days": 30}))
        .await;
    assert_eq!(v["event_retention_days"], 30);
    let entries = app.audit_actions().await;
    let change = entries
        .iter()
        .find(|e| e["action"] == "retention.update")
        .expect("the change is audited");
    assert_eq!(
        change["summary"]["event_retention_days"],
        json!({"from": 180, "to": 30})
    );
}

#[tokio::test]
async fn a_retention_change_applies_to_events_written_afterwards() {
    let app = App::start().await;
    assert_eq!(app.track("before-change").await.0, StatusCode::OK);
    app.put("/admin/v1/retention", json!({"event_retention_days": 30}))
        .await;
    // Past ingest's few seconds of cached workspace settings.
    app.clock.advance(Duration::minutes(2));
    assert_eq!(app.track("after-change").await.0, StatusCode::OK);
    assert_eq!(
        app.expiry_of_events(),
        vec![
            ("after-change".to_owned(), "2026-03-31T12:02:00Z".to_owned()),
            (
                "before-change".to_owned(),
                "2026-08-28T12:00:00Z".to_owned()
            ),
        ],
        "180 days for the first event, 30 for the second"
    );
}

// ---------------------------------------------------------------------------------------------
// Closing the workspace: life of account plus 90 days

impl App {
    async fn close(&self, token: &str, confirm: Value) -> (StatusCode, Value) {
        let (status, _, v) = self
            .call(
                Method::POST,
                "/admin/v1/workspace/close",
                Some(token),
                Some(json!({ "confirm": confirm })),
            )
            .await;
        (status, v)
    }

    fn destinations_stored(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM destinations WHERE workspace_id = ?1",
            [self.ws.as_str()],
            |r| r.get(0),
        )
        .unwrap()
    }
}

#[tokio::test]
async fn closing_the_workspace_revokes_every_key_deletes_destinations_and_is_audited() {
    let app = App::start().await;
    app.new_destination().await;
    assert_eq!(app.track("before-closing").await.0, StatusCode::OK);

    let (status, v) = app.close(&app.admin, json!(app.ws.as_str())).await;

    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({
            "workspace_id": app.ws.as_str(),
            "closed_at": "2026-03-01T12:00:00Z",
            "account_data_deleted_after": "2026-05-30T12:00:00Z",
            "keys_revoked": 4,
            "destinations_deleted": 1,
        }),
        "the owner's token, the write key and the editor's and viewer's tokens"
    );
    assert_eq!(app.destinations_stored(), 0, "secrets end with the account");
    for token in [&app.admin, &app.editor, &app.viewer] {
        let (status, _, v) = app
            .call(Method::GET, "/admin/v1/workspace", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!(v["detail"], "the API key was revoked");
    }
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/workspace", Some(&app.other), None)
        .await;
    assert_eq!(status, StatusCode::OK, "another workspace is not affected");

    // The tracking API of the same process refuses the write key from the next request.
    let (status, v) = app.track("after-closing").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["detail"], "the API key was revoked", "{v}");
    app.clock.advance(Duration::seconds(61));
    let (status, v) = app.track("after-the-key-cache").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["detail"], "the API key was revoked", "{v}");

    let operator = Principal::operator(&app.ws);
    let closed = app
        .service
        .audit_log(
            &operator,
            AuditFilter {
                action: Some("workspace.closed".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].actor, "user:usr_owner");
    assert_eq!(closed[0].summary["keys_revoked"], 4);
    assert_eq!(closed[0].summary["destinations_deleted"], 1);
}

#[tokio::test]
async fn a_closed_workspaces_account_data_is_kept_90_days_and_then_gone() {
    let app = App::start().await;
    let (status, v) = app.close(&app.admin, json!(app.ws.as_str())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let operator = Principal::operator(&app.ws);

    app.clock.set(T0 + Duration::days(89));
    assert_eq!(app.service.workspace(&operator).await.unwrap().id, app.ws);
    let users = app.service.users(&operator).await.unwrap();
    assert_eq!(users.len(), 1, "the owner, kept with the account");
    assert_eq!(app.service.keys(&operator).await.unwrap().len(), 4);

    app.clock.set(T0 + Duration::days(91));
    assert!(matches!(
        app.service.workspace(&operator).await,
        Err(AdminError::NotFound("workspace"))
    ));
    assert!(app.service.users(&operator).await.unwrap().is_empty());
    assert!(app.service.keys(&operator).await.unwrap().is_empty());
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/workspace", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the token is unknown now");
}

#[tokio::test]
async fn closing_needs_the_workspace_id_as_confirmation_and_an_admin() {
    let app = App::start().await;
    let other_id = {
        let (_, _, v) = app
            .call(Method::GET, "/admin/v1/workspace", Some(&app.other), None)
            .await;
        v["id"].as_str().unwrap().to_owned()
    };
    for wrong in [
        json!(other_id),
        json!(""),
        json!("yes"),
        json!(app.ws.as_str().to_uppercase()),
    ] {
        let (status, v) = app.close(&app.admin, wrong.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong}: {v}");
        assert_eq!(v["field"], "confirm", "{wrong}: {v}");
        assert_eq!(v["type"], "https://tracklayer.io/problems/invalid-field");
        assert!(
            !v.to_string().contains(app.ws.as_str()),
            "the refusal does not tell the id: {v}"
        );
    }
    for body in [json!({}), json!({"confirm": 7}), json!({"confirm": null})] {
        let (status, _, v) = app
            .as_admin(
                Method::POST,
                "/admin/v1/workspace/close",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["field"], "confirm", "{body}: {v}");
    }
    for token in [&app.editor, &app.viewer] {
        let (status, v) = app.close(token, json!(app.ws.as_str())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    }
    // Still open: every refusal left it alone.
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/workspace", Some(&app.viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.track("still-open").await.0, StatusCode::OK);
}

#[tokio::test]
async fn closing_twice_is_a_conflict_and_a_closed_workspace_takes_no_change() {
    let app = App::start().await;
    let (status, v) = app.close(&app.admin, json!(app.ws.as_str())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // No token of the workspace works any more: the operator CLI is what still reaches it.
    let operator = Principal::operator(&app.ws);
    let again = app
        .service
        .close_workspace(&operator, app.ws.as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(&again, AdminError::Conflict(d) if d.contains("closed already")),
        "{again:?}"
    );
    let invite = app
        .service
        .invite_user(&operator, "late@example.com", Role::Admin)
        .await
        .unwrap_err();
    assert!(matches!(invite, AdminError::Conflict(_)), "{invite:?}");
    let key = app
        .service
        .create_key(
            &operator,
            serde_json::from_value(json!({"kind": "ingest"})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(key, AdminError::Conflict(_)), "{key:?}");
    let rename = app
        .service
        .update_workspace(
            &operator,
            WorkspacePatch {
                name: Some("Reopened".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(rename, AdminError::Conflict(_)), "{rename:?}");
}

#[tokio::test]
async fn the_region_of_a_workspace_cannot_be_changed() {
    let app = App::start().await;
    let (status, _, v) = app
        .as_admin(
            Method::PATCH,
            "/admin/v1/workspace",
            Some(json!({"region": "us"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "region", "{v}");
    let ws = app.get("/admin/v1/workspace").await;
    assert_eq!(ws["region"], "eu");
}

#[tokio::test]
async fn switching_to_a_customer_key_keeps_stored_secrets_readable_and_is_audited() {
    let app = App::start().await;
    let destination = app.new_destination().await;
    let file = app.customer_key_file();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, [42u8; 32]).unwrap();

    let (status, _, _) = app
        .call(
            Method::PUT,
            "/admin/v1/encryption-key",
            Some(&app.editor),
            Some(json!({"key_arn": CUSTOMER_KEY})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let v = app
        .put("/admin/v1/encryption-key", json!({"key_arn": CUSTOMER_KEY}))
        .await;
    assert_eq!(v["encryption_key"], CUSTOMER_KEY);
    // The destination's secrets were sealed under the data key before the switch: an update,
    // which opens them, still works.
    app.patch(
        &format!("/admin/v1/destinations/{destination}"),
        json!({"name": "Warehouse 2"}),
    )
    .await;
    assert_eq!(app.track("with-customer-key").await.0, StatusCode::OK);
    let entries = app.audit_actions().await;
    let switch = entries
        .iter()
        .find(|e| e["action"] == "workspace.encryption_key")
        .expect("the switch is audited");
    assert_eq!(
        switch["summary"],
        json!({"from": "platform", "to": CUSTOMER_KEY})
    );

    // The customer disables the key: ingest fails closed and stores nothing.
    std::fs::rename(&file, file.with_extension("disabled")).unwrap();
    // Past ingest's cached data key (at most 5 minutes).
    app.clock.advance(Duration::minutes(6));
    let before = app.stored_events();
    let (status, body) = app.track("while-disabled").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["type"].as_str().unwrap().contains("key-unavailable"),
        "{body}"
    );
    assert_eq!(app.stored_events(), before, "nothing stored");

    // Enabled again: ingest works again.
    std::fs::rename(file.with_extension("disabled"), &file).unwrap();
    assert_eq!(app.track("after-enable").await.0, StatusCode::OK);
    assert_eq!(app.stored_events(), before + 1);

    // And back to the platform key.
    let v = app
        .put("/admin/v1/encryption-key", json!({"key_arn": null}))
        .await;
    assert_eq!(v["encryption_key"], "platform");
    std::fs::remove_file(&file).unwrap();
    app.clock.advance(Duration::minutes(2));
    assert_eq!(app.track("platform-again").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_customer_key_that_cannot_be_used_or_lives_elsewhere_is_refused_naming_the_field() {
    let app = App::start().await;
    for arn in [
        CUSTOMER_KEY.to_owned(), // no such key file: unavailable
        CUSTOMER_KEY.replace("eu-central-1", "us-east-1"),
        "not-an-arn".to_owned(),
    ] {
        app.assert_invalid_field(
            Method::PUT,
            "/admin/v1/encryption-key",
            json!({"key_arn": arn}),
            "key_arn",
        )
        .await;
    }
    let ws = app.get("/admin/v1/workspace").await;
    assert_eq!(ws["encryption_key"], "platform");
}

// Data-subject requests

#[tokio::test]
async fn a_data_subject_request_is_accepted_pending_and_due_in_30_days() {
    let app = App::start().await;
    let (status, headers, v) = app
        .call(
            Method::POST,
            "/admin/v1/data_subject_requests",
            Some(&app.admin),
            Some(json!({"type": "erasure", "reference": "TICKET-9",
                        "subject": {"email": "Jane.Doe@example.com", "phone": "+49 30 1234567"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap();
    assert_eq!(
        headers[header::LOCATION],
        format!("/admin/v1/data_subject_requests/{id}")
    );
    assert_eq!(v["status"], "pending");
    assert_eq!(v["due_at"], "2026-03-31T12:00:00Z");
    assert_eq!(v["identifiers"], json!(["email", "phone"]));
    let text = v.to_string();
    assert!(
        !text.contains("Jane") && !text.contains("1234567"),
        "no raw identifier: {text}"
    );
    let got = app
        .get(&format!("/admin/v1/data_subject_requests/{id}"))
        .await;
    assert_eq!(got["id"], id);
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    let stored: String = conn
        .query_row("SELECT group_concat(doc) FROM dsr_requests", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        !stored.to_lowercase().contains("jane"),
        "identifiers are never stored raw"
    );
    let audit = app.get("/admin/v1/audit-log?action=dsr.submit").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_erased_subjects_event_sent_right_after_the_202_is_neither_stored_nor_queued() {
    // Arrange: a destination, and ingest has read (and cached) the suppression list.
    let app = App::start().await;
    app.new_destination().await;
    assert_eq!(app.track_user("someone-else").await["accepted"], 1);
    let (events, queued) = (app.stored_events(), app.queued_messages());
    assert!(queued > 0, "the destination gets the other subject's event");

    // Act: erase user-1, then at once (no processing run, no clock advance) track user-1.
    let (status, _, v) = app
        .as_admin(
            Method::POST,
            "/admin/v1/data_subject_requests",
            Some(json!({"type": "erasure", "subject": {"external_id": "user-1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "pending", "the erasure itself runs later");
    let answer = app.track_user("user-1").await;

    // Assert: dropped at ingest, so no destination can receive it.
    assert_eq!(answer["suppressed"], 1, "{answer}");
    assert_eq!(app.stored_events(), events);
    assert_eq!(app.queued_messages(), queued);
}

#[tokio::test]
async fn a_data_subject_request_names_the_subject_field_at_fault() {
    let app = App::start().await;
    for (subject, field) in [
        (json!({}), "subject"),
        (json!({"email": "nobody"}), "subject.email"),
        (json!({"phone": "12"}), "subject.phone"),
    ] {
        app.assert_invalid_field(
            Method::POST,
            "/admin/v1/data_subject_requests",
            json!({"type": "access", "subject": subject}),
            field,
        )
        .await;
    }
    let (status, _, v) = app
        .as_admin(
            Method::POST,
            "/admin/v1/data_subject_requests",
            Some(json!({"type": "forget", "subject": {"email": "a@example.com"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn an_access_export_deleted_by_a_later_erasure_answers_410_naming_the_erasure() {
    // Arrange: a completed access request, then an erasure of the same subject.
    let app = App::start().await;
    app.tracked_event().await;
    let access = app.completed_access_request().await;
    let erasure = app.new_request("erasure").await;
    app.clock.advance(Duration::seconds(11));
    for _ in 0..5 {
        app.dsr.run().await;
    }
    let done = app
        .get(&format!("/admin/v1/data_subject_requests/{erasure}"))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["receipt"]["counts"]["access_exports"], 1, "{done}");

    // Act: the access request's export is downloaded.
    let (status, _, v) = app.export(&access).await;

    // Assert: gone, and the answer says why: the erasure, not the 7 days.
    assert_eq!(status, StatusCode::GONE, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("deleted by erasure request {erasure}")),
        "{v}"
    );
    assert!(!detail.contains("7 days"), "{v}");
    assert_eq!(v["erasure_request_id"], erasure.as_str(), "{v}");
    let got = app
        .get(&format!("/admin/v1/data_subject_requests/{access}"))
        .await;
    assert_eq!(
        got["receipt"]["export_deleted_by"],
        erasure.as_str(),
        "{got}"
    );
}

#[tokio::test]
async fn an_access_export_answers_410_after_7_days() {
    let app = App::start().await;
    app.tracked_event().await;
    let id = app.completed_access_request().await;
    let got = app
        .get(&format!("/admin/v1/data_subject_requests/{id}"))
        .await;
    assert_eq!(got["status"], "completed", "{got}");
    assert_eq!(got["receipt"]["export_expires_at"], "2026-03-08T12:00:00Z");
    let (status, headers, _) = app.export(&id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    app.clock.advance(Duration::days(7));
    let (status, _, v) = app.export(&id).await;
    assert_eq!(status, StatusCode::GONE, "{v}");
    assert_eq!(v["expired_at"], "2026-03-08T12:00:00Z");
}

#[tokio::test]
async fn the_consent_policy_lets_gpc_win_over_a_grant_by_default_and_can_let_the_grant_win() {
    let app = App::start().await;
    let v = app.get("/admin/v1/consent-policy").await;
    assert_eq!(v["gpc"], "overrides_grants", "{v}");

    let v = app
        .put(
            "/admin/v1/consent-policy",
            json!({"eu_default": "opt_in", "us_default": "opt_out", "honor_gpc": true,
                "gpc": "explicit_grant_wins"}),
        )
        .await;
    assert_eq!(v["gpc"], "explicit_grant_wins", "{v}");
    let v = app.get("/admin/v1/consent-policy").await;
    assert_eq!(v["gpc"], "explicit_grant_wins", "{v}");

    let audit = app.get("/admin/v1/audit-log?action=workspace.update").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert!(
        entries[0].to_string().contains("explicit_grant_wins"),
        "{audit}"
    );
}
