//! The SAML state on every control store: one connection per workspace, AuthnRequest ids
//! taken once by the browser that started them, and assertion ids accepted once until they
//! expire, even by two instances at the same moment.

use time::Duration;

use super::{workspace, T0};
use crate::keys::Role;
use crate::ports::ControlStore;
use crate::saml::{AssertionUse, PendingRequest, RoleRule, SamlConnection};
use crate::user_id::UserId;
use crate::workspace::{Region, WorkspaceId};

/// A connection that enforces SSO for `domains` (no certificates: for the enforcement rules,
/// never for verification), with `break_glass` keeping the local ways in.
pub fn enforcing_connection(
    ws: &WorkspaceId,
    domains: &[&str],
    break_glass: Option<&UserId>,
) -> SamlConnection {
    SamlConnection {
        workspace_id: ws.clone(),
        idp_entity_id: "https://idp.example.test/metadata".into(),
        sso_url: "https://idp.example.test/sso".into(),
        certificates: vec![],
        managed_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        default_role: None,
        role_attribute: None,
        role_rules: vec![],
        idp_initiated: false,
        enforce_sso: true,
        break_glass_user: break_glass.cloned(),
        updated_at: T0,
    }
}

fn connection(ws: &WorkspaceId, sso_url: &str) -> SamlConnection {
    SamlConnection {
        workspace_id: ws.clone(),
        idp_entity_id: "https://idp.example.test/metadata".into(),
        sso_url: sso_url.into(),
        certificates: vec!["MIIB".into(), "MIIC".into()],
        managed_domains: vec!["example.com".into()],
        default_role: Some(Role::Viewer),
        role_attribute: Some("groups".into()),
        role_rules: vec![RoleRule {
            value: "tl-admins".into(),
            role: Role::Admin,
        }],
        idp_initiated: false,
        enforce_sso: true,
        break_glass_user: None,
        updated_at: T0,
    }
}

pub async fn a_saml_connection_is_put_replaced_read_and_deleted_per_workspace(
    s: &dyn ControlStore,
) {
    let (ws, other) = (workspace(Region::Eu), workspace(Region::Eu));
    assert_eq!(s.saml_connection(&ws.id).await.unwrap(), None);

    let first = connection(&ws.id, "https://idp.example.test/sso");
    s.put_saml_connection(&first).await.unwrap();
    let second = connection(&ws.id, "https://idp.example.test/sso2");
    s.put_saml_connection(&second).await.unwrap();

    assert_eq!(s.saml_connection(&ws.id).await.unwrap(), Some(second));
    assert_eq!(s.saml_connection(&other.id).await.unwrap(), None);
    assert!(s.delete_saml_connection(&ws.id).await.unwrap());
    assert!(!s.delete_saml_connection(&ws.id).await.unwrap());
    assert_eq!(s.saml_connection(&ws.id).await.unwrap(), None);
}

/// A domain no other test's connection names (the store may be shared by the whole run).
fn own_domain(ws: &WorkspaceId, label: &str) -> String {
    format!("{label}.{}.test", ws.to_string().replace('_', "-"))
}

fn managing(ws: &WorkspaceId, domains: &[&str]) -> SamlConnection {
    let mut c = connection(ws, "https://idp.example.test/sso");
    c.managed_domains = domains.iter().map(|d| (*d).to_owned()).collect();
    c
}

pub async fn the_workspaces_managing_a_domain_are_found_by_it_as_connections_change(
    s: &dyn ControlStore,
) {
    let (a, b) = (workspace(Region::Eu), workspace(Region::Eu));
    let (shared, only_a) = (own_domain(&a.id, "shared"), own_domain(&a.id, "only-a"));
    let moved = own_domain(&a.id, "moved");
    assert_eq!(
        s.workspaces_managing_domain(&shared, 20).await.unwrap(),
        vec![]
    );

    s.put_saml_connection(&managing(&a.id, &[&shared, &only_a]))
        .await
        .unwrap();
    s.put_saml_connection(&managing(&b.id, &[&shared]))
        .await
        .unwrap();
    let mut both = vec![a.id.clone(), b.id.clone()];
    both.sort_by_key(ToString::to_string);
    assert_eq!(
        s.workspaces_managing_domain(&shared, 20).await.unwrap(),
        both
    );
    assert_eq!(
        s.workspaces_managing_domain(&shared, 1).await.unwrap(),
        both[..1].to_vec(),
        "at most the limit, in workspace id order"
    );
    assert_eq!(
        s.workspaces_managing_domain(&only_a, 20).await.unwrap(),
        vec![a.id.clone()]
    );
    assert_eq!(
        s.workspaces_managing_domain(&format!("sub.{only_a}"), 20)
            .await
            .unwrap(),
        vec![],
        "a subdomain is another domain"
    );

    // A replaced connection no longer names what it dropped, and names what it added.
    s.put_saml_connection(&managing(&a.id, &[&moved]))
        .await
        .unwrap();
    assert_eq!(
        s.workspaces_managing_domain(&shared, 20).await.unwrap(),
        vec![b.id.clone()]
    );
    assert_eq!(
        s.workspaces_managing_domain(&only_a, 20).await.unwrap(),
        vec![]
    );
    assert_eq!(
        s.workspaces_managing_domain(&moved, 20).await.unwrap(),
        vec![a.id.clone()]
    );

    // A deleted connection names nothing.
    assert!(s.delete_saml_connection(&b.id).await.unwrap());
    assert_eq!(
        s.workspaces_managing_domain(&shared, 20).await.unwrap(),
        vec![]
    );
    assert!(s.delete_saml_connection(&a.id).await.unwrap());
    assert_eq!(
        s.workspaces_managing_domain(&moved, 20).await.unwrap(),
        vec![]
    );
}

pub async fn a_request_id_is_taken_once_and_only_by_the_browser_that_started_it(
    s: &dyn ControlStore,
) {
    let ws = workspace(Region::Us);
    let until = T0 + Duration::minutes(10);
    s.put_saml_request(
        &ws.id,
        &PendingRequest {
            browser: "browser-a",
            request_id: "_req_a",
            expires_at: until,
        },
    )
    .await
    .unwrap();

    assert_eq!(
        s.take_saml_request(&ws.id, "browser-b", T0).await.unwrap(),
        None
    );
    let other = workspace(Region::Us);
    assert_eq!(
        s.take_saml_request(&other.id, "browser-a", T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.take_saml_request(&ws.id, "browser-a", T0)
            .await
            .unwrap()
            .as_deref(),
        Some("_req_a")
    );
    assert_eq!(
        s.take_saml_request(&ws.id, "browser-a", T0).await.unwrap(),
        None
    );
}

pub async fn an_expired_request_id_is_not_taken(s: &dyn ControlStore) {
    let ws = workspace(Region::Us);
    s.put_saml_request(
        &ws.id,
        &PendingRequest {
            browser: "browser",
            request_id: "_req",
            expires_at: T0 + Duration::minutes(10),
        },
    )
    .await
    .unwrap();
    let later = T0 + Duration::minutes(10) + Duration::seconds(1);
    assert_eq!(
        s.take_saml_request(&ws.id, "browser", later).await.unwrap(),
        None
    );
}

pub async fn an_assertion_id_is_accepted_once_until_it_expires(s: &dyn ControlStore) {
    let (ws, other) = (workspace(Region::Eu), workspace(Region::Eu));
    let until = T0 + Duration::minutes(8);

    assert!(s
        .first_use_of_assertion(&ws.id, &used("_a1", until), T0)
        .await
        .unwrap());
    assert!(!s
        .first_use_of_assertion(&ws.id, &used("_a1", until), T0)
        .await
        .unwrap());
    let just_before = until - Duration::seconds(1);
    assert!(!s
        .first_use_of_assertion(&ws.id, &used("_a1", until), just_before)
        .await
        .unwrap());
    assert!(s
        .first_use_of_assertion(&other.id, &used("_a1", until), T0)
        .await
        .unwrap());
    assert!(s
        .first_use_of_assertion(&ws.id, &used("_a2", until), T0)
        .await
        .unwrap());
    let later = until + Duration::seconds(1);
    assert!(s
        .first_use_of_assertion(&ws.id, &used("_a1", later + Duration::minutes(8)), later)
        .await
        .unwrap());
}

pub async fn two_instances_using_one_assertion_at_once_accept_it_exactly_once(
    s: &dyn ControlStore,
) {
    let ws = workspace(Region::Eu);
    let until = T0 + Duration::minutes(8);
    let race = used("_race", until);
    let (a, b) = tokio::join!(
        s.first_use_of_assertion(&ws.id, &race, T0),
        s.first_use_of_assertion(&ws.id, &race, T0),
    );
    assert_eq!(
        usize::from(a.unwrap()) + usize::from(b.unwrap()),
        1,
        "exactly one instance accepts it"
    );
}

/// The use of assertion `id`, remembered until `until`.
fn used(id: &str, until: time::OffsetDateTime) -> AssertionUse<'_> {
    AssertionUse { id, until }
}
