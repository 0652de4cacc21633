use super::*;

/// Unwraps `wrapped` as a data key of `ws` under the platform key.
async fn unwrap_platform(
    k: &dyn Keyring,
    ws: &WorkspaceId,
    wrapped: &WrappedKey,
) -> Result<crate::crypto::DataKey, KeyError> {
    k.unwrap_data_key(ws, &KeyRef::Platform, wrapped).await
}

pub async fn unwraps_the_data_key_it_generated(k: &dyn Keyring) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let (plain, wrapped) = k.generate_data_key(&ws, &KeyRef::Platform).await.unwrap();
    let back = unwrap_platform(k, &ws, &wrapped).await.unwrap();
    assert_eq!(plain.expose(), back.expose());
    let (other, _) = k.generate_data_key(&ws, &KeyRef::Platform).await.unwrap();
    assert_ne!(plain.expose(), other.expose());
}

pub async fn refuses_a_data_key_wrapped_for_another_workspace(k: &dyn Keyring) {
    let a = WorkspaceId::new(Region::Eu, &unique());
    let b = WorkspaceId::new(Region::Eu, &unique());
    let (_, wrapped) = k.generate_data_key(&a, &KeyRef::Platform).await.unwrap();
    let err = unwrap_platform(k, &b, &wrapped).await.unwrap_err();
    assert!(matches!(err, KeyError::Invalid(_)), "{err:?}");
}

pub async fn wraps_an_existing_data_key_again_for_a_key_switch(k: &dyn Keyring) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let (plain, first) = k.generate_data_key(&ws, &KeyRef::Platform).await.unwrap();
    let again = k
        .wrap_data_key(&ws, &KeyRef::Platform, &plain)
        .await
        .unwrap();
    assert_ne!(first, again, "a fresh wrapping");
    let back = unwrap_platform(k, &ws, &again).await.unwrap();
    assert_eq!(back.expose(), plain.expose(), "of the same data key");
    let other = WorkspaceId::new(Region::Eu, &unique());
    assert!(matches!(
        unwrap_platform(k, &other, &again).await.unwrap_err(),
        KeyError::Invalid(_)
    ));
}

pub async fn fails_closed_when_a_customer_key_is_unavailable(k: &dyn Keyring) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let missing = KeyRef::Customer {
        key_arn: "arn:aws:kms:eu-central-1:111122223333:key/00000000-0000-0000-0000-000000000000"
            .into(),
    };
    let err = k.generate_data_key(&ws, &missing).await.unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
}
