//! SAML single sign-on against a real IdP: tests/saml/idp.py (PyPI signxml over lxml, an
//! XML-DSig implementation independent of ours) makes the IdP's keys, reads the AuthnRequest
//! `tracklayer serve` redirects to, and signs responses that the ACS of `serve` verifies:
//! SP- and IdP-initiated sign-ins open a console session; responses the IdP tampers with are
//! refused with their reason and audited.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tracklayer_tests::*;

use super::dsr::admin;

pub(crate) const ISSUER: &str = "https://idp.example.test/metadata";

/// tests/saml/idp.py with its keys in `dir`.
pub(crate) struct Idp {
    dir: PathBuf,
}

impl Idp {
    pub(crate) fn new(dir: &Path) -> (Self, String) {
        let idp = Self {
            dir: dir.to_path_buf(),
        };
        let keys = idp.run(&["keys", dir.to_str().unwrap()]);
        let certificate = keys["certificate"].as_str().unwrap().to_owned();
        (idp, certificate)
    }

    fn run(&self, args: &[&str]) -> Value {
        let out = Command::new(python())
            .arg(repo_root().join("tests/saml/idp.py"))
            .args(args)
            .output()
            .expect("run tests/saml/idp.py");
        assert!(
            out.status.success(),
            "idp.py {args:?}: {} (is signxml in the venv? `make tools`)",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("idp.py prints JSON")
    }

    /// A base64 SAMLResponse for `name_id` to the SP of `sp_urls` (ACS URL, entity id),
    /// answering `request_id` (IdP-initiated: `None`).
    pub(crate) fn response(
        &self,
        (acs_url, entity_id): (&str, &str),
        name_id: &str,
        request_id: Option<&str>,
        variant: &str,
    ) -> String {
        let dir = self.dir.to_str().unwrap();
        let mut args = vec!["response", dir, "--acs", acs_url];
        args.extend(["--audience", entity_id, "--issuer", ISSUER]);
        args.extend(["--name-id", name_id, "--variant", variant]);
        if let Some(id) = request_id {
            args.extend(["--in-response-to", id]);
        }
        let out = self.run(&args);
        if variant == "valid" {
            // Every valid response is pysaml2's (a real IdP, signing with xmlsec1).
            assert_eq!(out["signed_by"], "pysaml2", "{out}");
        }
        out["saml_response"].as_str().unwrap().to_owned()
    }
}

/// The SP side: the server, its workspace and the values the connection answered with.
struct Sp {
    url: String,
    ws: String,
    acs_url: String,
    entity_id: String,
    http: reqwest::Client,
}

impl Sp {
    fn urls(&self) -> (&str, &str) {
        (&self.acs_url, &self.entity_id)
    }

    /// POSTs a response to the ACS as the browser would; the status, `Location`, the
    /// session cookie (`name=value`) if one was set, and the body.
    async fn acs(
        &self,
        saml_response: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, String, Option<String>, Value) {
        let mut req = self
            .http
            .post(format!("{}/sso/saml/{}/acs", self.url, self.ws))
            .form(&[
                ("SAMLResponse", saml_response),
                ("RelayState", "/destinations"),
            ]);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let location = header(&resp, LOCATION).unwrap_or_default();
        let session = cookie_pair(&resp, "__Host-tl_session=");
        (
            status,
            location,
            session,
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    /// Whether `cookie` opens the console (else it is sent to sign in).
    async fn signed_in(&self, cookie: &str) -> bool {
        let resp = self
            .http
            .get(format!("{}/account", self.url))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        resp.status() == StatusCode::OK
    }
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `name=value` part of the `Set-Cookie` whose name starts `prefix`.
fn cookie_pair(resp: &reqwest::Response, prefix: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(prefix))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

async fn connect(idp_initiated: bool) -> (tempfile::TempDir, Server, Sp, Idp, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let keys = init(&dir, "eu").unwrap();
    let server = Server::start(&dir, &[]).unwrap();
    let (idp, certificate) = Idp::new(&tmp.path().join("idp"));
    let (status, v) = admin(
        &server.url,
        &keys.admin_token,
        Method::PUT,
        "/admin/v1/sso/saml",
        Some(json!({
            "idp_entity_id": ISSUER,
            "sso_url": "https://idp.example.test/sso",
            "certificates": [certificate],
            "managed_domains": ["example.com"],
            "default_role": "viewer",
            "idp_initiated": idp_initiated,
        })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sp = Sp {
        url: server.url.clone(),
        ws: keys.workspace_id.clone(),
        acs_url: v["acs_url"].as_str().unwrap().to_owned(),
        entity_id: v["sp_entity_id"].as_str().unwrap().to_owned(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    // `serve` names itself (its public URL, by default the address it listens on) in the SP's
    // URLs of its region's workspaces: the IdP posts its responses to this server.
    assert_eq!(sp.acs_url, format!("{}/sso/saml/{}/acs", sp.url, sp.ws));
    assert_eq!(
        sp.entity_id,
        format!("{}/sso/saml/{}/metadata", sp.url, sp.ws)
    );
    (tmp, server, sp, idp, keys.admin_token)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_idp_signs_in_sp_initiated_through_the_authn_request_it_was_sent() {
    let (_tmp, mut server, sp, idp, _) = connect(false).await;
    let start = sp
        .http
        .get(format!(
            "{}/sso/saml/{}/login?relay_state=/destinations",
            sp.url, sp.ws
        ))
        .send()
        .await
        .unwrap();
    assert!(start.status().is_redirection(), "{}", start.status());
    let binding = cookie_pair(&start, "__Host-tl_saml=").expect("the browser-binding cookie");
    let redirect = header(&start, LOCATION).unwrap();
    assert!(redirect.starts_with("https://idp.example.test/sso?"));
    let request = idp.run(&["authn-request", &redirect]);
    assert_eq!(request["acs_url"], sp.acs_url.as_str());
    assert_eq!(request["issuer"], sp.entity_id.as_str());
    let request_id = request["id"].as_str().unwrap();

    let response = idp.response(sp.urls(), "ana@example.com", Some(request_id), "valid");
    let (status, location, session, body) = sp.acs(&response, Some(&binding)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location, "/destinations");
    let session = session.expect("a console session cookie");
    assert!(sp.signed_in(&session).await);
    assert!(!sp.signed_in("__Host-tl_session=made-up").await);

    // The same response again, or from another browser: refused.
    let (status, _, session, body) = sp.acs(&response, Some(&binding)).await;
    assert_eq!((status, session), (StatusCode::FORBIDDEN, None));
    assert!(
        body["reason"].as_str().unwrap().starts_with("saml_"),
        "{body}"
    );
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_idp_signs_in_idp_initiated_and_every_response_it_tampers_with_is_refused() {
    let (_tmp, mut server, sp, idp, token) = connect(true).await;
    let valid = idp.response(sp.urls(), "bo@example.com", None, "valid");
    let (status, location, session, body) = sp.acs(&valid, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location, "/destinations");
    assert!(sp.signed_in(&session.unwrap()).await);

    // Each would sign in alice@example.com (a managed domain, a viewer just in time) if it
    // were accepted. The last three carry a signature that verifies (xmlsec1 agrees) around
    // something else: a decoy with the signed Assertion's ID, a forged Assertion before the
    // moved signed one, and the NameID `alice@example.com<!---->.evil.test`, whose signed
    // text is `alice@example.com.evil.test` (read whole: a domain this workspace does not
    // manage, never alice).
    let mut refused = vec![];
    for (variant, reason) in [
        ("foreign_key", "saml_signature"),
        ("altered", "saml_signature"),
        ("unsigned", "saml_signature"),
        ("wrong_audience", "saml_audience"),
        ("expired", "saml_expired"),
        ("duplicate_id", "saml_signature"),
        ("wrapped", "saml_structure"),
        ("comment_injected", "saml_domain_not_managed"),
    ] {
        let response = idp.response(sp.urls(), "alice@example.com", None, variant);
        let (status, _, session, body) = sp.acs(&response, None).await;
        assert_eq!(
            (status, session, body["reason"].as_str()),
            (StatusCode::FORBIDDEN, None, Some(reason)),
            "{variant}: {body}"
        );
        refused.push(reason);
    }
    let (status, _, _, body) = sp.acs(&valid, None).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("saml_replayed"))
    );
    refused.push("saml_replayed");

    let (_, log) = admin(
        &sp.url,
        &token,
        Method::GET,
        "/admin/v1/audit-log?action=sso.saml.refused&limit=50",
        None,
    )
    .await;
    let mut audited: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"]["reason"].as_str().unwrap())
        .collect();
    audited.sort_unstable();
    refused.sort_unstable();
    assert_eq!(audited, refused);
    let (_, users) = admin(&sp.url, &token, Method::GET, "/admin/v1/users", None).await;
    let emails: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert!(
        emails.contains(&"bo@example.com") && !emails.contains(&"alice@example.com"),
        "only the valid response made a user: {emails:?}"
    );
    server.stop().unwrap();
}
