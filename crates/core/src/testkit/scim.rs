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
