//! The AWS adapters against moto server: every port contract suite, plus what only the AWS
//! adapters have (subject dedup, packs, queue depth, truly concurrent audit appends).
//!
//! One moto server per test binary, started on a free loopback port from the repository's
//! `.venv` (made by `make test`), and stopped when the binary exits. Every test gets fresh,
//! uniquely named tables and queues.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracklayer_aws::provision::{self, Options};
use tracklayer_aws::{
    AwsClients, DynamoAuditLog, DynamoControlStore, DynamoDeliveryLog, DynamoDsrStore,
    DynamoEventStore, KmsKeyring, QueueUrls, SesMailer, SqsDeliveryQueue, TableNames,
};
use tracklayer_core::clock::SystemClock;
use tracklayer_core::destination::{DestinationId, DestinationKind};
use tracklayer_core::event::{EventId, MessageId};
use tracklayer_core::ports::{
    AuditLog, DeliveryLog, DeliveryStatus, Enqueuer, EventEraser, EventInspection, EventReader,
    EventWriter, Keyring, LogOf, Outgoing, Page, QueueConsumer,
};
use tracklayer_core::testkit::egress::RecordingEgress;
use tracklayer_core::testkit::{self, unique, QueueHarness, T0};
use tracklayer_core::workspace::{KeyRef, Region, WorkspaceId};

// ---------------------------------------------------------------------------------------------
// moto: one server for this test binary, from the shared launcher of `tracklayer-tests`
// (the repository's `.venv`, a free loopback port, stopped when the binary exits).

fn endpoint() -> &'static str {
    &tracklayer_tests::lambda::stack::Moto::shared().endpoint
}

/// Real SDK clients for moto in `region`. Built per test, since each test has its own Tokio
/// runtime.
async fn clients_in(region: &str) -> AwsClients {
    tracklayer_tests::lambda::stack::clients(endpoint(), region, "testing").await
}

async fn clients() -> AwsClients {
    clients_in("eu-central-1").await
}

fn options() -> Options {
    Options {
        sse_kms_key: None,
        deletion_protection: false,
        max_receive_count: MAX_RECEIVES,
    }
}

const MAX_RECEIVES: u32 = 3;

#[derive(Clone, Copy)]
enum Table {
    Control,
    Events,
    DeliveryLog,
    Audit,
}

/// A fresh table, created as the template defines it.
/// Every item of a (small) table, by one `Scan`.
async fn table_items(
    c: &AwsClients,
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    c.dynamodb
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

async fn fresh_table(c: &AwsClients, which: Table) -> String {
    let name = format!("t-{}", unique());
    let names = TableNames {
        control: name.clone(),
        events: name.clone(),
        delivery_log: name.clone(),
        audit: name.clone(),
    };
    let spec = &provision::table_specs(&names)[which as usize];
    provision::create_table(&c.dynamodb, spec, &options())
        .await
        .expect("create a table on moto");
    name
}

async fn control_store() -> DynamoControlStore {
    let c = clients().await;
    let table = fresh_table(&c, Table::Control).await;
    // Small pages: every read of a workspace's items crosses pages, as a large one's would.
    DynamoControlStore::new(c.dynamodb, table).with_page_size(CONTROL_PAGE)
}

/// Items per page of the contract suites' control store (a workspace's many groups, users).
const CONTROL_PAGE: i32 = 10;

async fn event_store() -> DynamoEventStore {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    // Small subject-days: every day of a subject with more than one request overflows, as
    // a busy subject's would.
    DynamoEventStore::new(c.dynamodb, table).with_subject_day_cap(SUBJECT_DAY_CAP)
}

/// Pack references per subject-day item in the contract suites' event store.
const SUBJECT_DAY_CAP: usize = 1;

async fn delivery_log() -> DynamoDeliveryLog {
    let c = clients().await;
    let table = fresh_table(&c, Table::DeliveryLog).await;
    DynamoDeliveryLog::new(c.dynamodb, table)
}

async fn stats() -> tracklayer_aws::DynamoStats {
    let c = clients().await;
    let table = fresh_table(&c, Table::DeliveryLog).await;
    tracklayer_aws::DynamoStats::new(c.dynamodb, table)
}

async fn dsr_store() -> DynamoDsrStore {
    let c = clients().await;
    let control = fresh_table(&c, Table::Control).await;
    let events = fresh_table(&c, Table::Events).await;
    DynamoDsrStore::new(c.dynamodb, control, events)
}

async fn session_store() -> tracklayer_aws::DynamoSessionStore {
    let c = clients().await;
    let table = fresh_table(&c, Table::Control).await;
    tracklayer_aws::DynamoSessionStore::new(c.dynamodb, table)
}

async fn audit_log() -> DynamoAuditLog {
    let c = clients().await;
    let table = fresh_table(&c, Table::Audit).await;
    DynamoAuditLog::new(c.dynamodb, table, Arc::new(keyring().await))
}

struct SqsHarness {
    queue: SqsDeliveryQueue,
    urls: BTreeMap<DestinationKind, QueueUrls>,
}

impl SqsHarness {
    fn queue_urls(&self) -> BTreeMap<DestinationKind, QueueUrls> {
        self.urls.clone()
    }
}

#[async_trait]
impl QueueHarness for SqsHarness {
    fn queue(&self) -> &dyn tracklayer_core::ports::DeliveryQueue {
        &self.queue
    }
    /// SQS keeps real time: let it pass.
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
    fn max_receive_count(&self) -> u32 {
        MAX_RECEIVES
    }
    async fn dead_letters(
        &self,
        kind: DestinationKind,
        limit: usize,
    ) -> Result<Vec<tracklayer_core::ports::DeadLetter>, tracklayer_core::error::StoreError> {
        self.queue.dead_letters(kind, limit).await
    }
}

async fn delivery_queue() -> SqsHarness {
    let c = clients().await;
    let queues = provision::create_queues(&c.sqs, &format!("q-{}", unique()), &options())
        .await
        .expect("create queues on moto");
    SqsHarness {
        queue: SqsDeliveryQueue::new(c.sqs, queues.clone(), Arc::new(SystemClock)),
        urls: queues,
    }
}

/// A new KMS key on moto, by its ARN.
async fn kms_key(c: &AwsClients, description: &str) -> String {
    c.kms
        .create_key()
        .description(description)
        .send()
        .await
        .expect("create a KMS key on moto")
        .key_metadata
        .expect("key metadata")
        .arn
        .expect("key ARN")
}

async fn keyring() -> KmsKeyring {
    let c = clients().await;
    let key = kms_key(&c, "TrackLayer platform key (test)").await;
    KmsKeyring::new(c.kms, key, Duration::from_secs(300))
}

const SENDER: &str = "noreply@tracklayer.example";

async fn mailer() -> SesMailer {
    let c = clients().await;
    c.ses
        .create_email_identity(SENDER)
        .await
        .expect("verify the sender on moto");
    SesMailer::new(c.ses, SENDER)
}

/// Delivery over moto's stores and `egress`, with the real connectors and the system clock.
async fn delivery_on_moto(
    control: Arc<dyn tracklayer_core::ports::ControlReader>,
    queue: Arc<dyn tracklayer_core::ports::DeliveryQueue>,
    log: Arc<dyn DeliveryLog>,
    keyring: Arc<dyn Keyring>,
    suppressions: Arc<dyn tracklayer_core::ports::SuppressionList>,
    egress: Arc<dyn tracklayer_core::ports::Egress>,
    config: tracklayer_core::deliver::service::DeliveryConfig,
) -> tracklayer_core::deliver::service::DeliveryService {
    tracklayer_core::deliver::service::DeliveryService::new(
        tracklayer_core::deliver::service::DeliveryPorts {
            read: tracklayer_core::services::ReadPorts {
                control,
                keyring,
                clock: Arc::new(SystemClock),
                ids: Arc::new(tracklayer_core::clock::SystemIds),
            },
            queue,
            log,
            events: Arc::new(event_store().await),
            egress,
            suppressions,
            connectors: tracklayer_connectors::connector,
            base_urls: tracklayer_connectors::default_base_url,
            stats: Arc::new(stats().await),
        },
        config,
    )
}

#[path = "moto/erasure.rs"]
mod erasure;
#[path = "moto/firehose.rs"]
mod firehose;
#[path = "moto/scan.rs"]
mod scan;
#[path = "moto/subject_days.rs"]
mod subject_days;

// ---------------------------------------------------------------------------------------------
// The contract suites

/// The lookup by messageId reads what dedup and the packs write anyway: the marker (with the
/// event's id) stays one small item, under 1 KB, so a write unit; an identified event (user id
/// and email) has no marker (its dedup entry is on its primary subject's day) and is found in
/// the event packs of the dedup window. The lookups write nothing.
#[tokio::test]
async fn the_message_id_lookup_reads_the_dedup_marker_and_writes_nothing_of_its_own() {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    let s = DynamoEventStore::new(c.dynamodb.clone(), table.clone());
    let ws = ws();
    let alone = testkit::new_event(&ws, &"m".repeat(256), &[], T0);
    let mut identified = testkit::new_event(&ws, "m-subject", &["user-index", "email-index"], T0);
    // Received at T0, as ingest's ids say (the packs are partitioned by that minute).
    let id = same_millisecond_ids_at(T0, 1)[0];
    identified.event.event_id = id;
    identified.operational.as_mut().unwrap().event_id = id;
    s.record(&[alone.clone(), identified.clone()], T0)
        .await
        .unwrap();

    let items = table_items(&c, &table).await;
    let markers: Vec<_> = items
        .iter()
        .filter(|i| i["sk"].as_s().unwrap() == "D")
        .collect();
    assert_eq!(markers.len(), 1, "{items:?}");
    let size: usize = markers[0]
        .iter()
        .map(|(name, v)| {
            name.len()
                + match v {
                    aws_sdk_dynamodb::types::AttributeValue::S(s) => s.len(),
                    aws_sdk_dynamodb::types::AttributeValue::N(n) => n.len(),
                    other => panic!("unexpected attribute {other:?}"),
                }
        })
        .sum();
    assert!(size < 1024, "marker is {size} bytes");
    assert_eq!(
        s.event_ids_by_message_id(&ws, &alone.event.message_id, T0)
            .await
            .unwrap(),
        vec![alone.event.event_id]
    );
    let started = std::time::Instant::now();
    let later = T0 + time::Duration::hours(20);
    assert_eq!(
        s.event_ids_by_message_id(&ws, &MessageId::parse("m-subject").unwrap(), later)
            .await
            .unwrap(),
        vec![identified.event.event_id]
    );
    println!(
        "an identified event received 20 h before: found in {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let absent = MessageId::parse("m-never-sent").unwrap();
    assert_eq!(
        s.event_ids_by_message_id(&ws, &absent, later)
            .await
            .unwrap(),
        vec![]
    );
    println!(
        "an unknown message id, the whole window read: {:?}",
        started.elapsed()
    );
    let after = table_items(&c, &table).await;
    assert_eq!(after, items, "the lookups wrote nothing");
}

/// The control and DSR stores on one ControlTable, where the requests and suppression
/// entries share the workspace's partition.
struct DynamoAccount {
    client: aws_sdk_dynamodb::Client,
    table: String,
    control: DynamoControlStore,
    dsr: DynamoDsrStore,
}

async fn account_stores() -> DynamoAccount {
    let c = clients().await;
    let table = fresh_table(&c, Table::Control).await;
    let events = fresh_table(&c, Table::Events).await;
    DynamoAccount {
        control: DynamoControlStore::new(c.dynamodb.clone(), table.clone()),
        dsr: DynamoDsrStore::new(c.dynamodb.clone(), table.clone(), events),
        client: c.dynamodb,
        table,
    }
}

#[async_trait]
impl testkit::account_end::AccountStores for DynamoAccount {
    fn control(&self) -> &dyn tracklayer_core::ports::ControlStore {
        &self.control
    }
    fn dsr(&self) -> &dyn tracklayer_core::ports::DsrStore {
        &self.dsr
    }
    /// moto never runs the TTL deleter: the items DynamoDB keeps at `now` are those whose
    /// `expires_at` (Unix seconds) is missing or later.
    async fn dsr_records_left(&self, ws: &WorkspaceId, now: OffsetDateTime) -> usize {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("W#{ws}")),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .filter(|i| {
                let sk = i["sk"].as_s().unwrap();
                sk.starts_with("DSR#") || sk.starts_with("SUP#")
            })
            .filter(|i| {
                i.get("expires_at").is_none_or(|t| {
                    t.as_n().unwrap().parse::<i64>().unwrap() > now.unix_timestamp()
                })
            })
            .count()
    }
}

/// The stores retention sweeps, each on its own fresh table.
async fn retention_stores() -> testkit::retention::Stores {
    testkit::retention::Stores {
        events: Arc::new(event_store().await),
        delivery_log: Arc::new(delivery_log().await),
        audit: Arc::new(audit_log().await),
    }
}

/// Events on DynamoDB, messages on SQS: recorded, then queued
/// ([`tracklayer_core::ingest::RecordThenEnqueue`], as the ingest function wires them).
async fn ingest_stores() -> testkit::ingest_store::IngestStores {
    let events = Arc::new(event_store().await);
    let queue = Arc::new(delivery_queue().await.queue);
    testkit::ingest_store::IngestStores {
        store: Arc::new(tracklayer_core::ingest::RecordThenEnqueue::new(
            events.clone(),
            queue.clone(),
        )),
        events,
        queue,
    }
}

tracklayer_core::all_contract_suites!();

// ---------------------------------------------------------------------------------------------
// What only the AWS adapters have

fn ws() -> WorkspaceId {
    WorkspaceId::new(Region::Eu, &unique())
}

#[tokio::test]
async fn a_subjects_repeated_message_id_is_a_duplicate_within_24_hours_and_fresh_after() {
    let s = event_store().await;
    let ws = ws();
    let first = testkit::new_event(&ws, "m-1", &["anon-a", "email-a"], T0);
    assert_eq!(s.record(&[first], T0).await.unwrap(), vec![true]);
    let later = T0 + time::Duration::hours(23);
    let again = testkit::new_event(&ws, "m-1", &["anon-a", "email-a"], later);
    let other = testkit::new_event(&ws, "m-2", &["anon-a", "email-a"], later);
    assert_eq!(
        s.record(&[again.clone(), other], later).await.unwrap(),
        vec![false, true]
    );
    assert!(s
        .event(&ws, &again.event.event_id, later)
        .await
        .unwrap()
        .is_none());
    let next_day = T0 + time::Duration::hours(25);
    let after = testkit::new_event(&ws, "m-1", &["anon-a", "email-a"], next_day);
    assert_eq!(s.record(&[after], next_day).await.unwrap(), vec![true]);
}

#[tokio::test]
async fn the_dedup_window_spans_midnight() {
    let s = event_store().await;
    let ws = ws();
    let late = time::macros::datetime!(2026-03-01 23:30:00 UTC);
    let next_morning = late + time::Duration::hours(10);
    s.record(
        &[testkit::new_event(&ws, "m-night", &["anon-n"], late)],
        late,
    )
    .await
    .unwrap();
    let again = testkit::new_event(&ws, "m-night", &["anon-n"], next_morning);
    assert_eq!(s.record(&[again], next_morning).await.unwrap(), vec![false]);
}

#[tokio::test]
async fn a_duplicate_does_not_extend_its_message_ids_window() {
    let s = event_store().await;
    let ws = ws();
    s.record(&[testkit::new_event(&ws, "m-x", &["anon-x"], T0)], T0)
        .await
        .unwrap();
    let t12 = T0 + time::Duration::hours(12);
    assert_eq!(
        s.record(&[testkit::new_event(&ws, "m-x", &["anon-x"], t12)], t12)
            .await
            .unwrap(),
        vec![false]
    );
    let t30 = T0 + time::Duration::hours(30);
    assert_eq!(
        s.record(&[testkit::new_event(&ws, "m-x", &["anon-x"], t30)], t30)
            .await
            .unwrap(),
        vec![true],
        "the window counts from the first acceptance, not from the duplicate"
    );
}

#[tokio::test]
async fn forgetting_a_subjects_events_lets_the_retry_through() {
    let s = event_store().await;
    let ws = ws();
    let e = testkit::new_event(&ws, "m-f", &["anon-f", "phone-f"], T0);
    s.record(std::slice::from_ref(&e), T0).await.unwrap();
    s.forget(&ws, &[(e.event.event_id, e.event.message_id.clone())])
        .await
        .unwrap();
    assert!(s
        .events_by_subject(&ws, "phone-f", Page::first(10), T0)
        .await
        .unwrap()
        .is_empty());
    let retry = testkit::new_event(&ws, "m-f", &["anon-f", "phone-f"], T0);
    assert_eq!(s.record(&[retry], T0).await.unwrap(), vec![true]);
}

/// UUIDv7 ids of one millisecond, as ingest makes them for one request.
fn same_millisecond_ids(n: usize) -> Vec<EventId> {
    same_millisecond_ids_at(OffsetDateTime::now_utc(), n)
}

/// UUIDv7 ids of the millisecond `at`.
fn same_millisecond_ids_at(at: OffsetDateTime, n: usize) -> Vec<EventId> {
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as u64;
    let mut ids: Vec<EventId> = (0..n)
        .map(|_| {
            let random: [u8; 10] = rand::random();
            EventId(uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid())
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn one_request_is_one_event_pack_and_one_operational_pack() {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    let s = DynamoEventStore::new(c.dynamodb.clone(), table.clone());
    let ws = ws();
    let ids = same_millisecond_ids(100);
    let events: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut e = testkit::new_event(&ws, &format!("m-{i}"), &["device-1"], T0);
            e.event.event_id = *id;
            if let Some(op) = e.operational.as_mut() {
                op.event_id = *id;
            }
            e
        })
        .collect();
    assert_eq!(s.record(&events, T0).await.unwrap(), vec![true; 100]);
    let items = table_items(&c, &table).await;
    let kinds: Vec<String> = items
        .iter()
        .map(|i| i["sk"].as_s().unwrap().chars().next().unwrap().to_string())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "P").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "O").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "S").count(), 1, "{kinds:?}");
    assert_eq!(items.len(), 3);
    for id in [ids[0], ids[57], ids[99]] {
        assert_eq!(s.event(&ws, &id, T0).await.unwrap().unwrap().event_id, id);
        assert!(s.operational(&ws, &id, T0).await.unwrap().is_some());
    }
    // Forgetting part of the request rewrites the pack; the rest stays readable.
    let gone = &events[10];
    s.forget(&ws, &[(gone.event.event_id, gone.event.message_id.clone())])
        .await
        .unwrap();
    assert!(s.event(&ws, &ids[10], T0).await.unwrap().is_none());
    assert!(s.operational(&ws, &ids[10], T0).await.unwrap().is_none());
    assert!(s.event(&ws, &ids[11], T0).await.unwrap().is_some());
    assert_eq!(
        s.events_by_subject(&ws, "device-1", Page::first(1000), T0)
            .await
            .unwrap()
            .len(),
        99
    );
}

#[tokio::test]
async fn a_retried_part_of_a_message_supersedes_its_earlier_outcome() {
    let l = delivery_log().await;
    let ws = ws();
    let d = DestinationId::new(&unique());
    let ids = same_millisecond_ids(3);
    let first: Vec<_> = ids
        .iter()
        .map(|e| testkit::delivery_record(&ws, &d, *e, DeliveryStatus::Retrying, T0))
        .collect();
    l.record(&first).await.unwrap();
    // The retry carries only two of the three items.
    let later = T0 + time::Duration::minutes(5);
    let retry: Vec<_> = ids[..2]
        .iter()
        .map(|e| {
            let mut r = testkit::delivery_record(&ws, &d, *e, DeliveryStatus::Delivered, later);
            r.attempts = 2;
            r
        })
        .collect();
    l.record(&retry).await.unwrap();
    assert_eq!(
        l.delivered(LogOf::new(&ws, &d), &ids, later).await.unwrap(),
        ids[..2]
    );
    let third = l.for_event(&ws, &ids[2], later).await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].status, DeliveryStatus::Retrying);
    let recent = l
        .for_destination(LogOf::new(&ws, &d), 10, later)
        .await
        .unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0].status, DeliveryStatus::Delivered);
    assert_eq!(recent[2].status, DeliveryStatus::Retrying);
}

#[tokio::test]
async fn concurrent_appends_from_many_tasks_keep_the_chain_gapless() {
    let l = Arc::new(audit_log().await);
    let ws = ws();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (l, ws) = (l.clone(), ws.clone());
        tasks.spawn(async move {
            l.append(
                tracklayer_core::audit::NewAuditEntry {
                    workspace_id: ws,
                    actor: format!("svc:{i}"),
                    action: "api_key.create".into(),
                    target: "key".into(),
                    summary: serde_json::json!({}),
                },
                T0,
            )
            .await
            .unwrap()
            .seq
        });
    }
    let mut seqs = tasks.join_all().await;
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (2..=13).collect::<Vec<_>>(),
        "seq 1 is the genesis entry"
    );
    let v = tracklayer_core::audit::verify(l.as_ref(), &ws)
        .await
        .unwrap();
    assert!(v.valid, "{v:?}");
    assert_eq!(v.entries_checked, 13);
}

/// A chain of five mutations after its genesis entry, and the raw client to tamper with it.
async fn audit_chain() -> (
    DynamoAuditLog,
    aws_sdk_dynamodb::Client,
    String,
    WorkspaceId,
) {
    let c = clients().await;
    let table = fresh_table(&c, Table::Audit).await;
    let l = DynamoAuditLog::new(c.dynamodb.clone(), &table, Arc::new(keyring().await));
    let ws = ws();
    for i in 0..5 {
        l.append(
            tracklayer_core::audit::NewAuditEntry {
                workspace_id: ws.clone(),
                actor: "user:usr_owner".into(),
                action: format!("a{i}"),
                target: "dst_1".into(),
                summary: serde_json::json!({}),
            },
            T0,
        )
        .await
        .unwrap();
    }
    (l, c.dynamodb, table, ws)
}

fn audit_key(
    ws: &WorkspaceId,
    seq: u64,
) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("W#{ws}"))),
        ("sk".to_owned(), AttributeValue::S(format!("{seq:012}"))),
    ])
}

#[tokio::test]
async fn deleting_the_last_audit_item_is_reported_against_the_head() {
    let (l, db, table, ws) = audit_chain().await;
    db.delete_item()
        .table_name(&table)
        .set_key(Some(audit_key(&ws, 6)))
        .send()
        .await
        .unwrap();
    let v = tracklayer_core::audit::verify(&l, &ws).await.unwrap();
    assert!(!v.valid);
    assert_eq!(v.first_invalid_seq, Some(6), "{v:?}");
}

#[tokio::test]
async fn an_audit_item_rewritten_with_a_plain_hash_is_an_hmac_mismatch() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (l, db, table, ws) = audit_chain().await;
    let item = db
        .get_item()
        .table_name(&table)
        .set_key(Some(audit_key(&ws, 3)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut e: tracklayer_core::audit::AuditEntry =
        serde_json::from_str(item["doc"].as_s().unwrap()).unwrap();
    e.summary = serde_json::json!({"rewritten": true});
    e.hash = e.legacy_hash();
    db.update_item()
        .table_name(&table)
        .set_key(Some(audit_key(&ws, 3)))
        .update_expression("SET doc = :d")
        .expression_attribute_values(":d", AttributeValue::S(serde_json::to_string(&e).unwrap()))
        .send()
        .await
        .unwrap();
    let v = tracklayer_core::audit::verify(&l, &ws).await.unwrap();
    assert_eq!(
        (v.valid, v.first_invalid_seq, v.reason.as_deref()),
        (false, Some(3), Some("hmac mismatch"))
    );
}

#[tokio::test]
async fn an_edited_actor_attribute_breaks_audit_verification() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (l, db, table, ws) = audit_chain().await;
    db.update_item()
        .table_name(&table)
        .set_key(Some(audit_key(&ws, 4)))
        .update_expression("SET actor = :a")
        .expression_attribute_values(":a", AttributeValue::S("user:usr_somebody_else".into()))
        .send()
        .await
        .unwrap();
    let v = tracklayer_core::audit::verify(&l, &ws).await.unwrap();
    assert!(!v.valid);
    assert_eq!(v.first_invalid_seq, Some(4), "{v:?}");
}

#[tokio::test]
async fn depth_counts_visible_in_flight_and_dead_messages() {
    let h = delivery_queue().await;
    let q = h.queue();
    let (ws, d) = (ws(), DestinationId::new(&unique()));
    let m = |body: &str| Outgoing {
        kind: DestinationKind::Ga4,
        destination_id: d.clone(),
        workspace_id: ws.clone(),
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
        shared: None,
    };
    q.enqueue(&[m("a"), m("b"), m("c")]).await.unwrap();
    q.enqueue_dead(&[m("d")], "HTTP 400").await.unwrap();
    let got = q
        .receive(DestinationKind::Ga4, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let depth = h.queue.depth(DestinationKind::Ga4).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (2, 1, 1));
}

#[tokio::test]
async fn a_message_received_elsewhere_is_dead_lettered_from_itself_with_nothing_remembered() {
    let h = delivery_queue().await;
    let (ws, d) = (ws(), DestinationId::new(&unique()));
    h.queue
        .enqueue(&[Outgoing {
            kind: DestinationKind::Webhook,
            destination_id: d.clone(),
            workspace_id: ws.clone(),
            body: b"from-lambda".to_vec(),
            delay: Duration::ZERO,
            shared: None,
        }])
        .await
        .unwrap();
    // A second queue handle (another process, a Lambda event source) receives; this one
    // dead-letters what it is handed.
    let c = clients().await;
    let other = SqsDeliveryQueue::new(c.sqs, h.queue_urls(), Arc::new(SystemClock));
    let got = other
        .receive(DestinationKind::Webhook, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);

    h.queue
        .dead_letter(DestinationKind::Webhook, &got[0], "refused")
        .await
        .unwrap();

    let dead = h
        .queue
        .dead_letters(DestinationKind::Webhook, 10)
        .await
        .unwrap();
    assert!(dead
        .iter()
        .any(|m| m.destination_id == d && m.reason == "refused" && m.body == b"from-lambda"));
    let depth = h.queue.depth(DestinationKind::Webhook).await.unwrap();
    assert_eq!(
        (depth.visible, depth.in_flight, depth.dead),
        (0, 0, 1),
        "moved, not copied"
    );
}

#[tokio::test]
async fn a_customer_key_that_does_not_exist_fails_closed_when_unwrapping() {
    let k = keyring().await;
    let ws = ws();
    let (_, wrapped) = k.generate_data_key(&ws, &KeyRef::Platform).await.unwrap();
    let missing = KeyRef::Customer {
        key_arn: "arn:aws:kms:eu-central-1:111122223333:key/11111111-2222-3333-4444-555555555555"
            .into(),
    };
    let err = k
        .unwrap_data_key(&ws, &missing, &wrapped)
        .await
        .unwrap_err();
    assert!(
        matches!(err, tracklayer_core::error::KeyError::Unavailable(_)),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// BYOK

async fn customer_key(c: &AwsClients) -> String {
    kms_key(c, "a customer's own key (test)").await
}

#[tokio::test]
async fn a_data_key_rewrapped_under_a_customer_key_opens_only_with_that_key() {
    let c = clients().await;
    let platform = customer_key(&c).await;
    let customer = KeyRef::Customer {
        key_arn: customer_key(&c).await,
    };
    let k = KmsKeyring::new(c.kms.clone(), platform, Duration::ZERO);
    let ws = ws();
    let (plain, _) = k.generate_data_key(&ws, &KeyRef::Platform).await.unwrap();
    let wrapped = k.wrap_data_key(&ws, &customer, &plain).await.unwrap();
    let back = k.unwrap_data_key(&ws, &customer, &wrapped).await.unwrap();
    assert_eq!(back.expose(), plain.expose());
    let missing = KeyRef::Customer {
        key_arn: "arn:aws:kms:eu-central-1:111122223333:key/99999999-2222-3333-4444-555555555555"
            .into(),
    };
    let err = k.wrap_data_key(&ws, &missing, &plain).await.unwrap_err();
    assert!(
        matches!(err, tracklayer_core::error::KeyError::Unavailable(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn deliveries_wait_without_spending_attempts_while_the_workspace_key_is_unavailable() {
    use tracklayer_core::deliver::service::{DeliveryConfig, Disposition};
    use tracklayer_core::event::{DeliveryItem, EventType, QueueBody};
    use tracklayer_core::ports::ControlStore;

    let control = Arc::new(control_store().await);
    let c = clients().await;
    let queues = provision::create_queues(&c.sqs, &format!("q-{}", unique()), &options())
        .await
        .expect("create queues on moto");
    let queue = Arc::new(SqsDeliveryQueue::new(c.sqs, queues, Arc::new(SystemClock)));
    // The customer's key does not exist (moto does not model a disabled key).
    let mut workspace = testkit::workspace(Region::Eu);
    workspace.key_ref = KeyRef::Customer {
        key_arn: "arn:aws:kms:eu-central-1:111122223333:key/88888888-2222-3333-4444-555555555555"
            .into(),
    };
    control.create_workspace(&workspace).await.unwrap();
    let dest = testkit::destination(&workspace.id, DestinationKind::Webhook, T0);
    control.put_destination(&dest).await.unwrap();
    let event = testkit::new_event(&workspace.id, "byok-held", &[], T0).event;
    let body = QueueBody {
        v: QueueBody::VERSION,
        attempts: 0,
        workspace_id: workspace.id.clone(),
        destination_id: dest.id.clone(),
        kind: DestinationKind::Webhook,
        items: vec![DeliveryItem {
            event_id: event.event_id,
            message_id: event.message_id,
            event_type: EventType::Track,
            name: event.name,
            timestamp: event.timestamp,
            properties: event.properties,
            user_data: Default::default(),
            consent: Default::default(),
            sealed: None,
            operational: None,
            shared: None,
            suppression: Vec::new(),
        }],
        by_reference: false,
    };
    queue
        .enqueue(&[Outgoing {
            kind: DestinationKind::Webhook,
            destination_id: dest.id.clone(),
            workspace_id: workspace.id.clone(),
            body: body.encode(),
            delay: Duration::ZERO,
            shared: None,
        }])
        .await
        .unwrap();
    // It keeps what it is sent: nothing may be sent while the workspace key is away.
    let egress = Arc::new(RecordingEgress::answering(200, b""));
    let service = Arc::new(
        delivery_on_moto(
            control.clone(),
            queue.clone(),
            Arc::new(delivery_log().await),
            Arc::new(keyring().await),
            Arc::new(dsr_store().await),
            egress.clone(),
            DeliveryConfig {
                // Without the pause, the first failure would dead-letter the message.
                max_attempts: 1,
                paused_recheck: Duration::ZERO,
                ..DeliveryConfig::default()
            },
        )
        .await,
    );

    // More rounds than the queue's redrive limit.
    for _ in 0..MAX_RECEIVES + 2 {
        let received = queue
            .receive(DestinationKind::Webhook, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(received.len(), 1, "the message is still queued");
        assert_eq!(received[0].receive_count, 1, "no receive was spent");
        let dispositions = service.process(DestinationKind::Webhook, &received).await;
        assert_eq!(dispositions, vec![Disposition::Hold(Duration::ZERO)]);
        service
            .apply(DestinationKind::Webhook, &received[0], &dispositions[0])
            .await
            .unwrap();
    }
    assert_eq!(egress.sent().len(), 0);
    let depth = queue.depth(DestinationKind::Webhook).await.unwrap();
    assert_eq!((depth.visible, depth.dead), (1, 0), "{depth:?}");
}

#[tokio::test]
async fn an_ended_keys_record_carries_a_ttl_90_days_past_its_end() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use tracklayer_core::keys::KeyKind;
    use tracklayer_core::ports::ControlStore;

    let c = clients().await;
    let table = fresh_table(&c, Table::Control).await;
    let store = DynamoControlStore::new(c.dynamodb.clone(), table.clone());
    let workspace = testkit::workspace(Region::Eu);
    store.create_workspace(&workspace).await.unwrap();
    let mut key = testkit::api_key(&workspace.id, KeyKind::Svc);
    store.create_api_key(&key).await.unwrap();
    let ttl_of = |key: &tracklayer_core::keys::ApiKeyRecord| {
        let (c, table, pk, sk) = (
            c.dynamodb.clone(),
            table.clone(),
            format!("W#{}", key.workspace_id),
            format!("KEY#{}", key.id),
        );
        async move {
            let item = c
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .unwrap()
                .item
                .expect("the key item");
            item["expires_at"].as_n().unwrap().parse::<i64>().unwrap()
        }
    };
    assert_eq!(
        ttl_of(&key).await,
        (key.expires_at + time::Duration::days(90)).unix_timestamp(),
        "an unrevoked key: 90 days after its expiry"
    );
    key.revoked_at = Some(T0 + time::Duration::days(2));
    store.update_api_key(&key).await.unwrap();
    assert_eq!(
        ttl_of(&key).await,
        (T0 + time::Duration::days(92)).unix_timestamp(),
        "a revoked key: 90 days after its revocation"
    );
}

#[tokio::test]
async fn a_closed_workspaces_account_items_carry_a_ttl_90_days_after_the_closure() {
    use tracklayer_core::admin::close_account;
    use tracklayer_core::keys::{KeyKind, Role};
    use tracklayer_core::ports::ControlStore;

    let c = clients().await;
    let table = fresh_table(&c, Table::Control).await;
    let store = DynamoControlStore::new(c.dynamodb.clone(), table.clone());
    let ws = testkit::workspace(Region::Eu);
    store.create_workspace(&ws).await.unwrap();
    store
        .create_user(&testkit::user(&ws.id, "ann@example.com", Role::Admin))
        .await
        .unwrap();
    let live = testkit::api_key(&ws.id, KeyKind::Ingest);
    let mut ended = testkit::api_key(&ws.id, KeyKind::Svc);
    ended.revoked_at = Some(T0 - time::Duration::days(10));
    store.create_api_key(&live).await.unwrap();
    store.create_api_key(&ended).await.unwrap();
    store
        .put_destination(&testkit::destination(
            &ws.id,
            tracklayer_core::destination::DestinationKind::MetaCapi,
            T0,
        ))
        .await
        .unwrap();

    close_account(&store, &ws, T0, None).await.unwrap();

    let ttl_90 = (T0 + time::Duration::days(90)).unix_timestamp();
    let mut seen = Vec::new();
    for item in scan::items(&c.dynamodb, &table).await {
        let sk = item["sk"].as_s().unwrap().clone();
        let ttl: i64 = item
            .get("expires_at")
            .unwrap_or_else(|| panic!("{sk} has no TTL"))
            .as_n()
            .unwrap()
            .parse()
            .unwrap();
        let expected = if sk == format!("KEY#{}", ended.id) {
            (T0 + time::Duration::days(80)).unix_timestamp()
        } else {
            ttl_90
        };
        assert_eq!(ttl, expected, "{sk}");
        seen.push(sk.split('#').next().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        ["KEY", "KEY", "LOGIN", "UNAME", "USER", "WS"],
        "the destination is deleted; a key revoked before keeps its earlier TTL"
    );
}

#[tokio::test]
async fn a_retry_on_the_next_day_leaves_no_index_entry_to_outlive_an_erasure() {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    let s = DynamoEventStore::new(c.dynamodb.clone(), table.clone());
    let ws = ws();
    let late = time::macros::datetime!(2026-03-01 23:30:00 UTC);
    let next_morning = late + time::Duration::hours(10);
    let subject = format!("subject-{}", unique());
    let e = testkit::new_event(&ws, "m-r", &[&subject], late);
    s.record(std::slice::from_ref(&e), late).await.unwrap();
    let retry = testkit::new_event(&ws, "m-r", &[&subject], next_morning);
    assert_eq!(s.record(&[retry], next_morning).await.unwrap(), vec![false]);
    let rows = s.erase(&ws, &[e.event.event_id]).await.unwrap();
    assert_eq!((rows.events, rows.dedup_markers), (1, 1));
    let left = scan::table(&c.dynamodb, &table).await;
    assert!(
        !left.iter().any(|d| d.contains(&subject)),
        "no subject-day of the retry's day is left: {left:?}"
    );
}

#[tokio::test]
async fn erasing_part_of_a_shared_pack_moves_it_off_the_erased_events_id() {
    let c = clients().await;
    let table = fresh_table(&c, Table::Events).await;
    let s = DynamoEventStore::new(c.dynamodb.clone(), table.clone());
    let ws = ws();
    let ids = same_millisecond_ids(3);
    let events: Vec<_> = ["m-a", "m-b", "m-c"]
        .iter()
        .zip(["subject-a", "subject-b", "subject-c"])
        .zip(&ids)
        .map(|((m, subject), id)| {
            let mut e = testkit::new_event(&ws, m, &[subject], T0);
            e.event.event_id = *id;
            if let Some(op) = e.operational.as_mut() {
                op.event_id = *id;
            }
            e
        })
        .collect();
    s.record(&events, T0).await.unwrap();
    let rows = s.erase(&ws, &[ids[0]]).await.unwrap();
    assert_eq!((rows.events, rows.operational_records), (1, 1));
    let left = scan::table(&c.dynamodb, &table).await;
    let erased = ids[0].0.simple().to_string();
    assert!(!left.iter().any(|d| d.contains(&erased)), "{left:?}");
    assert!(!left.iter().any(|d| d.contains("subject-a")), "{left:?}");
    for (id, subject) in ids[1..].iter().zip(["subject-b", "subject-c"]) {
        assert!(s.event(&ws, id, T0).await.unwrap().is_some());
        assert!(s.operational(&ws, id, T0).await.unwrap().is_some());
        assert_eq!(
            s.events_by_subject(&ws, subject, Page::first(10), T0)
                .await
                .unwrap()
                .len(),
            1,
            "the moved pack is still indexed under {subject}"
        );
    }
}

#[tokio::test]
async fn ses_refuses_mail_from_an_unverified_sender_without_retrying() {
    use tracklayer_core::error::MailError;
    use tracklayer_core::ports::{Mail, Mailer};
    let mailer = SesMailer::new(clients().await.ses, "unverified@tracklayer.example");
    let mail = Mail {
        to: vec!["admin@example.com".into()],
        subject: "Your data export is ready".into(),
        text: "Download it within 7 days.".into(),
    };
    match mailer.send(&mail).await {
        Err(MailError::Rejected(reason)) => assert!(reason.contains("MessageRejected"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
}
