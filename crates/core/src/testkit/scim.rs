use super::*;
use crate::scim::store::{GroupRole, GroupRoles, ScimGroup};
use crate::user_id::UserId;

fn group(ws: &WorkspaceId, name: &str, at: OffsetDateTime) -> ScimGroup {
    ScimGroup {
        id: format!("grp_{}", &unique()[12..]),
        workspace_id: ws.clone(),
        display_name: name.into(),
        external_id: None,
        members: vec![],
        created_at: at,
        modified_at: at,
    }
}

pub async fn groups_are_created_listed_oldest_first_replaced_and_deleted_per_workspace(
    s: &dyn ControlStore,
) {
    let a = workspace(Region::Us);
    let b = workspace(Region::Us);
    let later = group(&a.id, "Marketing EMEA", T0 + time::Duration::seconds(1));
    let mut first = group(&a.id, "TrackLayer Admins", T0);
    s.put_scim_group(&later).await.unwrap();
    s.put_scim_group(&first).await.unwrap();
    s.put_scim_group(&group(&b.id, "Other", T0)).await.unwrap();
    let listed = s.scim_groups(&a.id).await.unwrap();
    assert_eq!(listed, vec![first.clone(), later.clone()]);

    first.members = vec![UserId::owner(), UserId::parse("usr_ann").unwrap()];
    first.external_id = Some("00g1okta".into());
    first.display_name = "TrackLayer Editors".into();
    s.put_scim_group(&first).await.unwrap();
    assert_eq!(
        s.scim_group(&a.id, &first.id).await.unwrap().as_ref(),
        Some(&first)
    );
    assert!(s.scim_group(&b.id, &first.id).await.unwrap().is_none());

    assert!(s.delete_scim_group(&a.id, &first.id).await.unwrap());
    assert!(!s.delete_scim_group(&a.id, &first.id).await.unwrap());
    assert_eq!(s.scim_groups(&a.id).await.unwrap(), vec![later]);
}

pub async fn more_groups_than_a_read_page_are_all_listed_oldest_first(s: &dyn ControlStore) {
    // More than two pages of the moto suite's control store (`CONTROL_PAGE`).
    let ws = workspace(Region::Us);
    let mut pushed = Vec::new();
    for i in 0..25 {
        let g = group(
            &ws.id,
            &format!("Team {i:02}"),
            T0 + time::Duration::seconds(i),
        );
        s.put_scim_group(&g).await.unwrap();
        pushed.push(g);
    }
    assert_eq!(s.scim_groups(&ws.id).await.unwrap(), pushed);
}

pub async fn the_group_role_mapping_is_kept_per_workspace(s: &dyn ControlStore) {
    let a = workspace(Region::Eu);
    let b = workspace(Region::Eu);
    assert_eq!(s.group_roles(&a.id).await.unwrap(), None);
    let roles = GroupRoles {
        groups: vec![GroupRole {
            group: "Analytics".into(),
            role: Role::Editor,
        }],
    };
    s.put_group_roles(&a.id, &roles).await.unwrap();
    assert_eq!(s.group_roles(&a.id).await.unwrap(), Some(roles));
    assert_eq!(s.group_roles(&b.id).await.unwrap(), None);
    s.put_group_roles(&a.id, &GroupRoles::default())
        .await
        .unwrap();
    assert_eq!(
        s.group_roles(&a.id).await.unwrap(),
        Some(GroupRoles::default())
    );
}

pub async fn a_users_scim_profile_is_kept_with_the_user(s: &dyn ControlStore) {
    use crate::scim::profile::{ScimEmail, ScimProfile};
    let ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    let mut jo = user(&ws.id, "jo@example.com", Role::Viewer);
    jo.scim = Some(ScimProfile {
        user_name: "jdoe".into(),
        emails: vec![ScimEmail {
            value: "Jo@Example.com".into(),
            kind: Some("work".into()),
            primary: Some(true),
        }],
        active_unassigned: false,
    });
    s.create_user(&jo).await.unwrap();
    assert_eq!(
        s.user(&ws.id, &jo.id, T0).await.unwrap().as_ref(),
        Some(&jo)
    );
    jo.scim = Some(ScimProfile {
        user_name: "E4711".into(),
        emails: vec![],
        active_unassigned: true,
    });
    s.update_user(&jo).await.unwrap();
    assert_eq!(s.users(&ws.id, T0).await.unwrap(), vec![jo]);
}

pub async fn closing_a_workspace_deletes_its_groups_and_mapping_at_once(s: &dyn ControlStore) {
    // The identity provider's directory ends with the account: nothing of it waits out the
    // 90 days the users and keys are kept, and the other workspace keeps its own.
    let a = workspace(Region::Eu);
    let b = workspace(Region::Eu);
    s.create_workspace(&a).await.unwrap();
    s.create_workspace(&b).await.unwrap();
    let roles = GroupRoles {
        groups: vec![GroupRole {
            group: "Analytics".into(),
            role: Role::Editor,
        }],
    };
    for ws in [&a, &b] {
        s.put_scim_group(&group(&ws.id, "TrackLayer Admins", T0))
            .await
            .unwrap();
        s.put_group_roles(&ws.id, &roles).await.unwrap();
    }

    let mut closed = a.clone();
    closed.closed_at = Some(T0 + time::Duration::days(1));
    s.close_workspace(&closed).await.unwrap();

    assert!(s.scim_groups(&a.id).await.unwrap().is_empty());
    assert_eq!(s.group_roles(&a.id).await.unwrap(), None);
    assert_eq!(s.scim_groups(&b.id).await.unwrap().len(), 1);
    assert_eq!(s.group_roles(&b.id).await.unwrap(), Some(roles));
}

/// A user of `ws` whose identity provider named them `user_name`.
fn named(ws: &WorkspaceId, email: &str, user_name: &str) -> User {
    let mut u = user(ws, email, Role::Viewer);
    u.scim = Some(crate::scim::profile::ScimProfile {
        user_name: user_name.into(),
        emails: vec![],
        active_unassigned: false,
    });
    u
}

fn user_name_taken(r: Result<(), StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(w)) if w == crate::scim::profile::USER_NAME_TAKEN)
}

/// A user the admin API makes is named by their email: a second user with a taken email
/// clashes on both, and the clash is the email's (what the caller must change), never the
/// userName's; a taken userName alone is the userName's.
pub async fn a_taken_email_is_an_email_clash_even_when_the_user_name_clashes_too(
    s: &dyn ControlStore,
) {
    use crate::scim::profile::USER_NAME_TAKEN;
    let ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    s.create_user(&user(&ws.id, "ana@example.com", Role::Editor))
        .await
        .unwrap();
    let again = s
        .create_user(&user(&ws.id, "ana@example.com", Role::Viewer))
        .await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(w)) if *w != USER_NAME_TAKEN),
        "{again:?}"
    );
    let mut bo = user(&ws.id, "bo@example.com", Role::Viewer);
    s.create_user(&bo).await.unwrap();
    bo.email = user(&ws.id, "ana@example.com", Role::Viewer).email;
    let moved = s.update_user(&bo).await;
    assert!(
        matches!(&moved, Err(StoreError::Conflict(w)) if *w != USER_NAME_TAKEN),
        "{moved:?}"
    );
    let name_only = named(&ws.id, "cy@example.com", "ANA@example.com");
    assert!(user_name_taken(s.create_user(&name_only).await));
}

pub async fn two_creates_racing_for_one_user_name_leave_exactly_one_user(s: &dyn ControlStore) {
    const ROUNDS: usize = 5;
    let ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    for round in 0..ROUNDS {
        let a = named(
            &ws.id,
            &format!("a{round}@example.com"),
            &format!("jdoe{round}"),
        );
        let b = named(
            &ws.id,
            &format!("b{round}@example.com"),
            &format!("JDoe{round}"),
        );
        let (ra, rb) = tokio::join!(s.create_user(&a), s.create_user(&b));
        assert!(
            ra.is_ok() != rb.is_ok(),
            "round {round}: exactly one create wins ({ra:?}, {rb:?})"
        );
        assert!(
            matches!(
                ra.as_ref().err().or(rb.as_ref().err()),
                Some(StoreError::Conflict(_))
            ),
            "round {round}: the other is a conflict ({ra:?}, {rb:?})"
        );
    }
    assert_eq!(s.users(&ws.id, T0).await.unwrap().len(), ROUNDS);
}

pub async fn a_user_name_moves_with_a_rename_and_is_freed_by_removal(s: &dyn ControlStore) {
    let ws = workspace(Region::Eu);
    let other = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    s.create_workspace(&other).await.unwrap();
    // A user the admin API made is named by their sign-in address.
    s.create_user(&user(&ws.id, "ann@example.com", Role::Admin))
        .await
        .unwrap();
    let mut jo = named(&ws.id, "jo@example.com", "jdoe");
    let mut bo = named(&ws.id, "bo@example.com", "bsmith");
    s.create_user(&jo).await.unwrap();
    s.create_user(&bo).await.unwrap();
    assert!(user_name_taken(
        s.create_user(&named(&ws.id, "x@example.com", "ANN@example.com"))
            .await
    ));
    s.create_user(&named(&other.id, "jo@example.com", "jdoe"))
        .await
        .unwrap();

    let kept = bo.clone();
    bo.scim.as_mut().unwrap().user_name = "JDOE".into();
    assert!(user_name_taken(s.update_user(&bo).await));
    assert_eq!(s.user(&ws.id, &bo.id, T0).await.unwrap(), Some(kept));

    jo.scim.as_mut().unwrap().user_name = "john".into();
    s.update_user(&jo).await.unwrap();
    s.update_user(&bo).await.unwrap();
    assert_eq!(s.user(&ws.id, &bo.id, T0).await.unwrap(), Some(bo.clone()));
    s.create_user(&named(&ws.id, "b2@example.com", "bsmith"))
        .await
        .unwrap();
    assert!(user_name_taken(
        s.create_user(&named(&ws.id, "j2@example.com", "John"))
            .await
    ));

    s.delete_user(&ws.id, &jo.id).await.unwrap();
    s.create_user(&named(&ws.id, "j2@example.com", "John"))
        .await
        .unwrap();
    s.delete_user_keeping_an_admin(&ws.id, &bo.id, T0)
        .await
        .unwrap();
    s.create_user(&named(&ws.id, "b3@example.com", "jdoe"))
        .await
        .unwrap();
}

pub async fn two_users_renamed_to_one_user_name_at_once_leave_exactly_one_with_it(
    s: &dyn ControlStore,
) {
    let ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    let mut jo = named(&ws.id, "jo@example.com", "jdoe");
    let mut bo = named(&ws.id, "bo@example.com", "bsmith");
    s.create_user(&jo).await.unwrap();
    s.create_user(&bo).await.unwrap();
    jo.scim.as_mut().unwrap().user_name = "Chris".into();
    bo.scim.as_mut().unwrap().user_name = "chris".into();
    let (rj, rb) = tokio::join!(s.update_user(&jo), s.update_user(&bo));
    assert!(
        rj.is_ok() != rb.is_ok(),
        "exactly one rename wins ({rj:?}, {rb:?})"
    );
    let names: Vec<String> = s
        .users(&ws.id, T0)
        .await
        .unwrap()
        .iter()
        .map(crate::scim::profile::user_name_key)
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "chris").count(),
        1,
        "{names:?}"
    );
    // The loser keeps its old name, still held: nobody else may take it.
    let held = if rj.is_ok() { "bsmith" } else { "jdoe" };
    assert!(names.iter().any(|n| n == held));
    assert!(user_name_taken(
        s.create_user(&named(&ws.id, "x@example.com", held)).await
    ));
}
