//! SCIM through the admin Lambda function on moto: an IdP provisions a user, the user signs in
//! through SAML (the real IdP of `saml_idp`), and deactivating the user through SCIM ends the
//! session at once, on DynamoDB; and scim2-tester passes every check through the admin
//! function, as it does against `serve`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracklayer_core::workspace::Region;
use tracklayer_tests::lambda::events::{http_api_event, HttpRequest, HttpResponse};
use tracklayer_tests::lambda::gateway::Gateway;
use tracklayer_tests::lambda::runtime::Outcome;
use tracklayer_tests::lambda::Deployment;

use super::aws_lambda::deploy;
use super::saml_idp::{Idp, ISSUER};

async fn call(d: &Deployment, req: HttpRequest) -> HttpResponse {
    d.http(req).await.expect("invoke admin")
}

/// The ACS through the admin function: the response document's `cookies` (API Gateway
/// payload 2.0 carries `Set-Cookie` there) and its status.
async fn acs(d: &Deployment, ws: &str, saml_response: &str) -> (u16, Vec<String>) {
    let encoded = saml_response
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let mut req = HttpRequest::new("POST", &format!("/sso/saml/{ws}/acs"))
        .header("content-type", "application/x-www-form-urlencoded");
    req.body = Some(format!("SAMLResponse={encoded}").into_bytes());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let event = http_api_event(&req, &d.stack.aws_region, "apigw-acs", now_ms);
    let outcome = d
        .function("admin")
        .invoke(&event, Duration::from_secs(30))
        .await
        .expect("invoke admin");
    let Outcome::Response(doc) = outcome else {
        panic!("admin failed: {outcome:?}");
    };
    let cookies: Vec<String> = doc["cookies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    (
        doc["statusCode"].as_u64().unwrap_or_default() as u16,
        cookies,
    )
}

/// A new SCIM token of the workspace, made through the admin API.
async fn scim_token(d: &Deployment, admin_token: &str, name: &str) -> String {
    let key = call(
        d,
        HttpRequest::new("POST", "/admin/v1/api-keys")
            .bearer(admin_token)
            .json(&json!({"kind": "scim", "name": name})),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.text());
    key.json()["secret"].as_str().unwrap().to_owned()
}

/// scim2-tester (PyPI, pinned; `tests/scim/check.py`, as `make test` runs it against `serve`)
/// through an HTTP front shaped like the stack's HTTP API, so every request it makes is an
/// API Gateway event to the admin function on DynamoDB: every check must be SUCCESS.
#[tokio::test(flavor = "multi_thread")]
async fn scim2_tester_passes_every_check_through_the_admin_function_on_dynamodb() {
    let logs = tempfile::tempdir().unwrap();
    let (d, ws) = deploy(Region::Eu, &["admin"], logs.path()).await;
    let token = scim_token(&d, &ws.admin_token, "scim2-tester").await;
    let d = Arc::new(d);
    let front = Gateway::start(d.clone())
        .await
        .expect("start the HTTP front");
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new(tracklayer_tests::python())
        .arg(tracklayer_tests::repo_root().join("tests/scim/check.py"))
        .arg(format!("{}/scim/v2", front.url))
        .arg(&token)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run tests/scim/check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(logs.path().join("admin.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "scim2-tester failed through the admin function:\n{stdout}\n{}\nadmin log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap_or_default();
    println!(
        "admin function on moto: {summary} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(summary.starts_with("scim2-tester: "), "{stdout}");
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_provisioned_through_scim_on_lambda_loses_their_session_when_the_idp_deactivates_them(
) {
    let logs = tempfile::tempdir().unwrap();
    let (d, ws) = deploy(Region::Us, &["admin"], logs.path()).await;
    let scim = scim_token(&d, &ws.admin_token, "okta").await;
    let (idp, certificate) = Idp::new(&logs.path().join("idp"));
    let connection = call(
        &d,
        HttpRequest::new("PUT", "/admin/v1/sso/saml")
            .bearer(&ws.admin_token)
            .json(
                &json!({"idp_entity_id": ISSUER, "sso_url": "https://idp.example.test/sso",
                          "certificates": [certificate], "managed_domains": ["example.com"],
                          "idp_initiated": true}),
            ),
    )
    .await;
    assert_eq!(connection.status, 200, "{}", connection.text());
    let sp = connection.json();
    let sp = (
        sp["acs_url"].as_str().unwrap().to_owned(),
        sp["sp_entity_id"].as_str().unwrap().to_owned(),
    );

    let created = call(
        &d,
        HttpRequest::new("POST", "/scim/v2/Users")
            .bearer(&scim)
            .json(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "leaver@example.com", "externalId": "00u1leaver", "active": true})),
    )
    .await;
    let log = || std::fs::read_to_string(logs.path().join("admin.log")).unwrap_or_default();
    assert_eq!(created.status, 201, "{}\n{}", created.text(), log());
    let id = created.json()["id"].as_str().unwrap().to_owned();

    let signed = idp.response(
        (sp.0.as_str(), sp.1.as_str()),
        "leaver@example.com",
        None,
        "valid",
    );
    let (status, cookies) = acs(&d, &ws.workspace_id, &signed).await;
    assert_eq!(status, 303);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-tl_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let account = || HttpRequest::new("GET", "/account").header("cookie", &session);
    assert_eq!(call(&d, account()).await.status, 200);

    let patched = call(
        &d,
        HttpRequest::new("PATCH", &format!("/scim/v2/Users/{id}"))
            .bearer(&scim)
            .json(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["active"], false);

    let after = call(&d, account()).await;
    assert_eq!(after.status, 303, "the session ended");
    let again = idp.response(
        (sp.0.as_str(), sp.1.as_str()),
        "leaver@example.com",
        None,
        "valid",
    );
    let (status, cookies) = acs(&d, &ws.workspace_id, &again).await;
    assert_eq!(status, 403, "a deactivated user signs in no more");
    assert!(cookies.iter().all(|c| !c.starts_with("__Host-tl_session=")));
    d.stop();
}

/// A recorded IdP payload of the SQLite suite, read from its own file
/// (crates/http/tests/fixtures/scim/`name`.json, not a copy), with `{{id}}` filled in.
fn recorded(name: &str, id: &str) -> Value {
    let path = tracklayer_tests::repo_root()
        .join("crates/http/tests/fixtures/scim")
        .join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text.replace("{{id}}", id)).expect("a JSON fixture")
}

/// SCIM and the admin API of one workspace, through the admin function.
struct Provisioning<'a> {
    d: &'a Deployment,
    scim_token: String,
    admin_token: &'a str,
}

impl Provisioning<'_> {
    /// A SCIM request that must succeed; its answer.
    async fn scim(&self, method: &str, path: &str, body: &Value) -> Value {
        let req = HttpRequest::new(method, path)
            .bearer(&self.scim_token)
            .json(body);
        let resp = call(self.d, req).await;
        assert!(
            (200..300).contains(&resp.status),
            "{method} {path}: {} {}",
            resp.status,
            resp.text()
        );
        resp.json()
    }

    /// Creates a user from a recorded payload; its id.
    async fn provisioned(&self, payload: &str) -> String {
        let v = self
            .scim("POST", "/scim/v2/Users", &recorded(payload, ""))
            .await;
        v["id"].as_str().expect("a user id").to_owned()
    }

    /// Sends a recorded payload to the user `id` with `method`; the resource answered.
    async fn send_payload(&self, method: &str, id: &str, payload: &str) -> Value {
        let path = format!("/scim/v2/Users/{id}");
        self.scim(method, &path, &recorded(payload, id)).await
    }

    /// The user `id` as the admin API shows it (the stored email and role).
    async fn admin_view(&self, id: &str) -> Value {
        let users = call(
            self.d,
            HttpRequest::new("GET", "/admin/v1/users").bearer(self.admin_token),
        )
        .await
        .json();
        users
            .as_array()
            .and_then(|a| a.iter().find(|u| u["id"] == id))
            .unwrap_or_else(|| panic!("{id} in {users}"))
            .clone()
    }
}

/// The recorded payloads of Okta, Entra ID and OneLogin that the SQLite suite replays
/// (crates/http/tests/admin/scim.rs and scim_groups.rs), through the admin function on
/// DynamoDB, with the outcomes that suite asserts. The role change is read from the store
/// (the admin API's user list); a token's request sees it within the key cache's window.
#[tokio::test(flavor = "multi_thread")]
async fn recorded_idp_payloads_have_the_sqlite_outcomes_through_the_admin_function_on_dynamodb() {
    let logs = tempfile::tempdir().unwrap();
    let (d, ws) = deploy(Region::Eu, &["admin"], logs.path()).await;
    let p = Provisioning {
        d: &d,
        scim_token: scim_token(&d, &ws.admin_token, "quirks").await,
        admin_token: &ws.admin_token,
    };

    // Okta: PUT with the whole resource deactivates, the externalId kept.
    let okta = p.provisioned("okta_create_user").await;
    let v = p
        .send_payload("PUT", &okta, "okta_put_user_deactivated")
        .await;
    assert_eq!(
        (&v["active"], &v["externalId"]),
        (&json!(false), &json!("00u1a2b3c4d5e6f7g8h9")),
        "{v}"
    );

    // Entra ID: the work-email path, then `members[value eq "…"]` on a role group, then
    // `"op": "Replace"` with `"active": "False"`.
    let entra = p.provisioned("entra_create_user").await;
    let v = p.send_payload("PATCH", &entra, "entra_update_user").await;
    let user_name = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@example.com";
    assert_eq!(v["userName"], user_name, "kept verbatim: {v}");
    assert_eq!(v["emails"][0]["value"], "renamed.user@example.com", "{v}");
    assert_eq!(v["externalId"], "0a21f0f2-changed", "{v}");
    let view = p.admin_view(&entra).await;
    assert_eq!(
        (&view["email"], &view["role"]),
        (&json!("renamed.user@example.com"), &json!("viewer")),
        "the work email is the sign-in address"
    );
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                       "displayName": "TrackLayer Editors", "members": []});
    let group = p.scim("POST", "/scim/v2/Groups", &group).await;
    let group = format!("/scim/v2/Groups/{}", group["id"].as_str().unwrap());
    let g = p
        .scim("PATCH", &group, &recorded("entra_group_add_member", &entra))
        .await;
    assert_eq!(g["members"][0]["value"], entra.as_str(), "{g}");
    assert_eq!(p.admin_view(&entra).await["role"], "editor", "the mover");
    p.scim(
        "PATCH",
        &group,
        &recorded("entra_group_remove_member", &entra),
    )
    .await;
    assert_eq!(
        p.admin_view(&entra).await["role"],
        "viewer",
        "back to viewer"
    );
    let v = p.send_payload("PATCH", &entra, "entra_disable_user").await;
    assert_eq!(
        v["active"], false,
        "PATCH answers 200 with the resource: {v}"
    );

    // OneLogin: PATCH without a path, on a user the admin invited.
    let invited = call(
        &d,
        HttpRequest::new("POST", "/admin/v1/users")
            .bearer(&ws.admin_token)
            .json(&json!({"email": "onelogin.user@example.com", "role": "editor"})),
    )
    .await;
    assert_eq!(invited.status, 201, "{}", invited.text());
    let onelogin = invited.json()["id"].as_str().unwrap().to_owned();
    let v = p
        .send_payload("PATCH", &onelogin, "onelogin_patch_user")
        .await;
    assert_eq!(
        (&v["active"], &v["externalId"]),
        (&json!(false), &json!("onelogin-1234567")),
        "{v}"
    );
    d.stop();
}
