//! `/admin/v1/cors`: the origins allowed to call the tracking API from a browser, and how
//! ingest answers preflights, allowed origins, other origins and server traffic.

use super::*;

/// The reply is the refusal of a request from `origin`: 403 `origin-not-allowed` naming the
/// origin, without `Access-Control-Allow-Origin`.
fn assert_origin_refused((status, headers, v): (StatusCode, HeaderMap, Value), origin: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {v}");
    assert_eq!(
        v["type"], "https://tracklayer.io/problems/origin-not-allowed",
        "{v}"
    );
    assert_eq!(v["origin"], origin, "{v}");
    assert!(
        !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "{origin}"
    );
}

impl App {
    /// `POST /v1/track` with the write key, from `origin` when given.
    async fn track_from(&self, origin: Option<&str>) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/v1/track")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.write_key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"event": "Order Completed", "userId": "user-1"}).to_string(),
            ))
            .unwrap();
        if let Some(origin) = origin {
            req.headers_mut()
                .insert(header::ORIGIN, origin.parse().unwrap());
        }
        self.send(req).await
    }

    /// Replaces the allowed origins as the admin; answers the settings as stored.
    async fn allow_origins(&self, origins: &[&str]) -> Value {
        let body = json!({ "allowed_origins": origins });
        self.put("/admin/v1/cors", body).await
    }

    async fn origins_refused(&self) -> u64 {
        let req = Request::builder()
            .uri("/healthz")
            .body(Body::empty())
            .unwrap();
        let (_, _, v) = self.send(req).await;
        v["ingest"]["origins_refused"].as_u64().expect("a counter")
    }
}

#[tokio::test]
async fn allowed_origins_are_set_by_an_admin_audited_and_enforced_at_ingest() {
    let app = App::start().await;
    assert_eq!(
        app.get("/admin/v1/cors").await,
        json!({"allowed_origins": []})
    );

    let v = app
        .allow_origins(&["https://Shop.Example:443", "https://*.shop.example"])
        .await;

    let want = json!({"allowed_origins": ["https://shop.example", "https://*.shop.example"]});
    assert_eq!(v, want);
    assert_eq!(
        app.last_security_change().await["allowed_origins"]["to"],
        want["allowed_origins"]
    );
    // Replacing the other security settings leaves the origins alone.
    app.replace_security(&[], false).await;
    assert_eq!(app.get("/admin/v1/cors").await, want);

    let (status, headers, v) = app.track_from(Some("https://www.shop.example")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://www.shop.example"
    );
    assert_eq!(headers[header::VARY], "origin");

    let (status, headers, v) = app.track_from(None).await;
    assert_eq!(status, StatusCode::OK, "server traffic is unaffected: {v}");
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

    assert_eq!(app.origins_refused().await, 0);
    for evil in [
        "https://evilshop.example",
        "https://shop.example.evil",
        "null",
    ] {
        assert_origin_refused(app.track_from(Some(evil)).await, evil);
    }
    assert_eq!(app.origins_refused().await, 3);
}

#[tokio::test]
async fn a_browser_request_is_refused_while_no_origin_is_allowed() {
    let app = App::start().await;

    let reply = app.track_from(Some("https://shop.example")).await;

    assert_origin_refused(reply, "https://shop.example");
}

#[tokio::test]
async fn every_origin_is_allowed_only_when_an_admin_lists_the_wildcard() {
    let app = App::start().await;
    app.allow_origins(&["*"]).await;

    let (status, headers, v) = app.track_from(Some("https://anyone.example")).await;

    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://anyone.example"
    );
}

#[tokio::test]
async fn a_malformed_origin_is_a_422_naming_its_entry_and_changes_nothing() {
    let app = App::start().await;
    for (bad, field) in [
        (
            json!(["https://shop.example", "shop.example"]),
            "allowed_origins[1]",
        ),
        (json!(["https://shop.example/path"]), "allowed_origins[0]"),
        (json!(["https://a.*.shop.example"]), "allowed_origins[0]"),
        (json!(["https://*"]), "allowed_origins[0]"),
    ] {
        app.assert_invalid_field(
            Method::PUT,
            "/admin/v1/cors",
            json!({"allowed_origins": bad}),
            field,
        )
        .await;
    }
    assert_eq!(
        app.get("/admin/v1/cors").await,
        json!({"allowed_origins": []})
    );
}

#[tokio::test]
async fn a_preflight_is_answered_with_methods_headers_and_max_age() {
    let app = App::start().await;
    let preflight = |origin: Option<&str>| {
        let mut req = Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/batch")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type",
            );
        if let Some(origin) = origin {
            req = req.header(header::ORIGIN, origin);
        }
        req.body(Body::empty()).unwrap()
    };

    let (status, headers, _) = app.send(preflight(Some("https://shop.example"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_METHODS],
        "POST, GET, OPTIONS"
    );
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert_eq!(headers[header::ACCESS_CONTROL_MAX_AGE], "7200");
    assert_eq!(headers[header::VARY], "origin");

    let (status, headers, _) = app.send(preflight(None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

    let reply = app.send(preflight(Some("javascript:alert(1)"))).await;
    assert_origin_refused(reply, "javascript:alert(1)");
}

#[tokio::test]
async fn the_browser_sdks_paths_settings_and_beacon_are_served_from_an_allowed_origin() {
    let app = App::start().await;
    app.allow_origins(&["http://127.0.0.1:5000"]).await;
    let origin = "http://127.0.0.1:5000";
    let request = |method: Method, uri: &str, body: Option<Value>| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:9000")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap()
    };
    let get = |uri: &str| request(Method::GET, uri, None);
    let key = app.write_key.clone();

    // analytics-next: per-type short paths and its batch path, text/plain, writeKey in the body.
    for (path, body) in [
        (
            "/v1/t",
            json!({"type": "track", "event": "Order Completed", "userId": "u1", "writeKey": key}),
        ),
        (
            "/v1/p",
            json!({"type": "page", "name": "Home", "anonymousId": "a1", "writeKey": key}),
        ),
        (
            "/v1/i",
            json!({"type": "identify", "userId": "u1", "writeKey": key}),
        ),
        (
            "/v1/b",
            json!({"batch": [{"type": "track", "event": "X", "userId": "u1"}], "writeKey": key}),
        ),
    ] {
        let (status, headers, v) = app.send(request(Method::POST, path, Some(body))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            origin,
            "{path}"
        );
    }
    // rudder's beacon: the key in the query, no header.
    let beacon = format!("/beacon/v1/batch?writeKey={key}");
    let body = json!({"batch": [{"type": "track", "event": "Left", "anonymousId": "a1"}]});
    let (status, _, v) = app.send(request(Method::POST, &beacon, Some(body))).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let settings = format!("/v1/projects/{key}/settings");
    let (status, headers, doc) = app.send(get(&settings)).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);
    assert_eq!(
        doc["integrations"]["Segment.io"]["apiHost"],
        "127.0.0.1:9000/v1"
    );
    assert_eq!(doc["integrations"]["Segment.io"]["protocol"], "http");

    let source_config = format!("/sourceConfig/?writeKey={key}&p=npm");
    let (status, _, doc) = app.send(get(&source_config)).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["source"]["destinations"], json!([]));

    // A wrong key gets no settings; another origin gets nothing.
    let (status, _, _) = app.send(get("/v1/projects/tl_wrong/settings")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut foreign = get(&settings);
    foreign
        .headers_mut()
        .insert(header::ORIGIN, "http://127.0.0.1:6666".parse().unwrap());
    let (status, _, v) = app.send(foreign).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn a_browser_key_works_only_from_an_allowed_origin_is_limited_per_address_and_never_admin() {
    let app = App::start().await;
    app.allow_origins(&["https://shop.example"]).await;
    let created = app
        .post(
            "/admin/v1/api-keys",
            json!({"kind": "ingest", "name": "web", "browser": true}),
        )
        .await;
    assert_eq!(created["key"]["browser"], true, "{created}");
    let key = created["secret"].as_str().unwrap().to_owned();
    let log = app.get("/admin/v1/audit-log?action=api_key.create").await;
    assert_eq!(
        log["entries"].as_array().unwrap().last().unwrap()["summary"]["browser"],
        true,
        "{log}"
    );
    let track = |origin: Option<&'static str>| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/v1/t")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(
                json!({"type": "track", "event": "Viewed", "userId": "u1", "writeKey": key})
                    .to_string(),
            ))
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 20], 40_000))));
        if let Some(origin) = origin {
            req.headers_mut()
                .insert(header::ORIGIN, origin.parse().unwrap());
        }
        req
    };

    let (status, _, v) = app.send(track(None)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a server replaying a public key: {v}"
    );
    let (status, _, v) = app.send(track(Some("https://other.example"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, _, v) = app.send(track(Some("https://shop.example"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Never an admin credential.
    let (status, _, v) = app.users_as(&key, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");

    // One address gets 20 requests a second with it, not the key's 1,000.
    let mut limited = 0;
    for _ in 0..60 {
        let (status, headers, _) = app.send(track(Some("https://shop.example"))).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(headers.contains_key(header::RETRY_AFTER));
            limited += 1;
        }
    }
    assert!(limited > 0, "the per-address limit applied");
}
