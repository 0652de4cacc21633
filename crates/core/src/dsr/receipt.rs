//! Finishing a request: the receipt, and what the customer must do at each destination.

use crate::audit::AuditAction;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::service::{rfc3339, DsrService, SYSTEM};
use super::{
    suppression_token, ClientIds, DestinationReceipt, Downstream, DsrKind, DsrRequest, DsrStatus,
    Receipt, SentClientIds, StoreCounts,
};
use crate::admin::AdminError;
use crate::crypto::Sealed;
use crate::deliver::Connector;
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
        let client_ids = self
            .opened_client_ids(r, r.progress.client_ids.as_ref())
            .await?;
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
                    let mut receipt = destination_receipt(
                        self.ports.connectors,
                        r.kind,
                        id,
                        d,
                        destinations.iter().find(|x| &x.id == id),
                    );
                    if client_ids.0.get(id).is_some_and(|ids| !ids.is_empty()) {
                        if let Some(todo) = receipt.customer_action.as_mut() {
                            todo.push_str(
                                " The client ids TrackLayer sent for the subject are listed \
                                 in this receipt's client_ids.",
                            );
                        }
                    }
                    receipt
                })
                .collect(),
            export_expires_at: export.then(|| {
                r.progress.started_at.unwrap_or(now) + Duration::days(DsrRequest::EXPORT_DAYS)
            }),
            export_deleted_by: None,
            workspace_closed_at: closed_at,
            client_ids: r.progress.client_ids.take(),
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

impl DsrService {
    /// The GA4 client ids `sealed` holds for request `r` (empty for `None`).
    pub(super) async fn opened_client_ids(
        &self,
        r: &DsrRequest,
        sealed: Option<&Sealed>,
    ) -> Result<SentClientIds, AdminError> {
        if sealed.is_none() {
            return Ok(SentClientIds::default());
        }
        let ws = self.workspace(&r.workspace_id).await?;
        let keys = self.keys(&ws).await?;
        Ok(SentClientIds::open(sealed, &keys, r)?)
    }

    /// Opens a completed erasure's client ids into its destinations' `client_ids`, for an
    /// admin reading the request.
    pub(super) async fn reveal_client_ids(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
        let Some(receipt) = r.receipt.as_ref() else {
            return Ok(());
        };
        let mut sent = self
            .opened_client_ids(r, receipt.client_ids.as_ref())
            .await?;
        if let Some(receipt) = r.receipt.as_mut() {
            for d in &mut receipt.destinations {
                let ids = sent.0.remove(&d.destination_id).unwrap_or_default();
                d.client_ids = ClientIds(ids.into_iter().collect());
            }
        }
        Ok(())
    }
}

/// What reached a vendor for an erased subject: what the connector's
/// [`Connector::erasure_guidance`] tells the customer to delete there.
#[derive(Debug, Clone, Copy)]
pub struct SentToVendor<'a> {
    /// Events of the subject the vendor accepted (at least one).
    pub delivered: u64,
    /// `between <first> and <last>` (RFC 3339), or empty when not known.
    pub period: &'a str,
    /// The vendor account the destination sends to (dataset, measurement id, pixel code);
    /// `None` when the destination was deleted since.
    pub account: Option<&'a str>,
}

impl SentToVendor<'_> {
    /// The vendor account, or `(destination deleted)`.
    pub fn account_or_deleted(&self) -> &str {
        self.account.unwrap_or("(destination deleted)")
    }
}

/// What happened at a destination, and what the customer must do there (whitepaper §06).
fn destination_receipt(
    connectors: fn(DestinationKind) -> &'static dyn Connector,
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
                Some(k) => connectors(k).erasure_guidance(&SentToVendor {
                    delivered: n,
                    period: &period,
                    account: account.as_deref(),
                }),
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
        client_ids: ClientIds::default(),
    }
}
