//! SCIM `Groups` stored as the identity provider pushes them, and the workspace's group →
//! role mapping: the mover, the last admin, and the mapping's admin API.

use std::collections::BTreeSet;

use super::scim::{assert_scim_error, fixture};
use super::*;

const GROUPS: &str = "/scim/v2/Groups";

impl App {
    /// A group pushed by the IdP with `members`; answers its id.
    async fn pushed_group(&self, token: &str, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                          "displayName": name, "externalId": format!("ext-{name}"),
                          "members": members});
        let (status, v) = self.scim_post(GROUPS, token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    async fn renames_workspace(&self, pat: &str) -> StatusCode {
        let body = Some(json!({"name": "Renamed"}));
        self.call(Method::PATCH, "/admin/v1/workspace", Some(pat), body)
            .await
            .0
    }
}

#[tokio::test]
async fn groups_of_any_name_are_stored_read_filtered_replaced_and_deleted() {
    let (app, t) = App::with_scim_token().await;
    let ann = app.new_user("viewer").await;
    let id = app.pushed_group(&t, "Marketing EMEA", &[&ann]).await;
    let g = app
        .scim_ok(Method::GET, &format!("{GROUPS}/{id}"), &t, None)
        .await;
    assert_eq!(g["displayName"], "Marketing EMEA");
    assert_eq!(g["externalId"], "ext-Marketing EMEA");
    assert_eq!(g["members"][0]["value"], ann.as_str(), "{g}");
    let user = app
        .scim_ok(Method::GET, &format!("/scim/v2/Users/{ann}"), &t, None)
        .await;
    assert_eq!(user["groups"][0]["value"], id.as_str(), "{user}");

    let filter = format!("{GROUPS}?filter=displayName%20eq%20%22marketing%20emea%22");
    assert_eq!(
        app.scim_ok(Method::GET, &filter, &t, None).await["totalResults"],
        1
    );
    let (status, v) = app
        .scim_post(GROUPS, &t, json!({"displayName": "MARKETING emea"}))
        .await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("uniqueness"));

    let put = json!({"displayName": "Marketing", "members": []});
    let g = app
        .scim_ok(Method::PUT, &format!("{GROUPS}/{id}"), &t, Some(put))
        .await;
    assert_eq!(
        (g["displayName"].as_str(), g.get("members")),
        (Some("Marketing"), None)
    );
    app.assert_scim_deleted(&t, &format!("{GROUPS}/{id}")).await;
    let audit = app.audit_actions().await;
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(
        actions.contains(&"scim.group_save") && actions.contains(&"scim.group_delete"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_member_must_be_a_user_of_the_workspace() {
    let (app, t) = App::with_scim_token().await;
    for member in ["usr_nosuchuser", "not an id"] {
        let body = json!({"displayName": "Ops", "members": [{"value": member}]});
        let (status, v) = app.scim_post(GROUPS, &t, body).await;
        assert_scim_error(status, &v, StatusCode::BAD_REQUEST, Some("invalidValue"));
    }
}

#[tokio::test]
async fn a_group_change_is_a_role_change_effective_on_the_next_request() {
    let (app, t) = App::with_scim_token().await;
    let user = app.new_user("viewer").await;
    let pat = app.pat_of(&user).await;
    assert_eq!(
        app.renames_workspace(&pat).await,
        StatusCode::FORBIDDEN,
        "a viewer cannot"
    );
    let editors = app.pushed_group(&t, "TrackLayer Editors", &[]).await;
    let path = format!("{GROUPS}/{editors}");

    let g = app
        .scim_ok(
            Method::PATCH,
            &path,
            &t,
            Some(fixture("entra_group_add_member", &user)),
        )
        .await;
    assert_eq!(g["members"][0]["value"], user.as_str(), "{g}");
    assert_eq!(
        app.renames_workspace(&pat).await,
        StatusCode::OK,
        "an editor now"
    );

    app.scim_ok(
        Method::PATCH,
        &path,
        &t,
        Some(fixture("entra_group_remove_member", &user)),
    )
    .await;
    assert_eq!(
        app.renames_workspace(&pat).await,
        StatusCode::FORBIDDEN,
        "back to viewer"
    );
}

#[tokio::test]
async fn the_highest_mapped_role_wins_and_unmapped_groups_change_no_role() {
    let (app, t) = App::with_scim_token().await;
    let admin = app.new_user("admin").await;
    let role = |id: String| {
        let app = &app;
        async move {
            let users = app.ok(Method::GET, "/admin/v1/users", None).await;
            users
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["id"] == id.as_str())
                .unwrap()["role"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    app.pushed_group(&t, "Sales", &[&admin]).await;
    assert_eq!(
        role(admin.clone()).await,
        "admin",
        "an unmapped group moves nothing"
    );
    app.pushed_group(&t, "TrackLayer Viewers", &[&admin]).await;
    assert_eq!(role(admin.clone()).await, "viewer");
    let editors = app.pushed_group(&t, "TrackLayer Editors", &[&admin]).await;
    assert_eq!(role(admin.clone()).await, "editor", "editor beats viewer");

    let mapping = json!({"groups": [{"group": "Sales", "role": "admin"},
                                    {"group": "TrackLayer Editors", "role": "editor"}]});
    let v = app
        .ok(Method::PUT, "/admin/v1/sso/scim-group-roles", Some(mapping))
        .await;
    assert_eq!(v["groups"][0]["group"], "Sales");
    assert_eq!(
        role(admin.clone()).await,
        "admin",
        "the mapping moved the role at once"
    );
    app.scim_ok(Method::DELETE, &format!("{GROUPS}/{editors}"), &t, None)
        .await;
    assert_eq!(role(admin.clone()).await, "admin");
    let audit = app
        .ok(
            Method::GET,
            "/admin/v1/audit-log?action=scim.group_roles",
            None,
        )
        .await;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(1),
        "{audit}"
    );
}

#[tokio::test]
async fn the_group_roles_are_set_by_admins_only_and_validated() {
    let app = App::start().await;
    let v = app
        .ok(Method::GET, "/admin/v1/sso/scim-group-roles", None)
        .await;
    assert_eq!(
        v["groups"][0],
        json!({"group": "TrackLayer Admins", "role": "admin"})
    );
    let viewer = app.pat_of(&app.new_user("viewer").await).await;
    let body = json!({"groups": []});
    let (status, _, _) = app
        .call(
            Method::PUT,
            "/admin/v1/sso/scim-group-roles",
            Some(&viewer),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let twice =
        json!({"groups": [{"group": "Ops", "role": "admin"}, {"group": "ops", "role": "viewer"}]});
    app.assert_invalid_field(
        Method::PUT,
        "/admin/v1/sso/scim-group-roles",
        twice,
        "groups[1].group",
    )
    .await;
}

#[tokio::test]
async fn the_last_admin_cannot_be_deprovisioned_by_the_idp() {
    let (app, t) = App::with_scim_token().await;
    let admins = app
        .pushed_group(&t, "TrackLayer Admins", &["usr_owner"])
        .await;
    let (status, v) = app
        .scim(
            Method::PATCH,
            &format!("{GROUPS}/{admins}"),
            &t,
            Some(fixture("entra_group_remove_member", "usr_owner")),
        )
        .await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("mutability"));
    let g = app
        .scim_ok(Method::GET, &format!("{GROUPS}/{admins}"), &t, None)
        .await;
    assert_eq!(
        g["members"][0]["value"], "usr_owner",
        "the group is as it was: {g}"
    );
    let (status, v) = app
        .scim(
            Method::PATCH,
            "/scim/v2/Users/usr_owner",
            &t,
            Some(fixture("entra_disable_user", "")),
        )
        .await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("mutability"));
    let (status, v) = app
        .scim(Method::DELETE, "/scim/v2/Users/usr_owner", &t, None)
        .await;
    assert_scim_error(status, &v, StatusCode::CONFLICT, Some("mutability"));
}

#[tokio::test]
async fn more_than_200_groups_are_listed_and_searched_page_by_page_to_the_last() {
    let (app, t) = App::with_scim_token().await;
    let pushed: std::collections::BTreeSet<String> =
        (0..205).map(|i| format!("Team {i:03}")).collect();
    for name in &pushed {
        app.pushed_group(&t, name, &[]).await;
    }
    let names = |page: &Value| -> Vec<String> {
        page["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["displayName"].as_str().map(str::to_owned))
            .collect()
    };
    // Every group once: 205 names, the ones pushed.
    let every_group_once = |names: Vec<String>| {
        assert_eq!(names.len(), 205);
        assert_eq!(names.into_iter().collect::<BTreeSet<_>>(), pushed);
    };
    let mut listed = Vec::new();
    for start in [1, 101, 201] {
        let path = format!("{GROUPS}?startIndex={start}&count=100");
        let page = app.scim_ok(Method::GET, &path, &t, None).await;
        assert_eq!(page["totalResults"], 205, "{page}");
        listed.extend(names(&page));
    }
    every_group_once(listed);

    let users = app
        .scim_ok(Method::GET, "/scim/v2/Users?count=0", &t, None)
        .await["totalResults"]
        .as_u64()
        .unwrap();
    let mut searched = Vec::new();
    for start in [1, 201] {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                          "startIndex": start, "count": 200});
        let page = app
            .scim_ok(Method::POST, "/scim/v2/.search", &t, Some(body))
            .await;
        assert_eq!(page["totalResults"], users + 205, "{page}");
        searched.extend(names(&page));
    }
    every_group_once(searched);
}
