//! Opening a received message: its items by value as they are, or by reference rebuilt from
//! their stored events in one batched read ([`crate::event::RefBody::hydrate`]).

use std::collections::HashMap;

use super::service::DeliveryService;
use crate::error::StoreError;
use crate::event::{Body, Hydrated, QueueBody, UnreadableBody};
use crate::ports::{DeliveryStatus, Received};

/// What the delivery log says of an item whose event is gone.
pub(super) const EVENT_GONE: &str =
    "the event is no longer stored (erased or expired): not delivered";

/// Why a received message could not be opened.
#[derive(Debug)]
pub(super) enum Unopened {
    /// Not a body TrackLayer wrote: dead-lettered.
    Unreadable(UnreadableBody),
    /// Its events could not be read (unavailable, corrupt): retried, then dead-lettered,
    /// never sent with fields missing.
    Store(StoreError),
    /// Its destination or workspace is paused: held without its events being read, so a
    /// paused destination costs no event reads however much is queued for it.
    Paused,
}

impl DeliveryService {
    /// The message's items. By reference, each is rebuilt from its stored event; an item
    /// whose event is gone is left out with a delivery-log entry saying so.
    pub(super) async fn open_body(&self, m: &Received) -> Result<QueueBody, Unopened> {
        let refs = match m.decode_stored().map_err(Unopened::Unreadable)? {
            Body::Value(body) => return Ok(body),
            Body::Reference(refs) => refs,
        };
        // Whether it may go is known without its events. Settings that cannot be loaded
        // here are left to the group's stage, which knows what becomes of the message.
        if let Ok(Some(settings)) = self
            .settings_of(&refs.workspace_id, &refs.destination_id)
            .await
        {
            if settings.egress_paused() {
                return Err(Unopened::Paused);
            }
        }
        let now = self.ports.clock.now();
        let ids = refs.event_ids();
        let store = &self.ports.events;
        let events: HashMap<_, _> = store
            .events(&refs.workspace_id, &ids, now)
            .await
            .map_err(Unopened::Store)?
            .into_iter()
            .map(|e| (e.event_id, e))
            .collect();
        let operational: HashMap<_, _> = store
            .operational_records(&refs.workspace_id, &ids, now)
            .await
            .map_err(Unopened::Store)?
            .into_iter()
            .map(|o| (o.event_id, o.sealed))
            .collect();
        let shared = match m.shared.as_deref().map(crate::event::decode_shared) {
            None => HashMap::new(),
            Some(Ok(shared)) => shared,
            Some(Err(e)) => {
                // Its items then do not open, and are dead-lettered as corrupt.
                tracing::error!(destination = %refs.destination_id, error = %e, "a message's shared sealed fields are unreadable");
                HashMap::new()
            }
        };
        let attempts = refs.attempts + m.receive_count;
        let Hydrated { body, gone } = refs.hydrate(&events, &operational, &shared);
        if !gone.is_empty() {
            tracing::info!(
                destination = %body.destination_id,
                gone = gone.len(),
                "queued items whose events are gone are not delivered"
            );
            let entries: Vec<_> = gone.into_iter().map(|id| (id, None)).collect();
            let records = self.records(
                (&body.workspace_id, &body.destination_id),
                &entries,
                (DeliveryStatus::Dropped(EVENT_GONE.into()), attempts),
                EVENT_GONE,
                None,
            );
            self.log_and_count(&records)
                .await
                .map_err(|e| match e {
                    super::service::DeliveryError::Store(e) => e,
                    other => StoreError::transient("delivery log", other.to_string()),
                })
                .map_err(Unopened::Store)?;
        }
        Ok(body)
    }
}
