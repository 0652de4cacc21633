//! The delivery service: queue messages → destinations, with idempotence, backoff with full
//! jitter honouring `Retry-After`, dead letters, pause, and a circuit breaker so that one
//! failing destination never slows another.
//!
//! Driven by the local worker (`run_worker`) in `tracklayer serve`, and by `functions/deliver`
//! on AWS (which calls [`DeliveryService::process`] per SQS record).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::{Connector, DropReason, OpenedItem, Outcome, Target};
use crate::clock::{Clock, Ids};
use crate::crypto::WorkspaceKeys;
use crate::destination::secret_opener::destination_secrets;
use crate::destination::{Destination, DestinationKind};
use crate::error::{KeyError, StoreError};
use crate::event::{DeliveryItem, EventId, QueueBody, SealedFields};
use crate::ports::{
    ControlReader, DeliveryLog, DeliveryQueue, DeliveryRecord, DeliveryStatus, Egress, EgressError,
    Keyring, Outgoing, Received, SuppressionList,
};
use crate::workspace::{Workspace, WorkspaceId};

/// How deliveries are paced.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts before an item goes to the dead-letter queue.
    pub max_attempts: u32,
    /// Exponential backoff with full jitter: random in [0, min(cap, base·2^(n−1))].
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// How long a received message stays hidden while it is being delivered.
    pub visibility: Duration,
    /// Requests in flight per destination.
    pub per_destination_concurrency: usize,
    /// Messages in flight per destination in this process; more wait in the queue.
    pub per_destination_messages: usize,
    /// How often a paused destination's messages look again.
    pub paused_recheck: Duration,
    /// Consecutive transient failures that open a destination's circuit, and for how long.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// How long destination settings and opened secrets are cached.
    pub settings_ttl: Duration,
    /// How long the worker waits to fill a batch of 10 messages once it has one, so that
    /// messages share requests (like a Lambda event source's batching window).
    pub batch_window: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(3600),
            visibility: Duration::from_secs(120),
            per_destination_concurrency: 4,
            per_destination_messages: 32,
            paused_recheck: Duration::from_secs(60),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            settings_ttl: Duration::from_secs(5),
            batch_window: Duration::from_millis(250),
        }
    }
}

/// What to do with a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (delivered, dropped, or its remainder was re-queued / dead-lettered separately).
    Ack,
    /// Make it visible again after the delay (counts as an attempt).
    RetryLater(Duration),
    /// Move it to the dead-letter queue with the reason.
    DeadLetter(String),
}

/// The ports delivery uses.
#[allow(missing_debug_implementations)]
pub struct DeliveryPorts {
    pub control: Arc<dyn ControlReader>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub log: Arc<dyn DeliveryLog>,
    pub keyring: Arc<dyn Keyring>,
    pub egress: Arc<dyn Egress>,
    /// Drops queued items of subjects erased after they were queued (data-subject requests).
    pub suppressions: Arc<dyn SuppressionList>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    /// The wire format of each destination kind.
    pub connectors: fn(DestinationKind) -> &'static dyn Connector,
    /// Production base URL of each kind, used when a destination has no `endpoint`.
    pub base_urls: fn(DestinationKind) -> &'static str,
}

struct Settings {
    workspace: Workspace,
    destination: Destination,
    secrets: Value,
    keys: WorkspaceKeys,
    at: OffsetDateTime,
}

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<OffsetDateTime>,
}

#[derive(Default)]
struct Gate {
    semaphore: Option<Arc<Semaphore>>,
    in_flight: usize,
}

/// The delivery use case.
pub struct DeliveryService {
    ports: DeliveryPorts,
    config: DeliveryConfig,
    settings: Mutex<HashMap<(String, String), Arc<Settings>>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    gates: Mutex<HashMap<String, Gate>>,
    suppressed: Mutex<HashMap<WorkspaceId, (Suppressed, OffsetDateTime)>>,
}

/// A workspace's suppression tokens.
type Suppressed = Arc<HashSet<String>>;

impl std::fmt::Debug for DeliveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How one item ended in one attempt.
#[derive(Debug, Clone)]
enum ItemResult {
    Delivered(Option<u16>),
    Skipped,
    Dropped(String),
    Retry {
        after: Option<Duration>,
        reason: String,
        status: Option<u16>,
    },
    Permanent {
        reason: String,
        status: Option<u16>,
    },
}

/// A received message's body, with its place in the batch and attempts so far.
struct Part {
    index: usize,
    attempts: u32,
    body: QueueBody,
}

/// A slot in a destination's in-flight budget, released on drop.
struct Slot<'a> {
    service: &'a DeliveryService,
    key: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut gates = self.service.gates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = gates.get_mut(&self.key) {
            g.in_flight = g.in_flight.saturating_sub(1);
        }
    }
}

impl DeliveryService {
    pub fn new(ports: DeliveryPorts, config: DeliveryConfig) -> Self {
        Self {
            ports,
            config,
            settings: Mutex::new(HashMap::new()),
            breakers: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            suppressed: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// The delay before attempt `attempt + 1`: full jitter, at least `Retry-After`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.config.backoff_cap);
        let mut r = [0u8; 8];
        self.ports.ids.fill(&mut r);
        let frac = (u64::from_le_bytes(r) >> 11) as f64 / (1u64 << 53) as f64;
        let jittered = exp.mul_f64(frac).max(Duration::from_millis(100));
        // Retry-After wins when it asks for longer; SQS visibility allows up to 12 hours.
        let floor = retry_after
            .unwrap_or_default()
            .min(Duration::from_secs(12 * 3600));
        jittered.max(floor)
    }

    async fn settings(&self, body: &QueueBody) -> Result<Option<Arc<Settings>>, DeliveryError> {
        let now = self.ports.clock.now();
        let key = (
            body.workspace_id.as_str().to_owned(),
            body.destination_id.as_str().to_owned(),
        );
        let ttl = self.config.settings_ttl;
        if let Some(s) = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|s| now - s.at < ttl)
        {
            return Ok(Some(s.clone()));
        }
        let Some(workspace) = self
            .ports
            .control
            .workspace(&body.workspace_id, now)
            .await?
        else {
            return Ok(None);
        };
        let Some(destination) = self
            .ports
            .control
            .destination(&body.workspace_id, &body.destination_id)
            .await?
        else {
            return Ok(None);
        };
        let data_key = self
            .ports
            .keyring
            .unwrap_data_key(&workspace.id, &workspace.key_ref, &workspace.data_key)
            .await?;
        let keys = WorkspaceKeys::new(&data_key);
        let secrets = destination_secrets(&keys, &destination)?;
        let s = Arc::new(Settings {
            workspace,
            destination,
            secrets,
            keys,
            at: now,
        });
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, s.clone());
        Ok(Some(s))
    }

    /// Removes the items of erased subjects from the parts: they were queued before the
    /// erasure and are neither sent nor logged. The workspace's list is cached like its
    /// settings, so a new suppression is seen within `settings_ttl`; erasure waits longer
    /// than that before it deletes (`DsrConfig`).
    async fn drop_suppressed(&self, group: &mut [Part]) -> Result<(), DeliveryError> {
        let list = &self.ports.suppressions;
        if group
            .iter()
            .all(|p| p.body.items.iter().all(|i| i.suppression.is_empty()))
        {
            return Ok(());
        }
        let Some(ws) = group.first().map(|p| p.body.workspace_id.clone()) else {
            return Ok(());
        };
        let now = self.ports.clock.now();
        let cached = self
            .suppressed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ws)
            .filter(|(_, at)| now - *at < self.config.settings_ttl)
            .map(|(set, _)| set.clone());
        let set = match cached {
            Some(set) => set,
            None => {
                let set: Suppressed = Arc::new(
                    list.suppressed(&ws)
                        .await
                        .map_err(DeliveryError::Store)?
                        .into_iter()
                        .collect(),
                );
                self.suppressed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(ws, (set.clone(), now));
                set
            }
        };
        if set.is_empty() {
            return Ok(());
        }
        for p in group.iter_mut() {
            let before = p.body.items.len();
            p.body
                .items
                .retain(|i| !i.suppression.iter().any(|t| set.contains(t)));
            let dropped = before - p.body.items.len();
            if dropped > 0 {
                tracing::info!(
                    destination = %p.body.destination_id,
                    dropped,
                    "dropped queued items of erased subjects"
                );
            }
        }
        Ok(())
    }

    /// Drops cached settings of a destination (after a change in this process).
    pub fn invalidate(&self) {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn breaker_open(&self, dest: &str, now: OffsetDateTime) -> Option<Duration> {
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let until = breakers.get(dest)?.open_until?;
        (until > now).then(|| Duration::try_from(until - now).unwrap_or_default())
    }

    fn breaker_report(&self, dest: &str, transient_failure: bool, now: OffsetDateTime) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let b = breakers.entry(dest.to_owned()).or_default();
        if transient_failure {
            b.failures += 1;
            if b.failures >= self.config.breaker_threshold {
                let cooldown =
                    time::Duration::try_from(self.config.breaker_cooldown).unwrap_or_default();
                b.open_until = Some(now + cooldown);
                b.failures = 0;
                tracing::warn!(
                    destination = dest,
                    "circuit open: destination keeps failing"
                );
            }
        } else {
            b.failures = 0;
            b.open_until = None;
        }
    }

    fn take_slot(&self, dest: &str) -> Option<(Slot<'_>, Arc<Semaphore>)> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        let g = gates.entry(dest.to_owned()).or_default();
        if g.in_flight >= self.config.per_destination_messages {
            return None;
        }
        g.in_flight += 1;
        let sem = g
            .semaphore
            .get_or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.per_destination_concurrency.max(1),
                ))
            })
            .clone();
        Some((
            Slot {
                service: self,
                key: dest.to_owned(),
            },
            sem,
        ))
    }

    /// Delivers the messages of one receive (one SQS batch) and says what to do with each,
    /// in order. Items bound for the same destination share requests across messages, so each
    /// destination gets as few requests as its batch limit allows; destinations are served
    /// concurrently. Side effects (delivery log, re-queued remainders, dead-lettered parts)
    /// are done here; the caller applies the dispositions ([`DeliveryService::apply`]).
    ///
    /// A message gets no outcome by default: one whose delivery failed before an outcome was
    /// known (an error, a panicked task) is retried with a delivery-log entry saying why,
    /// never acknowledged ([`DeliveryService::after_failure`]).
    pub async fn process(
        self: &Arc<Self>,
        kind: DestinationKind,
        msgs: &[Received],
    ) -> Vec<Disposition> {
        let mut out: Vec<Option<Disposition>> = vec![None; msgs.len()];
        let mut groups: HashMap<(String, String), Vec<Part>> = HashMap::new();
        for (index, m) in msgs.iter().enumerate() {
            match serde_json::from_slice::<QueueBody>(&m.body) {
                Ok(body) => groups
                    .entry((
                        body.workspace_id.as_str().to_owned(),
                        body.destination_id.as_str().to_owned(),
                    ))
                    .or_default()
                    .push(Part {
                        index,
                        attempts: body.attempts + m.receive_count,
                        body,
                    }),
                Err(e) => {
                    out[index] = Some(Disposition::DeadLetter(format!("unreadable message: {e}")))
                }
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut members: HashMap<tokio::task::Id, Vec<usize>> = HashMap::new();
        for group in groups.into_values() {
            let indices = group.iter().map(|p| p.index).collect();
            let service = self.clone();
            let task = tasks.spawn(async move { service.try_group(kind, group).await });
            members.insert(task.id(), indices);
        }
        while let Some(joined) = tasks.join_next_with_id().await {
            let (task, why) = match joined {
                Ok((_, Ok(list))) => {
                    for (index, d) in list {
                        out[index] = Some(d);
                    }
                    continue;
                }
                Ok((task, Err(e))) => {
                    tracing::warn!(error = %e, kind = %kind, "delivery failed before an outcome; will retry");
                    (task, e.to_string())
                }
                Err(e) => {
                    let why = if e.is_panic() {
                        "the delivery task panicked"
                    } else {
                        "the delivery task was cancelled"
                    };
                    tracing::error!(kind = %kind, "{why}; its messages will be retried");
                    (e.id(), why.to_owned())
                }
            };
            for index in members.remove(&task).unwrap_or_default() {
                out[index] = Some(self.after_failure(&msgs[index], &why).await);
            }
        }
        let mut dispositions = Vec::with_capacity(msgs.len());
        for (msg, d) in msgs.iter().zip(out) {
            dispositions.push(match d {
                Some(d) => d,
                None => self.after_failure(msg, "no outcome was recorded").await,
            });
        }
        dispositions
    }

    /// A message whose delivery failed before its outcome was known: retried later (or, out
    /// of attempts, dead-lettered), with a delivery-log entry per item saying why.
    async fn after_failure(&self, msg: &Received, why: &str) -> Disposition {
        let Ok(body) = serde_json::from_slice::<QueueBody>(&msg.body) else {
            return Disposition::DeadLetter("unreadable message".into());
        };
        let attempts = body.attempts + msg.receive_count;
        let (status, d) = if attempts >= self.config.max_attempts {
            let reason = format!("gave up after {attempts} attempts: {why}");
            (DeliveryStatus::Dead, Disposition::DeadLetter(reason))
        } else {
            let delay = self.backoff(attempts, None);
            (DeliveryStatus::Retrying, Disposition::RetryLater(delay))
        };
        if let Err(e) = self.log_all(&body, status, attempts, why).await {
            tracing::warn!(error = %e, destination = %body.destination_id, "could not log a failed delivery attempt");
        }
        d
    }

    async fn try_group(
        &self,
        kind: DestinationKind,
        mut group: Vec<Part>,
    ) -> Result<Vec<(usize, Disposition)>, DeliveryError> {
        self.drop_suppressed(&mut group).await?;
        // A message left without items (all of erased subjects) is done.
        let emptied: Vec<(usize, Disposition)> = group
            .iter()
            .filter(|p| p.body.items.is_empty())
            .map(|p| (p.index, Disposition::Ack))
            .collect();
        if !emptied.is_empty() {
            group.retain(|p| !p.body.items.is_empty());
            let mut rest = Box::pin(self.try_group(kind, group)).await?;
            rest.extend(emptied);
            return Ok(rest);
        }
        let Some(first) = group.first() else {
            return Ok(Vec::new());
        };
        let settings = match self.settings(&first.body).await {
            Err(DeliveryError::Key(KeyError::Unavailable(why))) => {
                // The workspace key (BYOK) is disabled: nothing can be opened or sent. Keep the
                // messages, like a paused destination's, without spending their attempts;
                // they go out once the key is back.
                tracing::warn!(destination = %first.body.destination_id, reason = %why, "workspace key unavailable: deliveries wait");
                for p in &group {
                    self.requeue(
                        &p.body,
                        p.body.items.clone(),
                        p.body.attempts,
                        self.config.paused_recheck,
                    )
                    .await?;
                }
                return Ok(group.iter().map(|p| (p.index, Disposition::Ack)).collect());
            }
            other => other?,
        };
        let Some(settings) = settings else {
            tracing::info!(destination = %first.body.destination_id, "destination or workspace deleted: dropping its messages");
            return Ok(group.iter().map(|p| (p.index, Disposition::Ack)).collect());
        };
        let dest = &settings.destination;
        let dest_key = dest.id.as_str().to_owned();
        let now = self.ports.clock.now();

        if dest.paused || settings.workspace.security.egress_paused {
            // Keep the messages without spending their attempts: fresh copies, later.
            for p in &group {
                self.requeue(
                    &p.body,
                    p.body.items.clone(),
                    p.body.attempts,
                    self.config.paused_recheck,
                )
                .await?;
            }
            return Ok(group.iter().map(|p| (p.index, Disposition::Ack)).collect());
        }
        let Some((_slot, semaphore)) = self.take_slot(&dest_key) else {
            for p in &group {
                self.requeue(
                    &p.body,
                    p.body.items.clone(),
                    p.body.attempts,
                    Duration::from_secs(1),
                )
                .await?;
            }
            return Ok(group.iter().map(|p| (p.index, Disposition::Ack)).collect());
        };
        if let Some(wait) = self.breaker_open(&dest_key, now) {
            let mut out = Vec::with_capacity(group.len());
            for p in &group {
                if p.attempts >= self.config.max_attempts {
                    self.log_all(&p.body, DeliveryStatus::Dead, p.attempts, "circuit open")
                        .await?;
                    out.push((
                        p.index,
                        Disposition::DeadLetter(format!(
                            "gave up after {} attempts: the destination keeps failing",
                            p.attempts
                        )),
                    ));
                } else {
                    self.log_all(
                        &p.body,
                        DeliveryStatus::Retrying,
                        p.attempts,
                        "circuit open",
                    )
                    .await?;
                    out.push((
                        p.index,
                        Disposition::RetryLater(self.backoff(p.attempts, Some(wait))),
                    ));
                }
            }
            return Ok(out);
        }

        // Open the sealed fields; skip what was already delivered (idempotence).
        let ids: Vec<EventId> = group
            .iter()
            .flat_map(|p| p.body.items.iter().map(|i| i.event_id))
            .collect();
        let done = self
            .ports
            .log
            .delivered(&first.body.workspace_id, &dest.id, &ids, now)
            .await?;
        let mut results: Vec<Vec<ItemResult>> = group
            .iter()
            .map(|p| vec![ItemResult::Skipped; p.body.items.len()])
            .collect();
        let mut opened: Vec<((usize, usize), OpenedItem)> = Vec::with_capacity(ids.len());
        let connector = (self.ports.connectors)(kind);
        let base = dest
            .endpoint
            .clone()
            .unwrap_or_else(|| (self.ports.base_urls)(kind).to_owned());
        let target = Target {
            destination: dest,
            secrets: &settings.secrets,
            base_url: &base,
            now,
        };
        for (m, p) in group.iter().enumerate() {
            for (i, item) in p.body.items.iter().enumerate() {
                if done.contains(&item.event_id) {
                    continue;
                }
                let sealed = match open_sealed(&settings.keys, &p.body, item) {
                    Ok(sealed) => sealed,
                    Err(e) => {
                        // Never sent with fields missing: dead-lettered with the reason.
                        results[m][i] = ItemResult::Permanent {
                            reason: e.to_string(),
                            status: None,
                        };
                        continue;
                    }
                };
                let o = OpenedItem {
                    item: item.clone(),
                    sealed,
                };
                match connector.screen(&target, &o) {
                    Ok(()) => {
                        // Until its request has an outcome, an item is retried, never acked.
                        results[m][i] = ItemResult::Retry {
                            after: None,
                            reason: "no outcome was recorded".into(),
                            status: None,
                        };
                        opened.push(((m, i), o))
                    }
                    Err(DropReason::Age(r)) => {
                        results[m][i] = ItemResult::Dropped(format!("age: {r}"))
                    }
                    Err(DropReason::Invalid(r)) => {
                        results[m][i] = ItemResult::Dropped(format!("invalid: {r}"))
                    }
                }
            }
        }

        // Send in batches as large as the destination allows, several at once.
        let limit = connector.batch_limit(&target).max(1);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut open_batch: HashMap<String, usize> = HashMap::new();
        for (pos, (_, o)) in opened.iter().enumerate() {
            let key = connector.group_key(o).unwrap_or_default();
            let b = match open_batch.get(&key) {
                Some(&b) if batches[b].len() < limit => b,
                _ => {
                    batches.push(Vec::new());
                    open_batch.insert(key, batches.len() - 1);
                    batches.len() - 1
                }
            };
            batches[b].push(pos);
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut sending: HashMap<tokio::task::Id, usize> = HashMap::new();
        for (b, batch) in batches.iter().enumerate() {
            let refs: Vec<&OpenedItem> = batch.iter().map(|&p| &opened[p].1).collect();
            let request = connector.build(&target, &refs);
            let egress = self.ports.egress.clone();
            let sem = semaphore.clone();
            let task = tasks.spawn(async move {
                match request {
                    Err(reason) => Err(Err(reason)),
                    Ok(req) => {
                        let _permit = sem.acquire_owned().await;
                        egress.post(&req).await.map_err(Ok)
                    }
                }
            });
            sending.insert(task.id(), b);
        }
        let mut any_success = false;
        let mut any_transient = false;
        while let Some(joined) = tasks.join_next_with_id().await {
            let (task, response) = match joined {
                Ok((task, response)) => (task, Some(response)),
                Err(e) => (e.id(), None),
            };
            let Some(batch) = sending.get(&task).map(|&b| &batches[b]) else {
                continue;
            };
            let Some(response) = response else {
                // A panicked send: its items are retried, with the reason in the delivery log.
                tracing::error!(destination = %dest_key, items = batch.len(), "a send task panicked; its items will be retried");
                for &pos in batch {
                    let (m, i) = opened[pos].0;
                    results[m][i] = ItemResult::Retry {
                        after: None,
                        reason: "the send task panicked".into(),
                        status: None,
                    };
                }
                continue;
            };
            let refs: Vec<&OpenedItem> = batch.iter().map(|&p| &opened[p].1).collect();
            let (outcome, status) = match response {
                Ok(resp) => (connector.classify(&refs, &resp), Some(resp.status)),
                Err(Err(reason)) => (Outcome::Permanent { reason }, None),
                Err(Ok(e)) => (egress_outcome(&e), None),
            };
            for (k, o) in spread(&outcome, batch.len()).into_iter().enumerate() {
                let (m, i) = opened[batch[k]].0;
                results[m][i] = match o {
                    Outcome::Delivered => {
                        any_success = true;
                        ItemResult::Delivered(status)
                    }
                    Outcome::Retry { after, reason } => {
                        any_transient = true;
                        ItemResult::Retry {
                            after,
                            reason,
                            status,
                        }
                    }
                    Outcome::Permanent { reason } => ItemResult::Permanent { reason, status },
                    Outcome::PerItem(_) => ItemResult::Permanent {
                        reason: "nested per-item outcome".into(),
                        status,
                    },
                };
            }
        }
        drop(opened);
        if any_transient && !any_success {
            self.breaker_report(&dest_key, true, now);
        } else if any_success {
            self.breaker_report(&dest_key, false, now);
        }
        let mut out = Vec::with_capacity(group.len());
        for (p, r) in group.iter().zip(results) {
            out.push((
                p.index,
                self.settle(&p.body, &settings, p.attempts, r).await?,
            ));
        }
        Ok(out)
    }

    /// Writes the delivery log and decides what happens to the message and its parts.
    async fn settle(
        &self,
        body: &QueueBody,
        settings: &Settings,
        attempts: u32,
        results: Vec<ItemResult>,
    ) -> Result<Disposition, DeliveryError> {
        let now = self.ports.clock.now();
        let exhausted = attempts >= self.config.max_attempts;
        let mut records = Vec::new();
        let mut retry: Vec<DeliveryItem> = Vec::new();
        let mut dead: Vec<DeliveryItem> = Vec::new();
        let mut retry_after: Option<Duration> = None;
        let mut last_retry_reason = String::new();
        let mut dead_reason = String::new();
        let mut delivered = 0usize;
        for (item, result) in body.items.iter().zip(results) {
            let (status, http, error) = match result {
                ItemResult::Skipped => continue,
                ItemResult::Delivered(s) => {
                    delivered += 1;
                    (DeliveryStatus::Delivered, s, None)
                }
                ItemResult::Dropped(r) => (DeliveryStatus::Dropped(r.clone()), None, Some(r)),
                ItemResult::Retry {
                    after,
                    reason,
                    status,
                } if !exhausted => {
                    retry_after = retry_after.max(after);
                    last_retry_reason.clone_from(&reason);
                    retry.push(item.clone());
                    (DeliveryStatus::Retrying, status, Some(reason))
                }
                ItemResult::Retry { reason, status, .. } => {
                    let reason = format!("gave up after {attempts} attempts: {reason}");
                    dead_reason.clone_from(&reason);
                    dead.push(item.clone());
                    (DeliveryStatus::Dead, status, Some(reason))
                }
                ItemResult::Permanent { reason, status } => {
                    dead_reason.clone_from(&reason);
                    dead.push(item.clone());
                    (DeliveryStatus::Dead, status, Some(reason))
                }
            };
            records.push(DeliveryRecord {
                workspace_id: body.workspace_id.clone(),
                destination_id: body.destination_id.clone(),
                event_id: item.event_id,
                status,
                attempts,
                last_http_status: http,
                last_error: error.map(|e| e.chars().take(500).collect()),
                updated_at: now,
                expires_at: now + crate::workspace::Retention::delivery_log(),
            });
        }
        if !records.is_empty() {
            self.ports.log.record(&records).await?;
        }
        tracing::info!(
            workspace = %settings.workspace.id,
            destination = %body.destination_id,
            items = body.items.len(),
            delivered,
            retrying = retry.len(),
            dead = dead.len(),
            attempts,
            "delivery attempt"
        );
        let delay = self.backoff(attempts, retry_after);
        Ok(match (retry.is_empty(), dead.is_empty()) {
            (true, true) => Disposition::Ack,
            (false, true) => Disposition::RetryLater(delay),
            (true, false) if delivered == 0 && dead.len() == body.items.len() => {
                Disposition::DeadLetter(dead_reason)
            }
            (true, false) => {
                self.bury(body, dead, &dead_reason).await?;
                Disposition::Ack
            }
            (false, false) => {
                self.bury(body, dead, &dead_reason).await?;
                self.requeue(body, retry, attempts, delay).await?;
                Disposition::Ack
            }
        })
    }

    async fn log_all(
        &self,
        body: &QueueBody,
        status: DeliveryStatus,
        attempts: u32,
        error: &str,
    ) -> Result<(), DeliveryError> {
        let now = self.ports.clock.now();
        let records: Vec<_> = body
            .items
            .iter()
            .map(|item| DeliveryRecord {
                workspace_id: body.workspace_id.clone(),
                destination_id: body.destination_id.clone(),
                event_id: item.event_id,
                status: status.clone(),
                attempts,
                last_http_status: None,
                last_error: Some(error.to_owned()),
                updated_at: now,
                expires_at: now + crate::workspace::Retention::delivery_log(),
            })
            .collect();
        self.ports.log.record(&records).await?;
        Ok(())
    }

    fn part(
        &self,
        body: &QueueBody,
        items: Vec<DeliveryItem>,
        attempts: u32,
        delay: Duration,
    ) -> Result<Outgoing, DeliveryError> {
        let part = QueueBody {
            v: QueueBody::VERSION,
            attempts,
            workspace_id: body.workspace_id.clone(),
            destination_id: body.destination_id.clone(),
            kind: body.kind,
            items,
        };
        Ok(Outgoing {
            kind: body.kind,
            destination_id: body.destination_id.clone(),
            workspace_id: body.workspace_id.clone(),
            body: serde_json::to_vec(&part).map_err(|e| StoreError::permanent("requeue", e))?,
            delay,
        })
    }

    async fn requeue(
        &self,
        body: &QueueBody,
        items: Vec<DeliveryItem>,
        attempts: u32,
        delay: Duration,
    ) -> Result<(), DeliveryError> {
        let part = self.part(body, items, attempts, delay)?;
        self.ports.queue.enqueue(&[part]).await?;
        Ok(())
    }

    async fn bury(
        &self,
        body: &QueueBody,
        items: Vec<DeliveryItem>,
        reason: &str,
    ) -> Result<(), DeliveryError> {
        let part = self.part(body, items, 0, Duration::ZERO)?;
        self.ports.queue.enqueue_dead(&[part], reason).await?;
        Ok(())
    }

    /// Carries out a disposition on the queue.
    pub async fn apply(
        &self,
        kind: DestinationKind,
        msg: &Received,
        d: &Disposition,
    ) -> Result<(), StoreError> {
        match d {
            Disposition::Ack => self.ports.queue.ack(kind, &msg.receipt).await,
            Disposition::RetryLater(delay) => {
                self.ports
                    .queue
                    .retry_later(kind, &msg.receipt, *delay)
                    .await
            }
            Disposition::DeadLetter(reason) => {
                self.ports
                    .queue
                    .dead_letter(kind, &msg.receipt, reason)
                    .await
            }
        }
    }
}

/// A failure before or around sending, which retries the whole message.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Opens an item's sealed fields. Sealed by ingest under the workspace key, they either open
/// and parse or are corrupt: an error (logged, with ids only), never empty fields.
fn open_sealed(
    keys: &WorkspaceKeys,
    body: &QueueBody,
    item: &DeliveryItem,
) -> Result<SealedFields, StoreError> {
    let Some(sealed) = &item.sealed else {
        return Ok(SealedFields::default());
    };
    let corrupt = |why: &'static str| {
        tracing::error!(
            workspace = %body.workspace_id,
            destination = %body.destination_id,
            event = %item.event_id,
            why,
            "a queued item's sealed fields are corrupt"
        );
        StoreError::corrupt("sealed fields of a queued item", why)
    };
    let plain = keys
        .open(&body.item_aad(item), sealed)
        .map_err(|_| corrupt("the sealed value does not open"))?;
    serde_json::from_slice(&plain).map_err(|_| corrupt("not the sealed fields' JSON"))
}

fn egress_outcome(e: &EgressError) -> Outcome {
    match e {
        EgressError::Refused(r) => Outcome::Permanent {
            reason: format!("egress refused: {r}"),
        },
        EgressError::Connect(_) | EgressError::Timeout(_) => Outcome::Retry {
            after: None,
            reason: e.to_string(),
        },
    }
}

/// One outcome per item of a request of `n` items.
fn spread(outcome: &Outcome, n: usize) -> Vec<Outcome> {
    match outcome {
        Outcome::PerItem(list) => {
            let mut out = vec![Outcome::Delivered; n];
            for (i, o) in list {
                if let Some(slot) = out.get_mut(*i) {
                    *slot = o.clone();
                }
            }
            out
        }
        other => vec![other.clone(); n],
    }
}

/// Drains one kind's queue until `stop` turns true: receive, deliver concurrently, settle.
pub async fn run_worker(
    service: Arc<DeliveryService>,
    queue: Arc<dyn DeliveryQueue>,
    kind: DestinationKind,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let idle = Duration::from_millis(200);
    let in_flight = Arc::new(Semaphore::new(256));
    loop {
        if *stop.borrow() {
            break;
        }
        let free = in_flight.available_permits().min(10);
        let mut received = Vec::new();
        let window_ends = tokio::time::Instant::now() + service.config.batch_window;
        while received.len() < free {
            match queue
                .receive(kind, free - received.len(), service.config.visibility)
                .await
            {
                Ok(r) if r.is_empty() && received.is_empty() => break,
                Ok(r) => received.extend(r),
                Err(e) => {
                    tracing::warn!(error = %e, kind = %kind, "receive failed");
                    break;
                }
            }
            if received.len() >= free || tokio::time::Instant::now() >= window_ends {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if received.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let Ok(permit) = in_flight
            .clone()
            .acquire_many_owned(received.len() as u32)
            .await
        else {
            break;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let dispositions = service.process(kind, &received).await;
            for (msg, d) in received.iter().zip(&dispositions) {
                if let Err(e) = service.apply(kind, msg, d).await {
                    tracing::warn!(error = %e, kind = %kind, "could not settle a message; it will be received again");
                }
            }
            drop(permit);
        });
    }
    // Let in-flight deliveries finish so their outcomes are recorded.
    let _ = in_flight.acquire_many(256).await;
}
