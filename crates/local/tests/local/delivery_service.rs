//! The delivery use case on the embedded queue: a failure is never an acknowledgement. A
//! panicking send or delivery task retries its messages with a delivery-log entry saying
//! why; corrupt stored data (a queued item's sealed fields, a destination's secrets) is an
//! error with a reason, never a message sent with fields missing or a `null` secret. Time is
//! a fixed clock; the egress is scripted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{first_column, MetaWorkspace};
use async_trait::async_trait;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tracklayer_core::admin::{AdminError, AdminPorts, AdminService, DestinationPatch, Principal};
use tracklayer_core::clock::SystemIds;
use tracklayer_core::deliver::service::{run_worker, DeliveryConfig, DeliveryService, Disposition};
use tracklayer_core::deliver::{HttpRequest, HttpResponse};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{Body, EventId, RefBody};
use tracklayer_core::ports::{
    ControlStore, DeliveryLog, DeliveryPage, DeliveryQuery, DeliveryRecord, DeliveryStatus, Egress,
    EgressError, Keyring, LogOf, QueueConsumer, Received, UrlGuard,
};
use tracklayer_core::services::CommonPorts;
use tracklayer_core::testkit;
use tracklayer_core::workspace::{Region, WorkspaceId};
use tracklayer_local::{SqliteAuditLog, SqliteDeliveryLog, SqliteDsrStore, SqliteEventStore};

const META: DestinationKind = DestinationKind::MetaCapi;
const VISIBILITY: std::time::Duration = std::time::Duration::from_secs(30);

/// What the scripted destination does on each request, in order; then it answers 200.
enum Step {
    Panic,
    /// 503 Service Unavailable.
    Unavailable,
}

#[derive(Default)]
struct ScriptedEgress {
    script: Mutex<VecDeque<Step>>,
    delivered: Mutex<Vec<serde_json::Value>>,
}

impl ScriptedEgress {
    fn panicking_once() -> Self {
        Self {
            script: Mutex::new(VecDeque::from([Step::Panic])),
            ..Self::default()
        }
    }
    fn delivered(&self) -> Vec<serde_json::Value> {
        self.delivered.lock().unwrap().clone()
    }
}

#[async_trait]
impl Egress for ScriptedEgress {
    async fn post(&self, request: &HttpRequest) -> Result<HttpResponse, EgressError> {
        let step = self.script.lock().unwrap().pop_front();
        match step {
            Some(Step::Panic) => panic!("scripted egress panic"),
            Some(Step::Unavailable) => {
                return Ok(HttpResponse {
                    status: 503,
                    headers: Vec::new(),
                    body: b"{}".to_vec(),
                })
            }
            None => {}
        }
        self.delivered
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&request.body).unwrap());
        Ok(HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: br#"{"events_received":1}"#.to_vec(),
        })
    }
}

/// The real delivery log, except that its first `delivered` lookup panics: a delivery task
/// that dies before it sends anything.
struct PanicsOnce {
    inner: Arc<SqliteDeliveryLog>,
    armed: AtomicBool,
}

#[async_trait]
impl DeliveryLog for PanicsOnce {
    async fn record(&self, records: &[DeliveryRecord]) -> Result<(), StoreError> {
        self.inner.record(records).await
    }
    async fn delivered(
        &self,
        log: LogOf<'_>,
        events: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("scripted delivery-log panic");
        }
        self.inner.delivered(log, events, now).await
    }
    async fn for_event(
        &self,
        ws: &WorkspaceId,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.inner.for_event(ws, event, now).await
    }
    async fn page(
        &self,
        log: LogOf<'_>,
        query: &DeliveryQuery,
        now: OffsetDateTime,
    ) -> Result<DeliveryPage, StoreError> {
        self.inner.page(log, query, now).await
    }
    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.sweep(now).await
    }
    async fn for_events(
        &self,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.inner.for_events(ws, events).await
    }
    async fn erase_events(&self, ws: &WorkspaceId, events: &[EventId]) -> Result<u64, StoreError> {
        self.inner.erase_events(ws, events).await
    }
}

struct AllowAll;

#[async_trait]
impl UrlGuard for AllowAll {
    async fn check(&self, _url: &str) -> Result<(), EgressError> {
        Ok(())
    }
}

/// The shared workspace, plus the queued purchase's event.
struct World {
    base: MetaWorkspace,
    event: EventId,
}

impl std::ops::Deref for World {
    type Target = MetaWorkspace;
    fn deref(&self) -> &MetaWorkspace {
        &self.base
    }
}

impl World {
    /// A workspace with a Meta destination and one ingested purchase, queued for Meta.
    async fn new() -> Self {
        let base = MetaWorkspace::new("Delivery", "EAAdeliverytest").await;
        base.ingest_from_a_browser(&json!({"batch": [{
            "type": "track", "event": "Order Completed", "messageId": "order-1",
            "userId": "user-1",
            "properties": {"order_id": "o-1", "revenue": 10, "currency": "EUR"},
            "context": {"traits": {"email": "jane.doe@example.com"}}
        }]}))
        .await;
        let mut world = Self {
            base,
            event: EventId(uuid::Uuid::nil()),
        };
        world.event = world.queued_body().await.refs[0].event_id;
        world
    }

    fn service(&self, egress: Arc<dyn Egress>, log: Arc<dyn DeliveryLog>) -> Arc<DeliveryService> {
        let config = DeliveryConfig {
            backoff_base: std::time::Duration::from_secs(1),
            backoff_cap: std::time::Duration::from_secs(60),
            batch_window: std::time::Duration::from_millis(10),
            ..DeliveryConfig::default()
        };
        self.delivery(self.queue.clone(), egress, log, config)
    }

    fn admin(&self) -> AdminService {
        let db = &self.db;
        AdminService::new(
            AdminPorts {
                common: CommonPorts {
                    control: self.control.clone(),
                    keyring: self.keyring.clone(),
                    audit: Arc::new(SqliteAuditLog::new(db.clone(), self.keyring.clone())),
                    delivery_log: self.log.clone(),
                    queue: self.queue.clone(),
                    dsr: Arc::new(SqliteDsrStore::new(db.clone())),
                    mailer: Arc::new(
                        tracklayer_core::testkit::sessions::RecordingMailer::default(),
                    ),
                    clock: self.clock.clone(),
                    ids: Arc::new(SystemIds),
                },
                events: Arc::new(SqliteEventStore::new(db.clone())),
                url_guard: Arc::new(AllowAll),
                stats: self.stats.clone(),
                sessions: Arc::new(tracklayer_local::SqliteSessionStore::new(db.clone())),
            },
            Region::Us,
        )
    }

    /// The one queued message: by reference, the embedded queue's way.
    async fn queued_body(&self) -> RefBody {
        let bodies: Vec<Vec<u8>> = self
            .db
            .call("test", |c| Ok(first_column(c, "SELECT body FROM queue")))
            .await
            .unwrap();
        assert_eq!(bodies.len(), 1, "one queued message");
        match Body::decode(&bodies[0]).unwrap() {
            Body::Reference(body) => body,
            Body::Value(_) => panic!("the embedded queue holds items by reference"),
        }
    }

    /// Receives, delivers and settles what is visible; returns the dispositions.
    async fn deliver_once(&self, service: &Arc<DeliveryService>) -> Vec<Disposition> {
        let msgs: Vec<Received> = self.queue.receive(META, 10, VISIBILITY).await.unwrap();
        testkit::deliver_and_settle(service, META, &msgs).await
    }

    async fn record(&self) -> DeliveryRecord {
        let records = self
            .log
            .for_events(&self.workspace.id, &[self.event])
            .await
            .unwrap();
        assert_eq!(records.len(), 1, "one record for the event: {records:?}");
        records.into_iter().next().unwrap()
    }

    /// The one record of the event, asserted to have `status` and a logged reason naming
    /// `reason`.
    async fn record_with(&self, status: DeliveryStatus, reason: &str) -> DeliveryRecord {
        let record = self.record().await;
        assert_eq!(record.status, status);
        let logged = record.last_error.as_deref().unwrap_or_default();
        assert!(logged.contains(reason), "{record:?}");
        record
    }

    /// Moves the clock past the first retry's delay and delivers what is visible again.
    async fn deliver_the_retry(&self, service: &Arc<DeliveryService>) -> Vec<Disposition> {
        self.clock.advance(Duration::minutes(5));
        self.deliver_once(service).await
    }

    /// When a retry decided now, `delay` from now, is due.
    fn due_after(&self, delay: std::time::Duration) -> Option<OffsetDateTime> {
        Some(tracklayer_core::clock::Clock::now(self.clock.as_ref()) + delay)
    }

    async fn depth(&self) -> (u64, u64, u64) {
        let d = self.queue.depth(META).await.unwrap();
        (d.visible, d.in_flight, d.dead)
    }
}

#[tokio::test]
async fn a_panicking_send_retries_the_message_with_the_reason_logged_and_a_later_attempt_delivers_it(
) {
    let w = World::new().await;
    let egress = Arc::new(ScriptedEgress::panicking_once());
    let service = w.service(egress.clone(), w.log.clone());

    let first = w.deliver_once(&service).await;

    assert!(
        matches!(first[..], [Disposition::RetryLater(_)]),
        "retried, not acknowledged: {first:?}"
    );
    let record = w.record_with(DeliveryStatus::Retrying, "panicked").await;
    let [Disposition::RetryLater(delay)] = first[..] else {
        unreachable!()
    };
    assert_eq!(record.next_attempt_at, w.due_after(delay));
    assert_eq!(
        record.message_id.as_ref().map(|m| m.as_str()),
        Some("order-1")
    );
    assert_eq!(
        w.depth().await,
        (0, 1, 0),
        "hidden until its retry, not gone"
    );

    let second = w.deliver_the_retry(&service).await;

    assert_eq!(second, vec![Disposition::Ack]);
    assert_eq!(egress.delivered().len(), 1, "the event reached Meta once");
    assert_eq!(w.record().await.status, DeliveryStatus::Delivered);
    assert_eq!(w.depth().await, (0, 0, 0));
}

#[tokio::test]
async fn a_refused_attempt_is_logged_with_the_message_id_and_when_the_next_attempt_is_due() {
    let w = World::new().await;
    let egress = Arc::new(ScriptedEgress {
        script: Mutex::new(VecDeque::from([Step::Unavailable])),
        ..ScriptedEgress::default()
    });
    let service = w.service(egress.clone(), w.log.clone());

    let first = w.deliver_once(&service).await;

    let [Disposition::RetryLater(delay)] = first[..] else {
        panic!("retried: {first:?}")
    };
    let record = w.record().await;
    assert_eq!(record.status, DeliveryStatus::Retrying);
    assert_eq!(record.last_http_status, Some(503));
    assert_eq!(
        record.message_id.as_ref().map(|m| m.as_str()),
        Some("order-1")
    );
    assert_eq!(record.next_attempt_at, w.due_after(delay));

    assert_eq!(w.deliver_the_retry(&service).await, vec![Disposition::Ack]);

    let record = w.record().await;
    assert_eq!(record.status, DeliveryStatus::Delivered);
    assert_eq!(
        record.message_id.as_ref().map(|m| m.as_str()),
        Some("order-1")
    );
    assert_eq!(
        record.next_attempt_at, None,
        "no attempt is due once delivered"
    );
}

#[tokio::test]
async fn a_delivery_task_that_panics_before_sending_retries_its_messages_with_the_reason_logged() {
    let w = World::new().await;
    let egress = Arc::new(ScriptedEgress::default());
    let log = Arc::new(PanicsOnce {
        inner: w.log.clone(),
        armed: AtomicBool::new(true),
    });
    let service = w.service(egress.clone(), log);

    let first = w.deliver_once(&service).await;

    assert!(
        matches!(first[..], [Disposition::RetryLater(_)]),
        "{first:?}"
    );
    w.record_with(DeliveryStatus::Retrying, "panicked").await;
    assert!(egress.delivered().is_empty());

    assert_eq!(w.deliver_the_retry(&service).await, vec![Disposition::Ack]);
    assert_eq!(egress.delivered().len(), 1);
    assert_eq!(w.record().await.status, DeliveryStatus::Delivered);
}

#[tokio::test]
async fn the_worker_survives_a_panicking_send_and_delivers_the_message_on_its_retry() {
    let w = World::new().await;
    let egress = Arc::new(ScriptedEgress::panicking_once());
    let service = w.service(egress.clone(), w.log.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(run_worker(service, w.queue.clone(), META, stopped));

    // Wait for the observable outcome: the event delivered. The fixed clock moves on so the
    // retried message becomes visible again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while egress.delivered().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the message was never delivered after the panic"
        );
        assert!(!worker.is_finished(), "the worker loop ended");
        w.clock.advance(Duration::minutes(1));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    assert!(!worker.is_finished(), "the worker loop is still running");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while w.record().await.status != DeliveryStatus::Delivered {
        assert!(std::time::Instant::now() < deadline, "never settled");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), worker)
        .await
        .expect("the worker stops when asked")
        .unwrap();
    assert_eq!(egress.delivered().len(), 1);
}

/// Changes the stored sealed fields of the one queued item (flips a bit of their
/// authentication tag, or deletes them when `delete`), then runs one delivery: it must
/// dead-letter the item as corrupt and send nothing.
async fn tampered_sealed_fields_dead_letter_the_item(delete: bool) {
    let w = World::new().await;
    w.db.call("test", move |c| {
        let (body, shared): (Vec<u8>, Option<i64>) = c
            .query_row("SELECT body, shared FROM queue", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let Body::Reference(body) = Body::decode(&body).unwrap() else {
            panic!("the embedded queue holds items by reference");
        };
        assert!(
            body.refs[0].shared,
            "the item takes its event's shared fields"
        );
        assert_eq!(body.refs[0].sealed, None);
        let shared = shared.expect("stored beside the message");
        if delete {
            c.execute("DELETE FROM queue_shared WHERE id = ?1", [shared])
                .unwrap();
            return Ok(());
        }
        let mut fields: Vec<u8> = c
            .query_row(
                "SELECT body FROM queue_shared WHERE id = ?1",
                [shared],
                |r| r.get(0),
            )
            .unwrap();
        *fields.last_mut().unwrap() ^= 0x01;
        c.execute(
            "UPDATE queue_shared SET body = ?1 WHERE id = ?2",
            rusqlite::params![fields, shared],
        )
        .unwrap();
        Ok(())
    })
    .await
    .unwrap();
    let egress = Arc::new(ScriptedEgress::default());
    let service = w.service(egress.clone(), w.log.clone());

    let d = w.deliver_once(&service).await;

    assert!(
        matches!(&d[..], [Disposition::DeadLetter(r)] if r.contains("corrupt")),
        "{d:?}"
    );
    assert!(
        egress.delivered().is_empty(),
        "nothing sent with fields missing"
    );
    w.record_with(DeliveryStatus::Dead, "corrupt").await;
    assert_eq!(w.depth().await, (0, 0, 1));
}

#[tokio::test]
async fn corrupt_sealed_fields_dead_letter_the_item_with_the_reason_and_nothing_is_sent() {
    tampered_sealed_fields_dead_letter_the_item(false).await;
}

#[tokio::test]
async fn missing_shared_sealed_fields_dead_letter_the_item_never_sent_without_them() {
    tampered_sealed_fields_dead_letter_the_item(true).await;
}

/// Flips a byte of the destination's sealed secrets in the store.
async fn corrupt_the_secrets(w: &World) {
    let mut d = w.meta_destination().await;
    let at = d.secrets.0.len() / 2;
    d.secrets.0[at] ^= 0x01;
    w.control.put_destination(&d).await.unwrap();
}

#[tokio::test]
async fn corrupt_destination_secrets_retry_with_the_reason_logged_and_nothing_is_sent() {
    let w = World::new().await;
    corrupt_the_secrets(&w).await;
    let egress = Arc::new(ScriptedEgress::default());
    let service = w.service(egress.clone(), w.log.clone());

    let d = w.deliver_once(&service).await;

    assert!(matches!(d[..], [Disposition::RetryLater(_)]), "{d:?}");
    assert!(egress.delivered().is_empty());
    w.record_with(DeliveryStatus::Retrying, "corrupt").await;
}

#[tokio::test]
async fn an_admin_update_of_a_destination_with_corrupt_secrets_is_a_corrupt_data_error_not_null_secrets(
) {
    let w = World::new().await;
    let admin = w.admin();
    let operator = Principal::operator(&w.workspace.id);
    let rename = DestinationPatch {
        name: Some("Meta (renamed)".into()),
        ..DestinationPatch::default()
    };

    corrupt_the_secrets(&w).await;
    let err = admin
        .update_destination(&operator, w.destination.as_str(), rename.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AdminError::Store(StoreError::Corrupt { .. })),
        "{err:?}"
    );

    // Sealed properly, but not a JSON object: corrupt too, not `null` nor the caller's fault.
    let mut d = w.meta_destination().await;
    let key = w
        .keyring
        .unwrap_data_key(&w.workspace.id, &w.workspace.key_ref, &w.workspace.data_key)
        .await
        .unwrap();
    let keys = tracklayer_core::crypto::WorkspaceKeys::new(&key);
    d.secrets = keys.seal(
        [5; 12],
        &tracklayer_core::destination::secret_opener::secrets_aad(&d),
        b"not json",
    );
    w.control.put_destination(&d).await.unwrap();
    let err = admin
        .update_destination(&operator, w.destination.as_str(), rename)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AdminError::Store(StoreError::Corrupt { .. })),
        "{err:?}"
    );
    let stored = w.meta_destination().await;
    assert_eq!(stored.name, "Meta", "nothing was changed");
}

#[tokio::test]
async fn an_ingested_and_delivered_purchase_shows_on_a_viewers_overview_of_the_last_hour() {
    use tracklayer_core::admin::StatsWindow;
    let w = World::new().await;
    let service = w.service(Arc::new(ScriptedEgress::default()), w.log.clone());
    assert_eq!(w.deliver_once(&service).await, vec![Disposition::Ack]);
    let viewer = Principal {
        role: tracklayer_core::keys::Role::Viewer,
        actor: "user:usr_viewer".into(),
        ..Principal::operator(&w.workspace.id)
    };

    let o = w
        .admin()
        .overview(&viewer, StatsWindow::Hour)
        .await
        .unwrap();

    assert_eq!(o.ingest.accepted, 1);
    assert_eq!(o.destinations.len(), 1);
    let meta = &o.destinations[0];
    assert_eq!(meta.destination_id, w.destination);
    assert_eq!(
        (
            meta.counts.received,
            meta.counts.routed,
            meta.counts.delivered
        ),
        (1, 1, 1)
    );
    assert_eq!(meta.series.last().map(|p| p.delivered), Some(1));
}
