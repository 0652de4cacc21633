//! The data-subject request use case on the embedded adapters: erasure across every store,
//! resumption after a crash, suppression at ingest, access exports and their expiry,
//! reminders. Time is a fixed clock; mails are captured.

use std::sync::{Arc, Mutex};

use super::MetaWorkspace;
use async_trait::async_trait;
use serde_json::{json, Value};
use time::Duration;
use tracklayer_core::admin::{AdminError, Principal};
use tracklayer_core::clock::{Clock, SystemIds};
use tracklayer_core::control_plane::Control;
use tracklayer_core::destination::{DestinationId, DestinationKind};
use tracklayer_core::dsr::service::{
    DsrConfig, DsrError, DsrPorts, DsrService, SubjectIdentifiers,
};
use tracklayer_core::dsr::{DsrId, DsrKind, DsrRequest, DsrStatus, ErasedRows, EventFootprint};
use tracklayer_core::error::StoreError;
use tracklayer_core::event::EventId;
use tracklayer_core::keys::Role;
use tracklayer_core::ports::EventInspection;
use tracklayer_core::ports::{
    DeliveryLog, DeliveryRecord, DeliveryStatus, DsrStore, EventEraser, Keyring, Page,
    QueueConsumer, SuppressionList,
};
use tracklayer_core::services::CommonPorts;
use tracklayer_core::testkit::egress::RecordingEgress;
use tracklayer_core::testkit::sessions::RecordingMailer;
use tracklayer_core::testkit::{self, T0};
use tracklayer_local::{SqliteAuditLog, SqliteEventStore};

/// The real event eraser (the one role the DSR service holds), except that `erase` fails while `crash` is set: a process that dies
/// in the middle of a page.
struct Crashing {
    inner: Arc<SqliteEventStore>,
    crash: Mutex<bool>,
}

#[async_trait]
impl EventEraser for Crashing {
    async fn sweep(&self, now: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.sweep(now).await
    }

    async fn subject_footprint(
        &self,
        ws: &tracklayer_core::workspace::WorkspaceId,
        subjects: &[String],
        page: Page,
        now: time::OffsetDateTime,
    ) -> Result<Vec<EventFootprint>, StoreError> {
        self.inner.subject_footprint(ws, subjects, page, now).await
    }

    async fn erase(
        &self,
        ws: &tracklayer_core::workspace::WorkspaceId,
        events: &[EventId],
    ) -> Result<ErasedRows, StoreError> {
        if *self.crash.lock().unwrap() {
            return Err(StoreError::transient(
                "erase",
                std::io::Error::other("the process died"),
            ));
        }
        self.inner.erase(ws, events).await
    }
}

/// The shared workspace, plus what only the DSR service uses.
struct World {
    base: MetaWorkspace,
    outbox: Arc<RecordingMailer>,
    /// The DSR service's account-data ports over the workspace's stores, built once.
    common: CommonPorts,
}

impl std::ops::Deref for World {
    type Target = MetaWorkspace;
    fn deref(&self) -> &MetaWorkspace {
        &self.base
    }
}

fn config() -> DsrConfig {
    DsrConfig {
        page_size: 2,
        max_pages_per_run: 1,
        requests_per_run: 10,
        suppression_propagation: Duration::seconds(10),
    }
}

impl World {
    async fn new() -> Self {
        let base = MetaWorkspace::new("DSR", "EAAtest").await;
        let outbox = Arc::new(RecordingMailer::default());
        let common = CommonPorts {
            control: base.control.clone(),
            keyring: base.keyring.clone(),
            audit: Arc::new(SqliteAuditLog::new(base.db.clone(), base.keyring.clone())),
            delivery_log: base.log.clone(),
            queue: base.queue.clone(),
            dsr: base.dsr.clone(),
            mailer: outbox.clone(),
            clock: base.clock.clone(),
            ids: Arc::new(SystemIds),
        };
        Self {
            outbox,
            common,
            base,
        }
    }

    fn service(&self, events: Arc<dyn EventEraser>) -> DsrService {
        self.service_with(events, config())
    }

    /// The service over `events` (the others: the world's), configured by `config`.
    fn service_with(&self, events: Arc<dyn EventEraser>, config: DsrConfig) -> DsrService {
        DsrService::new(
            DsrPorts {
                common: self.common.clone(),
                events,
                connectors: tracklayer_connectors::connector,
            },
            config,
        )
    }

    fn admin(&self) -> Principal {
        Principal::operator(&self.workspace.id)
    }

    /// An admin's request of `kind` about shopper `who`, submitted through `svc`.
    async fn submit(&self, svc: &DsrService, kind: DsrKind, who: &str) -> DsrRequest {
        svc.submit(&self.admin(), kind, &subject(who), None)
            .await
            .unwrap()
    }

    /// The sealed export parts of the request `id` kept now.
    async fn export_parts(&self, id: &DsrId) -> Vec<tracklayer_core::crypto::Sealed> {
        let now = self.clock.now();
        self.dsr
            .export_parts(&self.workspace.id, id, now)
            .await
            .unwrap()
    }

    /// The workspace's requests (up to 10), newest first.
    async fn requests(&self) -> Vec<DsrRequest> {
        self.dsr.requests(&self.workspace.id, 10).await.unwrap()
    }

    /// The request `id` as stored now.
    async fn request(&self, id: &DsrId) -> DsrRequest {
        self.dsr
            .request(&self.workspace.id, id)
            .await
            .unwrap()
            .expect("the request is stored")
    }

    /// Ingests `n` purchases of a shopper; returns the outcome as JSON.
    async fn ingest(&self, who: &str, n: usize) -> tracklayer_core::ingest::IngestOutcome {
        let batch: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "type": "track", "event": "Order Completed",
                    "messageId": format!("{who}-{i}-{}", self.clock.now().unix_timestamp()),
                    "userId": format!("user-{who}"),
                    "anonymousId": format!("anon-{who}"),
                    "properties": {"order_id": format!("{who}-{i}"), "revenue": 10, "currency": "EUR"},
                    "context": {"traits": {"email": format!("{who}.shopper@gmail.com"), "phone": "+1 415 555 0100"}}
                })
            })
            .collect();
        self.ingest_from_a_browser(&json!({"batch": batch})).await
    }

    /// The stored events of a shopper (by the order ids in their properties).
    async fn events_of(&self, who: &str) -> Vec<tracklayer_core::event::StoredEvent> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let all = self
                .events
                .subject_footprint(
                    &self.workspace.id,
                    &self.all_subjects().await,
                    Page { after, limit: 100 },
                    self.clock.now(),
                )
                .await
                .unwrap();
            if all.is_empty() {
                break;
            }
            after = all.last().map(|f| f.event.event_id);
            out.extend(all.into_iter().map(|f| f.event).filter(|e| {
                e.properties["order_id"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(&format!("{who}-")))
            }));
        }
        out
    }

    async fn all_subjects(&self) -> Vec<String> {
        // Every subject-index value in the store, read straight from a footprint of nothing
        // is impossible; the subjects of both shoppers are computed like a request does.
        let key = self
            .keyring
            .unwrap_data_key(
                &self.workspace.id,
                &self.workspace.key_ref,
                &self.workspace.data_key,
            )
            .await
            .unwrap();
        let keys = tracklayer_core::crypto::WorkspaceKeys::new(&key);
        let mut out = Vec::new();
        for who in ["a", "b"] {
            let s = subject(who).index(&keys).unwrap();
            out.extend(s.values);
        }
        out
    }

    /// Records that Meta accepted these events.
    async fn delivered(&self, events: &[tracklayer_core::event::StoredEvent]) {
        self.delivered_to(&self.destination, events).await;
    }

    /// Records that `destination` accepted these events.
    async fn delivered_to(
        &self,
        destination: &DestinationId,
        events: &[tracklayer_core::event::StoredEvent],
    ) {
        let now = self.clock.now();
        let records: Vec<DeliveryRecord> = events
            .iter()
            .map(|e| DeliveryRecord {
                workspace_id: self.workspace.id.clone(),
                destination_id: destination.clone(),
                event_id: e.event_id,
                message_id: Some(e.message_id.clone()),
                status: DeliveryStatus::Delivered,
                attempts: 1,
                next_attempt_at: None,
                last_http_status: Some(200),
                last_error: None,
                updated_at: now,
                expires_at: now + Duration::days(30),
            })
            .collect();
        self.log.record(&records).await.unwrap();
    }

    /// Adds a GA4 destination (before the first event, so ingest routes to it).
    async fn add_ga4(&self) -> DestinationId {
        let control = Control {
            store: self.control.as_ref(),
            keyring: self.keyring.as_ref(),
            clock: self.clock.as_ref(),
            ids: &SystemIds,
        };
        super::add_destination(
            &control,
            &self.workspace,
            "GA4",
            DestinationKind::Ga4,
            json!({"measurement_id": "G-TEST123"}),
            json!({"api_secret": "secret"}),
        )
        .await
    }
}

/// Runs the service `times` times, as its interval would.
async fn run(svc: &DsrService, times: usize) {
    for _ in 0..times {
        svc.run().await;
    }
}

fn subject(who: &str) -> SubjectIdentifiers {
    SubjectIdentifiers {
        // Another spelling of the same Gmail mailbox than the events carried.
        email: Some(format!(" {}.Shop.per@GoogleMail.com", who.to_uppercase())),
        external_id: Some(format!("user-{who}")),
        anonymous_id: Some(format!("anon-{who}")),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_erasure_resumes_after_a_crash_and_counts_every_row_once() {
    let w = World::new().await;
    assert_eq!(w.ingest("a", 5).await.accepted, 5);
    w.ingest("b", 3).await;
    let a_events = w.events_of("a").await;
    assert_eq!(a_events.len(), 5);
    w.delivered(&a_events).await;
    w.delivered(&w.events_of("b").await).await;

    let svc = w.service(w.events.clone());
    let request = svc
        .submit(
            &w.admin(),
            DsrKind::Erasure,
            &subject("a"),
            Some("TICKET-7".into()),
        )
        .await
        .unwrap();
    assert_eq!(request.status, DsrStatus::Pending);
    assert_eq!(request.due_at, T0 + Duration::days(30));

    // First run: suppress, then wait for ingest processes to see it.
    svc.run().await;
    let r = w.request(&request.id).await;
    assert_eq!(r.status, DsrStatus::Processing);
    assert_eq!(
        w.events_of("a").await.len(),
        5,
        "nothing deleted before the suppression propagated"
    );
    w.clock.advance(Duration::seconds(11));

    // One page (2 events), then a process that dies inside the second page.
    let report = svc.run().await;
    assert_eq!(report.pages, 1);
    assert_eq!(w.events_of("a").await.len(), 3);
    let crashing = Arc::new(Crashing {
        inner: w.events.clone(),
        crash: Mutex::new(true),
    });
    let report = w.service(crashing.clone()).run().await;
    assert_eq!(report.failed, 1);
    let r = w.request(&request.id).await;
    assert!(
        r.progress.page.is_some(),
        "the interrupted page is persisted"
    );

    // A new process finishes the job.
    let restarted = w.service(w.events.clone());
    for _ in 0..10 {
        restarted.run().await;
    }
    let r = w.request(&request.id).await;
    assert_eq!(r.status, DsrStatus::Completed);
    assert!(
        r.subjects.is_empty(),
        "the subject-index values are gone from the request"
    );
    let receipt = r.receipt.unwrap();
    assert_eq!(receipt.counts.events, 5);
    assert_eq!(receipt.counts.operational_records, 5);
    assert_eq!(receipt.counts.dedup_markers, 5);
    assert_eq!(receipt.counts.delivery_log_entries, 5);
    // email, phone, external id and anonymous id: four index entries per event.
    assert_eq!(receipt.counts.subject_index_entries, 20);
    assert_eq!(receipt.pages, 3);
    assert!(receipt.suppressed);
    let meta = &receipt.destinations[0];
    assert_eq!((meta.events_routed, meta.events_delivered), (5, 5));
    assert!(meta
        .customer_action
        .as_deref()
        .unwrap()
        .contains("Conversions API has no endpoint"));

    assert!(w.events_of("a").await.is_empty());
    assert_eq!(
        w.events_of("b").await.len(),
        3,
        "the other subject is untouched"
    );
    for e in &a_events {
        assert!(w
            .log
            .for_events(&w.workspace.id, &[e.event_id])
            .await
            .unwrap()
            .is_empty());
        assert!(w
            .events
            .operational(&w.workspace.id, &e.event_id, w.clock.now())
            .await
            .unwrap()
            .is_none());
    }
    let actions: Vec<String> = w
        .common
        .audit
        .list(
            &w.workspace.id,
            &tracklayer_core::audit::AuditFilter {
                limit: 100,
                ..Default::default()
            },
            w.clock.now(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"dsr.submit".to_owned()) && actions.contains(&"dsr.complete".to_owned()),
        "{actions:?}"
    );
    assert_eq!(
        w.outbox.subjects(),
        vec![format!("Data-subject request {} completed", request.id)]
    );
    let mail = w.outbox.sent()[0].clone();
    assert!(mail.to[0].starts_with("owner@"));
    assert!(!mail.text.contains("shopper"), "no identifier in the mail");
}

#[tokio::test]
async fn events_of_an_erased_subject_are_dropped_at_ingest_and_counted() {
    let w = World::new().await;
    w.ingest("a", 1).await;
    let svc = w.service(w.events.clone());
    w.submit(&svc, DsrKind::Erasure, "a").await;
    svc.run().await;
    // Ingest still holds the list it read before the suppression: at most `settings_ttl`.
    w.clock.advance(Duration::seconds(6));
    let later = w.ingest("a", 2).await;
    assert_eq!((later.accepted, later.suppressed), (2, 2));
    let other = w.ingest("b", 1).await;
    assert_eq!(other.suppressed, 0);
    let depth_before = w.queue.depth(DestinationKind::MetaCapi).await.unwrap();
    w.clock.advance(Duration::seconds(6));
    for _ in 0..10 {
        svc.run().await;
    }
    assert!(w.events_of("a").await.is_empty());
    w.ingest("a", 1).await;
    assert!(w.events_of("a").await.is_empty(), "never stored");
    assert_eq!(
        w.queue
            .depth(DestinationKind::MetaCapi)
            .await
            .unwrap()
            .visible,
        depth_before.visible - 1,
        "never queued (the erased event's queued item went with it)"
    );
    assert_eq!(w.events_of("b").await.len(), 1);
}

#[tokio::test]
async fn an_access_export_holds_the_subjects_events_and_expires_after_7_days() {
    let w = World::new().await;
    w.ingest("a", 3).await;
    w.ingest("b", 2).await;
    let a_events = w.events_of("a").await;
    let b_events = w.events_of("b").await;
    let svc = w.service(w.events.clone());
    let request = w.submit(&svc, DsrKind::Access, "a").await;
    assert!(matches!(
        svc.export(&w.admin(), request.id.as_str())
            .await
            .unwrap_err(),
        DsrError::NotReady("pending")
    ));
    run(&svc, 5).await;
    let export = svc.export(&w.admin(), request.id.as_str()).await.unwrap();
    let text = export.to_string();
    let listed = export["events"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for e in &a_events {
        assert!(text.contains(&e.event_id.to_string()));
        for hashes in e.hashed.values() {
            for h in hashes.values() {
                assert!(text.contains(h.as_str()), "hashed id listed");
            }
        }
    }
    for e in &b_events {
        assert!(
            !text.contains(&e.event_id.to_string()),
            "no other subject's event"
        );
    }
    assert!(!text.contains("shopper@"), "no raw identifier");
    assert_eq!(w.events_of("a").await.len(), 3, "access deletes nothing");
    let parts = w.export_parts(&request.id).await;
    assert_eq!(parts.len(), 2, "3 events in pages of 2");
    assert!(
        parts
            .iter()
            .all(|p| !String::from_utf8_lossy(&p.0).contains("evt_")),
        "stored sealed"
    );

    w.clock.advance(Duration::days(7));
    assert!(matches!(
        svc.export(&w.admin(), request.id.as_str())
            .await
            .unwrap_err(),
        DsrError::ExportExpired(_)
    ));
}

#[tokio::test]
async fn a_request_near_its_due_date_reminds_the_admins_once() {
    let w = World::new().await;
    let mut svc_config = config();
    svc_config.suppression_propagation = Duration::days(40);
    let svc = w.service_with(w.events.clone(), svc_config);
    let request = w.submit(&svc, DsrKind::Erasure, "a").await;
    svc.run().await;
    w.clock.advance(Duration::days(22));
    svc.run().await;
    assert!(w.outbox.subjects().is_empty());
    w.clock.advance(Duration::days(1));
    svc.run().await;
    svc.run().await;
    assert_eq!(
        w.outbox.subjects(),
        vec![format!("Data-subject request {} is due soon", request.id)]
    );
}

#[tokio::test]
async fn a_request_names_the_identifier_at_fault_and_only_admins_submit() {
    let w = World::new().await;
    let svc = w.service(w.events.clone());
    let field = |e: DsrError| match e {
        DsrError::Admin(AdminError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let cases = [
        (DsrKind::Erasure, SubjectIdentifiers::default(), "subject"),
        (
            DsrKind::Erasure,
            SubjectIdentifiers {
                phone: Some("12".into()),
                ..Default::default()
            },
            "subject.phone",
        ),
        (
            DsrKind::Access,
            SubjectIdentifiers {
                email: Some("not-an-email".into()),
                ..Default::default()
            },
            "subject.email",
        ),
    ];
    for (kind, identifiers, at_fault) in cases {
        let err = svc
            .submit(&w.admin(), kind, &identifiers, None)
            .await
            .unwrap_err();
        assert_eq!(field(err), at_fault);
    }
    let mut editor = w.admin();
    editor.role = Role::Editor;
    assert!(matches!(
        svc.submit(&editor, DsrKind::Erasure, &subject("a"), None)
            .await
            .unwrap_err(),
        DsrError::Admin(AdminError::Forbidden { .. })
    ));
    assert!(w.requests().await.is_empty());
}

#[tokio::test]
async fn an_erasure_deletes_an_earlier_access_export_of_the_same_subject() {
    let w = World::new().await;
    w.ingest("a", 1).await;
    let svc = w.service(w.events.clone());
    let access = w.submit(&svc, DsrKind::Access, "a").await;
    let other = w.submit(&svc, DsrKind::Access, "b").await;
    run(&svc, 5).await;
    assert!(svc.export(&w.admin(), access.id.as_str()).await.is_ok());
    let erasure = w.submit(&svc, DsrKind::Erasure, "a").await;
    svc.run().await;
    w.clock.advance(Duration::seconds(11));
    run(&svc, 5).await;
    let done = w.request(&erasure.id).await;
    assert_eq!(done.receipt.unwrap().counts.access_exports, 1);
    assert!(matches!(
        svc.export(&w.admin(), access.id.as_str())
            .await
            .unwrap_err(),
        DsrError::ExportErased(by) if by == erasure.id
    ));
    assert!(w.export_parts(&access.id).await.is_empty());
    assert!(
        svc.export(&w.admin(), other.id.as_str()).await.is_ok(),
        "another subject's export stays"
    );
}

#[tokio::test]
async fn an_access_export_lists_the_client_id_kept_for_ga4_of_the_subjects_events_only() {
    // Arrange: shopper a's and b's events routed to GA4.
    let w = World::new().await;
    w.add_ga4().await;
    w.ingest("a", 2).await;
    w.ingest("b", 1).await;
    let svc = w.service(w.events.clone());
    let request = w.submit(&svc, DsrKind::Access, "a").await;

    // Act
    run(&svc, 5).await;
    let export = svc.export(&w.admin(), request.id.as_str()).await.unwrap();

    // Assert: what TrackLayer keeps of a (the client id it sends GA4) is in a's export.
    let listed = export["events"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for e in listed {
        assert_eq!(e["ga4_client_id"], "anon-a", "{e}");
    }
    assert!(!export.to_string().contains("anon-b"));
}

/// Every text and blob value of every table of the database, as bytes.
async fn database_bytes(db: &tracklayer_local::Db) -> Vec<u8> {
    db.call("scan", |c| {
        let tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .unwrap();
        let mut out = Vec::new();
        for t in tables {
            let mut stmt = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..n {
                    match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                            out.extend_from_slice(b)
                        }
                        _ => {}
                    }
                    out.push(0);
                }
            }
        }
        Ok(out)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_ga4_erasure_receipt_lists_the_client_ids_sent_and_stores_them_sealed_only() {
    // Arrange: a GA4 destination beside Meta; both shoppers' events were delivered to both.
    let w = World::new().await;
    let ga4 = w.add_ga4().await;
    w.ingest("a", 3).await;
    w.ingest("b", 1).await;
    let (a, b) = (w.events_of("a").await, w.events_of("b").await);
    assert_eq!((a.len(), b.len()), (3, 1));
    for events in [&a, &b] {
        w.delivered(events).await;
        w.delivered_to(&ga4, events).await;
    }

    // Act: shopper a is erased (in two pages), then an admin reads the request.
    let svc = w.service(w.events.clone());
    let request = w.submit(&svc, DsrKind::Erasure, "a").await;
    w.clock.advance(Duration::seconds(11));
    run(&svc, 10).await;
    let read = svc
        .get(&w.admin(), request.id.as_str())
        .await
        .expect("an admin reads the request");

    // Assert: GA4's part names a's client id (its anonymous id, which GA4 got as client id)
    // and says where; never b's; Meta's part names none.
    assert_eq!(read.status, DsrStatus::Completed);
    let receipt = read.receipt.expect("a receipt");
    assert_eq!(receipt.pages, 2);
    let part = |id: &DestinationId| {
        receipt
            .destinations
            .iter()
            .find(|d| &d.destination_id == id)
            .expect("a part per destination")
    };
    assert_eq!(part(&ga4).client_ids.0, ["anon-a"]);
    let action = part(&ga4).customer_action.as_deref().unwrap();
    assert!(action.contains("User Deletion API"), "{action}");
    assert!(
        action.contains("listed in this receipt's client_ids"),
        "{action}"
    );
    assert!(part(&w.destination).client_ids.0.is_empty());
    assert_eq!(
        svc.list(&w.admin(), 10).await.unwrap()[0]
            .receipt
            .as_ref()
            .unwrap()
            .destinations,
        receipt.destinations,
        "the list shows what one request shows"
    );
    // ...while no table holds it in the clear (b's events, still stored, are sealed too),
    // nor the mail that went out.
    let bytes = database_bytes(&w.db).await;
    let stored = |s: &str| bytes.windows(s.len()).any(|x| x == s.as_bytes());
    assert!(
        stored("G-TEST123"),
        "the scan reads what is stored in the clear"
    );
    for id in ["anon-a", "anon-b"] {
        assert!(!stored(id), "{id} is stored in the clear");
    }
    assert!(receipt.client_ids.is_some(), "kept sealed with the receipt");
    let mails = w.outbox.sent();
    assert!(mails.iter().all(|m| !m.text.contains("anon-a")));
    // An operator of another role does not read requests at all.
    let viewer = Principal {
        role: Role::Viewer,
        ..w.admin()
    };
    assert!(svc.get(&viewer, request.id.as_str()).await.is_err());
}

/// SQS cannot edit a waiting message: an item queued before its subject's erasure is still in
/// the main queue when deliver receives it. Deliver must drop it: not sent, not logged.
#[tokio::test]
async fn an_item_queued_before_its_subjects_erasure_is_neither_sent_nor_logged() {
    use tracklayer_core::deliver::service::{DeliveryConfig, DeliveryPorts, DeliveryService};
    use tracklayer_core::services::ReadPorts;
    let w = World::new().await;
    w.ingest("a", 2).await;
    w.ingest("b", 1).await;
    let (a_events, b_events) = (w.events_of("a").await, w.events_of("b").await);
    let svc = w.service(w.events.clone());
    w.submit(&svc, DsrKind::Erasure, "a").await;
    // The first run suppresses; deletion (and the SQLite queue purge) waits for propagation.
    svc.run().await;
    w.clock.advance(Duration::seconds(6));

    let egress = Arc::new(RecordingEgress::answering(200, br#"{"events_received":1}"#));
    let delivery = Arc::new(DeliveryService::new(
        DeliveryPorts {
            read: ReadPorts {
                control: w.control.clone(),
                keyring: w.keyring.clone(),
                clock: w.clock.clone(),
                ids: Arc::new(SystemIds),
            },
            queue: w.queue.clone(),
            log: w.log.clone(),
            events: w.events.clone(),
            egress: egress.clone(),
            suppressions: w.dsr.clone(),
            connectors: tracklayer_connectors::connector,
            base_urls: tracklayer_connectors::default_base_url,
            stats: w.stats.clone(),
        },
        DeliveryConfig::default(),
    ));
    let msgs = w
        .queue
        .receive(
            DestinationKind::MetaCapi,
            10,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(msgs.len(), 2, "both requests' messages are still queued");
    testkit::deliver_and_settle(&delivery, DestinationKind::MetaCapi, &msgs).await;

    let sent: usize = egress
        .json_bodies()
        .iter()
        .map(|b| b["data"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(sent, 1, "only B's event reached Meta");
    let ids = |evs: &[tracklayer_core::event::StoredEvent]| -> Vec<EventId> {
        evs.iter().map(|e| e.event_id).collect()
    };
    assert!(w
        .log
        .for_events(&w.workspace.id, &ids(&a_events))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        w.log
            .for_events(&w.workspace.id, &ids(&b_events))
            .await
            .unwrap()
            .len(),
        1
    );
    let depth = w.queue.depth(DestinationKind::MetaCapi).await.unwrap();
    assert_eq!(
        (depth.visible, depth.in_flight, depth.dead),
        (0, 0, 0),
        "A's emptied message is done, not retried or dead-lettered"
    );
}

#[tokio::test]
async fn a_closed_workspaces_open_requests_still_complete_and_end_with_its_account_data() {
    // Arrange: an erasure and an access request received, then the workspace closed before
    // the worker got to them. The erasure runs as usual; the access request makes no export.
    let w = World::new().await;
    w.ingest("a", 3).await;
    w.ingest("b", 2).await;
    let svc = w.service(w.events.clone());
    let erasure = w.submit(&svc, DsrKind::Erasure, "a").await;
    let access = w.submit(&svc, DsrKind::Access, "b").await;
    let closed_at = w.clock.now();
    let closure = tracklayer_core::admin::close_account_with_dsr(
        w.control.as_ref(),
        w.dsr.as_ref(),
        &w.workspace,
        closed_at,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        closure.data_subject_records, 5,
        "the two requests and the erasure's suppression entries (written at submission)"
    );
    let err = svc
        .submit(&w.admin(), DsrKind::Erasure, &subject("b"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DsrError::Admin(AdminError::Conflict(_))),
        "a closed workspace takes no new request: {err:?}"
    );

    // Act: the worker runs as usual.
    for _ in 0..12 {
        let report = svc.run().await;
        assert_eq!(report.failed, 0, "{report:?}");
        w.clock.advance(Duration::seconds(11));
    }

    // Assert: both completed, the erasure deleted the subject's events, the admin still
    // stored got both mails.
    for id in [&erasure.id, &access.id] {
        let r = w.dsr.request(&w.workspace.id, id).await.unwrap().unwrap();
        assert_eq!(r.status, DsrStatus::Completed, "{id}");
    }
    assert!(w.events_of("a").await.is_empty());
    let erased = w.request(&erasure.id).await;
    let receipt = erased.receipt.unwrap();
    assert_eq!(receipt.counts.events, 3);
    assert_eq!(receipt.workspace_closed_at, Some(closed_at));
    // No export for an access request of a closed workspace: no key can download one.
    let answered = w.request(&access.id).await;
    let receipt = answered.receipt.unwrap();
    assert_eq!(receipt.workspace_closed_at, Some(closed_at));
    assert_eq!(receipt.export_expires_at, None);
    assert!(answered.export_tokens.is_empty());
    assert!(w.export_parts(&access.id).await.is_empty());
    let access_mail = w
        .outbox
        .sent()
        .into_iter()
        .find(|m| m.subject.contains(access.id.as_str()))
        .unwrap();
    assert!(
        access_mail.to[0].starts_with("owner@"),
        "the admin still stored"
    );
    assert!(
        access_mail.text.contains("no export was made"),
        "{}",
        access_mail.text
    );
    let mut mails = w.outbox.subjects();
    mails.sort();
    let mut want = vec![
        format!("Data-subject request {} completed", erasure.id),
        format!("Data-subject request {} completed", access.id),
    ];
    want.sort();
    assert_eq!(mails, want);
    // The erasure's suppression entries end with the account too.
    let suppressed = w.dsr.suppressed(&w.workspace.id).await.unwrap();
    assert_eq!(suppressed.len(), 3, "email, external id, anonymous id");
    let day89 = closed_at + Duration::days(89);
    w.dsr.sweep(day89).await.unwrap();
    assert_eq!(w.requests().await.len(), 2);
    assert_eq!(w.dsr.suppressed(&w.workspace.id).await.unwrap().len(), 3);
    let day91 = closed_at + Duration::days(91);
    assert!(w.dsr.sweep(day91).await.unwrap() >= 5);
    assert!(w.requests().await.is_empty());
    assert!(w.dsr.suppressed(&w.workspace.id).await.unwrap().is_empty());
    assert!(svc.run().await == Default::default(), "nothing left to do");
}
