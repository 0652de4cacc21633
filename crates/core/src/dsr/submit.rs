//! The admin API of requests: submission, listing, reading.

use crate::audit::AuditAction;
use serde_json::json;
use time::Duration;

use super::service::{DsrError, DsrService, SubjectIdentifiers};
use super::{DsrId, DsrKind, DsrRequest, DsrStatus};
use crate::admin::{require, AdminError, Principal};
use crate::keys::Role;

impl DsrService {
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
        let mut requests = self
            .ports
            .dsr
            .requests(&p.workspace_id, limit.clamp(1, 1000))
            .await?;
        for r in &mut requests {
            self.reveal_client_ids(r).await?;
        }
        Ok(requests)
    }

    pub async fn get(&self, p: &Principal, id: &str) -> Result<DsrRequest, DsrError> {
        require(p, Role::Admin, "read data-subject requests")?;
        let id = DsrId::parse(id).map_err(|_| AdminError::NotFound("data-subject request"))?;
        let mut request = self
            .ports
            .dsr
            .request(&p.workspace_id, &id)
            .await?
            .ok_or(AdminError::NotFound("data-subject request"))?;
        self.reveal_client_ids(&mut request).await?;
        Ok(request)
    }
}
