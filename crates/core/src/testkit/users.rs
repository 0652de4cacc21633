use super::*;

pub fn user(ws: &WorkspaceId, email: &str, role: Role) -> User {
    User {
        id: crate::user_id::UserId::parse(&format!("usr_{}", &unique()[16..])).expect("a user id"),
        workspace_id: ws.clone(),
        email: crate::email::Email::parse(email).expect("an email address"),
        role,
        created_at: T0,
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

#[macro_export]
macro_rules! users_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            users,
            $make,
            [keeps_users_per_workspace_with_unique_emails,]
        );
    };
}
