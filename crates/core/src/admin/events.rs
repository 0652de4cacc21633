//! One event's trace.

use serde::Serialize;

use super::{AdminError, AdminResult, AdminService, Principal};
use crate::event::{EventId, MessageId, StoredEvent};
use crate::ports::DeliveryRecord;

/// One event's story: what was received, decided and delivered. No raw identifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventTrace {
    pub event: StoredEvent,
    pub deliveries: Vec<DeliveryRecord>,
}

impl AdminService {
    pub async fn event_trace(&self, p: &Principal, id: &str) -> AdminResult<EventTrace> {
        let id = EventId::parse(id).ok_or(AdminError::NotFound("event"))?;
        let now = self.now();
        let event = self
            .ports
            .events
            .event(&p.workspace_id, &id, now)
            .await?
            .ok_or(AdminError::NotFound("event"))?;
        let deliveries = self
            .ports
            .delivery_log
            .for_event(&p.workspace_id, &id, now)
            .await?;
        Ok(EventTrace { event, deliveries })
    }

    /// The traces of the caller's workspace's events with this Segment `messageId` (normally
    /// one), while its dedup window is open (see `EventReader::event_ids_by_message_id`).
    pub async fn event_traces_by_message_id(
        &self,
        p: &Principal,
        message_id: &MessageId,
    ) -> AdminResult<Vec<EventTrace>> {
        let now = self.now();
        let ids = self
            .ports
            .events
            .event_ids_by_message_id(&p.workspace_id, message_id, now)
            .await?;
        let mut traces = Vec::with_capacity(ids.len());
        for id in ids {
            let event = self.ports.events.event(&p.workspace_id, &id, now).await?;
            let Some(event) = event.filter(|e| e.message_id == *message_id) else {
                continue;
            };
            let deliveries = self
                .ports
                .delivery_log
                .for_event(&p.workspace_id, &id, now)
                .await?;
            traces.push(EventTrace { event, deliveries });
        }
        Ok(traces)
    }
}
