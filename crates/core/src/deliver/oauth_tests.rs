//! The OAuth token source and the sending it serves, as a specification: a fake vendor behind
//! an in-memory egress has a token endpoint (RFC 6749 §6) and an API that takes only the
//! tokens it issued and has not revoked; time is a fixed clock moved by hand.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use serde_json::{json, Value};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::clock::FixedClock;
use crate::deliver::send::{send_batches, Outlet, Sent};
use crate::deliver::{classify_status, Connector, OpenedItem};
use crate::destination::{Destination, DestinationKind, EventFilter};
use crate::event::{DeliveryItem, EventId, MessageId};
use crate::workspace::{Region, WorkspaceId};

const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);
const TOKEN_URL: &str = "https://auth.vendor.test/oauth/token";
const API_URL: &str = "https://api.vendor.test/conversions";
const CLIENT_ID: &str = "client-id-4711";
const CLIENT_SECRET: &str = "client-secret-Zq8wXk2"; // pragma: allowlist secret
const REFRESH_TOKEN: &str = "refresh-token-AQXd93kF/+="; // pragma: allowlist secret

/// A vendor whose API takes OAuth access tokens: its request carries the token as a bearer
/// and the batch's message ids.
struct OAuthConnector;

impl Connector for OAuthConnector {
    fn batch_limit(&self, _target: &Target<'_>) -> usize {
        2
    }
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let token = target.secrets["access_token"]
            .as_str()
            .ok_or("no access_token")?;
        let ids: Vec<&str> = items.iter().map(|o| o.item.message_id.as_str()).collect();
        Ok(HttpRequest {
            url: API_URL.into(),
            headers: vec![("Authorization".into(), format!("Bearer {token}"))],
            body: json!({ "ids": ids }).to_string().into_bytes(),
        })
    }
    fn classify(&self, _items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
        classify_status(response, OffsetDateTime::UNIX_EPOCH)
    }
    fn erasure_guidance(&self, _sent: &crate::dsr::SentToVendor<'_>) -> String {
        String::new()
    }
    fn token_endpoint(&self, _target: &Target<'_>) -> Option<String> {
        Some(TOKEN_URL.into())
    }
}

/// The vendor: issues `token-1`, `token-2`, … (each for `lifetime`), unless an answer is
/// scripted; its API answers 401 to a token not issued or revoked, else 200.
struct Vendor {
    lifetime: i64,
    scripted: Mutex<VecDeque<HttpResponse>>,
    issued: Mutex<Vec<String>>,
    revoked: Mutex<HashSet<String>>,
    token_requests: Mutex<Vec<HttpRequest>>,
    api_requests: Mutex<Vec<String>>,
    /// API answers scripted ahead of the token check.
    api_scripted: Mutex<VecDeque<u16>>,
    /// The egress guard refuses the token endpoint's address.
    guard_refuses_token_url: Mutex<bool>,
}

impl Vendor {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            lifetime: 3600,
            scripted: Mutex::default(),
            issued: Mutex::default(),
            revoked: Mutex::default(),
            token_requests: Mutex::default(),
            api_requests: Mutex::default(),
            api_scripted: Mutex::default(),
            guard_refuses_token_url: Mutex::default(),
        })
    }
    fn token_calls(&self) -> usize {
        self.token_requests.lock().unwrap().len()
    }
    fn revoke_all(&self) {
        let issued = self.issued.lock().unwrap().clone();
        self.revoked.lock().unwrap().extend(issued);
    }
    fn script_token(&self, status: u16, headers: &[(&str, &str)], body: Value) {
        self.scripted.lock().unwrap().push_back(HttpResponse::new(
            status,
            headers,
            body.to_string(),
        ));
    }
    /// The bearer tokens the API saw, in order.
    fn bearers(&self) -> Vec<String> {
        self.api_requests.lock().unwrap().clone()
    }
}

fn answer(status: u16, body: Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
    }
}

#[async_trait]
impl Egress for Vendor {
    async fn post(&self, request: &HttpRequest) -> Result<HttpResponse, EgressError> {
        // Let other tasks run between request and answer, as a network would.
        tokio::task::yield_now().await;
        if request.url == TOKEN_URL {
            if *self.guard_refuses_token_url.lock().unwrap() {
                return Err(EgressError::Refused(
                    "resolves to 10.0.0.7, a private address".into(),
                ));
            }
            self.token_requests.lock().unwrap().push(request.clone());
            if let Some(r) = self.scripted.lock().unwrap().pop_front() {
                return Ok(r);
            }
            let mut issued = self.issued.lock().unwrap();
            let token = format!("token-{}", issued.len() + 1);
            issued.push(token.clone());
            let body =
                json!({"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"});
            return Ok(answer(200, body));
        }
        let bearer = request
            .headers
            .iter()
            .find(|(k, _)| k == "Authorization")
            .and_then(|(_, v)| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        self.api_requests.lock().unwrap().push(bearer.clone());
        if let Some(status) = self.api_scripted.lock().unwrap().pop_front() {
            return Ok(answer(status, json!({"message": "scripted"})));
        }
        let known = self.issued.lock().unwrap().contains(&bearer);
        if !known || self.revoked.lock().unwrap().contains(&bearer) {
            return Ok(answer(401, json!({"message": "Invalid access token"})));
        }
        Ok(answer(200, json!({})))
    }
}

struct World {
    clock: Arc<FixedClock>,
    vendor: Arc<Vendor>,
    egress: Arc<dyn Egress>,
    tokens: TokenSource,
    destination: Destination,
    secrets: Value,
    items: Vec<OpenedItem>,
}

impl World {
    fn new() -> Self {
        Self::with(Vendor::new())
    }
    fn with(vendor: Arc<Vendor>) -> Self {
        install_log_router();
        let clock = Arc::new(FixedClock::new(T0));
        let egress: Arc<dyn Egress> = vendor.clone();
        let kind = DestinationKind::Webhook;
        let destination = Destination {
            id: DestinationId::new("oauth"),
            workspace_id: WorkspaceId::new(Region::Eu, "spec"),
            name: "OAuth vendor".into(),
            kind,
            config: json!({}),
            secrets: crate::crypto::Sealed(Vec::new()),
            secret_hints: json!({}),
            consent_purposes: kind.default_purposes(),
            events: EventFilter::All,
            endpoint: None,
            paused: false,
            created_at: T0,
            updated_at: T0,
        };
        let items = (0..5).map(item).collect();
        Self {
            tokens: TokenSource::new(egress.clone(), clock.clone()),
            clock,
            vendor,
            egress,
            destination,
            secrets: json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                            "refresh_token": REFRESH_TOKEN}),
            items,
        }
    }
    fn target(&self) -> Target<'_> {
        Target {
            destination: &self.destination,
            secrets: &self.secrets,
            base_url: "",
            now: self.clock.now(),
        }
    }
    /// Sends the first `n` items in batches of two.
    async fn send(&self, n: usize) -> Vec<Sent> {
        let refs: Vec<&OpenedItem> = self.items.iter().take(n).collect();
        let batches: Vec<Vec<&OpenedItem>> = refs.chunks(2).map(<[_]>::to_vec).collect();
        let outlet = Outlet {
            egress: &self.egress,
            tokens: &self.tokens,
            semaphore: None,
        };
        send_batches(outlet, &OAuthConnector, &self.target(), &batches).await
    }
    /// Moves the clock by `secs`, sends one item; the token exchanges so far.
    async fn token_calls_after(&self, secs: i64) -> usize {
        self.clock.advance(Duration::seconds(secs));
        self.send(1).await;
        self.vendor.token_calls()
    }
    /// Sends one item, has the vendor revoke the token it took, then sends `n` items: what
    /// became of their batches.
    async fn sent_after_revocation(n: usize) -> (Self, Vec<String>) {
        let w = Self::new();
        w.send(1).await;
        w.vendor.revoke_all();
        let sent = statuses(&w.send(n).await);
        (w, sent)
    }
}

fn item(i: u128) -> OpenedItem {
    OpenedItem {
        item: DeliveryItem::track(
            EventId(uuid::Uuid::from_u128(i + 1)),
            MessageId::generated(uuid::Uuid::from_u128(i + 1)),
            "Order Completed",
            T0,
            json!({}),
        ),
        sealed: Default::default(),
    }
}

fn statuses(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .map(|s| match s {
            Sent::Answered(r) => r.status.to_string(),
            Sent::Settled(Outcome::Permanent { .. }, _) => "permanent".into(),
            Sent::Settled(Outcome::Retry { .. }, _) => "retry".into(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn reason(sent: &Sent) -> String {
    match sent {
        Sent::Settled(Outcome::Permanent { reason } | Outcome::Retry { reason, .. }, _) => {
            reason.clone()
        }
        other => panic!("not settled: {other:?}"),
    }
}

#[tokio::test]
async fn the_token_request_is_a_form_encoded_refresh_token_grant_to_the_vendors_token_endpoint() {
    let w = World::new();
    w.send(1).await;
    let requests = w.vendor.token_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.url, TOKEN_URL);
    assert!(r.headers.contains(&(
        "Content-Type".into(),
        "application/x-www-form-urlencoded".into()
    )));
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(
        body,
        "grant_type=refresh_token&refresh_token=refresh-token-AQXd93kF%2F%2B%3D\
         &client_id=client-id-4711&client_secret=client-secret-Zq8wXk2"
    );
    assert_eq!(w.vendor.bearers(), ["token-1"]);
}

#[tokio::test]
async fn one_token_serves_every_batch_until_shortly_before_it_expires() {
    let w = World::new();
    for _ in 0..3 {
        assert_eq!(statuses(&w.send(5).await), ["200", "200", "200"]);
    }
    assert_eq!(w.vendor.token_calls(), 1, "one exchange for nine requests");
    // 3600 s, replaced 60 s before: still the first token at 3539 s, a new one at 3540 s.
    assert_eq!(w.token_calls_after(3539).await, 1);
    assert_eq!(w.token_calls_after(1).await, 2);
    assert_eq!(w.vendor.bearers().last().unwrap(), "token-2");
}

#[tokio::test]
async fn a_short_lived_token_is_replaced_at_half_its_lifetime() {
    let vendor = Vendor::new();
    let vendor = Arc::new(Vendor {
        lifetime: 100,
        ..Arc::into_inner(vendor).unwrap()
    });
    let w = World::with(vendor);
    w.send(1).await;
    assert_eq!(w.token_calls_after(49).await, 1);
    assert_eq!(w.token_calls_after(1).await, 2);
}

#[tokio::test]
async fn a_401_gets_a_new_token_and_the_batch_is_sent_once_more_with_it() {
    let (w, sent) = World::sent_after_revocation(1).await;
    assert_eq!(sent, ["200"]);
    assert_eq!(w.vendor.bearers(), ["token-1", "token-1", "token-2"]);
    assert_eq!(w.vendor.token_calls(), 2);
}

#[tokio::test]
async fn batches_refused_together_share_one_new_token() {
    let (w, sent) = World::sent_after_revocation(5).await;
    assert_eq!(sent, ["200", "200", "200"]);
    assert_eq!(
        w.vendor.token_calls(),
        2,
        "one refresh for three refused batches"
    );
    let again: Vec<String> = w.vendor.bearers().split_off(4);
    assert_eq!(again, ["token-2", "token-2", "token-2"]);
}

#[tokio::test]
async fn concurrent_sends_wait_for_one_exchange_and_one_refresh() {
    let w = World::new();
    let (a, b, c) = tokio::join!(w.send(2), w.send(2), w.send(2));
    for sent in [a, b, c] {
        assert_eq!(statuses(&sent), ["200"]);
    }
    assert_eq!(w.vendor.token_calls(), 1);
    w.vendor.revoke_all();
    let (a, b) = tokio::join!(w.send(2), w.send(2));
    for sent in [a, b] {
        assert_eq!(statuses(&sent), ["200"]);
    }
    assert_eq!(
        w.vendor.token_calls(),
        2,
        "the second refresh saw the token replaced already"
    );
}

#[tokio::test]
async fn a_second_401_with_a_new_token_is_permanent_naming_the_refresh_token() {
    let w = World::new();
    w.vendor.api_scripted.lock().unwrap().extend([401, 401]);
    let sent = w.send(1).await;
    assert_eq!(statuses(&sent), ["permanent"]);
    assert!(matches!(sent[0], Sent::Settled(_, Some(401))));
    let why = reason(&sent[0]);
    assert!(why.contains("replace secrets.refresh_token"), "{why}");
    assert!(why.contains("scripted"), "the vendor's message: {why}");
    assert_eq!(w.vendor.bearers().len(), 2, "sent once more, not again");
}

#[tokio::test]
async fn invalid_grant_is_permanent_and_names_the_refresh_token() {
    let w = World::new();
    let error = json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."});
    w.vendor.script_token(400, &[], error);
    let sent = w.send(3).await;
    assert_eq!(statuses(&sent), ["permanent", "permanent"]);
    let why = reason(&sent[0]);
    assert!(why.contains("invalid_grant"), "{why}");
    assert!(why.contains("replace secrets.refresh_token"), "{why}");
    assert!(
        w.vendor.bearers().is_empty(),
        "nothing sent without a token"
    );
}

#[tokio::test]
async fn a_refused_client_names_the_client_id_and_secret() {
    let w = World::new();
    w.vendor
        .script_token(401, &[], json!({"error": "invalid_client"}));
    let why = reason(&w.send(1).await[0]);
    assert!(
        why.contains("secrets.client_id and secrets.client_secret"),
        "{why}"
    );
}

#[tokio::test]
async fn a_token_endpoint_that_is_down_is_retried_after_its_retry_after() {
    let w = World::new();
    w.vendor
        .script_token(503, &[("Retry-After", "120")], json!({}));
    let sent = w.send(1).await;
    match &sent[0] {
        Sent::Settled(Outcome::Retry { after, reason }, None) => {
            assert_eq!(*after, Some(StdDuration::from_secs(120)));
            assert!(reason.contains("HTTP 503"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was kept: the next send exchanges again and delivers.
    assert_eq!(statuses(&w.send(1).await), ["200"]);
    assert_eq!(w.vendor.token_calls(), 2);
}

#[tokio::test]
async fn an_answer_without_a_bearer_token_is_not_taken_for_one() {
    let w = World::new();
    w.vendor
        .script_token(200, &[], json!({"access_token": "x", "token_type": "mac"}));
    assert_eq!(statuses(&w.send(1).await), ["retry"]);
    assert!(w.vendor.bearers().is_empty());
}

#[tokio::test]
async fn the_token_request_goes_through_the_egress_guard_and_a_refusal_is_permanent() {
    let w = World::new();
    *w.vendor.guard_refuses_token_url.lock().unwrap() = true;
    let sent = w.send(1).await;
    assert_eq!(statuses(&sent), ["permanent"]);
    assert!(
        reason(&sent[0]).contains("egress refused"),
        "{}",
        reason(&sent[0])
    );
    assert!(
        w.vendor.bearers().is_empty(),
        "nothing sent without a token"
    );
}

#[tokio::test]
async fn a_missing_secret_is_permanent_and_named() {
    let mut w = World::new();
    w.secrets = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET});
    let why = reason(&w.send(1).await[0]);
    assert!(why.starts_with("secrets.refresh_token is missing"), "{why}");
    assert_eq!(w.vendor.token_calls(), 0);
}

#[tokio::test]
async fn new_credentials_never_reuse_a_token_issued_for_the_old_ones() {
    let mut w = World::new();
    w.send(1).await;
    w.secrets["refresh_token"] = "a-new-refresh-token".into();
    w.send(1).await;
    assert_eq!(w.vendor.token_calls(), 2);
    assert_eq!(w.vendor.bearers(), ["token-1", "token-2"]);
}

/// Collects what the `tracing` subscriber writes on the thread that installed it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// Writes into the calling thread's capture, if it has one, and drops the text otherwise.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(c) = c.borrow().as_ref() {
                c.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One process-wide subscriber, installed before any test here sends, routes log lines to
/// the thread that asked for them. A scoped subscriber (`set_default`) is not enough while
/// other tests run: `tracing` caches each call site's interest when the site is first hit, and
/// a site first hit on another thread while the scoped subscriber was being registered stays
/// cached as "never", which made the log capture below empty about one run in three.
fn install_log_router() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| ThreadCapture)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test in this binary installs a global subscriber");
    });
}

/// Starts capturing this thread's log lines (a current-thread runtime keeps a test's tasks
/// on its thread).
fn capture_logs() -> Captured {
    install_log_router();
    tracing::callsite::rebuild_interest_cache();
    let captured = Captured::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(captured.clone()));
    captured
}

#[tokio::test]
async fn no_secret_or_token_appears_in_debug_output_logs_or_reasons() {
    let captured = capture_logs();
    let w = World::new();
    let mut seen = Vec::new();
    // Issued, refused by the API, refreshed, refused again; then refused at the token
    // endpoint with a description that echoes the secrets.
    w.vendor.api_scripted.lock().unwrap().extend([401, 401]);
    seen.push(format!("{:?}", w.send(1).await));
    let echo = format!("bad {CLIENT_SECRET} for {CLIENT_ID} and {REFRESH_TOKEN}");
    w.vendor.script_token(
        400,
        &[],
        json!({"error": "invalid_grant", "error_description": echo}),
    );
    w.clock.advance(Duration::hours(2));
    let sent = w.send(1).await;
    seen.push(reason(&sent[0]));
    seen.push(format!("{sent:?}"));
    let grant = Grant::of(&w.target(), TOKEN_URL.into()).unwrap();
    let token = w.tokens.token(&grant).await.unwrap();
    seen.push(format!("{grant:?} {token:?} {:?}", w.tokens));
    seen.push(String::from_utf8(captured.0.lock().unwrap().clone()).unwrap());
    assert!(
        seen[4].contains("issued an OAuth access token"),
        "logs captured: {}",
        seen[4]
    );
    for text in &seen {
        for secret in [
            CLIENT_ID,
            CLIENT_SECRET,
            REFRESH_TOKEN,
            "token-1",
            "token-2",
            "token-3",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
