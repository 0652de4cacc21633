//! SCIM users whose `userName` is not an email address, and users without any email.

use super::scim::assert_scim_error;
use super::*;

const USERS: &str = "/scim/v2/Users";

impl App {
    /// The sign-in address the admin API shows for user `id`.
    async fn sign_in_address(&self, id: &str) -> String {
        let users = self.ok(Method::GET, "/admin/v1/users", None).await;
        let user = users.as_array().unwrap().iter().find(|u| u["id"] == id);
        user.expect("the user")["email"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[tokio::test]
async fn a_user_name_that_is_not_an_email_is_kept_verbatim_and_the_primary_email_signs_in() {
    let (app, t) = App::with_scim_token().await;
    let emails = json!([{"value": "home@example.org", "type": "home"},
                        {"value": "Jo.Doe@Example.com", "type": "work", "primary": true}]);
    let body = json!({"userName": "jdoe", "emails": emails, "externalId": "E4711"});
    let (status, u) = app.scim_post(USERS, &t, body).await;
    assert_eq!(status, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (u["userName"].clone(), u["emails"].clone()),
        (json!("jdoe"), emails)
    );
    assert_eq!(app.sign_in_address(&id).await, "jo.doe@example.com");
    let found = app
        .scim_ok(
            Method::GET,
            &format!("{USERS}?filter=userName%20eq%20%22JDOE%22"),
            &t,
            None,
        )
        .await;
    assert_eq!(found["Resources"][0]["id"], id.as_str(), "{found}");

    let (status, v) = app.scim_post(USERS, &t, json!({"userName": "JDoe"})).await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("uniqueness"));

    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": "emails",
                                       "value": [{"value": "jo@example.net", "primary": true}]}]});
    let u = app
        .scim_ok(Method::PATCH, &format!("{USERS}/{id}"), &t, Some(patch))
        .await;
    assert_eq!(
        u["emails"],
        json!([{"value": "jo@example.net", "primary": true}])
    );
    assert_eq!(
        app.sign_in_address(&id).await,
        "jo@example.net",
        "the mover's address moves"
    );
}

#[tokio::test]
async fn a_user_without_any_email_is_provisioned_under_a_reserved_address_until_one_is_given() {
    let (app, t) = App::with_scim_token().await;
    let (status, u) = app
        .scim_post(USERS, &t, json!({"userName": "E004711"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(u.get("emails"), None, "{u}");
    let address = app.sign_in_address(&id).await;
    assert_eq!(address, format!("{id}@scim.invalid"));
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "emails",
                                        "value": [{"value": "e4711@example.com", "type": "work"}]}]});
    app.scim_ok(Method::PATCH, &format!("{USERS}/{id}"), &t, Some(add))
        .await;
    assert_eq!(app.sign_in_address(&id).await, "e4711@example.com");
}

#[tokio::test]
async fn two_identity_provider_calls_racing_for_one_user_name_create_exactly_one_user() {
    let (app, t) = App::with_scim_token().await;
    for round in 0..3 {
        let body = |name: String| Some(json!({"userName": name, "active": true}));
        let (a, b) = tokio::join!(
            app.scim(Method::POST, USERS, &t, body(format!("jdoe{round}"))),
            app.scim(Method::POST, USERS, &t, body(format!("JDOE{round}")))
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "round {round}: {a:?} {b:?}"
        );
        let lost = if a.0 == StatusCode::CONFLICT { &a } else { &b };
        assert_scim_error(lost.0, &lost.1, StatusCode::CONFLICT, Some("uniqueness"));
    }
    let jdoes = format!("{USERS}?filter=userName%20sw%20%22jdoe%22");
    let listed = app.scim_ok(Method::GET, &jdoes, &t, None).await;
    assert_eq!(listed["totalResults"], 3, "{listed}");
}

#[tokio::test]
async fn renaming_a_user_to_a_taken_user_name_changes_nothing_and_frees_nothing() {
    let (app, t) = App::with_scim_token().await;
    let create = |name: &str| Some(json!({"userName": name}));
    let jo = app.scim_ok(Method::POST, USERS, &t, create("jdoe")).await;
    let bo = app.scim_ok(Method::POST, USERS, &t, create("bsmith")).await;
    let bo_path = format!("{USERS}/{}", bo["id"].as_str().unwrap());
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": "userName", "value": "JDoe"}]});
    let (status, v) = app.scim(Method::PATCH, &bo_path, &t, Some(patch)).await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("uniqueness"));
    let (status, v) = app
        .scim(Method::PUT, &bo_path, &t, Some(json!({"userName": "jdoe"})))
        .await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("uniqueness"));
    assert_eq!(
        app.scim_ok(Method::GET, &bo_path, &t, None).await["userName"],
        "bsmith"
    );
    let (status, v) = app.scim(Method::POST, USERS, &t, create("BSmith")).await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("uniqueness"));

    let jo_path = format!("{USERS}/{}", jo["id"].as_str().unwrap());
    app.scim_ok(Method::PUT, &jo_path, &t, Some(json!({"userName": "john"})))
        .await;
    let renamed = app
        .scim_ok(Method::PUT, &bo_path, &t, Some(json!({"userName": "jdoe"})))
        .await;
    assert_eq!(renamed["userName"], "jdoe");
}
