//! One event's trace.

use serde::Serialize;

use super::{AdminError, AdminService, Principal};
use crate::event::{EventId, StoredEvent};
use crate::ports::DeliveryRecord;

/// One event's story: what was received, decided and delivered. No raw identifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventTrace {
    pub event: StoredEvent,
    pub deliveries: Vec<DeliveryRecord>,
}

impl AdminService {
    pub async fn event_trace(&self, p: &Principal, id: &str) -> Result<EventTrace, AdminError> {
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
}
