//! The deliver function: the SQS event source of each delivery queue invokes it with up to 10
//! messages (`template.yaml`: `ReportBatchItemFailures`).
//!
//! - Each record is read on its own: a record that is not valid JSON for an SQS message, or
//!   lacks valid ids, fails alone (reported in `batchItemFailures`). It cannot be
//!   dead-lettered with a reason (a dead letter names its workspace and destination), so the
//!   queue's redrive policy moves it to the DLQ after `maxReceiveCount` receives, where the
//!   DLQ alarm shows it.
//! - The readable messages are delivered as `tracklayer serve` delivers a receive
//!   ([`DeliveryService::process`]): grouped per destination, destinations concurrently.
//! - Delivered (or dropped) messages are simply not reported: Lambda deletes them. A retry
//!   sets the message's visibility to its backoff (`ChangeMessageVisibility`) and is reported,
//!   so that Lambda leaves it in the queue. A held message (paused destination) or one partly
//!   delivered is replaced by a delayed copy ([`QueueConsumer::hold`]) or its remainder
//!   ([`QueueConsumer::replace`]) and reported, so Lambda deletes nothing. A dead letter is sent to the DLQ with its reason
//!   and deleted; if either fails, the message is reported and comes back.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::Value;
use tracklayer_aws::SqsDeliveryQueue;
use tracklayer_core::deliver::service::{DeliveryConfig, DeliveryService, Disposition};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::ports::{QueueConsumer, Received};
use tracklayer_egress::{BuildError, EgressConfig, HttpEgress};
use tracklayer_lambda::AwsStack;

/// An SQS event with its records still unread, so that one malformed record cannot fail the
/// others.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SqsRecords {
    #[serde(rename = "Records", default)]
    pub records: Vec<Value>,
}

/// A record without a `messageId`: it cannot be reported alone, so the whole batch fails
/// (Lambda makes every message of it visible again).
#[derive(Debug, thiserror::Error)]
#[error("record {index} of the SQS event has no messageId")]
pub struct UnidentifiedRecord {
    pub index: usize,
}

/// A message the function can deliver: its `messageId`, queue kind and contents.
#[derive(Debug)]
pub struct Accepted {
    pub message_id: String,
    pub kind: DestinationKind,
    pub received: Received,
}

/// The records of an event, read one by one: what can be delivered, and the `messageId`s of
/// the records that fail as they are.
#[derive(Debug, Default)]
pub struct ReadRecords {
    pub accepted: Vec<Accepted>,
    pub failed: Vec<String>,
}

/// Reads each record on its own, as `receive` reads a message.
pub fn read_records(
    queue: &SqsDeliveryQueue,
    event: SqsRecords,
) -> Result<ReadRecords, UnidentifiedRecord> {
    let mut out = ReadRecords::default();
    let mut poison = 0usize;
    for (index, raw) in event.records.into_iter().enumerate() {
        let Some(message_id) = raw
            .get("messageId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
        else {
            return Err(UnidentifiedRecord { index });
        };
        let accepted = serde_json::from_value::<SqsMessage>(raw)
            .ok()
            .and_then(|record| queue.accept_delivered(&record));
        match accepted {
            Some((kind, received)) => out.accepted.push(Accepted {
                message_id,
                kind,
                received,
            }),
            None => {
                poison += 1;
                out.failed.push(message_id);
            }
        }
    }
    if poison > 0 {
        tracing::warn!(
            records = poison,
            "SQS records without valid ids or body; left to the redrive policy"
        );
    }
    Ok(out)
}

/// The deliver handler: the delivery use case and the queue it settles messages on.
pub struct Deliver {
    service: Arc<DeliveryService>,
    queue: Arc<SqsDeliveryQueue>,
}

impl std::fmt::Debug for Deliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliver").finish_non_exhaustive()
    }
}

impl Deliver {
    /// Delivery over the stack's adapters, the connectors and egress to public addresses
    /// (private ones too if the configuration allows it: tests).
    pub fn new(stack: &AwsStack, config: DeliveryConfig) -> Result<Self, BuildError> {
        let egress = HttpEgress::new(EgressConfig {
            policy: stack.egress_policy(),
            ..EgressConfig::default()
        })?;
        let service = stack
            .ports
            .delivery(Arc::new(egress), config)
            .with_role_credentials(stack.roles.clone());
        Ok(Self::from_parts(Arc::new(service), stack.queue.clone()))
    }

    /// A handler over a service whose queue port is `queue`.
    pub fn from_parts(service: Arc<DeliveryService>, queue: Arc<SqsDeliveryQueue>) -> Self {
        Self { service, queue }
    }

    /// Delivers one SQS event and answers which records Lambda must leave in the queue.
    pub async fn handle(&self, event: SqsRecords) -> Result<SqsBatchResponse, UnidentifiedRecord> {
        let ReadRecords {
            accepted,
            mut failed,
        } = read_records(&self.queue, event)?;
        let mut by_kind: BTreeMap<DestinationKind, Vec<Accepted>> = BTreeMap::new();
        for a in accepted {
            by_kind.entry(a.kind).or_default().push(a);
        }
        let settled = join_all(
            by_kind
                .into_iter()
                .map(|(kind, batch)| self.deliver_kind(kind, batch)),
        )
        .await;
        failed.extend(settled.into_iter().flatten());
        let mut response = SqsBatchResponse::default();
        response.set_failures(failed);
        Ok(response)
    }

    /// Delivers the messages of one queue; returns the ids to report as failed.
    async fn deliver_kind(&self, kind: DestinationKind, batch: Vec<Accepted>) -> Vec<String> {
        let received: Vec<Received> = batch.iter().map(|a| a.received.clone()).collect();
        let dispositions = self.service.process(kind, &received).await;
        let settled = join_all(
            batch
                .iter()
                .zip(&dispositions)
                .map(|(a, d)| self.settle(kind, a, d)),
        )
        .await;
        batch
            .into_iter()
            .zip(settled)
            .filter_map(|(a, delivered)| (!delivered).then_some(a.message_id))
            .collect()
    }

    /// Carries out a disposition; true if Lambda may delete the message.
    async fn settle(&self, kind: DestinationKind, a: &Accepted, d: &Disposition) -> bool {
        let receipt = &a.received.receipt;
        let done = match d {
            Disposition::Ack => true,
            Disposition::RetryLater(delay) => {
                if let Err(e) = self.queue.retry_later(kind, receipt, *delay).await {
                    tracing::warn!(error = %e, kind = %kind,
                        "could not set the backoff; the message returns after the queue's visibility timeout");
                }
                false
            }
            Disposition::Hold(_) | Disposition::Replace(_) => {
                // The message was replaced by a copy or its remainder (or that failed, and it
                // comes back after the queue's visibility timeout): Lambda deletes nothing.
                if let Err(e) = self.service.apply(kind, &a.received, d).await {
                    tracing::warn!(error = %e, kind = %kind,
                        "could not hold or replace a message; it returns after the queue's visibility timeout");
                }
                false
            }
            Disposition::DeadLetter(_) => match self.service.apply(kind, &a.received, d).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, kind = %kind, "could not dead-letter a message; it will be received again");
                    false
                }
            },
        };
        done
    }
}
