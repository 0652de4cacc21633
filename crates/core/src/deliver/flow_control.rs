//! Flow control: the circuit breaker and the in-flight budget of each destination.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::service::{DeliveryError, DeliveryService, Disposition, Part};
use super::settings::Settings;
use crate::ports::DeliveryStatus;

#[derive(Default)]
pub(super) struct Breaker {
    pub(super) failures: u32,
    pub(super) open_until: Option<OffsetDateTime>,
}

#[derive(Default)]
pub(super) struct Gate {
    /// The requests in flight it allows, and the semaphore.
    pub(super) semaphore: Option<(usize, Arc<Semaphore>)>,
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

    /// A slot of `dest`'s in-flight budget, and the semaphore of its `requests` requests in
    /// flight (made on first use; made again when `requests` changes, as when the
    /// destination's batch limit does; requests already in flight finish on the old one).
    pub(super) fn take_slot(
        &self,
        dest: &str,
        requests: usize,
    ) -> Option<(Slot<'_>, Arc<Semaphore>)> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        let g = gates.entry(dest.to_owned()).or_default();
        if g.in_flight >= self.config.per_destination_messages {
            return None;
        }
        g.in_flight += 1;
        let requests = requests.max(1);
        let sem = match &g.semaphore {
            Some((n, s)) if *n == requests => s.clone(),
            _ => {
                let s = Arc::new(Semaphore::new(requests));
                g.semaphore = Some((requests, s.clone()));
                s
            }
        };
        Some((
            Slot {
                service: self,
                key: dest.to_owned(),
            },
            sem,
        ))
    }
}

/// Every message of a group held back for `delay` without spending a receive or an attempt
/// ([`Disposition::Hold`]).
pub(super) fn held(group: &[Part], delay: Duration) -> Vec<(usize, Disposition)> {
    group
        .iter()
        .map(|p| (p.index, Disposition::Hold(delay)))
        .collect()
}

/// Whether a group goes out now: with a slot of its destination's in-flight budget and the
/// semaphore of its requests, or not, and what became of its messages.
pub(super) enum Admission<'a> {
    Send(Slot<'a>, Arc<Semaphore>),
    Done(Vec<(usize, Disposition)>),
}

/// What a group's sends said about its destination, for the circuit breaker.
#[derive(Debug, Default)]
pub(super) struct Health {
    pub(super) any_success: bool,
    pub(super) any_transient: bool,
}

impl DeliveryService {
    /// Holds a group back while its destination or workspace is paused (egress paused), its
    /// destination's in-flight budget is spent, or its circuit is open; else lets it go with
    /// up to `requests` requests in flight ([`super::DeliveryConfig::request_concurrency`]).
    pub(super) async fn admit(
        &self,
        group: &[Part],
        settings: &Settings,
        requests: usize,
        now: OffsetDateTime,
    ) -> Result<Admission<'_>, DeliveryError> {
        let dest = &settings.destination;
        let dest_key = dest.id.as_str().to_owned();
        if settings.egress_paused() {
            // Keep the messages without spending their attempts, and look again later.
            return Ok(Admission::Done(held(group, self.config.paused_recheck)));
        }
        let Some((slot, semaphore)) = self.take_slot(&dest_key, requests) else {
            return Ok(Admission::Done(held(group, Duration::from_secs(1))));
        };
        if let Some(wait) = self.breaker_open(&dest_key, now) {
            return Ok(Admission::Done(self.while_open(group, wait).await?));
        }
        Ok(Admission::Send(slot, semaphore))
    }

    /// The circuit is open: each message waits at least until it may close, logged as
    /// retrying, or is dead-lettered once out of attempts.
    async fn while_open(
        &self,
        group: &[Part],
        wait: Duration,
    ) -> Result<Vec<(usize, Disposition)>, DeliveryError> {
        let mut out = Vec::with_capacity(group.len());
        for p in group {
            if p.attempts >= self.config.max_attempts {
                let (dead, why) = (DeliveryStatus::Dead, "circuit open");
                self.log_all(&p.body, dead, p.attempts, why, None).await?;
                out.push((
                    p.index,
                    Disposition::DeadLetter(format!(
                        "gave up after {} attempts: the destination keeps failing",
                        p.attempts
                    )),
                ));
            } else {
                let delay = self.backoff(p.attempts, Some(wait));
                self.log_all(
                    &p.body,
                    DeliveryStatus::Retrying,
                    p.attempts,
                    "circuit open",
                    Some(delay),
                )
                .await?;
                out.push((p.index, Disposition::RetryLater(delay)));
            }
        }
        Ok(out)
    }
}
