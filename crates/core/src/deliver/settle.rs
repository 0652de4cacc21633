//! Settling: outcomes become delivery-log records and ack / retry / dead-letter decisions.

use std::time::Duration;

use super::service::{DeliveryError, DeliveryService, Disposition, ItemResult};
use super::settings::Settings;
use crate::destination::DestinationKind;
use crate::error::StoreError;
use crate::event::{DeliveryItem, QueueBody};
use crate::ports::{DeliveryRecord, DeliveryStatus, Outgoing, Received};

impl DeliveryService {
    /// A message whose delivery failed before its outcome was known: retried later (or, out
    /// of attempts, dead-lettered), with a delivery-log entry per item saying why.
    pub(super) async fn after_failure(&self, msg: &Received, why: &str) -> Disposition {
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

    /// Writes the delivery log and decides what happens to the message and its parts.
    pub(super) async fn settle(
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

    pub(super) async fn log_all(
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

    pub(super) fn part(
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

    pub(super) async fn requeue(
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

    pub(super) async fn bury(
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
