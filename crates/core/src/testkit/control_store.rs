use super::*;

pub async fn creates_a_workspace_once_and_reads_it_back(s: &dyn ControlStore) {
    let ws = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    assert_eq!(s.workspace(&ws.id, T0).await.unwrap().as_ref(), Some(&ws));
    let again = s.create_workspace(&ws).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
    let missing = WorkspaceId::new(Region::Eu, &unique());
    assert!(s.workspace(&missing, T0).await.unwrap().is_none());
}

pub async fn updates_a_workspace(s: &dyn ControlStore) {
    let mut ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    ws.retention.event_days = 30;
    s.update_workspace(&ws).await.unwrap();
    assert_eq!(
        s.workspace(&ws.id, T0)
            .await
            .unwrap()
            .unwrap()
            .retention
            .event_days,
        30
    );
    let other = workspace(Region::Us);
    assert!(matches!(
        s.update_workspace(&other).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}

pub async fn keeps_a_workspaces_allowed_origins(s: &dyn ControlStore) {
    let mut ws = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    ws.security.allowed_origins = ["https://shop.example", "https://*.shop.example:8443", "*"]
        .iter()
        .map(|o| crate::cors::AllowedOrigin::parse(o).unwrap())
        .collect();
    s.update_workspace(&ws).await.unwrap();
    let stored = s.workspace(&ws.id, T0).await.unwrap().unwrap();
    assert_eq!(stored.security.allowed_origins, ws.security.allowed_origins);
    assert!(stored.security.allowed_origins[1].allows("https://www.shop.example:8443"));
}

pub async fn keeps_a_workspaces_bot_filter_on_by_default_and_off_when_turned_off(
    s: &dyn ControlStore,
) {
    let mut ws = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    let stored = s.workspace(&ws.id, T0).await.unwrap().unwrap();
    assert!(stored.security.bot_filter, "on by default");
    ws.security.bot_filter = false;
    s.update_workspace(&ws).await.unwrap();
    let stored = s.workspace(&ws.id, T0).await.unwrap().unwrap();
    assert!(!stored.security.bot_filter);
}

pub async fn stores_keys_by_id_and_lists_them_per_workspace(s: &dyn ControlStore) {
    let ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    let k1 = api_key(&ws.id, KeyKind::Ingest);
    let k2 = api_key(&ws.id, KeyKind::Pat);
    s.create_api_key(&k1).await.unwrap();
    s.create_api_key(&k2).await.unwrap();
    assert!(matches!(
        s.create_api_key(&k1).await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    assert_eq!(s.api_key(&k1.id, T0).await.unwrap().as_ref(), Some(&k1));
    let listed: Vec<KeyId> = s
        .api_keys(&ws.id, T0)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&k1.id) && listed.contains(&k2.id));
    let mut revoked = k1.clone();
    revoked.revoked_at = Some(T0);
    s.update_api_key(&revoked).await.unwrap();
    assert_eq!(
        s.api_key(&k1.id, T0).await.unwrap().unwrap().revoked_at,
        Some(T0)
    );
}

pub async fn moves_a_keys_last_use_only_forward(s: &dyn ControlStore) {
    let ws = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    let k = api_key(&ws.id, KeyKind::Ingest);
    s.create_api_key(&k).await.unwrap();
    let later = T0 + time::Duration::minutes(2);
    let last_used = |k: ApiKeyRecord| k.last_used_at;

    s.touch_api_key(&ws.id, &k.id, T0).await.unwrap();
    assert_eq!(
        last_used(s.api_key(&k.id, T0).await.unwrap().unwrap()),
        Some(T0)
    );
    s.touch_api_key(&ws.id, &k.id, later).await.unwrap();
    s.touch_api_key(&ws.id, &k.id, T0).await.unwrap();
    assert_eq!(
        last_used(s.api_key(&k.id, T0).await.unwrap().unwrap()),
        Some(later),
        "an earlier time never moves it back"
    );
    let listed = s.api_keys(&ws.id, T0).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(later));
    // A rewrite from a record read before the last use does not move it back.
    let mut revoked = k.clone();
    revoked.revoked_at = Some(later);
    s.update_api_key(&revoked).await.unwrap();
    let back = s.api_key(&k.id, T0).await.unwrap().unwrap();
    assert_eq!(
        (back.revoked_at, back.last_used_at),
        (Some(later), Some(later))
    );

    let gone = api_key(&ws.id, KeyKind::Pat);
    s.touch_api_key(&ws.id, &gone.id, T0).await.unwrap();
    assert!(
        s.api_key(&gone.id, T0).await.unwrap().is_none(),
        "no record is made"
    );
}

pub async fn keeps_destinations_in_creation_order_and_per_workspace(s: &dyn ControlStore) {
    let a = workspace(Region::Us);
    let b = workspace(Region::Us);
    s.create_workspace(&a).await.unwrap();
    s.create_workspace(&b).await.unwrap();
    let d1 = destination(&a.id, DestinationKind::MetaCapi, T0);
    let d2 = destination(&a.id, DestinationKind::Ga4, T0 + time::Duration::seconds(1));
    s.put_destination(&d2).await.unwrap();
    s.put_destination(&d1).await.unwrap();
    let ids: Vec<_> = s
        .destinations(&a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![d1.id.clone(), d2.id.clone()]);
    assert!(s.destinations(&b.id).await.unwrap().is_empty());
    assert!(s.destination(&b.id, &d1.id).await.unwrap().is_none());
}

pub async fn replaces_and_deletes_destinations(s: &dyn ControlStore) {
    let ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    let mut d = destination(&ws.id, DestinationKind::Webhook, T0);
    s.put_destination(&d).await.unwrap();
    d.paused = true;
    s.put_destination(&d).await.unwrap();
    assert!(s.destination(&ws.id, &d.id).await.unwrap().unwrap().paused);
    assert_eq!(s.destinations(&ws.id).await.unwrap().len(), 1);
    s.delete_destination(&ws.id, &d.id).await.unwrap();
    assert!(s.destination(&ws.id, &d.id).await.unwrap().is_none());
    assert!(matches!(
        s.delete_destination(&ws.id, &d.id).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}
