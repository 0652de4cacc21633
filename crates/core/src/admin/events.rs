//! One event's trace.

use serde::Serialize;

use super::{AdminError, AdminResult, AdminService, Principal};
use crate::event::{EventId, MessageId, StoredEvent};
use crate::ports::{DeliveryRecord, RecentEvents};

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

    /// The event debugger's live list: the traces of the caller's workspace's newest events
    /// of the last hour ([`RECENT_WINDOW`]), newest first, of `event_type` and with a name
    /// containing `name` when given, at most `limit` (1 to [`RECENT_MAX`]).
    pub async fn recent_event_traces(
        &self,
        p: &Principal,
        event_type: Option<crate::event::EventType>,
        name: Option<String>,
        limit: usize,
    ) -> Result<Vec<EventTrace>, AdminError> {
        let now = self.now();
        let query = RecentEvents {
            since: now - RECENT_WINDOW,
            event_type,
            name,
            limit: limit.clamp(1, RECENT_MAX),
        };
        let events = self
            .ports
            .events
            .recent_events(&p.workspace_id, &query, now)
            .await?;
        let mut traces = Vec::with_capacity(events.len());
        for event in events {
            let deliveries = self
                .ports
                .delivery_log
                .for_event(&p.workspace_id, &event.event_id, now)
                .await?;
            traces.push(EventTrace { event, deliveries });
        }
        Ok(traces)
    }
}

/// How far back the live list of recent events reaches (find older ones by `messageId`).
pub const RECENT_WINDOW: time::Duration = time::Duration::hours(1);
/// The most events the live list shows at once.
pub const RECENT_MAX: usize = 100;
