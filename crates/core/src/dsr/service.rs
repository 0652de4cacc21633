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

use std::sync::Arc;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::{suppression_token, DsrId, DsrRequest};
use crate::admin::AdminError;
use crate::audit::{AuditAction, NewAuditEntry};
use crate::crypto::{aad, SealLabel, WorkspaceKeys};
use crate::deliver::Connector;
use crate::destination::DestinationKind;
use crate::invalidation::{Change, Invalidations};
use crate::ports::EventEraser;
use crate::services::CommonPorts;
use crate::workspace::{Workspace, WorkspaceId};

/// The ports the DSR use case needs: the shared account-data ones and its own.
#[allow(missing_debug_implementations)]
pub struct DsrPorts {
    pub common: CommonPorts,
    pub events: Arc<dyn EventEraser>,
    /// The vendors' connectors: each says what the customer must do at its vendor to delete
    /// an erased subject's delivered events (the receipt's `customer_action`).
    pub connectors: fn(DestinationKind) -> &'static dyn Connector,
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
    /// A later erasure of the same subject (this request) deleted the export.
    #[error("the export was deleted by erasure request {0}")]
    ExportErased(DsrId),
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

pub use super::subject::{SubjectIdentifiers, SubjectIndex};

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
    pub(super) ports: DsrPorts,
    pub(super) config: DsrConfig,
    /// In-process caches of the suppression list (ingest's) hear of each suppression.
    pub(super) invalidations: Arc<Invalidations>,
}

crate::debug_fields!(DsrService: config);

/// The actor of audit entries the processor writes.
pub(super) const SYSTEM: &str = "system:dsr";

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
    pub(super) async fn suppress(
        &self,
        r: &DsrRequest,
        now: OffsetDateTime,
    ) -> Result<(), AdminError> {
        let tokens: Vec<String> = r.subjects.iter().map(|s| suppression_token(s)).collect();
        self.ports
            .dsr
            .suppress(&r.workspace_id, &tokens, now)
            .await?;
        self.invalidations
            .publish(&Change::Workspace(r.workspace_id.clone()));
        Ok(())
    }

    pub(super) fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    pub(super) async fn workspace(&self, ws: &WorkspaceId) -> Result<Workspace, AdminError> {
        self.ports
            .workspace(ws)
            .await?
            .ok_or(AdminError::NotFound("workspace"))
    }

    pub(super) async fn keys(&self, ws: &Workspace) -> Result<WorkspaceKeys, AdminError> {
        Ok(self.ports.workspace_keys(ws).await?)
    }

    pub(super) async fn audit(
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

    pub(super) async fn save(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
        r.updated_at = self.now();
        self.ports.dsr.update_request(r).await?;
        Ok(())
    }
}

pub(super) fn export_aad(r: &DsrRequest, part: u32) -> Vec<u8> {
    aad(
        SealLabel::DsrExport,
        &r.workspace_id,
        &format!("{}:{part}", r.id.as_str()),
    )
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
