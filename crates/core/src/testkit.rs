//! Port contract suites. Every adapter runs the same cases: the embedded adapters in
//! `tracklayer-local`, the AWS adapters against moto in `tracklayer-aws`.
//!
//! Each suite is a macro that expands to one `#[tokio::test]` per case, so an adapter cannot
//! forget a case and a failure names it: `event_store_contract!(async { make_store() });`

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditFilter, NewAuditEntry};
use crate::consent::{ConsentPolicy, Decision};
use crate::crypto::{Sealed, WrappedKey};
use crate::destination::{Destination, DestinationId, DestinationKind, EventFilter};
use crate::dsr::{DsrId, DsrKind, DsrRequest, DsrStatus, ErasedRows};
use crate::error::{KeyError, MailError, StoreError};
use crate::event::{DeliveryItem, ForwardedConsent, QueueBody};
use crate::event::{EventId, EventType, MessageId, OperationalRecord, Routing, StoredEvent};
use crate::identity::{Field, Profile};
use crate::keys::{ApiKeyRecord, KeyId, KeyKind, Role};
use crate::ports::AuditLog;
use crate::ports::{
    ControlStore, DeadLetter, DeliveryLog, DeliveryQueue, DeliveryRecord, DeliveryStatus, DsrStore,
    InspectableEventStore, Keyring, Mail, Mailer, NewEvent, Outgoing, ReplayFilter,
};
use crate::workspace::{KeyRef, Region, Retention, User, Workspace, WorkspaceId};

pub mod account_end;
pub mod delivery_log_paging;
pub mod event_lookup;
pub mod last_admin;
pub mod retention;

/// A fixed start time for contract cases.
pub const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

/// A unique suffix, so that cases sharing one backend (moto) do not collide.
pub fn unique() -> String {
    Uuid::now_v7().simple().to_string()
}

pub fn workspace(region: Region) -> Workspace {
    Workspace {
        id: WorkspaceId::new(region, &unique()),
        name: "Contract".into(),
        region,
        created_at: T0,
        retention: Retention::default(),
        consent: ConsentPolicy::default(),
        key_ref: KeyRef::Platform,
        data_key: WrappedKey(vec![1, 2, 3]),
        security: Default::default(),
        closed_at: None,
    }
}

pub fn destination(ws: &WorkspaceId, kind: DestinationKind, at: OffsetDateTime) -> Destination {
    Destination {
        id: DestinationId::new(&unique()),
        workspace_id: ws.clone(),
        name: format!("{kind} destination"),
        kind,
        config: json!({"pixel_id": "1"}),
        secrets: Sealed(vec![9; 40]),
        secret_hints: json!({}),
        consent_purposes: kind.default_purposes(),
        events: EventFilter::All,
        endpoint: None,
        paused: false,
        created_at: at,
        updated_at: at,
    }
}

pub fn api_key(ws: &WorkspaceId, kind: KeyKind) -> ApiKeyRecord {
    let u = unique();
    let id = u[u.len() - 16..].to_owned();
    ApiKeyRecord {
        id: KeyId::parse(&id).expect("key id"),
        workspace_id: ws.clone(),
        kind,
        role: (kind != KeyKind::Ingest).then_some(Role::Admin),
        user_id: None,
        name: "contract".into(),
        prefix: format!("tl_{}_us_{id}", kind.as_str()),
        verifier: "$2b$04$abcdefghijklmnopqrstuuVJZ3pZ2d2kG5Y1J4O1Yp3j4bSy8vW6".into(),
        created_at: T0,
        expires_at: T0 + time::Duration::days(90),
        revoked_at: None,
        last_used_at: None,
        expiry_warnings_sent: Vec::new(),
    }
}

/// An accepted event with subjects and an operational record.
pub fn new_event(
    ws: &WorkspaceId,
    message_id: &str,
    subjects: &[&str],
    at: OffsetDateTime,
) -> NewEvent {
    let event_id = EventId(Uuid::now_v7());
    let mut hashed = BTreeMap::new();
    hashed.insert(
        Profile::Meta,
        BTreeMap::from([(Field::Email, crate::identity::sha256_hex(message_id))]),
    );
    NewEvent {
        event: StoredEvent {
            workspace_id: ws.clone(),
            event_id,
            message_id: MessageId::parse(message_id).expect("message id"),
            event_type: EventType::Track,
            name: Some("Order Completed".into()),
            timestamp: at,
            received_at: at,
            expires_at: at + time::Duration::days(180),
            properties: json!({"value": 10, "currency": "EUR"}),
            traits: json!({}),
            hashed,
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            routing: vec![Routing {
                destination_id: DestinationId::new("contract"),
                kind: DestinationKind::MetaCapi,
                routed: true,
                consent: Decision {
                    allowed: true,
                    reason: "contract".into(),
                },
                skipped: None,
            }],
            invalid_identifiers: 0,
        },
        operational: Some(OperationalRecord {
            workspace_id: ws.clone(),
            event_id,
            sealed: Sealed(vec![7; 48]),
            expires_at: at + Retention::operational(),
        }),
        dedup_until: at + Retention::dedup(),
    }
}

// ---------------------------------------------------------------------------------------------
// ControlStore

pub mod control_store {
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
}

/// Account data after its end (whitepaper §02: life of account plus 90 days), with the time
/// injected: every read takes `now`.
pub mod account_data {
    use super::*;
    use crate::admin::close_account;
    use crate::keys::KeyRefusal;

    fn days(n: i64) -> time::Duration {
        time::Duration::days(n)
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
        let left: Vec<KeyId> = s
            .api_keys(&ws.id, day92)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
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

    pub async fn closing_revokes_keys_deletes_destinations_and_keeps_the_rest_90_days(
        s: &dyn ControlStore,
    ) {
        // Arrange: a workspace with users, keys and destinations, and another one beside it.
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

        // Act: closed on day 10, the caller holding `own`.
        let closed_at = T0 + days(10);
        let closure = close_account(s, &ws, closed_at, Some(&own.id))
            .await
            .unwrap();

        // Assert: keys stop and secrets go at once.
        assert_eq!(closure.closed_at, closed_at);
        assert_eq!(closure.account_data_deleted_after, closed_at + days(90));
        assert_eq!((closure.keys_revoked, closure.destinations_deleted), (2, 2));
        for k in [&ingest, &own] {
            let stored = s.api_key(&k.id, closed_at).await.unwrap().unwrap();
            assert_eq!(stored.revoked_at, Some(closed_at), "{:?}", k.kind);
            assert_eq!(stored.refusal(closed_at), Some(KeyRefusal::Revoked));
        }
        assert_eq!(
            s.api_key(&ended.id, closed_at)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(T0),
            "a key revoked before keeps its revocation"
        );
        assert!(s.destinations(&ws.id).await.unwrap().is_empty());
        assert!(s.destination(&ws.id, &meta.id).await.unwrap().is_none());
        assert_eq!(s.destinations(&other.id).await.unwrap().len(), 1);

        // 89 days after closure: the account data is all there, closed.
        let day89 = closed_at + days(89);
        let stored = s.workspace(&ws.id, day89).await.unwrap().unwrap();
        assert_eq!(stored.closed_at, Some(closed_at));
        assert!(s
            .workspaces(day89)
            .await
            .unwrap()
            .iter()
            .any(|w| w.id == ws.id));
        assert_eq!(s.users(&ws.id, day89).await.unwrap().len(), 2);
        assert_eq!(
            s.user(&ws.id, &bob.id, day89).await.unwrap().unwrap().role,
            Role::Viewer
        );
        let keys: Vec<KeyId> = s
            .api_keys(&ws.id, day89)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert!(
            keys.contains(&ingest.id) && keys.contains(&own.id),
            "{keys:?}"
        );
        assert!(
            !keys.contains(&ended.id),
            "a key that ended before the closure is gone 90 days after its own end"
        );

        // 91 days after closure: no read returns any of it.
        let day91 = closed_at + days(91);
        assert!(s.workspace(&ws.id, day91).await.unwrap().is_none());
        assert!(!s
            .workspaces(day91)
            .await
            .unwrap()
            .iter()
            .any(|w| w.id == ws.id));
        assert!(s.users(&ws.id, day91).await.unwrap().is_empty());
        assert!(s.user(&ws.id, &ann.id, day91).await.unwrap().is_none());
        assert!(s.api_keys(&ws.id, day91).await.unwrap().is_empty());
        for k in [&ingest, &own, &ended] {
            assert!(s.api_key(&k.id, day91).await.unwrap().is_none());
        }

        // The other workspace keeps everything.
        assert!(s.workspace(&other.id, day91).await.unwrap().is_some());
        assert_eq!(s.users(&other.id, day91).await.unwrap().len(), 1);
        assert!(s.api_key(&others_key.id, day91).await.unwrap().is_some());
        assert!(s
            .workspaces(day91)
            .await
            .unwrap()
            .iter()
            .any(|w| w.id == other.id));

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
        assert_eq!(
            s.workspace(&open.id, day91)
                .await
                .unwrap()
                .unwrap()
                .closed_at,
            None
        );
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
        assert_eq!(
            s.api_key(&key.id, day89)
                .await
                .unwrap()
                .unwrap()
                .expiry_warnings_sent,
            vec![14]
        );
        let day91 = T0 + days(91);
        assert!(s.workspace(&ws.id, day91).await.unwrap().is_none());
        assert!(s.user(&ws.id, &ann.id, day91).await.unwrap().is_none());
        assert!(s.api_key(&key.id, day91).await.unwrap().is_none());
    }
}

#[macro_export]
macro_rules! account_data_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            account_data,
            $make,
            [
                a_key_record_is_gone_from_reads_90_days_after_the_key_ended,
                closing_revokes_keys_deletes_destinations_and_keeps_the_rest_90_days,
                the_store_stamps_key_records_that_would_outlive_a_closed_account,
                writes_after_the_closure_neither_reopen_nor_extend_it,
            ]
        );
    };
}

pub fn user(ws: &WorkspaceId, email: &str, role: Role) -> User {
    User {
        id: format!("usr_{}", &unique()[16..]),
        workspace_id: ws.clone(),
        email: crate::email::Email::parse(email).expect("an email address"),
        role,
        created_at: T0,
    }
}

pub mod users {
    use super::*;

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

pub mod audit_log {
    use super::*;

    fn entry(ws: &WorkspaceId, actor: &str, action: &str) -> NewAuditEntry {
        NewAuditEntry {
            workspace_id: ws.clone(),
            actor: actor.into(),
            action: action.into(),
            target: "dst_1".into(),
            summary: json!({"name": "Meta"}),
        }
    }

    pub async fn appends_a_gapless_chain_that_verifies(l: &dyn AuditLog) {
        let ws = WorkspaceId::new(Region::Eu, &unique());
        for i in 0..5 {
            let e = l
                .append(
                    entry(&ws, "user:usr_1", "destination.update"),
                    T0 + time::Duration::seconds(i),
                )
                .await
                .unwrap();
            assert_eq!(e.seq, i as u64 + 2, "seq 1 is the genesis entry");
        }
        let all = l
            .list(
                &ws,
                &AuditFilter {
                    limit: 100,
                    ..Default::default()
                },
                T0,
            )
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6],
            "seq 1, the genesis entry, is not a mutation"
        );
        let stored = l.stored(&ws, 0, 100).await.unwrap();
        assert_eq!(stored[0].entry.action, crate::audit::GENESIS_ACTION);
        let v = crate::audit::verify(l, &ws).await.unwrap();
        assert!(v.valid, "{v:?}");
        assert!(v.keyed);
        assert_eq!(v.entries_checked, 6, "the genesis entry and five");
    }

    pub async fn concurrent_appends_never_share_a_sequence_number(l: &dyn AuditLog) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let mut seqs = Vec::new();
        let futures: Vec<_> = (0..20)
            .map(|_| l.append(entry(&ws, "svc:k", "api_key.create"), T0))
            .collect();
        for f in futures {
            seqs.push(f.await.unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (2..=21).collect::<Vec<_>>());
        let all = l
            .list(
                &ws,
                &AuditFilter {
                    limit: 100,
                    ..Default::default()
                },
                T0,
            )
            .await
            .unwrap();
        assert_eq!(all.len(), 20);
        let v = crate::audit::verify(l, &ws).await.unwrap();
        assert!(v.valid, "{v:?}");
    }

    async fn list(
        l: &dyn AuditLog,
        ws: &WorkspaceId,
        f: AuditFilter,
    ) -> Vec<crate::audit::AuditEntry> {
        l.list(ws, &f, T0).await.unwrap()
    }

    pub async fn lists_by_actor_action_time_and_page(l: &dyn AuditLog) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        l.append(entry(&ws, "user:a", "user.invite"), T0)
            .await
            .unwrap();
        l.append(
            entry(&ws, "user:b", "user.invite"),
            T0 + time::Duration::hours(1),
        )
        .await
        .unwrap();
        l.append(
            entry(&ws, "user:a", "api_key.revoke"),
            T0 + time::Duration::hours(2),
        )
        .await
        .unwrap();
        let actor_a = list(
            l,
            &ws,
            AuditFilter {
                actor: Some("user:a".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(actor_a.len(), 2);
        let invites = list(
            l,
            &ws,
            AuditFilter {
                action: Some("user.invite".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(invites.len(), 2);
        let late = list(
            l,
            &ws,
            AuditFilter {
                since: Some(T0 + time::Duration::minutes(30)),
                limit: 10,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(late.len(), 2);
        let page = list(
            l,
            &ws,
            AuditFilter {
                after: Some(1),
                limit: 1,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].seq, 2);
        let other = WorkspaceId::new(Region::Us, &unique());
        assert!(l
            .list(
                &other,
                &AuditFilter {
                    limit: 10,
                    ..Default::default()
                },
                T0
            )
            .await
            .unwrap()
            .is_empty());
    }

    /// Anchored at both ends: the head record follows every append, in the same write.
    pub async fn keeps_the_head_with_the_last_entry(l: &dyn AuditLog) {
        let ws = WorkspaceId::new(Region::Eu, &unique());
        assert!(l.head(&ws).await.unwrap().is_none());
        l.append(entry(&ws, "user:a", "user.invite"), T0)
            .await
            .unwrap();
        let last = l
            .append(entry(&ws, "user:a", "user.remove"), T0)
            .await
            .unwrap();
        let head = l.head(&ws).await.unwrap().unwrap();
        assert_eq!((head.seq, head.hash.as_str()), (3, last.hash.as_str()));
        assert_eq!(head.genesis_seq, 1);
        let stored = l.stored(&ws, 0, 10).await.unwrap();
        assert_eq!(stored.len(), 3);
        assert!(stored.iter().all(|s| s.index_mismatch.is_none()));
        assert_eq!(l.stored(&ws, 2, 10).await.unwrap()[0].entry.seq, 3);
    }

    /// Retention removes nothing younger than a year, whatever the store's expiry says, and
    /// leaves a chain that verifies from its checkpoint.
    pub async fn retires_only_entries_older_than_a_year(l: &dyn AuditLog) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        l.append(entry(&ws, "user:a", "user.invite"), T0)
            .await
            .unwrap();
        l.append(
            entry(&ws, "user:a", "user.remove"),
            T0 + time::Duration::days(100),
        )
        .await
        .unwrap();
        let day300 = T0 + time::Duration::days(300);
        assert_eq!(l.retire(&ws, day300).await.unwrap(), 0);
        assert!(l.head(&ws).await.unwrap().unwrap().checkpoint.is_none());
        let day400 = T0 + time::Duration::days(400);
        assert_eq!(l.retire(&ws, day400).await.unwrap(), 2);
        assert_eq!(l.retire(&ws, day400).await.unwrap(), 0);
        let v = crate::audit::verify(l, &ws).await.unwrap();
        assert!(v.valid, "{v:?}");
        assert_eq!(v.entries_checked, 1);
    }
}

#[macro_export]
macro_rules! audit_log_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            audit_log,
            $make,
            [
                appends_a_gapless_chain_that_verifies,
                concurrent_appends_never_share_a_sequence_number,
                lists_by_actor_action_time_and_page,
                keeps_the_head_with_the_last_entry,
                retires_only_entries_older_than_a_year,
            ]
        );
    };
}

#[macro_export]
macro_rules! control_store_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            control_store,
            $make,
            [
                creates_a_workspace_once_and_reads_it_back,
                updates_a_workspace,
                stores_keys_by_id_and_lists_them_per_workspace,
                moves_a_keys_last_use_only_forward,
                keeps_destinations_in_creation_order_and_per_workspace,
                replaces_and_deletes_destinations,
            ]
        );
    };
}

// ---------------------------------------------------------------------------------------------
// EventStore

pub mod event_store {
    use super::*;

    pub async fn records_new_events_and_reads_them_back(s: &dyn InspectableEventStore) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let e = new_event(&ws, "m-1", &["subj-a"], T0);
        assert_eq!(
            s.record(std::slice::from_ref(&e), T0).await.unwrap(),
            vec![true]
        );
        let back = s.event(&ws, &e.event.event_id, T0).await.unwrap().unwrap();
        assert_eq!(back, e.event);
        let op = s
            .operational(&ws, &e.event.event_id, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Some(op), e.operational);
    }

    pub async fn reports_a_repeated_message_id_as_a_duplicate_within_24_hours(
        s: &dyn InspectableEventStore,
    ) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let first = new_event(&ws, "m-dup", &[], T0);
        s.record(&[first], T0).await.unwrap();
        let later = T0 + time::Duration::hours(23);
        let again = new_event(&ws, "m-dup", &[], later);
        let fresh = new_event(&ws, "m-new", &[], later);
        let out = s.record(&[again.clone(), fresh], later).await.unwrap();
        assert_eq!(out, vec![false, true]);
        assert!(s
            .event(&ws, &again.event.event_id, later)
            .await
            .unwrap()
            .is_none());
    }

    pub async fn accepts_a_message_id_again_after_the_dedup_window(s: &dyn InspectableEventStore) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        s.record(&[new_event(&ws, "m-old", &[], T0)], T0)
            .await
            .unwrap();
        let later = T0 + time::Duration::hours(25);
        let again = new_event(&ws, "m-old", &[], later);
        assert_eq!(s.record(&[again], later).await.unwrap(), vec![true]);
    }

    pub async fn keeps_workspaces_apart(s: &dyn InspectableEventStore) {
        let a = WorkspaceId::new(Region::Us, &unique());
        let b = WorkspaceId::new(Region::Us, &unique());
        let ea = new_event(&a, "same-id", &["subj"], T0);
        let eb = new_event(&b, "same-id", &["subj"], T0);
        assert_eq!(
            s.record(std::slice::from_ref(&ea), T0).await.unwrap(),
            vec![true]
        );
        assert_eq!(s.record(&[eb], T0).await.unwrap(), vec![true]);
        assert!(s.event(&b, &ea.event.event_id, T0).await.unwrap().is_none());
        let by_subject = s.events_by_subject(&a, "subj", None, 10, T0).await.unwrap();
        assert_eq!(by_subject.len(), 1);
        assert_eq!(by_subject[0].workspace_id, a);
    }

    pub async fn finds_a_subjects_events_in_pages(s: &dyn InspectableEventStore) {
        let ws = WorkspaceId::new(Region::Eu, &unique());
        let events: Vec<_> = (0..5)
            .map(|i| new_event(&ws, &format!("m-{i}"), &["subject-x"], T0))
            .collect();
        s.record(&events, T0).await.unwrap();
        s.record(&[new_event(&ws, "other", &["subject-y"], T0)], T0)
            .await
            .unwrap();
        let page1 = s
            .events_by_subject(&ws, "subject-x", None, 3, T0)
            .await
            .unwrap();
        assert_eq!(page1.len(), 3);
        let last = page1.last().map(|e| e.event_id);
        let page2 = s
            .events_by_subject(&ws, "subject-x", last.as_ref(), 3, T0)
            .await
            .unwrap();
        assert_eq!(page2.len(), 2);
        let mut all: Vec<_> = page1.iter().chain(&page2).map(|e| e.event_id).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 5);
    }

    pub async fn never_returns_expired_data(s: &dyn InspectableEventStore) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let e = new_event(&ws, "m-exp", &["subj-exp"], T0);
        s.record(std::slice::from_ref(&e), T0).await.unwrap();
        let id = e.event.event_id;
        let day31 = T0 + time::Duration::days(31);
        assert!(
            s.operational(&ws, &id, day31).await.unwrap().is_none(),
            "IP/UA live 30 days"
        );
        assert!(s.event(&ws, &id, day31).await.unwrap().is_some());
        let day181 = T0 + time::Duration::days(181);
        assert!(
            s.event(&ws, &id, day181).await.unwrap().is_none(),
            "events live 180 days"
        );
        assert!(s
            .events_by_subject(&ws, "subj-exp", None, 10, day181)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn forgets_events_and_their_dedup_markers(s: &dyn InspectableEventStore) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let e = new_event(&ws, "m-forget", &["subj-f"], T0);
        s.record(std::slice::from_ref(&e), T0).await.unwrap();
        s.forget(&ws, &[(e.event.event_id, e.event.message_id.clone())])
            .await
            .unwrap();
        assert!(s.event(&ws, &e.event.event_id, T0).await.unwrap().is_none());
        assert!(s
            .operational(&ws, &e.event.event_id, T0)
            .await
            .unwrap()
            .is_none());
        let retry = new_event(&ws, "m-forget", &[], T0);
        assert_eq!(s.record(&[retry], T0).await.unwrap(), vec![true]);
    }

    pub async fn sweeping_keeps_what_has_not_expired(s: &dyn InspectableEventStore) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let e = new_event(&ws, "m-sweep", &["subj-s"], T0);
        s.record(std::slice::from_ref(&e), T0).await.unwrap();
        let later = T0 + time::Duration::days(2);
        s.sweep(later).await.unwrap();
        assert!(s
            .event(&ws, &e.event.event_id, later)
            .await
            .unwrap()
            .is_some());
        assert!(s
            .operational(&ws, &e.event.event_id, later)
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            s.events_by_subject(&ws, "subj-s", None, 10, later)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

/// Erasure cases of the event store (data-subject requests).
pub mod event_store_erasure {
    use super::*;

    fn ids(events: &[crate::dsr::EventFootprint]) -> Vec<EventId> {
        events.iter().map(|f| f.event.event_id).collect()
    }

    pub async fn finds_a_subjects_footprint_across_identifiers_in_pages(
        s: &dyn InspectableEventStore,
    ) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let e1 = new_event(&ws, "fp-1", &["s1"], T0);
        let e2 = new_event(&ws, "fp-2", &["s1", "s2"], T0);
        let e3 = new_event(&ws, "fp-3", &["s2"], T0);
        let other = new_event(&ws, "fp-4", &["s3"], T0);
        s.record(&[e1.clone(), e2.clone(), e3.clone(), other], T0)
            .await
            .unwrap();
        let subjects = vec!["s1".to_owned(), "s2".to_owned()];
        let mut want = vec![e1.event.event_id, e2.event.event_id, e3.event.event_id];
        want.sort();
        let all = s.subject_footprint(&ws, &subjects, None, 10).await.unwrap();
        assert_eq!(ids(&all), want, "each event once, by event id");
        let both = all
            .iter()
            .find(|f| f.event.event_id == e2.event.event_id)
            .unwrap();
        assert_eq!(both.event, e2.event);
        assert_eq!(both.subject_index_entries, 2);
        assert!(both.operational);
        assert!(both.dedup_marker);
        let page1 = s.subject_footprint(&ws, &subjects, None, 2).await.unwrap();
        assert_eq!(ids(&page1), want[..2]);
        let page2 = s
            .subject_footprint(&ws, &subjects, Some(&want[1]), 2)
            .await
            .unwrap();
        assert_eq!(ids(&page2), want[2..]);
        let other_ws = WorkspaceId::new(Region::Us, &unique());
        assert!(s
            .subject_footprint(&other_ws, &subjects, None, 10)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn the_footprint_includes_expired_events(s: &dyn InspectableEventStore) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let long_ago = T0 - time::Duration::days(400);
        let old = new_event(&ws, "fp-old", &["s-old"], long_ago);
        s.record(std::slice::from_ref(&old), long_ago)
            .await
            .unwrap();
        let found = s
            .subject_footprint(&ws, &["s-old".to_owned()], None, 10)
            .await
            .unwrap();
        assert_eq!(ids(&found), vec![old.event.event_id]);
    }

    pub async fn erasing_deletes_events_with_their_index_entries_operational_records_and_dedup_markers(
        s: &dyn InspectableEventStore,
    ) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let gone = new_event(&ws, "er-1", &["s1", "s2"], T0);
        let kept = new_event(&ws, "er-2", &["s1"], T0);
        s.record(&[gone.clone(), kept.clone()], T0).await.unwrap();
        let id = gone.event.event_id;
        let rows = s.erase(&ws, &[id]).await.unwrap();
        assert_eq!(
            rows,
            ErasedRows {
                events: 1,
                subject_index_entries: 2,
                operational_records: 1,
                dedup_markers: 1,
            }
        );
        assert!(s.event(&ws, &id, T0).await.unwrap().is_none());
        assert!(s.operational(&ws, &id, T0).await.unwrap().is_none());
        assert!(s
            .events_by_subject(&ws, "s2", None, 10, T0)
            .await
            .unwrap()
            .is_empty());
        let left = s
            .subject_footprint(&ws, &["s1".to_owned(), "s2".to_owned()], None, 10)
            .await
            .unwrap();
        assert_eq!(ids(&left), vec![kept.event.event_id]);
        let again = new_event(&ws, "er-1", &[], T0);
        assert_eq!(
            s.record(&[again], T0).await.unwrap(),
            vec![true],
            "the dedup marker went too"
        );
        assert_eq!(
            s.erase(&ws, &[id]).await.unwrap(),
            ErasedRows::default(),
            "erasing again finds nothing"
        );
    }

    pub async fn erasing_leaves_other_workspaces_alone(s: &dyn InspectableEventStore) {
        let a = WorkspaceId::new(Region::Us, &unique());
        let b = WorkspaceId::new(Region::Us, &unique());
        let ea = new_event(&a, "same", &["s"], T0);
        s.record(std::slice::from_ref(&ea), T0).await.unwrap();
        assert_eq!(
            s.erase(&b, &[ea.event.event_id]).await.unwrap(),
            ErasedRows::default()
        );
        assert!(s.event(&a, &ea.event.event_id, T0).await.unwrap().is_some());
    }
}

#[macro_export]
macro_rules! event_store_erasure_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            event_store_erasure,
            $make,
            [
                finds_a_subjects_footprint_across_identifiers_in_pages,
                the_footprint_includes_expired_events,
                erasing_deletes_events_with_their_index_entries_operational_records_and_dedup_markers,
                erasing_leaves_other_workspaces_alone,
            ]
        );
    };
}

#[macro_export]
macro_rules! event_store_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            event_store,
            $make,
            [
                records_new_events_and_reads_them_back,
                reports_a_repeated_message_id_as_a_duplicate_within_24_hours,
                accepts_a_message_id_again_after_the_dedup_window,
                keeps_workspaces_apart,
                finds_a_subjects_events_in_pages,
                never_returns_expired_data,
                forgets_events_and_their_dedup_markers,
                sweeping_keeps_what_has_not_expired,
            ]
        );
    };
}

// ---------------------------------------------------------------------------------------------
// DeliveryQueue

/// A queue under test, with a way to let time pass (a fixed clock, or real sleeping).
#[async_trait]
pub trait QueueHarness: Send + Sync {
    fn queue(&self) -> &dyn DeliveryQueue;
    /// Lets `by` pass for the queue's visibility timeouts.
    async fn advance(&self, by: Duration);
    /// The queue's redrive limit.
    fn max_receive_count(&self) -> u32;
    /// The kind's dead letters, oldest first (the adapter's test-support read).
    async fn dead_letters(
        &self,
        kind: DestinationKind,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;
}

fn outgoing(kind: DestinationKind, dest: &DestinationId, ws: &WorkspaceId, body: &str) -> Outgoing {
    Outgoing {
        kind,
        destination_id: dest.clone(),
        workspace_id: ws.clone(),
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
    }
}

pub mod delivery_queue {
    use super::*;

    const VIS: Duration = Duration::from_secs(2);

    fn ids() -> (WorkspaceId, DestinationId) {
        (
            WorkspaceId::new(Region::Us, &unique()),
            DestinationId::new(&unique()),
        )
    }

    pub async fn hides_a_received_message_until_its_visibility_ends(h: &dyn QueueHarness) {
        let q = h.queue();
        let (ws, d) = ids();
        q.enqueue(&[outgoing(DestinationKind::MetaCapi, &d, &ws, "{\"n\":1}")])
            .await
            .unwrap();
        let got = q.receive(DestinationKind::MetaCapi, 10, VIS).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, b"{\"n\":1}");
        assert_eq!(got[0].receive_count, 1);
        assert_eq!(got[0].destination_id, d);
        assert_eq!(got[0].workspace_id, ws);
        assert!(q
            .receive(DestinationKind::MetaCapi, 10, VIS)
            .await
            .unwrap()
            .is_empty());
        h.advance(VIS + Duration::from_millis(500)).await;
        let again = q.receive(DestinationKind::MetaCapi, 10, VIS).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
        q.ack(DestinationKind::MetaCapi, &again[0].receipt)
            .await
            .unwrap();
    }

    pub async fn forgets_an_acknowledged_message(h: &dyn QueueHarness) {
        let q = h.queue();
        let (ws, d) = ids();
        q.enqueue(&[outgoing(DestinationKind::Ga4, &d, &ws, "a")])
            .await
            .unwrap();
        let got = q.receive(DestinationKind::Ga4, 10, VIS).await.unwrap();
        q.ack(DestinationKind::Ga4, &got[0].receipt).await.unwrap();
        q.ack(DestinationKind::Ga4, &got[0].receipt).await.unwrap();
        h.advance(VIS + Duration::from_millis(500)).await;
        assert!(q
            .receive(DestinationKind::Ga4, 10, VIS)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn makes_a_message_visible_again_after_retry_later(h: &dyn QueueHarness) {
        let q = h.queue();
        let (ws, d) = ids();
        q.enqueue(&[outgoing(DestinationKind::Tiktok, &d, &ws, "r")])
            .await
            .unwrap();
        let got = q
            .receive(DestinationKind::Tiktok, 10, Duration::from_secs(60))
            .await
            .unwrap();
        q.retry_later(
            DestinationKind::Tiktok,
            &got[0].receipt,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        h.advance(Duration::from_millis(1500)).await;
        let again = q.receive(DestinationKind::Tiktok, 10, VIS).await.unwrap();
        assert_eq!(again.len(), 1);
        q.ack(DestinationKind::Tiktok, &again[0].receipt)
            .await
            .unwrap();
    }

    pub async fn dead_letters_a_message_after_its_maximum_receives(h: &dyn QueueHarness) {
        let q = h.queue();
        let (ws, d) = ids();
        q.enqueue(&[outgoing(DestinationKind::Webhook, &d, &ws, "poison")])
            .await
            .unwrap();
        for _ in 0..h.max_receive_count() {
            let got = q.receive(DestinationKind::Webhook, 10, VIS).await.unwrap();
            assert_eq!(got.len(), 1);
            h.advance(VIS + Duration::from_millis(500)).await;
        }
        assert!(q
            .receive(DestinationKind::Webhook, 10, VIS)
            .await
            .unwrap()
            .is_empty());
        let dead = h.dead_letters(DestinationKind::Webhook, 100).await.unwrap();
        assert!(dead
            .iter()
            .any(|m| m.destination_id == d && m.body == b"poison"));
    }

    pub async fn replays_dead_letters_of_one_destination(h: &dyn QueueHarness) {
        let q = h.queue();
        let ws = WorkspaceId::new(Region::Us, &unique());
        let (d1, d2) = (DestinationId::new(&unique()), DestinationId::new(&unique()));
        let kind = DestinationKind::MetaCapi;
        q.enqueue(&[
            outgoing(kind, &d1, &ws, "one"),
            outgoing(kind, &d2, &ws, "two"),
        ])
        .await
        .unwrap();
        let got = q.receive(kind, 10, VIS).await.unwrap();
        let mine: Vec<_> = got.iter().filter(|m| m.workspace_id == ws).collect();
        assert_eq!(mine.len(), 2);
        for m in &mine {
            q.dead_letter(kind, m, "HTTP 400: bad pixel").await.unwrap();
        }
        let dead = h.dead_letters(kind, 1000).await.unwrap();
        assert!(dead
            .iter()
            .any(|m| m.destination_id == d1 && m.reason.contains("bad pixel")));
        let filter = ReplayFilter {
            destination_id: Some(d1.clone()),
            ..Default::default()
        };
        assert_eq!(q.replay(kind, &filter).await.unwrap(), 1);
        let back = q.receive(kind, 10, VIS).await.unwrap();
        let back: Vec<_> = back.into_iter().filter(|m| m.workspace_id == ws).collect();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].destination_id, d1);
        assert_eq!(back[0].body, b"one");
        q.ack(kind, &back[0].receipt).await.unwrap();
        let still_dead = h.dead_letters(kind, 1000).await.unwrap();
        assert!(still_dead.iter().any(|m| m.destination_id == d2));
    }

    pub async fn hides_a_delayed_message_until_its_delay_ends(h: &dyn QueueHarness) {
        let q = h.queue();
        let (ws, d) = ids();
        let mut m = outgoing(DestinationKind::Webhook, &d, &ws, "later");
        m.delay = Duration::from_secs(1);
        q.enqueue(&[m]).await.unwrap();
        let now = q.receive(DestinationKind::Webhook, 10, VIS).await.unwrap();
        assert!(now.iter().all(|r| r.workspace_id != ws));
        h.advance(Duration::from_millis(1500)).await;
        let later = q.receive(DestinationKind::Webhook, 10, VIS).await.unwrap();
        let mine: Vec<_> = later.iter().filter(|r| r.workspace_id == ws).collect();
        assert_eq!(mine.len(), 1);
        q.ack(DestinationKind::Webhook, &mine[0].receipt)
            .await
            .unwrap();
    }

    pub async fn puts_refused_parts_straight_into_the_dead_letters(h: &dyn QueueHarness) {
        let q = h.queue();
        let (ws, d) = ids();
        q.enqueue_dead(
            &[outgoing(DestinationKind::Ga4, &d, &ws, "refused")],
            "HTTP 400: invalid",
        )
        .await
        .unwrap();
        let live = q.receive(DestinationKind::Ga4, 10, VIS).await.unwrap();
        assert!(live.iter().all(|r| r.workspace_id != ws));
        let dead = h.dead_letters(DestinationKind::Ga4, 1000).await.unwrap();
        assert!(dead.iter().any(|m| m.destination_id == d
            && m.reason.contains("invalid")
            && m.body == b"refused"));
    }

    pub async fn keeps_each_kind_in_its_own_queue(h: &dyn QueueHarness) {
        let q = h.queue();
        let (ws, d) = ids();
        q.enqueue(&[outgoing(DestinationKind::Ga4, &d, &ws, "ga4-only")])
            .await
            .unwrap();
        let tiktok = q.receive(DestinationKind::Tiktok, 10, VIS).await.unwrap();
        assert!(tiktok.iter().all(|m| m.workspace_id != ws));
        let ga4 = q.receive(DestinationKind::Ga4, 10, VIS).await.unwrap();
        let mine: Vec<_> = ga4.iter().filter(|m| m.workspace_id == ws).collect();
        assert_eq!(mine.len(), 1);
        q.ack(DestinationKind::Ga4, &mine[0].receipt).await.unwrap();
    }
}

/// A queue message body with one item per event.
pub fn queue_body(ws: &WorkspaceId, dest: &DestinationId, events: &[EventId]) -> Vec<u8> {
    let body = QueueBody {
        v: QueueBody::VERSION,
        attempts: 0,
        workspace_id: ws.clone(),
        destination_id: dest.clone(),
        kind: DestinationKind::MetaCapi,
        items: events
            .iter()
            .map(|e| DeliveryItem {
                event_id: *e,
                message_id: MessageId::parse(&e.to_string()).expect("message id"),
                event_type: EventType::Track,
                name: Some("Purchase".into()),
                timestamp: T0,
                properties: json!({"value": 1}),
                user_data: BTreeMap::from([(
                    Field::Email,
                    crate::identity::sha256_hex(&e.to_string()),
                )]),
                consent: ForwardedConsent::default(),
                sealed: None,
                suppression: Vec::new(),
            })
            .collect(),
    };
    serde_json::to_vec(&body).expect("body")
}

/// Erasure cases of the delivery queue (data-subject requests).
pub mod delivery_queue_erasure {
    use super::*;

    fn events(body: &[u8]) -> Vec<EventId> {
        let b: QueueBody = serde_json::from_slice(body).unwrap();
        b.items.iter().map(|i| i.event_id).collect()
    }

    pub async fn purges_a_subjects_items_from_the_dead_letters(h: &dyn QueueHarness) {
        let q = h.queue();
        let ws = WorkspaceId::new(Region::Us, &unique());
        let dest = DestinationId::new(&unique());
        let (a1, a2, b) = (
            EventId(Uuid::now_v7()),
            EventId(Uuid::now_v7()),
            EventId(Uuid::now_v7()),
        );
        let mixed = Outgoing {
            kind: DestinationKind::MetaCapi,
            destination_id: dest.clone(),
            workspace_id: ws.clone(),
            body: queue_body(&ws, &dest, &[a1, b]),
            delay: Duration::ZERO,
        };
        let only_a = Outgoing {
            body: queue_body(&ws, &dest, &[a2]),
            ..mixed.clone()
        };
        q.enqueue_dead(&[mixed, only_a], "refused").await.unwrap();
        let removed = q
            .purge_events(DestinationKind::MetaCapi, &ws, &[a1, a2])
            .await
            .unwrap();
        assert_eq!(removed, 2);
        let dead: Vec<_> = h
            .dead_letters(DestinationKind::MetaCapi, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.workspace_id == ws)
            .collect();
        assert_eq!(dead.len(), 1, "the emptied message is gone");
        assert_eq!(events(&dead[0].body), vec![b]);
        assert_eq!(dead[0].destination_id, dest);
        assert_eq!(
            q.purge_events(DestinationKind::MetaCapi, &ws, &[a1, a2])
                .await
                .unwrap(),
            0
        );
    }
}

#[macro_export]
macro_rules! delivery_queue_erasure_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            delivery_queue_erasure,
            $make,
            [purges_a_subjects_items_from_the_dead_letters]
        );
    };
}

#[macro_export]
macro_rules! delivery_queue_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            delivery_queue,
            $make,
            [
                hides_a_received_message_until_its_visibility_ends,
                forgets_an_acknowledged_message,
                makes_a_message_visible_again_after_retry_later,
                dead_letters_a_message_after_its_maximum_receives,
                replays_dead_letters_of_one_destination,
                hides_a_delayed_message_until_its_delay_ends,
                puts_refused_parts_straight_into_the_dead_letters,
                keeps_each_kind_in_its_own_queue,
            ]
        );
    };
}

// ---------------------------------------------------------------------------------------------
// DeliveryLog

pub fn delivery_record(
    ws: &WorkspaceId,
    d: &DestinationId,
    e: EventId,
    status: DeliveryStatus,
    at: OffsetDateTime,
) -> DeliveryRecord {
    DeliveryRecord {
        workspace_id: ws.clone(),
        destination_id: d.clone(),
        event_id: e,
        message_id: Some(MessageId::parse(&format!("msg-{}", e.0.simple())).expect("a message id")),
        status,
        attempts: 1,
        next_attempt_at: None,
        last_http_status: Some(200),
        last_error: None,
        updated_at: at,
        expires_at: at + Retention::delivery_log(),
    }
}

pub mod delivery_log {
    use super::*;

    fn ids() -> (WorkspaceId, DestinationId, DestinationId) {
        (
            WorkspaceId::new(Region::Us, &unique()),
            DestinationId::new(&unique()),
            DestinationId::new(&unique()),
        )
    }

    pub async fn answers_which_events_were_delivered_to_a_destination(l: &dyn DeliveryLog) {
        let (ws, d1, d2) = ids();
        let (a, b, c) = (
            EventId(Uuid::now_v7()),
            EventId(Uuid::now_v7()),
            EventId(Uuid::now_v7()),
        );
        l.record(&[
            delivery_record(&ws, &d1, a, DeliveryStatus::Delivered, T0),
            delivery_record(&ws, &d1, b, DeliveryStatus::Retrying, T0),
        ])
        .await
        .unwrap();
        l.record(&[delivery_record(&ws, &d2, c, DeliveryStatus::Delivered, T0)])
            .await
            .unwrap();
        let got = l.delivered(&ws, &d1, &[a, b, c], T0).await.unwrap();
        assert_eq!(got, vec![a]);
    }

    pub async fn overwrites_a_record_with_its_latest_outcome(l: &dyn DeliveryLog) {
        let (ws, d1, _) = ids();
        let e = EventId(Uuid::now_v7());
        let mut r = delivery_record(&ws, &d1, e, DeliveryStatus::Retrying, T0);
        r.last_http_status = Some(503);
        l.record(std::slice::from_ref(&r)).await.unwrap();
        r.status = DeliveryStatus::Delivered;
        r.attempts = 2;
        r.last_http_status = Some(200);
        l.record(std::slice::from_ref(&r)).await.unwrap();
        let back = l.for_event(&ws, &e, T0).await.unwrap();
        assert_eq!(back, vec![r]);
    }

    pub async fn lists_an_events_records_across_destinations(l: &dyn DeliveryLog) {
        let (ws, d1, d2) = ids();
        let e = EventId(Uuid::now_v7());
        l.record(&[delivery_record(&ws, &d1, e, DeliveryStatus::Delivered, T0)])
            .await
            .unwrap();
        l.record(&[delivery_record(
            &ws,
            &d2,
            e,
            DeliveryStatus::Dropped("older than 7 days".into()),
            T0,
        )])
        .await
        .unwrap();
        let mut back = l.for_event(&ws, &e, T0).await.unwrap();
        back.sort_by(|a, b| a.destination_id.cmp(&b.destination_id));
        assert_eq!(back.len(), 2);
        let other_ws = WorkspaceId::new(Region::Us, &unique());
        assert!(l.for_event(&other_ws, &e, T0).await.unwrap().is_empty());
    }

    pub async fn lists_a_destinations_latest_records_first(l: &dyn DeliveryLog) {
        let (ws, d1, _) = ids();
        let older = delivery_record(&ws, &d1, EventId(Uuid::now_v7()), DeliveryStatus::Dead, T0);
        let newer = delivery_record(
            &ws,
            &d1,
            EventId(Uuid::now_v7()),
            DeliveryStatus::Delivered,
            T0 + time::Duration::minutes(1),
        );
        l.record(&[older.clone(), newer.clone()]).await.unwrap();
        let now = T0 + time::Duration::minutes(2);
        let back = l.for_destination(&ws, &d1, 10, now).await.unwrap();
        assert_eq!(back, vec![newer.clone(), older]);
        assert_eq!(
            l.for_destination(&ws, &d1, 1, now).await.unwrap(),
            vec![newer]
        );
    }

    pub async fn forgets_records_after_30_days(l: &dyn DeliveryLog) {
        let (ws, d1, _) = ids();
        let e = EventId(Uuid::now_v7());
        l.record(&[delivery_record(&ws, &d1, e, DeliveryStatus::Delivered, T0)])
            .await
            .unwrap();
        let day31 = T0 + time::Duration::days(31);
        assert!(l.for_event(&ws, &e, day31).await.unwrap().is_empty());
        assert!(l.delivered(&ws, &d1, &[e], day31).await.unwrap().is_empty());
        assert!(l
            .for_destination(&ws, &d1, 10, day31)
            .await
            .unwrap()
            .is_empty());
    }
}

/// Erasure cases of the delivery log (data-subject requests).
pub mod delivery_log_erasure {
    use super::*;

    pub async fn lists_and_erases_every_record_of_given_events(l: &dyn DeliveryLog) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let (d1, d2) = (DestinationId::new(&unique()), DestinationId::new(&unique()));
        let (a, b, c) = (
            EventId(Uuid::now_v7()),
            EventId(Uuid::now_v7()),
            EventId(Uuid::now_v7()),
        );
        let long_ago = T0 - time::Duration::days(60);
        l.record(&[
            delivery_record(&ws, &d1, a, DeliveryStatus::Delivered, T0),
            delivery_record(&ws, &d1, b, DeliveryStatus::Dead, long_ago),
            delivery_record(&ws, &d1, c, DeliveryStatus::Delivered, T0),
        ])
        .await
        .unwrap();
        l.record(&[delivery_record(&ws, &d2, a, DeliveryStatus::Delivered, T0)])
            .await
            .unwrap();
        let mut found = l.for_events(&ws, &[a, b]).await.unwrap();
        found.sort_by(|x, y| (x.event_id, &x.destination_id).cmp(&(y.event_id, &y.destination_id)));
        assert_eq!(found.len(), 3, "expired records too: {found:?}");
        assert!(found.iter().all(|r| r.event_id == a || r.event_id == b));
        let other_ws = WorkspaceId::new(Region::Us, &unique());
        assert_eq!(l.erase_events(&other_ws, &[a, b]).await.unwrap(), 0);
        assert_eq!(l.erase_events(&ws, &[a, b]).await.unwrap(), 3);
        assert!(l.for_events(&ws, &[a, b]).await.unwrap().is_empty());
        assert_eq!(l.for_event(&ws, &c, T0).await.unwrap().len(), 1);
        assert_eq!(l.erase_events(&ws, &[a, b]).await.unwrap(), 0);
    }
}

#[macro_export]
macro_rules! delivery_log_erasure_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            delivery_log_erasure,
            $make,
            [lists_and_erases_every_record_of_given_events]
        );
    };
}

#[macro_export]
macro_rules! delivery_log_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            delivery_log,
            $make,
            [
                answers_which_events_were_delivered_to_a_destination,
                overwrites_a_record_with_its_latest_outcome,
                lists_an_events_records_across_destinations,
                lists_a_destinations_latest_records_first,
                forgets_records_after_30_days,
            ]
        );
    };
}

// ---------------------------------------------------------------------------------------------
// DsrStore

/// A pending erasure request of `ws`, submitted at `at`.
pub fn dsr_request(ws: &WorkspaceId, kind: DsrKind, at: OffsetDateTime) -> DsrRequest {
    DsrRequest {
        id: DsrId::new(Uuid::now_v7()),
        workspace_id: ws.clone(),
        kind,
        status: DsrStatus::Pending,
        reference: Some("TICKET-1".into()),
        identifiers: vec!["email".into()],
        subjects: vec![crate::identity::sha256_hex(&unique())],
        submitted_by: "user:usr_contract".into(),
        submitted_at: at,
        due_at: at + time::Duration::days(DsrRequest::DUE_DAYS),
        updated_at: at,
        progress: Default::default(),
        receipt: None,
        reminder_sent: false,
        export_tokens: Vec::new(),
    }
}

pub mod dsr_store {
    use super::*;

    pub async fn creates_reads_and_updates_a_request(s: &dyn DsrStore) {
        let ws = WorkspaceId::new(Region::Eu, &unique());
        let mut r = dsr_request(&ws, DsrKind::Erasure, T0);
        s.create_request(&r).await.unwrap();
        assert!(matches!(
            s.create_request(&r).await.unwrap_err(),
            StoreError::Conflict(_)
        ));
        assert_eq!(s.request(&ws, &r.id).await.unwrap(), Some(r.clone()));
        let other_ws = WorkspaceId::new(Region::Eu, &unique());
        assert_eq!(s.request(&other_ws, &r.id).await.unwrap(), None);
        r.status = DsrStatus::Processing;
        r.progress.pages = 3;
        r.progress.cursor = Some(EventId(Uuid::now_v7()));
        r.updated_at = T0 + time::Duration::minutes(1);
        s.update_request(&r).await.unwrap();
        assert_eq!(s.request(&ws, &r.id).await.unwrap(), Some(r.clone()));
        let missing = dsr_request(&ws, DsrKind::Access, T0);
        assert!(matches!(
            s.update_request(&missing).await.unwrap_err(),
            StoreError::NotFound(_)
        ));
    }

    pub async fn lists_a_workspaces_requests_newest_first(s: &dyn DsrStore) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let older = dsr_request(&ws, DsrKind::Erasure, T0);
        let newer = dsr_request(&ws, DsrKind::Access, T0 + time::Duration::hours(1));
        s.create_request(&older).await.unwrap();
        s.create_request(&newer).await.unwrap();
        let other = dsr_request(
            &WorkspaceId::new(Region::Us, &unique()),
            DsrKind::Access,
            T0,
        );
        s.create_request(&other).await.unwrap();
        let listed: Vec<_> = s
            .requests(&ws, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, vec![newer.id.clone(), older.id.clone()]);
        assert_eq!(s.requests(&ws, 1).await.unwrap().len(), 1);
    }

    pub async fn lists_open_requests_of_every_workspace_until_they_complete(s: &dyn DsrStore) {
        let a = dsr_request(
            &WorkspaceId::new(Region::Us, &unique()),
            DsrKind::Erasure,
            T0,
        );
        let mut b = dsr_request(
            &WorkspaceId::new(Region::Us, &unique()),
            DsrKind::Access,
            T0,
        );
        s.create_request(&a).await.unwrap();
        s.create_request(&b).await.unwrap();
        let open: Vec<_> = s
            .open_requests(10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert!(open.contains(&a.id) && open.contains(&b.id), "{open:?}");
        b.status = DsrStatus::Completed;
        b.subjects.clear();
        s.update_request(&b).await.unwrap();
        let open: Vec<_> = s
            .open_requests(10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert!(open.contains(&a.id));
        assert!(!open.contains(&b.id));
    }

    pub async fn keeps_a_suppression_list_per_workspace(s: &dyn DsrStore) {
        let ws = WorkspaceId::new(Region::Us, &unique());
        let other = WorkspaceId::new(Region::Us, &unique());
        assert!(s.suppressed(&ws).await.unwrap().is_empty());
        let t1 = crate::identity::sha256_hex("t1");
        let t2 = crate::identity::sha256_hex("t2");
        s.suppress(&ws, std::slice::from_ref(&t1), T0)
            .await
            .unwrap();
        s.suppress(&ws, &[t1.clone(), t2.clone()], T0)
            .await
            .unwrap();
        let mut got = s.suppressed(&ws).await.unwrap();
        got.sort();
        let mut want = vec![t1, t2];
        want.sort();
        assert_eq!(got, want, "each token once");
        assert!(s.suppressed(&other).await.unwrap().is_empty());
    }

    pub async fn keeps_export_parts_in_order_until_they_expire(s: &dyn DsrStore) {
        let ws = WorkspaceId::new(Region::Eu, &unique());
        let r = dsr_request(&ws, DsrKind::Access, T0);
        let until = T0 + time::Duration::days(DsrRequest::EXPORT_DAYS);
        for part in [1u32, 0, 2] {
            s.put_export_part(&ws, &r.id, part, &Sealed(vec![part as u8; 40]), until)
                .await
                .unwrap();
        }
        s.put_export_part(&ws, &r.id, 1, &Sealed(vec![9; 40]), until)
            .await
            .unwrap();
        let parts = s.export_parts(&ws, &r.id, T0).await.unwrap();
        assert_eq!(
            parts,
            vec![
                Sealed(vec![0; 40]),
                Sealed(vec![9; 40]),
                Sealed(vec![2; 40])
            ]
        );
        let other = WorkspaceId::new(Region::Eu, &unique());
        assert!(s.export_parts(&other, &r.id, T0).await.unwrap().is_empty());
        assert!(s.export_parts(&ws, &r.id, until).await.unwrap().is_empty());
        let r2 = dsr_request(&ws, DsrKind::Access, T0);
        s.put_export_part(&ws, &r2.id, 0, &Sealed(vec![1; 40]), until)
            .await
            .unwrap();
        assert_eq!(s.delete_export(&ws, &r2.id).await.unwrap(), 1);
        assert!(s.export_parts(&ws, &r2.id, T0).await.unwrap().is_empty());
        // Backends with native TTL may leave expired parts to it; reads filter them anyway.
        s.sweep(until + time::Duration::seconds(1)).await.unwrap();
    }
}

#[macro_export]
macro_rules! dsr_store_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            dsr_store,
            $make,
            [
                creates_reads_and_updates_a_request,
                lists_a_workspaces_requests_newest_first,
                lists_open_requests_of_every_workspace_until_they_complete,
                keeps_a_suppression_list_per_workspace,
                keeps_export_parts_in_order_until_they_expire,
            ]
        );
    };
}

// ---------------------------------------------------------------------------------------------
// Keyring

pub mod keyring {
    use super::*;

    pub async fn unwraps_the_data_key_it_generated(k: &dyn Keyring) {
        let ws = WorkspaceId::new(Region::Eu, &unique());
        let (plain, wrapped) = k.generate_data_key(&ws, &KeyRef::Platform).await.unwrap();
        let back = k
            .unwrap_data_key(&ws, &KeyRef::Platform, &wrapped)
            .await
            .unwrap();
        assert_eq!(plain.expose(), back.expose());
        let (other, _) = k.generate_data_key(&ws, &KeyRef::Platform).await.unwrap();
        assert_ne!(plain.expose(), other.expose());
    }

    pub async fn refuses_a_data_key_wrapped_for_another_workspace(k: &dyn Keyring) {
        let a = WorkspaceId::new(Region::Eu, &unique());
        let b = WorkspaceId::new(Region::Eu, &unique());
        let (_, wrapped) = k.generate_data_key(&a, &KeyRef::Platform).await.unwrap();
        let err = k
            .unwrap_data_key(&b, &KeyRef::Platform, &wrapped)
            .await
            .unwrap_err();
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
        let back = k
            .unwrap_data_key(&ws, &KeyRef::Platform, &again)
            .await
            .unwrap();
        assert_eq!(back.expose(), plain.expose(), "of the same data key");
        let other = WorkspaceId::new(Region::Eu, &unique());
        assert!(matches!(
            k.unwrap_data_key(&other, &KeyRef::Platform, &again)
                .await
                .unwrap_err(),
            KeyError::Invalid(_)
        ));
    }

    pub async fn fails_closed_when_a_customer_key_is_unavailable(k: &dyn Keyring) {
        let ws = WorkspaceId::new(Region::Eu, &unique());
        let missing = KeyRef::Customer {
            key_arn:
                "arn:aws:kms:eu-central-1:111122223333:key/00000000-0000-0000-0000-000000000000"
                    .into(),
        };
        let err = k.generate_data_key(&ws, &missing).await.unwrap_err();
        assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    }
}

#[macro_export]
macro_rules! keyring_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            keyring,
            $make,
            [
                unwraps_the_data_key_it_generated,
                refuses_a_data_key_wrapped_for_another_workspace,
                wraps_an_existing_data_key_again_for_a_key_switch,
                fails_closed_when_a_customer_key_is_unavailable,
            ]
        );
    };
}

// ---------------------------------------------------------------------------------------------
// Mailer

pub mod mailer {
    use super::*;

    pub async fn sends_a_notification(m: &dyn Mailer) {
        let mail = Mail {
            to: vec!["admin@example.com".into()],
            subject: "Your data export is ready".into(),
            text: "Download it within 7 days.".into(),
        };
        m.send(&mail).await.unwrap();
    }

    pub async fn rejects_a_mail_without_recipients(m: &dyn Mailer) {
        let mail = Mail {
            to: vec![],
            subject: "nobody".into(),
            text: "".into(),
        };
        assert!(matches!(
            m.send(&mail).await.unwrap_err(),
            MailError::Rejected(_)
        ));
    }
}

#[macro_export]
macro_rules! mailer_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            mailer,
            $make,
            [sends_a_notification, rejects_a_mail_without_recipients,]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($suite:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $case() {
                let subject = $make.await;
                $crate::testkit::$suite::$case(&subject).await;
            }
        )*
    };
}
