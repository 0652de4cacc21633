//! The last-admin rule on every control store: a workspace keeps at least one admin, even
//! when two admins demote or remove each other at the same moment (the check and the write
//! are one atomic step).

use super::{user, workspace};
use crate::error::StoreError;
use crate::keys::Role;
use crate::ports::{ControlStore, LAST_ADMIN};
use crate::user_id::UserId;
use crate::workspace::{Region, User, Workspace};

use super::T0;

/// Asserts that a change was refused because it would remove the last admin.
fn assert_last_admin_kept(result: Result<(), StoreError>) {
    let err = result.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(w) if w == LAST_ADMIN),
        "{err:?}"
    );
}

/// A new workspace with a user of each `(email, role)`.
async fn workspace_with<const N: usize>(
    s: &dyn ControlStore,
    users: [(&str, Role); N],
) -> (Workspace, [User; N]) {
    let ws = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    let users = users.map(|(email, role)| user(&ws.id, email, role));
    for u in &users {
        s.create_user(u).await.unwrap();
    }
    (ws, users)
}

async fn with_two_admins(s: &dyn ControlStore) -> (Workspace, UserId, UserId) {
    let (ws, [a, b, _]) = workspace_with(
        s,
        [
            ("ann@example.com", Role::Admin),
            ("bob@example.com", Role::Admin),
            ("vic@example.com", Role::Viewer),
        ],
    )
    .await;
    (ws, a.id, b.id)
}

async fn admins(s: &dyn ControlStore, ws: &Workspace) -> usize {
    s.users(&ws.id, T0)
        .await
        .unwrap()
        .iter()
        .filter(|u| u.role == Role::Admin)
        .count()
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

/// Asserts that of two changes made at once, each of which would leave one admin, exactly one
/// was made and the other refused as a conflict: the workspace has one admin left.
async fn assert_exactly_one_made(
    s: &dyn ControlStore,
    ws: &Workspace,
    ra: Result<User, StoreError>,
    rb: Result<User, StoreError>,
) {
    assert_eq!(
        usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
        1,
        "{ra:?} {rb:?}"
    );
    assert!(is_conflict(&ra) || is_conflict(&rb), "{ra:?} {rb:?}");
    assert_eq!(admins(s, ws).await, 1);
}

pub async fn two_admins_demoting_each_other_at_once_leave_exactly_one_admin(s: &dyn ControlStore) {
    let (ws, a, b) = with_two_admins(s).await;

    let (ra, rb) = tokio::join!(
        s.set_user_role_keeping_an_admin(&ws.id, &a, Role::Editor, T0),
        s.set_user_role_keeping_an_admin(&ws.id, &b, Role::Viewer, T0),
    );

    assert_exactly_one_made(s, &ws, ra, rb).await;
}

pub async fn two_admins_removing_each_other_at_once_leave_exactly_one_admin(s: &dyn ControlStore) {
    let (ws, a, b) = with_two_admins(s).await;

    let (ra, rb) = tokio::join!(
        s.delete_user_keeping_an_admin(&ws.id, &a, T0),
        s.delete_user_keeping_an_admin(&ws.id, &b, T0),
    );

    assert_exactly_one_made(s, &ws, ra, rb).await;
    assert_eq!(s.users(&ws.id, T0).await.unwrap().len(), 2);
}

pub async fn the_last_admin_stays_while_everyone_else_may_change(s: &dyn ControlStore) {
    // Another workspace's admin does not count.
    let (other, _, _) = with_two_admins(s).await;
    let owner_and_editor = [
        ("owner@example.com", Role::Admin),
        ("ed@example.com", Role::Editor),
    ];
    let (ws, [owner, ed]) = workspace_with(s, owner_and_editor).await;

    for role in [Role::Editor, Role::Viewer] {
        let demoted = s.set_user_role_keeping_an_admin(&ws.id, &owner.id, role, T0);
        assert_last_admin_kept(demoted.await.map(|_| ()));
    }
    let removed = s.delete_user_keeping_an_admin(&ws.id, &owner.id, T0);
    assert_last_admin_kept(removed.await.map(|_| ()));
    // An admin may keep their role; a non-admin changes freely.
    let was = s
        .set_user_role_keeping_an_admin(&ws.id, &owner.id, Role::Admin, T0)
        .await
        .unwrap();
    assert_eq!(was.role, Role::Admin);
    let was = s
        .set_user_role_keeping_an_admin(&ws.id, &ed.id, Role::Admin, T0)
        .await
        .unwrap();
    assert_eq!(was.role, Role::Editor);
    // With a second admin the owner may step down, and then the second admin is the last.
    s.set_user_role_keeping_an_admin(&ws.id, &owner.id, Role::Viewer, T0)
        .await
        .unwrap();
    assert_eq!(
        s.user(&ws.id, &owner.id, T0).await.unwrap().unwrap().role,
        Role::Viewer
    );
    assert!(s
        .delete_user_keeping_an_admin(&ws.id, &ed.id, T0)
        .await
        .is_err());
    let removed = s
        .delete_user_keeping_an_admin(&ws.id, &owner.id, T0)
        .await
        .unwrap();
    assert_eq!(removed.id, owner.id);
    assert!(s.user(&ws.id, &owner.id, T0).await.unwrap().is_none());
    // Its email is free again.
    s.create_user(&user(&ws.id, "owner@example.com", Role::Viewer))
        .await
        .unwrap();
    let nobody = UserId::parse("usr_nobody").unwrap();
    for missing in [
        s.set_user_role_keeping_an_admin(&ws.id, &nobody, Role::Viewer, T0)
            .await
            .map(|_| ()),
        s.delete_user_keeping_an_admin(&ws.id, &nobody, T0)
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
    }
    assert_eq!(admins(s, &other).await, 2);
}
