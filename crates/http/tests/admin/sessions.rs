//! `GET /admin/v1/users/{id}/sessions` and `DELETE /admin/v1/sessions/{id}`: console
//! sessions listed and ended through the admin API, with bearer tokens as before.

use tracklayer_core::sessions::SignedIn;

use super::*;

impl App {
    /// The owner signed in to the console through the operator's one-time link.
    pub(super) async fn owner_console_session(&self) -> SignedIn {
        let operator = Principal::operator(&self.ws);
        let link = self.service.owner_sign_in_link(&operator).await.unwrap();
        let token = link.url.rsplit('/').next().unwrap();
        let ip: std::net::IpAddr = "198.51.100.7".parse().unwrap();
        self.service.redeem_sign_in_link(token, ip).await.unwrap()
    }

    /// The owner's console sessions as `token` lists them.
    async fn owner_sessions(&self, token: Option<&str>) -> (StatusCode, Value) {
        let path = "/admin/v1/users/usr_owner/sessions";
        let (status, _, v) = self.call(Method::GET, path, token, None).await;
        (status, v)
    }

    /// Ends the console session `signed` as `token` would.
    async fn end_session(&self, signed: &SignedIn, token: &str) -> (StatusCode, Value) {
        let path = format!("/admin/v1/sessions/{}", signed.session.id);
        let (status, _, v) = self.call(Method::DELETE, &path, Some(token), None).await;
        (status, v)
    }
}

#[tokio::test]
async fn an_admin_lists_a_users_console_sessions_and_ends_one_at_once() {
    let app = App::start().await;
    let signed = app.owner_console_session().await;
    let (status, v) = app.owner_sessions(Some(&app.admin)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let listed = v.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], signed.session.id.as_str());
    assert_eq!(listed[0]["user_id"], "usr_owner");
    assert_eq!(listed[0]["network"], "198.51.100.0/24");
    assert_eq!(listed[0]["expires_at"], "2026-03-08T12:00:00Z");
    assert_eq!(listed[0]["idle_expires_at"], "2026-03-02T00:00:00Z");
    let body = v.to_string();
    assert!(!body.contains(signed.token.as_str()) && !body.contains("198.51.100.7"));

    let (status, _) = app.end_session(&signed, &app.viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(app.service.console_session(&signed.token).await.is_ok());
    let (status, _) = app.end_session(&signed, &app.admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(matches!(
        app.service.console_session(&signed.token).await,
        Err(AdminError::SessionEnded)
    ));
    let (status, v) = app.end_session(&signed, &app.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test]
async fn only_an_admin_lists_another_users_sessions() {
    let app = App::start().await;
    app.owner_console_session().await;
    for token in [&app.viewer, &app.editor] {
        let (status, v) = app.owner_sessions(Some(token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    }
    let (status, _) = app.owner_sessions(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_workspace_neither_sees_nor_ends_a_session() {
    let app = App::start().await;
    let signed = app.owner_console_session().await;
    // The other workspace has its own usr_owner, with no session.
    let (status, v) = app.owner_sessions(Some(&app.other)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, json!([]));
    let (status, _) = app.end_session(&signed, &app.other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(app.service.console_session(&signed.token).await.is_ok());
}

#[tokio::test]
async fn a_malformed_or_unknown_id_is_not_found() {
    let app = App::start().await;
    for path in [
        "/admin/v1/sessions/not-a-session",
        "/admin/v1/sessions/ses_unknown0000",
        "/admin/v1/users/nobody/sessions",
        "/admin/v1/users/usr_nobody/sessions",
    ] {
        let method = if path.starts_with("/admin/v1/sessions") {
            Method::DELETE
        } else {
            Method::GET
        };
        let (status, headers, _) = app.call(method, path, Some(&app.admin), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON, "{path}");
    }
}
