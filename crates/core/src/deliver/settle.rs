//! Settling: outcomes become delivery-log records and ack / retry / dead-letter decisions.

use std::time::Duration;

use time::OffsetDateTime;

use super::batching::Opened;
use super::flow_control::Health;
use super::service::{DeliveryError, DeliveryService, Disposition, ItemResult};
use super::settings::Settings;
use super::Outcome;
use crate::destination::{DestinationId, DestinationKind};
use crate::error::StoreError;
use crate::event::{DeliveryItem, EventId, MessageId, QueueBody};
use crate::ports::{DeliveryRecord, DeliveryStatus, Outgoing, Received, Remainder};
use crate::stats::counting::delivery_delta;
use crate::workspace::WorkspaceId;

impl DeliveryService {
    /// A message whose delivery failed before its outcome was known: retried later (or, out
    /// of attempts, dead-lettered), with a delivery-log entry per item saying why.
    pub(super) async fn after_failure(&self, msg: &Received, why: &str) -> Disposition {
        let Ok(body) = msg.decode_stored() else {
            return Disposition::DeadLetter("unreadable message".into());
        };
        let attempts = body.attempts() + msg.receive_count;
        let (status, d, retry_in) = if attempts >= self.config.max_attempts {
            let reason = format!("gave up after {attempts} attempts: {why}");
            (DeliveryStatus::Dead, Disposition::DeadLetter(reason), None)
        } else {
            let delay = self.backoff(attempts, None);
            let d = Disposition::RetryLater(delay);
            (DeliveryStatus::Retrying, d, Some(delay))
        };
        let entries = body.entries();
        let records = self.records(
            (body.workspace_id(), body.destination_id()),
            &entries,
            (status, attempts),
            why,
            retry_in,
        );
        if let Err(e) = self.log_and_count(&records).await {
            tracing::warn!(error = %e, destination = %body.destination_id(), "could not log a failed delivery attempt");
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
        let Tally {
            mut records,
            retry,
            dead,
            retry_after,
            dead_reason,
            delivered,
        } = tally(body, attempts, exhausted, results, now);
        let delay = self.backoff(attempts, retry_after);
        for r in &mut records {
            r.next_attempt_at = r.next_attempt_at.map(|now| now + delay);
        }
        if !records.is_empty() {
            self.log_and_count(&records).await?;
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
        Ok(match (retry.is_empty(), dead.is_empty()) {
            (true, true) => Disposition::Ack,
            (false, true) => Disposition::RetryLater(delay),
            (true, false) if delivered == 0 && dead.len() == body.items.len() => {
                Disposition::DeadLetter(dead_reason)
            }
            (true, false) => Disposition::Replace(Remainder {
                retry: Vec::new(),
                dead: vec![self.part(body, dead, 0, Duration::ZERO)],
                reason: dead_reason,
            }),
            (false, false) => Disposition::Replace(Remainder {
                retry: vec![self.part(body, retry, attempts, delay)],
                dead: vec![self.part(body, dead, 0, Duration::ZERO)],
                reason: dead_reason,
            }),
        })
    }

    pub(super) async fn log_all(
        &self,
        body: &QueueBody,
        status: DeliveryStatus,
        attempts: u32,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<(), DeliveryError> {
        let entries: Vec<(EventId, Option<MessageId>)> = body
            .items
            .iter()
            .map(|item| (item.event_id, Some(item.message_id.clone())))
            .collect();
        let records = self.records(
            (&body.workspace_id, &body.destination_id),
            &entries,
            (status, attempts),
            error,
            retry_in,
        );
        self.log_and_count(&records).await?;
        Ok(())
    }

    /// One delivery-log record per entry (event, message id if known), all with the same
    /// status and error, stamped now.
    pub(super) fn records(
        &self,
        (ws, destination): (&WorkspaceId, &DestinationId),
        entries: &[(EventId, Option<MessageId>)],
        (status, attempts): (DeliveryStatus, u32),
        error: &str,
        retry_in: Option<Duration>,
    ) -> Vec<DeliveryRecord> {
        let now = self.ports.clock.now();
        entries
            .iter()
            .map(|(event_id, message_id)| DeliveryRecord {
                workspace_id: ws.clone(),
                destination_id: destination.clone(),
                event_id: *event_id,
                message_id: message_id.clone(),
                next_attempt_at: retry_in.map(|d| now + d),
                status: status.clone(),
                attempts,
                last_http_status: None,
                last_error: Some(error.to_owned()),
                updated_at: now,
                expires_at: now + crate::workspace::Retention::delivery_log(),
            })
            .collect()
    }

    /// Writes a message's delivery-log records, then adds its counters: to the receive's
    /// stats batch, written when the receive is done, or else in one stats write (a failed
    /// one is logged and counted, never returned: [`crate::stats::StatsSink`]).
    pub(super) async fn log_and_count(
        &self,
        records: &[DeliveryRecord],
    ) -> Result<(), DeliveryError> {
        self.ports.log.record(records).await?;
        if let Some(first) = records.first() {
            let delta = delivery_delta(records);
            self.stats
                .record(&first.workspace_id, first.updated_at, &delta)
                .await;
        }
        Ok(())
    }

    /// Some of a message's items, as a message of their own.
    fn part(
        &self,
        body: &QueueBody,
        items: Vec<DeliveryItem>,
        attempts: u32,
        delay: Duration,
    ) -> Outgoing {
        let part = QueueBody {
            v: QueueBody::VERSION,
            attempts,
            workspace_id: body.workspace_id.clone(),
            destination_id: body.destination_id.clone(),
            kind: body.kind,
            items,
            // Held by reference again if it was read so.
            by_reference: body.by_reference,
        };
        Outgoing::new(&part, delay)
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
            Disposition::Hold(delay) => self.ports.queue.hold(kind, msg, *delay).await,
            Disposition::Replace(r) => self.ports.queue.replace(kind, msg, r).await,
            Disposition::DeadLetter(reason) => {
                self.ports.queue.dead_letter(kind, msg, reason).await
            }
        }
    }
}

impl Opened {
    /// Records a batch's outcome for each of its items (positions in `items`).
    pub(super) fn record(
        &mut self,
        batch: &[usize],
        outcome: &Outcome,
        status: Option<u16>,
        health: &mut Health,
    ) {
        for (k, o) in spread(outcome, batch.len()).into_iter().enumerate() {
            let (m, i) = self.items[batch[k]].0;
            self.results[m][i] = match o {
                Outcome::Delivered => {
                    health.any_success = true;
                    ItemResult::Delivered(status)
                }
                Outcome::Retry { after, reason } => {
                    health.any_transient = true;
                    ItemResult::Retry {
                        after,
                        reason,
                        status,
                    }
                }
                Outcome::Permanent { reason } => ItemResult::Permanent { reason, status },
                Outcome::PerItem(_) => ItemResult::Permanent {
                    reason: "nested per-item outcome".into(),
                    status,
                },
            };
        }
    }

    /// A batch whose send task panicked: its items are retried, the reason logged.
    pub(super) fn panicked(&mut self, batch: &[usize]) {
        for &pos in batch {
            let (m, i) = self.items[pos].0;
            self.results[m][i] = ItemResult::Retry {
                after: None,
                reason: "the send task panicked".into(),
                status: None,
            };
        }
    }
}

/// One outcome per item of a request of `n` items.
fn spread(outcome: &Outcome, n: usize) -> Vec<Outcome> {
    match outcome {
        Outcome::PerItem(list) => {
            let mut out = vec![Outcome::Delivered; n];
            for (i, o) in list {
                if let Some(slot) = out.get_mut(*i) {
                    *slot = o.clone();
                }
            }
            out
        }
        other => vec![other.clone(); n],
    }
}

/// A message's items sorted by how their attempt ended, with their delivery-log records.
#[derive(Default)]
struct Tally {
    records: Vec<DeliveryRecord>,
    retry: Vec<DeliveryItem>,
    dead: Vec<DeliveryItem>,
    /// The longest `Retry-After` among the items to retry.
    retry_after: Option<Duration>,
    dead_reason: String,
    delivered: usize,
}

/// Sorts a message's items by their results; an item still to retry is dead once the message
/// is out of attempts (`exhausted`). Skipped items (delivered before) get no record.
fn tally(
    body: &QueueBody,
    attempts: u32,
    exhausted: bool,
    results: Vec<ItemResult>,
    now: OffsetDateTime,
) -> Tally {
    let mut t = Tally::default();
    for (item, result) in body.items.iter().zip(results) {
        let (status, http, error) = match result {
            ItemResult::Skipped => continue,
            ItemResult::Delivered(s) => {
                t.delivered += 1;
                (DeliveryStatus::Delivered, s, None)
            }
            ItemResult::Dropped(r) => (DeliveryStatus::Dropped(r.clone()), None, Some(r)),
            ItemResult::Retry {
                after,
                reason,
                status,
            } if !exhausted => {
                t.retry_after = t.retry_after.max(after);
                t.retry.push(item.clone());
                (DeliveryStatus::Retrying, status, Some(reason))
            }
            ItemResult::Retry { reason, status, .. } => {
                let reason = format!("gave up after {attempts} attempts: {reason}");
                t.dead_reason.clone_from(&reason);
                t.dead.push(item.clone());
                (DeliveryStatus::Dead, status, Some(reason))
            }
            ItemResult::Permanent { reason, status } => {
                t.dead_reason.clone_from(&reason);
                t.dead.push(item.clone());
                (DeliveryStatus::Dead, status, Some(reason))
            }
        };
        t.records.push(DeliveryRecord {
            workspace_id: body.workspace_id.clone(),
            destination_id: body.destination_id.clone(),
            event_id: item.event_id,
            message_id: Some(item.message_id.clone()),
            next_attempt_at: (status == DeliveryStatus::Retrying).then_some(now),
            status,
            attempts,
            last_http_status: http,
            last_error: error.map(|e| e.chars().take(500).collect()),
            updated_at: now,
            expires_at: now + crate::workspace::Retention::delivery_log(),
        });
    }
    t
}
