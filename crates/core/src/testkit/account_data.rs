//! Account data after its end (whitepaper §02: life of account plus 90 days), with the time
//! injected: every read takes `now`.

use super::*;
use crate::admin::close_account;
use crate::keys::KeyRefusal;

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// The ids of the key records of `ws` that reads return at `now`.
async fn key_ids(s: &dyn ControlStore, ws: &WorkspaceId, now: OffsetDateTime) -> Vec<KeyId> {
    let keys = s.api_keys(ws, now).await.unwrap();
    keys.into_iter().map(|k| k.id).collect()
}

/// Whether the list of workspaces at `now` has `ws`.
async fn listed(s: &dyn ControlStore, ws: &WorkspaceId, now: OffsetDateTime) -> bool {
    let all = s.workspaces(now).await.unwrap();
    all.iter().any(|w| &w.id == ws)
}

pub async fn a_key_record_is_gone_from_reads_90_days_after_the_key_ended(s: &dyn ControlStore) {
    let ws = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    let mut revoked = api_key(&ws.id, KeyKind::Svc);
    revoked.revoked_at = Some(T0 + days(1));
    let expiring = api_key(&ws.id, KeyKind::Ingest);
    assert_eq!(expiring.expires_at, T0 + days(90));
    s.create_api_key(&revoked).await.unwrap();
    s.create_api_key(&expiring).await.unwrap();
    let day90 = T0 + days(90);
    assert!(s.api_key(&revoked.id, day90).await.unwrap().is_some());
    assert_eq!(s.api_keys(&ws.id, day90).await.unwrap().len(), 2);
    let day92 = T0 + days(92);
    assert!(
        s.api_key(&revoked.id, day92).await.unwrap().is_none(),
        "revoked on day 1: gone after day 91"
    );
    let left = key_ids(s, &ws.id, day92).await;
    assert_eq!(left, vec![expiring.id.clone()]);
    assert!(s
        .api_key(&expiring.id, T0 + days(179))
        .await
        .unwrap()
        .is_some());
    assert!(
        s.api_key(&expiring.id, T0 + days(181))
            .await
            .unwrap()
            .is_none(),
        "expired on day 90: gone after day 180"
    );
    assert!(s.api_keys(&ws.id, T0 + days(181)).await.unwrap().is_empty());
}

/// A workspace with users, keys (one revoked before) and destinations, and another one
/// beside it, as the closure case finds them.
struct ClosingAccount {
    ws: Workspace,
    other: Workspace,
    ann: User,
    bob: User,
    ingest: ApiKeyRecord,
    own: ApiKeyRecord,
    ended: ApiKeyRecord,
    others_key: ApiKeyRecord,
    meta: Destination,
}

async fn closing_account(s: &dyn ControlStore) -> ClosingAccount {
    let ws = workspace(Region::Eu);
    let other = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    s.create_workspace(&other).await.unwrap();
    let ann = user(&ws.id, "ann@example.com", Role::Admin);
    let bob = user(&ws.id, "bob@example.com", Role::Viewer);
    let others_ann = user(&other.id, "ann@example.com", Role::Admin);
    for u in [&ann, &bob, &others_ann] {
        s.create_user(u).await.unwrap();
    }
    let ingest = api_key(&ws.id, KeyKind::Ingest);
    let own = api_key(&ws.id, KeyKind::Pat);
    let mut ended = api_key(&ws.id, KeyKind::Svc);
    ended.revoked_at = Some(T0);
    let others_key = api_key(&other.id, KeyKind::Ingest);
    for k in [&ingest, &own, &ended, &others_key] {
        s.create_api_key(k).await.unwrap();
    }
    let meta = destination(&ws.id, DestinationKind::MetaCapi, T0);
    let hook = destination(&ws.id, DestinationKind::Webhook, T0);
    let others_dest = destination(&other.id, DestinationKind::Ga4, T0);
    for d in [&meta, &hook, &others_dest] {
        s.put_destination(d).await.unwrap();
    }
    ClosingAccount {
        ws,
        other,
        ann,
        bob,
        ingest,
        own,
        ended,
        others_key,
        meta,
    }
}

pub async fn closing_revokes_keys_deletes_destinations_and_keeps_the_rest_90_days(
    s: &dyn ControlStore,
) {
    // Arrange: a workspace with users, keys and destinations, and another one beside it.
    let a = closing_account(s).await;

    // Act: closed on day 10, the caller holding `own`.
    let closed_at = T0 + days(10);
    let closure = close_account(s, &a.ws, closed_at, Some(&a.own.id))
        .await
        .unwrap();

    // Assert: keys stop and secrets go at once.
    assert_eq!(closure.closed_at, closed_at);
    assert_eq!(closure.account_data_deleted_after, closed_at + days(90));
    assert_eq!((closure.keys_revoked, closure.destinations_deleted), (2, 2));
    for k in [&a.ingest, &a.own] {
        let stored = s.api_key(&k.id, closed_at).await.unwrap().unwrap();
        assert_eq!(stored.revoked_at, Some(closed_at), "{:?}", k.kind);
        assert_eq!(stored.refusal(closed_at), Some(KeyRefusal::Revoked));
    }
    let ended = s.api_key(&a.ended.id, closed_at).await.unwrap().unwrap();
    assert_eq!(
        ended.revoked_at,
        Some(T0),
        "a key revoked before keeps its revocation"
    );
    assert!(s.destinations(&a.ws.id).await.unwrap().is_empty());
    assert!(s.destination(&a.ws.id, &a.meta.id).await.unwrap().is_none());
    assert_eq!(s.destinations(&a.other.id).await.unwrap().len(), 1);

    // 89 days after closure: the account data is all there, closed.
    let day89 = closed_at + days(89);
    let stored = s.workspace(&a.ws.id, day89).await.unwrap().unwrap();
    assert_eq!(stored.closed_at, Some(closed_at));
    assert!(listed(s, &a.ws.id, day89).await);
    assert_eq!(s.users(&a.ws.id, day89).await.unwrap().len(), 2);
    assert_eq!(
        s.user(&a.ws.id, &a.bob.id, day89)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Viewer
    );
    let keys = key_ids(s, &a.ws.id, day89).await;
    assert!(
        keys.contains(&a.ingest.id) && keys.contains(&a.own.id),
        "{keys:?}"
    );
    assert!(
        !keys.contains(&a.ended.id),
        "a key that ended before the closure is gone 90 days after its own end"
    );

    // 91 days after closure: no read returns any of it.
    let day91 = closed_at + days(91);
    assert!(s.workspace(&a.ws.id, day91).await.unwrap().is_none());
    assert!(!listed(s, &a.ws.id, day91).await);
    assert!(s.users(&a.ws.id, day91).await.unwrap().is_empty());
    assert!(s.user(&a.ws.id, &a.ann.id, day91).await.unwrap().is_none());
    assert!(s.api_keys(&a.ws.id, day91).await.unwrap().is_empty());
    for k in [&a.ingest, &a.own, &a.ended] {
        assert!(s.api_key(&k.id, day91).await.unwrap().is_none());
    }

    // The other workspace keeps everything.
    assert!(s.workspace(&a.other.id, day91).await.unwrap().is_some());
    assert_eq!(s.users(&a.other.id, day91).await.unwrap().len(), 1);
    assert!(s.api_key(&a.others_key.id, day91).await.unwrap().is_some());
    assert!(listed(s, &a.other.id, day91).await);

    // Closing twice is a conflict, in the use case and in the store.
    let again = close_account(s, &stored, day89, None).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
    let again = s.close_workspace(&stored).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
}

pub async fn the_store_stamps_key_records_that_would_outlive_a_closed_account(
    s: &dyn ControlStore,
) {
    let mut ws = workspace(Region::Us);
    s.create_workspace(&ws).await.unwrap();
    let ann = user(&ws.id, "ann@example.com", Role::Admin);
    s.create_user(&ann).await.unwrap();
    // Not revoked: on its own its record would be kept until day 180.
    let key = api_key(&ws.id, KeyKind::Ingest);
    s.create_api_key(&key).await.unwrap();
    ws.closed_at = Some(T0);
    s.close_workspace(&ws).await.unwrap();
    let day89 = T0 + days(89);
    let stored = s.api_key(&key.id, day89).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, None, "the store does not revoke keys");
    assert!(s.user(&ws.id, &ann.id, day89).await.unwrap().is_some());
    let day91 = T0 + days(91);
    assert!(s.api_key(&key.id, day91).await.unwrap().is_none());
    assert!(s.user(&ws.id, &ann.id, day91).await.unwrap().is_none());
    assert!(s.workspace(&ws.id, day91).await.unwrap().is_none());

    let mut missing = workspace(Region::Us);
    missing.closed_at = Some(T0);
    let err = s.close_workspace(&missing).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    let open = workspace(Region::Us);
    s.create_workspace(&open).await.unwrap();
    assert!(
        s.close_workspace(&open).await.is_err(),
        "closing needs closed_at"
    );
    let still_open = s.workspace(&open.id, day91).await.unwrap().unwrap();
    assert_eq!(still_open.closed_at, None);
}

pub async fn writes_after_the_closure_neither_reopen_nor_extend_it(s: &dyn ControlStore) {
    let ws = workspace(Region::Eu);
    s.create_workspace(&ws).await.unwrap();
    let mut ann = user(&ws.id, "ann@example.com", Role::Admin);
    s.create_user(&ann).await.unwrap();
    let mut key = api_key(&ws.id, KeyKind::Svc);
    s.create_api_key(&key).await.unwrap();
    let mut closed = ws.clone();
    closed.closed_at = Some(T0);
    s.close_workspace(&closed).await.unwrap();

    // A change that read the workspace before its closure (a concurrent request).
    let mut stale = ws.clone();
    stale.name = "Renamed".into();
    let err = s.update_workspace(&stale).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Changes of the closed records keep their expiry.
    closed.name = "Renamed".into();
    s.update_workspace(&closed).await.unwrap();
    ann.role = Role::Viewer;
    s.update_user(&ann).await.unwrap();
    key.expiry_warnings_sent = vec![14];
    s.update_api_key(&key).await.unwrap();

    let day89 = T0 + days(89);
    let stored = s.workspace(&ws.id, day89).await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.closed_at),
        ("Renamed", Some(T0))
    );
    assert_eq!(
        s.user(&ws.id, &ann.id, day89).await.unwrap().unwrap().role,
        Role::Viewer
    );
    let stored_key = s.api_key(&key.id, day89).await.unwrap().unwrap();
    assert_eq!(stored_key.expiry_warnings_sent, vec![14]);
    let day91 = T0 + days(91);
    assert!(s.workspace(&ws.id, day91).await.unwrap().is_none());
    assert!(s.user(&ws.id, &ann.id, day91).await.unwrap().is_none());
    assert!(s.api_key(&key.id, day91).await.unwrap().is_none());
}
