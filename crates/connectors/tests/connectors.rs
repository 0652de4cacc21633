//! Connectors, as specifications: golden requests built from fixture items, batch limits,
//! screening, and what each vendor's answers mean.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;
use tracklayer_connectors::requirements;
use tracklayer_connectors::{
    batches, connector, default_base_url, ga4, meta, names, sign_webhook, tiktok, webhook,
};
use tracklayer_core::clock::FixedClock;
use tracklayer_core::deliver::oauth::TokenSource;
use tracklayer_core::deliver::send::{send_batches, Outlet, Sent};
use tracklayer_core::deliver::{
    DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::destination::{Destination, DestinationKind};
use tracklayer_core::event::{DeliveryItem, EventType, SealedFields};
use tracklayer_core::identity::Field;
use tracklayer_core::ports::{Egress, EgressError};
use tracklayer_core::workspace::{Region, WorkspaceId};

#[path = "connectors/firehose.rs"]
mod firehose;
#[path = "connectors/google_ads.rs"]
mod google_ads;
#[path = "connectors/linkedin.rs"]
mod linkedin;
#[path = "connectors/microsoft_ads.rs"]
mod microsoft_ads;
#[path = "connectors/pinterest.rs"]
mod pinterest;
#[path = "connectors/reddit.rs"]
mod reddit;
#[path = "connectors/segment.rs"]
mod segment;
#[path = "connectors/snapchat.rs"]
mod snapchat;

// ---------------------------------------------------------------------------------------------
// Shared helpers

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

/// The published Standard Webhooks test secret.
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; // pragma: allowlist secret
/// The Standard Webhooks spec's published message id.
const SPEC_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek"; // pragma: allowlist secret

/// An opened item from `fixtures/items.json` (`order`, `page` or `search`).
fn fixture(name: &str) -> OpenedItem {
    #[derive(serde::Deserialize)]
    struct Fixture {
        item: DeliveryItem,
        sealed: SealedFields,
    }
    let all: Value = serde_json::from_str(include_str!("fixtures/items.json")).expect("items");
    let f: Fixture = serde_json::from_value(all[name].clone()).expect("fixture item");
    OpenedItem {
        item: f.item,
        sealed: f.sealed,
    }
}

/// The order fixture with the click id `name` as ingest collected it.
fn order_with_click_id(name: &str, value: &str) -> OpenedItem {
    let mut o = fixture("order");
    o.sealed.click_ids.insert(name.into(), value.into());
    o
}

/// Asserts a JSON request to `url` with `Authorization: Bearer {token}` (never in the URL)
/// whose body is the golden one.
fn assert_bearer_request(request: &HttpRequest, url: &str, token: &str, golden_body: &str) {
    assert_eq!(request.url, url);
    let auth = format!("Bearer {token}");
    assert_eq!(header(request, "authorization"), Some(auth.as_str()));
    assert_eq!(header(request, "content-type"), Some("application/json"));
    assert_eq!(body(request), golden(golden_body));
    assert!(!request.url.contains(token));
}

fn golden(json: &str) -> Value {
    serde_json::from_str(json).expect("golden body")
}

/// Asserts a JSON request whose body is the golden one.
fn assert_golden_json(request: &HttpRequest, golden_body: &str) {
    assert_eq!(
        request.headers,
        vec![("Content-Type".to_owned(), "application/json".to_owned())]
    );
    assert_eq!(body(request), golden(golden_body));
}

fn destination(kind: DestinationKind, config: Value) -> Destination {
    let ws = WorkspaceId::new(Region::Eu, "golden");
    let mut d = tracklayer_core::testkit::destination(&ws, kind, NOW);
    d.config = config;
    d
}

/// The test destination of `kind` and its secrets, as a customer would enter them.
fn vendor(kind: DestinationKind) -> (Destination, Value) {
    let (config, secrets) = match kind {
        DestinationKind::MetaCapi => (
            json!({"pixel_id": "1234567890", "api_version": "v21.0", "test_event_code": "TEST123"}),
            json!({"access_token": "EAAB-token", "app_secret": "shh-app-secret"}),
        ),
        DestinationKind::Ga4 => (
            json!({"measurement_id": "G-ABC123"}),
            json!({"api_secret": "sec ret"}),
        ),
        DestinationKind::Tiktok => (
            json!({"pixel_code": "C9Q2MJ3C77U4P674RPG0"}),
            json!({"access_token": "tt-token"}),
        ),
        DestinationKind::Webhook => (
            json!({"url": "https://hooks.example/tracklayer"}),
            json!({ "signing_secret": SPEC_SECRET }),
        ),
        DestinationKind::Snapchat => (
            json!({"pixel_id": "6d2e7a31-snap-pixel"}),
            json!({"access_token": "snap-token"}),
        ),
        DestinationKind::Pinterest => (
            json!({"ad_account_id": "549757463328"}),
            json!({"access_token": "pina-token"}),
        ),
        DestinationKind::Reddit => (
            json!({"ad_account_id": "a2_gfgsrrd4ug2t"}),
            json!({"access_token": "rdt-token"}),
        ),
        DestinationKind::MicrosoftAds => (
            json!({"tag_id": "343003931"}),
            json!({"access_token": "uet-token"}),
        ),
        DestinationKind::Segment => (
            json!({"identifiers": "hashed"}),
            json!({"write_key": "wk_live_1"}),
        ),
        // The access token is the one the token source issued for the OAuth secrets.
        DestinationKind::Linkedin => (
            json!({"conversion_id": "104012", "api_version": "202510"}),
            json!({"client_id": "li-client", "client_secret": "li-secret",
                   "refresh_token": "li-refresh", "access_token": "li-access"}),
        ),
        DestinationKind::GoogleAds => (
            json!({"customer_id": "1234567890", "conversion_action_id": "987654321",
                   "api_version": "v22", "login_customer_id": "1112223334"}),
            json!({"client_id": "ga-client", "client_secret": "ga-secret",
                   "refresh_token": "ga-refresh", "developer_token": "ga-dev-token",
                   "access_token": "ga-access"}),
        ),
        DestinationKind::Firehose => (
            json!({"stream_name": "tracklayer-events", "region": "eu-central-1"}),
            json!({"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", // pragma: allowlist secret
                   "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}), // pragma: allowlist secret
        ),
    };
    (destination(kind, config), secrets)
}

fn target<'a>(d: &'a Destination, secrets: &'a Value) -> Target<'a> {
    Target {
        destination: d,
        secrets,
        base_url: d
            .endpoint
            .as_deref()
            .unwrap_or_else(|| default_base_url(d.kind)),
        now: NOW,
    }
}

fn build(t: &Target<'_>, items: &[OpenedItem]) -> HttpRequest {
    let refs: Vec<&OpenedItem> = items.iter().collect();
    connector(t.destination.kind)
        .build(t, &refs)
        .expect("request builds")
}

/// What a request sends, as text a byte scan can read: the body and, for Firehose, each
/// record's data decoded (base64 would hide an identifier from the scan).
fn sent_text(request: &HttpRequest) -> String {
    use base64::Engine;
    let mut text = String::from_utf8_lossy(&request.body).into_owned();
    let sent: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    for record in sent["Records"].as_array().into_iter().flatten() {
        let data = record["Data"].as_str().unwrap_or_default();
        let data = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("a Firehose record is base64");
        text.push_str(&String::from_utf8_lossy(&data));
    }
    text
}

fn body(request: &HttpRequest) -> Value {
    serde_json::from_slice(&request.body).expect("JSON body")
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn response(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(status, &[], body)
}

fn response_with(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse::new(status, headers, body)
}

fn classify(kind: DestinationKind, items: usize, r: &HttpResponse) -> Outcome {
    let opened: Vec<OpenedItem> = (0..items).map(|_| fixture("order")).collect();
    let refs: Vec<&OpenedItem> = opened.iter().collect();
    connector(kind).classify(&refs, r)
}

fn screen(t: &Target<'_>, item: &OpenedItem) -> Result<(), DropReason> {
    connector(t.destination.kind).screen(t, item)
}

/// An item of the given call type and name at `at`, with only an anonymous id.
fn bare(event_type: EventType, name: Option<&str>, at: OffsetDateTime) -> OpenedItem {
    let mut o = fixture("search");
    o.item.event_type = event_type;
    o.item.name = name.map(str::to_owned);
    o.item.timestamp = at;
    o.item.properties = json!({});
    o
}

fn is_retry(o: &Outcome) -> bool {
    matches!(o, Outcome::Retry { .. })
}

fn permanent_reason(o: Outcome) -> String {
    match o {
        Outcome::Permanent { reason } => reason,
        other => panic!("expected Permanent, got {other:?}"),
    }
}

/// Asserts that each of `statuses`, answered with `Retry-After: {secs}` and `body`, is retried
/// after that many seconds.
fn assert_retried_after(kind: DestinationKind, statuses: &[u16], secs: u64, body: &str) {
    let retry_after = secs.to_string();
    for &status in statuses {
        let r = response_with(status, &[("Retry-After", &retry_after)], body);
        match classify(kind, 1, &r) {
            Outcome::Retry { after, .. } => {
                assert_eq!(after, Some(Duration::from_secs(secs)), "{status}")
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

/// Asserts that the screen drops `o` as too old, by the requirement `rule`.
fn assert_dropped_as_too_old(t: &Target<'_>, o: &OpenedItem, rule: &str) {
    assert!(matches!(screen(t, o), Err(DropReason::Age(_))));
    assert_eq!(requirements::unmet(t, o).unwrap().rule, rule);
}

/// Asserts that the screen drops `o` as invalid, by the requirement `rule`.
fn assert_dropped_as_invalid(t: &Target<'_>, o: &OpenedItem, rule: &str) {
    assert!(matches!(screen(t, o), Err(DropReason::Invalid(_))));
    let unmet = requirements::unmet(t, o).unwrap();
    assert_eq!(unmet.rule, rule);
}

/// Asserts that `o`, left with its click id as its only match key, passes the screen, and
/// that without the click id too it is dropped as invalid by the requirement `rule`.
fn assert_click_id_alone_matches(t: &Target<'_>, mut o: OpenedItem, rule: &str) {
    assert_eq!(screen(t, &o), Ok(()), "the click id alone matches");
    o.sealed.click_ids.clear();
    assert_dropped_as_invalid(t, &o, rule);
}

/// `o` without the hashed identifiers and the user agent: its click id (and IP address) left.
fn with_click_id_only(mut o: OpenedItem) -> OpenedItem {
    o.item.user_data.clear();
    o.sealed.user_agent = None;
    o
}

/// Asserts, for a vendor that takes `secrets.access_token` (its [`vendor`] token), that a
/// build with `configs.0` and no secrets names the missing token, and that one with the token
/// and `configs.1` names `config.{key}` without echoing the token.
fn assert_names_missing_settings(kind: DestinationKind, key: &str, configs: (Value, Value)) {
    let refs = [&fixture("order")];
    let d = destination(kind, configs.0);
    let err = connector(kind)
        .build(&target(&d, &json!({})), &refs)
        .unwrap_err();
    assert_eq!(
        err,
        format!("{}: secrets.access_token is missing", kind.as_str())
    );
    let d = destination(kind, configs.1);
    let secrets = vendor(kind).1;
    let token = secrets["access_token"].as_str().unwrap();
    let err = connector(kind)
        .build(&target(&d, &secrets), &refs)
        .unwrap_err();
    assert!(err.contains(&format!("config.{key}")) && !err.contains(token));
}

/// Asserts that the request carries each of the `headers` (names matched case-insensitively).
fn assert_headers(request: &HttpRequest, headers: &[(&str, &str)]) {
    for (name, value) in headers {
        assert_eq!(header(request, name), Some(*value), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth vendors (LinkedIn, Google Ads): the connector sent through the delivery's token source

/// A vendor behind an in-memory egress: its token endpoint grants `token-1`, `token-2`, … for
/// an hour to any refresh-token grant; its API answers each request with the next scripted
/// answer.
struct OAuthVendor {
    token_url: String,
    answers: Mutex<VecDeque<HttpResponse>>,
    grants: Mutex<Vec<HttpRequest>>,
    api: Mutex<Vec<HttpRequest>>,
}

#[async_trait::async_trait]
impl Egress for OAuthVendor {
    async fn post(&self, request: &HttpRequest) -> Result<HttpResponse, EgressError> {
        if request.url == self.token_url {
            let mut grants = self.grants.lock().unwrap();
            grants.push(request.clone());
            let token = format!("token-{}", grants.len());
            let granted =
                json!({"access_token": token, "expires_in": 3600, "token_type": "Bearer"});
            return Ok(response(200, &granted.to_string()));
        }
        self.api.lock().unwrap().push(request.clone());
        let answer = self.answers.lock().unwrap().pop_front();
        Ok(answer.expect("an answer scripted for every API request"))
    }
}

/// One `kind` destination with its stored secrets (no access token: the token source issues
/// it), its vendor and the token source that keeps the vendor's tokens between sends.
struct OAuthWorld {
    destination: Destination,
    secrets: Value,
    vendor: Arc<OAuthVendor>,
    tokens: TokenSource,
}

impl OAuthWorld {
    /// The vendor of `kind` answering its API's requests with `answers`, in turn.
    fn new(kind: DestinationKind, answers: Vec<HttpResponse>) -> Self {
        let (destination, mut secrets) = vendor(kind);
        secrets.as_object_mut().unwrap().remove("access_token");
        let token_url = connector(kind)
            .token_endpoint(&target(&destination, &secrets))
            .expect("an OAuth vendor");
        let vendor = Arc::new(OAuthVendor {
            token_url,
            answers: Mutex::new(answers.into()),
            grants: Mutex::default(),
            api: Mutex::default(),
        });
        let egress: Arc<dyn Egress> = vendor.clone();
        let tokens = TokenSource::new(egress, Arc::new(FixedClock::new(NOW)));
        Self {
            destination,
            secrets,
            vendor,
            tokens,
        }
    }

    /// Sends `item` as one batch as delivery does: what became of it (the connector's reading
    /// of the API's last answer, or the outcome settled without one) and the HTTP status.
    async fn send(&self, item: &OpenedItem) -> (Outcome, Option<u16>) {
        let egress: Arc<dyn Egress> = self.vendor.clone();
        let outlet = Outlet {
            egress: &egress,
            tokens: &self.tokens,
            semaphore: None,
        };
        let kind = self.destination.kind;
        let t = target(&self.destination, &self.secrets);
        let batches = [vec![item]];
        let sent = send_batches(outlet, connector(kind), &t, &batches).await;
        match sent.into_iter().next() {
            Some(Sent::Answered(r)) => (connector(kind).classify(&[item], &r), Some(r.status)),
            Some(Sent::Settled(outcome, status)) => (outcome, status),
            other => panic!("{kind}: {other:?}"),
        }
    }

    /// The `Authorization` header of each API request, in order.
    fn authorizations(&self) -> Vec<String> {
        let api = self.vendor.api.lock().unwrap();
        api.iter()
            .map(|r| header(r, "authorization").unwrap_or_default().to_owned())
            .collect()
    }
}

/// Asserts, for an OAuth vendor `kind`, that its API's 401 (`refused`, its documented body) to
/// a request made with the cached token gets one new token from the token endpoint with the
/// refresh token, and the same batch sent once more with it, delivered; and that a second 401
/// after the refresh is permanent, naming the refresh token, and not sent a third time.
async fn assert_refreshes_once_on_401(kind: DestinationKind, item: &OpenedItem, refused: &str) {
    let (_, secrets) = vendor(kind);
    let grant = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
        secrets["refresh_token"].as_str().unwrap(),
        secrets["client_id"].as_str().unwrap(),
        secrets["client_secret"].as_str().unwrap(),
    );
    let accepted = match kind {
        DestinationKind::Linkedin => r#"{"elements":[{"status":201}]}"#,
        _ => r#"{"results":[{}],"jobId":"1"}"#,
    };
    let (ok, no) = (response(200, accepted), response(401, refused));

    let w = OAuthWorld::new(kind, vec![ok.clone(), no.clone(), ok]);
    assert_eq!(w.send(item).await, (Outcome::Delivered, Some(200)));
    assert_eq!(
        w.vendor.grants.lock().unwrap().len(),
        1,
        "{kind}: one grant"
    );
    assert_eq!(
        w.send(item).await,
        (Outcome::Delivered, Some(200)),
        "{kind}"
    );
    let grants = w.vendor.grants.lock().unwrap().clone();
    assert_eq!(grants.len(), 2, "{kind}: one refresh after the 401");
    for g in &grants {
        assert_eq!(String::from_utf8_lossy(&g.body), grant, "{kind}");
    }
    assert_eq!(
        w.authorizations(),
        ["Bearer token-1", "Bearer token-1", "Bearer token-2"],
        "{kind}: the cached token, refused, then the new one"
    );
    let api = w.vendor.api.lock().unwrap().clone();
    assert_eq!(api[2].body, api[1].body, "{kind}: the refused batch, again");
    assert_eq!(api[2].url, api[1].url, "{kind}");

    let w = OAuthWorld::new(kind, vec![no.clone(), no]);
    let (outcome, status) = w.send(item).await;
    assert_eq!(status, Some(401), "{kind}");
    let why = permanent_reason(outcome);
    assert!(
        why.contains("replace secrets.refresh_token"),
        "{kind}: {why}"
    );
    assert_eq!(
        w.authorizations(),
        ["Bearer token-1", "Bearer token-2"],
        "{kind}: sent once more, not again"
    );
    assert_eq!(w.vendor.grants.lock().unwrap().len(), 2, "{kind}");
}

// ---------------------------------------------------------------------------------------------
// The crate's surface

#[test]
fn every_kind_has_a_connector_and_a_production_base_url() {
    assert_eq!(
        default_base_url(DestinationKind::MetaCapi),
        "https://graph.facebook.com"
    );
    assert_eq!(
        default_base_url(DestinationKind::Ga4),
        "https://www.google-analytics.com"
    );
    assert_eq!(
        default_base_url(DestinationKind::Tiktok),
        "https://business-api.tiktok.com"
    );
    assert_eq!(default_base_url(DestinationKind::Webhook), "");
    let limits = [
        (DestinationKind::MetaCapi, 1000),
        (DestinationKind::Ga4, 25),
        (DestinationKind::Tiktok, 1000),
        (DestinationKind::Webhook, 100),
    ];
    for (kind, limit) in limits {
        let d = destination(kind, json!({}));
        let secrets = json!({});
        assert_eq!(
            connector(kind).batch_limit(&target(&d, &secrets)),
            limit,
            "{kind}"
        );
    }
}

#[test]
fn debug_output_of_requests_never_shows_tokens_or_secrets() {
    let items = [fixture("order")];
    let cases = [
        (
            DestinationKind::MetaCapi,
            vec!["EAAB-token", "shh-app-secret"],
        ),
        (DestinationKind::Ga4, vec!["sec ret", "sec%20ret"]),
        (DestinationKind::Tiktok, vec!["tt-token"]),
        (DestinationKind::Snapchat, vec!["snap-token"]),
        (DestinationKind::Pinterest, vec!["pina-token"]),
        (DestinationKind::Reddit, vec!["rdt-token"]),
        (DestinationKind::MicrosoftAds, vec!["uet-token"]),
        (
            DestinationKind::Segment,
            vec!["wk_live_1", "d2tfbGl2ZV8xOg"],
        ),
        (
            DestinationKind::Linkedin,
            vec!["li-access", "li-secret", "li-refresh"],
        ),
        (
            DestinationKind::GoogleAds,
            vec!["ga-access", "ga-secret", "ga-refresh", "ga-dev-token"],
        ),
        (
            DestinationKind::Firehose,
            vec!["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"], // pragma: allowlist secret
        ),
        (
            DestinationKind::Webhook,
            vec!["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "v1,"], // pragma: allowlist secret
        ),
    ];
    for (kind, hidden) in cases {
        let (d, secrets) = vendor(kind);
        let request = build(&target(&d, &secrets), &items);
        let shown = format!("{request:?} {:?}", Some(&request));
        for secret in hidden {
            assert!(!shown.contains(secret), "{}: {shown}", d.kind);
        }
        assert!(
            !shown.contains("62a14e44"),
            "{}: hashes stay out of Debug",
            d.kind
        );
        assert!(shown.starts_with("POST https://"), "{shown}");
    }
}

#[test]
fn batches_follow_each_connectors_limit() {
    let items: Vec<OpenedItem> = (0..2500).map(|_| fixture("order")).collect();
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let sizes: Vec<usize> = batches(&target(&d, &s), &refs)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);
    let d = destination(
        DestinationKind::Webhook,
        json!({"url": "https://hooks.example/", "batch_size": 700}),
    );
    let s = vendor(DestinationKind::Webhook).1;
    let sizes: Vec<usize> = batches(&target(&d, &s), &refs)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, vec![700, 700, 700, 400]);
}

// ---------------------------------------------------------------------------------------------
// Event names

#[test]
fn segment_spec_names_map_to_each_vendors_standard_events() {
    let table = [
        ("Order Completed", "Purchase", "purchase", "Purchase"),
        ("Product Added", "AddToCart", "add_to_cart", "AddToCart"),
        (
            "Checkout Started",
            "InitiateCheckout",
            "begin_checkout",
            "InitiateCheckout",
        ),
        ("Products Searched", "Search", "search", "Search"),
        (
            "Signed Up",
            "CompleteRegistration",
            "sign_up",
            "CompleteRegistration",
        ),
    ];
    for (segment, meta_name, ga4_name, tiktok_name) in table {
        let item = bare(EventType::Track, Some(segment), NOW).item;
        assert_eq!(
            names::standard(DestinationKind::MetaCapi, &item),
            Some(meta_name)
        );
        assert_eq!(names::standard(DestinationKind::Ga4, &item), Some(ga4_name));
        assert_eq!(
            names::standard(DestinationKind::Tiktok, &item),
            Some(tiktok_name)
        );
        assert_eq!(names::standard(DestinationKind::Webhook, &item), None);
    }
    let page = bare(EventType::Page, Some("Home"), NOW).item;
    assert_eq!(
        names::standard(DestinationKind::MetaCapi, &page),
        Some("PageView")
    );
    assert_eq!(
        names::standard(DestinationKind::Ga4, &page),
        Some("page_view")
    );
    assert_eq!(
        names::standard(DestinationKind::Tiktok, &page),
        Some("Pageview")
    );
}

#[test]
fn segment_names_match_regardless_of_case_and_surrounding_spaces() {
    let item = bare(EventType::Track, Some("  order completed "), NOW).item;
    assert_eq!(
        names::standard(DestinationKind::MetaCapi, &item),
        Some("Purchase")
    );
}

#[test]
fn unmapped_names_pass_through_unchanged() {
    let d = vendor(DestinationKind::MetaCapi).0;
    let item = bare(EventType::Track, Some("Video Played"), NOW).item;
    assert_eq!(names::resolve(&d, &item), "Video Played");
    let screen = bare(EventType::Screen, None, NOW).item;
    assert_eq!(names::resolve(&d, &screen), "screen");
}

#[test]
fn config_event_names_override_the_standard_event() {
    let d = destination(
        DestinationKind::Tiktok,
        json!({"pixel_code": "C1", "event_names": {
            "Order Completed": "CompletePayment",
            "video played": "ViewContent",
            "page": "ViewContent"
        }}),
    );
    let order = bare(EventType::Track, Some("Order Completed"), NOW).item;
    assert_eq!(names::resolve(&d, &order), "CompletePayment");
    let video = bare(EventType::Track, Some("Video Played"), NOW).item;
    assert_eq!(
        names::resolve(&d, &video),
        "ViewContent",
        "keys match ignoring case"
    );
    let page = bare(EventType::Page, Some("Home"), NOW).item;
    assert_eq!(
        names::resolve(&d, &page),
        "ViewContent",
        "`page` maps every page call"
    );
    let signup = bare(EventType::Track, Some("Signed Up"), NOW).item;
    assert_eq!(names::resolve(&d, &signup), "CompleteRegistration");
}

#[test]
fn a_named_page_override_wins_over_the_page_group_override() {
    let d = destination(
        DestinationKind::MetaCapi,
        json!({"event_names": {"page": "ViewContent", "Pricing": "Lead"}}),
    );
    let pricing = bare(EventType::Page, Some("Pricing"), NOW).item;
    assert_eq!(names::resolve(&d, &pricing), "Lead");
}

// ---------------------------------------------------------------------------------------------
// Meta Conversions API

#[test]
fn meta_builds_the_golden_request_with_token_proof_and_test_event_code() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let request = build(
        &target(&d, &s),
        &[fixture("order"), fixture("page"), fixture("search")],
    );
    assert_eq!(
        request.url,
        format!(
            "https://graph.facebook.com/v21.0/1234567890/events?access_token=EAAB-token\
             &appsecret_proof={}",
            meta::appsecret_proof("shh-app-secret", "EAAB-token")
        )
    );
    assert_golden_json(&request, include_str!("fixtures/meta_body.json"));
}

#[test]
fn meta_app_secret_proof_is_the_hex_hmac_of_the_token() {
    // echo -n EAAB-token | openssl dgst -sha256 -hmac shh-app-secret
    assert_eq!(
        meta::appsecret_proof("shh-app-secret", "EAAB-token"),
        "64e4b8b7e8373ea715dfd511a47288b2bfcb43ed987aee1976478f363cd12dd3"
    );
}

#[test]
fn meta_leaves_out_the_proof_and_test_code_when_not_configured() {
    let d = destination(
        DestinationKind::MetaCapi,
        json!({"pixel_id": "42", "api_version": "v22.0"}),
    );
    let s = json!({"access_token": "tok/with+chars"});
    let request = build(&target(&d, &s), &[fixture("order")]);
    assert_eq!(
        request.url,
        "https://graph.facebook.com/v22.0/42/events?access_token=tok%2Fwith%2Bchars"
    );
    assert!(body(&request).get("test_event_code").is_none());
}

#[test]
fn meta_sends_to_the_endpoint_override() {
    let (mut d, s) = vendor(DestinationKind::MetaCapi);
    d.endpoint = Some("http://127.0.0.1:9999/".into());
    let request = build(&target(&d, &s), &[fixture("order")]);
    assert!(request
        .url
        .starts_with("http://127.0.0.1:9999/v21.0/1234567890/events?"));
}

#[test]
fn meta_names_missing_settings_without_echoing_secrets() {
    let d = destination(DestinationKind::MetaCapi, json!({"pixel_id": "1"}));
    let s = vendor(DestinationKind::MetaCapi).1;
    let refs = [&fixture("order")];
    let err = connector(DestinationKind::MetaCapi)
        .build(&target(&d, &s), &refs)
        .unwrap_err();
    assert_eq!(err, "meta_capi: config.api_version is missing");
    let d = vendor(DestinationKind::MetaCapi).0;
    let s = json!({});
    let err = connector(DestinationKind::MetaCapi)
        .build(&target(&d, &s), &refs)
        .unwrap_err();
    assert_eq!(err, "meta_capi: secrets.access_token is missing");
}

#[test]
fn meta_drops_events_older_than_seven_days() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let t = target(&d, &s);
    let mut o = fixture("search");
    o.item.timestamp = NOW - time::Duration::days(7) + time::Duration::minutes(1);
    assert_eq!(screen(&t, &o), Ok(()));
    o.item.timestamp = NOW - time::Duration::days(7) - time::Duration::seconds(1);
    assert!(matches!(screen(&t, &o), Err(DropReason::Age(_))));
}

#[test]
fn meta_drops_purchases_without_value_or_currency() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let t = target(&d, &s);
    let mut o = fixture("order");
    o.item.properties = json!({"order_id": "x", "revenue": 10});
    assert!(matches!(screen(&t, &o), Err(DropReason::Invalid(_))));
    o.item.properties = json!({"order_id": "x", "currency": "EUR"});
    assert!(matches!(screen(&t, &o), Err(DropReason::Invalid(_))));
    o.item.properties = json!({"total": "10.5", "currency": "EUR"});
    assert_eq!(screen(&t, &o), Ok(()));
}

#[test]
fn meta_drops_events_without_any_customer_information() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let mut o = fixture("search");
    o.item.user_data.clear();
    assert!(matches!(
        screen(&target(&d, &s), &o),
        Err(DropReason::Invalid(_))
    ));
}

#[test]
fn meta_sends_only_sha256_digests_as_hashed_identifiers() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let mut o = fixture("search");
    o.item
        .user_data
        .insert(Field::Email, "john@example.com".into());
    let sent = body(&build(&target(&d, &s), &[o]));
    assert!(sent["data"][0]["user_data"].get("em").is_none());
    assert!(!sent.to_string().contains("john@example.com"));
}

/// The raw values of the security review's cases (finding #5), as they reached Meta.
const REVIEW_RAW: &[&str] = &[
    "jane.doe@example.com",
    "jane.doe%40example.com",
    "+1 415 555 0100",
    "415-555-0199",
    "Jane Doe",
    "1 Main St",
    "198.51.100.23",
];

/// An order whose properties hold identifiers under other names and whose page URL carries
/// `?email=`: what an item queued before the fix held.
fn review_item() -> OpenedItem {
    let mut o = fixture("order");
    let props = o.item.properties.as_object_mut().unwrap();
    for (k, v) in [
        ("mobile", json!("+1 415 555 0100")),
        ("tel", json!("415-555-0199")),
        ("fullName", json!("Jane Doe")),
        ("billing_address", json!("1 Main St")),
        ("ip_address", json!("198.51.100.23")),
        ("note", json!("jane.doe@example.com")),
        ("contact", json!("+1 415 555 0100")),
        (
            "url",
            json!("https://shop.example/p?email=jane.doe%40example.com&utm_source=fb"),
        ),
        (
            "referrer",
            json!("https://mail.example/?to=jane.doe@example.com"),
        ),
    ] {
        props.insert(k.into(), v);
    }
    o.sealed.page_url = Some(
        "https://shop.example/thanks?order=ord-1&email=jane.doe%40example.com&tel=%2B14155550100"
            .into(),
    );
    o
}

/// The body `kind` builds for the review item carrying a raw email and a raw city among its
/// digests, after checking that no raw identifier left in it but the `sent_in_clear` ones
/// (what that vendor takes unhashed).
fn review_body_with_raw_identifiers(kind: DestinationKind, sent_in_clear: &[&str]) -> Value {
    let (d, s) = vendor(kind);
    let mut o = review_item();
    let ids = &mut o.item.user_data;
    ids.insert(Field::Email, "jane.doe@example.com".into());
    ids.insert(Field::City, "berlin".into());
    let request = build(&target(&d, &s), &[o]);
    let text = String::from_utf8_lossy(&request.body);
    let raw = ["berlin", "user-42", "anon-1", "jane.doe", "203.0.113.7"];
    for raw in REVIEW_RAW.iter().chain(&raw) {
        if !sent_in_clear.contains(raw) {
            assert!(!text.contains(raw), "{raw} sent to {kind}: {text}");
        }
    }
    body(&request)
}

/// Asserts that each of `keys` of `user` holds a SHA-256 digest (alone or first in a list).
fn assert_digests(user: &Value, keys: &[&str]) {
    for key in keys {
        let v = &user[*key];
        let digest = v.as_str().or_else(|| v[0].as_str()).unwrap_or_default();
        let ok = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(ok, "{key} is not a digest: {v}");
    }
}

#[test]
fn meta_custom_data_and_event_source_url_carry_no_raw_email_or_phone() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let sent = body(&build(&target(&d, &s), &[review_item()]));
    let event = &sent["data"][0];
    assert_eq!(
        event["event_source_url"],
        "https://shop.example/thanks?order=ord-1"
    );
    let custom = event["custom_data"].as_object().unwrap();
    for key in [
        "mobile",
        "tel",
        "fullName",
        "billing_address",
        "ip_address",
        "note",
        "contact",
    ] {
        assert!(!custom.contains_key(key), "{key} in custom_data");
    }
    // What is no identifier still goes.
    assert_eq!(custom["order_id"], "ord-1");
    assert_eq!(custom["checkout_id"], "chk-9");
    let text = sent.to_string();
    for raw in REVIEW_RAW {
        assert!(!text.contains(raw), "{raw} sent to Meta: {text}");
    }
}

#[test]
fn no_connector_sends_a_url_with_identifying_parameters() {
    let cases = DestinationKind::ALL.map(vendor);
    for (d, s) in &cases {
        let mut o = review_item();
        if d.kind == DestinationKind::Ga4 {
            o.sealed.page_url = None; // GA4 then reads properties.url
        }
        let request = build(&target(d, s), &[o]);
        let text = sent_text(&request);
        for raw in REVIEW_RAW {
            assert!(!text.contains(raw), "{}: {raw} in {text}", d.kind);
        }
        assert!(!text.contains("email="), "{}: {text}", d.kind);
        // Reddit's v2.0, LinkedIn's and Google Ads' conversions have no URL field.
        let takes_urls = !matches!(
            d.kind,
            DestinationKind::Reddit | DestinationKind::Linkedin | DestinationKind::GoogleAds
        );
        assert!(
            !takes_urls || text.contains("https://shop.example/"),
            "{}: the URL still goes",
            d.kind
        );
    }
}

#[test]
fn meta_action_source_is_website_only_with_a_page_url_and_a_user_agent() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let mut no_agent = fixture("page");
    no_agent.sealed.user_agent = None;
    let mut own = fixture("search");
    own.item.properties = json!({"action_source": "physical_store"});
    let sent = body(&build(
        &target(&d, &s),
        &[fixture("page"), no_agent, fixture("search"), own],
    ));
    let sources: Vec<&str> = (0..4)
        .map(|i| sent["data"][i]["action_source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["website", "other", "other", "physical_store"]);
    assert_eq!(sent["data"][1]["event_source_url"], "https://shop.example/");
    assert!(sent["data"][3]["custom_data"]
        .get("action_source")
        .is_none());
}

#[test]
fn meta_action_source_follows_the_channel_then_the_page_then_the_destination_default() {
    let s = vendor(DestinationKind::MetaCapi).1;
    let mut shop = vendor(DestinationKind::MetaCapi).0;
    shop.config["action_source"] = json!("physical_store");
    let with_channel = |name: &str, channel: &str| {
        let mut o = fixture(name);
        o.sealed.channel = Some(channel.into());
        o
    };
    let mut browser_without_agent = with_channel("search", "browser");
    browser_without_agent.sealed.user_agent = None;
    let items = [
        with_channel("search", "mobile"),
        with_channel("search", "email"),
        with_channel("page", "server"),
        with_channel("search", "server"),
        browser_without_agent,
    ];
    let sources = |d: &Destination| -> Vec<String> {
        let sent = body(&build(&target(d, &s), &items));
        (0..items.len())
            .map(|i| {
                sent["data"][i]["action_source"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };

    assert_eq!(
        sources(&vendor(DestinationKind::MetaCapi).0),
        ["app", "email", "website", "other", "other"]
    );
    assert_eq!(
        sources(&shop),
        [
            "app",
            "email",
            "website",
            "physical_store",
            "physical_store"
        ]
    );
}

#[test]
fn meta_carries_at_most_1000_events_a_request() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let t = target(&d, &s);
    let items: Vec<OpenedItem> = (0..1001).map(|_| fixture("search")).collect();
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let c = connector(DestinationKind::MetaCapi);
    assert_eq!(c.batch_limit(&t), 1000);
    let request = c.build(&t, &refs[..1000]).expect("1000 fit");
    assert_eq!(body(&request)["data"].as_array().map(Vec::len), Some(1000));
    assert!(c.build(&t, &refs).is_err());
}

#[test]
fn meta_counts_a_2xx_answer_as_delivered() {
    let r = response(
        200,
        r#"{"events_received":3,"messages":[],"fbtrace_id":"A1"}"#,
    );
    assert_eq!(
        classify(DestinationKind::MetaCapi, 3, &r),
        Outcome::Delivered
    );
}

#[test]
fn meta_retries_throttling_and_transient_error_codes() {
    for code in meta::TRANSIENT_CODES {
        let r = response(
            400,
            &format!(
                r#"{{"error":{{"message":"Calls limited","type":"OAuthException","code":{code},"fbtrace_id":"F1"}}}}"#
            ),
        );
        let outcome = classify(DestinationKind::MetaCapi, 1, &r);
        assert!(is_retry(&outcome), "code {code}: {outcome:?}");
    }
    let r = response(
        400,
        r#"{"error":{"message":"try later","type":"OAuthException","code":100,"is_transient":true}}"#,
    );
    assert!(is_retry(&classify(DestinationKind::MetaCapi, 1, &r)));
}

#[test]
fn meta_retries_408_429_and_5xx_honouring_retry_after() {
    for status in [408, 429, 500, 503] {
        let r = response_with(status, &[("Retry-After", "30")], "");
        assert_eq!(
            classify(DestinationKind::MetaCapi, 1, &r),
            Outcome::Retry {
                after: Some(Duration::from_secs(30)),
                reason: format!("HTTP {status}: "),
            }
        );
    }
    let r = response_with(
        503,
        &[
            ("Date", "Sun, 01 Mar 2026 12:00:00 +0000"),
            ("Retry-After", "Sun, 01 Mar 2026 12:02:00 +0000"),
        ],
        r#"{"error":{"message":"Service temporarily unavailable","code":2}}"#,
    );
    match classify(DestinationKind::MetaCapi, 1, &r) {
        Outcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(120)));
            assert!(
                reason.contains("Service temporarily unavailable"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn meta_gives_up_on_other_client_errors_with_metas_message() {
    let r = response(
        400,
        r#"{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,
            "error_subcode":2804019,"error_user_msg":"event_time is too far in the past",
            "fbtrace_id":"AbC123"}}"#,
    );
    let reason = permanent_reason(classify(DestinationKind::MetaCapi, 1, &r));
    assert_eq!(
        reason,
        "HTTP 400: Meta OAuthException code 100 subcode 2804019: Invalid parameter \
         (event_time is too far in the past) [fbtrace_id AbC123]"
    );
    let r = response(
        401,
        r#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}"#,
    );
    assert!(permanent_reason(classify(DestinationKind::MetaCapi, 1, &r))
        .contains("Invalid OAuth access token."));
}

// ---------------------------------------------------------------------------------------------
// GA4 Measurement Protocol

#[test]
fn ga4_builds_the_golden_request_for_one_client() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let request = build(&target(&d, &s), &[fixture("order")]);
    assert_eq!(
        request.url,
        "https://www.google-analytics.com/mp/collect?measurement_id=G-ABC123&api_secret=sec%20ret"
    );
    assert_golden_json(&request, include_str!("fixtures/ga4_body.json"));
}

#[test]
fn ga4_sends_to_the_validation_server_when_validate_is_set() {
    let d = destination(
        DestinationKind::Ga4,
        json!({"measurement_id": "G-ABC123", "validate": true}),
    );
    let s = vendor(DestinationKind::Ga4).1;
    let request = build(&target(&d, &s), &[fixture("order")]);
    assert_eq!(
        request.url,
        "https://www.google-analytics.com/debug/mp/collect?measurement_id=G-ABC123&api_secret=sec%20ret"
    );
}

#[test]
fn ga4_takes_the_anonymous_id_when_no_client_id_was_captured() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let sent = body(&build(&target(&d, &s), &[fixture("search")]));
    assert_eq!(sent["client_id"], "anon-2");
    assert_eq!(sent["user_id"], "user-42");
    assert_eq!(sent["events"][0]["name"], "search");
    assert_eq!(sent["events"][0]["params"]["search_term"], "blue shirt");
}

#[test]
fn ga4_drops_events_without_any_client_id() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let mut o = fixture("search");
    o.sealed.anonymous_id = Some("  ".into());
    assert!(matches!(
        screen(&target(&d, &s), &o),
        Err(DropReason::Invalid(_))
    ));
}

#[test]
fn ga4_drops_events_older_than_72_hours() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let t = target(&d, &s);
    let mut o = fixture("order");
    o.item.timestamp = NOW - time::Duration::hours(71);
    assert_eq!(screen(&t, &o), Ok(()));
    o.item.timestamp = NOW - time::Duration::hours(72) - time::Duration::seconds(1);
    assert!(matches!(screen(&t, &o), Err(DropReason::Age(_))));
}

#[test]
fn ga4_sanitizes_unmapped_names_to_snake_case() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let items = [
        bare(EventType::Track, Some("Video Played"), NOW),
        bare(EventType::Track, Some("newsletterSubscribed"), NOW),
        bare(
            EventType::Track,
            Some("A very long event name that goes on and on and on"),
            NOW,
        ),
    ];
    let sent = body(&build(&target(&d, &s), &items));
    let names: Vec<&str> = (0..3)
        .map(|i| sent["events"][i]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "video_played",
            "newsletter_subscribed",
            "a_very_long_event_name_that_goes_on_and"
        ]
    );
    assert!(names.iter().all(|n| n.len() <= 40));
}

#[test]
fn ga4_drops_events_whose_name_cannot_be_made_valid() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let t = target(&d, &s);
    for name in ["2FA Enabled", "!!!", "session_start", "Firebase Sync"] {
        let o = bare(EventType::Track, Some(name), NOW);
        assert!(
            matches!(screen(&t, &o), Err(DropReason::Invalid(_))),
            "{name}"
        );
    }
    let renamed = destination(
        DestinationKind::Ga4,
        json!({"measurement_id": "G-1", "event_names": {"2FA Enabled": "two_factor_enabled"}}),
    );
    let o = bare(EventType::Track, Some("2FA Enabled"), NOW);
    assert_eq!(screen(&target(&renamed, &s), &o), Ok(()));
}

#[test]
fn ga4_keeps_the_first_25_parameters_and_cuts_strings_to_100_characters() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let mut o = bare(EventType::Track, Some("Custom Thing"), NOW);
    let mut props = serde_json::Map::new();
    props.insert("currency".into(), json!("usd"));
    props.insert("value".into(), json!(5));
    for i in 0..40 {
        props.insert(format!("p{i:02}"), json!("x".repeat(150)));
    }
    o.item.properties = Value::Object(props);
    let params = ga4::params(&o);
    assert_eq!(params.len(), 25);
    assert_eq!(params["currency"], "USD");
    assert_eq!(params["value"], 5);
    // The standard parameters come first, then the others in key order: p00 to p22.
    assert!(params.contains_key("p22") && !params.contains_key("p23"));
    assert_eq!(params["p00"].as_str().map(str::len), Some(100));
    let sent = body(&build(&target(&d, &s), &[o]));
    assert_eq!(
        sent["events"][0]["params"].as_object().map(|p| p.len()),
        Some(25)
    );
}

#[test]
fn ga4_sanitizes_parameter_names_and_drops_invalid_ones() {
    let mut o = bare(EventType::Track, Some("Custom Thing"), NOW);
    o.item.properties = json!({
        "Plan Name": "pro",
        "planName": "duplicate after sanitizing",
        "3d_secure": true,
        "google_campaign": "reserved prefix",
        "nested": {"a": 1},
        "list": [1, 2],
        "nothing": null,
        "trial": false
    });
    let params = ga4::params(&o);
    assert_eq!(
        Value::Object(params),
        json!({"plan_name": "pro", "trial": "false"})
    );
}

#[test]
fn ga4_groups_requests_by_client_id_with_at_most_25_events() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let t = target(&d, &s);
    let mut items = Vec::new();
    for i in 0..60 {
        let mut o = fixture("page");
        if i % 2 == 1 {
            o.sealed.anonymous_id = Some("anon-other".into());
        }
        items.push(o);
    }
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let groups = batches(&t, &refs);
    let shape: Vec<(String, usize)> = groups
        .iter()
        .map(|g| (ga4::client_id(g[0]).unwrap().to_owned(), g.len()))
        .collect();
    assert_eq!(
        shape,
        [
            ("anon-1".to_owned(), 25),
            ("anon-1".to_owned(), 5),
            ("anon-other".to_owned(), 25),
            ("anon-other".to_owned(), 5),
        ]
    );
    for g in &groups {
        let request = connector(DestinationKind::Ga4)
            .build(&t, g)
            .expect("builds");
        let sent = body(&request);
        assert_eq!(sent["client_id"], ga4::client_id(g[0]).unwrap());
    }
}

#[test]
fn ga4_refuses_to_build_a_request_mixing_clients() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let mut other = fixture("page");
    other.sealed.anonymous_id = Some("anon-other".into());
    let items = [fixture("page"), other];
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let err = connector(DestinationKind::Ga4)
        .build(&target(&d, &s), &refs)
        .unwrap_err();
    assert!(err.contains("batches"), "{err}");
}

/// `max` items of `kind` make one request; one more does not.
fn assert_carries_at_most(kind: DestinationKind, t: &Target<'_>, kind_of_item: &str, max: usize) {
    let items: Vec<OpenedItem> = (0..=max).map(|_| fixture(kind_of_item)).collect();
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let c = connector(kind);
    assert!(c.build(t, &refs[..max]).is_ok(), "{max} fit");
    assert!(c.build(t, &refs).is_err(), "{} do not", max + 1);
}

#[test]
fn ga4_carries_at_most_25_events_a_request() {
    let (d, s) = vendor(DestinationKind::Ga4);
    assert_carries_at_most(DestinationKind::Ga4, &target(&d, &s), "page", 25);
}

#[test]
fn ga4_sends_no_user_data_when_ad_user_data_is_denied() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let mut o = fixture("order");
    o.item.consent.ad_user_data = Some(false);
    let sent = body(&build(&target(&d, &s), &[o]));
    assert!(sent.get("user_data").is_none());
    assert_eq!(
        sent["consent"],
        json!({"ad_user_data": "DENIED", "ad_personalization": "DENIED"})
    );
}

#[test]
fn ga4_page_views_carry_location_title_and_referrer() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let sent = body(&build(&target(&d, &s), &[fixture("page")]));
    assert_eq!(
        sent["events"][0],
        json!({
            "name": "page_view",
            "params": {
                "page_location": "https://shop.example/",
                "page_title": "Home",
                "page_referrer": "https://search.example/",
                "path": "/"
            },
            "timestamp_micros": 1_772_364_600_000_000_i64
        })
    );
    assert!(sent.get("consent").is_none() && sent.get("user_id").is_none());
}

#[test]
fn ga4_counts_any_2xx_as_delivered() {
    for r in [response(204, ""), response(200, "<html>ok</html>")] {
        assert_eq!(classify(DestinationKind::Ga4, 2, &r), Outcome::Delivered);
    }
    let r = response(200, r#"{"validationMessages":[]}"#);
    assert_eq!(classify(DestinationKind::Ga4, 2, &r), Outcome::Delivered);
}

#[test]
fn ga4_surfaces_validation_messages_per_event() {
    let r = response(
        200,
        r#"{"validationMessages":[{"fieldPath":"events","description":"Event at index: [1] has invalid name [_badEventName]. Names must start with an alphabetic character.","validationCode":"NAME_INVALID"}]}"#,
    );
    match classify(DestinationKind::Ga4, 3, &r) {
        Outcome::PerItem(outcomes) => {
            assert_eq!(outcomes.len(), 3);
            assert_eq!(outcomes[0], (0, Outcome::Delivered));
            assert_eq!(outcomes[2], (2, Outcome::Delivered));
            let (index, outcome) = &outcomes[1];
            assert_eq!(*index, 1);
            assert!(permanent_reason(outcome.clone()).contains("NAME_INVALID"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ga4_fails_the_whole_request_on_a_validation_message_without_an_event() {
    let r = response(
        200,
        r#"{"validationMessages":[{"fieldPath":"client_id","description":"Measurement requires a client_id.","validationCode":"VALUE_REQUIRED"}]}"#,
    );
    let reason = permanent_reason(classify(DestinationKind::Ga4, 2, &r));
    assert_eq!(
        reason,
        "GA4 validation: VALUE_REQUIRED client_id: Measurement requires a client_id."
    );
}

#[test]
fn ga4_retries_server_errors_and_rate_limits() {
    for status in [429, 500, 502] {
        assert!(is_retry(&classify(
            DestinationKind::Ga4,
            1,
            &response(status, "")
        )));
    }
    assert!(matches!(
        classify(DestinationKind::Ga4, 1, &response(403, "")),
        Outcome::Permanent { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// TikTok Events API

#[test]
fn tiktok_builds_the_golden_request_with_the_access_token_header() {
    let (d, s) = vendor(DestinationKind::Tiktok);
    let request = build(
        &target(&d, &s),
        &[fixture("order"), fixture("page"), fixture("search")],
    );
    assert_eq!(
        request.url,
        "https://business-api.tiktok.com/open_api/v1.3/event/track/"
    );
    assert_eq!(
        request.headers,
        vec![
            ("Access-Token".to_owned(), "tt-token".to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ]
    );
    assert_eq!(
        body(&request),
        golden(include_str!("fixtures/tiktok_body.json"))
    );
}

#[test]
fn tiktok_sends_the_test_event_code_when_configured() {
    let d = destination(
        DestinationKind::Tiktok,
        json!({"pixel_code": "C1", "test_event_code": "TEST42"}),
    );
    let s = vendor(DestinationKind::Tiktok).1;
    let sent = body(&build(&target(&d, &s), &[fixture("page")]));
    assert_eq!(sent["test_event_code"], "TEST42");
    assert_eq!(sent["event_source_id"], "C1");
}

#[test]
fn tiktok_carries_at_most_1000_events_a_request() {
    let (d, s) = vendor(DestinationKind::Tiktok);
    assert_carries_at_most(DestinationKind::Tiktok, &target(&d, &s), "search", 1000);
}

#[test]
fn tiktok_counts_code_0_as_delivered() {
    let r = response(
        200,
        r#"{"code":0,"message":"OK","request_id":"2023","data":{}}"#,
    );
    assert_eq!(classify(DestinationKind::Tiktok, 2, &r), Outcome::Delivered);
}

#[test]
fn tiktok_retries_rate_limits_and_internal_errors() {
    let codes = tiktok::RETRY_CODES.into_iter().chain([50000, 50002]);
    for code in codes {
        let r = response_with(
            200,
            &[("Retry-After", "5")],
            &format!(r#"{{"code":{code},"message":"busy","request_id":"r"}}"#),
        );
        assert_eq!(
            classify(DestinationKind::Tiktok, 1, &r),
            Outcome::Retry {
                after: Some(Duration::from_secs(5)),
                reason: format!("HTTP 200: TikTok code {code}: busy"),
            }
        );
    }
}

#[test]
fn tiktok_gives_up_on_other_codes_with_tiktoks_message() {
    let r = response(
        200,
        r#"{"code":40002,"message":"Invalid value for event_source_id","request_id":"r"}"#,
    );
    assert_eq!(
        permanent_reason(classify(DestinationKind::Tiktok, 1, &r)),
        "HTTP 200: TikTok code 40002: Invalid value for event_source_id"
    );
    let r = response(
        200,
        r#"{"code":40105,"message":"Access token is incorrect"}"#,
    );
    assert!(matches!(
        classify(DestinationKind::Tiktok, 1, &r),
        Outcome::Permanent { .. }
    ));
}

#[test]
fn tiktok_falls_back_to_the_http_status_without_a_code() {
    assert!(is_retry(&classify(
        DestinationKind::Tiktok,
        1,
        &response(502, "Bad gateway")
    )));
    assert!(matches!(
        classify(DestinationKind::Tiktok, 1, &response(404, "")),
        Outcome::Permanent { .. }
    ));
    assert!(matches!(
        classify(DestinationKind::Tiktok, 1, &response(200, "")),
        Outcome::Permanent { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks

#[test]
fn webhook_signatures_match_the_standard_webhooks_test_vector() {
    // standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
    // test_sign_function.
    let signature = sign_webhook(
        SPEC_SECRET,
        SPEC_MSG_ID,
        1614265330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(
        signature.as_deref(),
        Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    );
}

#[test]
fn webhook_signing_takes_the_secret_with_or_without_its_prefix() {
    let bare_secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; // pragma: allowlist secret
    assert_eq!(
        sign_webhook(
            bare_secret,
            SPEC_MSG_ID,
            1614265330,
            br#"{"test": 2432232314}"#
        ),
        sign_webhook(
            SPEC_SECRET,
            SPEC_MSG_ID,
            1614265330,
            br#"{"test": 2432232314}"#
        ),
    );
}

#[test]
fn webhook_signing_refuses_a_secret_that_is_not_base64_without_echoing_it() {
    for secret in ["whsec_not base64!!", "whsec_", ""] {
        let err = sign_webhook(secret, "msg_1", 1, b"{}").unwrap_err();
        assert!(!err.contains("base64!!"), "{err}");
    }
}

#[test]
fn webhook_builds_the_golden_signed_request() {
    let (d, s) = vendor(DestinationKind::Webhook);
    let request = build(
        &target(&d, &s),
        &[fixture("order"), fixture("page"), fixture("search")],
    );
    assert_eq!(request.url, "https://hooks.example/tracklayer");
    assert_eq!(
        body(&request),
        golden(include_str!("fixtures/webhook_body.json"))
    );
    let id = header(&request, "webhook-id").expect("id");
    let timestamp = header(&request, "webhook-timestamp").expect("timestamp");
    assert_eq!(id, "msg_c9f25055e029419d391d3fb2eeddd4ed");
    assert_eq!(timestamp, "1772366400");
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    let expected = sign_webhook(SPEC_SECRET, id, NOW.unix_timestamp(), &request.body).unwrap();
    assert_eq!(
        header(&request, "webhook-signature"),
        Some(expected.as_str())
    );
}

#[test]
fn webhook_ids_stay_the_same_across_retries_while_timestamps_move() {
    let (d, s) = vendor(DestinationKind::Webhook);
    let items = [fixture("order"), fixture("page")];
    let first = build(&target(&d, &s), &items);
    let mut later = target(&d, &s);
    later.now = NOW + time::Duration::minutes(5);
    let refs: Vec<&OpenedItem> = items.iter().collect();
    let retry = connector(DestinationKind::Webhook)
        .build(&later, &refs)
        .unwrap();
    assert_eq!(header(&first, "webhook-id"), header(&retry, "webhook-id"));
    assert_ne!(
        header(&first, "webhook-timestamp"),
        header(&retry, "webhook-timestamp")
    );
    assert_eq!(first.body, retry.body);
    let other = build(&target(&d, &s), &items[..1]);
    assert_ne!(header(&first, "webhook-id"), header(&other, "webhook-id"));
    assert_eq!(webhook::message_id(&refs).len(), 36);
}

#[test]
fn webhook_batch_size_defaults_to_100_and_follows_config() {
    let s = vendor(DestinationKind::Webhook).1;
    let sized = destination(
        DestinationKind::Webhook,
        json!({"url": "https://hooks.example/", "batch_size": 10}),
    );
    let c = connector(DestinationKind::Webhook);
    assert_eq!(c.batch_limit(&target(&sized, &s)), 10);
    let d = vendor(DestinationKind::Webhook).0;
    assert_eq!(c.batch_limit(&target(&d, &s)), webhook::DEFAULT_BATCH_SIZE);
    let items: Vec<OpenedItem> = (0..11).map(|_| fixture("search")).collect();
    let refs: Vec<&OpenedItem> = items.iter().collect();
    assert!(c.build(&target(&sized, &s), &refs).is_err());
    assert!(c.build(&target(&sized, &s), &refs[..10]).is_ok());
}

#[test]
fn webhook_posts_to_the_endpoint_override() {
    let mut d = vendor(DestinationKind::Webhook).0;
    d.endpoint = Some("https://override.example/in".into());
    let s = vendor(DestinationKind::Webhook).1;
    let request = build(&target(&d, &s), &[fixture("page")]);
    assert_eq!(request.url, "https://override.example/in");
}

#[test]
fn webhook_classifies_by_http_status() {
    let kind = DestinationKind::Webhook;
    assert_eq!(classify(kind, 1, &response(204, "")), Outcome::Delivered);
    assert!(is_retry(&classify(kind, 1, &response(503, ""))));
    assert!(is_retry(&classify(kind, 1, &response(408, ""))));
    assert_eq!(
        permanent_reason(classify(kind, 1, &response(410, "gone"))),
        "HTTP 410: gone"
    );
}

#[test]
fn webhook_events_apply_only_configured_name_overrides() {
    let d = destination(
        DestinationKind::Webhook,
        json!({"url": "https://hooks.example/", "event_names": {"Order Completed": "order.completed"}}),
    );
    let s = vendor(DestinationKind::Webhook).1;
    let sent = body(&build(
        &target(&d, &s),
        &[fixture("order"), fixture("search")],
    ));
    assert_eq!(sent["events"][0]["name"], "order.completed");
    assert_eq!(sent["events"][1]["name"], "Products Searched");
}

// ---------------------------------------------------------------------------------------------
// No panics

/// Items whose properties and sealed fields are anything but what the spec says.
fn hostile_items() -> Vec<OpenedItem> {
    let long = "é".repeat(10_000);
    let shapes = [
        json!(null),
        json!([1, 2, 3]),
        json!("just a string"),
        json!({"products": "not a list", "revenue": {"a": 1}, "currency": 12}),
        json!({"products": [null, 1, "x", {"product_id": {}, "price": "abc", "quantity": -3}]}),
        json!({"revenue": "NaN", "total": "1e400", "value": 1e300, "currency": ""}),
        json!({"query": long.clone(), "title": long.clone(), "url": long.clone()}),
        json!({"product_id": "p", "price": 1.5, "quantity": 1e20}),
        json!({(long.clone()): long.clone(), "": "", "🙂": 1}),
    ];
    let mut out = Vec::new();
    for (i, props) in shapes.into_iter().enumerate() {
        let mut o = fixture("order");
        o.item.properties = props;
        o.item.name = match i % 3 {
            0 => None,
            1 => Some(long.clone()),
            _ => Some("🙂 ✨".into()),
        };
        o.item.user_data.insert(Field::Email, "not-a-hash".into());
        o.sealed.page_url = Some(long.clone());
        o.sealed.click_ids.insert("client_id".into(), long.clone());
        o.sealed.plain.insert(Field::City, long.clone());
        out.push(o);
    }
    let mut empty = fixture("search");
    empty.sealed = SealedFields::default();
    empty.item.user_data.clear();
    empty.item.timestamp = OffsetDateTime::UNIX_EPOCH;
    out.push(empty);
    out
}

#[test]
fn hostile_items_never_make_a_connector_panic() {
    let mut cases = DestinationKind::ALL.map(vendor).to_vec();
    cases.extend([
        (
            destination(DestinationKind::MetaCapi, json!(null)),
            json!(null),
        ),
        (destination(DestinationKind::Ga4, json!([1])), json!("x")),
        (
            destination(
                DestinationKind::Webhook,
                json!({"url": 5, "batch_size": -1}),
            ),
            json!({"signing_secret": 7}),
        ),
    ]);
    let items = hostile_items();
    for (d, s) in &cases {
        let t = target(d, s);
        let c = connector(d.kind);
        let _ = c.batch_limit(&t);
        for item in &items {
            let _ = c.screen(&t, item);
            let _ = c.build(&t, &[item]);
        }
        let refs: Vec<&OpenedItem> = items.iter().collect();
        for group in batches(&t, &refs) {
            let _ = c.build(&t, &group);
        }
    }
}

#[test]
fn hostile_items_leave_no_unhashed_identifier_in_any_request() {
    let cases = DestinationKind::ALL.map(vendor);
    for (d, s) in &cases {
        let t = target(d, s);
        for item in hostile_items() {
            if let Ok(request) = connector(d.kind).build(&t, &[&item]) {
                let text = sent_text(&request);
                assert!(!text.contains("not-a-hash"), "{}: {text:.200}", d.kind);
            }
        }
    }
}

#[test]
fn hostile_responses_never_make_a_classifier_panic() {
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff, 0xfe, 0x00],
        b"null".to_vec(),
        b"[]".to_vec(),
        br#"{"error": "string"}"#.to_vec(),
        br#"{"error": {"code": "4", "message": 7}}"#.to_vec(),
        br#"{"code": "0"}"#.to_vec(),
        br#"{"code": 1e30}"#.to_vec(),
        br#"{"validationMessages": [1, null, {"fieldPath": "events[99999999999999999999]"}]}"#
            .to_vec(),
        br#"{"validationMessages": {"fieldPath": "events[0]"}}"#.to_vec(),
        "x".repeat(100_000).into_bytes(),
    ];
    let headers: [&[(&str, &str)]; 3] = [
        &[],
        &[("Retry-After", "-5"), ("Date", "garbage")],
        &[("Retry-After", "Thu, 01 Jan 1970 00:00:00 +0000")],
    ];
    for kind in DestinationKind::ALL {
        for status in [0, 100, 200, 204, 299, 301, 400, 408, 429, 500, 599, 999] {
            for b in &bodies {
                for h in headers {
                    let r = HttpResponse {
                        status,
                        headers: h
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                        body: b.clone(),
                    };
                    for n in [0, 1, 3] {
                        let _ = classify(kind, n, &r);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requirements: one set of rules for ingest's warnings and delivery's drops

/// The rule `requirements::unmet` names for an item, after checking that the connector's own
/// screening drops it with the same detail.
fn broken_rule(d: &Destination, s: &Value, item: &OpenedItem) -> Option<&'static str> {
    let t = target(d, s);
    let unmet = requirements::unmet(&t, item);
    match (&unmet, screen(&t, item)) {
        (None, Ok(())) => {}
        (Some(u), Err(DropReason::Age(detail) | DropReason::Invalid(detail))) => {
            assert_eq!(u.detail, detail, "ingest warns of what delivery drops");
        }
        (u, screened) => panic!("ingest says {u:?}, delivery {screened:?}"),
    }
    unmet.map(|u| u.rule)
}

#[test]
fn a_meta_purchase_needs_a_numeric_value_and_a_currency() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let with = |props: Value| {
        let mut o = fixture("order");
        o.item.properties = props;
        o
    };
    let cases = [
        (json!({"revenue": 49.9, "currency": "EUR"}), None),
        (json!({"revenue": 49.9}), Some("purchase_requires_currency")),
        (json!({"currency": "EUR"}), Some("purchase_requires_value")),
        (
            json!({"revenue": "49,90", "currency": "EUR"}),
            Some("purchase_requires_value"),
        ),
        (json!({"revenue": "49.90", "currency": "EUR"}), None),
    ];
    for (props, rule) in cases {
        assert_eq!(broken_rule(&d, &s, &with(props.clone())), rule, "{props}");
    }
    let comma = requirements::unmet(
        &target(&d, &s),
        &with(json!({"revenue": "49,90", "currency": "EUR"})),
    )
    .unwrap();
    assert!(
        comma.detail.contains("\"49,90\", not a number"),
        "{}",
        comma.detail
    );
}

#[test]
fn meta_needs_customer_information_and_events_at_most_7_days_old() {
    let (d, s) = vendor(DestinationKind::MetaCapi);
    let mut anonymous = fixture("search");
    anonymous.item.user_data.clear();
    anonymous.sealed = SealedFields::default();
    let old = bare(
        EventType::Track,
        Some("Signed Up"),
        NOW - time::Duration::days(8),
    );

    assert_eq!(
        broken_rule(&d, &s, &anonymous),
        Some("meta_requires_customer_information")
    );
    assert_eq!(broken_rule(&d, &s, &old), Some("meta_max_age_7_days"));
}

#[test]
fn ga4_needs_a_client_id_a_valid_name_and_events_at_most_72_hours_old() {
    let (d, s) = vendor(DestinationKind::Ga4);
    let mut no_client = fixture("search");
    no_client.sealed.click_ids.clear();
    no_client.sealed.anonymous_id = None;
    let mut bad_name = fixture("search");
    bad_name.item.name = Some("!!!".into());
    let mut old = fixture("search");
    old.item.timestamp = NOW - time::Duration::hours(73);

    assert_eq!(broken_rule(&d, &s, &fixture("search")), None);
    assert_eq!(
        broken_rule(&d, &s, &no_client),
        Some("ga4_requires_client_id")
    );
    assert_eq!(
        broken_rule(&d, &s, &bad_name),
        Some("ga4_event_name_invalid")
    );
    assert_eq!(broken_rule(&d, &s, &old), Some("ga4_max_age_72_hours"));
}

#[test]
fn tiktok_and_webhooks_take_every_event() {
    let mut empty = fixture("search");
    empty.item.user_data.clear();
    empty.sealed = SealedFields::default();
    empty.item.timestamp = NOW - time::Duration::days(30);
    assert_eq!(
        broken_rule(
            &vendor(DestinationKind::Tiktok).0,
            &vendor(DestinationKind::Tiktok).1,
            &empty
        ),
        None
    );
    assert_eq!(
        broken_rule(
            &vendor(DestinationKind::Webhook).0,
            &vendor(DestinationKind::Webhook).1,
            &empty
        ),
        None
    );
}
