//! The ingest use case with its ports: authentication, cached settings, storage, queueing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::cache::TtlCache;
use crate::clock::{Clock, Ids};
use crate::cors::{self, Cors};
use crate::crypto::WorkspaceKeys;
use crate::destination::Destination;
use crate::error::KeyError;
use crate::keys::verifier::{Audience, AuthError, KeyVerifier, VerifierConfig};
use crate::keys::{ApiKeyRecord, KeyRefusal};
use crate::ports::{ControlReader, IngestStore, Keyring, PackRecorded, SuppressionList};
use crate::services::ReadPorts;
use crate::stats::counting::{ingest_delta, IngestTally};
use crate::stats::{StatsDelta, StatsRecorder, StatsSink};
use crate::workspace::{Region, Workspace, WorkspaceId};

use super::gate::{self, Admission, PrepareGate};
use super::pack::{pack, Holding, QueuedItem};
use super::prepare::{prepare, Pipeline, PreparedBatch};
use super::wire::{
    IngestError, ParsedBody, Rejection, RequestMeta, RequirementCheck, Warning,
    MAX_QUEUE_MESSAGE_BYTES,
};

/// What a request achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Valid events, duplicates included (they are answered as accepted).
    pub accepted: usize,
    /// Of those, how many were already seen within 24 h and so not stored or routed again.
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
    /// Identifier values dropped as invalid.
    pub invalid_identifiers: u32,
    /// Of the accepted, how many belonged to an erased subject: dropped, neither stored nor
    /// sent (data-subject erasure).
    pub suppressed: usize,
    /// Of the accepted, how many were crawlers' (bot filtering): neither stored nor sent.
    pub bots: usize,
    /// Queue messages written.
    #[serde(skip)]
    pub queued_messages: usize,
    /// Accepted events a routed destination will drop (a requirement it has), and members
    /// the API ignores.
    pub warnings: Vec<Warning>,
}

/// Settings of the ingest service.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The residency region this deployment serves.
    pub region: Region,
    /// How long workspace settings and destinations are cached.
    pub settings_ttl: Duration,
    /// How long unwrapped data keys are cached (at most 5 minutes).
    pub data_key_ttl: Duration,
    pub max_queue_message_bytes: usize,
    /// Preparations at once (default: one per CPU).
    pub prepare_slots: usize,
    /// Requests that may wait for a preparation slot before the next is refused (503).
    pub prepare_queue: usize,
    /// Requests with at least this many bytes of events are prepared off the async workers.
    pub prepare_inline_below: usize,
    /// Requests between their preparation and their stored, queued events at once (each
    /// holds its prepared batch, a few MiB for 100 events): what bounds ingest's memory when
    /// storage is the bottleneck. Default 6: with 4, the core was idle 11–14 % of a run
    /// (server CPU 86–89 % in `make measure-ingest`) while the writer waited for its fsync and
    /// every prepared request waited for the writer; 6 keep it busy and fill groups better
    /// (11,783–12,067 → 14,217–15,500 events/s with the other changes of 2026-12-06, written
    /// per event 7.5 → 6.7 KB, peak RSS 53–55 MiB either way). 8 was as fast as 6 but took
    /// 59–62 MiB (earlier, 8 against 4: peak RSS 95–99 against 85–90 MiB). `serve` sets it
    /// with `--max-batches-in-flight`.
    pub max_in_flight: usize,
    /// Requests that may wait for one of those places before the next is refused (503).
    pub in_flight_queue: usize,
}

impl IngestConfig {
    pub fn new(region: Region) -> Self {
        Self {
            region,
            settings_ttl: Duration::seconds(5),
            data_key_ttl: Duration::minutes(5),
            max_queue_message_bytes: MAX_QUEUE_MESSAGE_BYTES,
            prepare_slots: std::thread::available_parallelism().map_or(1, usize::from),
            prepare_queue: PrepareGate::DEFAULT_QUEUE,
            prepare_inline_below: PrepareGate::DEFAULT_INLINE_BELOW,
            max_in_flight: 6,
            in_flight_queue: 1024,
        }
    }
}

/// A workspace's settings and keys as ingest uses them, cached briefly.
#[derive(Debug)]
pub struct Snapshot {
    pub workspace: Workspace,
    pub destinations: Vec<Destination>,
    pub keys: WorkspaceKeys,
}

impl Snapshot {
    /// The pure part of ingest on this workspace's settings and keys, for a request with
    /// `meta` received at `received_at`, its items held as `holding`; without a requirement
    /// check (the service sets its own).
    pub fn pipeline<'a>(
        &'a self,
        ids: &'a dyn Ids,
        meta: &'a RequestMeta,
        received_at: OffsetDateTime,
        holding: Holding,
    ) -> Pipeline<'a> {
        Pipeline {
            workspace: &self.workspace,
            destinations: &self.destinations,
            keys: &self.keys,
            ids,
            meta,
            received_at,
            requirements: None,
            holding,
        }
    }
}

/// A workspace's suppression tokens.
type Suppressed = Arc<HashSet<String>>;

/// The ingest use case with its ports.
pub struct IngestService {
    control: Arc<dyn ControlReader>,
    store: Arc<dyn IngestStore>,
    keyring: Arc<dyn Keyring>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    config: IngestConfig,
    verifier: Arc<KeyVerifier>,
    gate: PrepareGate,
    in_flight: Admission,
    snapshots: TtlCache<WorkspaceId, Arc<Snapshot>>,
    /// Opened data keys by (workspace, key reference, wrapped key), for `data_key_ttl`.
    data_keys: TtlCache<[u8; 32], WorkspaceKeys>,
    /// The suppression list of erased subjects, read with the workspace settings.
    suppressions: Arc<dyn SuppressionList>,
    suppressed: TtlCache<WorkspaceId, Suppressed>,
    /// The destinations' requirements, checked at ingest for warnings.
    requirements: Option<RequirementCheck>,
    /// Warnings answered since the process started.
    warnings: AtomicU64,
    /// One counters delta per request.
    stats: StatsSink,
    /// Browser requests refused for their origin since the process started.
    origins_refused: AtomicU64,
}

crate::debug_fields!(IngestService: config);

/// The ports ingest uses.
#[allow(missing_debug_implementations)]
pub struct IngestPorts {
    pub read: ReadPorts,
    /// The events and their queue messages, kept together or not at all.
    pub store: Arc<dyn IngestStore>,
    /// Drops the events of erased subjects (data-subject requests). The workspace's list is
    /// read once per `settings_ttl` per process, like the settings: one read per workspace
    /// every few seconds instead of one per event, and a new suppression reaches every
    /// process within that TTL (the DSR service waits longer than it before deleting).
    pub suppressions: Arc<dyn SuppressionList>,
    /// The overview's counters: one write per request, whose failure fails nothing.
    pub stats: Arc<dyn StatsRecorder>,
}

impl IngestService {
    pub fn new(ports: IngestPorts, config: IngestConfig) -> Self {
        let ReadPorts {
            control,
            keyring,
            clock,
            ids,
        } = ports.read;
        Self {
            verifier: Arc::new(KeyVerifier::new(
                VerifierConfig::new(config.region),
                clock.clone(),
            )),
            snapshots: TtlCache::new(clock.clone(), config.settings_ttl, 10_000),
            suppressed: TtlCache::new(clock.clone(), config.settings_ttl, 10_000),
            in_flight: Admission::new(config.max_in_flight, config.in_flight_queue),
            gate: PrepareGate::new(
                config.prepare_slots,
                config.prepare_queue,
                config.prepare_inline_below,
            ),
            control,
            store: ports.store,
            keyring,
            ids,
            data_keys: TtlCache::new(clock.clone(), config.data_key_ttl, 10_000),
            suppressions: ports.suppressions,
            requirements: None,
            warnings: AtomicU64::new(0),
            stats: StatsSink::new(ports.stats),
            origins_refused: AtomicU64::new(0),
            config,
            clock,
        }
    }

    /// Warns, in the ingest response, of each accepted event a routed destination will drop
    /// for one of its requirements: `tracklayer_connectors::requirements::unmet`, the rules
    /// the connectors screen by.
    pub fn with_requirements(mut self, check: RequirementCheck) -> Self {
        self.requirements = Some(check);
        self
    }

    /// Stats writes that failed in this process since it started (for `/healthz`).
    pub fn stats_failures_total(&self) -> u64 {
        self.stats.failures_total()
    }

    /// Warnings answered by this process since it started (for `/healthz`).
    pub fn warnings_total(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    /// Browser requests refused for their origin by this process (for `/healthz`).
    pub fn origins_refused_total(&self) -> u64 {
        self.origins_refused.load(Ordering::Relaxed)
    }

    /// The CORS decision for a request with `origin` (its `Origin` header, if any) under the
    /// workspace of `key` ([`crate::cors`]); a refusal is counted and is an error naming the
    /// origin.
    pub async fn check_origin(
        &self,
        key: &ApiKeyRecord,
        origin: Option<&str>,
    ) -> Result<Cors, IngestError> {
        if origin.is_none() {
            if key.browser {
                // A browser-facing key is public: without an Origin it is someone else's
                // server replaying it, not the shop's pages.
                self.origins_refused.fetch_add(1, Ordering::Relaxed);
                return Err(IngestError::OriginRefused {
                    origin: "(none)".into(),
                });
            }
            return Ok(Cors::ServerToServer);
        }
        let snap = self.snapshot(&key.workspace_id).await?;
        match cors::decide(origin, &snap.workspace.security.allowed_origins) {
            Cors::Refuse(origin) => {
                self.origins_refused.fetch_add(1, Ordering::Relaxed);
                Err(IngestError::OriginRefused { origin })
            }
            decision => Ok(decision),
        }
    }

    /// The workspace's suppression tokens, cached for `settings_ttl`.
    async fn suppressed(&self, ws: &WorkspaceId) -> Result<Suppressed, IngestError> {
        if let Some(set) = self.suppressed.get(ws) {
            return Ok(set);
        }
        let set: Suppressed = Arc::new(
            self.suppressions
                .suppressed(ws)
                .await?
                .into_iter()
                .collect(),
        );
        self.suppressed.insert(ws.clone(), set.clone());
        Ok(set)
    }

    pub fn region(&self) -> Region {
        self.config.region
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Shares a key verifier with the admin API of the same process (`serve`): one set of
    /// failure counters per source IP and one cache of verified keys.
    pub fn with_verifier(mut self, verifier: Arc<KeyVerifier>) -> Self {
        self.verifier = verifier;
        self
    }

    /// Records write keys' last use there (at most once a minute per key): the one control
    /// write ingest makes. Call it after [`Self::with_verifier`], if both.
    pub fn with_key_usage(self, usage: Arc<dyn crate::ports::KeyUsage>) -> Self {
        self.verifier.record_usage_in(usage);
        self
    }

    /// The key verifier, for its counters.
    pub fn verifier(&self) -> &KeyVerifier {
        &self.verifier
    }

    /// Verifies an ingest write key, from an unknown address.
    pub async fn authenticate(&self, presented: &str) -> Result<ApiKeyRecord, IngestError> {
        self.authenticate_from(presented, None).await
    }

    /// Verifies an ingest write key sent from `ip` ([`KeyVerifier`]).
    pub async fn authenticate_from(
        &self,
        presented: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<ApiKeyRecord, IngestError> {
        self.verifier
            .verify(self.control.as_ref(), Audience::Tracking, presented, ip)
            .await
            .map_err(|e| match e {
                AuthError::Refused(refusal) => IngestError::Unauthorized(refusal),
                AuthError::WrongRegion(region) => IngestError::WrongRegion { region },
                AuthError::Blocked => IngestError::Blocked,
                AuthError::Throttled { retry_after } => IngestError::Throttled { retry_after },
                AuthError::Store(e) => IngestError::Store(e),
            })
    }

    /// The workspace's settings, destinations and keys, cached for a few seconds.
    pub async fn snapshot(&self, ws: &WorkspaceId) -> Result<Arc<Snapshot>, IngestError> {
        if let Some(snap) = self.snapshots.get(ws) {
            return Ok(snap);
        }
        let now = self.clock.now();
        let workspace = self
            .control
            .workspace(ws, now)
            .await?
            .ok_or(IngestError::Unauthorized(KeyRefusal::Unknown))?;
        // Closure revokes every key; a write key verified before it is refused as soon as
        // these settings or the key's record are read again.
        if workspace.is_closed() {
            return Err(IngestError::Unauthorized(KeyRefusal::Revoked));
        }
        if workspace.region != self.config.region {
            return Err(IngestError::WrongRegion {
                region: workspace.region,
            });
        }
        let destinations = self.control.destinations(ws).await?;
        let keys = self.workspace_keys(&workspace).await?;
        let snap = Arc::new(Snapshot {
            workspace,
            destinations,
            keys,
        });
        self.snapshots.insert(ws.clone(), snap.clone());
        Ok(snap)
    }

    async fn workspace_keys(&self, ws: &Workspace) -> Result<WorkspaceKeys, IngestError> {
        let mut h = Sha256::new();
        h.update(ws.id.as_str().as_bytes());
        h.update(serde_json::to_vec(&ws.key_ref).unwrap_or_default());
        h.update(&ws.data_key.0);
        let cache_key: [u8; 32] = h.finalize().into();
        if let Some(keys) = self.data_keys.get(&cache_key) {
            return Ok(keys);
        }
        let data_key = self
            .keyring
            .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
            .await
            .map_err(|e| match e {
                KeyError::Unavailable(_) => IngestError::KeyUnavailable(e),
                other => IngestError::Key(other),
            })?;
        let keys = WorkspaceKeys::new(&data_key);
        self.data_keys.insert(cache_key, keys.clone());
        Ok(keys)
    }

    /// Drops cached settings and the suppression list (after a destination or policy change,
    /// or an erasure submitted, in this process).
    pub fn invalidate_workspace(&self, ws: &WorkspaceId) {
        self.snapshots.remove(ws);
        self.suppressed.remove(ws);
    }

    /// How this ingest's queue holds items.
    fn holding(&self) -> Holding {
        if self.store.items_by_reference() {
            Holding::ByReference
        } else {
            Holding::ByValue
        }
    }

    /// Ingests a parsed request for an authenticated key, and records its counters in one
    /// write once its outcome is known (accepted and queued, or every event rejected); a
    /// failed stats write is logged and counted, never answered ([`StatsSink`]).
    pub async fn ingest(
        &self,
        key: &ApiKeyRecord,
        body: &ParsedBody<'_>,
        meta: &RequestMeta,
    ) -> Result<IngestOutcome, IngestError> {
        let mut delta = StatsDelta::new();
        let at = self.clock.now();
        let outcome = self.accept(key, body, meta, &mut delta).await;
        self.stats.record(&key.workspace_id, at, &delta).await;
        outcome
    }

    /// [`Self::ingest`] without the stats write: fills `delta` when the outcome is known.
    async fn accept(
        &self,
        key: &ApiKeyRecord,
        body: &ParsedBody<'_>,
        meta: &RequestMeta,
        delta: &mut StatsDelta,
    ) -> Result<IngestOutcome, IngestError> {
        let _in_flight = self
            .in_flight
            .enter()
            .await
            .map_err(|gate::Busy| IngestError::Busy)?;
        let snap = self.snapshot(&key.workspace_id).await?;
        if meta.ip.is_some_and(|ip| snap.workspace.security.blocks(ip)) {
            return Err(IngestError::Blocked);
        }
        let received_at = self.clock.now();
        let holding = self.holding();
        let pipeline = Pipeline {
            requirements: self.requirements,
            ..snap.pipeline(self.ids.as_ref(), meta, received_at, holding)
        };
        let input_bytes = body.items.iter().map(|i| i.get().len()).sum();
        let mut prepared = self
            .gate
            .run(input_bytes, || prepare(&pipeline, body))
            .await
            .map_err(|gate::Busy| IngestError::Busy)?;
        if prepared.events.is_empty() && prepared.bots == 0 {
            *delta = ingest_delta(
                IngestTally {
                    accepted: 0,
                    duplicates: 0,
                    suppressed: 0,
                    bots: 0,
                    rejected: &prepared.rejected,
                },
                [],
            );
            return Err(IngestError::NothingValid {
                rejected: prepared.rejected,
            });
        }
        let suppressed =
            drop_suppressed(&mut prepared, &*self.suppressed(&snap.workspace.id).await?);
        let packing = packing(
            snap.clone(),
            std::mem::take(&mut prepared.items),
            self.config.max_queue_message_bytes,
            holding,
        );
        let stored = self
            .store
            .record_and_enqueue(&prepared.events, received_at, packing)
            .await?;
        let valid = prepared.events.len();
        let mut fresh = 0;
        let mut routing = Vec::new();
        for (event, new) in prepared.events.iter().zip(&stored.recorded) {
            if *new {
                fresh += 1;
                routing.push(event.event.routing.as_slice());
            }
        }
        let duplicates = valid - fresh + prepared.duplicates;
        self.warnings
            .fetch_add(prepared.warnings.len() as u64, Ordering::Relaxed);
        let valid = valid + prepared.duplicates + suppressed + prepared.bots;
        *delta = ingest_delta(
            IngestTally {
                accepted: valid,
                duplicates,
                suppressed,
                bots: prepared.bots,
                rejected: &prepared.rejected,
            },
            routing,
        );
        tracing::info!(
            workspace = %snap.workspace.id,
            accepted = valid,
            duplicates,
            rejected = prepared.rejected.len(),
            suppressed,
            warnings = prepared.warnings.len(),
            queued_messages = stored.messages,
            "ingested"
        );
        Ok(IngestOutcome {
            accepted: valid,
            duplicates,
            rejected: prepared.rejected,
            invalid_identifiers: prepared.invalid_identifiers,
            suppressed,
            bots: prepared.bots,
            queued_messages: stored.messages,
            warnings: prepared.warnings,
        })
    }
}

/// The queue messages of the recorded events' items (`items`, per event), packed once the
/// store knows which events were recorded. By reference the items are read, so the store may
/// ask again (`PackRecorded`); by value they move into the messages, so the store asks once
/// (every by-value store does: [`super::RecordThenEnqueue`]) and a second ask panics rather
/// than answer an empty list (a store's write that panics keeps nothing).
fn packing(
    snap: Arc<Snapshot>,
    items: Vec<Vec<(usize, QueuedItem)>>,
    max_bytes: usize,
    holding: Holding,
) -> PackRecorded {
    let mut items = Some(items);
    Box::new(move |recorded: &[bool]| {
        let (ws, destinations) = (&snap.workspace.id, &snap.destinations[..]);
        match (holding, items.as_ref()) {
            (Holding::ByReference, Some(all)) => {
                let fresh = all.iter().zip(recorded).filter(|(_, new)| **new);
                let fresh = fresh.flat_map(|(items, _)| items.iter().map(|(d, i)| (*d, i)));
                pack(ws, destinations, fresh, max_bytes, holding)
            }
            _ => {
                let all = items
                    .take()
                    .expect("items by value are packed once: they move into the messages");
                let fresh = all.into_iter().zip(recorded).filter(|(_, new)| **new);
                let fresh = fresh.flat_map(|(items, _)| items);
                pack(ws, destinations, fresh, max_bytes, holding)
            }
        }
    })
}

/// Removes the events of suppressed subjects (and their items) from a prepared batch;
/// returns how many went.
fn drop_suppressed(prepared: &mut PreparedBatch, suppressed: &HashSet<String>) -> usize {
    if suppressed.is_empty() {
        return 0;
    }
    let before = prepared.events.len();
    let keep: Vec<bool> = prepared
        .events
        .iter()
        .map(|e| {
            !e.event
                .subjects
                .iter()
                .any(|s| suppressed.contains(&crate::dsr::suppression_token(s)))
        })
        .collect();
    let mut flags = keep.iter();
    prepared.events.retain(|_| *flags.next().unwrap_or(&true));
    let mut flags = keep.iter();
    prepared.items.retain(|_| *flags.next().unwrap_or(&true));
    before - prepared.events.len()
}
