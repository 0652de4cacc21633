//! Queue items by reference on the embedded queue: a message holds each item's event id and
//! what the event does not (consent, sealed fields), and delivery rebuilds the item from the
//! stored event. What a destination receives is the same as from the item by value, for every
//! destination kind; an item whose event is gone is not delivered.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use serde_json::json;
use tracklayer_core::clock::SequentialIds;
use tracklayer_core::crypto::WorkspaceKeys;
use tracklayer_core::deliver::service::DeliveryConfig;
use tracklayer_core::deliver::{HttpRequest, HttpResponse};
use tracklayer_core::destination::{DestinationKind, DestinationSpec, EventFilter};
use tracklayer_core::event::Body;
use tracklayer_core::ingest::{
    pack, parse_body, prepare, Endpoint, Holding, Pipeline, RequestMeta, MAX_QUEUE_MESSAGE_BYTES,
};
use tracklayer_core::ports::{
    ControlReader, ControlStore, DeliveryLog, DeliveryRecord, DeliveryStatus, Egress, EgressError,
    Enqueuer, Outgoing, QueueConsumer, Received,
};
use tracklayer_local::SqliteDeliveryLog;

/// A request as sent: url, headers, body.
type Sent = (String, Vec<(String, String)>, String);

/// Every request a destination was sent.
#[derive(Default)]
struct RecordingEgress(Mutex<Vec<Sent>>);

#[async_trait]
impl Egress for RecordingEgress {
    async fn post(&self, r: &HttpRequest) -> Result<HttpResponse, EgressError> {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        self.0
            .lock()
            .unwrap()
            .push((r.url.clone(), r.headers.clone(), body));
        // An OAuth token endpoint (LinkedIn's, Google's) grants a token; every API accepts.
        let token_request = r.url.ends_with("/token") || r.url.ends_with("/accessToken");
        let answer: &[u8] = if token_request {
            br#"{"access_token":"reference-test-token","expires_in":3600}"#
        } else {
            br#"{"events_received":2,"code":0,"status":"OK","FailedPutCount":0}"#
        };
        Ok(HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: answer.to_vec(),
        })
    }
}

/// A purchase and a page view carrying every kind of identifier and signal.
fn events() -> Vec<u8> {
    serde_json::to_vec(&json!({"batch": [
        {"type": "track", "event": "Order Completed", "messageId": "ref-1", "userId": "user-1",
         "anonymousId": "anon-1", "timestamp": "2026-03-01T11:59:58.123+01:00",
         "properties": {"order_id": "o-1", "revenue": 49.9, "currency": "EUR",
                        "products": [{"product_id": "sku-1", "quantity": 2, "price": 24.95}]},
         "context": {"ip": "198.51.100.23", "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Test/1.0",
                     "page": {"url": "https://shop.example.com/checkout?fbclid=abc&gclid=g-1"},
                     "traits": {"email": "Jane.Doe@Example.com", "phone": "+49 30 1234567",
                                "firstName": "Jane", "lastName": "Doe", "city": "Berlin",
                                "postalCode": "10115", "country": "DE"},
                     "consent": {"categoryPreferences": {"advertising": true, "analytics": true}}}},
        {"type": "page", "name": "Checkout", "messageId": "ref-2", "anonymousId": "anon-2",
         "properties": {"path": "/checkout", "title": "Checkout"},
         "context": {"ip": "198.51.100.24", "userAgent": "Mozilla/5.0 Test/2.0",
                     "traits": {"email": "john@example.com"}}}
    ]}))
    .unwrap()
}

/// The other destination kinds, beside the workspace's Meta destination: kind, config,
/// secrets.
fn more_kinds() -> Vec<(DestinationKind, serde_json::Value, serde_json::Value)> {
    let specs = json!([
        ["ga4", {"measurement_id": "G-REFTEST"}, {"api_secret": "ga4secret"}],
        ["tiktok", {"pixel_code": "CREFTEST"}, {"access_token": "tiktoktoken"}],
        ["webhook", {"url": "https://hooks.example.com/in"},
         {"signing_secret": "whsec_cmVmZXJlbmNlLXNpZ25pbmcta2V5"}], // pragma: allowlist secret
        ["snapchat", {"pixel_id": "6d2e7a31-snap-pixel"}, {"access_token": "snaptoken"}],
        ["pinterest", {"ad_account_id": "549757463328"}, {"access_token": "pintoken"}],
        ["reddit", {"ad_account_id": "a2_gfgsrrd4ug2t"}, {"access_token": "reddittoken"}],
        ["microsoft_ads", {"tag_id": "343003931"}, {"access_token": "uettoken"}],
        ["segment", {"identifiers": "hashed"}, {"write_key": "segmentwritekey"}],
        ["linkedin", {"conversion_id": "104012", "api_version": "202510"},
         {"client_id": "li-client", "client_secret": "li-secret", "refresh_token": "li-refresh"}],
        ["google_ads", {"customer_id": "1234567890", "conversion_action_id": "987654321",
                        "api_version": "v22"},
         {"client_id": "ga-client", "client_secret": "ga-secret", "refresh_token": "ga-refresh",
          "developer_token": "ga-dev"}],
        ["firehose", {"stream_name": "tracklayer-events", "region": "eu-central-1"},
         {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", // pragma: allowlist secret
          "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}], // pragma: allowlist secret
    ]);
    specs
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let kind = serde_json::from_value(s[0].clone()).unwrap();
            (kind, s[1].clone(), s[2].clone())
        })
        .collect()
}

/// Delivers everything `queue` holds, kind by kind, through a service over `log`; returns
/// what each kind's destination was sent.
async fn deliver_all(
    w: &MetaWorkspace,
    queue: Arc<SqliteDeliveryQueue>,
    log: Arc<dyn DeliveryLog>,
) -> BTreeMap<&'static str, Vec<Sent>> {
    let mut sent = BTreeMap::new();
    for kind in DestinationKind::ALL {
        let egress = Arc::new(RecordingEgress::default());
        let service = w.delivery(
            queue.clone(),
            egress.clone(),
            log.clone(),
            DeliveryConfig::default(),
        );
        let msgs = queue
            .receive(kind, 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!msgs.is_empty(), "{kind}: a message queued");
        testkit::deliver_and_settle(&service, kind, &msgs).await;
        sent.insert(kind.as_str(), egress.0.lock().unwrap().clone());
    }
    sent
}

#[tokio::test]
async fn every_destination_kind_is_sent_the_same_bytes_from_items_by_reference_as_by_value() {
    // Arrange: a workspace with a destination of every kind, and two events prepared, stored
    // and packed both ways: by value on a queue of its own, by reference on the embedded one.
    let w = MetaWorkspace::new("By reference", "EAAreference").await;
    let control = w.control_plane();
    for (kind, config, secrets) in more_kinds() {
        // A LinkedIn conversion rule and a Google Ads conversion action name their events.
        let events = match kind {
            DestinationKind::Linkedin | DestinationKind::GoogleAds => {
                EventFilter::Allow(["Order Completed".to_owned()].into())
            }
            _ => EventFilter::All,
        };
        let spec = DestinationSpec {
            name: kind.as_str().into(),
            kind,
            config,
            secrets,
            consent_purposes: None,
            events,
            endpoint: None,
            paused: false,
        };
        control.add_destination(&w.workspace, spec).await.unwrap();
    }
    let destinations = w.control.destinations(&w.workspace.id).await.unwrap();
    assert_eq!(destinations.len(), DestinationKind::ALL.len());
    let ws = &w.workspace;
    let data_key = w
        .keyring
        .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
        .await
        .unwrap();
    let keys = WorkspaceKeys::new(&data_key);
    let meta = RequestMeta {
        ip: None,
        user_agent: None,
        gpc: false,
        browser: false,
    };
    // The same events prepared for either queue (the same event ids: a counter each): by
    // reference, an item leaves IP and user agent to its event's operational record, and
    // its other sealed fields are its event's, sealed once for all its destinations.
    let body = events();
    let prepared = |holding| {
        let ids = EventCountedIds::default();
        let pipeline = Pipeline {
            workspace: ws,
            destinations: &destinations,
            keys: &keys,
            ids: &ids,
            meta: &meta,
            received_at: T0,
            requirements: None,
            holding,
        };
        let prepared = prepare(&pipeline, &parse_body(Endpoint::Batch, &body).unwrap());
        assert_eq!(prepared.rejected, []);
        prepared
    };
    let (for_value, for_reference) = (prepared(Holding::ByValue), prepared(Holding::ByReference));
    assert_eq!(
        for_value
            .events
            .iter()
            .map(|e| e.event.event_id)
            .collect::<Vec<_>>(),
        for_reference
            .events
            .iter()
            .map(|e| e.event.event_id)
            .collect::<Vec<_>>()
    );
    assert!(for_reference.events.iter().all(|e| e.operational.is_some()));
    w.events.record(&for_reference.events, T0).await.unwrap();
    let items = |p: &tracklayer_core::ingest::PreparedBatch| {
        p.items.iter().flatten().cloned().collect::<Vec<_>>()
    };
    let packed = |p, holding| {
        pack(
            &ws.id,
            &destinations,
            items(p),
            MAX_QUEUE_MESSAGE_BYTES,
            holding,
        )
    };
    let by_value = packed(&for_value, Holding::ByValue);
    let by_reference = packed(&for_reference, Holding::ByReference);
    let value_db = Db::in_memory().unwrap();
    let value_queue = Arc::new(SqliteDeliveryQueue::new(
        value_db.clone(),
        w.clock.clone(),
        Arc::new(SystemIds),
        8,
    ));
    value_queue.enqueue(&by_value).await.unwrap();
    w.queue.enqueue(&by_reference).await.unwrap();

    // Act
    let from_value = deliver_all(&w, value_queue, Arc::new(SqliteDeliveryLog::new(value_db))).await;
    let from_reference = deliver_all(
        &w,
        w.queue.clone(),
        Arc::new(SqliteDeliveryLog::new(w.db.clone())),
    )
    .await;

    // Assert
    for kind in DestinationKind::ALL {
        let (v, r) = (&from_value[kind.as_str()], &from_reference[kind.as_str()]);
        assert!(!v.is_empty(), "{kind}: something was sent");
        assert_eq!(v, r, "{kind}: the same requests either way");
    }
    let size = |messages: &[Outgoing]| messages.iter().map(|m| m.body.len()).sum::<usize>();
    let per_item = size(&by_reference) / items(&for_reference).len();
    assert!(
        per_item < 500,
        "a by-reference item is its id, consent and sealed fields: {per_item} bytes"
    );
    let (reference_bytes, value_bytes) = (size(&by_reference), size(&by_value));
    assert!(
        reference_bytes * 2 < value_bytes,
        "{reference_bytes} vs {value_bytes} bytes"
    );
    for m in &by_reference {
        assert!(matches!(Body::decode(&m.body), Ok(Body::Reference(_))));
    }
    // The events' shared sealed fields: one value for every message of the request.
    let shared = by_reference[0]
        .shared
        .as_ref()
        .expect("shared sealed fields");
    assert!(by_reference
        .iter()
        .all(|m| m.shared.as_ref().is_some_and(|s| Arc::ptr_eq(s, shared))));
    assert!(
        by_value.iter().all(|m| m.shared.is_none()),
        "by value, never"
    );
}

/// Event ids from a counter of their own: by reference an event takes fewer nonces (its items
/// share one seal), and its id stays that of the same event prepared by value.
#[derive(Default)]
struct EventCountedIds {
    events: SequentialIds,
    rest: SequentialIds,
}

impl tracklayer_core::clock::Ids for EventCountedIds {
    fn uuid_v7(&self, now: time::OffsetDateTime) -> uuid::Uuid {
        self.events.uuid_v7(now)
    }
    fn token(&self, len: usize) -> String {
        self.rest.token(len)
    }
    fn fill(&self, buf: &mut [u8]) {
        self.rest.fill(buf)
    }
}

/// The delivery service of `w`'s embedded queue over `log`, sending to `egress`.
fn service_with(
    w: &MetaWorkspace,
    log: &Arc<SqliteDeliveryLog>,
    egress: Arc<RecordingEgress>,
) -> Arc<tracklayer_core::deliver::service::DeliveryService> {
    w.delivery(
        w.queue.clone(),
        egress,
        log.clone(),
        DeliveryConfig::default(),
    )
}

fn service_of(
    w: &MetaWorkspace,
    log: &Arc<SqliteDeliveryLog>,
) -> Arc<tracklayer_core::deliver::service::DeliveryService> {
    service_with(w, log, Arc::new(RecordingEgress::default()))
}

/// One delivery attempt of what is queued for Meta, not yet applied to the queue: the
/// messages, their dispositions, what was sent, the delivery log.
async fn attempt_meta(
    w: &MetaWorkspace,
) -> (
    Vec<tracklayer_core::ports::Received>,
    Vec<tracklayer_core::deliver::service::Disposition>,
    Vec<Sent>,
    Arc<SqliteDeliveryLog>,
) {
    let log = Arc::new(SqliteDeliveryLog::new(w.db.clone()));
    let egress = Arc::new(RecordingEgress::default());
    let service = service_with(w, &log, egress.clone());
    let msgs = w
        .queue
        .receive(DestinationKind::MetaCapi, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(msgs.len(), 1, "one message queued for Meta");
    let d = service.process(DestinationKind::MetaCapi, &msgs).await;
    let sent = egress.0.lock().unwrap().clone();
    (msgs, d, sent, log)
}

/// Ingests one purchase with an email, `message_id`, from a server (queued for Meta).
async fn ingest_a_purchase(w: &MetaWorkspace, message_id: &str) {
    ingest_one(
        w,
        message_id,
        json!({"traits": {"email": "jane.doe@example.com"}}),
    )
    .await;
}

/// Ingests one purchase from a browser context (an address and a user agent, so its event
/// has an operational record), `message_id`, queued for Meta.
async fn ingest_a_visit(w: &MetaWorkspace, message_id: &str) {
    let context = json!({"traits": {"email": "jane.doe@example.com"}, "ip": VISIT_IP,
                         "userAgent": VISIT_AGENT});
    ingest_one(w, message_id, context).await;
}

const VISIT_IP: &str = "203.0.113.9";
const VISIT_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Visit/7.0";

/// Ingests one purchase with `context`, `message_id`, sent without an address or user agent
/// of the request's own.
async fn ingest_one(w: &MetaWorkspace, message_id: &str, context: serde_json::Value) {
    w.ingest_from_a_server(&json!({"batch": [{
        "type": "track", "event": "Order Completed", "messageId": message_id, "userId": "user-1",
        "properties": {"order_id": "o-1", "revenue": 10, "currency": "EUR"},
        "context": context
    }]}))
    .await;
}

/// Damages every stored event's record (cuts its document short), so any read of it fails.
async fn corrupt_stored_events(w: &MetaWorkspace) {
    w.db.call("test", |c| {
        c.execute("UPDATE events SET doc = substr(doc, 1, 40)", [])
            .unwrap();
        Ok(())
    })
    .await
    .unwrap();
}

/// The delivery-log records of the events `msg` (queued by reference) names.
async fn records_of_referenced_events(
    w: &MetaWorkspace,
    log: &SqliteDeliveryLog,
    msg: &Received,
) -> Vec<DeliveryRecord> {
    let Ok(Body::Reference(refs)) = Body::decode(&msg.body) else {
        panic!("queued by reference");
    };
    log.for_events(&w.workspace.id, &refs.event_ids())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_item_by_reference_whose_event_was_erased_is_not_delivered_and_the_log_says_why() {
    // Arrange: a purchase ingested (queued by reference for Meta), then its event erased.
    let w = MetaWorkspace::new("Erased", "EAAerased").await;
    ingest_a_purchase(&w, "gone-1").await;
    let found = w
        .events
        .event_ids_by_message_id(
            &w.workspace.id,
            &tracklayer_core::event::MessageId::parse("gone-1").unwrap(),
            T0,
        )
        .await
        .unwrap();
    w.events.erase(&w.workspace.id, &found).await.unwrap();

    // Act
    let (msgs, d, sent, log) = attempt_meta(&w).await;
    service_of(&w, &log)
        .apply(DestinationKind::MetaCapi, &msgs[0], &d[0])
        .await
        .unwrap();

    // Assert
    assert!(
        sent.is_empty(),
        "nothing sent for an erased event: {sent:?}"
    );
    let records = log.for_events(&w.workspace.id, &found).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        matches!(&records[0].status, DeliveryStatus::Dropped(why) if why.contains("no longer stored")),
        "{records:?}"
    );
    let depth = w.queue.depth(DestinationKind::MetaCapi).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0), "acknowledged");
}

#[tokio::test]
async fn an_item_by_reference_whose_event_is_corrupt_is_retried_with_the_reason_never_sent() {
    // Arrange: a purchase queued by reference for Meta, then its stored record damaged.
    let w = MetaWorkspace::new("Corrupt", "EAAcorrupt").await;
    ingest_a_purchase(&w, "bad-1").await;
    corrupt_stored_events(&w).await;

    // Act
    let (msgs, d, sent, log) = attempt_meta(&w).await;

    // Assert
    assert!(
        matches!(
            d[..],
            [tracklayer_core::deliver::service::Disposition::RetryLater(
                _
            )]
        ),
        "{d:?}"
    );
    assert!(sent.is_empty(), "nothing sent: {sent:?}");
    let records = records_of_referenced_events(&w, &log, &msgs[0]).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, DeliveryStatus::Retrying);
    assert!(
        records[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("corrupt")),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_paused_destinations_messages_are_held_without_reading_their_events() {
    // Arrange: a purchase queued by reference for Meta, its stored record damaged (so any
    // read of it fails), and the destination paused.
    let w = MetaWorkspace::new("Paused", "EAApaused").await;
    ingest_a_purchase(&w, "held-1").await;
    corrupt_stored_events(&w).await;
    let mut d = w
        .control
        .destination(&w.workspace.id, &w.destination)
        .await
        .unwrap()
        .unwrap();
    d.paused = true;
    w.control.put_destination(&d).await.unwrap();

    // Act
    let (msgs, d, sent, log) = attempt_meta(&w).await;

    // Assert: held for the recheck interval, as a paused destination's messages are, not
    // retried for an event that was read (and found corrupt).
    let recheck = DeliveryConfig::default().paused_recheck;
    assert_eq!(
        d,
        [tracklayer_core::deliver::service::Disposition::Hold(
            recheck
        )]
    );
    assert!(sent.is_empty(), "nothing sent: {sent:?}");
    let records = records_of_referenced_events(&w, &log, &msgs[0]).await;
    assert!(records.is_empty(), "no attempt logged: {records:?}");
}

#[tokio::test]
async fn an_item_by_reference_sends_ip_and_agent_from_the_operational_record_kept_30_days() {
    use tracklayer_core::ports::EventInspection;
    // Arrange: a visit queued for Meta by reference; its item seals neither the IP nor the
    // user agent (the event's operational record holds both).
    let w = MetaWorkspace::new("Visit", "EAAvisit").await;
    ingest_a_visit(&w, "visit-1").await;
    let queued = w.db.call("test", |c| {
        let bodies: Vec<Vec<u8>> = first_column(c, "SELECT body FROM queue");
        Ok(bodies)
    });
    let queued = queued.await.unwrap();
    assert_eq!(queued.len(), 1);
    let Ok(Body::Reference(refs)) = Body::decode(&queued[0]) else {
        panic!("queued by reference");
    };
    let record = w
        .events
        .operational(&w.workspace.id, &refs.refs[0].event_id, T0);
    assert!(record.await.unwrap().is_some(), "the event has its record");

    // Act: delivered while the record is kept.
    let (_, d, sent, _) = attempt_meta(&w).await;

    // Assert: Meta is sent both, from the record.
    assert!(
        matches!(d[..], [tracklayer_core::deliver::service::Disposition::Ack]),
        "{d:?}"
    );
    assert_eq!(sent.len(), 1);
    assert!(sent[0].2.contains(VISIT_IP), "{}", sent[0].2);
    assert!(sent[0].2.contains(VISIT_AGENT), "{}", sent[0].2);

    // After the record's 30 days the event is still kept (180 days) and rebuilt, but with
    // no record: what delivery opens of it then has no IP or user agent (Meta itself drops
    // events older than 7 days, so no request shows it).
    let (ws, id) = (&w.workspace.id, refs.refs[0].event_id);
    let later = T0 + time::Duration::days(31);
    assert_eq!(w.events.events(ws, &[id], later).await.unwrap().len(), 1);
    let records = w
        .events
        .operational_records(ws, &[id], later)
        .await
        .unwrap();
    assert!(records.is_empty(), "{records:?}");
}

#[tokio::test]
async fn an_item_by_reference_whose_operational_record_is_corrupt_is_dead_lettered_never_sent() {
    // Arrange: a visit queued by reference for Meta, then its operational record damaged.
    let w = MetaWorkspace::new("CorruptRecord", "EAArecord").await;
    ingest_a_visit(&w, "visit-bad").await;
    w.db.call("test", |c| {
        let n = c
            .execute("UPDATE operational SET sealed = substr(sealed, 1, 20)", [])
            .unwrap();
        assert_eq!(n, 1);
        Ok(())
    })
    .await
    .unwrap();

    // Act
    let (_, d, sent, _) = attempt_meta(&w).await;

    // Assert: dead-lettered with the reason, as an item whose own sealed fields are corrupt
    // is, never sent without the IP and user agent.
    assert!(
        matches!(
            &d[..],
            [tracklayer_core::deliver::service::Disposition::DeadLetter(why)]
                if why.contains("corrupt") && why.contains("operational record")
        ),
        "{d:?}"
    );
    assert!(sent.is_empty(), "nothing sent: {sent:?}");
}
