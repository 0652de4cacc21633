//! What ingest and delivery count: the one delta of a request, the one of a queue message.

use super::{DestinationCounter, IngestCounter, RejectReason, StatsDelta};
use crate::event::Routing;
use crate::ingest::Rejection;
use crate::ports::{DeliveryRecord, DeliveryStatus};

/// What one ingest request came to, as counted.
#[derive(Debug, Clone, Copy)]
pub struct IngestTally<'a> {
    /// Valid events, duplicates and suppressed ones included.
    pub accepted: usize,
    pub duplicates: usize,
    pub suppressed: usize,
    /// Of the accepted, dropped as crawlers' ([`crate::bots`]).
    pub bots: usize,
    pub rejected: &'a [Rejection],
}

/// The delta of one ingest request: its totals, and per destination how the new events (not
/// duplicates, not suppressed) were routed — `routing` holds each new event's decisions.
pub fn ingest_delta<'r>(
    tally: IngestTally<'_>,
    routing: impl IntoIterator<Item = &'r [Routing]>,
) -> StatsDelta {
    let mut delta = StatsDelta::new();
    delta.ingest(IngestCounter::Accepted, tally.accepted as u64);
    delta.ingest(IngestCounter::Duplicates, tally.duplicates as u64);
    delta.ingest(IngestCounter::Suppressed, tally.suppressed as u64);
    delta.ingest(IngestCounter::Bots, tally.bots as u64);
    for r in tally.rejected {
        delta.ingest(IngestCounter::Rejected(RejectReason::of_field(&r.field)), 1);
    }
    for decisions in routing {
        for r in decisions {
            let how = if r.routed {
                DestinationCounter::Routed
            } else if !r.consent.allowed {
                DestinationCounter::DroppedConsent
            } else {
                DestinationCounter::DroppedFilter
            };
            delta.destination(&r.destination_id, DestinationCounter::Received, 1);
            delta.destination(&r.destination_id, how, 1);
        }
    }
    delta
}

/// The delta of one settled queue message, from the delivery-log records it wrote (items
/// delivered before, and so skipped, have none).
pub fn delivery_delta(records: &[DeliveryRecord]) -> StatsDelta {
    let mut delta = StatsDelta::new();
    for r in records {
        let c = match r.status {
            DeliveryStatus::Delivered => DestinationCounter::Delivered,
            DeliveryStatus::Retrying => DestinationCounter::Retrying,
            DeliveryStatus::Dead => DestinationCounter::DeadLettered,
            DeliveryStatus::Dropped(_) => DestinationCounter::Invalid,
        };
        delta.destination(&r.destination_id, c, 1);
    }
    delta
}
