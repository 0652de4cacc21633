//! Finishing a request: the receipt, and what the customer must do at each destination.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::service::{rfc3339, DsrService, SYSTEM};
use super::{
    suppression_token, DestinationReceipt, Downstream, DsrKind, DsrRequest, DsrStatus, Receipt,
    StoreCounts,
};
use crate::admin::AdminError;
use crate::destination::{Destination, DestinationId, DestinationKind};
use crate::workspace::WorkspaceId;

impl DsrService {
    pub(super) async fn finish(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
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
            "dsr.complete",
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
    pub(super) async fn end_with_closed_account(
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
