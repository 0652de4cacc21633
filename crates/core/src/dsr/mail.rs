//! Mails to the workspace admins: completion (with the receipt) and "due soon".

use super::service::{rfc3339, DsrService};
use super::{DsrKind, DsrRequest, Receipt};
use crate::keys::Role;
use crate::ports::Mail;
use crate::workspace::WorkspaceId;

impl DsrService {
    pub(super) async fn admins(&self, ws: &WorkspaceId) -> Vec<String> {
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

    pub(super) async fn send(&self, ws: &WorkspaceId, subject: String, text: String) {
        let to = self.admins(ws).await;
        if to.is_empty() {
            return;
        }
        if let Err(e) = self.ports.mailer.send(&Mail { to, subject, text }).await {
            tracing::warn!(workspace = %ws, error = %e, "data-subject request mail not sent");
        }
    }

    pub(super) async fn notify(&self, r: &DsrRequest, receipt: &Receipt) {
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

    pub(super) async fn remind(&self, r: &DsrRequest) {
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
