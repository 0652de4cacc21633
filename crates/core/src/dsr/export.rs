//! Access exports: written page by page, downloaded within 7 days, deleted by a later
//! erasure of the same subject.

use crate::audit::AuditAction;
use serde_json::{json, Value};
use time::Duration;

use super::service::{export_aad, rfc3339, DsrError, DsrService};
use super::{DsrKind, DsrRequest, DsrStatus, Phase, VendorIds};
use crate::admin::{AdminError, Principal};
use crate::crypto::Sealed;
use crate::ports::ExportPart;

impl DsrService {
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
        if let Some(by) = &receipt.export_deleted_by {
            return Err(DsrError::ExportErased(by.clone()));
        }
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
                     kept encrypted for 30 days and are listed by presence only. The client id \
                     sent to Google Analytics (GA4) is kept encrypted with the event, so that \
                     an erasure can name it for deletion at Google; it is listed as \
                     ga4_client_id.",
            "events": events,
            "destinations": receipt.destinations,
        }))
    }

    pub(super) async fn access_page(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
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
            .delivery_log
            .for_events(&r.workspace_id, &plan.events)
            .await?;
        let keys = self.keys(&ws).await?;
        let entries: Vec<Value> = found
            .iter()
            .map(|f| -> Result<Value, AdminError> {
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
                Ok(json!({
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
                    "ga4_client_id": VendorIds::open(e, &keys)?.ga4_client_id,
                    "deliveries": deliveries,
                }))
            })
            .collect::<Result<_, _>>()?;
        let part = r.progress.export_parts;
        let plaintext = serde_json::to_vec(&entries).expect("JSON values serialize");
        let mut nonce = [0u8; 12];
        self.ports.ids.fill(&mut nonce);
        let sealed: Sealed = keys.seal(nonce, &export_aad(r, part), &plaintext);
        let expires_at = r.progress.started_at.unwrap_or_else(|| self.now())
            + Duration::days(DsrRequest::EXPORT_DAYS);
        // Written under its part number before the progress moves on: a re-run after a crash
        // rewrites the same part.
        self.ports
            .dsr
            .put_export_part(
                &r.workspace_id,
                &r.id,
                &ExportPart {
                    number: part,
                    sealed,
                    expires_at,
                },
            )
            .await?;
        r.progress.export_parts += 1;
        let counts = plan.counts;
        self.fold(r, &plan, counts);
        self.save(r).await
    }

    /// Deletes the still downloadable exports of earlier access requests for the same subject
    /// (a download then answers 410 naming this erasure); returns how many.
    pub(super) async fn delete_exports_of(
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
                receipt.export_deleted_by = Some(r.id.clone());
            }
            self.save(&mut other).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}
