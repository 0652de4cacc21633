//! `DeliveryQueue` on SQS: one standard queue and one dead-letter queue per destination kind,
//! with the redrive policy of `template.yaml` (SQS moves a message to the DLQ after
//! `maxReceiveCount` receives).
//!
//! - The destination and workspace travel as message attributes, the `QueueBody` JSON as the
//!   body: deflated and base64-encoded (`body_encoding = deflate`) from 1 KiB on, since SQS
//!   bills per started 64 KiB; else as it is (base64 with `body_encoding = base64` if it is
//!   not UTF-8).
//! - SQS limits: 10 messages and 256 KiB per `SendMessageBatch`, `DelaySeconds` ≤ 900 s
//!   (longer delays are cut to 900 s, with a warning), visibility ≤ 12 h, whole seconds
//!   (sub-second durations round up).
//! - A dead letter carries its `reason` and `dead_at`; messages SQS redrove have neither, and
//!   read as "received too often" at their send time.
//! - `hold` sends a delayed copy of the received message (its earlier receives counted as
//!   attempts in the body), then deletes it: SQS cannot give a receive back.
//! - `replace` sends a message's remainder (retry and dead parts), then deletes it.
//! - `dead_letter` sends the received message itself (its ids and body) to the dead-letter
//!   queue and deletes it from the source queue: nothing is remembered between calls.
//! - `dead_letters` peeks: it receives with a short visibility and makes the messages visible
//!   again at once. `replay` receives, sends to the source queue, then deletes
//!   (`StartMessageMoveTask` cannot filter by destination, and moto lacks it).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use time::OffsetDateTime;
use tracklayer_core::clock::Clock;
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::{strip_events, Stripped};
use tracklayer_core::error::StoreError;
use tracklayer_core::event::EventId;
use tracklayer_core::ports::{
    DeadLetter, DeadLetterAdmin, Enqueuer, Outgoing, QueueConsumer, QueueDepth, Receipt, Received,
    Remainder, ReplayFilter,
};
use tracklayer_core::workspace::WorkspaceId;

mod wire;

pub use wire::decode_body;

use wire::{
    death, entry, held_body, parse, parse_parts, secs_ceil, system_attr, Entry, BATCH_BYTES,
    BATCH_MAX, MAX_VISIBILITY_S,
};

use crate::config::QueueUrls;
use crate::error::{code, store};

/// How long `dead_letters` and `replay` hide what they look at (they release it at the end).
const PEEK_VISIBILITY_S: i32 = 30;
/// The most dead letters one `replay` call looks at.
const REPLAY_MAX: usize = 10_000;

/// The delivery queues on SQS.
pub struct SqsDeliveryQueue {
    client: Client,
    queues: BTreeMap<DestinationKind, QueueUrls>,
    clock: Arc<dyn Clock>,
}

tracklayer_core::debug_fields!(SqsDeliveryQueue: queues);

impl SqsDeliveryQueue {
    /// `clock` stamps `dead_at` on dead letters.
    pub fn new(
        client: Client,
        queues: BTreeMap<DestinationKind, QueueUrls>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            client,
            queues,
            clock,
        }
    }

    fn urls(&self, kind: DestinationKind) -> Result<&QueueUrls, StoreError> {
        self.queues.get(&kind).ok_or_else(|| {
            StoreError::permanent("queue", format!("no queue configured for {kind}"))
        })
    }

    /// The destination kind whose queue has this ARN (its last `:` segment is the queue name,
    /// which is the last path segment of the queue URL).
    pub fn kind_of_queue_arn(&self, arn: &str) -> Option<DestinationKind> {
        let name = arn.rsplit(':').next().filter(|n| !n.is_empty())?;
        self.queues
            .iter()
            .find(|(_, urls)| urls.queue.trim_end_matches('/').rsplit('/').next() == Some(name))
            .map(|(kind, _)| *kind)
    }

    /// Reads a record of a Lambda SQS event as `receive` reads a message. `None` if it did not come from one of these queues or
    /// lacks a receipt handle, valid ids or a readable body: such a record can be neither
    /// delivered nor dead-lettered with a reason (SQS's redrive policy moves it instead).
    pub fn accept_delivered(&self, record: &SqsMessage) -> Option<(DestinationKind, Received)> {
        let kind = self.kind_of_queue_arn(record.event_source_arn.as_deref()?)?;
        let receipt = record.receipt_handle.as_deref().filter(|h| !h.is_empty())?;
        let p = parse_parts(
            |name| record.message_attributes.get(name)?.string_value.as_deref(),
            record.body.as_deref().unwrap_or_default(),
            record
                .attributes
                .get("SentTimestamp")
                .and_then(|v| v.parse().ok()),
        )?;
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        let received = Received {
            receipt: Receipt(receipt.to_owned()),
            destination_id: p.destination_id,
            workspace_id: p.workspace_id,
            body: p.body,
            receive_count,
            enqueued_at: p.sent_at,
            shared: None,
        };
        Some((kind, received))
    }

    /// Sends entries in batches of at most 10 messages and 256 KiB, retrying entries that
    /// failed on SQS's side.
    async fn send(&self, url: &str, entries: Vec<Entry>) -> Result<(), StoreError> {
        let mut batches: Vec<Vec<Entry>> = Vec::new();
        let mut size = 0;
        for e in entries {
            let full = batches
                .last()
                .is_none_or(|b| b.len() == BATCH_MAX || size + e.size > BATCH_BYTES);
            if full {
                batches.push(Vec::new());
                size = 0;
            }
            size += e.size;
            batches.last_mut().expect("a batch").push(e);
        }
        for batch in batches {
            let mut pending: Vec<SendMessageBatchRequestEntry> = batch
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(e.body)
                        .delay_seconds(e.delay_s)
                        .set_message_attributes(Some(e.attributes))
                        .build()
                        .map_err(|err| StoreError::permanent("enqueue", err))
                })
                .collect::<Result<_, _>>()?;
            for round in 0..4u32 {
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(|e| store("enqueue", e))?;
                let failed = out.failed();
                if failed.is_empty() {
                    break;
                }
                if let Some(f) = failed.iter().find(|f| f.sender_fault()) {
                    return Err(StoreError::permanent(
                        "enqueue",
                        format!("SQS refused a message: {}", f.code()),
                    ));
                }
                if round == 3 {
                    return Err(StoreError::transient(
                        "enqueue",
                        format!("{} messages not accepted by SQS", failed.len()),
                    ));
                }
                let retry: Vec<&str> = failed.iter().map(|f| f.id()).collect();
                pending.retain(|e| retry.contains(&e.id()));
                tokio::time::sleep(crate::dynamo::backoff(round)).await;
            }
        }
        Ok(())
    }

    async fn receive_from(
        &self,
        url: &str,
        max: usize,
        visibility_s: i32,
        wait_s: i32,
    ) -> Result<Vec<Message>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, BATCH_MAX) as i32)
            .visibility_timeout(visibility_s)
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| store("receive", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Sends each message to its kind's queue after its delay or, `dead` (the reason and
    /// time), at once to its kind's dead-letter queue.
    async fn send_by_kind(
        &self,
        messages: &[Outgoing],
        dead: Option<(&str, OffsetDateTime)>,
    ) -> Result<(), StoreError> {
        let mut by_kind: BTreeMap<DestinationKind, Vec<Entry>> = BTreeMap::new();
        for m in messages {
            let delay = if dead.is_some() {
                Duration::ZERO
            } else {
                m.delay
            };
            by_kind.entry(m.kind).or_default().push(entry(
                &m.workspace_id,
                &m.destination_id,
                &m.body,
                delay,
                dead,
            )?);
        }
        for (kind, entries) in by_kind {
            let urls = self.urls(kind)?;
            let url = if dead.is_some() {
                &urls.dlq
            } else {
                &urls.queue
            }
            .clone();
            self.send(&url, entries).await?;
        }
        Ok(())
    }

    /// Receives from a dead-letter queue with the peek visibility. The last, empty receive
    /// long-polls for a second: a short poll of SQS may miss messages that are there.
    async fn peek(&self, url: &str, max: usize) -> Result<Vec<Message>, StoreError> {
        let got = self.receive_from(url, max, PEEK_VISIBILITY_S, 0).await?;
        if !got.is_empty() {
            return Ok(got);
        }
        self.receive_from(url, max, PEEK_VISIBILITY_S, 1).await
    }

    /// Makes messages visible again at once.
    async fn release(&self, url: &str, handles: Vec<String>) -> Result<(), StoreError> {
        for chunk in handles.chunks(BATCH_MAX) {
            let entries = numbered("release", chunk, |id, h| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(h)
                    .visibility_timeout(0)
                    .build()
            })?;
            self.client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| store("release", e))?;
        }
        Ok(())
    }

    async fn delete_batch(&self, url: &str, handles: Vec<String>) -> Result<(), StoreError> {
        for chunk in handles.chunks(BATCH_MAX) {
            let entries = numbered("replay", chunk, |id, h| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(h)
                    .build()
            })?;
            self.client
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| store("replay", e))?;
        }
        Ok(())
    }

    /// Works through up to [`REPLAY_MAX`] dead letters of the queue `dlq`, batch by batch:
    /// `rework` says what becomes of each. Per batch, what it sends on goes to the queue `to`
    /// first, then what it is done with is deleted (a failure in between leaves the old
    /// message, never none); at the end, what it left is made visible again. Returns the sum
    /// of the counts.
    async fn rework_dead_letters(
        &self,
        dlq: &str,
        to: &str,
        mut rework: impl FnMut(&Message) -> Result<Rework, StoreError>,
    ) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut seen = 0usize;
        let mut left = Vec::new();
        while seen < REPLAY_MAX {
            let got = self.peek(dlq, BATCH_MAX).await?;
            if got.is_empty() {
                break;
            }
            seen += got.len();
            let mut send = Vec::new();
            let mut done = Vec::new();
            for m in got {
                let Some(h) = m.receipt_handle().map(str::to_owned) else {
                    continue;
                };
                match rework(&m)? {
                    Rework::Leave => left.push(h),
                    Rework::Done { count: n, resend } => {
                        send.extend(resend);
                        count += n;
                        done.push(h);
                    }
                }
            }
            if !send.is_empty() {
                self.send(to, send).await?;
            }
            self.delete_batch(dlq, done).await?;
        }
        self.release(dlq, left).await?;
        Ok(count)
    }

    async fn count(&self, url: &str) -> Result<(u64, u64), StoreError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| store("depth", e))?;
        let get = |name: QueueAttributeName| -> u64 {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                + get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ))
    }
}

/// Receipt errors: the message is gone, or the receipt is stale or malformed.
fn receipt_error<E>(
    context: &'static str,
    err: aws_sdk_sqs::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> StoreError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match code(&err) {
        Some(
            "ReceiptHandleIsInvalid"
            | "MessageNotInflight"
            | "AWS.SimpleQueueService.MessageNotInflight",
        ) => StoreError::NotFound("receipt"),
        _ => store(context, err),
    }
}

impl SqsDeliveryQueue {
    /// Test support (no production caller, so not in a port): the kind's dead letters,
    /// oldest first.
    pub async fn dead_letters(
        &self,
        kind: DestinationKind,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let url = self.urls(kind)?.dlq.clone();
        let mut out = Vec::new();
        let mut handles = Vec::new();
        while out.len() < limit {
            let got = self.peek(&url, limit - out.len()).await?;
            if got.is_empty() {
                break;
            }
            for m in got {
                if let Some(h) = m.receipt_handle() {
                    handles.push(h.to_owned());
                }
                let Some(p) = parse(&m) else { continue };
                let (reason, dead_at) = death(&m, &p);
                out.push(DeadLetter {
                    destination_id: p.destination_id,
                    workspace_id: p.workspace_id,
                    body: p.body,
                    reason,
                    dead_at,
                });
            }
        }
        self.release(&url, handles).await?;
        out.sort_by_key(|d| d.dead_at);
        out.truncate(limit);
        Ok(out)
    }

    /// Test support (no production caller, so not in a port): messages waiting, in
    /// flight and dead.
    pub async fn depth(&self, kind: DestinationKind) -> Result<QueueDepth, StoreError> {
        let urls = self.urls(kind)?.clone();
        let ((visible, in_flight), (dead_visible, dead_hidden)) =
            futures_util::future::try_join(self.count(&urls.queue), self.count(&urls.dlq)).await?;
        Ok(QueueDepth {
            visible,
            in_flight,
            dead: dead_visible + dead_hidden,
        })
    }
}

#[async_trait]
impl Enqueuer for SqsDeliveryQueue {
    async fn enqueue(&self, messages: &[Outgoing]) -> Result<(), StoreError> {
        self.send_by_kind(messages, None).await
    }

    /// By value: a Lambda consumer reads no event store per item.
    fn items_by_reference(&self) -> bool {
        false
    }
}

#[async_trait]
impl QueueConsumer for SqsDeliveryQueue {
    async fn enqueue_dead(&self, messages: &[Outgoing], reason: &str) -> Result<(), StoreError> {
        self.send_by_kind(messages, Some((reason, self.clock.now())))
            .await
    }

    async fn receive(
        &self,
        kind: DestinationKind,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, StoreError> {
        let url = self.urls(kind)?.queue.clone();
        let visibility_s = secs_ceil(visibility, MAX_VISIBILITY_S);
        let mut out = Vec::new();
        while out.len() < max {
            let want = (max - out.len()).min(BATCH_MAX);
            let got = self.receive_from(&url, want, visibility_s, 0).await?;
            let n = got.len();
            for m in got {
                let (Some(handle), Some(p)) = (m.receipt_handle(), parse(&m)) else {
                    // SQS redrives it to the dead-letter queue after its maximum receives.
                    tracing::warn!(queue = kind.as_str(), "a queue message without valid ids");
                    continue;
                };
                let receive_count =
                    system_attr(&m, MessageSystemAttributeName::ApproximateReceiveCount)
                        .map_or(1, |c| u32::try_from(c).unwrap_or(u32::MAX));
                out.push(Received {
                    receipt: Receipt(handle.to_owned()),
                    destination_id: p.destination_id,
                    workspace_id: p.workspace_id,
                    body: p.body,
                    receive_count,
                    enqueued_at: p.sent_at,
                    shared: None,
                });
            }
            if n < want {
                break;
            }
        }
        Ok(out)
    }

    async fn ack(&self, kind: DestinationKind, receipt: &Receipt) -> Result<(), StoreError> {
        let url = &self.urls(kind)?.queue;
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(&receipt.0)
            .send()
            .await
            .map_err(|e| receipt_error("ack", e))?;
        Ok(())
    }

    async fn retry_later(
        &self,
        kind: DestinationKind,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), StoreError> {
        let url = &self.urls(kind)?.queue;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(secs_ceil(delay, MAX_VISIBILITY_S))
            .send()
            .await
            .map_err(|e| receipt_error("retry_later", e))?;
        Ok(())
    }

    /// A delayed copy, then the original deleted (see the port: SQS cannot un-count a receive).
    async fn hold(
        &self,
        kind: DestinationKind,
        message: &Received,
        delay: Duration,
    ) -> Result<(), StoreError> {
        let url = self.urls(kind)?.queue.clone();
        let copy = entry(
            &message.workspace_id,
            &message.destination_id,
            &held_body(message),
            delay,
            None,
        )?;
        // Send first: a failure between the two calls leaves two copies, never none.
        self.send(&url, vec![copy]).await?;
        self.ack(kind, &message.receipt).await
    }

    /// The parts first, then the original deleted (SQS has no transaction).
    async fn replace(
        &self,
        kind: DestinationKind,
        message: &Received,
        remainder: &Remainder,
    ) -> Result<(), StoreError> {
        self.enqueue(&remainder.retry).await?;
        self.enqueue_dead(&remainder.dead, &remainder.reason)
            .await?;
        self.ack(kind, &message.receipt).await
    }

    async fn dead_letter(
        &self,
        kind: DestinationKind,
        message: &Received,
        reason: &str,
    ) -> Result<(), StoreError> {
        let urls = self.urls(kind)?.clone();
        let dead = entry(
            &message.workspace_id,
            &message.destination_id,
            &message.body,
            Duration::ZERO,
            Some((reason, self.clock.now())),
        )?;
        // Send first: a failure between the two calls leaves a copy in both queues (at least
        // once), never in neither.
        self.send(&urls.dlq, vec![dead]).await?;
        self.ack(kind, &message.receipt).await
    }
}

#[async_trait]
impl DeadLetterAdmin for SqsDeliveryQueue {
    async fn replay(
        &self,
        kind: DestinationKind,
        filter: &ReplayFilter,
    ) -> Result<u64, StoreError> {
        let urls = self.urls(kind)?.clone();
        self.rework_dead_letters(&urls.dlq, &urls.queue, |m| {
            let matching = parse(m).filter(|p| {
                let (_, dead_at) = death(m, p);
                filter
                    .destination_id
                    .as_ref()
                    .is_none_or(|d| *d == p.destination_id)
                    && filter.since.is_none_or(|s| dead_at >= s)
                    && filter.until.is_none_or(|u| dead_at <= u)
            });
            let Some(p) = matching else {
                return Ok(Rework::Leave);
            };
            let resend = entry(
                &p.workspace_id,
                &p.destination_id,
                &p.body,
                Duration::ZERO,
                None,
            )?;
            Ok(Rework::Done {
                count: 1,
                resend: Some(resend),
            })
        })
        .await
    }

    /// Dead letters only: SQS cannot change a queued message, and receiving the source
    /// queue's messages to rewrite them would count against their redrive limit. A dead
    /// letter holding the events' items is sent again without them (with its reason and
    /// time), then deleted; one left without items is deleted.
    async fn purge_events(
        &self,
        kind: DestinationKind,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<u64, StoreError> {
        let urls = self.urls(kind)?.clone();
        let events: HashSet<EventId> = events.iter().copied().collect();
        self.rework_dead_letters(&urls.dlq, &urls.dlq, |m| {
            let Some(p) = parse(m).filter(|p| p.workspace_id == *ws) else {
                return Ok(Rework::Leave);
            };
            Ok(match strip_events(&p.body, ws, &events) {
                Stripped::Untouched => Rework::Leave,
                Stripped::Emptied { removed } => Rework::Done {
                    count: removed,
                    resend: None,
                },
                Stripped::Rewritten { body, removed } => {
                    let (reason, dead_at) = death(m, &p);
                    let resend = entry(
                        &p.workspace_id,
                        &p.destination_id,
                        &body,
                        Duration::ZERO,
                        Some((&reason, dead_at)),
                    )?;
                    Rework::Done {
                        count: removed,
                        resend: Some(resend),
                    }
                }
            })
        })
        .await
    }
}

/// What becomes of one dead letter being reworked.
enum Rework {
    /// It stays as it is.
    Leave,
    /// It is deleted, after `resend` (if any) is sent in its place; `count` is added up.
    Done { count: u64, resend: Option<Entry> },
}

/// A chunk of receipt handles as the entries of one batch request, numbered from 0.
fn numbered<T, E>(
    context: &'static str,
    handles: &[String],
    build: impl Fn(String, &str) -> Result<T, E>,
) -> Result<Vec<T>, StoreError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    handles
        .iter()
        .enumerate()
        .map(|(i, h)| build(i.to_string(), h).map_err(|e| StoreError::permanent(context, e)))
        .collect()
}
