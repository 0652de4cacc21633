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

pub mod account_data;
pub mod account_end;
pub mod audit_log;
pub mod control_store;
pub mod delivery_log;
pub mod delivery_log_erasure;
pub mod delivery_log_paging;
pub mod delivery_queue;
pub mod delivery_queue_erasure;
pub mod dsr_store;
pub mod event_lookup;
pub mod event_store;
pub mod event_store_erasure;
pub mod keyring;
pub mod last_admin;
pub mod mailer;
pub mod recent_events;
pub mod retention;
pub mod saml;
pub mod sessions;
pub mod stats;
pub mod users;

pub use delivery_log::delivery_record;
pub use delivery_queue::{queue_body, QueueHarness};
pub use dsr_store::dsr_request;
pub use users::user;

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
        browser: false,
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
            vendor_ids: None,
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
