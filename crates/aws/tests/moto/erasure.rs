//! Issue 6 on AWS: a data-subject erasure leaves nothing of the subject in any table or
//! queue of the stack. Events go in through the real ingest pipeline (so the per-destination
//! hashes are the real ones), are queued on SQS, partly delivered and partly dead-lettered
//! (by the deliver side and by SQS's own redrive), with delivery-log entries; then `DsrService`
//! erases subject A. Every item of every table and every message of every queue and
//! dead-letter queue is read back, and nothing may name A; B's data stays.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracklayer_aws::provision;
use tracklayer_core::admin::Principal;
use tracklayer_core::clock::{Clock, SequentialIds, SystemClock, SystemIds};
use tracklayer_core::control_plane::{Bootstrapped, Control};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::service::{DsrConfig, DsrPorts, DsrService, SubjectIdentifiers};
use tracklayer_core::dsr::{DsrKind, DsrStatus, EventFootprint};
use tracklayer_core::event::{EventId, QueueBody};
use tracklayer_core::ingest::{
    parse_body, Endpoint, IngestConfig, IngestPorts, IngestService, RequestMeta,
};
use tracklayer_core::keys::KeyKind;
use tracklayer_core::ports::{
    ControlStore, DeliveryLog, DeliveryStatus, DsrStore, EventEraser, EventReader, Page,
    QueueConsumer,
};
use tracklayer_core::services::{CommonPorts, ReadPorts};
use tracklayer_core::workspace::{Region, WorkspaceId};

use super::scan::{self, Dumped};
use super::*;

/// A whole stack on moto: the template's four tables, a queue and DLQ per kind, a KMS key.
pub(super) struct Stack {
    clients: AwsClients,
    tables: TableNames,
    queues: BTreeMap<DestinationKind, QueueUrls>,
    pub(super) control: Arc<DynamoControlStore>,
    events: Arc<DynamoEventStore>,
    pub(super) log: Arc<DynamoDeliveryLog>,
    pub(super) queue: Arc<SqsDeliveryQueue>,
    pub(super) dsr: Arc<DynamoDsrStore>,
    pub(super) keyring: Arc<KmsKeyring>,
    mailer: Arc<SesMailer>,
    audit: Arc<DynamoAuditLog>,
}

impl Stack {
    pub(super) async fn new() -> Self {
        let c = clients_in("us-east-1").await;
        let prefix = format!("s{}", &unique()[20..]);
        let tables = TableNames {
            control: format!("{prefix}-control"),
            events: format!("{prefix}-events"),
            delivery_log: format!("{prefix}-delivery-log"),
            audit: format!("{prefix}-audit"),
        };
        for spec in provision::table_specs(&tables) {
            provision::create_table(&c.dynamodb, &spec, &options())
                .await
                .expect("create a table on moto");
        }
        let queues = provision::create_queues(&c.sqs, &prefix, &options())
            .await
            .expect("create queues on moto");
        let key = kms_key(&c, "TrackLayer platform key (test)").await;
        c.ses
            .create_email_identity(SENDER)
            .await
            .expect("verify the sender on moto");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let keyring = Arc::new(KmsKeyring::new(
            c.kms.clone(),
            key,
            Duration::from_secs(300),
        ));
        Self {
            control: Arc::new(DynamoControlStore::new(c.dynamodb.clone(), &tables.control)),
            events: Arc::new(DynamoEventStore::new(c.dynamodb.clone(), &tables.events)),
            log: Arc::new(DynamoDeliveryLog::new(
                c.dynamodb.clone(),
                &tables.delivery_log,
            )),
            queue: Arc::new(SqsDeliveryQueue::new(c.sqs.clone(), queues.clone(), clock)),
            dsr: Arc::new(DynamoDsrStore::new(
                c.dynamodb.clone(),
                &tables.control,
                &tables.events,
            )),
            keyring: keyring.clone(),
            mailer: Arc::new(SesMailer::new(c.ses.clone(), SENDER)),
            audit: Arc::new(DynamoAuditLog::new(
                c.dynamodb.clone(),
                &tables.audit,
                keyring,
            )),
            clients: c,
            tables,
            queues,
        }
    }

    fn table_names(&self) -> [&str; 4] {
        [
            &self.tables.control,
            &self.tables.events,
            &self.tables.delivery_log,
            &self.tables.audit,
        ]
    }

    /// Every item of every table.
    async fn tables_dump(&self) -> Vec<(String, HashMap<String, AttributeValue>)> {
        let mut out = Vec::new();
        for t in self.table_names() {
            for item in scan::items(&self.clients.dynamodb, t).await {
                out.push((t.to_owned(), item));
            }
        }
        out
    }

    /// Every item of every table and every message of every queue and DLQ, as text.
    async fn everything(&self) -> Vec<Dumped> {
        let mut out = Vec::new();
        for t in self.table_names() {
            out.extend(scan::table(&self.clients.dynamodb, t).await);
        }
        for urls in self.queues.values() {
            for url in [&urls.queue, &urls.dlq] {
                out.extend(scan::queue(&self.clients.sqs, url, Duration::from_secs(30)).await);
            }
        }
        out
    }

    /// A workspace in us with its owner and write key, as `init` creates it.
    pub(super) async fn bootstrap(&self, name: &str) -> Bootstrapped {
        let control = Control {
            store: self.control.as_ref(),
            keyring: self.keyring.as_ref(),
            clock: &SystemClock,
            ids: &SystemIds,
        };
        control
            .bootstrap(Region::Us, name)
            .await
            .expect("a workspace")
    }

    /// The events of `subjects` in the workspace, up to `limit`.
    async fn footprint(
        &self,
        ws: &WorkspaceId,
        subjects: &[String],
        limit: usize,
    ) -> Vec<EventFootprint> {
        self.events
            .subject_footprint(ws, subjects, Page::first(limit), SystemClock.now())
            .await
            .unwrap()
    }

    pub(super) fn ingest(&self) -> IngestService {
        let mut config = IngestConfig::new(Region::Us);
        // Every request reads the suppression list afresh (production: every 5 s).
        config.settings_ttl = time::Duration::ZERO;
        IngestService::new(
            IngestPorts {
                read: ReadPorts {
                    control: self.control.clone(),
                    keyring: self.keyring.clone(),
                    clock: Arc::new(SystemClock),
                    // Ids that increase within a request, so the shared request's pack is
                    // named after its first event: A's.
                    ids: Arc::new(SequentialIds::default()),
                },
                store: Arc::new(tracklayer_core::ingest::RecordThenEnqueue::new(
                    self.events.clone(),
                    self.queue.clone(),
                )),
                suppressions: self.dsr.clone(),
                stats: Arc::new(tracklayer_aws::DynamoStats::new(
                    self.clients.dynamodb.clone(),
                    &self.tables.delivery_log,
                )),
            },
            config,
        )
    }

    fn dsr_service(&self) -> DsrService {
        DsrService::new(
            DsrPorts {
                common: CommonPorts {
                    control: self.control.clone(),
                    keyring: self.keyring.clone(),
                    audit: self.audit.clone(),
                    delivery_log: self.log.clone(),
                    queue: self.queue.clone(),
                    dsr: self.dsr.clone(),
                    mailer: self.mailer.clone(),
                    clock: Arc::new(SystemClock),
                    ids: Arc::new(SystemIds),
                },
                events: self.events.clone(),
                connectors: tracklayer_connectors::connector,
            },
            DsrConfig {
                // Small pages, so the erasure takes several persisted steps.
                page_size: 2,
                suppression_propagation: time::Duration::ZERO,
                ..DsrConfig::default()
            },
        )
    }
}

/// A Segment track call of a person.
fn track(person: &Person, message_id: &str, value: u32) -> Value {
    json!({
        "type": "track",
        "event": "Order Completed",
        "messageId": message_id,
        "userId": person.user_id,
        "anonymousId": person.anonymous_id,
        "properties": {"value": value, "currency": "EUR", "order_id": format!("o-{message_id}")},
        "context": {
            "traits": {"email": person.email, "phone": person.phone, "first_name": person.first_name},
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Proof/1.0"
        }
    })
}

struct Person {
    user_id: String,
    anonymous_id: String,
    email: String,
    phone: String,
    first_name: &'static str,
}

impl Person {
    fn new(tag: &str, phone: &str, first_name: &'static str) -> Self {
        let u = &unique()[16..];
        Self {
            user_id: format!("user-{tag}-{u}"),
            anonymous_id: format!("anon-{tag}-{u}"),
            email: format!("{tag}.{u}@example.com"),
            phone: phone.to_owned(),
            first_name,
        }
    }

    fn raw(&self) -> Vec<String> {
        vec![
            self.user_id.clone(),
            self.anonymous_id.clone(),
            self.email.clone(),
        ]
    }
}

/// A request of `kind` about `person`, identified by their email.
async fn submit_by_email(
    service: &DsrService,
    admin: &Principal,
    kind: DsrKind,
    person: &Person,
) -> tracklayer_core::dsr::DsrRequest {
    let subject = SubjectIdentifiers {
        email: Some(person.email.clone()),
        ..Default::default()
    };
    service.submit(admin, kind, &subject, None).await.unwrap()
}

pub(super) async fn send(
    ingest: &IngestService,
    key: &tracklayer_core::keys::ApiKeyRecord,
    events: Vec<Value>,
) -> tracklayer_core::ingest::IngestOutcome {
    let body = serde_json::to_vec(&json!({ "batch": events })).unwrap();
    let parsed = parse_body(Endpoint::Batch, &body).expect("a valid batch");
    let meta = RequestMeta {
        ip: Some("203.0.113.9".parse().unwrap()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Proof/1.0".into()),
        gpc: false,
        browser: true,
    };
    ingest.ingest(key, &parsed, &meta).await.expect("ingested")
}

/// Event ids and hashes of the items of a queue message body.
fn body_facts(body: &[u8]) -> Vec<(EventId, Vec<String>)> {
    let b = QueueBody::decode(body).expect("a queue body");
    b.items
        .iter()
        .map(|i| (i.event_id, i.user_data.values().cloned().collect()))
        .collect()
}

/// The strings by which an event id can appear: `evt_<hex>` / bare hex (keys, pointers) and
/// the hyphenated UUID (JSON).
fn id_forms(id: &EventId) -> [String; 2] {
    [id.0.simple().to_string(), id.0.hyphenated().to_string()]
}

/// DynamoDB's item size: attribute names plus values (strings and binaries by length,
/// numbers about their digits, sets summed).
fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
            AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| k.len() + value(v) + 1).sum::<usize>()
            }
            AttributeValue::L(l) => 3 + l.iter().map(|v| value(v) + 1).sum::<usize>(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// Write units an erasure spent on the events and delivery-log tables, from the items
/// before and after: a deleted item costs its size (per started KB), a rewritten one the
/// larger of both, a new one its size, and each `subject` index entry that went 1 more.
fn write_units(
    before: &[(String, HashMap<String, AttributeValue>)],
    after: &[(String, HashMap<String, AttributeValue>)],
    tables: &[&str],
) -> (u64, BTreeMap<&'static str, u64>) {
    let key_of = |t: &str, i: &HashMap<String, AttributeValue>| {
        (
            t.to_owned(),
            i["pk"].as_s().unwrap().clone(),
            i["sk"].as_s().unwrap().clone(),
        )
    };
    let index = |all: &[(String, HashMap<String, AttributeValue>)]| {
        all.iter()
            .filter(|(t, _)| tables.contains(&t.as_str()))
            .map(|(t, i)| (key_of(t, i), i.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let (old, new) = (index(before), index(after));
    let kb = |n: usize| n.div_ceil(1024).max(1) as u64;
    let mut total = 0;
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let kind = |sk: &str, item: &HashMap<String, AttributeValue>| -> &'static str {
        if sk == "S" {
            "subject-day"
        } else if sk.starts_with("P#") {
            "event pack"
        } else if sk.starts_with("O#") {
            "operational pack"
        } else if item.contains_key("ref_pk") {
            "delivery pointer"
        } else {
            "delivery outcomes"
        }
    };
    for (k, item) in &old {
        let units = match new.get(k) {
            None => kb(item_bytes(item)) + u64::from(item.contains_key("subject_pk")),
            Some(n) if n != item => kb(item_bytes(item).max(item_bytes(n))),
            Some(_) => 0,
        };
        total += units;
        *by_kind.entry(kind(&k.2, item)).or_default() += units;
    }
    for (k, item) in &new {
        if !old.contains_key(k) {
            let units = kb(item_bytes(item));
            total += units;
            *by_kind.entry(kind(&k.2, item)).or_default() += units;
        }
    }
    (total, by_kind)
}

#[tokio::test]
async fn erasing_a_subject_leaves_nothing_of_it_in_any_table_or_queue() {
    let stack = Stack::new().await;
    let boot = stack.bootstrap("Erasure proof").await;
    let ws: WorkspaceId = boot.workspace.id.clone();
    let mut destinations = BTreeMap::new();
    for kind in [
        DestinationKind::MetaCapi,
        DestinationKind::Tiktok,
        DestinationKind::Webhook,
    ] {
        let mut d = testkit::destination(&ws, kind, SystemClock.now());
        if kind == DestinationKind::Webhook {
            d.config = json!({"url": "https://hooks.example.com/in"});
        }
        stack.control.put_destination(&d).await.unwrap();
        destinations.insert(kind, d);
    }
    let key = testkit::api_key(&ws, KeyKind::Ingest);
    let ingest = stack.ingest();
    let a = Person::new("alice", "+49 30 1234567", "Alice");
    let b = Person::new("bob", "+1 415 555 0100", "Bob");

    // Requests of A alone, one of A and B together (A's event first, so the shared pack is
    // named after A's event), B alone, and a retry of A's first message (a duplicate).
    let requests = [
        [track(&a, "a-1", 10), track(&a, "a-2", 20)],
        [track(&a, "a-3", 30), track(&b, "b-1", 5)],
        [track(&b, "b-2", 7), track(&b, "b-3", 8)],
        [track(&a, "a-1", 10), track(&a, "a-4", 40)],
    ];
    let mut outcomes = Vec::new();
    for events in requests {
        outcomes.push(send(&ingest, &key, events.to_vec()).await);
    }
    let accepted: Vec<usize> = outcomes.iter().map(|r| r.accepted).collect();
    assert_eq!(accepted, [2, 2, 2, 2]);
    assert_eq!(outcomes[3].duplicates, 1, "a-1 again is a duplicate");

    // Deliver: Meta accepts, the webhook refuses for good (dead letter by the deliver side),
    // TikTok never answers (SQS redrives after its maximum receives).
    let mut facts: BTreeMap<EventId, Vec<String>> = BTreeMap::new();
    let mut records = Vec::new();
    for kind in [DestinationKind::MetaCapi, DestinationKind::Webhook] {
        let got = stack
            .queue
            .receive(kind, 100, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(!got.is_empty(), "{kind} has messages");
        for m in got {
            for (id, hashes) in body_facts(&m.body) {
                facts.entry(id).or_default().extend(hashes);
                let status = if kind == DestinationKind::MetaCapi {
                    DeliveryStatus::Delivered
                } else {
                    DeliveryStatus::Dead
                };
                records.push(testkit::delivery_record(
                    &ws,
                    &m.destination_id,
                    id,
                    status,
                    SystemClock.now(),
                ));
            }
            if kind == DestinationKind::MetaCapi {
                stack.queue.ack(kind, &m.receipt).await.unwrap();
            } else {
                stack
                    .queue
                    .dead_letter(kind, &m, "HTTP 400: invalid payload")
                    .await
                    .unwrap();
            }
        }
    }
    for _ in 0..=MAX_RECEIVES {
        let got = stack
            .queue
            .receive(DestinationKind::Tiktok, 100, Duration::from_secs(1))
            .await
            .unwrap();
        for m in got {
            for (id, hashes) in body_facts(&m.body) {
                facts.entry(id).or_default().extend(hashes);
            }
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    for (kind, urls) in &stack.queues {
        assert_eq!(
            scan::queue(&stack.clients.sqs, &urls.queue, Duration::from_secs(10))
                .await
                .len(),
            0,
            "{kind}: every message was delivered or dead-lettered"
        );
    }
    stack.log.record(&records).await.unwrap();

    // B sends once more; this message waits in the queues through the erasure.
    let r5 = send(&ingest, &key, vec![track(&b, "b-4", 9)]).await;
    assert_eq!(r5.accepted, 1);

    // What belongs to whom, before the erasure.
    let service = stack.dsr_service();
    let admin = Principal::operator(&ws);
    let subject_a = SubjectIdentifiers {
        email: Some(a.email.clone()),
        phone: Some(a.phone.clone()),
        external_id: Some(a.user_id.clone()),
        anonymous_id: Some(a.anonymous_id.clone()),
    };
    let request = service
        .submit(
            &admin,
            DsrKind::Erasure,
            &subject_a,
            Some("TICKET-7".into()),
        )
        .await
        .expect("an erasure request");
    let subjects_a = request.subjects.clone();
    assert_eq!(subjects_a.len(), 4);
    let footprint_a = stack.footprint(&ws, &subjects_a, 1000).await;
    assert_eq!(footprint_a.len(), 4, "a-1, a-2, a-3, a-4");
    let ids_a: BTreeSet<EventId> = footprint_a.iter().map(|f| f.event.event_id).collect();
    let mut hashes_a: BTreeSet<String> = BTreeSet::new();
    for f in &footprint_a {
        for fields in f.event.hashed.values() {
            hashes_a.extend(fields.values().cloned());
        }
        hashes_a.extend(facts.get(&f.event.event_id).into_iter().flatten().cloned());
    }
    let mut b_facts: BTreeSet<String> = BTreeSet::new();
    for (id, hashes) in &facts {
        if !ids_a.contains(id) {
            b_facts.extend(hashes.iter().cloned());
        }
    }
    // A value both share (say, a country) says nothing about A.
    hashes_a.retain(|h| !b_facts.contains(h));
    assert!(
        hashes_a.len() >= 4,
        "A's per-destination hashes: {}",
        hashes_a.len()
    );
    let a_records = records
        .iter()
        .filter(|r| ids_a.contains(&r.event_id))
        .count() as u64;
    let dlqs: Vec<String> = stack
        .queues
        .values()
        .map(|u| format!("queue {}", u.dlq))
        .collect();
    let a_dead_items = |dump: &[Dumped]| -> u64 {
        dump.iter()
            .filter(|d| dlqs.contains(&d.place))
            .filter_map(|d| d.body.as_deref())
            .flat_map(|b| body_facts(b.as_bytes()))
            .filter(|(id, _)| ids_a.contains(id))
            .count() as u64
    };
    let subject_entries: u64 = footprint_a
        .iter()
        .map(|f| u64::from(f.subject_index_entries))
        .sum();
    let mut needles_a: Vec<String> = subjects_a.clone();
    needles_a.extend(ids_a.iter().flat_map(id_forms));
    needles_a.extend(hashes_a.iter().cloned());
    needles_a.extend(["a-1", "a-2", "a-3", "a-4"].map(|m| {
        let digest = Sha256::digest(m.as_bytes());
        hex::encode(&digest[..8]) // the dedup fingerprint of A's message ids
    }));
    needles_a.extend(a.raw());
    needles_a.extend(["o-a-1", "o-a-2", "o-a-3", "o-a-4"].map(String::from));
    println!(
        "looking for {} values of A: {} subject-index values, {} event ids in two forms, {} per-destination hashes, 4 dedup fingerprints, 3 raw identifiers, 4 order ids",
        needles_a.len(),
        subjects_a.len(),
        ids_a.len(),
        hashes_a.len()
    );
    let before = stack.everything().await;
    // Every needle but the raw identifiers (never stored at all) is there to be found.
    let raw = a.raw();
    for n in needles_a.iter().filter(|n| !raw.contains(n)) {
        assert!(
            before.iter().any(|d| d.contains(n)),
            "before the erasure, each of A's values is found ({} of {})",
            needles_a.iter().position(|x| x == n).unwrap_or(0),
            needles_a.len()
        );
    }
    for n in &raw {
        assert!(
            !before.iter().any(|d| d.contains(n)),
            "raw identifiers are never stored"
        );
    }
    let dead_a = a_dead_items(&before);
    assert!(dead_a >= 8, "A's items in the dead letters: {dead_a}");
    let items_before = stack.tables_dump().await;

    // Erase A.
    let mut runs = 0;
    let done = loop {
        let report = service.run().await;
        assert_eq!(report.failed, 0, "{report:?}");
        runs += 1;
        let r = stack.dsr.request(&ws, &request.id).await.unwrap().unwrap();
        if r.status == DsrStatus::Completed {
            break r;
        }
        assert!(runs < 50, "the erasure did not complete: {r:?}");
    };
    let receipt = done.receipt.clone().expect("a receipt");
    assert!(receipt.suppressed);
    assert!(
        done.subjects.is_empty(),
        "the request forgets A's index values"
    );
    assert_eq!(receipt.counts.events, 4);
    assert_eq!(receipt.counts.subject_index_entries, subject_entries);
    assert_eq!(receipt.counts.operational_records, 4);
    assert_eq!(receipt.counts.dedup_markers, 4);
    assert_eq!(receipt.counts.delivery_log_entries, a_records);
    assert_eq!(receipt.counts.queue_items, dead_a);
    assert!(receipt.pages >= 2, "page size 2: {} pages", receipt.pages);

    // Nothing anywhere names A.
    let after = stack.everything().await;
    let hits = scan::find(&after, &needles_a);
    assert!(hits.is_empty(), "A is still there: {hits:?}");
    // B is intact: its events, index, delivery log and waiting message.
    let subjects_b = SubjectIdentifiers {
        email: Some(b.email.clone()),
        ..Default::default()
    };
    let keys = tracklayer_core::crypto::WorkspaceKeys::new(
        &stack
            .keyring
            .unwrap_data_key(&ws, &boot.workspace.key_ref, &boot.workspace.data_key)
            .await
            .unwrap(),
    );
    let index_b = subjects_b.index(&keys).unwrap().values;
    let left_b = stack.footprint(&ws, &index_b, 1000).await;
    assert_eq!(left_b.len(), 4, "b-1 .. b-4");
    let ids_b: Vec<EventId> = left_b.iter().map(|f| f.event.event_id).collect();
    for id in &ids_b {
        assert!(stack
            .events
            .event(&ws, id, SystemClock.now())
            .await
            .unwrap()
            .is_some());
        assert!(
            after.iter().any(|d| d.contains(&id.0.simple().to_string())),
            "B's event is still in the stack"
        );
    }
    let b_log = stack.log.for_events(&ws, &ids_b).await.unwrap();
    assert_eq!(
        b_log.len(),
        records.len() - a_records as usize,
        "B's delivery log is intact"
    );
    let b_waiting = after
        .iter()
        .filter(|d| {
            d.place.starts_with("queue") && d.contains(&ids_b[3].0.hyphenated().to_string())
        })
        .count();
    assert_eq!(
        b_waiting, 3,
        "B's last event waits in each destination's queue"
    );

    // Write units of the erasure on the events and delivery-log tables.
    let items_after = stack.tables_dump().await;
    let (units, by_kind) = write_units(
        &items_before,
        &items_after,
        &[&stack.tables.events, &stack.tables.delivery_log],
    );
    println!("erasure of 4 events (3 requests, 4 subjects): {units} write units {by_kind:?}");

    // A writes again: suppressed, nothing stored or queued.
    let later = send(&ingest, &key, vec![track(&a, "a-5", 50)]).await;
    assert_eq!((later.accepted, later.suppressed), (1, 1));
    assert!(stack.footprint(&ws, &subjects_a, 10).await.is_empty());
    let finally = stack.everything().await;
    let hits = scan::find(&finally, &subjects_a);
    assert!(hits.is_empty(), "A's later event left a trace: {hits:?}");
    assert!(!finally.iter().any(|d| d.contains("o-a-5")));
}

#[tokio::test]
async fn a_ga4_erasure_receipt_lists_the_client_ids_sent_and_no_table_holds_them_in_the_clear() {
    // Arrange: A's and B's events went to a GA4 destination, which accepted them.
    let stack = Stack::new().await;
    let ws = stack.bootstrap("GA4 receipt").await.workspace.id;
    let mut ga4 = testkit::destination(&ws, DestinationKind::Ga4, SystemClock.now());
    ga4.config = json!({"measurement_id": "G-TEST123"});
    stack.control.put_destination(&ga4).await.unwrap();
    let key = testkit::api_key(&ws, KeyKind::Ingest);
    let ingest = stack.ingest();
    let a = Person::new("alice", "+49 30 1234567", "Alice");
    let b = Person::new("bob", "+1 415 555 0100", "Bob");
    let sent = send(
        &ingest,
        &key,
        vec![
            track(&a, "a-1", 10),
            track(&b, "b-1", 5),
            track(&a, "a-2", 20),
        ],
    )
    .await;
    assert_eq!(sent.accepted, 3);
    let events = stack
        .queue
        .receive(DestinationKind::Ga4, 10, Duration::from_secs(30))
        .await
        .unwrap();
    let records: Vec<_> = events
        .iter()
        .flat_map(|m| body_facts(&m.body))
        .map(|(id, _)| {
            testkit::delivery_record(
                &ws,
                &ga4.id,
                id,
                DeliveryStatus::Delivered,
                SystemClock.now(),
            )
        })
        .collect();
    assert_eq!(records.len(), 3, "every event was routed to GA4");
    stack.log.record(&records).await.unwrap();
    for m in &events {
        stack
            .queue
            .ack(DestinationKind::Ga4, &m.receipt)
            .await
            .unwrap();
    }

    // Act: A is erased; an admin reads the request.
    let service = stack.dsr_service();
    let admin = Principal::operator(&ws);
    let request = submit_by_email(&service, &admin, DsrKind::Erasure, &a).await;
    for _ in 0..10 {
        service.run().await;
    }
    let read = service.get(&admin, request.id.as_str()).await.unwrap();

    // Assert: GA4's part lists A's client id (the anonymous id GA4 got), not B's...
    assert_eq!(read.status, DsrStatus::Completed);
    let receipt = read.receipt.expect("a receipt");
    let at_ga4 = receipt
        .destinations
        .iter()
        .find(|d| d.destination_id == ga4.id)
        .expect("GA4's part");
    assert_eq!(at_ga4.events_delivered, 2);
    assert_eq!(at_ga4.client_ids.0, vec![a.anonymous_id.clone()]);
    // ...and no item of any table holds either in the clear: the receipt keeps them sealed.
    assert!(receipt.client_ids.is_some());
    let after = stack.everything().await;
    assert!(
        after.iter().any(|d| d.contains("G-TEST123")),
        "the scan reads"
    );
    let client_ids = [a.anonymous_id.clone(), b.anonymous_id.clone()];
    let hits = scan::find(&after, &client_ids);
    assert!(hits.is_empty(), "a client id in the clear: {hits:?}");
}

#[tokio::test]
async fn an_access_export_is_stored_sealed_for_7_days_and_downloads_the_subjects_events() {
    let stack = Stack::new().await;
    let ws = stack.bootstrap("Access proof").await.workspace.id;
    let meta = testkit::destination(&ws, DestinationKind::MetaCapi, SystemClock.now());
    stack.control.put_destination(&meta).await.unwrap();
    let key = testkit::api_key(&ws, KeyKind::Ingest);
    let ingest = stack.ingest();
    let b = Person::new("bob", "+1 415 555 0100", "Bob");
    let c = Person::new("carol", "+44 20 7946 0000", "Carol");
    send(
        &ingest,
        &key,
        vec![track(&b, "b-1", 5), track(&c, "c-1", 6)],
    )
    .await;
    send(&ingest, &key, vec![track(&b, "b-2", 7)]).await;

    let service = stack.dsr_service();
    let admin = Principal::operator(&ws);
    let request = submit_by_email(&service, &admin, DsrKind::Access, &b).await;
    let subjects_b = request.subjects.clone();
    let ids_b: Vec<EventId> = stack
        .footprint(&ws, &subjects_b, 10)
        .await
        .iter()
        .map(|f| f.event.event_id)
        .collect();
    assert_eq!(ids_b.len(), 2);
    for _ in 0..10 {
        service.run().await;
        let r = stack.dsr.request(&ws, &request.id).await.unwrap().unwrap();
        if r.status == DsrStatus::Completed {
            break;
        }
    }
    let export = service.export(&admin, request.id.as_str()).await.unwrap();
    assert_eq!(export["events"].as_array().unwrap().len(), 2);
    let text = export.to_string();
    for id in &ids_b {
        assert!(text.contains(&id.to_string()), "B's event is in the export");
    }
    assert!(!text.contains("c-1"), "only the subject's events");

    // The parts are EventsTable items of the request, sealed, expiring in 7 days.
    let parts: Vec<_> = scan::items(&stack.clients.dynamodb, &stack.tables.events)
        .await
        .into_iter()
        .filter(|i| {
            i["pk"]
                .as_s()
                .unwrap()
                .ends_with(&format!("#X#{}", request.id))
        })
        .collect();
    assert!(!parts.is_empty());
    let now = SystemClock.now().unix_timestamp();
    for p in &parts {
        let data = p["data"].as_b().unwrap().as_ref();
        for id in &ids_b {
            let hex = id.0.hyphenated().to_string();
            assert!(
                !String::from_utf8_lossy(data).contains(&hex),
                "an export part is sealed, not plain JSON"
            );
        }
        let expires: i64 = p["expires_at"].as_n().unwrap().parse().unwrap();
        let days = (expires - now) as f64 / 86_400.0;
        assert!((6.99..=7.01).contains(&days), "expires in {days} days");
    }
    // Past its 7 days, nothing is read although moto never deletes the items.
    assert!(stack
        .dsr
        .export_parts(
            &ws,
            &request.id,
            SystemClock.now() + time::Duration::days(7)
        )
        .await
        .unwrap()
        .is_empty());
}
