//! The delivery service: queue messages → destinations, with idempotence, backoff with full
//! jitter honouring `Retry-After`, dead letters, pause, and a circuit breaker so that one
//! failing destination never slows another.
//!
//! Driven by the local worker (`run_worker`) in `tracklayer serve`, and by `functions/deliver`
//! on AWS (which calls [`DeliveryService::process`] per SQS record).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::batching::{plan, Opened};
use super::flow_control::{Admission, Breaker, Gate, Health};
use super::hydrate::Unopened;
use super::oauth::TokenSource;
use super::retry::{classify, egress_outcome};
use super::roles::{AssumedRoles, NoRoles};
use super::send::{send_batches, Outlet, Sent};
use super::settings::{Loaded, Settings, Suppressed};
use super::{Connector, OpenedItem, Outcome, Target};
use crate::cache::TtlCache;
use crate::destination::DestinationId;
use crate::destination::DestinationKind;
use crate::error::{KeyError, StoreError};
use crate::event::QueueBody;
use crate::ports::{
    DeliveryLog, DeliveryQueue, Egress, EventReader, Received, Remainder, SuppressionList,
};
use crate::services::ReadPorts;
use crate::stats::{StatsRecorder, StatsSink};
use crate::workspace::WorkspaceId;

pub use super::worker::run_worker;

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
    /// Requests in flight per destination: at least this many, and as many as carry
    /// [`DeliveryConfig::per_destination_events`] at the destination's batch limit
    /// ([`DeliveryConfig::request_concurrency`]).
    pub per_destination_concurrency: usize,
    /// Events in flight per destination that its requests may carry at once: a vendor with
    /// small batches (GA4: 25 events per request) gets more requests in flight, so that it
    /// delivers as many events per second as one with large ones (Meta: 1,000).
    pub per_destination_events: usize,
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
            per_destination_events: 400,
            per_destination_messages: 32,
            paused_recheck: Duration::from_secs(60),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            settings_ttl: Duration::from_secs(5),
            batch_window: Duration::from_millis(250),
        }
    }
}

impl DeliveryConfig {
    /// Most requests in flight to one destination, whatever its batch limit.
    pub const MAX_REQUEST_CONCURRENCY: usize = 64;

    /// Requests in flight to a destination whose requests carry up to `batch_limit` events:
    /// enough to carry [`DeliveryConfig::per_destination_events`], at least
    /// [`DeliveryConfig::per_destination_concurrency`], at most
    /// [`DeliveryConfig::MAX_REQUEST_CONCURRENCY`].
    pub fn request_concurrency(&self, batch_limit: usize) -> usize {
        self.per_destination_events
            .div_ceil(batch_limit.max(1))
            .max(self.per_destination_concurrency)
            .clamp(1, Self::MAX_REQUEST_CONCURRENCY)
    }
}

/// What to do with a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (delivered or dropped).
    Ack,
    /// Make it visible again after the delay (counts as an attempt).
    RetryLater(Duration),
    /// Keep it as it is, visible again after the delay, without spending this receive or an
    /// attempt (a paused destination or workspace, a spent in-flight budget, a workspace key
    /// unavailable): one queue operation, [`QueueConsumer::hold`](crate::ports::QueueConsumer::hold).
    Hold(Duration),
    /// Replace it by what is left of it: its items to retry (a message of their own, this
    /// attempt counted) and those refused for good (dead-lettered); the rest was delivered.
    /// One queue operation, [`QueueConsumer::replace`](crate::ports::QueueConsumer::replace).
    Replace(Remainder),
    /// Move it to the dead-letter queue with the reason.
    DeadLetter(String),
}

/// The ports delivery uses.
#[allow(missing_debug_implementations)]
pub struct DeliveryPorts {
    pub read: ReadPorts,
    pub queue: Arc<dyn DeliveryQueue>,
    pub log: Arc<dyn DeliveryLog>,
    /// The stored events of items queued by reference ([`crate::event::RefBody`]): one
    /// batched read per such message. Queues of items by value (SQS) never need it.
    pub events: Arc<dyn EventReader>,
    pub egress: Arc<dyn Egress>,
    /// Drops queued items of subjects erased after they were queued (data-subject requests).
    pub suppressions: Arc<dyn SuppressionList>,
    /// The wire format of each destination kind.
    pub connectors: fn(DestinationKind) -> &'static dyn Connector,
    /// Production base URL of each kind, used when a destination has no `endpoint`.
    pub base_urls: fn(DestinationKind) -> &'static str,
    /// The overview's counters: one write per workspace and bucket of a receive, whose
    /// failure fails nothing.
    pub stats: Arc<dyn StatsRecorder>,
}

/// The delivery use case.
pub struct DeliveryService {
    pub(super) ports: DeliveryPorts,
    pub(super) config: DeliveryConfig,
    /// Settings and opened secrets per (workspace, destination), for `settings_ttl`.
    pub(super) settings: TtlCache<(WorkspaceId, DestinationId), Arc<Settings>>,
    pub(super) breakers: Mutex<HashMap<String, Breaker>>,
    pub(super) gates: Mutex<HashMap<String, Gate>>,
    /// Each workspace's suppression tokens, for `settings_ttl`.
    pub(super) suppressed: TtlCache<WorkspaceId, Suppressed>,
    pub(super) stats: StatsSink,
    /// OAuth 2.0 access tokens of the destinations whose vendor takes them.
    pub(super) tokens: TokenSource,
    /// Destinations' assumed roles and their cached credentials ([`super::roles`]).
    pub(super) roles: AssumedRoles,
}

crate::debug_fields!(DeliveryService: config);

/// How one item ended in one attempt.
#[derive(Debug, Clone)]
pub(super) enum ItemResult {
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
pub(super) struct Part {
    pub(super) index: usize,
    pub(super) attempts: u32,
    pub(super) body: QueueBody,
}

impl DeliveryService {
    pub fn new(ports: DeliveryPorts, config: DeliveryConfig) -> Self {
        let ttl = time::Duration::try_from(config.settings_ttl).unwrap_or(time::Duration::MAX);
        Self {
            settings: TtlCache::new(ports.clock.clone(), ttl, 10_000),
            suppressed: TtlCache::new(ports.clock.clone(), ttl, 10_000),
            breakers: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            stats: StatsSink::new(ports.stats.clone()),
            tokens: TokenSource::new(ports.egress.clone(), ports.clock.clone()),
            roles: AssumedRoles::new(Arc::new(NoRoles), ports.clock.clone()),
            ports,
            config,
        }
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// Stats writes that failed in this process since it started.
    pub fn stats_failures_total(&self) -> u64 {
        self.stats.failures_total()
    }

    /// Delivers the messages of one receive (one SQS batch) and says what to do with each,
    /// in order. Items bound for the same destination share requests across messages, so each
    /// destination gets as few requests as its batch limit allows; destinations are served
    /// concurrently. The delivery log is written here; the caller applies the dispositions ([`DeliveryService::apply`]).
    ///
    /// A message gets no outcome by default: one whose delivery failed before an outcome was
    /// known (an error, a panicked task) is retried with a delivery-log entry saying why,
    /// never acknowledged ([`DeliveryService::after_failure`]).
    ///
    /// The counters of the messages settled are written once the receive is done, one write
    /// per workspace and stats bucket ([`StatsSink::batch`]).
    pub async fn process(
        self: &Arc<Self>,
        kind: DestinationKind,
        msgs: &[Received],
    ) -> Vec<Disposition> {
        self.stats.batch(self.process_counted(kind, msgs)).await
    }

    async fn process_counted(
        self: &Arc<Self>,
        kind: DestinationKind,
        msgs: &[Received],
    ) -> Vec<Disposition> {
        let mut out: Vec<Option<Disposition>> = vec![None; msgs.len()];
        let mut groups: HashMap<(String, String), Vec<Part>> = HashMap::new();
        for (index, m) in msgs.iter().enumerate() {
            match self.open_body(m).await {
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
                Err(Unopened::Unreadable(e)) => {
                    out[index] = Some(Disposition::DeadLetter(format!("unreadable message: {e}")))
                }
                Err(Unopened::Paused) => {
                    out[index] = Some(Disposition::Hold(self.config.paused_recheck))
                }
                Err(Unopened::Store(e)) => {
                    tracing::warn!(error = %e, kind = %kind, "the events of queued items could not be read; will retry");
                    out[index] = Some(self.after_failure(m, &e.to_string()).await);
                }
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut members: HashMap<tokio::task::Id, Vec<usize>> = HashMap::new();
        for group in groups.into_values() {
            let indices = group.iter().map(|p| p.index).collect();
            let service = self.clone();
            let task = tasks.spawn(StatsSink::joined(async move {
                service.try_group(kind, group).await
            }));
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

    /// Delivers one destination's messages of a receive, stage by stage: drop the items of
    /// erased subjects and load the destination's settings ([`settings`](super::settings)),
    /// hold back what may not go now ([`flow_control`](super::flow_control)), open and screen
    /// the items and group them into vendor batches ([`batching`](super::batching)), send,
    /// then settle each message ([`settle`](super::settle)).
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
        let settings = match self.group_settings(&group).await? {
            Loaded::Ready(settings) => settings,
            Loaded::Done(out) => return Ok(out),
        };
        let now = self.ports.clock.now();
        let connector = (self.ports.connectors)(kind);
        let base = settings
            .destination
            .endpoint
            .clone()
            .unwrap_or_else(|| (self.ports.base_urls)(kind).to_owned());
        let target = Target {
            destination: &settings.destination,
            secrets: &settings.secrets,
            base_url: &base,
            now,
        };
        let requests = self
            .config
            .request_concurrency(connector.batch_limit(&target));
        let (_slot, semaphore) = match self.admit(&group, &settings, requests, now).await? {
            Admission::Send(slot, semaphore) => (slot, semaphore),
            Admission::Done(out) => return Ok(out),
        };
        let mut opened = self
            .open_group(connector, &target, &mut group, &settings.keys)
            .await?;
        let health = self.send(connector, &target, &mut opened, semaphore).await;
        let results = opened.give_back(&mut group)?;
        let dest_key = settings.destination.id.as_str();
        if health.any_transient && !health.any_success {
            self.breaker_report(dest_key, true, now);
        } else if health.any_success {
            self.breaker_report(dest_key, false, now);
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

    /// Sends the opened items in batches as large as the destination allows, several at
    /// once ([`send_batches`]: with an access token for an OAuth vendor), and records each
    /// item's outcome.
    async fn send(
        &self,
        connector: &dyn Connector,
        target: &Target<'_>,
        opened: &mut Opened,
        semaphore: Arc<Semaphore>,
    ) -> Health {
        let assumed = match self.assumed_secrets(connector, target).await {
            Ok(assumed) => assumed,
            Err(outcome) => {
                let all: Vec<usize> = (0..opened.items.len()).collect();
                let mut health = Health::default();
                opened.record(&all, &outcome, None, &mut health);
                return health;
            }
        };
        let target = &Target {
            secrets: assumed.as_ref().unwrap_or(target.secrets),
            ..*target
        };
        let refs: Vec<&OpenedItem> = opened.items.iter().map(|(_, o)| o).collect();
        let plan = plan(connector, target, &refs);
        let batches: Vec<Vec<&OpenedItem>> = plan
            .iter()
            .map(|b| b.iter().map(|&p| refs[p]).collect())
            .collect();
        let outlet = Outlet {
            egress: &self.ports.egress,
            tokens: &self.tokens,
            semaphore: Some(&semaphore),
        };
        let sent = send_batches(outlet, connector, target, &batches).await;
        let outcomes: Vec<Option<(Outcome, Option<u16>)>> = batches
            .iter()
            .zip(sent)
            .map(|(batch, sent)| match sent {
                Sent::Answered(resp) => {
                    let now = self.ports.clock.now();
                    Some((classify(connector, batch, &resp, now), Some(resp.status)))
                }
                Sent::Settled(outcome, status) => Some((outcome, status)),
                Sent::Failed(e) => Some((egress_outcome(&e), None)),
                Sent::Panicked => None,
            })
            .collect();
        let mut health = Health::default();
        for (batch, outcome) in plan.iter().zip(outcomes) {
            match outcome {
                Some((outcome, status)) => opened.record(batch, &outcome, status, &mut health),
                None => {
                    // A panicked send: its items are retried, with the reason in the delivery log.
                    tracing::error!(destination = %target.destination.id, items = batch.len(), "a send task panicked; its items will be retried");
                    opened.panicked(batch);
                }
            }
        }
        health
    }
}

/// A failure before or around sending, which retries the whole message.
#[derive(Debug, thiserror::Error)]
pub(super) enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Every message of a group done.
pub(super) fn acked(group: &[Part]) -> Vec<(usize, Disposition)> {
    group.iter().map(|p| (p.index, Disposition::Ack)).collect()
}
