//! SAML single sign-on through the HTTP surface: the admin connection API, the public SP
//! metadata, the SP-initiated start and the ACS with the test IdP of `tracklayer-saml`.

use std::io::Read as _;

use tracklayer_core::email::Email;
use tracklayer_saml::testkit::{idp_key, Response, IDP_ENTITY_ID};

use super::*;

const BASE: &str = "https://eu.api.tracklayer.io";

pub(super) fn connection(idp_initiated: bool) -> Value {
    json!({
        "idp_entity_id": IDP_ENTITY_ID,
        "sso_url": "https://idp.example.test/sso",
        "certificates": [idp_key().certificate_base64()],
        "managed_domains": ["example.com"],
        "default_role": "viewer",
        "role_attribute": "groups",
        "role_rules": [{"value": "tracklayer-editors", "role": "editor"}],
        "idp_initiated": idp_initiated,
        "enforce_sso": true,
    })
}

/// A response the test IdP signs for this workspace's SP, answering `request_id`.
fn response_for(ws: &WorkspaceId, request_id: Option<&str>, assertion_id: &str) -> Response {
    let acs = format!("{BASE}/sso/saml/{ws}/acs");
    Response {
        in_response_to: request_id.map(str::to_owned),
        destination: acs.clone(),
        recipient: acs,
        audience: format!("{BASE}/sso/saml/{ws}/metadata"),
        assertion_id: assertion_id.to_owned(),
        ..Response::valid_at(T0)
    }
}

fn form_encode(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// `value` as one `application/x-www-form-urlencoded` value (a query or form field).
fn query_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&value[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

impl App {
    /// An app whose workspace has the test IdP's SAML connection, IdP-initiated login on or off.
    async fn with_saml(idp_initiated: bool) -> App {
        let app = App::start().await;
        app.configure_saml(idp_initiated).await;
        app
    }

    /// Puts the test IdP's SAML connection as the admin; returns the answer.
    async fn configure_saml(&self, idp_initiated: bool) -> Value {
        let body = Some(connection(idp_initiated));
        self.ok(Method::PUT, "/admin/v1/sso/saml", body).await
    }

    /// `PUT /admin/v1/sso/saml` with `body` as `token`.
    async fn put_saml(&self, token: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, v) = self
            .call(Method::PUT, "/admin/v1/sso/saml", Some(token), Some(body))
            .await;
        (status, v)
    }

    /// The audit entries of `action`.
    async fn audited(&self, action: &str) -> Vec<Value> {
        let path = format!("/admin/v1/audit-log?action={action}");
        let v = self.get(&path).await;
        v["entries"].as_array().unwrap().clone()
    }

    async fn post_acs(
        &self,
        response: &Response,
        cookie: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.post_acs_relaying(response, cookie, "/destinations")
            .await
    }

    /// [`Self::post_acs`] with `relay_state` (form-encoded here) as the form's RelayState.
    async fn post_acs_relaying(
        &self,
        response: &Response,
        cookie: Option<&str>,
        relay_state: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/sso/saml/{}/acs", self.ws))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [198, 51, 100, 7],
                443,
            ))));
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let body = format!(
            "SAMLResponse={}&RelayState={}",
            form_encode(&response.encoded()),
            query_encode(relay_state)
        );
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// Sends `req`; the answer's status, headers and body as text (a page).
    async fn page(&self, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn audit_reasons(&self) -> Vec<String> {
        self.audited("sso.saml.refused")
            .await
            .iter()
            .map(|e| e["summary"]["reason"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn only_admins_configure_saml_and_a_bad_certificate_is_named() {
    let app = App::start().await;
    let (status, _) = app.put_saml(&app.editor, connection(false)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut bad = connection(false);
    bad["certificates"] = json!([idp_key().certificate_base64(), "not a certificate"]);
    let (status, v) = app.put_saml(&app.admin, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "certificates[1]");
    let mut plain_http = connection(false);
    plain_http["sso_url"] = json!("http://idp.example.test/sso");
    let (status, v) = app.put_saml(&app.admin, plain_http).await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("sso_url"))
    );

    let v = app.configure_saml(false).await;
    assert_eq!(v["acs_url"], format!("{BASE}/sso/saml/{}/acs", app.ws));
    assert_eq!(
        v["sp_entity_id"],
        format!("{BASE}/sso/saml/{}/metadata", app.ws)
    );
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/sso/saml", Some(&app.viewer), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.audited("sso.saml.update").await.len(), 1);
}

#[tokio::test]
async fn the_sp_metadata_is_public_at_a_stable_url_per_workspace() {
    let app = App::start().await;
    let req = Request::builder()
        .uri(format!("/sso/saml/{}/metadata", app.ws))
        .body(Body::empty())
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let xml =
        String::from_utf8(to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(xml.contains(&format!(
        r#"entityID="{BASE}/sso/saml/{}/metadata""#,
        app.ws
    )));
    assert!(xml.contains(&format!(r#"Location="{BASE}/sso/saml/{}/acs""#, app.ws)));
}

#[tokio::test]
async fn an_sp_initiated_login_creates_the_user_just_in_time_with_the_mapped_role() {
    let app = App::with_saml(false).await;
    let req = Request::builder()
        .uri(format!(
            "/sso/saml/{}/login?relay_state=/destinations",
            app.ws
        ))
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = app.send(req).await;
    assert_eq!(status, StatusCode::FOUND);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("SameSite=None")
            && cookie.contains("Secure")
            && cookie.contains("HttpOnly")
    );
    let location = headers[header::LOCATION].to_str().unwrap();
    let encoded = location
        .split("SAMLRequest=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(percent_decode(encoded))
        .unwrap();
    let mut request = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .read_to_string(&mut request)
        .unwrap();
    let request_id = request
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();

    // Another browser (no cookie) cannot use the answer to this browser's request.
    let answer = response_for(&app.ws, Some(&request_id), "_assert_sp_1");
    let (status, _, v) = app.post_acs(&answer, None).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("saml_unsolicited"))
    );

    let (status, headers, v) = app.post_acs(&answer, Some(&cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{v}");
    assert_eq!(headers[header::LOCATION], "/destinations");
    let cookies: Vec<&str> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    let cleared = |c: &&str| c.starts_with("__Host-tl_saml=;") && c.contains("Max-Age=0");
    assert!(
        cookies.iter().any(cleared),
        "request cookie cleared: {cookies:?}"
    );
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-tl_session="))
        .expect("a console session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("Secure"),
        "{session}"
    );
    // The user was created just in time with the mapped role, and has that one session.
    let users = app.get("/admin/v1/users").await;
    let user = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] != "usr_owner" && u["role"] == "editor")
        .unwrap_or_else(|| panic!("a just-in-time editor: {users}"));
    let path = format!("/admin/v1/users/{}/sessions", user["id"].as_str().unwrap());
    let sessions = app.get(&path).await;
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");

    // The request id was single-use: the same browser cannot sign in with it again.
    let again = response_for(&app.ws, Some(&request_id), "_assert_sp_2");
    let (status, _, v) = app.post_acs(&again, Some(&cookie)).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("saml_unsolicited"))
    );
}

#[tokio::test]
async fn an_unsolicited_response_is_refused_unless_idp_initiated_login_is_on() {
    let app = App::with_saml(false).await;
    let unsolicited = response_for(&app.ws, None, "_assert_idp_1");
    let (status, _, v) = app.post_acs(&unsolicited, None).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("saml_unsolicited"))
    );

    app.configure_saml(true).await;
    let (status, headers, v) = app.post_acs(&unsolicited, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{v}");
    assert_eq!(headers[header::LOCATION], "/destinations");
    assert_eq!(app.audit_reasons().await, ["saml_unsolicited"]);
}

/// RelayState is only ever a relative path of this site: an absolute URL, a protocol-relative
/// `//host`, a backslash that browsers read as a slash, a tab that browsers strip
/// (`/<TAB>/evil.test` becomes `//evil.test`) or a percent-encoded `//` is refused when a login
/// starts, and at the ACS it is dropped: the browser goes to the console's start page.
#[tokio::test]
async fn a_relay_state_leaving_the_site_is_never_the_redirect_target() {
    let app = App::with_saml(true).await;
    let hostile = [
        "//evil.test/x",
        "https://evil.test/",
        "/\\evil.test",
        "\\\\evil.test",
        "/\t/evil.test",
        "%2F%2Fevil.test",
    ];
    for (i, relay) in hostile.into_iter().enumerate() {
        let start = Request::builder()
            .uri(format!(
                "/sso/saml/{}/login?relay_state={}",
                app.ws,
                query_encode(relay)
            ))
            .body(Body::empty())
            .unwrap();
        let (status, _, v) = app.send(start).await;
        assert_eq!(
            (status, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("relay_state")),
            "{relay:?}: {v}"
        );

        let response = response_for(&app.ws, None, &format!("_assert_relay_{i}"));
        let (status, headers, v) = app.post_acs_relaying(&response, None, relay).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{relay:?}: {v}");
        assert_eq!(headers[header::LOCATION], "/", "{relay:?}");
    }
}

#[tokio::test]
async fn a_replayed_assertion_is_refused_and_audited() {
    let app = App::with_saml(true).await;
    let response = response_for(&app.ws, None, "_assert_replay");
    assert_eq!(app.post_acs(&response, None).await.0, StatusCode::SEE_OTHER);
    let (status, _, v) = app.post_acs(&response, None).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("saml_replayed"))
    );
    assert_eq!(app.audit_reasons().await, ["saml_replayed"]);
}

#[tokio::test]
async fn a_refusal_says_only_its_reason_code_and_an_unmanaged_domain_is_refused() {
    let app = App::with_saml(true).await;
    let forged = Response {
        assertion_key: Some(tracklayer_saml::testkit::attacker_key()),
        ..response_for(&app.ws, None, "_assert_forged")
    };
    let (status, headers, v) = app.post_acs(&forged, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
    assert_eq!(v["reason"], "saml_signature");
    assert!(!v.to_string().contains("certificate"), "{v}");

    let outsider = Response {
        name_id: "mallory@evil.test".into(),
        ..response_for(&app.ws, None, "_assert_outsider")
    };
    let (status, _, v) = app.post_acs(&outsider, None).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("saml_domain_not_managed"))
    );
    assert_eq!(
        app.audit_reasons().await,
        ["saml_signature", "saml_domain_not_managed"]
    );
}

#[tokio::test]
async fn sso_is_required_only_for_managed_domains_of_an_enforcing_workspace() {
    let app = App::start().await;
    let alice = Email::parse("alice@example.com").unwrap();
    let other = Email::parse("bob@elsewhere.test").unwrap();
    assert!(!app.service.sso_required_for(&app.ws, &alice).await.unwrap());
    app.configure_saml(false).await;
    assert!(app.service.sso_required_for(&app.ws, &alice).await.unwrap());
    assert!(!app.service.sso_required_for(&app.ws, &other).await.unwrap());
    let mut relaxed = connection(false);
    relaxed["enforce_sso"] = json!(false);
    app.put("/admin/v1/sso/saml", relaxed).await;
    assert!(!app.service.sso_required_for(&app.ws, &alice).await.unwrap());
}

#[tokio::test]
async fn the_break_glass_user_must_be_an_admin_of_the_workspace_and_is_shown_and_audited() {
    let app = App::start().await;
    let put = |id: &str| {
        let mut c = connection(false);
        c["break_glass_user"] = json!(id);
        c
    };
    let editor = app
        .post(
            "/admin/v1/users",
            json!({"email": "ed@example.com", "role": "editor"}),
        )
        .await;
    for (id, why) in [
        ("usr_nobody", "no such user"),
        ("not-a-user-id", "not a user id"),
        (editor["id"].as_str().unwrap(), "an editor"),
    ] {
        let (status, _, v) = app
            .as_admin(Method::PUT, "/admin/v1/sso/saml", Some(put(id)))
            .await;
        assert_eq!(
            (status, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("break_glass_user")),
            "{why} cannot be the break-glass admin: {v}"
        );
    }

    let v = app.put("/admin/v1/sso/saml", put("usr_owner")).await;
    assert_eq!(v["break_glass_user"], "usr_owner");
    let audit = app.get("/admin/v1/audit-log?action=sso.saml.update").await;
    assert_eq!(
        audit["entries"][0]["summary"]["break_glass_user"],
        "usr_owner"
    );
}

/// A browser (its `Accept` names HTML) is shown a refusal as a console page: what to do, the
/// reason to quote and the way to start again, under the console's security headers; the
/// refusal is audited as for an API client, which keeps the problem+json.
#[tokio::test]
async fn a_browser_is_shown_a_refusal_as_a_page_with_the_reason_and_a_way_back() {
    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let app = App::with_saml(false).await;
    let unsolicited = response_for(&app.ws, None, "_assert_page");
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/sso/saml/{}/acs", app.ws))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, BROWSER)
        .extension(ConnectInfo(SocketAddr::from(([198, 51, 100, 7], 443))))
        .body(Body::from(format!(
            "SAMLResponse={}",
            form_encode(&unsolicited.encoded())
        )))
        .unwrap();
    let (status, headers, page) = app.page(req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("__Host-tl_saml=;")));
    for shown in [
        "<h1>Single sign-on refused</h1>",
        "accepts single sign-on started from TrackLayer only",
        "<code>saml_unsolicited</code>",
        &format!("href=\"{BASE}/sso/saml/{}/login\"", app.ws),
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    assert_eq!(app.audit_reasons().await, ["saml_unsolicited"]);

    // A workspace without SSO says so, with no way to start again.
    let nowhere = WorkspaceId::new(Region::Eu, "nosso");
    let req = Request::builder()
        .uri(format!("/sso/saml/{nowhere}/login"))
        .header(header::ACCEPT, BROWSER)
        .body(Body::empty())
        .unwrap();
    let (status, _, page) = app.page(req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains("<h1>Single sign-on is not set up</h1>"),
        "{page}"
    );
    assert!(!page.contains("/login\""), "{page}");
}
