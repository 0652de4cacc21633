//! The data-subject request use case: submission (admin API), processing in resumable pages
//! (`tracklayer serve`'s worker, `functions/dsr` on its schedule), receipts, exports, mails.
//!
//! Erasure order: the subject goes on the suppression list when the request is submitted,
//! before the admin API answers 202, so that ingest drops its new events at once (the
//! process that took the request is told through [`DsrService::with_invalidations`]; others
//! re-read the list with the workspace settings, every `IngestConfig::settings_ttl`);
//! deleting starts once every ingest process has seen the suppression. Then
//! page by page: read the subject's events and their delivery records, persist the page with
//! its counts, delete (queue items, delivery-log entries, events with their index entries,
//! operational records and dedup markers), persist the progress. A crash anywhere re-runs the
//! unfinished page; every deletion is idempotent and the counts were persisted before it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::{
    suppression_token, DestinationReceipt, Downstream, DsrId, DsrKind, DsrRequest, DsrStatus,
    EventFootprint, PagePlan, Phase, Receipt, StoreCounts,
};
use crate::admin::{require, AdminError, Principal};
use crate::audit::AuditAction;
use crate::audit::NewAuditEntry;
use crate::clock::{Clock, Ids};
use crate::crypto::{aad, SealLabel, Sealed, WorkspaceKeys};
use crate::destination::{Destination, DestinationId, DestinationKind};
use crate::event::EventId;
use crate::identity::{Field, Hints};
use crate::invalidation::{Change, Invalidations};
use crate::keys::Role;
use crate::ports::{
    AuditLog, ControlStore, DeliveryLog, DeliveryQueue, DeliveryStatus, DsrStore, EventEraser,
    Keyring, Mail, Mailer,
};
use crate::workspace::{Workspace, WorkspaceId};

/// The ports the DSR use case needs.
#[allow(missing_debug_implementations)]
pub struct DsrPorts {
    pub control: Arc<dyn ControlStore>,
    pub dsr: Arc<dyn DsrStore>,
    pub events: Arc<dyn EventEraser>,
    pub log: Arc<dyn DeliveryLog>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub keyring: Arc<dyn Keyring>,
    pub mailer: Arc<dyn Mailer>,
    pub audit: Arc<dyn AuditLog>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
}

/// How requests are processed.
#[derive(Debug, Clone)]
pub struct DsrConfig {
    /// Events per page (one persisted step).
    pub page_size: usize,
    /// Pages one `run` processes at most, over all requests (bounds a Lambda invocation).
    pub max_pages_per_run: u32,
    /// Open requests one `run` looks at.
    pub requests_per_run: usize,
    /// How long after suppressing a subject deleting starts: at least ingest's settings TTL,
    /// so that no ingest process still works from a list without the subject.
    pub suppression_propagation: Duration,
}

impl Default for DsrConfig {
    fn default() -> Self {
        Self {
            page_size: 100,
            max_pages_per_run: 200,
            requests_per_run: 50,
            suppression_propagation: Duration::seconds(10),
        }
    }
}

/// Why a DSR call failed.
#[derive(Debug, thiserror::Error)]
pub enum DsrError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The access export's 7 days are over.
    #[error("the export expired at {0}")]
    ExportExpired(OffsetDateTime),
    /// The export is not there yet.
    #[error("the request is {0}; its export is ready when it is completed")]
    NotReady(&'static str),
}

impl From<crate::error::StoreError> for DsrError {
    fn from(e: crate::error::StoreError) -> Self {
        Self::Admin(e.into())
    }
}

impl From<crate::error::KeyError> for DsrError {
    fn from(e: crate::error::KeyError) -> Self {
        Self::Admin(e.into())
    }
}

/// The identifiers of a subject as a request names them. Raw personal data: turned into
/// subject-index values at once, never stored, never logged.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectIdentifiers {
    #[serde(default)]
    pub email: Option<String>,
    /// In international format (`+49 30 1234567`).
    #[serde(default)]
    pub phone: Option<String>,
    /// The customer's user id (Segment `userId`).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Segment `anonymousId`.
    #[serde(default)]
    pub anonymous_id: Option<String>,
}

impl fmt::Debug for SubjectIdentifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("SubjectIdentifiers")
            .field("email", &given(&self.email))
            .field("phone", &given(&self.phone))
            .field("external_id", &given(&self.external_id))
            .field("anonymous_id", &given(&self.anonymous_id))
            .finish()
    }
}

/// The subject-index values of validated identifiers, with the names of the fields given.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectIndex {
    pub identifiers: Vec<String>,
    pub values: Vec<String>,
}

impl fmt::Debug for SubjectIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectIndex")
            .field("identifiers", &self.identifiers)
            .finish_non_exhaustive()
    }
}

impl SubjectIdentifiers {
    /// Validates and indexes the identifiers exactly as ingest indexes an event's: the same
    /// canonical forms under the same HMAC and field tags ([`crate::ingest::subject_index`]).
    pub fn index(&self, keys: &WorkspaceKeys) -> Result<SubjectIndex, AdminError> {
        let mut identifiers = Vec::new();
        let mut values = Vec::new();
        let fields = [
            (
                Field::Email,
                &self.email,
                "subject.email",
                "must be an email address",
            ),
            (
                Field::Phone,
                &self.phone,
                "subject.phone",
                "must be a phone number in international format (+49 30 1234567)",
            ),
            (
                Field::ExternalId,
                &self.external_id,
                "subject.external_id",
                "must not be blank",
            ),
        ];
        for (field, value, name, detail) in fields {
            let Some(raw) = value else { continue };
            if raw.len() > 512 {
                return Err(AdminError::invalid(name, "must be at most 512 bytes"));
            }
            let index = crate::ingest::subject_index(keys, field, raw, Hints::default())
                .ok_or_else(|| AdminError::invalid(name, detail))?;
            identifiers.push(crate::ingest::field_tag(field).to_owned());
            values.push(index);
        }
        if let Some(anon) = &self.anonymous_id {
            let anon = anon.trim();
            if anon.is_empty() || anon.len() > 512 {
                return Err(AdminError::invalid(
                    "subject.anonymous_id",
                    "must be 1 to 512 bytes",
                ));
            }
            identifiers.push("anonymous_id".to_owned());
            values.push(crate::ingest::anonymous_subject_index(keys, anon));
        }
        if values.is_empty() {
            return Err(AdminError::invalid(
                "subject",
                "name at least one of email, phone, external_id, anonymous_id",
            ));
        }
        values.sort();
        values.dedup();
        Ok(SubjectIndex {
            identifiers,
            values,
        })
    }
}

/// What one `run` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// Open requests looked at.
    pub requests: usize,
    pub pages: u32,
    /// Requests completed in this run.
    pub completed: Vec<DsrId>,
    /// Of those, erasures (an embedded store may want to checkpoint after them).
    pub erasures_completed: usize,
    /// "Due soon" mails sent.
    pub reminders: usize,
    /// Requests that failed in this run (they are retried by the next).
    pub failed: usize,
    /// Some request still has work: run again soon.
    pub more: bool,
}

/// The DSR use case.
pub struct DsrService {
    ports: DsrPorts,
    config: DsrConfig,
    /// In-process caches of the suppression list (ingest's) hear of each suppression.
    invalidations: Arc<Invalidations>,
}

impl fmt::Debug for DsrService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DsrService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The actor of audit entries the processor writes.
const SYSTEM: &str = "system:dsr";

impl DsrService {
    pub fn new(ports: DsrPorts, config: DsrConfig) -> Self {
        Self {
            ports,
            config,
            invalidations: Invalidations::new(),
        }
    }

    /// Publishes each suppression this service writes to `invalidations`, so that an ingest
    /// in the same process drops the subject's events from the next request on.
    pub fn with_invalidations(mut self, invalidations: Arc<Invalidations>) -> Self {
        self.invalidations = invalidations;
        self
    }

    /// Puts an erasure's subject on the suppression list (idempotent) and tells the listener.
    async fn suppress(&self, r: &DsrRequest, now: OffsetDateTime) -> Result<(), AdminError> {
        let tokens: Vec<String> = r.subjects.iter().map(|s| suppression_token(s)).collect();
        self.ports
            .dsr
            .suppress(&r.workspace_id, &tokens, now)
            .await?;
        self.invalidations
            .publish(&Change::Workspace(r.workspace_id.clone()));
        Ok(())
    }

    fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    async fn workspace(&self, ws: &WorkspaceId) -> Result<Workspace, AdminError> {
        self.ports
            .control
            .workspace(ws, self.now())
            .await?
            .ok_or(AdminError::NotFound("workspace"))
    }

    async fn keys(&self, ws: &Workspace) -> Result<WorkspaceKeys, AdminError> {
        let key = self
            .ports
            .keyring
            .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
            .await?;
        Ok(WorkspaceKeys::new(&key))
    }

    async fn audit(
        &self,
        ws: &WorkspaceId,
        actor: &str,
        action: AuditAction,
        target: &str,
        summary: Value,
    ) -> Result<(), AdminError> {
        self.ports
            .audit
            .append(
                NewAuditEntry {
                    workspace_id: ws.clone(),
                    actor: actor.into(),
                    action: action.as_str().into(),
                    target: target.into(),
                    summary,
                },
                self.now(),
            )
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------------ admin API

    /// Receives a request (admins only): indexes the identifiers, stores the request as
    /// `pending` with its due date (30 days), audits the submission. An erasure's subject is
    /// suppressed before the request is stored, so that its events are dropped from the
    /// moment the caller has the answer, not from when processing starts.
    pub async fn submit(
        &self,
        p: &Principal,
        kind: DsrKind,
        subject: &SubjectIdentifiers,
        reference: Option<String>,
    ) -> Result<DsrRequest, DsrError> {
        require(p, Role::Admin, "submit data-subject requests")?;
        if let Some(r) = &reference {
            if r.trim().is_empty() || r.len() > 200 || r.chars().any(char::is_control) {
                return Err(AdminError::invalid(
                    "reference",
                    "must be 1 to 200 printable characters",
                )
                .into());
            }
        }
        let ws = self.workspace(&p.workspace_id).await?;
        if ws.is_closed() {
            // Its keys are revoked; a token still cached elsewhere must not add a request
            // that would outlive the account.
            return Err(AdminError::Conflict("the workspace is closed".into()).into());
        }
        let keys = self.keys(&ws).await?;
        let index = subject.index(&keys)?;
        let now = self.now();
        let mut request = DsrRequest {
            id: DsrId::new(self.ports.ids.uuid_v7(now)),
            workspace_id: ws.id.clone(),
            kind,
            status: DsrStatus::Pending,
            reference,
            identifiers: index.identifiers,
            subjects: index.values,
            submitted_by: p.actor.clone(),
            submitted_at: now,
            due_at: now + Duration::days(DsrRequest::DUE_DAYS),
            updated_at: now,
            progress: Default::default(),
            receipt: None,
            reminder_sent: false,
            export_tokens: Vec::new(),
        };
        if kind == DsrKind::Erasure {
            self.suppress(&request, now).await?;
            request.progress.suppressed_at = Some(now);
        }
        self.ports.dsr.create_request(&request).await?;
        self.audit(
            &ws.id,
            &p.actor,
            AuditAction::DsrSubmit,
            request.id.as_str(),
            json!({
                "type": kind.as_str(),
                "identifiers": request.identifiers,
                "reference": request.reference,
            }),
        )
        .await?;
        tracing::info!(workspace = %ws.id, request = %request.id, kind = kind.as_str(), "data-subject request received");
        Ok(request)
    }

    pub async fn list(&self, p: &Principal, limit: usize) -> Result<Vec<DsrRequest>, DsrError> {
        require(p, Role::Admin, "read data-subject requests")?;
        Ok(self
            .ports
            .dsr
            .requests(&p.workspace_id, limit.clamp(1, 1000))
            .await?)
    }

    pub async fn get(&self, p: &Principal, id: &str) -> Result<DsrRequest, DsrError> {
        require(p, Role::Admin, "read data-subject requests")?;
        let id = DsrId::parse(id).map_err(|_| AdminError::NotFound("data-subject request"))?;
        Ok(self
            .ports
            .dsr
            .request(&p.workspace_id, &id)
            .await?
            .ok_or(AdminError::NotFound("data-subject request"))?)
    }

    /// The access export of a completed access request, as JSON, within its 7 days.
    pub async fn export(&self, p: &Principal, id: &str) -> Result<Value, DsrError> {
        let request = self.get(p, id).await?;
        if request.kind != DsrKind::Access {
            return Err(AdminError::NotFound("export (only access requests have one)").into());
        }
        let receipt = match (&request.status, &request.receipt) {
            (DsrStatus::Completed, Some(r)) => r,
            (status, _) => return Err(DsrError::NotReady(status.as_str())),
        };
        let now = self.now();
        let expires = receipt
            .export_expires_at
            .unwrap_or(receipt.completed_at + Duration::days(DsrRequest::EXPORT_DAYS));
        if now >= expires {
            return Err(DsrError::ExportExpired(expires));
        }
        let parts = self
            .ports
            .dsr
            .export_parts(&request.workspace_id, &request.id, now)
            .await?;
        let ws = self.workspace(&request.workspace_id).await?;
        let keys = self.keys(&ws).await?;
        let mut events = Vec::new();
        for (n, sealed) in parts.iter().enumerate() {
            let plain = keys.open(&export_aad(&request, n as u32), sealed)?;
            let part: Vec<Value> = serde_json::from_slice(&plain)
                .map_err(|e| AdminError::Store(crate::error::StoreError::corrupt("export", e)))?;
            events.extend(part);
        }
        self.audit(
            &ws.id,
            &p.actor,
            AuditAction::DsrExportDownload,
            request.id.as_str(),
            json!({"events": events.len()}),
        )
        .await?;
        Ok(json!({
            "request_id": request.id,
            "workspace_id": request.workspace_id,
            "reference": request.reference,
            "identifiers": request.identifiers,
            "generated_at": rfc3339(receipt.completed_at),
            "expires_at": rfc3339(expires),
            "note": "Identifiers appear only as the SHA-256 hashes sent to destinations; \
                     TrackLayer never stored them in the clear. IP address and user agent are \
                     kept encrypted for 30 days and are listed by presence only.",
            "events": events,
            "destinations": receipt.destinations,
        }))
    }

    // ------------------------------------------------------------------ processing

    /// Processes open requests in bounded pages; resumable at any point.
    pub async fn run(&self) -> RunReport {
        let mut report = RunReport::default();
        let open = match self
            .ports
            .dsr
            .open_requests(self.config.requests_per_run)
            .await
        {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list open data-subject requests");
                report.failed += 1;
                return report;
            }
        };
        report.requests = open.len();
        let mut budget = self.config.max_pages_per_run;
        for request in open {
            let id = request.id.clone();
            let ws = request.workspace_id.clone();
            let kind = request.kind;
            match self.process(request, &mut budget, &mut report).await {
                Ok(true) => {
                    report.completed.push(id);
                    if kind == DsrKind::Erasure {
                        report.erasures_completed += 1;
                    }
                }
                Ok(false) => report.more = true,
                Err(e) => {
                    tracing::warn!(workspace = %ws, request = %id, error = %e, "data-subject request failed; retried next run");
                    report.failed += 1;
                    report.more = true;
                }
            }
        }
        report
    }

    async fn save(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
        r.updated_at = self.now();
        self.ports.dsr.update_request(r).await?;
        Ok(())
    }

    /// Advances one request; `true` once it completed.
    async fn process(
        &self,
        mut r: DsrRequest,
        budget: &mut u32,
        report: &mut RunReport,
    ) -> Result<bool, AdminError> {
        let now = self.now();
        if !r.reminder_sent && now >= r.due_at - Duration::days(DsrRequest::REMIND_DAYS) {
            self.remind(&r).await;
            r.reminder_sent = true;
            report.reminders += 1;
            self.save(&mut r).await?;
        }
        loop {
            match r.progress.phase {
                Phase::Start => {
                    r.status = DsrStatus::Processing;
                    r.progress.started_at = Some(now);
                    if r.kind == DsrKind::Erasure {
                        // Suppressed at submission; requests stored before that was so are
                        // suppressed now.
                        if r.progress.suppressed_at.is_none() {
                            self.suppress(&r, now).await?;
                            r.progress.suppressed_at = Some(now);
                        }
                        r.progress.phase = Phase::Suppressed;
                    } else {
                        r.progress.phase = Phase::Pages;
                    }
                    self.save(&mut r).await?;
                }
                Phase::Suppressed => {
                    let since = r.progress.suppressed_at.unwrap_or(now);
                    if now < since + self.config.suppression_propagation {
                        return Ok(false);
                    }
                    r.progress.phase = Phase::Pages;
                    self.save(&mut r).await?;
                }
                Phase::Pages => {
                    if *budget == 0 {
                        return Ok(false);
                    }
                    *budget -= 1;
                    report.pages += 1;
                    match r.kind {
                        DsrKind::Erasure => self.erasure_page(&mut r).await?,
                        DsrKind::Access => self.access_page(&mut r).await?,
                    }
                }
                Phase::Finish => {
                    self.finish(&mut r).await?;
                    return Ok(true);
                }
            }
        }
    }

    /// Reads the next page of the subject's events (or `None` when there is none).
    async fn read_page(
        &self,
        r: &DsrRequest,
    ) -> Result<Option<(Vec<EventFootprint>, PagePlan)>, AdminError> {
        let found = self
            .ports
            .events
            .subject_footprint(
                &r.workspace_id,
                &r.subjects,
                r.progress.cursor.as_ref(),
                self.config.page_size,
            )
            .await?;
        if found.is_empty() {
            return Ok(None);
        }
        let ids: Vec<EventId> = found.iter().map(|f| f.event.event_id).collect();
        let records = self.ports.log.for_events(&r.workspace_id, &ids).await?;
        let mut counts = StoreCounts {
            events: found.len() as u64,
            delivery_log_entries: records.len() as u64,
            ..Default::default()
        };
        let mut downstream: BTreeMap<DestinationId, Downstream> = BTreeMap::new();
        for f in &found {
            counts.subject_index_entries += u64::from(f.subject_index_entries);
            counts.operational_records += u64::from(f.operational);
            counts.dedup_markers += u64::from(f.dedup_marker);
            for routing in f.event.routing.iter().filter(|r| r.routed) {
                let d = downstream
                    .entry(routing.destination_id.clone())
                    .or_default();
                d.kind = Some(routing.kind);
                d.routed += 1;
            }
        }
        for rec in records
            .iter()
            .filter(|r| r.status == DeliveryStatus::Delivered)
        {
            let d = downstream.entry(rec.destination_id.clone()).or_default();
            d.merge(&Downstream {
                kind: None,
                routed: 0,
                delivered: 1,
                first_delivered_at: Some(rec.updated_at),
                last_delivered_at: Some(rec.updated_at),
            });
        }
        Ok(Some((
            found,
            PagePlan {
                events: ids,
                counts,
                downstream,
            },
        )))
    }

    async fn erasure_page(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
        let plan = match r.progress.page.clone() {
            // A run stopped inside this page: its counts are persisted, finish its deletions.
            Some(plan) => plan,
            None => match self.read_page(r).await? {
                None => {
                    r.progress.phase = Phase::Finish;
                    return self.save(r).await;
                }
                Some((_, plan)) => {
                    r.progress.page = Some(plan.clone());
                    self.save(r).await?;
                    plan
                }
            },
        };
        let ws = r.workspace_id.clone();
        let kinds: BTreeSet<DestinationKind> =
            plan.downstream.values().filter_map(|d| d.kind).collect();
        let mut queue_items = 0;
        for kind in kinds {
            queue_items += self
                .ports
                .queue
                .purge_events(kind, &ws, &plan.events)
                .await?;
        }
        self.ports.log.erase_events(&ws, &plan.events).await?;
        self.ports.events.erase(&ws, &plan.events).await?;
        let mut counts = plan.counts;
        counts.queue_items = queue_items;
        self.fold(r, &plan, counts);
        self.save(r).await
    }

    async fn access_page(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
        let ws = self.workspace(&r.workspace_id).await?;
        if ws.is_closed() {
            // No key of the workspace can download an export any more: none is made.
            r.progress.phase = Phase::Finish;
            return self.save(r).await;
        }
        let Some((found, plan)) = self.read_page(r).await? else {
            r.progress.phase = Phase::Finish;
            return self.save(r).await;
        };
        let records = self
            .ports
            .log
            .for_events(&r.workspace_id, &plan.events)
            .await?;
        let entries: Vec<Value> = found
            .iter()
            .map(|f| {
                let e = &f.event;
                let deliveries: Vec<Value> = records
                    .iter()
                    .filter(|d| d.event_id == e.event_id)
                    .map(|d| {
                        json!({
                            "destination_id": d.destination_id,
                            "status": d.status,
                            "attempts": d.attempts,
                            "last_http_status": d.last_http_status,
                            "updated_at": rfc3339(d.updated_at),
                        })
                    })
                    .collect();
                json!({
                    "event_id": e.event_id.to_string(),
                    "message_id": e.message_id,
                    "type": e.event_type,
                    "name": e.name,
                    "timestamp": rfc3339(e.timestamp),
                    "received_at": rfc3339(e.received_at),
                    "expires_at": rfc3339(e.expires_at),
                    "properties": e.properties,
                    "traits": e.traits,
                    "hashed_identifiers": e.hashed,
                    "consent_and_routing": e.routing,
                    "ip_and_user_agent_stored": f.operational,
                    "deliveries": deliveries,
                })
            })
            .collect();
        let keys = self.keys(&ws).await?;
        let part = r.progress.export_parts;
        let plaintext = serde_json::to_vec(&entries).expect("JSON values serialize");
        let mut nonce = [0u8; 12];
        self.ports.ids.fill(&mut nonce);
        let sealed: Sealed = keys.seal(nonce, &export_aad(r, part), &plaintext);
        let expires = r.progress.started_at.unwrap_or_else(|| self.now())
            + Duration::days(DsrRequest::EXPORT_DAYS);
        // Written under its part number before the progress moves on: a re-run after a crash
        // rewrites the same part.
        self.ports
            .dsr
            .put_export_part(&r.workspace_id, &r.id, part, &sealed, expires)
            .await?;
        r.progress.export_parts += 1;
        let counts = plan.counts;
        self.fold(r, &plan, counts);
        self.save(r).await
    }

    fn fold(&self, r: &mut DsrRequest, plan: &PagePlan, counts: StoreCounts) {
        r.progress.counts.add(&counts);
        for (id, d) in &plan.downstream {
            r.progress
                .downstream
                .entry(id.clone())
                .or_default()
                .merge(d);
        }
        r.progress.cursor = plan.events.last().copied();
        r.progress.pages += 1;
        r.progress.page = None;
    }

    async fn finish(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
        let now = self.now();
        let closed_at = self.end_with_closed_account(&r.workspace_id, now).await?;
        let tokens: Vec<String> = r.subjects.iter().map(|s| suppression_token(s)).collect();
        let export = r.kind == DsrKind::Access && closed_at.is_none();
        match r.kind {
            DsrKind::Erasure => {
                r.progress.counts.access_exports = self.delete_exports_of(r, &tokens).await?;
            }
            DsrKind::Access if export => r.export_tokens = tokens,
            DsrKind::Access => {
                // Parts written before the closure: nobody can download them.
                self.ports.dsr.delete_export(&r.workspace_id, &r.id).await?;
                r.progress.counts = StoreCounts::default();
            }
        }
        let destinations = self.ports.control.destinations(&r.workspace_id).await?;
        let receipt = Receipt {
            started_at: r.progress.started_at.unwrap_or(now),
            completed_at: now,
            counts: r.progress.counts,
            suppressed: r.kind == DsrKind::Erasure,
            pages: r.progress.pages,
            destinations: r
                .progress
                .downstream
                .iter()
                .map(|(id, d)| {
                    destination_receipt(r.kind, id, d, destinations.iter().find(|x| &x.id == id))
                })
                .collect(),
            export_expires_at: export.then(|| {
                r.progress.started_at.unwrap_or(now) + Duration::days(DsrRequest::EXPORT_DAYS)
            }),
            workspace_closed_at: closed_at,
        };
        // The subject-index values and the last page's event ids go: the receipt keeps counts.
        r.subjects.clear();
        r.progress.cursor = None;
        r.progress.page = None;
        r.status = DsrStatus::Completed;
        r.receipt = Some(receipt.clone());
        self.save(r).await?;
        self.audit(
            &r.workspace_id,
            SYSTEM,
            AuditAction::DsrComplete,
            r.id.as_str(),
            json!({
                "type": r.kind.as_str(),
                "counts": receipt.counts,
                "destinations": receipt.destinations.len(),
            }),
        )
        .await?;
        tracing::info!(workspace = %r.workspace_id, request = %r.id, kind = r.kind.as_str(),
            events = receipt.counts.events, pages = receipt.pages, "data-subject request completed");
        self.notify(r, &receipt).await;
        Ok(())
    }

    /// A request of a workspace closed meanwhile is still completed (an erasure is owed
    /// whatever becomes of the account, and the events outlive it by their own retention),
    /// but what it wrote after the closure stamped the workspace's DSR records — suppression
    /// entries, the request itself if it came in during the closure — must end with the
    /// account data too. Stamps them before the request is saved as completed, so a failure
    /// here is retried with the request.
    /// Returns when the workspace was closed, if it was.
    async fn end_with_closed_account(
        &self,
        ws: &WorkspaceId,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, AdminError> {
        let closed_at = self
            .ports
            .control
            .workspace(ws, now)
            .await?
            .and_then(|w| w.closed_at);
        if let Some(closed_at) = closed_at {
            let until = closed_at + crate::workspace::Retention::account_grace();
            let stamped = self.ports.dsr.end_with_account(ws, until).await?;
            tracing::info!(workspace = %ws, stamped, "request of a closed workspace completed; its records end with the account data");
        }
        Ok(closed_at)
    }

    /// Deletes the still downloadable exports of earlier access requests for the same subject
    /// (they end as expired: 410); returns how many.
    async fn delete_exports_of(
        &self,
        r: &DsrRequest,
        tokens: &[String],
    ) -> Result<u64, AdminError> {
        let mut deleted = 0;
        for mut other in self.ports.dsr.requests(&r.workspace_id, 1000).await? {
            if other.kind != DsrKind::Access
                || !other.export_tokens.iter().any(|t| tokens.contains(t))
            {
                continue;
            }
            self.ports
                .dsr
                .delete_export(&other.workspace_id, &other.id)
                .await?;
            other.export_tokens.clear();
            if let Some(receipt) = other.receipt.as_mut() {
                receipt.export_expires_at = Some(self.now());
            }
            self.save(&mut other).await?;
            deleted += 1;
        }
        Ok(deleted)
    }

    async fn admins(&self, ws: &WorkspaceId) -> Vec<String> {
        match self.ports.control.users(ws, self.now()).await {
            Ok(users) => users
                .into_iter()
                .filter(|u| u.role == Role::Admin)
                .map(|u| u.email.into())
                .collect(),
            Err(e) => {
                tracing::warn!(workspace = %ws, error = %e, "cannot list workspace admins");
                Vec::new()
            }
        }
    }

    async fn send(&self, ws: &WorkspaceId, subject: String, text: String) {
        let to = self.admins(ws).await;
        if to.is_empty() {
            return;
        }
        if let Err(e) = self.ports.mailer.send(&Mail { to, subject, text }).await {
            tracing::warn!(workspace = %ws, error = %e, "data-subject request mail not sent");
        }
    }

    async fn notify(&self, r: &DsrRequest, receipt: &Receipt) {
        let c = &receipt.counts;
        let mut text = format!(
            "The {} request {} of workspace {} is completed.\n\nSubmitted: {}\nCompleted: {}\n\n",
            r.kind.as_str(),
            r.id,
            r.workspace_id,
            rfc3339(r.submitted_at),
            rfc3339(receipt.completed_at),
        );
        let verb = match r.kind {
            DsrKind::Erasure => "Deleted",
            DsrKind::Access => "Exported",
        };
        if let (DsrKind::Access, Some(closed)) = (r.kind, receipt.workspace_closed_at) {
            text.push_str(&format!(
                "The workspace was closed on {} before the request was processed: no export \
                 was made, since no key of the workspace can download one any more.\n",
                rfc3339(closed)
            ));
        } else {
            text.push_str(&format!(
            "{verb}: {} events, {} subject-index entries, {} IP/user-agent records, {} dedup markers, {} delivery-log entries, {} queued items.\n",
            c.events, c.subject_index_entries, c.operational_records, c.dedup_markers,
            c.delivery_log_entries, c.queue_items
        ));
        }
        if r.kind == DsrKind::Erasure {
            text.push_str("Later events of the subject are dropped at ingest.\n");
        }
        if let Some(until) = receipt.export_expires_at {
            text.push_str(&format!(
                "Download the export before {} (GET /admin/v1/data_subject_requests/{}/export).\n",
                rfc3339(until),
                r.id
            ));
        }
        for d in &receipt.destinations {
            if let Some(action) = &d.customer_action {
                text.push_str(&format!(
                    "\n{} ({}): {}\n",
                    d.name.as_deref().unwrap_or("deleted destination"),
                    d.destination_id,
                    action
                ));
            }
        }
        self.send(
            &r.workspace_id,
            format!("Data-subject request {} completed", r.id),
            text,
        )
        .await;
    }

    async fn remind(&self, r: &DsrRequest) {
        let text = format!(
            "The {} request {} of workspace {} is due on {} and is still {}.\n\
             TrackLayer processes it automatically; check that its processing runs \
             (GET /admin/v1/data_subject_requests/{}).\n",
            r.kind.as_str(),
            r.id,
            r.workspace_id,
            rfc3339(r.due_at),
            r.status.as_str(),
            r.id,
        );
        self.send(
            &r.workspace_id,
            format!("Data-subject request {} is due soon", r.id),
            text,
        )
        .await;
    }
}

fn export_aad(r: &DsrRequest, part: u32) -> Vec<u8> {
    aad(
        SealLabel::DsrExport,
        &r.workspace_id,
        &format!("{}:{part}", r.id.as_str()),
    )
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What happened at a destination, and what the customer must do there (whitepaper §06).
fn destination_receipt(
    kind: DsrKind,
    id: &DestinationId,
    d: &Downstream,
    current: Option<&Destination>,
) -> DestinationReceipt {
    let dest_kind = current.map(|c| c.kind).or(d.kind);
    let account = current.and_then(|c| {
        ["pixel_id", "measurement_id", "pixel_code"]
            .iter()
            .find_map(|k| c.config.get(*k).and_then(Value::as_str).map(str::to_owned))
    });
    let period = match (d.first_delivered_at, d.last_delivered_at) {
        (Some(a), Some(b)) => format!("between {} and {}", rfc3339(a), rfc3339(b)),
        _ => String::new(),
    };
    let n = d.delivered;
    let (tracklayer_action, customer_action) = match kind {
        DsrKind::Erasure => {
            let did = format!(
                "Deleted TrackLayer's records of the subject's {} routed events here \
                 (delivery-log entries, queued and dead-lettered items); {n} had been delivered{}{}.",
                d.routed,
                if period.is_empty() { "" } else { " " },
                period
            );
            let todo = (n > 0).then(|| match dest_kind {
                Some(DestinationKind::MetaCapi) => format!(
                    "Meta's Conversions API has no endpoint to delete events it received, so \
                     TrackLayer could not delete them at Meta. Meta received {n} events of the \
                     subject {period} for dataset {}. Submit the deletion through Meta's own \
                     process for Business Tools data (Events Manager / Meta's data-subject \
                     request channel) and record Meta's answer.",
                    account.as_deref().unwrap_or("(destination deleted)")
                ),
                Some(DestinationKind::Ga4) => format!(
                    "The GA4 Measurement Protocol cannot delete data, so TrackLayer could not \
                     delete it at Google. Google Analytics received {n} events of the subject \
                     {period} for {}. Delete the user there with the GA4 User Deletion API or \
                     Admin > Data deletion requests, using the subject's user id or client id.",
                    account.as_deref().unwrap_or("(destination deleted)")
                ),
                Some(DestinationKind::Tiktok) => format!(
                    "TikTok's Events API has no endpoint to delete events it received, so \
                     TrackLayer could not delete them at TikTok. TikTok received {n} events of \
                     the subject {period} for pixel {}. Request the deletion through TikTok for \
                     Business (privacy / data-subject request channel) and record TikTok's answer.",
                    account.as_deref().unwrap_or("(destination deleted)")
                ),
                Some(DestinationKind::Webhook) => format!(
                    "TrackLayer sends webhooks events, not erasure notices. Your webhook receiver \
                     got {n} events of the subject {period}, carrying the subject's hashed \
                     identifiers and event ids; delete them in the receiving system."
                ),
                None => format!(
                    "{n} events of the subject were delivered {period} to this destination, \
                     which no longer exists; delete them in the system it pointed to."
                ),
            });
            (did, todo)
        }
        DsrKind::Access => (
            format!(
                "Listed in the export: {} routed events, {n} delivered{}{}.",
                d.routed,
                if period.is_empty() { "" } else { " " },
                period
            ),
            (n > 0).then(|| {
                "The destination holds its own copy of the delivered events; if the request \
                 covers data held there, ask its operator for it."
                    .to_owned()
            }),
        ),
    };
    DestinationReceipt {
        destination_id: id.clone(),
        name: current.map(|c| c.name.clone()),
        kind: dest_kind,
        events_routed: d.routed,
        events_delivered: n,
        first_delivered_at: d.first_delivered_at,
        last_delivered_at: d.last_delivered_at,
        tracklayer_action,
        customer_action,
    }
}
