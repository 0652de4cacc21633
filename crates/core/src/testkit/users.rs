use super::*;

pub fn user(ws: &WorkspaceId, email: &str, role: Role) -> User {
    User {
        id: crate::user_id::UserId::parse(&format!("usr_{}", &unique()[16..])).expect("a user id"),
        workspace_id: ws.clone(),
        email: crate::email::Email::parse(email).expect("an email address"),
        role,
        created_at: T0,
        external_id: None,
        active: true,
        scim: None,
    }
}

pub async fn keeps_users_per_workspace_with_unique_emails(s: &dyn ControlStore) {
    let a = workspace(Region::Us);
    let b = workspace(Region::Us);
    s.create_workspace(&a).await.unwrap();
    s.create_workspace(&b).await.unwrap();
    let mut ann = user(&a.id, "ann@example.com", Role::Admin);
    s.create_user(&ann).await.unwrap();
    let dup = user(&a.id, "ANN@example.com", Role::Viewer);
    assert!(matches!(
        s.create_user(&dup).await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    s.create_user(&user(&b.id, "ann@example.com", Role::Viewer))
        .await
        .unwrap();
    ann.role = Role::Editor;
    s.update_user(&ann).await.unwrap();
    assert_eq!(
        s.user(&a.id, &ann.id, T0).await.unwrap().unwrap().role,
        Role::Editor
    );
    assert!(s.user(&b.id, &ann.id, T0).await.unwrap().is_none());
    assert_eq!(s.users(&a.id, T0).await.unwrap().len(), 1);
    s.delete_user(&a.id, &ann.id).await.unwrap();
    assert!(s.users(&a.id, T0).await.unwrap().is_empty());
    assert!(matches!(
        s.delete_user(&a.id, &ann.id).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}

pub async fn keeps_a_provisioned_users_external_id_and_active_flag(s: &dyn ControlStore) {
    let ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    let mut bo = user(&ws.id, "bo@example.com", Role::Editor);
    bo.external_id = Some("00u1a2b3c4d5e6f7g8h9".into());
    s.create_user(&bo).await.unwrap();
    assert_eq!(
        s.user(&ws.id, &bo.id, T0).await.unwrap().as_ref(),
        Some(&bo)
    );

    bo.active = false;
    bo.external_id = Some("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef".into());
    s.update_user(&bo).await.unwrap();
    let read = s.user(&ws.id, &bo.id, T0).await.unwrap().unwrap();
    assert_eq!(
        (read.active, read.external_id),
        (false, bo.external_id.clone())
    );
    let listed = s.users(&ws.id, T0).await.unwrap();
    assert_eq!(listed, vec![bo.clone()]);

    bo.external_id = None;
    bo.active = true;
    s.update_user(&bo).await.unwrap();
    assert_eq!(s.user(&ws.id, &bo.id, T0).await.unwrap(), Some(bo));
}
