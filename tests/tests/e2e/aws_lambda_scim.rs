//! SCIM through the admin Lambda function on moto: an IdP provisions a user, the user signs in
//! through SAML (the real IdP of `saml_idp`), and deactivating the user through SCIM ends the
//! session at once, on DynamoDB.

use std::time::Duration;

use serde_json::{json, Value};
use tracklayer_core::workspace::Region;
use tracklayer_tests::lambda::events::{http_api_event, HttpRequest, HttpResponse};
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

#[tokio::test(flavor = "multi_thread")]
async fn a_user_provisioned_through_scim_on_lambda_loses_their_session_when_the_idp_deactivates_them(
) {
    let logs = tempfile::tempdir().unwrap();
    let (d, ws) = deploy(Region::Us, &["admin"], logs.path()).await;
    let key = call(
        &d,
        HttpRequest::new("POST", "/admin/v1/api-keys")
            .bearer(&ws.admin_token)
            .json(&json!({"kind": "scim", "name": "okta"})),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.text());
    let scim = key.json()["secret"].as_str().unwrap().to_owned();
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
