//! SCIM 2.0 at `/scim/v2`: the SCIM token and only it, users, the leaver, and recorded
//! payloads of Entra ID, Okta and OneLogin (groups and the mover: `scim_groups.rs`).

use super::*;

const SCIM_JSON: &str = "application/scim+json";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

pub(crate) fn fixture(name: &str, id: &str) -> Value {
    let text = match name {
        "entra_create_user" => include_str!("../fixtures/scim/entra_create_user.json"),
        "entra_disable_user" => include_str!("../fixtures/scim/entra_disable_user.json"),
        "entra_update_user" => include_str!("../fixtures/scim/entra_update_user.json"),
        "entra_group_add_member" => include_str!("../fixtures/scim/entra_group_add_member.json"),
        "entra_group_remove_member" => {
            include_str!("../fixtures/scim/entra_group_remove_member.json")
        }
        "okta_create_user" => include_str!("../fixtures/scim/okta_create_user.json"),
        "okta_put_user_deactivated" => {
            include_str!("../fixtures/scim/okta_put_user_deactivated.json")
        }
        "onelogin_patch_user" => include_str!("../fixtures/scim/onelogin_patch_user.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(&text.replace("{{id}}", id)).unwrap()
}

impl App {
    /// A fresh app and a SCIM token its admin made.
    pub(crate) async fn with_scim_token() -> (Self, String) {
        let app = Self::start().await;
        let token = app.scim_token().await;
        (app, token)
    }

    /// A SCIM token made through the keys API by the admin.
    pub(crate) async fn scim_token(&self) -> String {
        let v = self
            .ok(
                Method::POST,
                "/admin/v1/api-keys",
                Some(json!({"kind": "scim"})),
            )
            .await;
        assert_eq!(v["key"]["kind"], "scim", "{v}");
        v["secret"].as_str().unwrap().to_owned()
    }

    /// A SCIM request; every answer with a body is `application/scim+json`.
    pub(crate) async fn scim(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, SCIM_JSON)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let (status, headers, v) = self.send(req).await;
        if status != StatusCode::NO_CONTENT {
            assert_eq!(headers[header::CONTENT_TYPE], SCIM_JSON, "{status} {v}");
        }
        (status, v)
    }

    /// A SCIM `POST` of `body` to `path`: a create.
    pub(crate) async fn scim_post(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.scim(Method::POST, path, token, Some(body)).await
    }

    pub(crate) async fn scim_ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, v) = self.scim(method, path, token, body).await;
        assert!(status.is_success(), "{status} {v}");
        v
    }

    /// Deletes the SCIM resource at `path` (204) and asserts it is then not found.
    pub(crate) async fn assert_scim_deleted(&self, token: &str, path: &str) {
        let (status, v) = self.scim(Method::DELETE, path, token, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "DELETE {path}: {v}");
        let (status, v) = self.scim(Method::GET, path, token, None).await;
        assert_scim_error(status, &v, StatusCode::NOT_FOUND, None);
    }

    /// Posts a recorded payload to `/scim/v2/Users`; answers the status and the body.
    async fn create_user_from(&self, token: &str, payload: &str) -> (StatusCode, Value) {
        self.scim_post("/scim/v2/Users", token, fixture(payload, ""))
            .await
    }

    /// Creates a user from a recorded payload; returns its id.
    async fn provisioned(&self, token: &str, payload: &str) -> String {
        let (status, v) = self.create_user_from(token, payload).await;
        assert!(status.is_success(), "{status} {v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Sends a recorded payload to `/scim/v2/Users/{id}` with `method`; answers the resource.
    async fn send_payload(&self, method: Method, token: &str, id: &str, payload: &str) -> Value {
        let path = format!("/scim/v2/Users/{id}");
        self.scim_ok(method, &path, token, Some(fixture(payload, id)))
            .await
    }

    /// What the admin API answers `token` (a PAT) on `GET /admin/v1/workspace`.
    async fn admin_status(&self, token: &str) -> StatusCode {
        let path = "/admin/v1/workspace";
        self.call(Method::GET, path, Some(token), None).await.0
    }
}

pub(crate) fn assert_scim_error(
    status: StatusCode,
    v: &Value,
    want: StatusCode,
    scim_type: Option<&str>,
) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["schemas"], json!([ERROR]), "{v}");
    assert_eq!(v["status"], want.as_u16().to_string(), "{v}");
    if let Some(t) = scim_type {
        assert_eq!(v["scimType"], t, "{v}");
    }
}

#[tokio::test]
async fn scim_accepts_only_scim_tokens_and_a_scim_token_opens_nothing_else() {
    let app = App::start().await;
    let scim = app.scim_token().await;
    let user = app.new_user("viewer").await;
    let pat = app.pat_of(&user).await;

    for (_who, token) in [
        ("the owner's PAT", app.admin.as_str()),
        ("a user's PAT", pat.as_str()),
        ("an editor service token", app.editor.as_str()),
        ("an ingest key", app.write_key.as_str()),
        (
            "garbage",
            "tl_scim_eu_0123456789abcdef_0123456789abcdef0123456789abcdef", // pragma: allowlist secret (a made-up key in the SCIM token format: refused by design)
        ),
    ] {
        let (status, v) = app.scim(Method::GET, "/scim/v2/Users", token, None).await;
        assert_scim_error(status, &v, StatusCode::UNAUTHORIZED, None);
    }
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/users", Some(&scim), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a SCIM token on the admin API"
    );
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/v1/api-keys",
            Some(&scim),
            Some(json!({"kind": "scim"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a SCIM token cannot mint keys"
    );
    let track = Request::builder()
        .method(Method::POST)
        .uri("/v1/track")
        .header(header::AUTHORIZATION, format!("Bearer {scim}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"event": "x", "userId": "u"}).to_string()))
        .unwrap();
    let (status, _, _) = app.send(track).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a SCIM token on the tracking API"
    );

    let v = app
        .scim_ok(Method::GET, "/scim/v2/Users", &scim, None)
        .await;
    assert_eq!(v["totalResults"], 2, "{v}");
}

#[tokio::test]
async fn a_scim_token_has_no_role_is_rotated_and_revoked_like_every_key_and_audited() {
    let app = App::start().await;
    app.assert_invalid_field(
        Method::POST,
        "/admin/v1/api-keys",
        json!({"kind": "scim", "role": "admin"}),
        "role",
    )
    .await;
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/v1/api-keys",
            Some(&app.editor),
            Some(json!({"kind": "scim"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only admins make SCIM tokens"
    );

    let token = app.scim_token().await;
    assert!(token.starts_with("tl_scim_eu_"), "{token}");
    let id = token.split('_').nth(3).unwrap().to_owned();
    let rotated = app
        .ok(
            Method::POST,
            &format!("/admin/v1/api-keys/{id}/rotate"),
            Some(json!({"overlap_days": 0})),
        )
        .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    app.scim_ok(Method::GET, "/scim/v2/ServiceProviderConfig", &new, None)
        .await;
    let (status, v) = app.scim(Method::GET, "/scim/v2/Users", &token, None).await;
    assert_scim_error(status, &v, StatusCode::UNAUTHORIZED, None);

    let new_id = new.split('_').nth(3).unwrap().to_owned();
    app.ok(
        Method::POST,
        &format!("/admin/v1/api-keys/{new_id}/revoke"),
        None,
    )
    .await;
    let (status, v) = app.scim(Method::GET, "/scim/v2/Users", &new, None).await;
    assert_scim_error(status, &v, StatusCode::UNAUTHORIZED, None);
    let actions: Vec<String> = app
        .audit_actions()
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    for a in ["api_key.create", "api_key.rotate", "api_key.revoke"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test]
async fn discovery_documents_describe_users_and_groups() {
    let (app, t) = App::with_scim_token().await;
    let spc = app
        .scim_ok(Method::GET, "/scim/v2/ServiceProviderConfig", &t, None)
        .await;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    let types = app
        .scim_ok(Method::GET, "/scim/v2/ResourceTypes", &t, None)
        .await;
    assert_eq!(types["totalResults"], 2);
    let user = app
        .scim_ok(Method::GET, "/scim/v2/ResourceTypes/User", &t, None)
        .await;
    assert_eq!(user["endpoint"], "/Users");
    let schemas = app.scim_ok(Method::GET, "/scim/v2/Schemas", &t, None).await;
    assert_eq!(
        schemas["Resources"][0]["id"],
        "urn:ietf:params:scim:schemas:core:2.0:User"
    );
    for path in [
        "/scim/v2/Schemas/urn:nope",
        "/scim/v2/Nothing",
        "/scim/v2/Users/x/y",
    ] {
        let (status, v) = app.scim(Method::GET, path, &t, None).await;
        assert_scim_error(status, &v, StatusCode::NOT_FOUND, None);
    }
}

#[tokio::test]
async fn users_are_created_read_filtered_paged_replaced_and_deleted() {
    let (app, t) = App::with_scim_token().await;
    let created = app.create_user_from(&t, "okta_create_user").await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let u = created.1;
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(u["userName"], "okta.user@example.com");
    assert_eq!(u["externalId"], "00u1a2b3c4d5e6f7g8h9");
    assert_eq!(u["active"], true);
    assert_eq!(u.get("groups"), None, "in no group yet");
    assert_eq!(u["meta"]["resourceType"], "User");

    let (status, v) = app.create_user_from(&t, "okta_create_user").await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("uniqueness"));

    let got = app
        .scim_ok(Method::GET, &format!("/scim/v2/Users/{id}"), &t, None)
        .await;
    assert_eq!(got, u);
    for (filter, n) in [
        (r#"userName eq "OKTA.user@example.com""#, 1),
        (r#"emails co "EXAMPLE.com""#, 1),
        (r#"emails co "@""#, 2),
        (r#"emails.value sw "okta""#, 1),
        (r#"externalId eq "00u1a2b3c4d5e6f7g8h9""#, 1),
        (r#"externalId eq "nobody""#, 0),
    ] {
        let q = url_encode(filter);
        let v = app
            .scim_ok(Method::GET, &format!("/scim/v2/Users?filter={q}"), &t, None)
            .await;
        assert_eq!(v["totalResults"], n, "{filter}: {v}");
    }
    let page = app
        .scim_ok(Method::GET, "/scim/v2/Users?startIndex=2&count=1", &t, None)
        .await;
    assert_eq!(
        (
            page["totalResults"].clone(),
            page["startIndex"].clone(),
            page["itemsPerPage"].clone()
        ),
        (json!(2), json!(2), json!(1))
    );
    let first = app
        .scim_ok(Method::GET, "/scim/v2/Users?count=1", &t, None)
        .await;
    let mut ids = [&first, &page].map(|p| p["Resources"][0]["id"].as_str().unwrap().to_owned());
    ids.sort();
    let mut want = [id.clone(), "usr_owner".to_owned()];
    want.sort();
    assert_eq!(ids, want, "two pages of one cover both users");
    for bad in [
        "userName%20gt%20%22a%22",
        "password%20eq%20%22x%22",
        "userName%20eq%20alice",
    ] {
        let (status, v) = app
            .scim(
                Method::GET,
                &format!("/scim/v2/Users?filter={bad}"),
                &t,
                None,
            )
            .await;
        assert_scim_error(status, &v, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    }
    let (status, v) = app
        .scim(Method::GET, "/scim/v2/Users?count=ten", &t, None)
        .await;
    assert_scim_error(status, &v, StatusCode::BAD_REQUEST, Some("invalidValue"));

    app.assert_scim_deleted(&t, &format!("/scim/v2/Users/{id}"))
        .await;
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn bad_input_is_a_scim_error_never_a_500() {
    let (app, t) = App::with_scim_token().await;
    for (body, scim_type) in [
        (json!({"emails": []}), "invalidValue"),
        (json!({"userName": "   "}), "invalidValue"),
        (json!({"userName": "tab\tinside"}), "invalidValue"),
        (json!({"userName": "a".repeat(257)}), "invalidValue"),
        (
            json!({"userName": "a@example.com", "active": "maybe"}),
            "invalidValue",
        ),
        (json!([1, 2]), "invalidSyntax"),
    ] {
        let (status, v) = app.scim_post("/scim/v2/Users", &t, body.clone()).await;
        assert_scim_error(status, &v, StatusCode::BAD_REQUEST, Some(scim_type));
    }
    let user = app.new_user("viewer").await;
    let (status, v) = app
        .scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{user}"),
            &t,
            Some(json!({"Operations": [{"op": "replace", "path": "active", "value": false}]})),
        )
        .await;
    assert_scim_error(status, &v, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
}

#[tokio::test]
async fn entra_deactivation_as_a_string_ends_every_token_of_the_user_at_once_audited_as_the_idp() {
    let (app, t) = App::with_scim_token().await;
    let id = app.provisioned(&t, "entra_create_user").await;
    let pat = app.pat_of(&id).await;
    assert_eq!(
        app.admin_status(&pat).await,
        StatusCode::OK,
        "the PAT works before"
    );

    let v = app
        .send_payload(Method::PATCH, &t, &id, "entra_disable_user")
        .await;
    assert_eq!(
        v["active"], false,
        "PATCH answers 200 with the resource: {v}"
    );
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/users", Some(&pat), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the leaver's PAT is dead on the next request"
    );

    let entries = app.audit_actions().await;
    let provision = entries
        .iter()
        .find(|e| e["action"] == "user.provision")
        .expect("audited");
    assert!(
        provision["actor"].as_str().unwrap().starts_with("scim:"),
        "{provision}"
    );
    let key = app
        .control
        .api_keys(&app.ws, T0)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.user_id.as_ref().map(|u| u.to_string()) == Some(id.clone()))
        .unwrap();
    assert!(
        key.revoked_at.is_some(),
        "the PAT is revoked, not only refused"
    );
}

#[tokio::test]
async fn entra_update_reads_the_work_email_path_and_ignores_attributes_tracklayer_does_not_keep() {
    let (app, t) = App::with_scim_token().await;
    let id = app.provisioned(&t, "entra_create_user").await;
    let id = id.as_str();
    let v = app
        .send_payload(Method::PATCH, &t, id, "entra_update_user")
        .await;
    let user_name = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@example.com";
    assert_eq!(v["userName"], user_name, "kept verbatim");
    assert_eq!(v["emails"][0]["value"], "renamed.user@example.com");
    assert_eq!(v["externalId"], "0a21f0f2-changed");
    let users = app.ok(Method::GET, "/admin/v1/users", None).await;
    let signs_in_as = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .unwrap()["email"]
        .clone();
    assert_eq!(
        signs_in_as, "renamed.user@example.com",
        "the work email is the sign-in address"
    );
}

#[tokio::test]
async fn okta_put_with_the_whole_resource_deactivates_and_a_delete_ends_the_user() {
    let (app, t) = App::with_scim_token().await;
    let id = app.provisioned(&t, "okta_create_user").await;
    let pat = app.pat_of(&id).await;
    let v = app
        .send_payload(Method::PUT, &t, &id, "okta_put_user_deactivated")
        .await;
    assert_eq!(v["active"], false);
    assert_eq!(v["externalId"], "00u1a2b3c4d5e6f7g8h9");
    assert_eq!(app.admin_status(&pat).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn onelogin_patch_without_path_sets_active_and_external_id() {
    let (app, t) = App::with_scim_token().await;
    let user = app.new_user("editor").await;
    let v = app
        .send_payload(Method::PATCH, &t, &user, "onelogin_patch_user")
        .await;
    assert_eq!(
        (v["active"].clone(), v["externalId"].clone()),
        (json!(false), json!("onelogin-1234567"))
    );
}

#[tokio::test]
async fn deactivation_ends_every_console_session_of_the_user_at_once() {
    let (app, t) = App::with_scim_token().await;
    let second_admin = app.new_user("admin").await;
    let second_pat = app.pat_of(&second_admin).await;
    app.owner_console_session().await;
    let sessions = |token: String| {
        let app = &app;
        async move {
            let path = "/admin/v1/users/usr_owner/sessions";
            app.call(Method::GET, path, Some(&token), None).await.2
        }
    };
    let before = sessions(second_pat.clone()).await;
    assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");

    app.send_payload(Method::PATCH, &t, "usr_owner", "entra_disable_user")
        .await;
    let after = sessions(second_pat).await;
    assert_eq!(after.as_array().map(Vec::len), Some(0), "{after}");
}

/// A user the IdP deactivated cannot come back through the console: no sign-in link (nor a
/// password, which reads the same live user) opens a session for them.
#[tokio::test]
async fn a_deactivated_user_cannot_sign_in_again() {
    let (app, t) = App::with_scim_token().await;
    app.new_user("admin").await;
    app.send_payload(Method::PATCH, &t, "usr_owner", "entra_disable_user")
        .await;

    let operator = tracklayer_core::admin::Principal::operator(&app.ws);
    let ip: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    match app.service.owner_sign_in_link(&operator).await {
        Err(e) => assert!(
            matches!(e, tracklayer_core::admin::AdminError::NotFound(_)),
            "{e:?}"
        ),
        Ok(link) => {
            let token = link.url.rsplit('/').next().unwrap();
            let signed = app.service.redeem_sign_in_link(token, ip).await;
            assert!(signed.is_err(), "a deactivated user signed in: {signed:?}");
        }
    }
}
