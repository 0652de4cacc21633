//! Delivery, as a deterministic specification: retry and backoff (with `Retry-After`), the
//! circuit breaker, partial failures in a batch, dead-lettering after the attempt limit,
//! pause (a paused destination, a workspace with egress paused) and replay.
//!
//! Time is a fixed clock moved by hand, ids are sequential, the destination is a scripted
//! egress in front of a scripted connector, and the queue, delivery log, control store and
//! keyring are in memory: every case runs in milliseconds, with no sleep and no wall clock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

use super::service::{DeliveryConfig, DeliveryPorts, DeliveryService, Disposition};
use super::{
    classify_status, ByteLimits, Connector, DropReason, HttpRequest, HttpResponse, OpenedItem,
    Outcome, Target,
};
use crate::clock::{Clock, FixedClock, Ids, SequentialIds};
use crate::crypto::{DataKey, WorkspaceKeys, WrappedKey};
use crate::destination::secret_opener::secrets_aad;
use crate::destination::{Destination, DestinationId, DestinationKind};
use crate::error::{KeyError, StoreError};
use crate::event::{DeliveryItem, EventId, MessageId, QueueBody};
use crate::keys::{ApiKeyRecord, KeyId};
use crate::ports::SuppressionList;
use crate::ports::{
    ControlReader, DeadLetterAdmin, DeliveryCursor, DeliveryLog, DeliveryPage, DeliveryQuery,
    DeliveryRecord, DeliveryStatus, Egress, EgressError, Enqueuer, Keyring, LogOf, Outgoing,
    QueueConsumer, Receipt, Received, Remainder, ReplayFilter,
};
use crate::services::ReadPorts;
use crate::workspace::{KeyRef, Region, Workspace, WorkspaceId};

const KIND: DestinationKind = DestinationKind::Webhook;
const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);
const VISIBILITY: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The scripted destination

/// A vendor format for the specification: a request carries the event ids; an answer of 200
/// with `{"refuse": [i], "retry": [j]}` refuses or defers single items; other statuses are
/// classified like every connector does (`classify_status`), without a clock of its own.
/// An item named `invalid` is screened out, one named `unsendable` dead-lettered unsent; an
/// item named `big` takes 1,000 bytes against `config.max_request_bytes` and
/// `config.max_item_bytes`, any other what a request of its own takes; `config.role_arn`
/// names a role to assume, and a request carries the `aws_access_key_id` it was given.
struct ScriptedConnector;

impl Connector for ScriptedConnector {
    fn batch_limit(&self, target: &Target<'_>) -> usize {
        target.destination.config["batch_size"]
            .as_u64()
            .unwrap_or(100) as usize
    }
    fn byte_limits(&self, target: &Target<'_>) -> Option<ByteLimits> {
        let cfg = &target.destination.config;
        Some(ByteLimits {
            request: cfg["max_request_bytes"].as_u64()? as usize,
            item: cfg["max_item_bytes"].as_u64()? as usize,
        })
    }
    /// An item named `big` takes 1,000 bytes; the others what a request of their own takes.
    fn item_bytes(&self, target: &Target<'_>, item: &OpenedItem) -> usize {
        match item.item.name.as_deref() {
            Some("big") => 1000,
            _ => self.build(target, &[item]).map_or(0, |r| r.body.len()),
        }
    }
    fn screen(&self, _target: &Target<'_>, item: &OpenedItem) -> Result<(), DropReason> {
        match item.item.name.as_deref() {
            Some("invalid") => Err(DropReason::Invalid("scripted: not acceptable".into())),
            Some("unsendable") => Err(DropReason::Unsendable("scripted: too large".into())),
            _ => Ok(()),
        }
    }
    fn assumed_role(&self, target: &Target<'_>) -> Option<super::roles::RoleRequest> {
        let arn = target.destination.config["role_arn"].as_str()?;
        Some(super::roles::RoleRequest::for_target(target, arn))
    }
    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        let ids: Vec<String> = items.iter().map(|o| o.item.event_id.to_string()).collect();
        Ok(HttpRequest {
            url: format!("{}/events", target.base_url),
            headers: Vec::new(),
            body: serde_json::to_vec(&json!({
                "ids": ids,
                "key": target.secrets.get("aws_access_key_id"),
            }))
            .map_err(|e| e.to_string())?,
        })
    }
    fn classify(&self, _items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
        let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let list = |key: &str| -> Vec<usize> {
            answer[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_u64)
                        .map(|i| i as usize)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (refuse, retry) = (list("refuse"), list("retry"));
        if response.status == 200 && !(refuse.is_empty() && retry.is_empty()) {
            let mut per_item: Vec<(usize, Outcome)> = Vec::new();
            for i in refuse {
                per_item.push((
                    i,
                    Outcome::Permanent {
                        reason: "scripted: refused".into(),
                    },
                ));
            }
            for i in retry {
                per_item.push((
                    i,
                    Outcome::Retry {
                        after: None,
                        reason: "scripted: later".into(),
                    },
                ));
            }
            return Outcome::PerItem(per_item);
        }
        // Like the vendor connectors: no clock here, so an HTTP date is read against the epoch.
        classify_status(response, OffsetDateTime::UNIX_EPOCH)
    }
    fn erasure_guidance(&self, sent: &crate::dsr::SentToVendor<'_>) -> String {
        format!(
            "delete the {} events at the scripted destination",
            sent.delivered
        )
    }
}

fn scripted_connector(_kind: DestinationKind) -> &'static dyn Connector {
    &ScriptedConnector
}

fn base_url(_kind: DestinationKind) -> &'static str {
    "https://destination.test"
}

/// Answers requests from a script, in order; then 200. Keeps the event ids of each request.
#[derive(Default)]
struct ScriptedEgress {
    script: Mutex<VecDeque<Result<HttpResponse, EgressError>>>,
    requests: Mutex<Vec<Vec<String>>>,
    /// The `aws_access_key_id` each request was built with (`null`: none).
    keys: Mutex<Vec<Value>>,
    /// Requests being answered now, and the most at once.
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

impl ScriptedEgress {
    /// Queues an answer; `retry_after` is its `Retry-After` header, if any.
    fn answer(&self, status: u16, retry_after: Option<&str>, body: Value) {
        let headers = retry_after.map(|v| ("Retry-After".to_owned(), v.to_owned()));
        self.script.lock().unwrap().push_back(Ok(HttpResponse {
            status,
            headers: headers.into_iter().collect(),
            body: body.to_string().into_bytes(),
        }));
    }
    /// Scripts `n` answers of `status`, without `Retry-After` and with an empty JSON body.
    fn fail_times(&self, n: usize, status: u16) {
        for _ in 0..n {
            self.answer(status, None, json!({}));
        }
    }
    fn requests(&self) -> Vec<Vec<String>> {
        self.requests.lock().unwrap().clone()
    }
    fn most_in_flight(&self) -> usize {
        self.most_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl Egress for ScriptedEgress {
    async fn post(&self, request: &HttpRequest) -> Result<HttpResponse, EgressError> {
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        let ids = sent["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        self.requests.lock().unwrap().push(ids);
        self.keys.lock().unwrap().push(sent["key"].clone());
        // Answered after the other tasks had their turn: requests in flight together overlap.
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_in_flight.fetch_max(now, SeqCst);
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        self.in_flight.fetch_sub(1, SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| {
            Ok(HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: b"{}".to_vec(),
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory ports

#[derive(Default)]
struct MemoryControl {
    workspaces: Mutex<Vec<Workspace>>,
    destinations: Mutex<Vec<Destination>>,
}

#[async_trait]
impl ControlReader for MemoryControl {
    async fn workspace(
        &self,
        id: &WorkspaceId,
        _now: OffsetDateTime,
    ) -> Result<Option<Workspace>, StoreError> {
        let all = self.workspaces.lock().unwrap();
        Ok(all.iter().find(|w| &w.id == id).cloned())
    }
    async fn api_key(
        &self,
        _id: &KeyId,
        _now: OffsetDateTime,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(None)
    }
    async fn destinations(&self, ws: &WorkspaceId) -> Result<Vec<Destination>, StoreError> {
        let all = self.destinations.lock().unwrap();
        Ok(all
            .iter()
            .filter(|d| &d.workspace_id == ws)
            .cloned()
            .collect())
    }
    async fn destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<Option<Destination>, StoreError> {
        let all = self.destinations.lock().unwrap();
        Ok(all
            .iter()
            .find(|d| &d.workspace_id == ws && &d.id == id)
            .cloned())
    }
}

/// One data key for every workspace.
struct MemoryKeyring;

fn data_key() -> DataKey {
    DataKey::from_bytes([7; 32])
}

#[async_trait]
impl Keyring for MemoryKeyring {
    async fn generate_data_key(
        &self,
        _ws: &WorkspaceId,
        _key: &KeyRef,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        Ok((data_key(), WrappedKey(vec![7])))
    }
    async fn unwrap_data_key(
        &self,
        _ws: &WorkspaceId,
        _key: &KeyRef,
        _wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        Ok(data_key())
    }
    async fn wrap_data_key(
        &self,
        _ws: &WorkspaceId,
        _key: &KeyRef,
        _plain: &DataKey,
    ) -> Result<WrappedKey, KeyError> {
        Ok(WrappedKey(vec![7]))
    }
}

#[derive(Debug, Clone)]
struct Message {
    id: u64,
    destination_id: DestinationId,
    workspace_id: WorkspaceId,
    body: Vec<u8>,
    visible_at: OffsetDateTime,
    receive_count: u32,
    enqueued_at: OffsetDateTime,
    dead: Option<(String, OffsetDateTime)>,
}

/// A queue with SQS semantics on the injected clock: hidden while received, visible again
/// after a delay, a dead-letter side that replay empties.
struct MemoryQueue {
    clock: Arc<FixedClock>,
    messages: Mutex<Vec<Message>>,
    next_id: Mutex<u64>,
}

impl MemoryQueue {
    fn new(clock: Arc<FixedClock>) -> Self {
        Self {
            clock,
            messages: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
        }
    }
    fn push(&self, m: &Outgoing, dead: Option<String>) {
        let now = self.clock.now();
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        self.messages.lock().unwrap().push(Message {
            id: *next,
            destination_id: m.destination_id.clone(),
            workspace_id: m.workspace_id.clone(),
            body: m.body.clone(),
            visible_at: now + m.delay,
            receive_count: 0,
            enqueued_at: now,
            dead: dead.map(|r| (r, now)),
        });
    }
    fn with<T>(&self, receipt: &Receipt, f: impl FnOnce(&mut Message) -> T) -> Option<T> {
        let mut all = self.messages.lock().unwrap();
        all.iter_mut()
            .find(|m| m.id.to_string() == receipt.0)
            .map(f)
    }
    /// The bodies of the messages waiting (not dead), in order.
    fn waiting(&self) -> Vec<QueueBody> {
        let all = self.messages.lock().unwrap();
        all.iter()
            .filter(|m| m.dead.is_none())
            .map(|m| serde_json::from_slice(&m.body).unwrap())
            .collect()
    }
    /// The dead letters' bodies and reasons.
    fn dead(&self) -> Vec<(QueueBody, String)> {
        let all = self.messages.lock().unwrap();
        all.iter()
            .filter_map(|m| {
                let (reason, _) = m.dead.as_ref()?;
                Some((serde_json::from_slice(&m.body).unwrap(), reason.clone()))
            })
            .collect()
    }
}

#[async_trait]
impl Enqueuer for MemoryQueue {
    async fn enqueue(&self, messages: &[Outgoing]) -> Result<(), StoreError> {
        messages.iter().for_each(|m| self.push(m, None));
        Ok(())
    }
    fn items_by_reference(&self) -> bool {
        false
    }
}

#[async_trait]
impl QueueConsumer for MemoryQueue {
    async fn enqueue_dead(&self, messages: &[Outgoing], reason: &str) -> Result<(), StoreError> {
        messages
            .iter()
            .for_each(|m| self.push(m, Some(reason.to_owned())));
        Ok(())
    }
    async fn receive(
        &self,
        _kind: DestinationKind,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, StoreError> {
        let now = self.clock.now();
        let mut all = self.messages.lock().unwrap();
        let mut out = Vec::new();
        for m in all.iter_mut() {
            if out.len() >= max || m.dead.is_some() || m.visible_at > now {
                continue;
            }
            m.receive_count += 1;
            m.visible_at = now + visibility;
            out.push(Received {
                receipt: Receipt(m.id.to_string()),
                destination_id: m.destination_id.clone(),
                workspace_id: m.workspace_id.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
                enqueued_at: m.enqueued_at,
                shared: None,
            });
        }
        Ok(out)
    }
    async fn ack(&self, _kind: DestinationKind, receipt: &Receipt) -> Result<(), StoreError> {
        self.messages
            .lock()
            .unwrap()
            .retain(|m| m.id.to_string() != receipt.0);
        Ok(())
    }
    async fn retry_later(
        &self,
        _kind: DestinationKind,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.with(receipt, |m| m.visible_at = now + delay);
        Ok(())
    }
    async fn hold(
        &self,
        _kind: DestinationKind,
        msg: &Received,
        delay: Duration,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.with(&msg.receipt, |m| {
            m.visible_at = now + delay;
            m.receive_count = m.receive_count.saturating_sub(1);
        });
        Ok(())
    }
    async fn replace(
        &self,
        _kind: DestinationKind,
        msg: &Received,
        remainder: &Remainder,
    ) -> Result<(), StoreError> {
        remainder.retry.iter().for_each(|m| self.push(m, None));
        let reason = Some(remainder.reason.clone());
        remainder
            .dead
            .iter()
            .for_each(|m| self.push(m, reason.clone()));
        let id = msg.receipt.0.clone();
        self.messages
            .lock()
            .unwrap()
            .retain(|m| m.id.to_string() != id);
        Ok(())
    }
    async fn dead_letter(
        &self,
        _kind: DestinationKind,
        msg: &Received,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.with(&msg.receipt, |m| m.dead = Some((reason.to_owned(), now)));
        Ok(())
    }
}

#[async_trait]
impl DeadLetterAdmin for MemoryQueue {
    async fn replay(
        &self,
        _kind: DestinationKind,
        filter: &ReplayFilter,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut n = 0;
        for m in self.messages.lock().unwrap().iter_mut() {
            let matches = filter
                .destination_id
                .as_ref()
                .is_none_or(|d| *d == m.destination_id);
            if m.dead.is_some() && matches {
                m.dead = None;
                m.receive_count = 0;
                m.visible_at = now;
                n += 1;
            }
        }
        Ok(n)
    }
    async fn purge_events(
        &self,
        _kind: DestinationKind,
        _ws: &WorkspaceId,
        _events: &[EventId],
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// No subject was erased.
/// This world's queue holds items by value: delivery reads no event.
struct NoEvents;

#[async_trait]
impl crate::ports::EventReader for NoEvents {
    async fn event(
        &self,
        _ws: &WorkspaceId,
        _id: &EventId,
        _now: OffsetDateTime,
    ) -> Result<Option<crate::event::StoredEvent>, StoreError> {
        Ok(None)
    }
    async fn operational_records(
        &self,
        _ws: &WorkspaceId,
        _ids: &[EventId],
        _now: OffsetDateTime,
    ) -> Result<Vec<crate::event::OperationalRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn event_ids_by_message_id(
        &self,
        _ws: &WorkspaceId,
        _message_id: &MessageId,
        _now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        Ok(Vec::new())
    }
    async fn recent_events(
        &self,
        _ws: &WorkspaceId,
        _query: &crate::event::RecentEvents,
        _now: OffsetDateTime,
    ) -> Result<Vec<crate::event::StoredEvent>, StoreError> {
        Ok(Vec::new())
    }
}

struct NoSuppressions;

#[async_trait]
impl SuppressionList for NoSuppressions {
    async fn suppressed(&self, _ws: &WorkspaceId) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}

/// The latest record per (destination, event).
#[derive(Default)]
struct MemoryLog(Mutex<BTreeMap<(String, EventId), DeliveryRecord>>);

impl MemoryLog {
    fn matching(&self, limit: usize, f: impl Fn(&DeliveryRecord) -> bool) -> Vec<DeliveryRecord> {
        let all = self.0.lock().unwrap();
        all.values().filter(|r| f(r)).take(limit).cloned().collect()
    }
}

#[async_trait]
impl DeliveryLog for MemoryLog {
    async fn record(&self, records: &[DeliveryRecord]) -> Result<(), StoreError> {
        let mut all = self.0.lock().unwrap();
        for r in records {
            let key = (r.destination_id.as_str().to_owned(), r.event_id);
            all.insert(key, r.clone());
        }
        Ok(())
    }
    async fn delivered(
        &self,
        LogOf { destination, .. }: LogOf<'_>,
        events: &[EventId],
        _now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        let all = self.0.lock().unwrap();
        Ok(events
            .iter()
            .filter(|e| {
                all.get(&(destination.as_str().to_owned(), **e))
                    .is_some_and(|r| r.status == DeliveryStatus::Delivered)
            })
            .copied()
            .collect())
    }
    async fn for_event(
        &self,
        _ws: &WorkspaceId,
        event: &EventId,
        _now: OffsetDateTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(self.matching(usize::MAX, |r| r.event_id == *event))
    }
    async fn page(
        &self,
        LogOf { destination, .. }: LogOf<'_>,
        query: &DeliveryQuery,
        _now: OffsetDateTime,
    ) -> Result<DeliveryPage, StoreError> {
        let mut records = self.matching(usize::MAX, |r| {
            r.destination_id == *destination && query.matches(r)
        });
        records.sort_by_key(|r| std::cmp::Reverse(DeliveryCursor::of(r).key()));
        let more = records.len() > query.limit;
        records.truncate(query.limit);
        let next = more
            .then(|| records.last().map(DeliveryCursor::of))
            .flatten();
        Ok(DeliveryPage { records, next })
    }
    async fn sweep(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn for_events(
        &self,
        _ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(self.matching(usize::MAX, |r| events.contains(&r.event_id)))
    }
    async fn erase_events(
        &self,
        _ws: &WorkspaceId,
        _events: &[EventId],
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
}

// ---------------------------------------------------------------------------------------------
// The world

struct World {
    clock: Arc<FixedClock>,
    ids: Arc<SequentialIds>,
    control: Arc<MemoryControl>,
    queue: Arc<MemoryQueue>,
    log: Arc<MemoryLog>,
    egress: Arc<ScriptedEgress>,
    stats: Arc<crate::stats::memory::MemoryStats>,
    service: Arc<DeliveryService>,
    workspace: WorkspaceId,
    destination: DestinationId,
}

/// Small numbers, so that every case is a few steps: backoff 10 s doubling up to 60 s, three
/// attempts, a circuit that opens after two failing attempts for 30 s.
fn config() -> DeliveryConfig {
    DeliveryConfig {
        max_attempts: 3,
        backoff_base: Duration::from_secs(10),
        backoff_cap: Duration::from_secs(60),
        visibility: VISIBILITY,
        paused_recheck: Duration::from_secs(60),
        breaker_threshold: 2,
        breaker_cooldown: Duration::from_secs(30),
        ..DeliveryConfig::default()
    }
}

impl World {
    fn new(config: DeliveryConfig) -> Self {
        let clock = Arc::new(FixedClock::new(T0));
        let ids = Arc::new(SequentialIds::default());
        let workspace = Workspace {
            id: WorkspaceId::new(Region::Eu, "spec"),
            name: "Specification".into(),
            region: Region::Eu,
            created_at: T0,
            retention: Default::default(),
            consent: Default::default(),
            key_ref: KeyRef::Platform,
            data_key: WrappedKey(vec![7]),
            security: Default::default(),
            closed_at: None,
        };
        let mut destination = Destination {
            id: DestinationId::new("dst_spec"),
            workspace_id: workspace.id.clone(),
            name: "Scripted".into(),
            kind: KIND,
            config: json!({"batch_size": 2}),
            secrets: crate::crypto::Sealed(Vec::new()),
            secret_hints: json!({}),
            consent_purposes: KIND.default_purposes(),
            events: crate::destination::EventFilter::All,
            endpoint: None,
            paused: false,
            created_at: T0,
            updated_at: T0,
        };
        let keys = WorkspaceKeys::new(&data_key());
        destination.secrets = keys.seal([1; 12], &secrets_aad(&destination), b"{}");
        let control = Arc::new(MemoryControl::default());
        control.workspaces.lock().unwrap().push(workspace.clone());
        control
            .destinations
            .lock()
            .unwrap()
            .push(destination.clone());
        let queue = Arc::new(MemoryQueue::new(clock.clone()));
        let log = Arc::new(MemoryLog::default());
        let egress = Arc::new(ScriptedEgress::default());
        let stats = Arc::new(crate::stats::memory::MemoryStats::default());
        let service = Arc::new(DeliveryService::new(
            DeliveryPorts {
                read: ReadPorts {
                    control: control.clone(),
                    keyring: Arc::new(MemoryKeyring),
                    clock: clock.clone(),
                    ids: ids.clone(),
                },
                queue: queue.clone(),
                log: log.clone(),
                events: Arc::new(NoEvents),
                egress: egress.clone(),
                suppressions: Arc::new(NoSuppressions),
                connectors: scripted_connector,
                base_urls: base_url,
                stats: stats.clone(),
            },
            config,
        ));
        Self {
            clock,
            ids,
            control,
            queue,
            log,
            egress,
            stats,
            service,
            workspace: workspace.id,
            destination: destination.id,
        }
    }

    /// Queues one message of `names.len()` items; returns their event ids.
    async fn enqueue(&self, names: &[&str]) -> Vec<EventId> {
        let items: Vec<DeliveryItem> = names
            .iter()
            .map(|name| self.item(EventId(self.ids.uuid_v7(self.clock.now())), name))
            .collect();
        let events = items.iter().map(|i| i.event_id).collect();
        let message = self.outgoing(self.body(items));
        self.queue.enqueue(&[message]).await.unwrap();
        events
    }

    /// Receives what is visible now, delivers it and applies the dispositions.
    async fn step(&self) -> Vec<Disposition> {
        let msgs = self.queue.receive(KIND, 10, VISIBILITY).await.unwrap();
        let dispositions = self.service.process(KIND, &msgs).await;
        for (m, d) in msgs.iter().zip(&dispositions) {
            self.service.apply(KIND, m, d).await.unwrap();
        }
        dispositions
    }

    /// Receives what is visible now and delivers it, then the process dies (kill -9) before
    /// it applies a disposition: only what `process` itself did to the queue remains.
    async fn step_then_killed(&self) -> Vec<Disposition> {
        let msgs = self.queue.receive(KIND, 10, VISIBILITY).await.unwrap();
        self.service.process(KIND, &msgs).await
    }

    /// Steps `n` times, each step a retry whose delay then passes.
    async fn retry_steps(&self, n: usize) {
        for _ in 0..n {
            let d = retry_delay(&self.step().await);
            self.advance(d);
        }
    }

    fn advance(&self, by: Duration) {
        self.clock
            .advance(time::Duration::try_from(by).unwrap() + time::Duration::milliseconds(1));
    }

    fn status(&self, event: EventId) -> DeliveryRecord {
        let all = self.log.0.lock().unwrap();
        all.get(&(self.destination.as_str().to_owned(), event))
            .cloned()
            .unwrap_or_else(|| panic!("no delivery-log record for {event}"))
    }

    fn has_record(&self, event: EventId) -> bool {
        let all = self.log.0.lock().unwrap();
        all.contains_key(&(self.destination.as_str().to_owned(), event))
    }

    fn set_destination(&self, f: impl FnOnce(&mut Destination)) {
        f(&mut self.control.destinations.lock().unwrap()[0]);
        self.service.invalidate();
    }

    fn set_workspace(&self, f: impl FnOnce(&mut Workspace)) {
        f(&mut self.control.workspaces.lock().unwrap()[0]);
        self.service.invalidate();
    }
}

fn retry_delay(d: &[Disposition]) -> Duration {
    match d {
        [Disposition::RetryLater(delay)] => *delay,
        other => panic!("expected one retry, got {other:?}"),
    }
}

/// The reason of a receive's one message, dead-lettered.
fn dead_letter_reason(d: &[Disposition]) -> &str {
    match d {
        [Disposition::DeadLetter(reason)] => reason,
        other => panic!("expected one dead letter, got {other:?}"),
    }
}

fn ids(events: &[EventId]) -> Vec<String> {
    events.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Retry and backoff

#[tokio::test]
async fn a_503_is_retried_after_a_jittered_backoff_and_delivered_on_the_next_attempt() {
    let w = World::new(config());
    let events = w.enqueue(&["a"]).await;
    w.egress.answer(503, None, json!({}));

    let delay = retry_delay(&w.step().await);

    assert!(
        delay >= Duration::from_millis(100) && delay <= Duration::from_secs(10),
        "first backoff within [0.1 s, base]: {delay:?}"
    );
    assert_eq!(w.status(events[0]).status, DeliveryStatus::Retrying);
    assert_eq!(w.status(events[0]).last_http_status, Some(503));
    assert!(w.step().await.is_empty(), "hidden until its retry");

    w.advance(delay);
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(w.status(events[0]).status, DeliveryStatus::Delivered);
    assert_eq!(w.status(events[0]).attempts, 2);
    assert_eq!(w.egress.requests(), vec![ids(&events), ids(&events)]);
    assert!(w.queue.waiting().is_empty());
}

#[tokio::test]
async fn backoff_doubles_per_attempt_up_to_the_cap_and_never_goes_below_retry_after() {
    let w = World::new(config());
    for attempt in 1..=8u32 {
        let exp = Duration::from_secs(10 * (1u64 << (attempt - 1))).min(Duration::from_secs(60));
        let d = w.service.backoff(attempt, None);
        assert!(
            d >= Duration::from_millis(100) && d <= exp,
            "{attempt}: {d:?}"
        );
    }
    assert_eq!(
        w.service.backoff(1, Some(Duration::from_secs(600))),
        Duration::from_secs(600)
    );
    assert_eq!(
        w.service.backoff(1, Some(Duration::from_secs(48 * 3600))),
        Duration::from_secs(12 * 3600),
        "at most 12 hours, what SQS visibility allows"
    );
}

#[tokio::test]
async fn retry_after_in_seconds_is_the_least_delay() {
    let w = World::new(config());
    w.enqueue(&["a"]).await;
    w.egress.answer(429, Some("300"), json!({}));

    assert_eq!(retry_delay(&w.step().await), Duration::from_secs(300));
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_read_against_the_injected_clock() {
    let w = World::new(config());
    w.enqueue(&["a"]).await;
    // 120 s after the injected now (T0), as an IMF-fixdate, with no `Date` header.
    w.egress
        .answer(503, Some("Sun, 01 Mar 2026 12:02:00 GMT"), json!({}));

    assert_eq!(retry_delay(&w.step().await), Duration::from_secs(120));
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

#[tokio::test]
async fn the_circuit_opens_after_consecutive_failures_and_lets_one_attempt_through_after_the_cooldown(
) {
    let w = World::new(DeliveryConfig {
        max_attempts: 10,
        ..config()
    });
    let events = w.enqueue(&["a"]).await;
    w.egress.answer(503, None, json!({}));
    w.egress.answer(503, None, json!({}));
    let first = retry_delay(&w.step().await);
    w.advance(first);
    let second = retry_delay(&w.step().await);
    assert_eq!(w.egress.requests().len(), 2);

    // Open: the next receive sends nothing and waits at least the rest of the cooldown.
    w.advance(second);
    let open = retry_delay(&w.step().await);
    assert_eq!(w.egress.requests().len(), 2, "nothing sent while open");
    let record = w.status(events[0]);
    assert_eq!(record.status, DeliveryStatus::Retrying);
    assert_eq!(record.last_error.as_deref(), Some("circuit open"));
    let rest_of_cooldown = Duration::from_secs(30) - second - Duration::from_millis(1);
    assert!(open >= rest_of_cooldown, "{open:?} < {rest_of_cooldown:?}");

    // Half-open after the cooldown: one attempt goes out, and its success closes the circuit.
    w.advance(open);
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(w.egress.requests().len(), 3);
    assert_eq!(w.status(events[0]).status, DeliveryStatus::Delivered);
    let next = w.enqueue(&["b"]).await;
    assert_eq!(w.step().await, vec![Disposition::Ack], "closed again");
    assert_eq!(w.status(next[0]).status, DeliveryStatus::Delivered);
}

#[tokio::test]
async fn a_failure_after_the_cooldown_counts_again_towards_the_threshold() {
    let w = World::new(DeliveryConfig {
        max_attempts: 10,
        ..config()
    });
    w.enqueue(&["a"]).await;
    w.egress.fail_times(3, 500);
    w.retry_steps(2).await;
    let open = retry_delay(&w.step().await);
    w.advance(open);

    // Half-open: the attempt fails; one failure is below the threshold of two.
    let d = retry_delay(&w.step().await);
    assert_eq!(w.egress.requests().len(), 3);
    w.advance(d);
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(w.egress.requests().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Batches and partial failures

#[tokio::test]
async fn items_go_out_in_batches_of_the_destinations_limit() {
    let w = World::new(config());
    let events = w.enqueue(&["a", "b", "c", "d", "e"]).await;

    assert_eq!(w.step().await, vec![Disposition::Ack]);

    let mut sent = w.egress.requests();
    sent.sort();
    let mut expected = vec![ids(&events[..2]), ids(&events[2..4]), ids(&events[4..])];
    expected.sort();
    assert_eq!(sent, expected);
    for e in &events {
        assert_eq!(w.status(*e).status, DeliveryStatus::Delivered);
    }
}

#[tokio::test]
async fn a_destination_with_small_batches_gets_requests_in_flight_enough_for_its_events() {
    // 20 events in batches of 2: 10 requests, as many at once as carry the events in flight.
    for (events_in_flight, most) in [(8, 4), (2, 1), (1_000, 10)] {
        let w = World::new(DeliveryConfig {
            per_destination_concurrency: 1,
            per_destination_events: events_in_flight,
            ..config()
        });
        w.set_destination(|d| d.config = json!({"batch_size": 2}));
        let names: Vec<String> = (0..20).map(|i| format!("e{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        w.enqueue(&names).await;

        assert_eq!(w.step().await, vec![Disposition::Ack]);

        assert_eq!(w.egress.requests().len(), 10);
        assert_eq!(
            w.egress.most_in_flight(),
            most,
            "{events_in_flight} events in flight"
        );
    }
}

#[test]
fn requests_in_flight_carry_the_events_in_flight_within_their_bounds() {
    let d = DeliveryConfig::default();
    // GA4 (25 per request), Meta (1,000), a vendor of one event per request, none.
    assert_eq!(d.request_concurrency(25), 16);
    assert_eq!(d.request_concurrency(1_000), d.per_destination_concurrency);
    assert_eq!(
        d.request_concurrency(1),
        DeliveryConfig::MAX_REQUEST_CONCURRENCY
    );
    assert_eq!(
        d.request_concurrency(0),
        DeliveryConfig::MAX_REQUEST_CONCURRENCY
    );
}

#[tokio::test]
async fn a_vendor_with_byte_limits_gets_batches_split_by_bytes_and_an_oversized_event_is_dead_lettered(
) {
    let w = World::new(config());
    // One item's request body is 59 bytes (`{"ids":["evt_<32>"],"key":null}`): two fit in 130.
    let limits = json!({"batch_size": 10, "max_request_bytes": 130, "max_item_bytes": 500});
    w.set_destination(|d| d.config = limits);
    let events = w.enqueue(&["a", "b", "c", "big", "d"]).await;

    let done = w.step().await;

    assert!(matches!(&done[..], [Disposition::Replace(_)]), "{done:?}");
    let mut sent = w.egress.requests();
    sent.sort();
    let mut expected = vec![
        ids(&events[..2]),
        [ids(&events[2..3]), ids(&events[4..])].concat(),
    ];
    expected.sort();
    assert_eq!(sent, expected, "split by bytes, not by the count of 10");
    let big = w.status(events[3]);
    assert_eq!(big.status, DeliveryStatus::Dead);
    let reason = big.last_error.unwrap_or_default();
    assert!(
        reason.contains("takes 1000 bytes") && reason.contains("at most 500"),
        "{reason}"
    );
    assert_eq!(w.queue.dead()[0].0.items[0].event_id, events[3]);
    for e in [events[0], events[1], events[2], events[4]] {
        assert_eq!(w.status(e).status, DeliveryStatus::Delivered);
    }
}

#[tokio::test]
async fn a_partial_failure_delivers_the_rest_dead_letters_the_refused_item_and_requeues_the_deferred_one(
) {
    let w = World::new(DeliveryConfig {
        max_attempts: 3,
        ..config()
    });
    w.set_destination(|d| d.config = json!({"batch_size": 10}));
    let events = w.enqueue(&["a", "b", "c"]).await;
    w.egress
        .answer(200, None, json!({"refuse": [1], "retry": [2]}));

    let replaced = w.step().await;
    assert!(
        matches!(&replaced[..], [Disposition::Replace(_)]),
        "{replaced:?}"
    );

    assert_eq!(w.status(events[0]).status, DeliveryStatus::Delivered);
    let refused = w.status(events[1]);
    assert_eq!(refused.status, DeliveryStatus::Dead);
    assert_eq!(refused.last_error.as_deref(), Some("scripted: refused"));
    assert_eq!(w.status(events[2]).status, DeliveryStatus::Retrying);
    let dead = w.queue.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.items.len(), 1);
    assert_eq!(dead[0].0.items[0].event_id, events[1]);
    assert_eq!(dead[0].1, "scripted: refused");
    let waiting = w.queue.waiting();
    assert_eq!(
        waiting.len(),
        1,
        "the deferred item, as a message of its own"
    );
    assert_eq!(waiting[0].items[0].event_id, events[2]);
    assert_eq!(waiting[0].attempts, 1, "its attempt is counted");

    // The deferred item alone goes out next; the delivered one is never sent again.
    w.advance(Duration::from_secs(60));
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(w.egress.requests()[1], ids(&events[2..]));
    assert_eq!(w.status(events[2]).status, DeliveryStatus::Delivered);
    assert_eq!(w.status(events[2]).attempts, 2);
}

#[tokio::test]
async fn an_item_the_destination_cannot_accept_is_dropped_with_the_reason_and_not_sent() {
    let w = World::new(config());
    let events = w.enqueue(&["a", "invalid"]).await;

    assert_eq!(w.step().await, vec![Disposition::Ack]);

    assert_eq!(w.egress.requests(), vec![ids(&events[..1])]);
    assert_eq!(
        w.status(events[1]).status,
        DeliveryStatus::Dropped("invalid: scripted: not acceptable".into())
    );
}

#[tokio::test]
async fn an_item_already_delivered_is_not_sent_again() {
    let w = World::new(config());
    let events = w.enqueue(&["a"]).await;
    assert_eq!(w.step().await, vec![Disposition::Ack]);

    // The same message again (at-least-once queues deliver twice).
    w.queue.push(&w.outgoing(w.queue_body_of(&events)), None);
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(w.egress.requests().len(), 1, "sent once");
}

// ---------------------------------------------------------------------------------------------
// Dead letters and replay

#[tokio::test]
async fn an_item_that_keeps_failing_is_dead_lettered_after_the_attempt_limit() {
    let w = World::new(DeliveryConfig {
        breaker_threshold: 100,
        ..config()
    });
    let events = w.enqueue(&["a"]).await;
    w.egress.fail_times(3, 503);

    for attempt in 1..=2 {
        let d = retry_delay(&w.step().await);
        assert_eq!(w.status(events[0]).attempts, attempt);
        w.advance(d);
    }
    let last = w.step().await;

    let reason = dead_letter_reason(&last);
    assert!(
        reason.starts_with("gave up after 3 attempts: HTTP 503"),
        "{reason}"
    );
    let record = w.status(events[0]);
    assert_eq!(record.status, DeliveryStatus::Dead);
    assert_eq!(record.attempts, 3);
    assert_eq!(w.queue.dead().len(), 1);
    assert!(w.queue.waiting().is_empty());
}

#[tokio::test]
async fn a_refused_request_is_dead_lettered_at_once() {
    let w = World::new(config());
    let events = w.enqueue(&["a"]).await;
    w.egress.answer(400, None, json!({"error": "bad"}));

    let d = w.step().await;

    let reason = dead_letter_reason(&d);
    assert!(reason.starts_with("HTTP 400"), "{reason}");
    assert_eq!(w.status(events[0]).status, DeliveryStatus::Dead);
    assert_eq!(w.status(events[0]).last_http_status, Some(400));
}

#[tokio::test]
async fn a_replayed_dead_letter_is_delivered_once_the_destination_is_back() {
    let w = World::new(DeliveryConfig {
        max_attempts: 1,
        ..config()
    });
    let events = w.enqueue(&["a", "b"]).await;
    w.egress.answer(503, None, json!({}));
    dead_letter_reason(&w.step().await);
    assert_eq!(w.queue.dead().len(), 1);

    let moved = w
        .queue
        .replay(
            KIND,
            &ReplayFilter {
                destination_id: Some(w.destination.clone()),
                ..ReplayFilter::default()
            },
        )
        .await
        .unwrap();

    assert_eq!(moved, 1);
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    for e in &events {
        assert_eq!(w.status(*e).status, DeliveryStatus::Delivered);
    }
    assert!(w.queue.dead().is_empty() && w.queue.waiting().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Pause

/// Runs `rounds` receives `paused_recheck` apart: far more than the attempt limit.
async fn many_rounds(w: &World, rounds: usize) {
    for _ in 0..rounds {
        let held = vec![Disposition::Hold(Duration::from_secs(60))];
        assert_eq!(w.step().await, held, "held, not retried");
        w.advance(Duration::from_secs(60));
    }
}

#[tokio::test]
async fn a_paused_destination_keeps_its_messages_without_spending_attempts_until_it_is_resumed() {
    let w = World::new(config());
    w.set_destination(|d| d.paused = true);
    let events = w.enqueue(&["a", "b"]).await;

    many_rounds(&w, 10).await;

    assert!(w.egress.requests().is_empty(), "nothing sent while paused");
    assert!(w.queue.dead().is_empty(), "nothing dead-lettered");
    let waiting = w.queue.waiting();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].attempts, 0, "no attempt spent");
    assert!(!w.has_record(events[0]), "no delivery attempt logged");

    w.set_destination(|d| d.paused = false);
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(w.egress.requests(), vec![ids(&events)]);
    assert_eq!(w.status(events[0]).attempts, 1);
}

#[tokio::test]
async fn a_workspace_with_egress_paused_keeps_its_messages_until_egress_resumes() {
    let w = World::new(config());
    w.set_workspace(|ws| ws.security.egress_paused = true);
    let events = w.enqueue(&["a"]).await;

    many_rounds(&w, 10).await;

    assert!(w.egress.requests().is_empty());
    assert!(w.queue.dead().is_empty());
    assert_eq!(w.queue.waiting()[0].attempts, 0);

    w.set_workspace(|ws| ws.security.egress_paused = false);
    assert_eq!(w.step().await, vec![Disposition::Ack]);
    assert_eq!(w.status(events[0]).status, DeliveryStatus::Delivered);
}

#[tokio::test]
async fn a_held_message_waits_the_recheck_interval_before_it_is_looked_at_again() {
    let w = World::new(config());
    w.set_destination(|d| d.paused = true);
    w.enqueue(&["a"]).await;
    let held = vec![Disposition::Hold(Duration::from_secs(60))];
    assert_eq!(w.step().await, held);

    w.clock.advance(time::Duration::seconds(59));
    assert!(w.step().await.is_empty(), "not before the recheck");
    w.clock.advance(time::Duration::seconds(1));
    assert_eq!(w.step().await.len(), 1);
}

#[tokio::test]
async fn a_kill_while_a_message_is_held_leaves_exactly_one_copy_of_it() {
    let w = World::new(config());
    w.set_destination(|d| d.paused = true);
    let events = w.enqueue(&["a"]).await;

    w.step_then_killed().await;

    // After the restart, what the killed process had received is visible again: once.
    w.advance(VISIBILITY);
    let back = w.queue.receive(KIND, 10, VISIBILITY).await.unwrap();
    assert_eq!(back.len(), 1, "the message, not the message and a copy");
    let body = back[0].decode_body().unwrap();
    assert_eq!(body.items[0].event_id, events[0]);
}

#[tokio::test]
async fn a_kill_after_a_partial_failure_leaves_the_message_and_no_part_of_it() {
    let w = World::new(config());
    w.set_destination(|d| d.config = json!({"batch_size": 10}));
    let events = w.enqueue(&["a", "b", "c"]).await;
    w.egress
        .answer(200, None, json!({"refuse": [1], "retry": [2]}));

    w.step_then_killed().await;

    // After the restart: the whole message again, once; no split-off part of it.
    assert!(
        w.queue.dead().is_empty(),
        "no dead letter before the message is settled"
    );
    w.advance(VISIBILITY);
    let back = w.queue.receive(KIND, 10, VISIBILITY).await.unwrap();
    assert_eq!(
        back.len(),
        1,
        "the message, not the message and its remainder"
    );
    assert_eq!(back[0].decode_body().unwrap().items.len(), events.len());
}

/// A queue item: a track event named `name`, with nothing sealed.
pub(super) fn item_at(event_id: EventId, name: &str, timestamp: OffsetDateTime) -> DeliveryItem {
    let message_id = MessageId::parse(&format!("msg-{name}")).unwrap();
    DeliveryItem::track(event_id, message_id, name, timestamp, json!({}))
}

impl World {
    /// A queue item of this world's destination.
    fn item(&self, event_id: EventId, name: &str) -> DeliveryItem {
        item_at(event_id, name, self.clock.now())
    }

    /// A queue body of this world's destination, as JSON.
    fn body(&self, items: Vec<DeliveryItem>) -> Vec<u8> {
        serde_json::to_vec(&QueueBody {
            v: QueueBody::VERSION,
            attempts: 0,
            workspace_id: self.workspace.clone(),
            destination_id: self.destination.clone(),
            kind: KIND,
            items,
            by_reference: false,
        })
        .unwrap()
    }

    /// A message to this world's destination, visible at once.
    fn outgoing(&self, body: Vec<u8>) -> Outgoing {
        Outgoing {
            kind: KIND,
            destination_id: self.destination.clone(),
            workspace_id: self.workspace.clone(),
            body,
            delay: Duration::ZERO,
            shared: None,
        }
    }

    /// A queue body with these events (for a duplicate delivery).
    fn queue_body_of(&self, events: &[EventId]) -> Vec<u8> {
        self.body(events.iter().map(|e| self.item(*e, "a")).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Counting for the overview

/// The counters of one destination in each stats write so far, as
/// (delivered, retrying, dead-lettered, invalid).
fn counted(w: &World) -> Vec<(u64, u64, u64, u64)> {
    use crate::stats::{DestinationCounter as C, StatsKey};
    let get =
        |d: &crate::stats::StatsDelta, c| d.get(&StatsKey::Destination(w.destination.clone(), c));
    w.stats
        .writes()
        .iter()
        .map(|(ws, _, d)| {
            assert_eq!(ws, &w.workspace);
            (
                get(d, C::Delivered),
                get(d, C::Retrying),
                get(d, C::DeadLettered),
                get(d, C::Invalid),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_settled_message_is_counted_in_one_stats_write_retrying_then_delivered() {
    let w = World::new(config());
    w.enqueue(&["a", "b", "invalid"]).await;
    w.egress.answer(503, None, json!({}));

    let delay = retry_delay(&w.step().await);
    w.advance(delay);
    assert_eq!(w.step().await, vec![Disposition::Ack]);

    // Two items retrying and one invalid in the first write; both delivered in the second,
    // where the invalid item, still in the retried message, is dropped (and counted) again:
    // counters count each attempt's outcomes.
    assert_eq!(counted(&w), vec![(0, 2, 0, 1), (2, 0, 0, 1)]);
    let (_, at, _) = &w.stats.writes()[1];
    assert_eq!(*at, w.clock.now(), "counted at the time of the settling");
}

#[tokio::test]
async fn the_messages_of_one_receive_are_counted_in_one_stats_write() {
    let w = World::new(config());
    w.enqueue(&["a", "b"]).await;
    w.enqueue(&["c", "invalid"]).await;
    w.enqueue(&["d"]).await;

    assert_eq!(w.step().await, vec![Disposition::Ack; 3]);

    // One write for the three settled messages, with their outcomes summed.
    assert_eq!(counted(&w), vec![(4, 0, 0, 1)]);
}

#[tokio::test]
async fn a_message_dead_lettered_after_the_attempt_limit_is_counted_once_per_attempt() {
    let w = World::new(DeliveryConfig {
        breaker_threshold: 100,
        ..config()
    });
    w.enqueue(&["a"]).await;
    w.egress.fail_times(3, 503);
    w.retry_steps(2).await;

    let last = w.step().await;

    dead_letter_reason(&last);
    assert_eq!(counted(&w), vec![(0, 1, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0)]);
}

#[tokio::test]
async fn a_failing_stats_store_neither_fails_nor_changes_a_delivery() {
    let w = World::new(config());
    w.stats
        .failing
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let events = w.enqueue(&["a"]).await;

    assert_eq!(w.step().await, vec![Disposition::Ack]);

    assert_eq!(w.status(events[0]).status, DeliveryStatus::Delivered);
    assert!(w.queue.waiting().is_empty());
    assert_eq!(w.service.stats_failures_total(), 1);
}

/// Assumed roles, size-limited requests, items dead-lettered unsent.
mod roles;
