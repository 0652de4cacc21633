//! Flow control: the circuit breaker and the in-flight budget of each destination.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::service::DeliveryService;

#[derive(Default)]
pub(super) struct Breaker {
    pub(super) failures: u32,
    pub(super) open_until: Option<OffsetDateTime>,
}

#[derive(Default)]
pub(super) struct Gate {
    pub(super) semaphore: Option<Arc<Semaphore>>,
    pub(super) in_flight: usize,
}

/// A slot in a destination's in-flight budget, released on drop.
pub(super) struct Slot<'a> {
    pub(super) service: &'a DeliveryService,
    pub(super) key: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut gates = self.service.gates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = gates.get_mut(&self.key) {
            g.in_flight = g.in_flight.saturating_sub(1);
        }
    }
}

impl DeliveryService {
    pub(super) fn breaker_open(&self, dest: &str, now: OffsetDateTime) -> Option<Duration> {
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let until = breakers.get(dest)?.open_until?;
        (until > now).then(|| Duration::try_from(until - now).unwrap_or_default())
    }

    pub(super) fn breaker_report(&self, dest: &str, transient_failure: bool, now: OffsetDateTime) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let b = breakers.entry(dest.to_owned()).or_default();
        if transient_failure {
            b.failures += 1;
            if b.failures >= self.config.breaker_threshold {
                let cooldown =
                    time::Duration::try_from(self.config.breaker_cooldown).unwrap_or_default();
                b.open_until = Some(now + cooldown);
                b.failures = 0;
                tracing::warn!(
                    destination = dest,
                    "circuit open: destination keeps failing"
                );
            }
        } else {
            b.failures = 0;
            b.open_until = None;
        }
    }

    pub(super) fn take_slot(&self, dest: &str) -> Option<(Slot<'_>, Arc<Semaphore>)> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        let g = gates.entry(dest.to_owned()).or_default();
        if g.in_flight >= self.config.per_destination_messages {
            return None;
        }
        g.in_flight += 1;
        let sem = g
            .semaphore
            .get_or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.per_destination_concurrency.max(1),
                ))
            })
            .clone();
        Some((
            Slot {
                service: self,
                key: dest.to_owned(),
            },
            sem,
        ))
    }
}
